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
