//! `${NAME}` in provider files: secrets in `[http.headers]` and `[command.env]`, and the
//! `[gguf]` weights path. One scanner finds the references; the two entry points differ only in
//! what they make of one.

use crate::error::{Error, Location};

/// Replace each `${NAME}` by the variable's value. Returns the text and the substituted values
/// (secrets, to be redacted), or the name of a variable that is unset or empty.
/// `${` not followed by `NAME}` is kept as it is (`costs $5 ${ not a var`).
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut used = Vec::new();
    let out = scan(text, |inner| -> Result<_, String> {
        // The shell's rule for a name here: no leading digit (`expand` takes one).
        let Some(name) =
            inner.filter(|n| is_name(n) && !n.starts_with(|c: char| c.is_ascii_digit()))
        else {
            return Ok(None);
        };
        let value = lookup(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| name.to_owned())?;
        used.push(value.clone());
        Ok(Some(value))
    })?;
    Ok((out, used))
}

/// Expand `${NAME}` and `${NAME:-default}` (the default used when NAME is unset or empty). Unlike
/// [`substitute`], a `${` that starts no such reference is an error, not text.
pub fn expand(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    scan(raw, |inner| {
        let inner = inner.ok_or_else(|| format!("`${{` without a closing `}}` in `{raw}`"))?;
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if !is_name(name) {
            return Err(format!("`${{{inner}}}` is not a variable name"));
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => Ok(Some(value)),
            (None, Some(default)) => Ok(Some(default.to_owned())),
            (None, None) => Err(format!(
                "the environment variable {name} is not set (write `${{{name}:-default}}` for a fallback)"
            )),
        }
    })
}

/// The configuration error of a `${NAME}` whose variable is unset or empty; `fix_tail` ends the
/// fix with what the field adds to it.
pub fn unset_error(at: Location, name: &str, fix_tail: &str) -> Error {
    Error::input(
        at,
        format!("the environment variable {name} is not set (or is empty)"),
        format!("export {name}=… before running{fix_tail}"),
    )
}

/// The scanner: `text` with each `${…}` replaced by what `reference` makes of what stands
/// between the braces (`None` when no `}` follows). `Ok(None)` keeps the `${` as text and reads
/// on right after it, so a reference inside a rejected one is still found.
fn scan<E>(
    text: &str,
    mut reference: impl FnMut(Option<&str>) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}');
        match (end, reference(end.map(|n| &after[..n]))?) {
            (Some(end), Some(value)) => {
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution() {
        let lookup = |v: &str| (v == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            substitute("Bearer ${TOKEN}", lookup).unwrap(),
            ("Bearer s3cret".to_owned(), vec!["s3cret".to_owned()])
        );
        assert_eq!(
            substitute("costs $5 ${ not a var", lookup).unwrap(),
            ("costs $5 ${ not a var".to_owned(), vec![])
        );
        assert_eq!(substitute("${NOPE}", lookup).unwrap_err(), "NOPE");
        // A rejected `${` is text, and a reference after it inside the braces is still read.
        assert_eq!(
            substitute("${1} ${a ${TOKEN}} ${X:-d}", lookup).unwrap().0,
            "${1} ${a s3cret} ${X:-d}"
        );
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "MODELS" => Some("/m".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_with_defaults() {
        assert_eq!(expand("${MODELS}/a.gguf", env).unwrap(), "/m/a.gguf");
        assert_eq!(
            expand("${UNSET:-~/.cache/x}/a.gguf", env).unwrap(),
            "~/.cache/x/a.gguf"
        );
        assert_eq!(expand("${EMPTY:-/d}/a", env).unwrap(), "/d/a");
        assert_eq!(expand("plain/path", env).unwrap(), "plain/path");
        let err = expand("${UNSET}/a.gguf", env).unwrap_err();
        assert!(err.contains("UNSET"), "{err}");
        assert!(expand("${MODELS/a", env).is_err());
        assert!(expand("${a b}", env).is_err());
    }
}

/// Properties of `${NAME}`: any text is substituted or names an unset variable, never a panic,
/// and text around references comes through as written.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const SET: [(&str, &str); 3] = [("TOKEN", "s3cret"), ("A_1", "é€🦀"), ("_x", "${TOKEN}")];

    fn lookup(name: &str) -> Option<String> {
        SET.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }

    /// Text dense in the characters the scanner looks at.
    fn hostile_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("${".to_owned()),
                Just("}".to_owned()),
                Just(":-".to_owned()),
                Just("$".to_owned()),
                Just("${TOKEN}".to_owned()),
                Just("${UNSET}".to_owned()),
                "[A-Za-z0-9_ é€🦀{}$:-]{0,6}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Text without `$`, `{` or `}`: nothing the scanner could take for a reference.
    fn literal() -> impl Strategy<Value = String> {
        "[^${}]{0,8}"
    }

    proptest! {
        #[test]
        fn any_text_substitutes_or_names_an_unset_variable(text in hostile_text()) {
            match substitute(&text, lookup) {
                Ok((out, used)) => {
                    prop_assert!(used.iter().all(|v| out.contains(v.as_str())));
                    if !text.contains("${") {
                        prop_assert_eq!(&out, &text);
                    }
                }
                Err(name) => {
                    prop_assert!(lookup(&name).is_none());
                    let reference = format!("${{{name}}}");
                    prop_assert!(text.contains(&reference));
                }
            }
            // expand is stricter about what `${` may start, but never panics either.
            let _ = expand(&text, lookup);
        }

        #[test]
        fn references_are_replaced_and_the_text_between_kept(
            pieces in proptest::collection::vec((literal(), 0usize..SET.len()), 0..6),
            tail in literal(),
        ) {
            let mut text = String::new();
            let mut expected = String::new();
            let mut values = Vec::new();
            for (literal, var) in &pieces {
                let (name, value) = SET[*var];
                text.push_str(&format!("{literal}${{{name}}}"));
                expected.push_str(literal);
                expected.push_str(value);
                values.push(value.to_owned());
            }
            text.push_str(&tail);
            expected.push_str(&tail);
            // A value is not scanned again: `${TOKEN}` in a value stays as it is.
            prop_assert_eq!(substitute(&text, lookup), Ok((expected.clone(), values)));
            prop_assert_eq!(expand(&text, lookup), Ok(expected));
        }

        #[test]
        fn a_default_stands_in_for_an_unset_variable(
            before in literal(), default in "[^${}]{0,8}", after in literal(),
        ) {
            let text = format!("{before}${{NOT_SET_HERE:-{default}}}{after}");
            prop_assert_eq!(expand(&text, lookup), Ok(format!("{before}{default}{after}")));
        }
    }
}
