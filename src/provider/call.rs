//! The call vocabulary every part of a provider speaks: what is sent ([`Request`]), what one
//! attempt returns ([`Completion`] or [`CallError`]), and what a request comes to after retries
//! ([`Outcome`]). Plain data, so the runner, the cache and the result lines share it without
//! knowing any adapter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

/// What is sent for one trial of one item.
#[derive(Debug, Clone)]
pub struct Request {
    pub system: Option<String>,
    /// The rendered prompt: what a model is sent.
    pub prompt: String,
    /// The item's raw question and context, for providers that work on them directly (the
    /// reference answerers, templated HTTP bodies).
    pub question: String,
    pub context: Vec<String>,
    /// Which trial of the item this is: part of the cache key, so repeats are real repeats.
    pub trial: u32,
    /// A logged conversation replayed as it was sent (`goldgate shadow`). Providers that speak
    /// chat send its messages and parameters; the others get `system` and `prompt`, which hold
    /// the same conversation flattened.
    pub chat: Option<Arc<Chat>>,
}

/// A conversation as a production request carried it, in the OpenAI chat shape: the messages
/// (tool calls and their logged results among them: a replay never executes a tool) and the
/// parameters the request set. The model is not among them: each provider names its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Chat {
    /// `{"role": …, "content": …, "tool_calls"?: […], "tool_call_id"?: …, "name"?: …}`.
    pub messages: Vec<Value>,
    /// `temperature`, `top_p`, `max_tokens`, `seed`, `stop`, `response_format`, `tools`,
    /// `tool_choice` and whatever else the request body held, but never `model`, `messages`,
    /// `stream` or credentials.
    pub params: Map<String, Value>,
}

impl Chat {
    /// The conversation for a provider that takes one prompt: the system and developer
    /// messages as the system prompt; a lone user message as the prompt; else the transcript,
    /// one `role: text` paragraph per message (tool calls written as
    /// [`tool_calls_text`] writes them).
    pub fn flatten(&self) -> (Option<String>, String) {
        let text = |m: &Value| content_text(&m["content"]);
        let is_system = |m: &&Value| matches!(m["role"].as_str(), Some("system" | "developer"));
        let system: Vec<String> = self
            .messages
            .iter()
            .filter(is_system)
            .map(text)
            .filter(|t| !t.trim().is_empty())
            .collect();
        let rest: Vec<&Value> = self.messages.iter().filter(|m| !is_system(m)).collect();
        let prompt = match rest.as_slice() {
            [only] if only["role"] == "user" => text(only),
            _ => rest
                .iter()
                .map(|m| {
                    let calls = m["tool_calls"].as_array().map(|calls| {
                        tool_calls_text(calls.iter().map(|c| {
                            (
                                c["function"]["name"].as_str().unwrap_or_default(),
                                c["function"]["arguments"].as_str().unwrap_or_default(),
                            )
                        }))
                    });
                    let body = [Some(text(m)), calls]
                        .into_iter()
                        .flatten()
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n");
                    format!("{}: {body}", m["role"].as_str().unwrap_or("user"))
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
        };
        ((!system.is_empty()).then(|| system.join("\n\n")), prompt)
    }
}

/// A message's text: the string, or the text parts of a list joined by line breaks.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Tool calls as an answer's text, one per line: `get_weather {"city":"Paris"}`, the arguments'
/// JSON re-written with sorted keys (as written when they are not JSON). Production's calls and
/// a replay's are written alike, so comparing the two texts compares the calls.
pub fn tool_calls_text<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, arguments) in calls {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(name);
        out.push(' ');
        match serde_json::from_str::<Value>(arguments) {
            // serde_json's maps are sorted by key: the text is canonical.
            Ok(v) => out.push_str(&v.to_string()),
            Err(_) => out.push_str(arguments.trim()),
        }
    }
    out
}

/// Token counts as the API reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

/// A successful attempt.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    /// `None` when the API gave no usage; the client then estimates with a tokenizer.
    pub usage: Option<Usage>,
    /// When the first token arrived, for streamed answers (time to first token).
    pub first_token: Option<Instant>,
    /// The server's own account of its time, where the API reports one (Ollama's
    /// `total_duration`), recorded beside ours.
    pub server_ms: Option<f64>,
}

impl Completion {
    pub fn text(text: String, usage: Option<Usage>) -> Completion {
        Completion {
            text,
            usage,
            first_token: None,
            server_ms: None,
        }
    }
}

/// The spec's error kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Timeout,
    RateLimited,
    HttpStatus,
    Connect,
    BadResponse,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::HttpStatus,
        ErrorKind::Connect,
        ErrorKind::BadResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Connect => "connect",
            ErrorKind::BadResponse => "bad_response",
        }
    }
}

/// A failed attempt, as data.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CallError {
    pub kind: ErrorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
    /// What the server asked us to wait before the next attempt (`Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// A broken answer that another attempt may well fix: a body or stream cut off before the
    /// server said the answer was complete. Such an answer is `bad_response`, yet retried.
    #[serde(skip)]
    pub transient: bool,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
            transient: false,
        }
    }

    /// An answer the server never finished (an interrupted stream, a cut-off body): recorded as
    /// `bad_response`, and retried like a dropped connection.
    pub fn incomplete(message: impl Into<String>) -> Self {
        CallError {
            transient: true,
            ..CallError::new(ErrorKind::BadResponse, message)
        }
    }
}

/// The outcome of a request after retries, with the measurements the metrics need.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: Result<String, CallError>,
    /// Duration of the successful attempt (send to last byte); `None` for a failed request.
    pub latency: Option<Duration>,
    /// Time to first token of the successful attempt, for streamed answers.
    pub ttft: Option<Duration>,
    pub server_ms: Option<f64>,
    pub attempts: u32,
    pub usage: Usage,
    pub usage_estimated: bool,
    pub cost_usd: f64,
    /// Served from the response cache: the latency is the one recorded when it was fetched.
    pub cached: bool,
}

impl Outcome {
    /// A request that was never made: no attempt, no usage, no cost.
    pub fn not_sent(error: CallError) -> Outcome {
        Outcome {
            result: Err(error),
            latency: None,
            ttft: None,
            server_ms: None,
            attempts: 0,
            usage: Usage::default(),
            usage_estimated: false,
            cost_usd: 0.0,
            cached: false,
        }
    }
}
