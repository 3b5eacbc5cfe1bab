//! `kind = "openai"`: any server that speaks OpenAI's chat completions API (OpenAI, vLLM,
//! llama.cpp's server, LM Studio, Ollama's `/v1`, …).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{ChatMessage, chat_messages, retry_after, status_error};
use super::{CallError, Chat, Completion, ErrorKind, Provider, Request, Usage, tool_calls_text};
use crate::config::ProviderConfig;
use crate::error::{Error, Location, Problem};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// A response larger than this is not an answer: refuse it rather than hold it in memory.
const MAX_BODY_BYTES: usize = 16 << 20;

pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
    stream: bool,
    tokenize: Option<crate::config::TokenizeOptions>,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    /// Ask for a final chunk carrying the usage: streamed answers are priced exactly too.
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ApiUsage>,
    /// llama.cpp's server reports its token counts here, and not always in `usage`.
    #[serde(default)]
    timings: Option<Timings>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    /// `stop`, `length`, …: the server's word that the answer is complete.
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A choice's message, or a streamed chunk's delta of one.
#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    /// What a model that declines says instead of content.
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallPart>>,
}

/// A tool call, or in a stream a fragment of one: the first fragment of a call names it, the
/// following ones carry pieces of its arguments, all under the call's `index`.
#[derive(Deserialize)]
struct ToolCallPart {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionPart>,
}

#[derive(Deserialize)]
struct FunctionPart {
    #[serde(default)]
    name: Option<String>,
    /// JSON text by the API's definition; some servers write the object itself.
    #[serde(default)]
    arguments: Option<Value>,
}

impl FunctionPart {
    fn arguments_text(&self) -> String {
        match &self.arguments {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }
}

impl ChoiceMessage {
    fn answer(self) -> String {
        let calls: Vec<(String, String)> = self
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .filter_map(|call| call.function)
            .map(|f| {
                let arguments = f.arguments_text();
                (f.name.unwrap_or_default(), arguments)
            })
            .collect();
        answer_text(self.content.unwrap_or_default(), &calls, self.refusal)
    }
}

/// What an answer's text is, by the rule production's answers follow too: the tool calls when
/// there are any (written as production's are, so that the two compare), whatever text came
/// with them; else the content; failing that, the refusal.
fn answer_text(content: String, calls: &[(String, String)], refusal: Option<String>) -> String {
    if !calls.is_empty() {
        return tool_calls_text(calls.iter().map(|(n, a)| (n.as_str(), a.as_str())));
    }
    if !content.is_empty() {
        return content;
    }
    refusal.unwrap_or_default()
}

/// One server-sent event of a streamed completion.
#[derive(Deserialize)]
struct ChunkEvent {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ApiUsage>,
    #[serde(default)]
    timings: Option<Timings>,
    /// Servers that fail after the headers were sent report it in an event.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<ApiUsage> for Usage {
    fn from(u: ApiUsage) -> Usage {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
        }
    }
}

/// llama.cpp's own account of a completion (`llama-server`'s `timings`): the prompt tokens it
/// evaluated, those it reused from its prompt cache, and the tokens it generated. Kept as raw
/// JSON: the server writes -1 for a count it does not know, and an odd field here must never
/// cost a whole answer.
#[derive(Deserialize)]
#[serde(transparent)]
struct Timings(serde_json::Value);

impl Timings {
    fn usage(&self) -> Option<Usage> {
        let count = |key: &str| self.0[key].as_u64();
        Some(Usage {
            input: count("prompt_n")?.saturating_add(count("cache_n").unwrap_or(0)),
            output: count("predicted_n")?,
        })
    }
}

/// What the server says when an answer it sent cannot be taken as complete; the likely cause
/// comes first, since that is what the reader has to change.
const NO_FINISH_REASON: &str = "the server did not say the answer was complete (no choice carried a finish_reason), \
     so it was stopped part-way. llama.cpp's Python server stops a running stream whenever another \
     request arrives unless it is started with --interrupt_requests False; a proxy or load balancer \
     that closes idle streams does the same";

/// The checks of `kind = "openai"`'s own options: `[tokenize]`'s endpoint and body field.
pub(super) fn check(path: &Path, cfg: &ProviderConfig) -> Vec<Problem> {
    let at = |field: &str| Location::file(path).field(field);
    let mut problems = Vec::new();
    if let Some(t) = &cfg.tokenize {
        if let Some(problem) = crate::config::http_url_problem(&t.url) {
            problems.push(
                Problem::new(at("tokenize.url"), problem)
                    .fix("write the full endpoint, e.g. url = \"http://127.0.0.1:8000/extras/tokenize/count\""),
            );
        }
        if !matches!(t.field.as_str(), "input" | "content" | "prompt") {
            problems.push(
                Problem::new(
                    at("tokenize.field"),
                    format!("`{}` is not a tokenize body field goldgate knows", t.field),
                )
                .fix("use \"input\" (llama-cpp-python), \"content\" (llama.cpp's llama-server) or \"prompt\" (vLLM)"),
            );
        }
    }
    problems
}

/// The adapter of a `kind = "openai"` file.
pub(super) fn build(
    path: &Path,
    cfg: &ProviderConfig,
    key: Option<SecretString>,
    timeout: Duration,
) -> Result<Arc<dyn Provider>, Error> {
    if cfg.api_key_env.is_none() && cfg.base_url.is_none() {
        return Err(Error::input(
            Location::file(path).field("api_key_env"),
            "the default base_url (api.openai.com) needs a key, and no api_key_env is set",
            "add api_key_env = \"OPENAI_API_KEY\" (and export it), or set base_url to a local server",
        ));
    }
    let adapter = OpenAi::new(cfg, key, timeout).map_err(|e| super::http::client_error(path, e))?;
    Ok(Arc::new(adapter))
}

impl OpenAi {
    pub fn new(
        cfg: &ProviderConfig,
        key: Option<SecretString>,
        timeout: Duration,
    ) -> reqwest::Result<OpenAi> {
        let http = crate::provider::http::client_builder(timeout, cfg.limits.concurrency)
            .default_headers(crate::provider::http::bearer_auth(key.as_ref()))
            .build()?;
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        Ok(OpenAi {
            http,
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            seed: cfg.seed,
            stream: cfg.stream,
            tokenize: cfg.tokenize.clone(),
        })
    }

    /// One text's token count from the server's tokenizer endpoint: `{"count": n}` or
    /// `{"tokens": [...]}`. `None` on any failure: the caller then estimates.
    async fn server_count(
        &self,
        tokenize: &crate::config::TokenizeOptions,
        text: &str,
    ) -> Option<u64> {
        if text.is_empty() {
            return Some(0);
        }
        let mut body = serde_json::Map::new();
        body.insert("model".to_owned(), self.model.clone().into());
        body.insert(tokenize.field.clone(), text.into());
        let response = self
            .http
            .post(&tokenize.url)
            .json(&body)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES)
            .await
            .ok()?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        value["count"]
            .as_u64()
            .or_else(|| value["tokens"].as_array().map(|t| t.len() as u64))
    }

    async fn attempt(&self, request: &Request) -> Result<Completion, CallError> {
        let body = ChatRequest {
            model: &self.model,
            messages: chat_messages(request),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
            stream: self.stream,
            stream_options: self.stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        let post = self.http.post(&self.url);
        let post = match &request.chat {
            Some(chat) => post.json(&replay_body(&body, chat)),
            None => post.json(&body),
        };
        let response = post.send().await.map_err(crate::provider::http::classify)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        if status.is_success() && self.stream && is_event_stream(response.headers()) {
            return read_stream(response).await;
        }
        // A server that ignores `stream: true` answers with one JSON body: take it as such.
        let bytes = crate::provider::http::read_body(response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            return Err(status_error(
                status,
                retry_after,
                crate::provider::http::snippet(&bytes),
            ));
        }
        let parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "the response is not a chat completion: {e}; body: {}",
                    crate::provider::http::snippet(&bytes)
                ),
            )
        })?;
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                "the response has no choices",
            ));
        };
        if choice.finish_reason.is_none() {
            return Err(CallError::incomplete(format!(
                "{NO_FINISH_REASON}; body: {}",
                crate::provider::http::snippet(&bytes)
            )));
        }
        Ok(Completion::text(
            choice.message.answer(),
            parsed
                .usage
                .map(Usage::from)
                .or_else(|| parsed.timings.and_then(|t| t.usage())),
        ))
    }
}

impl Provider for OpenAi {
    fn complete<'a>(
        &'a self,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(self.attempt(request))
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn count_tokens<'a>(
        &'a self,
        request: &'a Request,
        answer: &'a str,
    ) -> BoxFuture<'a, Option<Usage>> {
        Box::pin(async move {
            let tokenize = self.tokenize.as_ref()?;
            let system = match &request.system {
                Some(system) => self.server_count(tokenize, system).await?,
                None => 0,
            };
            Some(Usage {
                input: system + self.server_count(tokenize, &request.prompt).await?,
                output: self.server_count(tokenize, answer).await?,
            })
        })
    }
}

/// The body of a replayed conversation: the provider's own body with the logged messages in
/// place of the prompt's, and every logged parameter over the provider file's, since a replay must
/// ask what production asked. Streaming stays the provider's choice: it is how this adapter reads
/// the answer, not part of the question.
fn replay_body(body: &ChatRequest<'_>, chat: &Chat) -> Value {
    let mut body = serde_json::to_value(body).expect("a request body serializes");
    let fields = body
        .as_object_mut()
        .expect("a struct serializes to an object");
    fields.insert("messages".to_owned(), chat.messages.clone().into());
    // OpenAI refuses a body with both names of the token limit.
    if chat.params.contains_key("max_completion_tokens") {
        fields.remove("max_tokens");
    }
    let logged = chat.params.iter().filter(|(key, _)| {
        !matches!(
            key.as_str(),
            "model" | "messages" | "stream" | "stream_options"
        )
    });
    fields.extend(logged.map(|(key, value)| (key.clone(), value.clone())));
    body
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Read a streamed chat completion (server-sent events) to its `[DONE]`: the deltas' content
/// concatenated, the usage of the final chunk, and the moment the first content arrived.
///
/// The answer is complete only if a choice carried a `finish_reason`: a stream that ends
/// without one — with `[DONE]` or without — was stopped part-way (`bad_response`, retried). An
/// event that is not JSON is a broken answer (`bad_response`, not retried).
async fn read_stream(mut response: reqwest::Response) -> Result<Completion, CallError> {
    let mut reader = StreamReader::default();
    let mut total = 0usize;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        let mut err = crate::provider::http::body_error(e);
        if err.kind == ErrorKind::BadResponse {
            err.message = format!(
                "the stream was cut off after {} event(s) without a finish_reason: {}",
                reader.state.events, err.message
            );
        }
        err
    })? {
        total += chunk.len();
        if total > MAX_BODY_BYTES {
            return Err(CallError::new(
                ErrorKind::BadResponse,
                format!("the streamed response exceeds {} MiB", MAX_BODY_BYTES >> 20),
            ));
        }
        if let Some(completion) = reader.push(&chunk)? {
            return Ok(completion);
        }
    }
    reader.finish()
}

/// [`read_stream`] over a body already received, chunked as it arrived: the way in for the fuzz
/// target (`goldgate::fuzzing`), which has no server to read from.
pub fn read_stream_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Completion, CallError> {
    let mut reader = StreamReader::default();
    for chunk in chunks {
        if let Some(completion) = reader.push(chunk)? {
            return Ok(completion);
        }
    }
    reader.finish()
}

/// One streamed response being read: its event parser and the answer so far, fed chunk by chunk
/// as they arrive (from the server, or from a fuzz target).
#[derive(Default)]
struct StreamReader {
    parser: SseParser,
    state: StreamState,
}

impl StreamReader {
    /// Feed one chunk: the completion once an event ends the stream.
    fn push(&mut self, chunk: &[u8]) -> Result<Option<Completion>, CallError> {
        for data in self.parser.push(chunk) {
            if self.state.event(&data)? {
                return std::mem::take(&mut self.state).finish(true).map(Some);
            }
        }
        Ok(None)
    }

    /// The body ended: a last event without its blank line still counts.
    fn finish(mut self) -> Result<Completion, CallError> {
        if let Some(data) = self.parser.finish()
            && self.state.event(&data)?
        {
            return self.state.finish(true);
        }
        self.state.finish(false)
    }
}

#[derive(Default)]
struct StreamState {
    text: String,
    refusal: String,
    /// The streamed tool calls by their index: name and arguments, as their fragments arrived.
    tool_calls: BTreeMap<u64, (String, String)>,
    usage: Option<Usage>,
    first_token: Option<std::time::Instant>,
    events: usize,
    /// The first `finish_reason` any choice carried.
    finish_reason: Option<String>,
}

impl StreamState {
    /// Take one event's data; `true` when it was `[DONE]`.
    fn event(&mut self, data: &str) -> Result<bool, CallError> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        self.events += 1;
        let chunk: ChunkEvent = serde_json::from_str(data).map_err(|e| {
            CallError::new(
                ErrorKind::BadResponse,
                format!(
                    "event {} of the stream is not a completion chunk: {e}; data: {}",
                    self.events,
                    crate::provider::http::snippet(data.as_bytes())
                ),
            )
        })?;
        if let Some(error) = chunk.error {
            // vLLM and others put an HTTP-like code in the error: a 5xx is worth a retry.
            let code = error["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c));
            let message = error["message"].as_str().map_or_else(
                || crate::provider::http::snippet(error.to_string().as_bytes()),
                str::to_owned,
            );
            let mut err = CallError::new(
                if code.is_some() {
                    ErrorKind::HttpStatus
                } else {
                    ErrorKind::BadResponse
                },
                format!("the stream reported an error: {message}"),
            );
            err.status = code;
            return Err(err);
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                self.delta(delta);
            }
            if self.finish_reason.is_none() {
                self.finish_reason = choice.finish_reason;
            }
        }
        // `usage` is the API's own; llama.cpp's `timings` stand in where a stream has none.
        if let Some(u) = chunk.usage {
            self.usage = Some(u.into());
        } else if let Some(u) = chunk.timings.and_then(|t| t.usage())
            && self.usage.is_none()
        {
            self.usage = Some(u);
        }
        Ok(false)
    }

    fn delta(&mut self, delta: ChoiceMessage) {
        let mut arrived = false;
        for (text, piece) in [
            (&mut self.text, delta.content),
            (&mut self.refusal, delta.refusal),
        ] {
            if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                text.push_str(&piece);
                arrived = true;
            }
        }
        for part in delta.tool_calls.unwrap_or_default() {
            // A server that leaves out the index: a fragment with an id starts a call, any other
            // continues the last one.
            let last = self.tool_calls.keys().next_back().copied();
            let index = part.index.unwrap_or(match (last, &part.id) {
                (Some(last), None) => last,
                (Some(last), Some(_)) => last + 1,
                (None, _) => 0,
            });
            let (name, arguments) = self.tool_calls.entry(index).or_default();
            if let Some(function) = part.function {
                name.push_str(function.name.as_deref().unwrap_or_default());
                arguments.push_str(&function.arguments_text());
            }
            arrived = true;
        }
        if arrived {
            self.first_token.get_or_insert_with(std::time::Instant::now);
        }
    }

    /// The answer, if the stream said it was complete. `done`: the stream ended with `[DONE]`
    /// rather than with the end of the body.
    fn finish(self, done: bool) -> Result<Completion, CallError> {
        if self.finish_reason.is_none() {
            let end = if done {
                "[DONE]"
            } else {
                "the end of the body"
            };
            return Err(CallError::incomplete(format!(
                "the stream ended ({end}) after {} event(s) and {} byte(s) of answer: {NO_FINISH_REASON}",
                self.events,
                self.text.len()
            )));
        }
        // A finish_reason then a cut-off body: the answer is whole, only the usage chunk after
        // it may be missing (then the tokens are estimated).
        let calls: Vec<(String, String)> = self.tool_calls.into_values().collect();
        let refusal = Some(self.refusal).filter(|r| !r.is_empty());
        Ok(Completion {
            text: answer_text(self.text, &calls, refusal),
            usage: self.usage,
            first_token: self.first_token,
            server_ms: None,
        })
    }
}

/// The data of server-sent events, from bytes as they arrive: `data:` lines joined by newlines,
/// dispatched at a blank line; comments, `event:`, `id:` and `retry:` lines are ignored.
#[derive(Default)]
struct SseParser {
    /// Bytes of an incomplete line (a chunk may end anywhere, even inside a UTF-8 character).
    line: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(data) = self.line_done(&line) {
                    events.push(data);
                }
            } else {
                self.line.push(b);
            }
        }
        events
    }

    fn line_done(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        let line = String::from_utf8_lossy(line);
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }

    /// The event left when the stream ends: a last line without its newline, data without its
    /// blank line.
    fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            let _ = self.line_done(&line);
        }
        self.data.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(messages: Value, params: Value) -> Arc<Chat> {
        Arc::new(Chat {
            messages: serde_json::from_value(messages).unwrap(),
            params: serde_json::from_value(params).unwrap(),
        })
    }

    fn request(chat: Option<Arc<Chat>>) -> Request {
        Request {
            system: Some("flattened system".into()),
            prompt: "flattened prompt".into(),
            question: String::new(),
            context: Vec::new(),
            trial: 0,
            chat,
        }
    }

    #[test]
    fn a_replay_sends_the_logged_messages_and_the_logged_parameters_win() {
        let messages = serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        ]);
        let params = serde_json::json!({
            "temperature": 0.7, "top_p": 0.9, "stop": ["END"],
            "tools": [{"type": "function", "function": {"name": "weather"}}],
            "tool_choice": "auto", "stream_options": {"include_usage": false},
        });
        let request = request(Some(chat(messages.clone(), params)));
        let body = ChatRequest {
            model: "replayer",
            messages: chat_messages(&request),
            temperature: Some(0.0),
            max_tokens: Some(256),
            seed: Some(7),
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
        };
        let sent = replay_body(&body, request.chat.as_ref().unwrap());
        assert_eq!(
            sent,
            serde_json::json!({
                "model": "replayer",
                "messages": messages,
                "temperature": 0.7,
                "top_p": 0.9,
                "max_tokens": 256,
                "seed": 7,
                "stop": ["END"],
                "tools": [{"type": "function", "function": {"name": "weather"}}],
                "tool_choice": "auto",
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );

        // Not streaming: no stream fields, whatever the log held.
        let body = ChatRequest {
            stream: false,
            stream_options: None,
            ..body
        };
        let sent = replay_body(&body, request.chat.as_ref().unwrap());
        assert_eq!(sent.get("stream"), None);
        assert_eq!(sent.get("stream_options"), None);
    }

    /// What the log reader keeps for a request that used `max_completion_tokens` (OpenAI's
    /// reasoning models refuse `max_tokens`): it is sent under that name, and the provider
    /// file's `max_tokens` is not sent beside it.
    #[test]
    fn a_logged_max_completion_tokens_replaces_the_provider_max_tokens() {
        let messages = serde_json::json!([{"role": "user", "content": "hi"}]);
        let request = request(Some(chat(
            messages.clone(),
            serde_json::json!({"max_completion_tokens": 9, "reasoning_effort": "low"}),
        )));
        let body = ChatRequest {
            model: "o4-mini",
            messages: chat_messages(&request),
            temperature: None,
            max_tokens: Some(256),
            seed: None,
            stream: false,
            stream_options: None,
        };
        assert_eq!(
            replay_body(&body, request.chat.as_ref().unwrap()),
            serde_json::json!({
                "model": "o4-mini",
                "messages": messages,
                "max_completion_tokens": 9,
                "reasoning_effort": "low",
            })
        );
        // Without a logged limit, the provider file's is sent under its usual name.
        let plain = chat(messages.clone(), serde_json::json!({}));
        let sent = replay_body(&body, &plain);
        assert_eq!(
            (
                sent["max_tokens"].as_u64(),
                sent.get("max_completion_tokens")
            ),
            (Some(256), None)
        );
    }

    #[test]
    fn tool_calls_are_the_answer_and_a_refusal_when_there_is_no_content() {
        let answer = |message: Value| {
            serde_json::from_value::<ChoiceMessage>(message)
                .unwrap()
                .answer()
        };
        let calls = serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "weather", "arguments": "{ \"unit\": \"C\", \"city\": \"Paris\" }"}},
            {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ]});
        assert_eq!(
            answer(calls),
            "weather {\"city\":\"Paris\",\"unit\":\"C\"}\ntime {}"
        );
        let refusal = serde_json::json!({"content": null, "refusal": "I can't help with that."});
        assert_eq!(answer(refusal), "I can't help with that.");
        assert_eq!(
            answer(serde_json::json!({"content": "Sunny.", "tool_calls": []})),
            "Sunny."
        );
        assert_eq!(
            answer(serde_json::json!({"content": null, "tool_calls": null})),
            ""
        );
    }

    #[test]
    fn text_with_a_tool_call_answers_with_the_call() {
        let message = serde_json::json!({"content": "Let me check.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]});
        assert_eq!(
            serde_json::from_value::<ChoiceMessage>(message)
                .unwrap()
                .answer(),
            "weather {\"city\":\"Paris\"}"
        );

        // Streamed: the content before the calls is not the answer either.
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"content":"Let me check."}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        assert_eq!(s.finish(true).unwrap().text, "f {}");
    }

    #[test]
    fn streamed_tool_call_fragments_are_put_together_by_index() {
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"weather","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"time","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        let c = s.finish(true).unwrap();
        assert_eq!(c.text, "weather {\"city\":\"Paris\"}\ntime {}");
        assert!(c.first_token.is_some());

        // Servers that leave out the index: an id starts a call, its absence continues one.
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        assert_eq!(s.finish(true).unwrap().text, "f {\"x\":1}\ng {}");

        // A streamed refusal stands alone.
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"refusal":"I can't "}}]}"#,
            r#"{"choices":[{"delta":{"refusal":"do that."},"finish_reason":"stop"}]}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        assert_eq!(s.finish(true).unwrap().text, "I can't do that.");
    }

    /// The stream is UTF-8 with errors replaced (the EventSource standard's decoding): an invalid
    /// byte in a delta is U+FFFD in the answer, whichever chunk it arrived in. Found by fuzzing:
    /// the answer can then hold more bytes than the body did.
    #[test]
    fn invalid_utf8_in_a_stream_is_replaced_however_it_is_cut() {
        let mut body = b"data: {\"choices\":[{\"delta\":{\"content\":\"a".to_vec();
        body.extend([0xc5; 7]);
        body.extend_from_slice(b"b\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let whole = read_stream_chunks([body.as_slice()]).unwrap();
        assert_eq!(whole.text, format!("a{}b", "\u{fffd}".repeat(7)));
        for size in 1..=16 {
            let cut = read_stream_chunks(body.chunks(size)).unwrap();
            assert_eq!(cut.text, whole.text, "chunks of {size} bytes");
        }
    }

    #[test]
    fn sse_events_survive_any_chunking() {
        let stream =
            "data: {\"a\":1}\n\n: keep-alive\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]";
        for split in 1..stream.len() {
            let mut p = SseParser::default();
            let (a, b) = stream.as_bytes().split_at(split);
            let mut events = p.push(a);
            events.extend(p.push(b));
            events.extend(p.finish());
            assert_eq!(
                events,
                ["{\"a\":1}", "one\ntwo", "[DONE]"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn stream_state_concatenates_deltas_and_takes_the_final_usage() {
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"}}],"usage":null}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        assert!(s.event("[DONE]").unwrap());
        let c = s.finish(true).unwrap();
        assert_eq!(c.text, "Hello");
        assert_eq!(
            c.usage,
            Some(Usage {
                input: 7,
                output: 2
            })
        );
        assert!(c.first_token.is_some());
        let mut s = StreamState::default();
        let e = s.event("{\"choices\": [").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadResponse);
    }

    /// What llama.cpp's Python server sends to a stream it interrupts: the role, then `[DONE]`.
    #[test]
    fn a_stream_without_a_finish_reason_is_incomplete_and_retried() {
        let mut s = StreamState::default();
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#;
        assert!(!s.event(role).unwrap());
        assert!(s.event("[DONE]").unwrap());
        let e = s.finish(true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadResponse);
        assert!(e.transient, "{e:?}");
        assert!(
            e.message.contains("--interrupt_requests False"),
            "{}",
            e.message
        );

        // Content but no finish_reason, and the body simply ends: still not an answer.
        let mut s = StreamState::default();
        assert!(
            !s.event(r#"{"choices":[{"delta":{"content":"Par"}}]}"#)
                .unwrap()
        );
        let e = s.finish(false).unwrap_err();
        assert!(e.message.contains("end of the body"), "{}", e.message);

        // A finish_reason, then the body ends before the usage chunk and [DONE]: a whole answer.
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[{"delta":{"content":"Paris"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        let c = s.finish(false).unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("Paris", None));

        // A model that really says nothing: a finish_reason and no content is a valid, empty answer.
        let mut s = StreamState::default();
        assert!(
            !s.event(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#)
                .unwrap()
        );
        assert_eq!(s.finish(true).unwrap().text, "");
    }

    #[test]
    fn llama_cpp_timings_stand_in_for_a_missing_usage() {
        let mut s = StreamState::default();
        let last = r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"timings":{"prompt_n":3,"cache_n":40,"predicted_n":9,"predicted_ms":12.5}}"#;
        assert!(!s.event(last).unwrap());
        assert_eq!(
            s.finish(true).unwrap().usage,
            Some(Usage {
                input: 43,
                output: 9
            })
        );
        // -1 is llama.cpp's "not known": no usage from it, and the answer still stands.
        let mut s = StreamState::default();
        let unknown = r#"{"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],"timings":{"prompt_n":-1,"cache_n":-1,"predicted_n":-1}}"#;
        assert!(!s.event(unknown).unwrap());
        let c = s.finish(true).unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("x", None));
        let mut s = StreamState::default();
        for data in [
            r#"{"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9}}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"timings":{"prompt_n":3,"predicted_n":9}}"#,
        ] {
            assert!(!s.event(data).unwrap());
        }
        assert_eq!(
            s.finish(true).unwrap().usage.map(|u| u.input),
            Some(50),
            "usage wins over timings"
        );
        // A count at u64's end (found by the sse_stream fuzz target): saturates, never overflows.
        let mut s = StreamState::default();
        let huge = r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}],"timings":{"prompt_n":18446744073709551615,"cache_n":1,"predicted_n":9}}"#;
        assert!(!s.event(huge).unwrap());
        assert_eq!(
            s.finish(true).unwrap().usage.map(|u| u.input),
            Some(u64::MAX)
        );
    }
}
