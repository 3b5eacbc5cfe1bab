//! `kind = "ollama"`: Ollama's native chat API, which reports its own timings.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{
    ChatMessage, chat_messages, content_text, data_url, image_urls, logged_max_tokens, logged_stop,
    logged_tool_calls, retry_after, status_error,
};
use super::{CallError, Chat, Completion, ErrorKind, Provider, Request, Usage, tool_calls_text};
use crate::config::ProviderConfig;
use crate::error::{Error, Problem};

pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:11434";

const MAX_BODY_BYTES: usize = 16 << 20;

pub struct Ollama {
    http: reqwest::Client,
    url: String,
    model: String,
    options: Options,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    options: &'a Options,
}

#[derive(Serialize)]
struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    /// Ollama's name for the output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Deserialize)]
struct ChatResponse {
    message: Option<ResponseMessage>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    /// Nanoseconds, load and prompt evaluation included.
    #[serde(default)]
    total_duration: Option<u64>,
    /// Ollama's word that the answer is complete.
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    function: ToolFunction,
}

#[derive(Deserialize)]
struct ToolFunction {
    #[serde(default)]
    name: String,
    /// An object, where OpenAI writes JSON text.
    #[serde(default)]
    arguments: Value,
}

impl ResponseMessage {
    /// By the rule production's answers follow too: the tool calls when there are any (written
    /// as production's are, so that the two compare), whatever content came with them; else the
    /// content.
    fn answer(self) -> String {
        let calls: Vec<(String, String)> = self
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| (call.function.name, call.function.arguments.to_string()))
            .collect();
        if calls.is_empty() {
            return self.content;
        }
        tool_calls_text(
            calls
                .iter()
                .map(|(name, args)| (name.as_str(), args.as_str())),
        )
    }
}

/// `kind = "ollama"` has no options of its own: what it uses, every kind's checks cover.
pub(super) fn check(_path: &Path, _cfg: &ProviderConfig) -> Vec<Problem> {
    Vec::new()
}

/// The adapter of a `kind = "ollama"` file.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    let adapter = Ollama::new(cfg, key, timeout).map_err(|e| super::http::client_error(path, e))?;
    Ok(Arc::new(adapter))
}

impl Ollama {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<Ollama> {
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(crate::provider::http::bearer_auth(key.as_ref()))
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(Ollama {
            http,
            url: format!("{}/api/chat", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            options: Options {
                temperature: cfg.temperature,
                num_predict: cfg.max_tokens,
                seed: cfg.seed,
            },
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let post = self.http.post(&self.url);
        let post = match &request.chat {
            Some(chat) => post.json(&chat_body(&self.model, chat, &self.options)),
            None => post.json(&ChatRequest {
                model: &self.model,
                messages: chat_messages(request),
                stream: false,
                options: &self.options,
            }),
        };
        let response = post.send().await.map_err(crate::provider::http::classify)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            // Ollama's errors are `{"error": "model \"x\" not found, try pulling it first"}`.
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| crate::provider::http::snippet(&bytes));
            return Err(status_error(status, wait, detail));
        }
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not an Ollama chat response: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        if !parsed.done {
            return Err(CallError::incomplete(format!(
                "the response is not marked done, so the answer is not complete; body: {}",
                crate::provider::http::snippet(&bytes)
            )));
        }
        let Some(message) = parsed.message else {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response has no message; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            ));
        };
        // A prompt served from Ollama's cache may come without prompt_eval_count: then estimate.
        let usage = match (parsed.prompt_eval_count, parsed.eval_count) {
            (Some(input), Some(output)) => Some(Usage { input, output }),
            _ => None,
        };
        let mut completion = Completion::text(message.answer(), usage);
        completion.server_ms = parsed.total_duration.map(|ns| ns as f64 / 1e6);
        Ok(completion)
    }
}

/// A replayed conversation (OpenAI's chat shape) as an `/api/chat` body. The logged sampling
/// parameters go in `options` over the provider file's, since a replay must ask what production
/// asked; Ollama has no `tool_choice`, so a logged `"none"` leaves the tools out.
fn chat_body(model: &str, chat: &Chat, options: &Options) -> Value {
    let params = &chat.params;
    let mut options = serde_json::to_value(options).expect("options serialize");
    let opts = options
        .as_object_mut()
        .expect("a struct serializes to an object");
    for key in ["temperature", "top_p", "seed"] {
        if let Some(value) = params.get(key).filter(|v| v.is_number()) {
            opts.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(n) = logged_max_tokens(params) {
        opts.insert("num_predict".to_owned(), n.into());
    }
    if let Some(stop) = logged_stop(params) {
        opts.insert("stop".to_owned(), stop.into());
    }
    let mut body = json!({
        "model": model,
        "messages": messages(&chat.messages),
        "stream": false,
        "options": options,
    });
    let tools_off = params.get("tool_choice").is_some_and(|c| c == "none");
    if let Some(tools) = params.get("tools").filter(|t| t.is_array() && !tools_off) {
        body["tools"] = tools.clone();
    }
    // JSON mode changes the answer, so the replay asks for it too, in Ollama's words: `format`
    // is "json" or the schema itself.
    let format = params.get("response_format").unwrap_or(&Value::Null);
    match format["type"].as_str() {
        Some("json_object") => body["format"] = "json".into(),
        Some("json_schema") if format["json_schema"]["schema"].is_object() => {
            body["format"] = format["json_schema"]["schema"].clone();
        }
        _ => {}
    }
    body
}

/// The logged messages as Ollama takes them: content as text (inline images apart, as base64),
/// tool calls with object arguments, and tool results named by the tool that made them.
fn messages(logged: &[Value]) -> Vec<Value> {
    let mut tool_names: HashMap<&str, &str> = HashMap::new();
    logged
        .iter()
        .map(|message| {
            let role = match message["role"].as_str().unwrap_or("user") {
                "developer" => "system",
                role => role,
            };
            let content = &message["content"];
            let mut out = json!({"role": role, "content": content_text(content)});
            let images: Vec<&str> = image_urls(content)
                .into_iter()
                .filter_map(|url| data_url(url).map(|(_, data)| data))
                .collect();
            if !images.is_empty() {
                out["images"] = images.into();
            }
            let calls = logged_tool_calls(message);
            if !calls.is_empty() {
                let calls: Vec<Value> = calls
                    .into_iter()
                    .map(|call| {
                        tool_names.insert(call.id, call.name);
                        json!({"function": {"name": call.name, "arguments": call.arguments}})
                    })
                    .collect();
                out["tool_calls"] = calls.into();
            }
            let name = message["name"].as_str().or_else(|| {
                let id = message["tool_call_id"].as_str()?;
                tool_names.get(id).copied()
            });
            if let (Some(name), "tool") = (name, role) {
                out["tool_name"] = name.into();
            }
            out
        })
        .collect()
}

impl Provider for Ollama {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(self.attempt(request))
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(messages: Value, params: Value) -> Chat {
        Chat {
            messages: serde_json::from_value(messages).unwrap(),
            params: serde_json::from_value(params).unwrap(),
        }
    }

    const PROVIDER: Options = Options {
        temperature: Some(0.0),
        num_predict: Some(256),
        seed: Some(7),
    };

    #[test]
    fn a_replayed_conversation_is_sent_as_ollama_messages() {
        let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
        let chat = chat(
            json!([
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                    {"type": "text", "text": "Paris."},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            ]),
            json!({
                "temperature": 0.7, "top_p": 0.9, "max_tokens": 100, "stop": "END",
                "tools": tools, "tool_choice": "auto",
                "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            }),
        );
        assert_eq!(
            chat_body("llama3", &chat, &PROVIDER),
            json!({
                "model": "llama3",
                "stream": false,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather here?\nParis.", "images": ["/9j/"]},
                    {"role": "assistant", "content": "",
                     "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
                    {"role": "tool", "content": "18C", "tool_name": "weather"},
                ],
                "options": {"temperature": 0.7, "top_p": 0.9, "num_predict": 100, "seed": 7, "stop": ["END"]},
                "tools": tools,
                "format": {"type": "object"},
            })
        );
    }

    #[test]
    fn the_provider_file_fills_in_what_the_log_left_out() {
        let plain = chat(
            json!([{"role": "user", "content": "hi"}]),
            json!({"seed": 1, "tools": [{"type": "function"}], "tool_choice": "none",
                   "response_format": {"type": "json_object"}}),
        );
        let body = chat_body("llama3", &plain, &PROVIDER);
        assert_eq!(
            body["options"],
            json!({"temperature": 0.0, "num_predict": 256, "seed": 1})
        );
        assert_eq!(body.get("tools"), None, "tool_choice none");
        assert_eq!(body["format"], "json");
    }

    #[test]
    fn tool_calls_are_the_answer_and_content_when_there_are_none() {
        let answer = |message: Value| {
            serde_json::from_value::<ResponseMessage>(message)
                .unwrap()
                .answer()
        };
        assert_eq!(
            answer(json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "weather", "arguments": {"unit": "C", "city": "Paris"}}},
                {"function": {"name": "time", "arguments": {}}},
            ]})),
            "weather {\"city\":\"Paris\",\"unit\":\"C\"}\ntime {}"
        );
        assert_eq!(
            answer(json!({"content": "Sunny.", "tool_calls": []})),
            "Sunny."
        );
        assert_eq!(answer(json!({"content": "Sunny."})), "Sunny.");
        assert_eq!(answer(json!({"content": ""})), "");
    }

    #[test]
    fn text_with_a_tool_call_answers_with_the_call() {
        let message: ResponseMessage = serde_json::from_value(json!({
            "content": "Let me check.",
            "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}],
        }))
        .unwrap();
        assert_eq!(message.answer(), "weather {\"city\":\"Paris\"}");
    }
}
