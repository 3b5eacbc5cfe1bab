//! `kind = "anthropic"`: Anthropic's Messages API.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::http::{
    ChatMessage, content_text, data_url, image_url, logged_max_tokens, logged_stop,
    logged_tool_calls, retry_after, status_error,
};
use super::{CallError, Chat, Completion, ErrorKind, Provider, Request, Usage, tool_calls_text};
use crate::config::ProviderConfig;
use crate::error::{Error, Location, Problem};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

/// The API version this adapter speaks; Anthropic requires the header on every request.
const API_VERSION: &str = "2023-06-01";

/// The API requires `max_tokens`; this is used when the provider file sets none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

const MAX_BODY_BYTES: usize = 16 << 20;

/// Anthropic's own "overloaded" status: a 5xx, retried like one.
const OVERLOADED: u16 = 529;

pub struct Anthropic {
    http: reqwest::Client,
    url: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: u32,
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [ChatMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    usage: Option<ApiUsage>,
    /// `end_turn`, `max_tokens`, …: Anthropic's word that the message is complete.
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    /// A `tool_use` block's tool and arguments.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The rules of `kind = "anthropic"`: its default endpoint needs a key, the API has no seed, and
/// it requires a positive `max_tokens`.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = Vec::new();
    if cfg.api_key_env.is_none() && cfg.base_url.is_none() {
        problems.push(
            Problem::new(
                at("api_key_env"),
                "the default base_url (api.anthropic.com) needs a key, and no api_key_env is set",
            )
            .fix("add api_key_env = \"ANTHROPIC_API_KEY\" (and export it), or set base_url to a proxy that adds it"),
        );
    }
    if cfg.seed.is_some() {
        problems.push(
            Problem::new(at("seed"), "Anthropic's Messages API has no seed")
                .fix("remove seed; use temperature = 0.0 for the most repeatable answers"),
        );
    }
    if cfg.max_tokens == Some(0) {
        problems.push(
            Problem::new(at("max_tokens"), "must be at least 1")
                .fix("remove it (default 1024) or set a positive number"),
        );
    }
    problems
}

/// The adapter of a `kind = "anthropic"` file.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    let adapter =
        Anthropic::new(cfg, key, timeout).map_err(|e| super::http::client_error(path, e))?;
    Ok(Arc::new(adapter))
}

impl Anthropic {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<Anthropic> {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(key) = &key {
            let mut value = HeaderValue::from_str(key.expose_secret())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-key-characters"));
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(headers)
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(Anthropic {
            http,
            url: format!("{}/messages", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let post = self.http.post(&self.url);
        let post = match &request.chat {
            Some(chat) => post.json(&chat_body(
                &self.model,
                chat,
                self.temperature,
                self.max_tokens,
            )),
            None => post.json(&MessagesRequest {
                model: &self.model,
                max_tokens: self.max_tokens,
                system: request.system.as_deref(),
                // The system prompt is a field of its own here, not a message.
                messages: [ChatMessage {
                    role: "user",
                    content: &request.prompt,
                }],
                temperature: self.temperature,
            }),
        };
        let response = post.send().await.map_err(crate::provider::http::classify)?;
        let status = response.status();
        let wait = retry_after(response.headers())
            .or_else(|| ratelimit_reset(response.headers(), SystemTime::now()));
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            let detail = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => format!("{}: {}", b.error.kind, b.error.message),
                Err(_) => crate::provider::http::snippet(&bytes),
            };
            let mut err = status_error(status, wait, detail);
            if status.as_u16() == OVERLOADED {
                err.message
                    .push_str(" (Anthropic is overloaded; retried like a 5xx)");
            } else if status == StatusCode::UNAUTHORIZED {
                err.message
                    .push_str(" (check the key in the variable named by api_key_env)");
            }
            return Err(err);
        }
        let parsed: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not a message: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        // A message without a stop_reason was stopped part-way (a proxy that cut it, a
        // server that gave up). With one, even empty content is the model's real answer.
        if parsed.stop_reason.is_none() {
            return Err(CallError::incomplete(format!(
                "the message has no stop_reason, so it is not complete; body: {}",
                crate::provider::http::snippet(&bytes)
            )));
        }
        Ok(Completion::text(
            answer_text(
                &parsed.content,
                request
                    .chat
                    .as_ref()
                    .is_some_and(|c| c.params.contains_key("tools")),
            ),
            // Prompt caching is never requested, so `input_tokens` is the whole input.
            parsed.usage.map(|u| Usage {
                input: u.input_tokens,
                output: u.output_tokens,
            }),
        ))
    }
}

impl Provider for Anthropic {
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

/// The answer of a message, by the rule production's answers follow too: its tool calls when it
/// has any (written as production's are, so that the two compare), whatever text came with them
/// (Claude often writes a line before a `tool_use`); else its text blocks. Thinking blocks are
/// never the answer.
///
/// A request that offered no tools (every golden-set run) is answered by its text: a `tool_use`
/// there is no answer anyone asked for, and counts only when there is no text at all.
fn answer_text(content: &[ContentBlock], offered_tools: bool) -> String {
    let text: String = content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    if !offered_tools && !text.trim().is_empty() {
        return text;
    }
    let calls: Vec<(&str, String)> = content
        .iter()
        .filter(|b| b.kind == "tool_use")
        .map(|b| {
            let input = b
                .input
                .as_ref()
                .map_or_else(|| "{}".to_owned(), Value::to_string);
            (b.name.as_deref().unwrap_or_default(), input)
        })
        .collect();
    if !calls.is_empty() {
        return tool_calls_text(calls.iter().map(|(name, input)| (*name, input.as_str())));
    }
    text
}

/// A replayed conversation (OpenAI's chat shape) as a Messages API body. The logged parameters
/// win over the provider file's `temperature` and `max_tokens`; those the API has no word for
/// (seed, response_format, …) are left out, since it refuses fields it does not know. Recent
/// Claude models refuse `temperature` and `top_p` together: with a temperature (logged or the
/// provider file's), a logged `top_p` is left out.
fn chat_body(model: &str, chat: &Chat, temperature: Option<f64>, max_tokens: u32) -> Value {
    let params = &chat.params;
    let (system, messages) = turns(&chat.messages);
    let mut body = Map::new();
    body.insert("model".to_owned(), model.into());
    let max_tokens = logged_max_tokens(params)
        .filter(|&n| n > 0)
        .unwrap_or(max_tokens.into());
    body.insert("max_tokens".to_owned(), max_tokens.into());
    if !system.is_empty() {
        body.insert("system".to_owned(), system.join("\n\n").into());
    }
    // OpenAI's temperatures go to 2, Anthropic's to 1: the nearest it takes, not a refusal.
    let logged_temperature = params
        .get("temperature")
        .and_then(Value::as_f64)
        .map(|t| t.clamp(0.0, 1.0));
    match (logged_temperature.or(temperature), params.get("top_p")) {
        (Some(t), _) => {
            body.insert("temperature".to_owned(), t.into());
        }
        (None, Some(top_p)) if top_p.is_number() => {
            body.insert("top_p".to_owned(), top_p.clone());
        }
        _ => {}
    }
    if let Some(stop) = logged_stop(params).filter(|s| !s.is_empty()) {
        body.insert("stop_sequences".to_owned(), stop.into());
    }
    add_tools(&mut body, params, &messages);
    body.insert("messages".to_owned(), messages.into());
    Value::Object(body)
}

/// The logged messages in the Messages API's shape: the system and developer messages' text
/// apart, the others as user and assistant turns of content blocks. A tool's result is the
/// user's turn, and consecutive messages of one role make one turn, since the API wants the two
/// roles to alternate.
fn turns(messages: &[Value]) -> (Vec<String>, Vec<Value>) {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let content = &message["content"];
        let (role, blocks) = match message["role"].as_str().unwrap_or_default() {
            "system" | "developer" => {
                let text = content_text(content);
                if !text.trim().is_empty() {
                    system.push(text);
                }
                continue;
            }
            "assistant" => {
                let mut blocks = content_blocks(content);
                blocks.extend(logged_tool_calls(message).into_iter().map(|call| {
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
                }));
                ("assistant", blocks)
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or_default();
                let mut result = json!({"type": "tool_result", "tool_use_id": id});
                let text = content_text(content);
                if !text.is_empty() {
                    result["content"] = text.into();
                }
                ("user", vec![result])
            }
            _ => ("user", content_blocks(content)),
        };
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            // The API refuses a turn without content.
            _ if blocks.is_empty() => {}
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    (system, turns)
}

/// A message's content as text and image blocks, in order. Blank text is left out: the API
/// refuses a text block without non-whitespace text.
fn content_blocks(content: &Value) -> Vec<Value> {
    let text_block =
        |text: &str| (!text.trim().is_empty()).then(|| json!({"type": "text", "text": text}));
    match content {
        Value::String(text) => text_block(text).into_iter().collect(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match image_url(part) {
                Some(url) => Some(image_block(url)),
                None => part["text"].as_str().and_then(text_block),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn image_block(url: &str) -> Value {
    let source = match data_url(url) {
        Some((media_type, data)) => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        None => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

/// The logged function tools and `tool_choice` in Anthropic's words. `"none"` leaves the tools
/// out, unless the conversation already holds tool blocks: the API refuses those in a request
/// without tools, so then the tools go with a `tool_choice` of none.
fn add_tools(body: &mut Map<String, Value>, params: &Map<String, Value>, turns: &[Value]) {
    let called = called_tools(turns);
    let tools: Vec<Value> = params
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool["type"] == "function")
        .map(|tool| {
            let function = &tool["function"];
            let mut converted = json!({
                "name": function["name"],
                "input_schema": match &function["parameters"] {
                    Value::Object(schema) => Value::Object(schema.clone()),
                    _ => json!({"type": "object"}),
                },
            });
            if let Some(description) = function["description"].as_str() {
                converted["description"] = description.into();
            }
            converted
        })
        .collect();
    if tools.is_empty() {
        if !called.is_empty() {
            // Tool calls in the log without the tools (OpenAI takes that): declare the tools the
            // history calls, so the API takes the history, and let none be called.
            let declared: Vec<Value> = called
                .iter()
                .map(|name| json!({"name": name, "input_schema": {"type": "object"}}))
                .collect();
            body.insert("tools".to_owned(), declared.into());
            body.insert("tool_choice".to_owned(), json!({"type": "none"}));
        }
        return;
    }
    let mut choice = match params.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => {
            if called.is_empty() {
                return;
            }
            Some(json!({"type": "none"}))
        }
        Some(Value::String(choice)) if choice == "required" => Some(json!({"type": "any"})),
        Some(Value::String(choice)) if choice == "auto" => Some(json!({"type": "auto"})),
        Some(choice) => choice["function"]["name"]
            .as_str()
            .map(|name| json!({"type": "tool", "name": name})),
        None => None,
    };
    if params.get("parallel_tool_calls") == Some(&Value::Bool(false))
        && choice.as_ref().is_none_or(|c| c["type"] != "none")
    {
        choice.get_or_insert_with(|| json!({"type": "auto"}))["disable_parallel_tool_use"] =
            true.into();
    }
    body.insert("tools".to_owned(), tools.into());
    if let Some(choice) = choice {
        body.insert("tool_choice".to_owned(), choice);
    }
}

/// The tools the turns' `tool_use` blocks call, once each, in order.
fn called_tools(turns: &[Value]) -> Vec<&str> {
    let mut names = Vec::new();
    let blocks = turns
        .iter()
        .filter_map(|turn| turn["content"].as_array())
        .flatten();
    for block in blocks.filter(|b| b["type"] == "tool_use") {
        let name = block["name"].as_str().unwrap_or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// When a 429 has no `Retry-After`: the latest reset (RFC 3339) among the exhausted
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}` limits.
fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: String| headers.get(name).and_then(|v| v.to_str().ok());
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .into_iter()
        .filter(|limit| {
            header(format!("anthropic-ratelimit-{limit}-remaining"))
                .is_some_and(|r| r.trim() == "0")
        })
        .filter_map(|limit| header(format!("anthropic-ratelimit-{limit}-reset")))
        .filter_map(|reset| {
            time::OffsetDateTime::parse(
                reset.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        })
        .map(|reset| {
            let now = time::OffsetDateTime::from(now);
            Duration::try_from(reset - now)
                .unwrap_or_default()
                .min(super::http::MAX_SERVER_WAIT)
        })
        .max()
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

    #[test]
    fn a_replayed_conversation_becomes_alternating_turns_of_blocks() {
        let chat = chat(
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Rome?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function",
                     "function": {"name": "weather", "arguments": "not json"}},
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "18C"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "21C"}]},
                {"role": "user", "content": "And tomorrow?"},
            ]),
            json!({
                "temperature": 1.4, "top_p": 0.9, "max_tokens": 300, "seed": 3, "stop": "END",
                "response_format": {"type": "json_object"},
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "Today's weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "tool_choice": "required", "parallel_tool_calls": false,
            }),
        );
        assert_eq!(
            chat_body("claude", &chat, Some(0.0), 1024),
            json!({
                "model": "claude",
                "max_tokens": 300,
                "system": "Be brief.\n\nUse metric units.",
                "temperature": 1.0,
                "stop_sequences": ["END"],
                "tools": [{"name": "weather", "description": "Today's weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather in Paris and Rome?"},
                        {"type": "image", "source":
                            {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "c2", "name": "weather", "input": {}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "c1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "c2", "content": "21C"},
                        {"type": "text", "text": "And tomorrow?"},
                    ]},
                ],
            })
        );
    }

    #[test]
    fn the_provider_file_fills_in_what_the_log_left_out() {
        let plain = chat(json!([{"role": "user", "content": "hi"}]), json!({}));
        assert_eq!(
            chat_body("claude", &plain, Some(0.2), 512),
            json!({
                "model": "claude", "max_tokens": 512, "temperature": 0.2,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            })
        );
        let newer = chat(
            json!([{"role": "user", "content": "hi"}]),
            json!({"max_completion_tokens": 64, "temperature": 0.5}),
        );
        let body = chat_body("claude", &newer, Some(0.2), 512);
        assert_eq!(
            (&body["max_tokens"], &body["temperature"]),
            (&json!(64), &json!(0.5))
        );
        assert_eq!(
            chat_body("claude", &plain, None, 512).get("temperature"),
            None
        );
    }

    /// Recent Claude models refuse a request with both: `temperature` goes, `top_p` does not.
    #[test]
    fn temperature_and_top_p_are_never_sent_together() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        let sent = |params: Value, temperature: Option<f64>| {
            let body = chat_body("claude", &chat(hi.clone(), params), temperature, 64);
            (body.get("temperature").cloned(), body.get("top_p").cloned())
        };
        let both = json!({"temperature": 0.3, "top_p": 0.9});
        assert_eq!(sent(both.clone(), None), (Some(json!(0.3)), None));
        assert_eq!(sent(both, Some(0.7)), (Some(json!(0.3)), None));
        // The provider file's temperature with a logged top_p: still only the temperature.
        let top_p = json!({"top_p": 0.9});
        assert_eq!(sent(top_p.clone(), Some(0.7)), (Some(json!(0.7)), None));
        // No temperature anywhere: the logged top_p is sent.
        assert_eq!(sent(top_p, None), (None, Some(json!(0.9))));
        assert_eq!(sent(json!({}), None), (None, None));
    }

    #[test]
    fn tool_choices_read_in_anthropic_words() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let body = |choice: Value, messages: Value| {
            let params = json!({"tools": tools, "tool_choice": choice});
            chat_body("claude", &chat(messages, params), None, 1)
        };
        let ask = json!([{"role": "user", "content": "hi"}]);
        let f = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        assert_eq!(
            body(json!("auto"), ask.clone())["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(body(json!("auto"), ask.clone())["tools"], f);
        assert_eq!(
            body(
                json!({"type": "function", "function": {"name": "f"}}),
                ask.clone()
            )["tool_choice"],
            json!({"type": "tool", "name": "f"})
        );
        let none = body(json!("none"), ask.clone());
        assert_eq!((none.get("tools"), none.get("tool_choice")), (None, None));

        // A history with tool calls is refused without tools: they go along, none to be called.
        let history = json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]);
        let none = body(json!("none"), history.clone());
        assert_eq!(
            (&none["tools"], &none["tool_choice"]),
            (&f, &json!({"type": "none"}))
        );
        let undeclared = chat_body("claude", &chat(history, json!({})), None, 1);
        assert_eq!(
            (&undeclared["tools"], &undeclared["tool_choice"]),
            (&f, &json!({"type": "none"}))
        );
    }

    #[test]
    fn tool_use_is_the_answer_and_text_when_there_is_none() {
        let answer = |content: Value| {
            let blocks: Vec<ContentBlock> = serde_json::from_value(content).unwrap();
            answer_text(&blocks, true)
        };
        assert_eq!(
            answer(json!([
                {"type": "thinking", "thinking": "hmm"},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"unit": "C", "city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "time", "input": {}},
            ])),
            "weather {\"city\":\"Paris\",\"unit\":\"C\"}\ntime {}"
        );
        assert_eq!(
            answer(json!([
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
            ])),
            "Let me check."
        );
        assert_eq!(answer(json!([])), "");
    }

    /// Claude writes a short preamble before a `tool_use`: the call is the answer, not the text.
    #[test]
    fn text_with_a_tool_use_answers_with_the_call() {
        let blocks: Vec<ContentBlock> = serde_json::from_value(json!([
            {"type": "text", "text": "I'll look up the weather in Paris."},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
        ]))
        .unwrap();
        assert_eq!(answer_text(&blocks, true), "weather {\"city\":\"Paris\"}");
        // A request that offered no tools is answered by its words.
        assert_eq!(
            answer_text(&blocks, false),
            "I'll look up the weather in Paris."
        );
    }

    #[test]
    fn reset_headers_of_exhausted_limits_say_how_long_to_wait() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |secs: i64| {
            (time::OffsetDateTime::from(now) + time::Duration::seconds(secs))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_str(&at(3)).unwrap(),
        );
        // Not exhausted: its reset is not a reason to wait.
        h.insert(
            "anthropic-ratelimit-tokens-remaining",
            HeaderValue::from_static("5000"),
        );
        h.insert(
            "anthropic-ratelimit-tokens-reset",
            HeaderValue::from_str(&at(50)).unwrap(),
        );
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_str(&at(-3)).unwrap(),
        );
        assert_eq!(ratelimit_reset(&h, now), Some(Duration::ZERO), "past: now");
        assert_eq!(ratelimit_reset(&HeaderMap::new(), now), None);
    }
}
