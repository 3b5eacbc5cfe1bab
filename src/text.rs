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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn content_words_drop_stopwords_and_plurals() {
        let w: Vec<_> = content_words("What are the Refunds for orders?").collect();
        assert_eq!(w, vec!["refund", "order"]);
    }
}
