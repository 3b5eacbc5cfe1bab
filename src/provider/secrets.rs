//! The secrets goldgate was configured with — API keys, and the values `${VAR}` reads into a
//! provider's headers or its program's environment — and their removal from every answer and
//! error before either leaves the provider layer.
//!
//! A secret is scrubbed as it is and in the forms a server or a program can cheaply turn it into:
//! any mix of upper and lower case, base64 (standard and URL-safe, padded or not, alone or inside a
//! longer base64 string such as a Basic credential), hexadecimal and percent-encoding. A value
//! shorter than [`MIN_SECRET_CHARS`] is not scrubbed: it would cut ordinary words out of answers,
//! and so out of what is scored; it is warned about when the provider file is loaded.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

use crate::error::Location;
use crate::provider::CallError;

/// The shortest value scrubbed. Real API keys are 20 characters or more; below 8, a value is
/// as likely a word an answer needs as a secret.
pub const MIN_SECRET_CHARS: usize = 8;

/// What stands where a secret was.
pub const REDACTED: &str = "[redacted]";

/// A set of secrets, kept as the strings to look for: every cheap form of each, ASCII
/// lower-cased so one search finds any case.
#[derive(Default)]
pub struct Secrets {
    needles: Vec<SecretString>,
}

impl Secrets {
    pub const fn new() -> Secrets {
        Secrets {
            needles: Vec::new(),
        }
    }

    /// Add a secret; `false` (and nothing added) when it is too short to scrub.
    pub fn add(&mut self, secret: &str) -> bool {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return false;
        }
        for form in forms(secret) {
            let needle = form.to_ascii_lowercase();
            if !self.needles.iter().any(|n| n.expose_secret() == needle) {
                self.needles.push(SecretString::from(needle));
            }
        }
        // Longest first, so that of two forms found at one place the whole one is redacted.
        self.needles
            .sort_by_key(|n| std::cmp::Reverse(n.expose_secret().len()));
        true
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every place a secret was found in replaced by [`REDACTED`]: overlapping or
    /// touching finds become one.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Cow::Owned(mut scrubbed) = self.scrub_once(text) else {
            return Cow::Borrowed(text);
        };
        // A redaction can complete a secret that begins or ends with what the marker ends or
        // begins with (`]…`): look again, a bounded number of times, since a secret that is part
        // of the marker itself would be found forever.
        for _ in 0..2 {
            match self.scrub_once(&scrubbed) {
                Cow::Owned(again) => scrubbed = again,
                Cow::Borrowed(_) => break,
            }
        }
        Cow::Owned(scrubbed)
    }

    fn scrub_once<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.needles.is_empty() {
            return Cow::Borrowed(text);
        }
        // ASCII lower-casing keeps every byte offset, so a find in `folded` is one in `text`, and
        // it lands on character boundaries because the needle is UTF-8 too.
        let folded = text.to_ascii_lowercase();
        let mut spans = Vec::new();
        for needle in &self.needles {
            let needle = needle.expose_secret();
            let step = needle.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            while let Some(at) = folded[from..].find(needle) {
                spans.push((from + at, from + at + needle.len()));
                from += at + step;
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut kept_to = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek()
                && next_start <= end
            {
                end = end.max(next_end);
                spans.next();
            }
            out.push_str(&text[kept_to..start]);
            out.push_str(REDACTED);
            kept_to = end;
        }
        out.push_str(&text[kept_to..]);
        Cow::Owned(out)
    }
}

/// Every form of `secret` that is searched for. Base64 inside a longer base64 string depends on
/// where the secret starts modulo 3 bytes; for each of the three alignments the characters that
/// encode the secret's bits alone are the same whatever surrounds it.
fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![
        secret.to_owned(),
        secret.to_lowercase(),
        secret.to_uppercase(),
        crate::text::hex(bytes),
        percent_encoded(bytes, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        // JavaScript's encodeURIComponent leaves a few more characters alone.
        percent_encoded(bytes, |b| {
            b.is_ascii_alphanumeric() || b"-._~!*'()".contains(&b)
        }),
        percent_encoded(bytes, |_| false),
        // A form body writes a space as `+`.
        percent_encoded(bytes, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            .replace("%20", "+"),
    ];
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(bytes));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let first = (8 * offset).div_ceil(6);
            let end = 8 * (offset + bytes.len()) / 6;
            forms.push(encoded[first..end].to_owned());
        }
    }
    forms
}

fn percent_encoded(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every secret this process was configured with. One set for all providers, not one each: an
/// answer can carry another provider's key (two providers behind one gateway, which sees both
/// keys), and what goldgate writes it writes for the whole run.
static CONFIGURED: RwLock<Secrets> = RwLock::new(Secrets::new());

/// The short secrets already warned about, so a provider built twice (`validate
/// --check-reachable`) warns once.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Remember a configured secret, `what` for the field `at` ("the value of OPENAI_API_KEY"), so
/// that every answer and error is scrubbed of it. One too short to scrub is warned about on
/// stderr instead.
pub fn register(secret: &str, at: Location, what: &str) {
    let added = CONFIGURED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .add(secret);
    if added {
        return;
    }
    let warning = format!(
        "warning: {at}: {what} is {} character(s) long, too short to be scrubbed: goldgate removes secrets of {MIN_SECRET_CHARS} characters or more from answers, errors and reports, so this one can appear in them\n  fix: if it is a secret, use one of {MIN_SECRET_CHARS} characters or more",
        secret.chars().count()
    );
    let first_time = WARNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(warning.clone());
    if first_time {
        eprintln!("{warning}");
    }
}

/// `text` scrubbed of every configured secret; the same string when it holds none.
pub fn scrub(text: String) -> String {
    let configured = CONFIGURED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match configured.scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(scrubbed) => scrubbed,
    }
}

/// The error with its message scrubbed of every configured secret.
pub fn scrub_error(mut err: CallError) -> CallError {
    err.message = scrub(std::mem::take(&mut err.message));
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets(values: &[&str]) -> Secrets {
        let mut s = Secrets::new();
        for v in values {
            s.add(v);
        }
        s
    }

    #[test]
    fn every_cheap_form_of_a_secret_is_redacted() {
        let key = "sk-Live/Key+42=ok?~~ x";
        let s = secrets(&[key]);
        let encoded = [
            key.to_owned(),
            key.to_uppercase(),
            key.to_lowercase(),
            "sK-lIvE/kEy+42=Ok?~~ X".to_owned(),
            STANDARD.encode(key),
            URL_SAFE.encode(key),
            STANDARD_NO_PAD.encode(key),
            URL_SAFE_NO_PAD.encode(key),
            crate::text::hex(key.as_bytes()),
            crate::text::hex(key.as_bytes()).to_uppercase(),
            "sk-Live%2FKey%2B42%3Dok%3F~~%20x".to_owned(),
            "sk-Live%2fKey%2b42%3dok%3f~~%20x".to_owned(),
            "sk-Live%2FKey%2B42%3Dok%3F~~+x".to_owned(),
        ];
        for form in &encoded {
            let text = format!("before {form} after");
            assert_eq!(
                s.scrub(&text),
                format!("before {REDACTED} after"),
                "the form {form}"
            );
        }
        // Every byte percent-encoded.
        let all: String = key.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(s.scrub(&all), REDACTED);
    }

    #[test]
    fn base64_of_a_secret_inside_a_longer_value_is_caught_at_each_alignment() {
        let key = "tok-7Hq2-Zz9/Lm";
        let s = secrets(&[key]);
        for prefix in ["", "u:", "ab:", "user:", "Bearer "] {
            for suffix in ["", "!", "&x=1"] {
                for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    let encoded = engine.encode(format!("{prefix}{key}{suffix}"));
                    let scrubbed = s.scrub(&encoded);
                    assert!(scrubbed.contains(REDACTED), "{prefix}|{suffix}: {encoded}");
                    // What is left encodes at most a character of the secret at either end.
                    let kept = scrubbed.replace(REDACTED, "");
                    assert!(kept.len() <= encoded.len() - 16, "{encoded} -> {scrubbed}");
                }
            }
        }
    }

    #[test]
    fn short_values_are_not_secrets_and_ordinary_text_is_kept() {
        let mut s = Secrets::new();
        assert!(!s.add("s3cret7"), "7 characters");
        assert!(!s.add(""));
        assert!(s.is_empty());
        assert_eq!(s.scrub("a s3cret7 word"), "a s3cret7 word");
        assert!(s.add("s3cret78"), "8 characters");
        let text = "The refund window is 30 days; contact support.";
        assert!(matches!(s.scrub(text), Cow::Borrowed(_)));
        assert_eq!(
            s.scrub("x s3cret78 y S3CRET78"),
            "x [redacted] y [redacted]"
        );
    }

    #[test]
    fn overlapping_and_adjacent_finds_make_one_redaction() {
        let s = secrets(&["abababab", "babababa-2"]);
        assert_eq!(s.scrub("xabababababx"), "x[redacted]x");
        assert_eq!(s.scrub("ababababbabababa-2!"), "[redacted]!");
        // Non-ASCII around and inside a secret: boundaries stay valid.
        let s = secrets(&["clé-très-secrète"]);
        assert_eq!(s.scrub("é CLé-TRèS-SECRèTE é"), "é [redacted] é");
        assert_eq!(s.scrub("ÉÉ clé-très-secrète"), "ÉÉ [redacted]");
    }

    #[test]
    fn the_configured_set_scrubs_answers_and_errors() {
        let key = "gg-unit-registry-8f3a2c";
        register(
            key,
            Location::file("p.toml").field("api_key_env"),
            "the value of K",
        );
        assert_eq!(scrub(format!("echo {key}")), "echo [redacted]");
        let plain = "nothing to hide".to_owned();
        let ptr = plain.as_ptr();
        let kept = scrub(plain);
        assert_eq!(kept.as_ptr(), ptr, "no copy when nothing matched");
        let err = scrub_error(CallError::new(
            crate::provider::ErrorKind::HttpStatus,
            format!("HTTP 401: bad key {}", key.to_uppercase()),
        ));
        assert_eq!(err.message, "HTTP 401: bad key [redacted]");
    }

    proptest! {
        #[test]
        fn no_form_survives_in_any_surrounding(
            key in "[ -~]{8,40}",
            before in "[ -~]{0,12}",
            after in "[ -~]{0,12}",
            which in 0usize..64,
        ) {
            let s = secrets(&[&key]);
            let all = forms(&key);
            let form = &all[which % all.len()];
            let text = format!("{before}{form}{after}");
            let scrubbed = s.scrub(&text);
            let folded = scrubbed.to_ascii_lowercase();
            for f in &all {
                prop_assert!(!folded.contains(&f.to_ascii_lowercase()), "{f} in {scrubbed}");
            }
            // Base64 of the secret inside any longer value.
            let encoded = STANDARD.encode(format!("{before}{key}{after}"));
            prop_assert!(s.scrub(&encoded).contains(REDACTED), "{encoded}");
        }
    }
}
