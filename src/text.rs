//! Small text helpers shared by the scorers and the reference answerers: sentence splitting and
//! content-word tokens.

/// Words that carry no content: matching on them would say every sentence answers every question.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "get", "got", "had", "has", "have", "he", "her", "here", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "may", "me", "might", "more", "most", "much",
    "must", "my", "of", "on", "once", "only", "or", "other", "our", "out", "over", "she", "should",
    "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Split text into sentences at `.`, `!` or `?` followed by whitespace, and at line breaks.
/// Decimal points (`2.5`) and abbreviations without a following space stay inside.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let boundary = match b {
            b'\n' => Some(i),
            b'.' | b'!' | b'?' => bytes
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_whitespace())
                .then_some(i + 1),
            _ => None,
        };
        if let Some(end) = boundary
            && end > start
        {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// Lower-cased alphanumeric words, with a light plural strip so "refunds" meets "refund".
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            normalise(w)
        })
}

fn normalise(w: String) -> String {
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_owned()
    } else {
        w
    }
}

/// Content words: [`words`] without stopwords.
pub fn content_words(text: &str) -> impl Iterator<Item = String> + '_ {
    words(text).filter(|w| !is_stopword(w))
}

/// Words that [`STOPWORDS`] keeps but a claim's support must not rest on: the negations (which
/// [`negations`] reads on their own) and the pieces of contractions that tokenised text leaves
/// standing alone ("it 's", "did n't", "did nt", "I 've").
const FUNCTION_WORDS: &[&str] = &[
    "cannot", "d", "ll", "m", "neither", "never", "no", "nobody", "none", "nor", "not", "nothing",
    "nowhere", "nt", "re", "s", "t", "ve", "without",
];

/// [`is_stopword`] or another function word: what a claim's support is not measured on.
pub fn is_function_word(word: &str) -> bool {
    is_stopword(word) || FUNCTION_WORDS.binary_search(&word).is_ok()
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Lower-cased word and number tokens for matching a claim against a context. Unlike [`words`],
/// a number keeps its decimal point and thousands separators ("2.5", "2,500" stay whole, then
/// are normalised by [`normalise_number`]), and contractions are resolved: "n't" forms are dropped
/// (they are function words; [`has_negation`] keeps their meaning), "'s", "'re", "'ll", "'ve",
/// "'d", "'m" are cut off. No stemming and no stopword removal here.
pub fn match_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let inside = if c.is_alphanumeric() {
            true
        } else if is_apostrophe(c) {
            prev.is_some_and(char::is_alphabetic) && next.is_some_and(char::is_alphabetic)
        } else if c == '.' || c == ',' {
            prev.is_some_and(|p| p.is_ascii_digit()) && next.is_some_and(|n| n.is_ascii_digit())
        } else {
            false
        };
        if inside && c.is_ascii() {
            cur.push(c.to_ascii_lowercase());
        } else if inside {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            push_token(&mut out, std::mem::take(&mut cur));
        }
        prev = Some(c);
    }
    if !cur.is_empty() {
        push_token(&mut out, cur);
    }
    out
}

fn push_token(out: &mut Vec<String>, token: String) {
    if token.chars().any(|c| c.is_ascii_digit()) {
        out.push(normalise_number(&token));
        return;
    }
    let Some(apos) = token.find(is_apostrophe) else {
        out.push(token);
        return;
    };
    let (base, rest) = token.split_at(apos);
    let suffix = &rest[rest.chars().next().map_or(0, char::len_utf8)..];
    match suffix {
        "t" if base.ends_with('n') => {}
        "s" | "re" | "ll" | "ve" | "d" | "m" => out.push(base.to_owned()),
        _ => out.push(token.replace(is_apostrophe, "")),
    }
}

/// One spelling per number: thousands separators dropped ("2,500" → "2500"), trailing decimal
/// zeros and leading zeros dropped ("2.50" → "2.5", "08" → "8"), a unit or ordinal suffix cut
/// ("20th" → "20", "1990s" → "1990", "5km" → "5"). Tokens that mix digits and letters otherwise
/// ("mp3", "b2b") are codes and stay as they are.
pub fn normalise_number(token: &str) -> String {
    let digits_end = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(token.len());
    let (num, suffix) = token.split_at(digits_end);
    if num.is_empty() || suffix.chars().any(|c| !c.is_alphabetic()) {
        return token.to_owned();
    }
    let mut groups = num.split(',');
    let first = groups.next().unwrap_or_default();
    let rest: Vec<&str> = groups.collect();
    let thousands = !rest.is_empty()
        && !first.is_empty()
        && first.len() <= 3
        && !first.contains('.')
        && rest.iter().enumerate().all(|(i, g)| {
            let int = g.split('.').next().unwrap_or_default();
            int.len() == 3
                && int.bytes().all(|b| b.is_ascii_digit())
                && (i + 1 == rest.len() || !g.contains('.'))
        });
    let mut n = if thousands {
        num.replace(',', "")
    } else if rest.is_empty() {
        num.to_owned()
    } else {
        // "1,2" is no thousands grouping: keep it verbatim, it then only matches itself.
        return num.to_owned();
    };
    if let Some(dot) = n.find('.') {
        let trimmed = n.trim_end_matches('0').trim_end_matches('.').len().max(dot);
        n.truncate(trimmed);
    }
    let int_start = n.find(|c: char| c != '0').unwrap_or(n.len());
    let keep_from = if n[int_start..].starts_with('.') || int_start == n.len() {
        int_start.saturating_sub(1)
    } else {
        int_start
    };
    n[keep_from..].to_owned()
}

/// The digits of a number spelt as a word ("three" → "3"), for the small numbers prose writes out.
pub fn number_word(word: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("eight", "8"),
        ("eighteen", "18"),
        ("eighty", "80"),
        ("eleven", "11"),
        ("fifteen", "15"),
        ("fifty", "50"),
        ("five", "5"),
        ("forty", "40"),
        ("four", "4"),
        ("fourteen", "14"),
        ("nine", "9"),
        ("nineteen", "19"),
        ("ninety", "90"),
        ("one", "1"),
        ("seven", "7"),
        ("seventeen", "17"),
        ("seventy", "70"),
        ("six", "6"),
        ("sixteen", "16"),
        ("sixty", "60"),
        ("ten", "10"),
        ("thirteen", "13"),
        ("thirty", "30"),
        ("three", "3"),
        ("twelve", "12"),
        ("twenty", "20"),
        ("two", "2"),
        ("zero", "0"),
    ];
    if !(3..=9).contains(&word.len()) {
        return None;
    }
    WORDS
        .binary_search_by(|(w, _)| w.cmp(&word))
        .ok()
        .map(|i| WORDS[i].1)
}

/// Whether the text negates anything; see [`negations`].
pub fn has_negation(text: &str) -> bool {
    !negations(text).is_empty()
}

/// The negations of a text, each as the content words it most likely denies: the first run of
/// content words after the cue (at most three, within the clause: "not a random name" denies
/// "random name", "without control of the ball" denies "control"; an empty scope when none
/// follow). Cues: "not", "never", "no" before a word, "none", "nothing", "nobody", "nowhere",
/// "neither", "nor", "cannot", "without", and "n't" contractions (also spelt without the apostrophe, "dont",
/// "isnt", or split off by a tokeniser, "did n't"). "No," or "No." alone answers a question and
/// "not only" adds rather than denies: neither is a negation.
pub fn negations(text: &str) -> Vec<Vec<String>> {
    const CUES: &[&str] = &[
        "aint", "arent", "cannot", "couldnt", "didnt", "doesnt", "dont", "hadnt", "hasnt",
        "havent", "isnt", "neither", "never", "nobody", "none", "nor", "not", "nothing", "nowhere",
        "nt", "shouldnt", "wasnt", "werent", "without", "wouldnt",
    ];
    const SCOPE: usize = 3;
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    let raw: Vec<&str> = lower.split_whitespace().collect();
    fn bare(w: &str) -> &str {
        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
    }
    let ends_clause = |w: &str| !w.ends_with(|c: char| c.is_alphanumeric() || c == '\'');
    let mut out = Vec::new();
    for (i, &w) in raw.iter().enumerate() {
        let word = bare(w);
        let next = raw.get(i + 1).map(|n| bare(n));
        let cue = match word {
            "no" => !ends_clause(w) && next.is_some_and(|n| !n.is_empty()),
            "not" => next != Some("only") || ends_clause(w),
            _ => word.ends_with("n't") || CUES.binary_search(&word).is_ok(),
        };
        if !cue {
            continue;
        }
        let mut scope: Vec<String> = Vec::new();
        if !ends_clause(w) {
            'words: for &n in &raw[i + 1..] {
                if bare(n) == "but" {
                    break;
                }
                for t in match_tokens(n) {
                    if !is_function_word(&t) {
                        scope.push(t);
                    } else if !scope.is_empty() {
                        break 'words;
                    }
                }
                if scope.len() >= SCOPE || ends_clause(n) {
                    break;
                }
            }
        }
        scope.truncate(SCOPE);
        out.push(scope);
    }
    out
}

/// A light English stem so that inflections meet: plural and third-person "s"/"ies", "ing", "ed",
/// "ly" after a long stem, then a final "e" ("horses", "horse" → "hors"; "studies", "studied",
/// "studying" → "study"; "running" → "run"). Deliberately crude: stems are only compared with
/// other stems, and what it misses the fuzzy match of the faithfulness scorer may catch.
pub fn stem(word: &str) -> String {
    let mut w = word.to_owned();
    let chars = |w: &str| w.chars().count();
    if chars(&w) > 4 && (w.ends_with("ies") || w.ends_with("ied")) {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if chars(&w) > 3
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w.pop();
    }
    // (suffix, letters that must remain): "ly" only after a long stem ("quickly", not "family").
    for (suffix, keep) in [("ingly", 3), ("edly", 3), ("ing", 3), ("ed", 3), ("ly", 5)] {
        if w.ends_with(suffix) && chars(&w) >= suffix.len() + keep {
            w.truncate(w.len() - suffix.len());
            let b = w.as_bytes();
            let n = b.len();
            // "running" → "run", "stopped" → "stop"; not "falling", "passed", "added".
            if suffix != "ly"
                && n >= 4
                && b[n - 1] == b[n - 2]
                && b[n - 1].is_ascii_alphabetic()
                && !b"aeioulsz".contains(&b[n - 1])
            {
                w.pop();
            }
            break;
        }
    }
    if chars(&w) > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// How much a piece of text says: its content words (not [`is_function_word`]) and numbers, plus
/// its negations ("I'm not sure" says two things, "it is" none).
pub fn substance(text: &str) -> usize {
    let words = match_tokens(text)
        .iter()
        .filter(|w| !is_function_word(w))
        .count();
    words + negations(text).len()
}

/// Split a sentence into clauses at boundaries between independent statements: ";", "but",
/// ", and", ", while", ", whereas", ", although", ", though", ", yet", ", so", and a comma or "and"
/// before a subject pronoun ("..., they are ..."). A boundary is only taken when both sides keep
/// a [`substance`] of at least `min_substance`, so lists ("tumbling, dance, and stunting") and
/// short asides ("Sadly, it ...") stay whole.
pub fn clauses(sentence: &str, min_substance: usize) -> Vec<&str> {
    const SUBJECTS: &[&str] = &["he", "i", "it", "she", "there", "they", "this", "we", "you"];
    const AFTER_COMMA: &[&str] = &[
        "although", "and", "but", "so", "though", "whereas", "while", "yet",
    ];
    let lower = sentence.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    // (end of the left clause, start of the right clause)
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' {
            cuts.push((i, i + 1));
            continue;
        }
        if b != b' ' || i == 0 {
            continue;
        }
        let next_word = |from: usize| -> &str {
            let rest = &lower[from..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            &rest[..end]
        };
        let word = next_word(i + 1);
        if word.is_empty() {
            continue;
        }
        let after = i + 1 + word.len();
        if bytes[i - 1] == b',' && (AFTER_COMMA.contains(&word) || SUBJECTS.contains(&word)) {
            cuts.push((i - 1, i + 1));
        } else if word == "but"
            || (word == "and"
                && bytes.get(after) == Some(&b' ')
                && SUBJECTS.contains(&next_word(after + 1)))
        {
            cuts.push((i, i + 1));
        }
    }
    let big_enough = |s: &str| substance(s) >= min_substance;
    let mut out = Vec::new();
    let mut start = 0;
    for (end, next) in cuts {
        if end >= start && big_enough(&sentence[start..end]) && big_enough(&sentence[next..]) {
            out.push(sentence[start..end].trim());
            start = next;
        }
    }
    out.push(sentence[start..].trim());
    out.retain(|c| !c.is_empty());
    out
}

/// `text` on one line (whitespace runs and control characters folded) in at most `max` characters,
/// cut at a word boundary with an ellipsis: a message cut mid-word ("Connectio…") reads as another
/// word, or as none.
pub fn ellipsize(text: &str, max: usize) -> String {
    let flat = one_line(text);
    let Some((end, _)) = flat.char_indices().nth(max) else {
        return flat;
    };
    let head = &flat[..end];
    // Back to the last space, unless that would throw away most of the room (one very long word).
    let head = match head.rfind(' ') {
        Some(i) if i >= end / 2 => &head[..i],
        _ => head,
    };
    format!("{}…", head.trim_end_matches([' ', ',', ';', ':']))
}

/// The end of `text` on one line in at most `max` characters, cut at a word boundary: the end of a
/// program's stderr is where the cause is.
pub fn ellipsize_start(text: &str, max: usize) -> String {
    let flat = one_line(text);
    let chars = flat.chars().count();
    if chars <= max {
        return flat;
    }
    let start = flat.char_indices().nth(chars - max).map_or(0, |(i, _)| i);
    let tail = &flat[start..];
    let tail = match tail.find(' ') {
        Some(i) if i < tail.len() / 2 => &tail[i + 1..],
        _ => tail,
    };
    format!("…{tail}")
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_between_words() {
        let msg = "request failed: connect: Connection refused (os error 111)";
        assert_eq!(ellipsize(msg, 200), msg);
        assert_eq!(ellipsize(msg, 30), "request failed: connect…");
        assert_eq!(ellipsize("a\nb\t c", 10), "a b c");
        // One long word has no boundary to go back to: it is cut where the room ends.
        assert_eq!(ellipsize("abcdefghijklmnop", 5), "abcde…");
        assert_eq!(
            ellipsize_start("Traceback: error in module x: the real cause", 20),
            "…x: the real cause"
        );
    }

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn splits_sentences_but_not_decimals() {
        assert_eq!(
            sentences("Refunds take 2.5 days. Really?  Yes!\nNew line"),
            vec!["Refunds take 2.5 days.", "Really?", "Yes!", "New line"]
        );
    }

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        assert!(FUNCTION_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(["cannot", "not", "nt"].iter().all(|w| is_function_word(w)));
        assert_eq!(number_word("three"), Some("3"));
        assert_eq!(number_word("zero"), Some("0"));
        assert_eq!(number_word("eighteen"), Some("18"));
        assert_eq!(number_word("threes"), None);
    }

    #[test]
    fn match_tokens_keep_numbers_whole_and_resolve_contractions() {
        assert_eq!(
            match_tokens("It's 2,500 km, isn't it? The recipient\u{2019}s 2.50 and 20th."),
            vec![
                "it",
                "2500",
                "km",
                "it",
                "the",
                "recipient",
                "2.5",
                "and",
                "20"
            ]
        );
        assert_eq!(normalise_number("2,500.75"), "2500.75");
        assert_eq!(normalise_number("1,2"), "1,2");
        assert_eq!(normalise_number("08"), "8");
        assert_eq!(normalise_number("0.50"), "0.5");
        assert_eq!(normalise_number("1990s"), "1990");
        assert_eq!(normalise_number("mp3"), "mp3");
    }

    #[test]
    fn negations_carry_their_scope() {
        assert_eq!(negations("Refunds are not issued."), vec![vec!["issued"]]);
        assert_eq!(
            negations("Final Sale items can't be returned"),
            vec![vec!["returned"]]
        );
        assert_eq!(negations("I did n't see it"), vec![vec!["see"]]);
        assert_eq!(negations("No refunds, sorry"), vec![vec!["refunds"]]);
        assert!(!has_negation("No, refunds are issued."));
        assert!(!has_negation("It was not only long but loud."));
        assert!(has_negation("I have never been there"));
    }

    #[test]
    fn stems_meet_across_inflections() {
        for (a, b) in [
            ("studies", "studying"),
            ("studied", "study"),
            ("horses", "horse"),
            ("running", "run"),
            ("stopped", "stops"),
            ("quickly", "quick"),
            ("families", "family"),
            ("needed", "need"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_ne!(stem("fall"), stem("fail"));
        assert_eq!(stem("falling"), "fall");
    }

    #[test]
    fn clauses_split_statements_but_not_lists() {
        assert_eq!(
            clauses("The fee is $7; it is waived for members", 2),
            vec!["The fee is $7", "it is waived for members"]
        );
        assert_eq!(
            clauses("Labels cost money, but members ship free", 2),
            vec!["Labels cost money", "but members ship free"]
        );
        assert_eq!(
            clauses("Routines contain tumbling, dance, jumps, and stunting", 2),
            vec!["Routines contain tumbling, dance, jumps, and stunting"]
        );
        assert_eq!(clauses("Yes, but not today", 2), vec!["Yes, but not today"]);
        assert_eq!(
            clauses("I'm not sure but his books sold well", 2),
            vec!["I'm not sure", "but his books sold well"]
        );
    }

    #[test]
    fn content_words_drop_stopwords_and_plurals() {
        let w: Vec<_> = content_words("What are the Refunds for orders?").collect();
        assert_eq!(w, vec!["refund", "order"]);
    }
}
