//! Token estimates for answers whose API reported no usage, with a real BPE tokenizer.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// cl100k_base: the tokenizer of the GPT-4 family; a fair estimate for other modern models, and
/// every estimate is marked as such in the results.
fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<&'static CoreBPE> = OnceLock::new();
    BPE.get_or_init(tiktoken_rs::cl100k_base_singleton)
}

/// Load the tokenizer now, so its one-off start-up cost never lands inside a measured request.
pub fn warm() {
    bpe();
}

pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe().encode_ordinary(text).len() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_real_tokens() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }
}
