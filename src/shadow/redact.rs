//! Redaction of personal data and credentials in logged traffic, before any of it is written.
//!
//! A [`Redactor`] replaces each finding with a typed placeholder and counts it per [`Kind`]:
//!
//! | kind | placeholder | caught | missed, on purpose or by limitation |
//! | --- | --- | --- | --- |
//! | [`Kind::Key`] | `[key]` | `sk-…` (OpenAI, Anthropic `sk-ant-…`), AWS `AKIA…`/`ASIA…`, GitHub `ghp_…`/`gho_…`/`github_pat_…`, Slack `xox[bpoars]-…`, Google `AIza…`, Stripe `sk_live_…`, Hugging Face `hf_…`, GitLab `glpat-…`, JWTs, PEM private keys; the token after `Bearer ` or `Basic `, and after `api_key=` / `"password": ` and similar | a secret of no known shape written without such a cue; a `Bearer`/`Basic` token under 16 characters, or under 32 with no digit (so "bearer responsibilities" stays) |
//! | [`Kind::Email`] | `[email]` | ASCII addresses `local@domain.tld` | addresses with non-ASCII local parts or domains; obfuscated ones (`jane at example dot com`) |
//! | [`Kind::Iban`] | `[iban]` | two capital letters, two check digits, 11–30 more letters or digits, written in one piece or in groups of four, whose mod-97 check holds | lower-case IBANs; one run straight into a following capitalised word |
//! | [`Kind::Card`] | `[card]` | 13–19 digits starting 2–6 (the card networks' ranges), in one piece or in groups of 3–6 split by one kind of separator (space or dash), whose Luhn check holds | numbers that fail Luhn (so a random 16-digit order number is kept nine times in ten); one run straight into a longer run of digits |
//! | [`Kind::Phone`] | `[phone]` | international `+CC …` (8–15 digits), North American `(202) 555-0143` / `202-555-0143` / `202.555.0143` / `202 555 0143`, and national numbers with a trunk `0` (`020 7946 0958`, `06 12 34 56 78`, `0301234567`: 9–12 digits) | a plain run of digits that starts with neither `+` nor `0` (`2025550143`), a seven-digit local number (`555-0143`), `00`-prefixed international numbers without separators; see below |
//! | [`Kind::Custom`] | `[redacted]` | each regex from the configuration (only its group named `redact`, where it has one) | — |
//!
//! Phone numbers are the hard trade-off: every shape of a phone number is also the shape of
//! some ordinary number. Years, prices (`$1,299.99`, `49,90 €`), dates (`01/02/2024`, eight
//! digits), quantities and order numbers are kept by asking for a phone's marks — a leading `+`
//! or trunk `0`, or the 3-3-4 grouping of North American numbers — and a phone's length; a
//! number right after `#` (`order #0201234567`) or a letter is not a phone. The price is that
//! an unformatted number such as `2025550143` is missed, and a formatted 3-3-4 order number
//! (`123-456-7890`) is taken for a phone.
//!
//! Text that is JSON, or holds JSON (tool-call arguments, a tool's result), is searched as if
//! each JSON escape sequence in it (`\n`, `\r`, `\t`, `\b`, `\f`, `\"`, `\\`, `\/`, `\uXXXX`)
//! were blank space of the same length, so that an escape bounds a finding the way the
//! character it stands for would (`hi\n020 7946 0958` holds a phone number, though `n020` is
//! not one); what is replaced is cut from the text as written, never through an escape. An
//! escape inside an escape (`\\n`, JSON text in a JSON string) counts as one. The price is that
//! an escaped letter (`\u00e9`) bounds a finding too, and so does a backslash sequence outside
//! JSON that looks like an escape (the `\n` of `C:\new`): more is taken, never less.
//!
//! Where two findings overlap, the kind earlier in [`Kind::ALL`] wins (a key before an e-mail
//! address, an IBAN before the card number its digits may also form). Each finding is checked
//! where it was found; a candidate that fails its check (Luhn, mod 97, length) is not searched
//! again for a shorter finding inside it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::{Regex, RegexSet};
use serde::Serialize;

use crate::error::Error;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Key,
    Email,
    Iban,
    Card,
    Phone,
    /// A match of a regex from the configuration.
    Custom,
}

impl Kind {
    /// Every kind, in the order overlapping findings are decided in.
    pub const ALL: [Kind; 6] = [
        Kind::Key,
        Kind::Email,
        Kind::Iban,
        Kind::Card,
        Kind::Phone,
        Kind::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Email => "email",
            Kind::Iban => "iban",
            Kind::Card => "card",
            Kind::Phone => "phone",
            Kind::Custom => "custom",
        }
    }

    /// What stands where a finding of this kind was.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Key => "[key]",
            Kind::Email => "[email]",
            Kind::Iban => "[iban]",
            Kind::Card => "[card]",
            Kind::Phone => "[phone]",
            Kind::Custom => "[redacted]",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many findings of each kind were replaced. Serialised as `{"key": n, "email": n, …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u64; 6]);

impl Counts {
    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every kind with its count, zeros included, in [`Kind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, u64)> + '_ {
        Kind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    fn add(&mut self, kind: Kind) {
        self.0[kind.index()] += 1;
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Kind::ALL.len()))?;
        for (kind, n) in self.iter() {
            map.serialize_entry(kind.as_str(), &n)?;
        }
        map.end()
    }
}

/// What a candidate must pass besides its regex.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// The regex is the whole test.
    None,
    /// A token after a cue word (`Bearer`, `Basic`): long, or with a digit in it.
    Token,
    Luhn,
    Mod97,
    /// A phone number with at least `min` and at most `max` digits, standing alone.
    Phone {
        min: usize,
        max: usize,
    },
}

struct Pattern {
    kind: Kind,
    regex: Regex,
    check: Check,
    /// The regex has a group named `redact`: only it is replaced.
    group: bool,
}

/// The built-in patterns: (kind, regex, check). A group named `redact` is what is replaced.
const BUILT_IN: &[(Kind, &str, Check)] = &[
    // Keys of known shapes. `\b` in front keeps `task-…` from being read as `sk-…`.
    (Kind::Key, r"\bsk-[A-Za-z0-9_\-]{20,}", Check::None),
    (
        Kind::Key,
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        Check::None,
    ),
    (Kind::Key, r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", Check::None),
    (
        Kind::Key,
        r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        Check::None,
    ),
    (Kind::Key, r"\bxox[bpoars]-[A-Za-z0-9\-]{10,}", Check::None),
    (Kind::Key, r"\bAIza[0-9A-Za-z_\-]{35}", Check::None),
    (
        Kind::Key,
        r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
        Check::None,
    ),
    (Kind::Key, r"\bhf_[A-Za-z0-9]{30,}\b", Check::None),
    (Kind::Key, r"\bglpat-[A-Za-z0-9_\-]{20,}", Check::None),
    (
        Kind::Key,
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        Check::None,
    ),
    (
        Kind::Key,
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        Check::None,
    ),
    (
        Kind::Key,
        r"(?i:\bbearer)\s+(?P<redact>[A-Za-z0-9._~+/\-]{16,}=*)",
        Check::Token,
    ),
    (
        Kind::Key,
        r"(?i:\bbasic)\s+(?P<redact>[A-Za-z0-9+/]{16,}={0,2})",
        Check::Token,
    ),
    (
        Kind::Key,
        r#"(?i:\b(?:api[_\-]?key|access[_\-]?token|auth[_\-]?token|client[_\-]?secret|secret[_\-]?key|password|passwd))["']?\s*[:=]\s*["']?(?P<redact>[^\s"',;]{8,})"#,
        Check::None,
    ),
    (
        Kind::Email,
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b",
        Check::None,
    ),
    (
        Kind::Iban,
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        Check::Mod97,
    ),
    (Kind::Card, r"[0-9](?:[ \-]?[0-9]){12,18}", Check::Luhn),
    // International: a `+`, then digits in groups, an area code perhaps in parentheses.
    (
        Kind::Phone,
        r"\+[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}",
        Check::Phone { min: 8, max: 15 },
    ),
    // North American: 3-3-4, the last group always set apart.
    (
        Kind::Phone,
        r"\(?[2-9][0-9]{2}\)?[ .\-]?[2-9][0-9]{2}[ .\-][0-9]{4}",
        Check::Phone { min: 10, max: 10 },
    ),
    // National with a trunk `0`.
    (
        Kind::Phone,
        r"\(?0[1-9][0-9]{0,4}\)?(?:[ .\-/]?[0-9]{2,8}){1,4}",
        Check::Phone { min: 9, max: 12 },
    ),
];

/// Finds personal data and credentials in text and replaces them with placeholders. Counts
/// what it replaced ([`Redactor::counts`]) across every call, from any thread.
pub struct Redactor {
    patterns: Vec<Pattern>,
    /// Every pattern at once: one pass tells which patterns to run, and most text (no finding)
    /// costs that one pass.
    set: RegexSet,
    counts: [AtomicU64; 6],
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .field("counts", &self.counts())
            .finish()
    }
}

impl Redactor {
    /// The built-in patterns plus `custom` regexes (from the configuration), each replaced by
    /// `[redacted]`. A custom regex that does not compile, or that matches the empty string (it
    /// would put a placeholder between every two characters), is an error naming it.
    pub fn new(custom: &[String]) -> Result<Redactor, Error> {
        let mut patterns: Vec<Pattern> = BUILT_IN
            .iter()
            .map(|&(kind, source, check)| {
                let regex = Regex::new(source).expect("built-in patterns compile");
                Pattern {
                    kind,
                    group: has_redact_group(&regex),
                    regex,
                    check,
                }
            })
            .collect();
        for (i, source) in custom.iter().enumerate() {
            let bad = |why: String| {
                Error::Usage(format!(
                    "redaction pattern {} `{source}` {why}\n  fix: write it in the syntax of Rust's regex crate (no look-around or back-references); to replace only part of a match, name that part `(?P<redact>…)`",
                    i + 1
                ))
            };
            let regex = Regex::new(source).map_err(|e| {
                bad(format!(
                    "is not a valid regex: {}",
                    crate::text::one_line(&e.to_string())
                ))
            })?;
            if regex.is_match("") {
                return Err(bad("matches the empty string".to_owned()));
            }
            patterns.push(Pattern {
                kind: Kind::Custom,
                group: has_redact_group(&regex),
                regex,
                check: Check::None,
            });
        }
        let set = RegexSet::new(patterns.iter().map(|p| p.regex.as_str())).map_err(|e| {
            Error::Usage(format!(
                "the redaction patterns do not compile together: {e}"
            ))
        })?;
        Ok(Redactor {
            patterns,
            set,
            counts: Default::default(),
        })
    }

    /// `text` with every finding replaced by its placeholder; the same string, borrowed, when
    /// there is none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut counts = Counts::default();
        let out = self.redact_counting(text, &mut counts);
        for (kind, n) in counts.iter() {
            if n > 0 {
                self.counts[kind.index()].fetch_add(n, Ordering::Relaxed);
            }
        }
        out
    }

    /// Redact a string in place; true if anything was replaced.
    pub fn redact_string(&self, text: &mut String) -> bool {
        match self.redact(text) {
            Cow::Borrowed(_) => false,
            Cow::Owned(redacted) => {
                *text = redacted;
                true
            }
        }
    }

    /// Redact every string inside `value` in place: string values, and object keys too (a key
    /// can be an e-mail address as well as a value can).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                self.redact_string(s);
            }
            Value::Array(values) => values.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let renamed = map
                    .keys()
                    .any(|k| self.set.is_match(Probe::new(k).as_str()));
                if renamed {
                    let old = std::mem::take(map);
                    for (key, mut v) in old {
                        self.redact_json(&mut v);
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                } else {
                    map.values_mut().for_each(|v| self.redact_json(v));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// What every call so far replaced.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for kind in Kind::ALL {
            counts.0[kind.index()] = self.counts[kind.index()].load(Ordering::Relaxed);
        }
        counts
    }

    fn redact_counting<'a>(&self, text: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        // Patterns and checks see the probe; the ranges they find are cut from `text`. Both
        // have the same length and the same characters outside escapes, so a range is on a
        // character boundary of both.
        let probe = Probe::new(text);
        let seen = probe.as_str();
        let matched = self.set.matches(seen);
        if !matched.matched_any() {
            return Cow::Borrowed(text);
        }
        // Findings in priority order (patterns are listed so); each one overlapping a finding
        // already taken is dropped.
        let mut taken: Vec<(usize, usize, Kind)> = Vec::new();
        for i in matched.iter() {
            let pattern = &self.patterns[i];
            let mut take = |start: usize, end: usize| {
                if start < end && passes(pattern.check, seen, start, end) {
                    let (start, end) = probe.widen(start, end);
                    if !taken.iter().any(|&(s, e, _)| start < e && s < end) {
                        taken.push((start, end, pattern.kind));
                    }
                }
            };
            if pattern.group {
                for caps in pattern.regex.captures_iter(seen) {
                    if let Some(m) = caps.name("redact") {
                        take(m.start(), m.end());
                    }
                }
            } else {
                for m in pattern.regex.find_iter(seen) {
                    take(m.start(), m.end());
                }
            }
        }
        if taken.is_empty() {
            return Cow::Borrowed(text);
        }
        taken.sort_unstable_by_key(|&(start, _, _)| start);
        let mut out = String::with_capacity(text.len());
        let mut kept_to = 0;
        for (start, end, kind) in taken {
            out.push_str(&text[kept_to..start]);
            out.push_str(kind.placeholder());
            counts.add(kind);
            kept_to = end;
        }
        out.push_str(&text[kept_to..]);
        Cow::Owned(out)
    }
}

/// A text as the patterns see it: each JSON escape sequence blanked out with as many spaces as
/// it has bytes, so that it bounds a finding as the character it stands for would, and every
/// other byte where it was.
struct Probe<'a> {
    text: Cow<'a, str>,
    /// The byte ranges blanked, in order, none overlapping the next.
    escapes: Vec<(usize, usize)>,
}

impl<'a> Probe<'a> {
    /// Text without a backslash (most text) is its own probe, borrowed.
    fn new(text: &'a str) -> Probe<'a> {
        let Some(first) = text.find('\\') else {
            return Probe {
                text: Cow::Borrowed(text),
                escapes: Vec::new(),
            };
        };
        let bytes = text.as_bytes();
        let mut escapes = Vec::new();
        let mut at = first;
        loop {
            let len = escape_len(&bytes[at..]);
            if len > 0 {
                escapes.push((at, at + len));
            }
            // A backslash left as it is ends the run it begins: the next starts after it.
            let next = at + len.max(1);
            match text.get(next..).and_then(|rest| rest.find('\\')) {
                Some(off) => at = next + off,
                None => break,
            }
        }
        if escapes.is_empty() {
            return Probe {
                text: Cow::Borrowed(text),
                escapes,
            };
        }
        let mut blanked = bytes.to_vec();
        for &(start, end) in &escapes {
            blanked[start..end].fill(b' ');
        }
        let blanked =
            String::from_utf8(blanked).expect("only ASCII bytes are blanked, with ASCII spaces");
        Probe {
            text: Cow::Owned(blanked),
            escapes,
        }
    }

    fn as_str(&self) -> &str {
        &self.text
    }

    /// `start..end`, widened to take in whole any escape it would cut through (a custom
    /// pattern may begin or end with blank space): what it is replaced with never leaves half
    /// an escape behind.
    fn widen(&self, start: usize, end: usize) -> (usize, usize) {
        let around = |at: usize| {
            let after = self.escapes.partition_point(|&(s, _)| s < at);
            after
                .checked_sub(1)
                .map(|i| self.escapes[i])
                .filter(|&(_, e)| at < e)
        };
        (
            around(start).map_or(start, |(s, _)| s),
            around(end).map_or(end, |(_, e)| e),
        )
    }
}

/// How many bytes of the escape `rest` begins with (it begins with a backslash) to blank: a run
/// of backslashes with the escaped character after it, when the run escapes it (`\n`), or when
/// the run is an escaped backslash escaping it once more (`\\n`, JSON text inside a JSON
/// string: a `"` after an even run is the end of a string, not escaped, and stays); the
/// backslashes alone when no such character follows, but whole pairs only (`\\`); a lone
/// backslash before anything else (`\d`, `C:\Users`) is no escape, 0.
fn escape_len(rest: &[u8]) -> usize {
    let run = rest.iter().take_while(|&&b| b == b'\\').count();
    let odd = run % 2 == 1;
    match rest.get(run) {
        Some(b'n' | b'r' | b't' | b'b' | b'f' | b'/') => run + 1,
        Some(b'"') if odd => run + 1,
        Some(b'u')
            if rest
                .get(run + 1..run + 5)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
        {
            run + 5
        }
        _ => run - usize::from(odd),
    }
}

fn has_redact_group(regex: &Regex) -> bool {
    regex.capture_names().any(|n| n == Some("redact"))
}

fn passes(check: Check, text: &str, start: usize, end: usize) -> bool {
    let found = &text[start..end];
    match check {
        Check::None => true,
        Check::Token => {
            let token = found.trim_end_matches('=');
            token.len() >= 32 || token.bytes().any(|b| b.is_ascii_digit())
        }
        Check::Luhn => alone(text, start, end) && is_card(found),
        Check::Mod97 => is_iban(found),
        Check::Phone { min, max } => {
            let digits = found.bytes().filter(u8::is_ascii_digit).count();
            (min..=max).contains(&digits)
                && alone(text, start, end)
                && !text[..start].ends_with('#')
                && balanced(found)
        }
    }
}

/// The number at `start..end` is not part of a longer word or number: no letter, digit or `_`
/// touches it, and no separator leads on to another digit (`12 020 7946 0958` is not a phone
/// number followed by nothing, but a longer number).
fn alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().rev();
    let after = text[end..].chars();
    let touches = |mut side: std::iter::Rev<std::str::Chars<'_>>| match side.next() {
        Some(c) if c.is_alphanumeric() || c == '_' || c == '+' => true,
        Some(' ' | '-' | '.' | '/') => side.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    let touches_after = |mut side: std::str::Chars<'_>| match side.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some('-' | '/') => side.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    !touches(before) && !touches_after(after)
}

/// Parentheses in a phone number come as one pair, opened first.
fn balanced(found: &str) -> bool {
    let open = found.matches('(').count();
    let close = found.matches(')').count();
    open == close && open <= 1 && found.find('(') <= found.find(')')
}

/// 13–19 digits of a card network (first digit 2–6), one kind of separator between groups of
/// 3–6 digits, and the Luhn check holds.
fn is_card(found: &str) -> bool {
    let digits: Vec<u8> = found
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if !(13..=19).contains(&digits.len()) || !(2..=6).contains(&digits[0]) {
        return false;
    }
    let separators: Vec<u8> = found.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if let Some(&first) = separators.first() {
        if separators.iter().any(|&s| s != first) {
            return false;
        }
        if found
            .split(char::from(first))
            .any(|group| !(3..=6).contains(&group.len()))
        {
            return false;
        }
    }
    luhn(&digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 15–34 characters (spaces aside) whose ISO 13616 check holds: the first four moved to the end,
/// letters as 10–35, the number mod 97 is 1.
fn is_iban(found: &str) -> bool {
    let compact: Vec<u8> = found.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&[]).unwrap()
    }

    /// Each planted finding becomes its placeholder, and nothing else in the text changes.
    #[track_caller]
    fn replaced(r: &Redactor, planted: &str, kind: Kind) {
        let text = format!("before {planted} after.");
        let want = format!("before {} after.", kind.placeholder());
        assert_eq!(r.redact(&text), want, "{planted}");
    }

    #[track_caller]
    fn kept(r: &Redactor, text: &str) {
        assert!(
            matches!(r.redact(text), Cow::Borrowed(_)),
            "{text} -> {}",
            r.redact(text)
        );
    }

    #[test]
    fn planted_emails_phones_cards_ibans_and_keys_are_replaced() {
        let r = redactor();
        for email in [
            "jane.doe@example.com",
            "j+tag@mail.example.co.uk",
            "X_Y-9@sub-domain.example.org",
        ] {
            replaced(&r, email, Kind::Email);
        }
        for phone in [
            "+44 20 7946 0958",
            "+1 (202) 555-0143",
            "+33 6 12 34 56 78",
            "+4930123456",
            "(202) 555-0143",
            "202-555-0143",
            "202.555.0143",
            "020 7946 0958",
            "06 12 34 56 78",
            "030/12345678",
            "07700900123",
        ] {
            replaced(&r, phone, Kind::Phone);
        }
        for card in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "3782 822463 10005",
        ] {
            replaced(&r, card, Kind::Card);
        }
        for iban in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"] {
            replaced(&r, iban, Kind::Iban);
        }
        for key in [
            "sk-proj-4fJ2kLm9Qx7Rt1Vw3Yz5Ab8Cd",
            "sk-ant-api03-Zq8Wx7Ve6Ub5Ta4Sb3Rc2Qd1Pe0",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "xoxb-1234567890-abcdefghij",
            "hf_abcdefghijklmnopqrstuvwxyzABCDEF",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl",
        ] {
            replaced(&r, key, Kind::Key);
        }
        // After a cue, only the token goes.
        assert_eq!(
            r.redact("Authorization: Bearer 3f9a0c1d2e4b5a6978e8d7c6b5a49382"),
            "Authorization: Bearer [key]"
        );
        assert_eq!(
            r.redact(r#"{"api_key": "abc123secretvalue"}"#),
            r#"{"api_key": "[key]"}"#
        );
        assert_eq!(r.redact("password=hunter2hunter2"), "password=[key]");
    }

    #[test]
    fn near_misses_are_kept() {
        let r = redactor();
        for text in [
            // Invalid Luhn, otherwise a card's shape.
            "card 4111 1111 1111 1112 declined",
            "4111111111111112",
            // Years, prices, dates, quantities, versions.
            "In 2024 the price rose from $1,299.99 to $1,499.00 (49,90 € in Paris).",
            "Delivered on 01/02/2024 and 2024-03-15, 12:30.",
            "We shipped 1500000 units; version 10.2.3; pi is 3.14159265358979.",
            // Order numbers.
            "Your order #123456789 and order #0201234567 and ORD-2024-000123 are on the way.",
            "Invoice 2025550143 is paid.",
            // Word-like cues without a token.
            "The bearer responsibilities are listed; basic arithmetic applies.",
            "Email us at the front desk; call reception.",
            // A mod-97 failure in an IBAN's shape.
            "DE89 3704 0044 0532 0130 01",
            // `sk-` inside a word, too short a key.
            "task-force and sk-short",
        ] {
            kept(&r, text);
        }
    }

    #[test]
    fn several_findings_in_one_text_are_counted_per_kind() {
        let r = redactor();
        let text = "Mail jane@example.com or bob@example.org, call +44 20 7946 0958, \
                    pay with 4111 1111 1111 1111, key sk-proj-4fJ2kLm9Qx7Rt1Vw3Yz5Ab8Cd.";
        assert_eq!(
            r.redact(text),
            "Mail [email] or [email], call [phone], pay with [card], key [key]."
        );
        let counts = r.counts();
        assert_eq!(counts.get(Kind::Email), 2);
        assert_eq!(counts.get(Kind::Phone), 1);
        assert_eq!(counts.get(Kind::Card), 1);
        assert_eq!(counts.get(Kind::Key), 1);
        assert_eq!(counts.total(), 5);
        assert_eq!(
            serde_json::to_value(counts).unwrap(),
            serde_json::json!({"key": 1, "email": 2, "iban": 0, "card": 1, "phone": 1, "custom": 0})
        );
    }

    #[test]
    fn overlapping_findings_go_to_the_earlier_kind() {
        let r = redactor();
        // An IBAN's digits could also pass as a card or a phone: one placeholder, the IBAN's.
        assert_eq!(r.redact("IBAN GB82WEST12345698765432."), "IBAN [iban].");
        // `token` alone is no cue: what follows is an address.
        assert_eq!(r.redact("token=abcd1234@example.com"), "token=[email]");
        assert_eq!(
            r.redact("api_key: jane@example.com"),
            "api_key: [key]",
            "the cue makes it a key"
        );
    }

    #[test]
    fn custom_patterns_are_redacted_and_bad_ones_are_named() {
        let r = Redactor::new(&[
            r"CUST-[0-9]{6}".to_owned(),
            r"patient (?P<redact>[A-Z][a-z]+)".to_owned(),
        ])
        .unwrap();
        assert_eq!(
            r.redact("CUST-123456 saw patient Smith"),
            "[redacted] saw patient [redacted]"
        );
        assert_eq!(r.counts().get(Kind::Custom), 2);

        let e = Redactor::new(&["ok".to_owned(), "(unclosed".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("redaction pattern 2 `(unclosed`") && e.contains("not a valid regex"),
            "{e}"
        );
        let e = Redactor::new(&["x*".to_owned()]).unwrap_err().to_string();
        assert!(e.contains("`x*` matches the empty string"), "{e}");
    }

    #[test]
    fn every_string_in_a_json_value_is_redacted_in_place() {
        let r = redactor();
        let mut v = serde_json::json!({
            "user": "jane@example.com",
            "nested": [{"phone": "+44 20 7946 0958", "n": 4111111111111111_u64}, "plain"],
            "bob@example.org": true,
        });
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "user": "[email]",
                // Numbers are not text: a card number logged as a JSON number stays.
                "nested": [{"phone": "[phone]", "n": 4111111111111111_u64}, "plain"],
                "[email]": true,
            })
        );
    }

    /// Each text of `(text, redacted)` is redacted to exactly the other.
    #[track_caller]
    fn redacts_to(r: &Redactor, cases: &[(&str, &str)]) {
        for &(text, want) in cases {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn json_escapes_bound_findings() {
        let r = redactor();
        let text = r#"{"note":"hi\n020 7946 0958\nsk-proj-Abc123Def456Ghi789Jkl012Mno345\n4111 1111 1111 1111\n+44 20 7946 0958"}"#;
        let out = r.redact(text);
        assert_eq!(out, r#"{"note":"hi\n[phone]\n[key]\n[card]\n[phone]"}"#);
        for planted in ["7946", "0958", "sk-proj", "Abc123", "4111", "+44"] {
            assert!(!out.contains(planted), "{planted} survives in {out}");
        }
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(parsed["note"], "hi\n[phone]\n[key]\n[card]\n[phone]");
        let counts = r.counts();
        assert_eq!(counts.get(Kind::Phone), 2);
        assert_eq!(counts.get(Kind::Key), 1);
        assert_eq!(counts.get(Kind::Card), 1);
        assert_eq!(counts.total(), 4);
    }

    #[test]
    fn escapes_around_emails_keys_ibans_and_cards_stay_whole() {
        let r = redactor();
        redacts_to(
            &r,
            &[
                // A quote before an address: the address goes, both escapes stay.
                (r#"to \"bob@example.com\"."#, r#"to \"[email]\"."#),
                (r#"{\"to\":\"bob@example.com\"}"#, r#"{\"to\":\"[email]\"}"#),
                (r"a\nbob@example.com\nb", r"a\n[email]\nb"),
                (r"\tjane.doe@example.com\r\n", r"\t[email]\r\n"),
                (r"\u0022bob@example.com\u0022", r"\u0022[email]\u0022"),
                (r"mailto:\/\/bob@example.com\/", r"mailto:\/\/[email]\/"),
                // Keys.
                (r#"\"sk-proj-4fJ2kLm9Qx7Rt1Vw3Yz5Ab8Cd\""#, r#"\"[key]\""#),
                (r"id\nAKIAIOSFODNN7EXAMPLE\n", r"id\n[key]\n"),
                (
                    r"\tghp_0123456789abcdefghijABCDEFGHIJ012345\t",
                    r"\t[key]\t",
                ),
                (
                    r"Authorization: Bearer\t3f9a0c1d2e4b5a6978e8d7c6b5a49382\n",
                    r"Authorization: Bearer\t[key]\n",
                ),
                (
                    r#"{\"api_key\": \"abc123secretvalue\"}"#,
                    r#"{\"api_key\": \"[key]\"}"#,
                ),
                // IBANs.
                (r"IBAN:\nDE89 3704 0044 0532 0130 00\n", r"IBAN:\n[iban]\n"),
                (r"\u00e9GB82WEST12345698765432\t", r"\u00e9[iban]\t"),
                // Cards.
                (r"card\n4111111111111111\nexp", r"card\n[card]\nexp"),
                (r"\u00204111 1111 1111 1111\\", r"\u0020[card]\\"),
                (r"\b5555555555554444\f", r"\b[card]\f"),
            ],
        );
    }

    #[test]
    fn an_escaped_letter_bounds_a_phone_number() {
        let r = redactor();
        redacts_to(
            &r,
            &[
                // The escape's hex digits are no part of the number.
                (r"caf\u00e9 020 7946 0958", r"caf\u00e9 [phone]"),
                (r"caf\u00e9020 7946 0958", r"caf\u00e9[phone]"),
                (r"caf\u00e9+44 20 7946 0958!", r"caf\u00e9[phone]!"),
                (r"+44 20 7946 0958\u00e9", r"[phone]\u00e9"),
            ],
        );
        // Non-ASCII written as itself keeps its byte offsets too.
        assert_eq!(
            r.redact(r"café\n020 7946 0958 — Zoë\tbob@example.com"),
            r"café\n[phone] — Zoë\t[email]"
        );
    }

    #[test]
    fn backslashes_that_are_no_escapes_are_kept() {
        let r = redactor();
        for text in [
            r"C:\Users\bob\files\new\table.txt",
            r"C:\Program Files\App\bin\app.exe --port 8080",
            r"\\server\share\2024\report.docx",
            r"regex \d{3}-\d{4} and \w+@\w+ and a trailing \",
            r"\u12 is not an escape, \x41 neither",
        ] {
            kept(&r, text);
        }
        // Only the finding changes; the rest of the path stays as written.
        assert_eq!(
            r.redact(r"C:\Users\jane\notes.txt belongs to jane@example.com"),
            r"C:\Users\jane\notes.txt belongs to [email]"
        );
        // An escaped backslash before a letter: the letter is text, not an escape.
        assert_eq!(
            r.redact(r"C:\\Users\\bob\\020 7946 0958"),
            r"C:\\Users\\bob\\[phone]"
        );
    }

    #[test]
    fn escapes_in_json_inside_json_count_once() {
        let r = redactor();
        // A tool's result, JSON, as a string in a JSON body: `\\n` and `\\\"` are escapes of
        // escapes.
        let text = r#"{"result":"{\"note\":\"hi\\n020 7946 0958\\n\\\"bob@example.com\\\"\"}"}"#;
        let out = r.redact(text);
        assert_eq!(
            out,
            r#"{"result":"{\"note\":\"hi\\n[phone]\\n\\\"[email]\\\"\"}"}"#
        );
        let outer: serde_json::Value = serde_json::from_str(&out).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(outer["result"].as_str().unwrap()).unwrap();
        assert_eq!(inner["note"], "hi\n[phone]\n\"[email]\"");
        // A `"` after an escaped backslash ends the string; a match next to it leaves it.
        assert_eq!(
            r.redact(r#"{"dir":"C:\\","to":"bob@example.com"}"#),
            r#"{"dir":"C:\\","to":"[email]"}"#
        );
    }

    #[test]
    fn a_match_never_cuts_through_an_escape() {
        // Custom patterns may begin or end with blank space, which an escape is in the probe.
        let r = Redactor::new(&[r"\sCUST-[0-9]{6}\s".to_owned()]).unwrap();
        let out = r.redact(r#"{"id":"a\nCUST-123456\tb","x":"\\\"CUST-654321\\\""}"#);
        assert_eq!(out, r#"{"id":"a[redacted]b","x":"[redacted]"}"#);
        serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
        assert_eq!(r.counts().get(Kind::Custom), 2);
        // Without escapes the probe is the text: borrowed, nothing blanked.
        let probe = Probe::new("plain text, no backslash");
        assert!(matches!(probe.text, Cow::Borrowed(_)) && probe.escapes.is_empty());
        let probe = Probe::new(r#"a\nb\u00e9c\\d\"e\x"#);
        assert_eq!(probe.as_str(), r"a  b      c  d  e\x");
        assert_eq!(probe.widen(2, 3), (1, 3));
        assert_eq!(probe.widen(4, 6), (4, 10));
        assert_eq!(probe.widen(0, 1), (0, 1));
    }

    #[test]
    fn redact_json_and_redact_string_agree() {
        let value = serde_json::json!({
            "note": "hi\n020 7946 0958\nsk-proj-Abc123Def456Ghi789Jkl012Mno345",
            "id\nsk-proj-4fJ2kLm9Qx7Rt1Vw3Yz5Ab8Cd": ["\"bob@example.com\"", "4111 1111 1111 1111"],
            "plain": "C:\\Users\\bob",
        });
        let (by_value, by_text) = (redactor(), redactor());
        let mut redacted = value.clone();
        by_value.redact_json(&mut redacted);
        let mut text = value.to_string();
        assert!(by_text.redact_string(&mut text));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            redacted
        );
        assert_eq!(by_value.counts(), by_text.counts());
        assert_eq!(by_value.counts().total(), 5);

        // A key holding JSON text (escapes as written) is redacted too.
        let r = redactor();
        let mut v = serde_json::json!({r"id\nsk-proj-4fJ2kLm9Qx7Rt1Vw3Yz5Ab8Cd": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({r"id\n[key]": 1}));
        assert_eq!(r.counts().get(Kind::Key), 1);
    }

    #[test]
    fn checks_hold_on_known_values() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
        assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(is_iban("NL91ABNA0417164300"));
        assert!(!is_iban("NL91ABNA0417164301"));
        assert!(!is_card("1234 5678 9012 3452"), "1 is no card network");
        assert!(!is_card("4111 1111-1111 1111"), "mixed separators");
    }
}
