//! Chat templates: how a system message and a prompt become the token sequence a model was
//! trained to answer, and which tokens end its turn.
//!
//! The templates are written out rather than interpreted from the Jinja text in the file: two
//! shapes cover the shipped models, and a hand-written template inserts control tokens by id, so
//! text that merely looks like `<|im_end|>` in a golden item cannot end a turn early.

use super::tokenizer::Tokenizer;

pub use crate::config::TemplateKind;

impl TemplateKind {
    /// The template a file implies: Gemma by architecture, ChatML when the file's own template
    /// uses `<|im_start|>`.
    pub fn detect(architecture: &str, chat_template: Option<&str>) -> Option<TemplateKind> {
        if architecture.starts_with("gemma") {
            return Some(TemplateKind::Gemma);
        }
        if chat_template.is_some_and(|t| t.contains("<|im_start|>")) {
            return Some(TemplateKind::Chatml);
        }
        None
    }
}

/// A template bound to one tokenizer: the ids of its control tokens, resolved once.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    kind: TemplateKind,
    /// ChatML: the system message the model's own template adds when none is given (SmolLM2's
    /// "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
    default_system: Option<String>,
    /// (turn start, turn end) control tokens.
    turn: Option<(u32, u32)>,
    bos: Option<u32>,
    /// Generation stops at any of these.
    pub stop: Vec<u32>,
}

impl ChatTemplate {
    pub fn new(
        kind: TemplateKind,
        tokenizer: &Tokenizer,
        chat_template: Option<&str>,
    ) -> Result<ChatTemplate, String> {
        let id = |t: &str| {
            tokenizer.token_id(t).ok_or_else(|| {
                format!("the {kind:?} template needs the token `{t}`, which this vocabulary lacks")
            })
        };
        let mut stop: Vec<u32> = tokenizer.eos.into_iter().collect();
        let (turn, default_system, bos) = match kind {
            TemplateKind::Chatml => {
                let turn = (id("<|im_start|>")?, id("<|im_end|>")?);
                stop.push(turn.1);
                stop.extend(tokenizer.token_id("<|endoftext|>"));
                let bos = tokenizer.add_bos.then_some(tokenizer.bos).flatten();
                (
                    Some(turn),
                    chat_template.and_then(chatml_default_system),
                    bos,
                )
            }
            TemplateKind::Gemma => {
                let turn = (id("<start_of_turn>")?, id("<end_of_turn>")?);
                stop.push(turn.1);
                // Gemma's template always starts with BOS.
                (Some(turn), None, tokenizer.bos)
            }
            TemplateKind::None => (
                None,
                None,
                tokenizer.add_bos.then_some(tokenizer.bos).flatten(),
            ),
        };
        stop.sort_unstable();
        stop.dedup();
        Ok(ChatTemplate {
            kind,
            default_system,
            turn,
            bos,
            stop,
        })
    }

    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// The prompt's tokens, ending where the model's answer begins.
    pub fn render(&self, tokenizer: &Tokenizer, system: Option<&str>, prompt: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        match (self.kind, self.turn) {
            (TemplateKind::Chatml, Some((start, end))) => {
                let newline = tokenizer.encode("\n");
                if let Some(system) = system.or(self.default_system.as_deref()) {
                    ids.push(start);
                    ids.extend(tokenizer.encode(&format!("system\n{system}")));
                    ids.push(end);
                    ids.extend(&newline);
                }
                ids.push(start);
                ids.extend(tokenizer.encode(&format!("user\n{prompt}")));
                ids.push(end);
                ids.extend(&newline);
                ids.push(start);
                ids.extend(tokenizer.encode("assistant\n"));
            }
            (TemplateKind::Gemma, Some((start, end))) => {
                // Gemma has no system role: its template puts the system text before the first
                // user message, and trims each message.
                let content = match system {
                    Some(s) => format!("{}\n\n{}", s.trim(), prompt.trim()),
                    None => prompt.trim().to_owned(),
                };
                ids.push(start);
                ids.extend(tokenizer.encode(&format!("user\n{content}")));
                ids.push(end);
                ids.extend(tokenizer.encode("\n"));
                ids.push(start);
                ids.extend(tokenizer.encode("model\n"));
            }
            _ => {
                let text = match system {
                    Some(s) => format!("{s}\n\n{prompt}"),
                    None => prompt.to_owned(),
                };
                ids.extend(tokenizer.encode(&text));
            }
        }
        ids
    }
}

/// The system message a ChatML Jinja template inserts when the conversation has none:
/// `…{{ '<|im_start|>system\nYOU ARE…<|im_end|>\n' }}…` guarded by a "not system" test.
fn chatml_default_system(template: &str) -> Option<String> {
    if !template.contains("!= 'system'") && !template.contains("!= \"system\"") {
        return None;
    }
    let after = &template[template.find("<|im_start|>system")? + "<|im_start|>system".len()..];
    // Inside the Jinja string literal the newline is either a real one or an escape.
    let after = after
        .strip_prefix('\n')
        .or_else(|| after.strip_prefix("\\n"))?;
    let len = after.find("<|im_end|>")?;
    let text = &after[..len];
    // Only a literal message, not one assembled from variables.
    (!text.contains("{{") && !text.contains('\'')).then(|| text.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer::Vocab;
    use super::*;

    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// A byte-level vocabulary without merges but for one, with the given control tokens first.
    fn tokenizer(controls: &[&str], model: &str) -> Tokenizer {
        let mut tokens: Vec<String> = controls.iter().map(|s| s.to_string()).collect();
        let mut token_type = vec![3; tokens.len()];
        let (merges, scores) = if model == "gpt2" {
            let table: Vec<String> = (0..=255u8)
                .map(|b| {
                    // GPT-2's printable stand-ins, as the tokenizer builds them.
                    let printable = (33..=126).contains(&b)
                        || (161..=172).contains(&b)
                        || (174..=255).contains(&b);
                    if printable {
                        char::from(b).to_string()
                    } else {
                        let extra = (0..b)
                            .filter(|x| {
                                !((33..=126).contains(x)
                                    || (161..=172).contains(x)
                                    || (174..=255).contains(x))
                            })
                            .count() as u32;
                        char::from_u32(256 + extra).unwrap().to_string()
                    }
                })
                .collect();
            tokens.extend(table);
            tokens.push("us".into());
            (vec!["u s".to_string()], vec![])
        } else {
            for b in 0..=255u8 {
                tokens.push(format!("<0x{b:02X}>"));
            }
            let n = tokens.len();
            (vec![], vec![0.0; n])
        };
        // Byte tokens are typed as such (6); the rest are normal (1).
        let byte_type = if model == "gpt2" { 1 } else { 6 };
        token_type.resize(tokens.len(), byte_type);
        Tokenizer::new(Vocab {
            model: model.into(),
            pre: Some("smollm".into()),
            tokens,
            token_type,
            scores,
            merges,
            bos: Some(0),
            eos: Some(1),
            add_bos: false,
            add_space_prefix: false,
        })
        .unwrap()
    }

    #[test]
    fn chatml_renders_the_default_system_message_and_stops_at_im_end() {
        let t = tokenizer(&["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "gpt2");
        let kind = TemplateKind::detect("llama", Some(SMOLLM2_TEMPLATE)).unwrap();
        assert_eq!(kind, TemplateKind::Chatml);
        let c = ChatTemplate::new(kind, &t, Some(SMOLLM2_TEMPLATE)).unwrap();
        let ids = c.render(&t, None, "Hi");
        assert_eq!(
            t.decode(&ids),
            "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face\nuser\nHi\nassistant\n"
        );
        assert_eq!(ids[0], 1, "starts with <|im_start|>");
        assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2);
        // A given system message replaces the default.
        let ids = c.render(&t, Some("Be brief."), "Hi");
        assert!(t.decode(&ids).starts_with("system\nBe brief.\nuser\nHi"));
        assert_eq!(c.stop, [0, 1, 2]);
    }

    #[test]
    fn default_system_is_read_only_from_a_literal() {
        assert_eq!(chatml_default_system("{{ '<|im_start|>' }}"), None);
        assert_eq!(
            chatml_default_system(
                "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe nice.<|im_end|>\\n' }}{% endif %}"
            )
            .as_deref(),
            Some("Be nice.")
        );
    }

    #[test]
    fn gemma_puts_bos_first_system_text_into_the_user_turn_and_trims() {
        let t = tokenizer(
            &["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
            "llama",
        );
        let kind = TemplateKind::detect("gemma3", None).unwrap();
        let c = ChatTemplate::new(kind, &t, None).unwrap();
        let ids = c.render(&t, Some("Be brief."), "  Why?\n");
        assert_eq!(ids[0], 0, "BOS");
        assert_eq!(ids[1], 2, "<start_of_turn>");
        assert_eq!(t.decode(&ids), "user\nBe brief.\n\nWhy?\nmodel\n");
        assert_eq!(c.stop, [1, 3]);
    }

    #[test]
    fn unknown_shapes_are_not_guessed() {
        assert_eq!(TemplateKind::detect("llama", None), None);
        assert_eq!(TemplateKind::detect("llama", Some("[INST] {{ x }}")), None);
        let t = tokenizer(&["<bos>", "<eos>"], "llama");
        let err = ChatTemplate::new(TemplateKind::Gemma, &t, None).unwrap_err();
        assert!(err.contains("<start_of_turn>"), "{err}");
    }
}
