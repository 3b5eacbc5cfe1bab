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
    sentence_iter(text).collect()
}

/// [`sentences`], one at a time.
fn sentence_iter(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let boundary = match bytes[i] {
                b'\n' => Some(i),
                b'.' | b'!' | b'?' => bytes
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_whitespace())
                    .then_some(i + 1),
                _ => None,
            };
            i += 1;
            if let Some(end) = boundary
                && end > start
            {
                let s = text[start..end].trim();
                start = end;
                if !s.is_empty() {
                    return Some(s);
                }
            }
        }
        let tail = text[start..].trim();
        start = text.len();
        (!tail.is_empty()).then_some(tail)
    })
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
/// (they are function words; [`negations`] keeps their meaning), "'s", "'re", "'ll", "'ve",
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

/// How a [`FRAMING`] phrase may end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ends {
    /// Before anything but "of": "Based on the context we ship ..." frames "we ship ...", but
    /// "based on the context of the war" is no opener.
    Word,
    /// Only before punctuation or the end: "Sure!" is framing, "Sure enough, it rained" is not.
    Punct,
    /// With the rest of its sentence: "Let me know if you have any other questions."
    Sentence,
}

/// What an opener calls the answer's source: "based on <source>" is "based on the provided
/// context", "based on the passage above", ...
const SOURCE: &str = concat!(
    "the provided|given|above? ",
    "context|passage|passages|text|information|document|documents|excerpt|snippet ",
    "provided|given|above?",
);

/// Conversational framing: what an answer says about itself, its source or the exchange rather
/// than about the world. Openers that cite the source or announce the answer ("Based on the
/// context,", "Here's what I found:"), assent and praise of the question ("Sure!", "Great
/// question!") and closers that offer more help ("Let me know if ..."). Each is matched at the
/// start of a sentence or of a piece of one set off by ",", ":" or ";" (see [`unframed`]). Words
/// are lower case without apostrophes ("heres" is "here's", "Here 's" and "Heres"); "a|b" is
/// either word, a trailing "?" makes a word optional, "<source>" stands for [`SOURCE`].
///
/// Deliberately absent: hedges and other marks of the speaker's stance ("I think", "it seems",
/// "as far as I know", "probably", "well", "honestly"). They are what the speaker says about a
/// claim, and human raters of attribution count them against an answer: on the BEGIN Wizard of
/// Wikipedia sample, every dev response with "I think" (14 of 14) is labelled not fully
/// attributable, and cutting hedges or discourse particles as framing lowered ROC-AUC on the
/// held-out split. Also absent: hedges that deny what follows ("I don't think X" says not-X),
/// attributions to another source ("according to the census"), "yes"/"no" (an answer), and the
/// [`DISCLAIMERS`], which are kept apart.
const FRAMING: &[(&str, Ends)] = &[
    // Openers.
    ("according to <source>", Ends::Word),
    ("based on <source>", Ends::Word),
    ("as per <source>", Ends::Word),
    ("from|per <source>", Ends::Word),
    (
        "as stated|mentioned|described|noted|shown|explained|said in <source>",
        Ends::Word,
    ),
    (
        "<source> says|states|mentions|notes|indicates|explains that?",
        Ends::Word,
    ),
    ("heres|here is? what i found|know", Ends::Word),
    ("heres|here is? the answer", Ends::Word),
    ("the answer is", Ends::Word),
    ("sure|certainly", Ends::Punct),
    ("great|good|excellent|interesting question", Ends::Punct),
    // Closers.
    ("let me know", Ends::Sentence),
    ("feel free to ask", Ends::Sentence),
    ("dont hesitate to ask", Ends::Sentence),
    ("is there anything else", Ends::Sentence),
    (
        "if you have any? more|other|further? questions|question",
        Ends::Sentence,
    ),
    ("i hope this|that|it helps", Ends::Sentence),
    ("hope this|that|it helps", Ends::Sentence),
    ("happy|glad to help", Ends::Sentence),
    ("im happy|glad to help", Ends::Sentence),
    ("i am happy|glad to help", Ends::Sentence),
];

/// Professed ignorance, matched as [`FRAMING`] is. Unlike framing it is a statement, about the
/// speaker, and stays one: "I'm not sure, but refunds take 5 days" presents the refund as a guess.
/// [`unframed`] hands a disclaimer back apart from the rest, so that its negation ("not sure",
/// "don't know") is not read as a negation of the claim, and so that an answer that only
/// disclaims ("I don't know.") can be told from one that claims something.
const DISCLAIMERS: &[&str] = &[
    "im not sure|certain",
    "i am not sure|certain",
    "i dont know",
    "i do not know",
    "i have no idea",
];

/// A [`FRAMING`] or [`DISCLAIMERS`] phrase, parsed: per word its alternatives and whether it may
/// be missing.
struct Phrase {
    words: Vec<(Vec<&'static str>, bool)>,
    ends: Ends,
    disclaimer: bool,
}

/// Words that may join a phrase to what came before ("..., but I hope this helps").
const CONJUNCTIONS: &[&str] = &["and", "but", "so", "yet"];

fn phrases() -> &'static [Phrase] {
    static PHRASES: std::sync::OnceLock<Vec<Phrase>> = std::sync::OnceLock::new();
    PHRASES.get_or_init(|| {
        let disclaimers = DISCLAIMERS.iter().map(|&p| (p, Ends::Word, true));
        FRAMING
            .iter()
            .map(|&(p, ends)| (p, ends, false))
            .chain(disclaimers)
            .map(|(pattern, ends, disclaimer)| Phrase {
                words: pattern
                    .split_whitespace()
                    .flat_map(|w| match w {
                        "<source>" => SOURCE.split_whitespace().collect(),
                        _ => vec![w],
                    })
                    .map(|w| {
                        let (w, optional) = match w.strip_suffix('?') {
                            Some(w) => (w, true),
                            None => (w, false),
                        };
                        (w.split('|').collect(), optional)
                    })
                    .collect(),
                ends,
                disclaimer,
            })
            .collect()
    })
}

/// Enough words for a conjunction, the longest phrase and the word after it.
const FRAME_WORDS: usize = 12;

/// The first words of `text` (at most `max`, at most [`FRAME_WORDS`]) for matching [`FRAMING`],
/// as byte ranges, and how many there are. A contraction a tokeniser split off is joined back to
/// its word ("I 'm", "do n't"); [`is_word`] compares them.
fn frame_words(text: &str, max: usize) -> ([(usize, usize); FRAME_WORDS], usize) {
    let mut out = [(0, 0); FRAME_WORDS];
    let max = max.min(FRAME_WORDS);
    let mut n = 0;
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        let inside = c.is_alphanumeric() || is_apostrophe(c);
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                start = None;
                let raw = &text[s..i];
                if !raw.contains(char::is_alphanumeric) {
                    continue;
                }
                let glued = raw.starts_with(is_apostrophe) || (is_word(raw, "nt") && raw.len() > 2);
                if glued && n > 0 {
                    out[n - 1].1 = i;
                } else if n == max {
                    break;
                } else {
                    out[n] = (s, i);
                    n += 1;
                }
            }
            _ => {}
        }
    }
    (out, n)
}

/// Whether a word of [`frame_words`] is `w`: ignoring case, apostrophes and the space before a
/// split-off contraction ("I 'm" is "im").
fn is_word(raw: &str, w: &str) -> bool {
    raw.chars()
        .filter(|&c| !is_apostrophe(c) && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .eq(w.chars())
}

/// How many of `words` (of `text`) the phrase words `p` match, trying an optional word before
/// skipping it.
fn match_phrase(p: &[(Vec<&str>, bool)], text: &str, words: &[(usize, usize)]) -> Option<usize> {
    let Some(((alts, optional), rest)) = p.split_first() else {
        return Some(0);
    };
    if let Some(&(a, b)) = words.first()
        && alts.iter().any(|w| is_word(&text[a..b], w))
        && let Some(n) = match_phrase(rest, text, &words[1..])
    {
        return Some(n + 1);
    }
    if *optional {
        match_phrase(rest, text, words)
    } else {
        None
    }
}

/// The byte length of the framing that `part` (a sentence, or a piece of one set off by
/// punctuation) starts with, and whether a closer took the rest of the sentence. Phrases may
/// follow each other ("Sure, based on the context, ...") and a conjunction ("..., but I hope this
/// helps"); the [`DISCLAIMERS`] among them are pushed to `disclaimers`.
fn leading_framing<'a>(part: &'a str, disclaimers: &mut Vec<&'a str>) -> (usize, bool) {
    let mut pos = 0;
    loop {
        let Some(skip) = part[pos..].find(|c: char| c.is_alphanumeric()) else {
            return (pos, false);
        };
        let from = pos + skip;
        let rest = &part[from..];
        // Most parts start with no phrase's first word: look no further then.
        let (first, n) = frame_words(rest, 2);
        let first = &first[..n];
        let lead = usize::from(
            first
                .first()
                .is_some_and(|&(a, b)| CONJUNCTIONS.iter().any(|w| is_word(&rest[a..b], w))),
        );
        let Some(&(a, b)) = first.get(lead) else {
            return (pos, false);
        };
        let mut candidates = phrases()
            .iter()
            .filter(|p| p.words[0].0.iter().any(|w| is_word(&rest[a..b], w)))
            .peekable();
        if candidates.peek().is_none() {
            return (pos, false);
        }
        let (words, n) = frame_words(rest, FRAME_WORDS);
        let words = &words[..n];
        let best = candidates
            .filter_map(|p| {
                let n = match_phrase(&p.words, rest, &words[lead..]).filter(|&n| n > 0)?;
                let end = from + words[lead + n - 1].1;
                let ok = match p.ends {
                    Ends::Word => words
                        .get(lead + n)
                        .is_none_or(|&(a, b)| !is_word(&rest[a..b], "of")),
                    Ends::Punct => !part[end..].trim_start().starts_with(char::is_alphanumeric),
                    Ends::Sentence => true,
                };
                ok.then_some((end, p))
            })
            .max_by_key(|&(end, _)| end);
        match best {
            Some((_, p)) if p.ends == Ends::Sentence => return (part.len(), true),
            Some((end, p)) => {
                if p.disclaimer {
                    let start = if lead == 1 { from + words[1].0 } else { from };
                    disclaimers.push(&part[start..end]);
                }
                pos = end;
            }
            None => return (pos, false),
        }
    }
}

/// `text` without its conversational [`FRAMING`]: the openers and closers at the start of each
/// sentence or of each piece of one set off by ",", ":" or ";", so that a piece or a sentence that
/// is framing alone goes whole. "Based on the context: We ship to Austria." is "We ship to
/// Austria."; "Sure!" is empty. Only whole phrases are taken, never a content word alone, so a
/// sentence that merely starts like one ("Based in Vienna, ...") keeps its words. Kept pieces are
/// joined by ", ", sentences by " "; text without framing is returned as it is. The
/// [`DISCLAIMERS`] are cut too, and returned apart, in order, as slices of `text` ("I'm not sure,
/// but refunds take 5 days." is "but refunds take 5 days." and "I'm not sure").
pub fn unframed(text: &str) -> (std::borrow::Cow<'_, str>, Vec<&str>) {
    let mut disclaimers = Vec::new();
    // Most text has no framing: find that out without allocating.
    let framed = sentence_iter(text)
        .flat_map(pieces)
        .any(|piece| leading_framing(piece, &mut disclaimers).0 > 0);
    if !framed {
        return (std::borrow::Cow::Borrowed(text), disclaimers);
    }
    disclaimers.clear();
    let mut out: Vec<String> = Vec::new();
    for sentence in sentence_iter(text) {
        let mut kept: Vec<&str> = Vec::new();
        for piece in pieces(sentence) {
            let (skip, to_end) = leading_framing(piece, &mut disclaimers);
            let piece = piece[skip..].trim();
            if piece.contains(char::is_alphanumeric) {
                kept.push(piece);
            }
            if to_end {
                break;
            }
        }
        if !kept.is_empty() {
            out.push(kept.join(", "));
        }
    }
    (std::borrow::Cow::Owned(out.join(" ")), disclaimers)
}

/// The pieces of a sentence set off by ",", ":" or ";" before a space.
fn pieces(sentence: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(sentence);
    std::iter::from_fn(move || {
        let r = rest?;
        let cut = r.char_indices().find(|&(i, c)| {
            matches!(c, ',' | ':' | ';') && r[i + 1..].starts_with(char::is_whitespace)
        });
        match cut {
            Some((i, _)) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
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

/// Lower-case hexadecimal, as SHA-256 sums are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `text` on one line: whitespace runs folded to one space, control characters dropped.
pub fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Characters that show nothing themselves but change how the text around them reads: the soft
/// hyphen, zero-width spaces and joiners, direction marks, embeddings, overrides and isolates (text
/// shown reversed), invisible operators, the byte-order mark, interlinear annotations and the tag
/// characters (which carry ASCII no one sees).
pub fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Where text from outside would break a line: the control characters that are whitespace
/// (newline, carriage return, tab, vertical tab, form feed, next line) and the Unicode line and
/// paragraph separators.
pub fn breaks_line(c: char) -> bool {
    (c.is_control() && c.is_whitespace()) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A character that must not reach a reader as itself, written as Rust and JSON readers know it:
/// ESC is `\u{1b}`, a right-to-left override `\u{202e}`.
pub fn escaped(c: char) -> String {
    format!("\\u{{{:x}}}", u32::from(c))
}

/// Text from outside (a model name, a server's error, a golden set's strings, a path) as one inert
/// piece of a terminal or CI log line. Line breaks and tabs become spaces: a value never starts a
/// log line of its own, and `\r` never overwrites one. Other control characters (ESC, which starts
/// colours, cursor moves and OSC 8 links; BEL, NUL, DEL, the C1 controls) and [`is_hidden`]
/// characters are [`escaped`]. A GitHub Actions workflow command (`::error::…`, `::add-mask::…`,
/// `::stop-commands::…`) is read from a line that starts with `::` after its leading spaces, so the
/// text never starts so (its first `:` is escaped); the runner's legacy form `##[command]` and Azure
/// Pipelines' `##vso[` are found anywhere in a line, so their `[` is escaped wherever it follows.
/// Text with none of these is returned as it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let inert = |c: char| !(c.is_control() || is_hidden(c) || breaks_line(c));
    if text.chars().all(inert) && !text.contains("##") && !text.trim_start().starts_with("::") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if breaks_line(c) {
            out.push(' ');
        } else if !inert(c) || (c == '[' && opens_log_command(&out)) {
            out.push_str(&escaped(c));
        } else {
            out.push(c);
        }
    }
    let lead = out.len() - out.trim_start().len();
    if out[lead..].starts_with("::") {
        out.replace_range(lead..=lead, &escaped(':'));
    }
    std::borrow::Cow::Owned(out)
}

/// Whether a `[` after `before` would open a log command a CI runner obeys anywhere in a line:
/// `##[` (GitHub Actions' legacy form) or `##vso[` (Azure Pipelines, in any case).
pub fn opens_log_command(before: &str) -> bool {
    let b = before.as_bytes();
    b.ends_with(b"##") || b.len() >= 5 && b[b.len() - 5..].eq_ignore_ascii_case(b"##vso")
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
        let has_negation = |t| !negations(t).is_empty();
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
    fn framing_is_cut_and_claims_are_kept() {
        // Every phrase starts with a word it needs: parts are only searched by their first word.
        assert!(
            phrases()
                .iter()
                .all(|p| !p.words.is_empty() && !p.words[0].1)
        );
        for (framed, claim) in [
            (
                "Based on the context: We ship to Austria.",
                "We ship to Austria.",
            ),
            (
                "Sure! Based on the provided context, we ship to Austria. \
                 Let me know if you need anything else.",
                "we ship to Austria.",
            ),
            (
                "According to the passage, we ship to Austria.",
                "we ship to Austria.",
            ),
            (
                "Here 's what I found : we ship to Austria .",
                "we ship to Austria .",
            ),
            ("The answer is: we ship to Austria.", "we ship to Austria."),
            (
                "The text says that we ship to Austria.",
                "we ship to Austria.",
            ),
            (
                "We ship to Austria, but I hope this helps.",
                "We ship to Austria",
            ),
            (
                "Refunds take 5 days. Great question!",
                "Refunds take 5 days.",
            ),
            ("Sure!", ""),
            ("Is there anything else I can help you with?", ""),
        ] {
            assert_eq!(unframed(framed), (claim.into(), vec![]), "{framed}");
        }
        // A disclaimer is cut from the rest and handed back on its own.
        for (framed, claim, disclaimer) in [
            (
                "I\u{2019}m not sure, but refunds take 5 days.",
                "but refunds take 5 days.",
                "I\u{2019}m not sure",
            ),
            (
                "I 'm not sure refunds take 5 days .",
                "refunds take 5 days .",
                "I 'm not sure",
            ),
            (
                "Refunds take 5 days, but I don't know about exchanges.",
                "Refunds take 5 days, about exchanges.",
                "I don't know",
            ),
            ("Sure, I don't know.", "", "I don't know"),
        ] {
            assert_eq!(
                unframed(framed),
                (claim.into(), vec![disclaimer]),
                "{framed}"
            );
        }
        // Words that merely start like framing, hedges and other marks of stance stay.
        for kept in [
            "Based in Vienna, we ship to Austria.",
            "Based on the context of the war, prices rose.",
            "According to the census, 5 million people live there.",
            "Sure enough, it rained.",
            "Thanks to the new law, refunds take 5 days.",
            "Feel free to return items within 30 days.",
            "Certainly the largest city is Vienna.",
            "I do know that refunds take 5 days.",
            "I don't think we ship to Austria.",
            "I think we ship to Austria.",
            "Well, it seems that we probably ship to Austria.",
        ] {
            assert_eq!(unframed(kept), (kept.into(), vec![]));
        }
    }

    #[test]
    fn content_words_drop_stopwords_and_plurals() {
        let w: Vec<_> = content_words("What are the Refunds for orders?").collect();
        assert_eq!(w, vec!["refund", "order"]);
    }
}

/// Properties of the one-line helpers every message and report cell goes through: any text, cut
/// anywhere, stays on one line, free of control characters, within its room, and never panics
/// on a character boundary.
#[cfg(test)]
mod line_properties {
    use proptest::prelude::*;

    use super::*;

    /// Text dense in what breaks cutting and folding: multi-byte characters, combining marks,
    /// zero-width and bidi characters, every kind of whitespace and control character.
    fn hostile_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => "[a-z]{1,6}",
                2 => Just(" ".to_owned()),
                1 => "[\\t\\n\\r\\x0B\\x0C\\u{85}\\u{A0}\\u{2028}\\u{3000}]",
                1 => "[\\x00-\\x1F\\x7F\\u{80}-\\u{9F}]",
                1 => "[é€🦀\\u{301}\\u{200B}\\u{202E}\\u{FEFF}中文]{1,3}",
                1 => "[,;:…]",
                1 => any::<char>().prop_map(String::from),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    fn is_one_line(s: &str) -> bool {
        !s.chars()
            .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
    }

    proptest! {
        #[test]
        fn one_line_has_no_line_break_or_control_character(text in hostile_text()) {
            let flat = one_line(&text);
            prop_assert!(is_one_line(&flat), "{flat:?}");
            let words = |s: &str| s.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect::<String>();
            prop_assert_eq!(words(&flat), words(&text), "no visible character is lost");
        }

        #[test]
        fn ellipsize_keeps_within_the_room_and_cuts_only_the_end(text in hostile_text(), max in 0usize..50) {
            let flat = one_line(&text);
            let cut = ellipsize(&text, max);
            prop_assert!(is_one_line(&cut), "{cut:?}");
            if flat.chars().count() <= max {
                prop_assert_eq!(cut, flat);
            } else {
                let head = cut.strip_suffix('…').expect("a cut text ends in an ellipsis");
                prop_assert!(head.chars().count() <= max, "{cut:?} over {max}");
                prop_assert!(flat.starts_with(head), "{cut:?} is not the start of {flat:?}");
            }
        }

        // From 1: with no room at all the whole text comes back ("a" gives "…a"); no caller
        // asks for none.
        #[test]
        fn ellipsize_start_keeps_within_the_room_and_cuts_only_the_start(text in hostile_text(), max in 1usize..50) {
            let flat = one_line(&text);
            let cut = ellipsize_start(&text, max);
            prop_assert!(is_one_line(&cut), "{cut:?}");
            if flat.chars().count() <= max {
                prop_assert_eq!(cut, flat);
            } else {
                let tail = cut.strip_prefix('…').expect("a cut text starts with an ellipsis");
                prop_assert!(tail.chars().count() <= max, "{cut:?} over {max}");
                prop_assert!(flat.ends_with(tail), "{cut:?} is not the end of {flat:?}");
            }
        }
    }
}

/// [`printable`]: what a terminal or a CI log line may carry of outside text.
#[cfg(test)]
mod printable_tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn terminal_sequences_and_log_commands_are_inert() {
        for (outside, shown) in [
            ("gpt-4o", "gpt-4o"),
            ("std::io::Error: refused", "std::io::Error: refused"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            (
                "\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7}",
                "\\u{1b}]8;;https://evil.example\\u{7}click\\u{1b}]8;;\\u{7}",
            ),
            ("PASS\rFAIL", "PASS FAIL"),
            ("ok\n::error::forged", "ok ::error::forged"),
            ("::add-mask::x", "\\u{3a}:add-mask::x"),
            (" \t::stop-commands::t", "  \\u{3a}:stop-commands::t"),
            ("\n::set-output name=a::b", " \\u{3a}:set-output name=a::b"),
            ("say ##[error]forged", "say ##\\u{5b}error]forged"),
            (
                "###[x] ##VSO[task.complete]",
                "###\\u{5b}x] ##VSO\\u{5b}task.complete]",
            ),
            ("# heading [link]", "# heading [link]"),
            ("\u{202e}LIAF\u{202c}", "\\u{202e}LIAF\\u{202c}"),
            (
                "a\u{0}b\u{7f}c\u{9b}d\u{200b}e",
                "a\\u{0}b\\u{7f}c\\u{9b}d\\u{200b}e",
            ),
        ] {
            assert_eq!(printable(outside), shown, "{outside:?}");
        }
        assert!(matches!(
            printable("plain text"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// Text dense in what a terminal or a CI runner acts on.
    fn log_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                3 => "[a-z ]{1,6}",
                2 => Just("::".to_owned()),
                2 => "[#\\[\\]:vsoVSO]{1,4}",
                1 => "[\\t\\n\\r\\x0B\\x0C\\u{85}\\u{A0}\\u{2028}\\u{3000}]",
                1 => "[\\x00-\\x1F\\x7F\\u{80}-\\u{9F}]",
                1 => "[\\u{200B}-\\u{200F}\\u{202A}-\\u{202E}\\u{2066}-\\u{2069}\\u{FEFF}\\u{E0041}]",
                1 => any::<char>().prop_map(String::from),
            ],
            0..30,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn printable_text_has_no_control_and_commands_nothing(text in log_text()) {
            let shown = printable(&text);
            prop_assert!(
                !shown.chars().any(|c| c.is_control() || is_hidden(c) || breaks_line(c)),
                "{shown:?}"
            );
            prop_assert!(!shown.trim_start().starts_with("::"), "{shown:?}");
            let upper = shown.to_ascii_uppercase();
            prop_assert!(!upper.contains("##[") && !upper.contains("##VSO["), "{shown:?}");
            // Nothing is lost but what was escaped: the characters a reader sees stay in order.
            let kept = |s: &str| s.chars().filter(|&c| c.is_alphanumeric() && c.is_ascii()).count();
            prop_assert!(kept(&shown) >= kept(&text));
        }

        #[test]
        fn plain_text_is_printed_as_it_is(text in "[a-zA-Z0-9 .,:;!?()'\"/-]{0,40}") {
            prop_assume!(!text.trim_start().starts_with("::"));
            prop_assert_eq!(printable(&text), text.as_str());
        }
    }
}
