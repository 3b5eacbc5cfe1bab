//! Tokenizers rebuilt from a GGUF file's own metadata (`tokenizer.ggml.*`): the files carry no
//! `tokenizer.json`. Two families cover the shipped models, each following llama.cpp (which wrote
//! the files and is the reference their authors checked them against):
//!
//! - `gpt2`: byte-level BPE from `tokens` + `merges` (SmolLM2, GPT-2). Text is split by the
//!   pre-tokenizer named in `tokenizer.ggml.pre`, each piece is mapped byte by byte onto printable
//!   characters, and merges are applied lowest rank first.
//! - `llama`: SentencePiece-style from `tokens` + `scores` with byte fallback (Gemma). Spaces become
//!   `▁`, and adjacent symbols are merged highest score first while the merge is a token.
//!
//! Control tokens (`<|im_start|>`, `<start_of_turn>`) are never parsed out of text: a prompt that
//! contains them is encoded as plain text, and the chat template inserts them by id. User-defined
//! tokens (Gemma's runs of newlines and spaces, HTML tags) are matched in text first, as llama.cpp
//! and Hugging Face's tokenizers do.
//!
//! This module needs no inference crate, so it is built and tested without the `gguf` feature.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// What a GGUF file says about its tokenizer.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `gpt2` or `llama`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a `gpt2` model (`smollm`, `gpt2`, `default`).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; empty means all normal.
    pub token_type: Vec<i32>,
    /// `tokenizer.ggml.scores` (SentencePiece).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges` (BPE), `"left right"`, highest priority first.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub add_space_prefix: bool,
}

/// llama.cpp's token types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(t: i32) -> TokenKind {
        match t {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
}

enum Algorithm {
    Bpe {
        /// (left, right) → (rank, merged token).
        merges: HashMap<(u32, u32), (u32, u32)>,
        /// Byte → the token of its printable stand-in character. Vocabularies may lack bytes
        /// that never occur in UTF-8 text (SmolLM2 has no 0xC0 or 0xF5–0xFF): those become the
        /// unknown token, or nothing.
        byte_tokens: Vec<Option<u32>>,
        /// The printable stand-in character → its byte, for decoding.
        char_bytes: HashMap<char, u8>,
        /// Split digits one by one before the GPT-2 split (SmolLM's pre-tokenizer).
        split_digits: bool,
        pattern: regex::Regex,
    },
    Spm {
        scores: Vec<f32>,
        /// Byte → its `<0xXX>` token, for characters that are no token of their own.
        byte_tokens: Vec<Option<u32>>,
        add_space_prefix: bool,
    },
}

pub struct Tokenizer {
    algorithm: Algorithm,
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    kinds: Vec<TokenKind>,
    /// User-defined tokens, matched in text before the model's own algorithm, longest first.
    user_defined: Vec<(String, u32)>,
    unknown: Option<u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether the model expects its BOS token at the start of every prompt.
    pub add_bos: bool,
}

/// GPT-2's pre-tokenizer, without the look-ahead of its `\s+(?!\S)` branch (the `regex` crate has
/// none): [`Tokenizer::split_gpt2`] gives a whitespace run back its last character instead.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// SentencePiece's stand-in for a space.
const SPM_SPACE: char = '\u{2581}';

impl Tokenizer {
    pub fn new(vocab: Vocab) -> Result<Tokenizer, String> {
        let Vocab {
            model,
            pre,
            tokens,
            token_type,
            scores,
            merges,
            bos,
            eos,
            add_bos,
            add_space_prefix,
        } = vocab;
        if tokens.is_empty() {
            return Err("the file has no tokenizer.ggml.tokens".to_owned());
        }
        let n = tokens.len();
        let kinds: Vec<TokenKind> = if token_type.is_empty() {
            vec![TokenKind::Normal; n]
        } else if token_type.len() == n {
            token_type
                .iter()
                .copied()
                .map(TokenKind::from_gguf)
                .collect()
        } else {
            return Err(format!(
                "tokenizer.ggml.token_type has {} entries for {n} tokens",
                token_type.len()
            ));
        };
        for (name, id) in [("bos", bos), ("eos", eos)] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(format!("the {name} token {id} is outside the vocabulary"));
            }
        }
        let mut ids = HashMap::with_capacity(n);
        for (id, token) in tokens.iter().enumerate() {
            // On a duplicate the first id wins, as in llama.cpp.
            ids.entry(token.clone()).or_insert(id as u32);
        }
        let mut user_defined: Vec<(String, u32)> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == TokenKind::UserDefined)
            .map(|(id, _)| (tokens[id].clone(), id as u32))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        user_defined.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let unknown = kinds
            .iter()
            .position(|k| *k == TokenKind::Unknown)
            .map(|i| i as u32);

        let algorithm = match model.as_str() {
            "gpt2" => {
                let split_digits = match pre.as_deref().unwrap_or("default") {
                    "smollm" => true,
                    "gpt2" | "gpt-2" | "default" => false,
                    other => {
                        return Err(format!(
                            "unsupported pre-tokenizer tokenizer.ggml.pre = `{other}` (supported: smollm, gpt2, default)"
                        ));
                    }
                };
                let table = byte_to_char();
                let byte_tokens: Vec<Option<u32>> = table
                    .iter()
                    .map(|c| ids.get(&c.to_string()).copied())
                    .collect();
                if byte_tokens[usize::from(b'a')].is_none() {
                    return Err("not a byte-level BPE vocabulary: no token for `a`".to_owned());
                }
                let mut ranks = HashMap::with_capacity(merges.len());
                for (rank, merge) in merges.iter().enumerate() {
                    let Some((a, b)) = merge.split_once(' ') else {
                        return Err(format!("merge {rank} (`{merge}`) is not `left right`"));
                    };
                    if let (Some(&l), Some(&r), Some(&m)) =
                        (ids.get(a), ids.get(b), ids.get(&format!("{a}{b}")))
                    {
                        ranks.entry((l, r)).or_insert((rank as u32, m));
                    }
                }
                Algorithm::Bpe {
                    merges: ranks,
                    byte_tokens,
                    char_bytes: char_to_byte(),
                    split_digits,
                    pattern: regex::Regex::new(GPT2_PATTERN).expect("a valid pattern"),
                }
            }
            "llama" => {
                if scores.len() != n {
                    return Err(format!(
                        "a llama (SentencePiece) tokenizer needs one score per token: {} scores for {n} tokens",
                        scores.len()
                    ));
                }
                let mut byte_tokens = vec![None; 256];
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = ids.get(&format!("<0x{b:02X}>")).copied();
                }
                Algorithm::Spm {
                    scores,
                    byte_tokens,
                    add_space_prefix,
                }
            }
            other => {
                return Err(format!(
                    "unsupported tokenizer model tokenizer.ggml.model = `{other}` (supported: gpt2, llama)"
                ));
            }
        };
        Ok(Tokenizer {
            algorithm,
            tokens,
            ids,
            kinds,
            user_defined,
            unknown,
            bos,
            eos,
            add_bos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token given as its text (`<|im_end|>`, `<end_of_turn>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Encode plain text: no BOS, control tokens are not recognised in it.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut first = true;
        for fragment in self.partition(text) {
            match fragment {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(t) => {
                    self.encode_fragment(t, first, &mut out);
                }
            }
            first = false;
        }
        out
    }

    /// The text of generated tokens; control tokens (end of turn, BOS) are left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let Some(token) = self.tokens.get(id as usize) else {
                continue;
            };
            match self.kinds[id as usize] {
                TokenKind::Control | TokenKind::Unused => continue,
                TokenKind::Byte => {
                    if let Some(b) = parse_byte_token(token) {
                        bytes.push(b);
                        continue;
                    }
                }
                _ => {}
            }
            match &self.algorithm {
                Algorithm::Bpe { char_bytes, .. }
                    if self.kinds[id as usize] != TokenKind::UserDefined =>
                {
                    for c in token.chars() {
                        match char_bytes.get(&c) {
                            Some(&b) => bytes.push(b),
                            None => {
                                let mut buf = [0u8; 4];
                                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            }
                        }
                    }
                }
                Algorithm::Spm { .. } | Algorithm::Bpe { .. } => {
                    bytes.extend_from_slice(token.as_bytes());
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match &self.algorithm {
            // After the bytes are joined: a `▁` may also arrive as byte tokens.
            Algorithm::Spm {
                add_space_prefix, ..
            } => {
                let text = text.replace(SPM_SPACE, " ");
                match text.strip_prefix(' ') {
                    Some(rest) if *add_space_prefix => rest.to_owned(),
                    _ => text,
                }
            }
            Algorithm::Bpe { .. } => text.into_owned(),
        }
    }

    /// Split text at user-defined tokens (leftmost, longest first).
    fn partition<'t>(&self, text: &'t str) -> Vec<Fragment<'t>> {
        let mut out = Vec::new();
        if self.user_defined.is_empty() {
            if !text.is_empty() {
                out.push(Fragment::Text(text));
            }
            return out;
        }
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if let Some((t, id)) = self.user_defined.iter().find(|(t, _)| rest.starts_with(t)) {
                if start < i {
                    out.push(Fragment::Text(&text[start..i]));
                }
                out.push(Fragment::Token(*id));
                i += t.len();
                start = i;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }

    fn encode_fragment(&self, text: &str, first: bool, out: &mut Vec<u32>) {
        match &self.algorithm {
            Algorithm::Bpe {
                merges,
                byte_tokens,
                split_digits,
                pattern,
                ..
            } => {
                let mut word = Vec::new();
                for piece in split_gpt2(pattern, *split_digits, text) {
                    word.clear();
                    word.extend(
                        piece
                            .bytes()
                            .filter_map(|b| byte_tokens[b as usize].or(self.unknown)),
                    );
                    bpe_merge(merges, &mut word);
                    out.extend_from_slice(&word);
                }
            }
            Algorithm::Spm {
                scores,
                byte_tokens,
                add_space_prefix,
            } => {
                let mut s = String::with_capacity(text.len() + 3);
                if *add_space_prefix && first {
                    s.push(SPM_SPACE);
                }
                s.extend(text.chars().map(|c| if c == ' ' { SPM_SPACE } else { c }));
                self.spm(&s, scores, byte_tokens, out);
            }
        }
    }

    /// llama.cpp's SentencePiece tokenizer: start from characters, repeatedly merge the adjacent
    /// pair whose concatenation is the highest-scoring token (the leftmost on a tie); what is left
    /// and is no token falls back to its bytes.
    fn spm(&self, text: &str, scores: &[f32], byte_tokens: &[Option<u32>], out: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Symbol {
            start: usize,
            len: usize,
            prev: Option<usize>,
            next: Option<usize>,
        }
        struct Bigram {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Bigram {
            // Max-heap: the higher score first, then the leftmost.
            fn cmp(&self, other: &Self) -> Ordering {
                self.score
                    .total_cmp(&other.score)
                    .then(other.left.cmp(&self.left))
            }
        }

        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let i = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>,
                       symbols: &[Symbol],
                       left: Option<usize>,
                       right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let len = symbols[l].len + symbols[r].len;
            let piece = &text[symbols[l].start..symbols[l].start + len];
            if let Some(&id) = self.ids.get(piece) {
                heap.push(Bigram {
                    score: scores[id as usize],
                    left: l,
                    right: r,
                    len,
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut heap, &symbols, Some(i - 1), Some(i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            // Stale: one side was merged into something else since this pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != Some(b.right) {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if let Some(next) = r.next {
                symbols[next].prev = Some(b.left);
            }
            try_add(&mut heap, &symbols, symbols[b.left].prev, Some(b.left));
            try_add(&mut heap, &symbols, Some(b.left), symbols[b.left].next);
        }
        let mut i = (!symbols.is_empty()).then_some(0);
        while let Some(at) = i {
            let s = symbols[at];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = byte_tokens[b as usize].or(self.unknown) {
                            out.push(id);
                        }
                    }
                }
            }
            i = s.next;
        }
    }
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// Split text as GPT-2's pre-tokenizer does (optionally with every digit on its own first).
fn split_gpt2<'t>(pattern: &regex::Regex, split_digits: bool, text: &'t str) -> Vec<&'t str> {
    let mut out = Vec::new();
    if split_digits {
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c.is_numeric() {
                split_gpt2_into(pattern, &text[start..i], &mut out);
                out.push(&text[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        split_gpt2_into(pattern, &text[start..], &mut out);
    } else {
        split_gpt2_into(pattern, text, &mut out);
    }
    out
}

fn split_gpt2_into<'t>(pattern: &regex::Regex, text: &'t str, out: &mut Vec<&'t str>) {
    let mut pos = 0;
    while pos < text.len() {
        let Some(m) = pattern.find_at(text, pos) else {
            break;
        };
        let mut end = m.end();
        let piece = m.as_str();
        // `\s+(?!\S)`: a whitespace run followed by a non-space gives its last character to what
        // follows (" world" keeps its space), unless the run is that one character.
        if end < text.len() && piece.chars().all(char::is_whitespace) {
            let last = piece.chars().next_back().map_or(0, char::len_utf8);
            if piece.len() > last {
                end -= last;
            }
        }
        out.push(&text[m.start()..end]);
        pos = end;
    }
}

/// Apply BPE merges to one pre-tokenized word, lowest rank first (leftmost on a tie).
fn bpe_merge(merges: &HashMap<(u32, u32), (u32, u32)>, word: &mut Vec<u32>) {
    while word.len() > 1 {
        let best = word
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| merges.get(&(w[0], w[1])).map(|&(rank, id)| (rank, i, id)))
            .min();
        let Some((_, i, id)) = best else { break };
        word[i] = id;
        word.remove(i + 1);
    }
}

/// GPT-2's reversible byte → printable character table.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        *slot = if printable {
            char::from(b as u8)
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("a valid char")
        };
    }
    table
}

fn char_to_byte() -> HashMap<char, u8> {
    byte_to_char()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small byte-level BPE vocabulary: every byte's character, then merged tokens.
    fn bpe(merges: &[&str], extra: &[&str]) -> Tokenizer {
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<|im_start|>".into()];
        tokens.extend(byte_to_char().iter().map(char::to_string));
        for m in merges {
            let (a, b) = m.split_once(' ').unwrap();
            tokens.push(format!("{a}{b}"));
        }
        tokens.extend(extra.iter().map(|s| s.to_string()));
        let mut token_type = vec![1; tokens.len()];
        token_type[0] = 3;
        token_type[1] = 3;
        Tokenizer::new(Vocab {
            model: "gpt2".into(),
            pre: Some("smollm".into()),
            tokens,
            token_type,
            merges: merges.iter().map(|s| s.to_string()).collect(),
            eos: Some(0),
            ..Vocab::default()
        })
        .unwrap()
    }

    fn pieces(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| t.tokens[i as usize].clone()).collect()
    }

    #[test]
    fn gpt2_split_keeps_spaces_with_the_following_word() {
        let re = regex::Regex::new(GPT2_PATTERN).unwrap();
        assert_eq!(
            split_gpt2(&re, false, "Hello world, it's  42!\n\nOk "),
            [
                "Hello", " world", ",", " it", "'s", " ", " 42", "!", "\n", "\n", "Ok", " "
            ]
        );
        // SmolLM splits numbers into digits first.
        assert_eq!(
            split_gpt2(&re, true, "in 30 days"),
            ["in", " ", "3", "0", " days"]
        );
        assert_eq!(split_gpt2(&re, false, "a\n b"), ["a", "\n", " b"]);
    }

    #[test]
    fn bpe_applies_merges_by_rank_and_round_trips() {
        let t = bpe(&["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"], &[]);
        let ids = t.encode("hello wow");
        assert_eq!(pieces(&t, &ids), ["hello", "Ġwo", "w"]);
        for text in [
            "hello wow",
            "Ünïcödé — “quotes” and emoji 🦀",
            "  leading and trailing  ",
            "tabs\tand\nnewlines\r\n",
            "",
        ] {
            assert_eq!(t.decode(&t.encode(text)), text);
        }
    }

    #[test]
    fn bpe_does_not_parse_control_tokens_out_of_text_and_skips_them_when_decoding() {
        let t = bpe(&[], &[]);
        let ids = t.encode("<|im_start|>");
        assert!(ids.len() > 1 && !ids.contains(&1));
        assert_eq!(t.decode(&[1, t.encode("a")[0], 0]), "a");
    }

    #[test]
    fn unknown_pre_tokenizer_is_refused() {
        let err = Tokenizer::new(Vocab {
            model: "gpt2".into(),
            pre: Some("llama3".into()),
            tokens: byte_to_char().iter().map(char::to_string).collect(),
            merges: vec!["a b".into()],
            ..Vocab::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("llama3"), "{err}");
    }

    /// A small SentencePiece vocabulary in Gemma's shape: control tokens, user-defined runs of
    /// newlines and spaces, byte tokens, and scored pieces.
    fn spm() -> Tokenizer {
        let mut tokens: Vec<String> = vec![
            "<pad>".into(),
            "<eos>".into(),
            "<bos>".into(),
            "<unk>".into(),
            "<start_of_turn>".into(),
            "\n".into(),
            "\n\n".into(),
            "  ".into(),
        ];
        let mut token_type = vec![3, 3, 3, 2, 3, 4, 4, 4];
        let mut scores = vec![-1000.0; tokens.len()];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            token_type.push(6);
            scores.push(0.0);
        }
        let pieces = [
            "▁", "h", "e", "l", "o", "w", "r", "d", "▁w", "he", "ll", "hell", "hello", "▁wor",
            "▁world", "or", "ld",
        ];
        for (rank, p) in pieces.iter().enumerate() {
            tokens.push((*p).into());
            token_type.push(1);
            scores.push(-(rank as f32));
        }
        Tokenizer::new(Vocab {
            model: "llama".into(),
            tokens,
            token_type,
            scores,
            bos: Some(2),
            eos: Some(1),
            add_bos: true,
            ..Vocab::default()
        })
        .unwrap()
    }

    #[test]
    fn spm_merges_by_score_and_falls_back_to_bytes() {
        let t = spm();
        assert_eq!(pieces(&t, &t.encode("hello world")), ["hello", "▁world"]);
        // "é" is no token: its two UTF-8 bytes.
        assert_eq!(pieces(&t, &t.encode("hé")), ["h", "<0xC3>", "<0xA9>"]);
        for text in ["hello world", "héllo wörld 🦀", "a\n\nb  c\n", " x", ""] {
            assert_eq!(t.decode(&t.encode(text)), text);
        }
    }

    #[test]
    fn spm_matches_user_defined_tokens_first_longest_first() {
        let t = spm();
        let ids = t.encode("he\n\n\nll  o");
        assert_eq!(pieces(&t, &ids), ["he", "\n\n", "\n", "ll", "  ", "o"]);
        // Control tokens in text stay text.
        assert!(!t.encode("<start_of_turn>").contains(&4));
        assert_eq!(t.decode(&[2, 4, 1]), "");
    }
}
