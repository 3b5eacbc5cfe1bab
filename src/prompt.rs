//! The prompt template of an evaluation (tera), checked once and rendered per item.

use std::path::Path;

use crate::error::{Error, Location};
use crate::golden::Item;
use crate::text::one_line;

/// What a prompt may use. The expected answer, keywords and label are deliberately absent: a
/// prompt that showed them would leak the answer to the model under test.
pub const VARIABLES: &[&str] = &["question", "context", "contexts", "id", "tags"];

#[derive(Clone)]
pub struct PromptTemplate {
    tera: tera::Tera,
}

impl std::fmt::Debug for PromptTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PromptTemplate")
    }
}

impl PromptTemplate {
    pub fn new(source: &str, file: &Path) -> Result<PromptTemplate, Error> {
        let at = || Location::file(file).field("prompt");
        let mut tera = tera::Tera::new();
        add_text_template(&mut tera, "prompt", source, VARIABLES).map_err(|e| match e {
            TemplateError::Parse(e) => Error::input(
                at(),
                format!("the prompt template does not parse: {e}"),
                "prompts use tera syntax: {{ question }}, {{ context }}, {% if context %}…{% endif %}",
            ),
            TemplateError::Variables(e) => Error::input(at(), e, "check the template"),
            TemplateError::Unknown(name) => Error::input(
                at(),
                format!("the prompt uses `{name}`, which is not an item variable"),
                format!("use only {}", VARIABLES.join(", ")),
            ),
        })?;
        Ok(PromptTemplate { tera })
    }

    /// The prompt of one item, or why it does not render (a filter on a value of the wrong type,
    /// an index past the end of `contexts`, `throw`): that depends on the item, so an evaluation
    /// renders every item before anything is sent, and a prompt that failed is never sent.
    pub fn render(&self, item: &Item) -> Result<String, String> {
        let mut ctx = tera::Context::new();
        ctx.insert("question", &item.question);
        ctx.insert("context", &item.context_text());
        ctx.insert("contexts", &item.context);
        ctx.insert("id", &item.id);
        ctx.insert("tags", &item.tags);
        self.tera.render("prompt", &ctx).map_err(|e| {
            // tera's own message is "Failed to render 'prompt'"; the cause is in its source.
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            one_line(&message)
        })
    }
}

/// Why a template was refused, for its caller to say where and how to fix it.
pub enum TemplateError {
    /// It does not parse (the error, on one line).
    Parse(String),
    /// Its variables cannot be listed (the error, on one line).
    Variables(String),
    /// It uses a variable that is not offered (the first, by name).
    Unknown(String),
}

/// Add a template of plain text — a prompt, a request body: never HTML-escaped — that may use only
/// the `allowed` variables.
pub fn add_text_template(
    tera: &mut tera::Tera,
    name: &str,
    source: &str,
    allowed: &[&str],
) -> Result<(), TemplateError> {
    tera.autoescape_on(Vec::<&str>::new());
    tera.add_raw_template(name, source)
        .map_err(|e| TemplateError::Parse(one_line(&e.to_string())))?;
    let used = tera
        .get_template_variables(name)
        .map_err(|e| TemplateError::Variables(one_line(&e.to_string())))?;
    let mut unknown: Vec<&str> = used.into_iter().filter(|v| !allowed.contains(v)).collect();
    unknown.sort_unstable();
    match unknown.first() {
        Some(first) => Err(TemplateError::Unknown((*first).to_owned())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        serde_json::from_str(r#"{"id":"x","question":"Why?","context":["A.","B."]}"#).unwrap()
    }

    #[test]
    fn default_prompt_renders_context_and_question_without_escaping() {
        let t = PromptTemplate::new(crate::config::DEFAULT_PROMPT, Path::new("g.toml")).unwrap();
        let mut it = item();
        it.question = "Is 3 < 4 & \"so\"?".into();
        let p = t.render(&it).unwrap();
        assert!(p.contains("Context:\nA.\n\nB."), "{p}");
        assert!(p.ends_with("Question: Is 3 < 4 & \"so\"?"), "{p}");
        let mut bare = item();
        bare.context.clear();
        assert_eq!(t.render(&bare).unwrap(), "Question: Why?");
    }

    #[test]
    fn unknown_variables_and_syntax_errors_are_config_errors() {
        let e = PromptTemplate::new("{{ expected }}", Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("g.toml: field `prompt`") && e.contains("`expected`"),
            "{e}"
        );
        let e = PromptTemplate::new("{{ question", Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not parse"), "{e}");
    }
}
