//! Captured production traffic, read streaming into [`LoggedRequest`]s: what shadow mode replays.
//!
//! # Formats ([`LogFormat`]) and the fields read
//!
//! - **Request/response lines** (what a gateway or proxy logs), one JSON object a line:
//!   `request` (a chat-completions request body; or `{"headers", "body"}` around one, whose
//!   `headers` are never read), `response` (a `chat.completion`; or `{"status_code", "body"}`
//!   around one), and optionally `latency_ms`, `timestamp` (RFC 3339, or epoch seconds, ms, µs or
//!   ns), `id` (text or number) and `metadata` (an object). Without `timestamp` the response's
//!   `created` is the time; without `id`, the response's `id`. Of the response: the first
//!   choice's `message` (`content`, `tool_calls`, `refusal`) and `finish_reason`, `usage`,
//!   `model`. A response that is null, an error, not HTTP 200 or without choices is unusable.
//! - **OpenAI Batch API** input and output files, joined by `custom_id`. Input lines:
//!   `custom_id`, `url` (only `…/chat/completions` is usable), `body`; `method` is not read.
//!   Output lines: `custom_id`, `response.status_code` (anything but 200 is unusable),
//!   `response.body` (a `chat.completion`), `error` (non-null is unusable). See [`read_logs`]
//!   for which side is held in memory.
//! - **OpenTelemetry GenAI spans**, OTLP/JSON as the file exporter writes it: one
//!   `ExportTraceServiceRequest` a line, `resourceSpans[].scopeSpans[].spans[]` (or the older
//!   `instrumentationLibrarySpans`). A span is a request when it has a `gen_ai.*` attribute and
//!   its `gen_ai.operation.name`, if any, is `chat`, `text_completion` or `generate_content`;
//!   other spans (HTTP, tools, agents, embeddings) are counted as ignored. Read:
//!   `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions`,
//!   `gen_ai.tool.definitions` (JSON strings, or structured values, on the span or on one of its
//!   events such as `gen_ai.client.inference.operation.details`); the older `gen_ai.prompt` /
//!   `gen_ai.completion` (span attributes or `gen_ai.content.prompt` / `.completion` events: a
//!   JSON list of `{role, content}` or plain text) and the indexed
//!   `gen_ai.prompt.N.role/content`, `gen_ai.completion.N.role/content/finish_reason`;
//!   `gen_ai.request.model`, `.temperature`, `.top_p`, `.max_tokens`, `.seed`,
//!   `.stop_sequences` (`.frequency_penalty`, `.presence_penalty`, `.top_k` go to
//!   [`Params::other`]), `gen_ai.response.model`, `gen_ai.response.finish_reasons`,
//!   `gen_ai.usage.input_tokens` / `output_tokens` (or `prompt_tokens` / `completion_tokens`),
//!   `startTimeUnixNano` (the timestamp) and `endTimeUnixNano` (with it, the latency),
//!   `status.code` (an error status is unusable), `spanId` (the id). Every other span and
//!   resource attribute (`service.name`, `gen_ai.provider.name`, …) goes to the metadata with
//!   `trace_id` and `span_name`. Message text is opt-in in the conventions: a span without it
//!   (or without output messages) is counted as unusable, never an error.
//! - **goldgate's own `results.jsonl`**: the lines of one model ([`ReadOptions::results_side`],
//!   the current model by default) with `ok` and an `answer`. The request is rebuilt from the
//!   run's `items.jsonl` beside the file: a single user message, the item rendered through
//!   [`ReadOptions::results_prompt`] (goldgate's default prompt unless given), after the
//!   [`ReadOptions::results_system`] message if any. Reconstructable: the item's question and
//!   context, the answer, latency, token counts, the model name and the run's start time (from
//!   `run.json`). Not reconstructable: the evaluation's own prompt template and system message
//!   (`run.json` keeps only their hash), the provider's parameters (temperature, max tokens),
//!   the exact body sent. Without `items.jsonl` the lines are unusable, and so are failed
//!   requests (`ok: false`) and pruned answers; the other model's lines are ignored.
//!
//! # What is dropped on read
//!
//! Credentials never reach a [`LoggedRequest`]: in the request body (messages, parameters, tool
//! definitions, nested objects of any depth), in `metadata`, and in OTel attributes, every field
//! whose name (its last dotted segment, any case, `-` as `_`) is `authorization`,
//! `proxy_authorization`, `cookie`, `set_cookie`, `apikey` or ends in `api_key` (`api_key`,
//! `api-key`, `x-api-key`, `openai_api_key`) is removed, and so is a header-list element
//! naming one (`{"name": "Authorization", "value": …}`, `["Authorization", …]`). Keys directly
//! under a JSON Schema's `properties` are names, not values, and are kept. Text *inside*
//! messages is left as it is: that is [`LoggedRequest::redact`]'s work.
//!
//! # Memory
//!
//! Files are read a line at a time (gzip streamed, found by its magic bytes); a line longer
//! than 64 MiB is skipped as malformed. Beyond one line: the Batch join table, the
//! de-duplication set (a 64-bit fingerprint per distinct request, about 16 bytes with the set's
//! overhead), a results file's items, and with sampling the sample (see [`read_logs`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Location, Problem};
use crate::prompt::PromptTemplate;
use crate::provider::Usage;
use crate::record::Side;
use crate::shadow::redact::Redactor;

/// How many malformed lines and unusable records a report shows; the rest are counted.
pub const FIRST_FEW: usize = 5;

/// The longest line read; a longer one is skipped as malformed, so that a file with no line
/// breaks (a binary, a pretty-printed dump) cannot take all memory.
pub const MAX_LINE: usize = 64 << 20;

/// How many non-empty lines auto-detection looks at before it gives up on a file.
const SNIFF_LINES: usize = 5;

/// The shape of a traffic log.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// `{"request": …, "response": …}` lines, as a gateway or proxy logs them.
    RequestResponse,
    /// OpenAI Batch API input and output files, joined by `custom_id`.
    Batch,
    /// OpenTelemetry GenAI spans, OTLP/JSON, one export request a line.
    Otel,
    /// goldgate's own `results.jsonl`, with `items.jsonl` beside it.
    Results,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::RequestResponse => "request-response",
            LogFormat::Batch => "batch",
            LogFormat::Otel => "otel",
            LogFormat::Results => "results",
        }
    }
}

/// What one file was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    RequestResponse,
    BatchInput,
    BatchOutput,
    Otel,
    Results,
    /// No non-empty line: nothing to read.
    Empty,
}

impl FileKind {
    pub fn format(self) -> Option<LogFormat> {
        match self {
            FileKind::RequestResponse => Some(LogFormat::RequestResponse),
            FileKind::BatchInput | FileKind::BatchOutput => Some(LogFormat::Batch),
            FileKind::Otel => Some(LogFormat::Otel),
            FileKind::Results => Some(LogFormat::Results),
            FileKind::Empty => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FileKind::RequestResponse => "a request/response log",
            FileKind::BatchInput => "a Batch API input file",
            FileKind::BatchOutput => "a Batch API output file",
            FileKind::Otel => "OpenTelemetry spans (OTLP/JSON)",
            FileKind::Results => "a goldgate results.jsonl",
            FileKind::Empty => "empty",
        }
    }
}

/// Where a logged request came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The file, as given (for a Batch pair, the input file).
    pub file: PathBuf,
    /// The line, from 1 (for a Batch pair, the input's line).
    pub line: usize,
    /// The log's own id: the line's `id` (or the response's), the Batch `custom_id`, the OTel
    /// `spanId`, the golden item's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One message of a logged conversation, as a replay sends it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// As logged: `system`, `developer`, `user`, `assistant`, `tool`, ….
    pub role: String,
    /// The text: `content` when it is a string, else its text parts joined by line breaks.
    #[serde(default)]
    pub content: String,
    /// `content` as recorded when it was a list of parts (images, audio, files among them): what
    /// a replay sends where it can. For OTel, the parts that are neither text nor tool calls, in
    /// the conventions' shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Value>,
    /// The tool calls an assistant message made, as recorded. Never executed: a replay sends
    /// them back with the logged tool results that follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result, the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn text(role: &str, content: String) -> Message {
        Message {
            role: role.to_owned(),
            content,
            parts: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
}

/// A tool call as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, not necessarily valid).
    pub arguments: String,
}

/// The request parameters worth replaying, and the rest of the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `max_tokens` as logged (OTel: `gen_ai.request.max_tokens`). A request body that used
    /// `max_completion_tokens` keeps it in [`Params::other`] under that name, so a replay sends
    /// the key production sent (OpenAI's reasoning models refuse `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Every other field of the request body (`max_completion_tokens` among them), as recorded,
    /// for a replay to send: without
    /// `model`, `messages`, the fields above, `stream` and `stream_options` (how the answer
    /// travelled, which the replaying provider decides) and credentials.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub other: Map<String, Value>,
}

/// What production answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Production {
    /// The answer's text (its text parts joined); empty when it only called tools.
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The model's refusal, where the API reports one apart from the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The model that answered, as logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// As logged: another environment's latency, shown, never compared with a replay's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// One usable logged request with its production answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub source: Provenance,
    pub format: LogFormat,
    /// The model the request named (a replay names its own instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub params: Params,
    pub production: Production,
    /// When the request was made, in UTC.
    #[serde(default, with = "rfc3339", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl LoggedRequest {
    /// A fingerprint of what was asked — the messages and parameters, not the model, the answer,
    /// the time or where it was logged: two requests with one fingerprint are the same request.
    /// The first 64 bits of a SHA-256 of their JSON (object keys in order).
    pub fn fingerprint(&self) -> u64 {
        use sha2::{Digest, Sha256};
        struct Hashing(Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut h = Hashing(Sha256::new());
        serde_json::to_writer(&mut h, &(&self.messages, &self.params))
            .expect("messages and parameters serialise");
        let digest = h.0.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 has 8 bytes"))
    }

    /// Redact every text of the request that came from a user or a model: the messages (text,
    /// parts, participant names, tool-call arguments), the production answer, the metadata and
    /// the other body fields. The provenance, the model names, the tool definitions and the
    /// named parameters stay.
    pub fn redact(&mut self, redactor: &Redactor) {
        for m in &mut self.messages {
            redactor.redact_string(&mut m.content);
            if let Some(name) = &mut m.name {
                redactor.redact_string(name);
            }
            if let Some(parts) = &mut m.parts {
                redactor.redact_json(parts);
            }
            for call in &mut m.tool_calls {
                redactor.redact_string(&mut call.arguments);
            }
        }
        let p = &mut self.production;
        redactor.redact_string(&mut p.text);
        if let Some(refusal) = &mut p.refusal {
            redactor.redact_string(refusal);
        }
        for call in &mut p.tool_calls {
            redactor.redact_string(&mut call.arguments);
        }
        for value in self
            .metadata
            .values_mut()
            .chain(self.params.other.values_mut())
        {
            redactor.redact_json(value);
        }
    }
}

/// A seeded sample of the usable requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// How many to keep (all, if there are fewer).
    pub n: usize,
    pub seed: u64,
    /// A metadata field (a key, or a dotted path into nested objects) whose values are strata:
    /// each stratum gets its proportional share of `n` (largest remainders), so every share is
    /// within one of exact. Requests without the field form one stratum of their own.
    pub stratify: Option<String>,
}

/// How logs are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The format of every file, or `None` to recognise each one.
    pub format: Option<LogFormat>,
    /// The first malformed line is an error instead of skipped and counted.
    pub strict: bool,
    /// Keep the first of identical requests ([`LoggedRequest::fingerprint`]); count the rest.
    pub dedup: bool,
    /// Keep requests made at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Keep requests made before this instant.
    pub until: Option<OffsetDateTime>,
    pub sample: Option<Sample>,
    /// Which model of a `results.jsonl` stands for production.
    pub results_side: Side,
    /// The prompt a `results.jsonl`'s items are rendered through; goldgate's default if `None`.
    pub results_prompt: Option<PromptTemplate>,
    /// A system message put before each rebuilt `results.jsonl` request.
    pub results_system: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            strict: false,
            dedup: false,
            since: None,
            until: None,
            sample: None,
            results_side: Side::Current,
            results_prompt: None,
            results_system: None,
        }
    }
}

/// One skipped line or record, and why.
#[derive(Debug, Clone)]
pub struct Finding {
    pub at: Location,
    pub why: String,
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 2)?;
        st.serialize_field("at", &self.at.to_string())?;
        st.serialize_field("why", &self.why)?;
        st.end()
    }
}

/// Lines or records skipped for one kind of reason: how many, the first few, and (for
/// unusable ones) how many for each reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Findings {
    pub count: usize,
    pub first: Vec<Finding>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_reason: BTreeMap<&'static str, usize>,
}

impl Findings {
    fn wants_more(&self) -> bool {
        self.first.len() < FIRST_FEW
    }

    /// Count one; keep it if it is among the first few (`at` is `None` past them).
    fn add(&mut self, at: Option<Location>, why: impl FnOnce() -> String) {
        self.count += 1;
        if let Some(at) = at {
            self.first.push(Finding { at, why: why() });
        }
    }
}

/// What one file was and gave.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub kind: FileKind,
    pub gzip: bool,
    pub lines: usize,
    /// Requests parsed from this file (a Batch pair's, on its input file).
    pub usable: usize,
    /// The last line was cut off (a log copied while written, a truncated gzip): ignored.
    pub torn_tail: bool,
}

/// How one stratum of a sample came out.
#[derive(Debug, Clone, Serialize)]
pub struct Stratum {
    /// The field's value (JSON text when it is not a string); `None`: the field was missing.
    pub value: Option<String>,
    pub seen: usize,
    pub kept: usize,
}

/// The sample frame: what a sample was drawn from, and how.
#[derive(Debug, Clone, Serialize)]
pub struct SampleFrame {
    pub n: usize,
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stratify: Option<String>,
    pub strata: Vec<Stratum>,
}

/// What reading the logs found. The requests are counted in the order they are filtered:
/// `usable` = `undated` + `outside_window` + `duplicates` + `sampled_out` + `delivered`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadReport {
    pub files: Vec<FileReport>,
    /// Lines read, empty ones included.
    pub lines: usize,
    /// Requests parsed with their production answer.
    pub usable: usize,
    /// Lines that are not what their format says (bad JSON, a missing or mistyped field).
    pub malformed: Findings,
    /// Records that are well-formed but cannot be replayed or compared: OTel spans without
    /// message text, Batch inputs without output, error answers, ….
    pub unusable: Findings,
    /// Lines or spans that are not requests at all: non-GenAI spans, the other model's results.
    pub ignored: usize,
    /// Torn last lines, one per file at most.
    pub torn: usize,
    /// With `since`/`until`: requests without a timestamp, dropped (a window is a promise about
    /// what was replayed).
    pub undated: usize,
    pub outside_window: usize,
    pub duplicates: usize,
    pub sampled_out: usize,
    /// Requests handed to the caller.
    pub delivered: usize,
    /// The most entries the Batch join table held at once.
    pub batch_held: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleFrame>,
}

/// Read every file, recognising each one's format unless `options.format` says it, and hand
/// each usable request that passes the filters to `f`; return what was read and skipped.
///
/// Requests arrive in file order, line order within a file; Batch pairs after every other
/// file, in the order of whichever side is streamed. Without sampling, each request is handed
/// over as it is read, and memory is one line plus the tables below. With [`Sample`], the
/// sample is handed over once every file is read, in log order; at most `n` requests per
/// stratum are held until then (`n` × strata in all), with a key each: the smallest keys of a
/// stratum are its sample, so one seed always draws the same sample from the same logs.
///
/// Batch: the side whose files are smaller on disk is held, each entry reduced to what the
/// join needs — an output to its answer (text, tool calls, finish reason, usage, model, time)
/// or why it is unusable; an input to its messages and parameters — keyed by `custom_id`; the
/// other side is streamed against it. Batches that reuse a `custom_id` are matched in file
/// order, first with first.
///
/// An error: a file that cannot be opened or read, a format that cannot be recognised (every
/// file is named with what was recognised of it), a malformed line under `strict`.
pub fn read_logs(
    files: &[PathBuf],
    options: &ReadOptions,
    f: impl FnMut(LoggedRequest),
) -> Result<ReadReport, Error> {
    let kinds = detect(files, options.format)?;
    let mut sink = Sink::new(options, f);
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (i, (path, &(kind, gzip))) in files.iter().zip(&kinds).enumerate() {
        sink.report.files.push(FileReport {
            path: path.clone(),
            kind,
            gzip,
            lines: 0,
            usable: 0,
            torn_tail: false,
        });
        match kind {
            FileKind::RequestResponse => read_request_response(i, &mut sink)?,
            FileKind::Otel => read_otel(i, &mut sink)?,
            FileKind::Results => read_results(i, &mut sink)?,
            FileKind::BatchInput => inputs.push(i),
            FileKind::BatchOutput => outputs.push(i),
            FileKind::Empty => {}
        }
    }
    if !inputs.is_empty() || !outputs.is_empty() {
        read_batch(&inputs, &outputs, &mut sink)?;
    }
    Ok(sink.finish())
}

/// What each file is, and whether it is gzip-compressed: recognised from its first non-empty
/// lines (and for a Batch file with neither `body` nor `response`, its name), or as `format`
/// says. An error names every file with what was recognised of it.
pub fn detect(
    files: &[PathBuf],
    format: Option<LogFormat>,
) -> Result<Vec<(FileKind, bool)>, Error> {
    let mut kinds = Vec::with_capacity(files.len());
    let mut unknown = 0;
    let mut lines = Vec::new();
    for path in files {
        let mut reader = Lines::open(path)?;
        let gzip = reader.gzip;
        let sniffed = match format {
            Some(LogFormat::RequestResponse) => Ok(FileKind::RequestResponse),
            Some(LogFormat::Otel) => Ok(FileKind::Otel),
            Some(LogFormat::Results) => Ok(FileKind::Results),
            Some(LogFormat::Batch) => match sniff(&mut reader)? {
                Ok(kind @ (FileKind::BatchInput | FileKind::BatchOutput | FileKind::Empty)) => {
                    Ok(kind)
                }
                _ => batch_side_by_name(path).ok_or_else(|| {
                    "neither a Batch input (`custom_id`, `body`) nor output (`custom_id`, `response`) file, nor named so".to_owned()
                }),
            },
            None => sniff(&mut reader)?,
        };
        match &sniffed {
            Ok(kind) => lines.push(format!("  {}: {}", path.display(), kind.describe())),
            Err(why) => {
                unknown += 1;
                lines.push(format!("  {}: {why}", path.display()));
            }
        }
        kinds.push(sniffed.map(|kind| (kind, gzip)));
    }
    if unknown > 0 {
        return Err(Error::Usage(format!(
            "cannot tell the format of {unknown} of {} log file(s):\n{}\n  fix: give --format request-response, batch, otel or results, or convert the log to one of them",
            files.len(),
            lines.join("\n")
        )));
    }
    Ok(kinds.into_iter().map(|k| k.expect("no unknown")).collect())
}

/// The instant a `--since` / `--until` flag gives, or the usage error (exit 2) that says how to
/// write one.
pub fn instant_flag(flag: &str, text: Option<&str>) -> Result<Option<OffsetDateTime>, Error> {
    text.map(|t| {
        parse_instant(t).ok_or_else(|| {
            Error::Usage(format!(
                "--{flag} {t}: not an instant; write RFC 3339 (2025-01-31T00:00:00Z) or epoch seconds"
            ))
        })
    })
    .transpose()
}

/// Parse an instant given on a command line or in a log: RFC 3339 (any offset; returned in
/// UTC), or an epoch number in seconds, milliseconds, microseconds or nanoseconds (told apart by
/// size: below 10^11 seconds, i.e. before the year 5138, and so on by factors of 1000).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.to_offset(time::UtcOffset::UTC));
    }
    if let Ok(n) = text.parse::<i128>() {
        return epoch_nanos(n).and_then(at_nanos);
    }
    text.parse::<f64>().ok().and_then(epoch_f64)
}

// ---------------------------------------------------------------------------------------------
// Lines

/// A file's lines, decompressed when it is gzip.
pub(crate) struct Lines {
    reader: Box<dyn BufRead>,
    path: PathBuf,
    gzip: bool,
    pub(crate) number: usize,
    max: usize,
    /// The line just read, without its line break.
    buf: Vec<u8>,
    done: bool,
}

pub(crate) enum Next {
    /// A line in `buf`; `complete` when it ended with a line break.
    Line {
        complete: bool,
    },
    TooLong,
    /// A gzip stream that ends early: what came before was read, the rest is lost.
    Cut,
    End,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> Result<Lines, Error> {
        let file = std::fs::File::open(path).map_err(|e| {
            Error::input(
                Location::file(path),
                format!("cannot open the log: {e}"),
                "check the path",
            )
        })?;
        let mut raw = BufReader::with_capacity(1 << 16, file);
        let head = raw.fill_buf().map_err(|e| read_error(path, e))?;
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        Ok(Lines {
            reader,
            path: path.to_owned(),
            gzip,
            number: 0,
            max: MAX_LINE,
            buf: Vec::new(),
            done: false,
        })
    }

    pub(crate) fn next(&mut self) -> Result<Next, Error> {
        self.buf.clear();
        if self.done {
            return Ok(Next::End);
        }
        let read = (&mut self.reader)
            .take(self.max as u64 + 1)
            .read_until(b'\n', &mut self.buf);
        let n = match read {
            Ok(n) => n,
            Err(e) if self.gzip && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.done = true;
                self.number += 1;
                return Ok(Next::Cut);
            }
            Err(e) => return Err(read_error(&self.path, e)),
        };
        if n == 0 {
            self.done = true;
            return Ok(Next::End);
        }
        self.number += 1;
        let complete = self.buf.last() == Some(&b'\n');
        if !complete && self.buf.len() > self.max {
            self.buf.clear();
            self.reader
                .skip_until(b'\n')
                .map_err(|e| read_error(&self.path, e))?;
            return Ok(Next::TooLong);
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        if self.number == 1 && self.buf.starts_with(b"\xef\xbb\xbf") {
            self.buf.drain(..3);
        }
        Ok(Next::Line { complete })
    }

    pub(crate) fn line(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn is_blank(&self) -> bool {
        self.buf.iter().all(u8::is_ascii_whitespace)
    }
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::input(
        Location::file(path),
        format!("cannot read the log: {e}"),
        "check that the file is a complete text or gzip file",
    )
}

/// What the first non-empty lines of a file say it is, or what was recognised instead.
fn sniff(lines: &mut Lines) -> Result<Result<FileKind, String>, Error> {
    let mut first_seen: Option<String> = None;
    let mut looked = 0;
    while looked < SNIFF_LINES {
        let complete = match lines.next()? {
            Next::End | Next::Cut => break,
            Next::TooLong => {
                looked += 1;
                first_seen.get_or_insert_with(|| {
                    format!("line {} is longer than {MAX_LINE} bytes", lines.number)
                });
                continue;
            }
            Next::Line { complete } => complete,
        };
        if lines.is_blank() {
            continue;
        }
        looked += 1;
        let seen = match serde_json::from_slice::<Value>(lines.line()) {
            Ok(Value::Object(m)) => match kind_of(&m, &lines.path) {
                Some(kind) => return Ok(Ok(kind)),
                None => {
                    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                    keys.sort_unstable();
                    let shown: Vec<String> =
                        keys.iter().take(8).map(|k| format!("`{k}`")).collect();
                    format!(
                        "line {} is a JSON object with {}{}, not a known log shape",
                        lines.number,
                        if keys.is_empty() {
                            "no keys".to_owned()
                        } else {
                            format!("keys {}", shown.join(", "))
                        },
                        if keys.len() > 8 { ", …" } else { "" }
                    )
                }
            },
            Ok(other) => format!(
                "line {} is JSON but not an object ({})",
                lines.number,
                json_type(&other)
            ),
            Err(_) if !complete => continue,
            Err(e) => format!("line {} is not JSON ({e})", lines.number),
        };
        first_seen.get_or_insert(seen);
    }
    Ok(first_seen.map_or(Ok(FileKind::Empty), Err))
}

fn kind_of(m: &Map<String, Value>, path: &Path) -> Option<FileKind> {
    if m.contains_key("resourceSpans") {
        return Some(FileKind::Otel);
    }
    if m.contains_key("request") {
        return Some(FileKind::RequestResponse);
    }
    if m.contains_key("custom_id") {
        if m.contains_key("body") {
            return Some(FileKind::BatchInput);
        }
        if m.contains_key("response") {
            return Some(FileKind::BatchOutput);
        }
        return batch_side_by_name(path);
    }
    let side = m.get("model").and_then(Value::as_str);
    if matches!(side, Some("current" | "candidate"))
        && m.contains_key("trial")
        && m.contains_key("ok")
    {
        return Some(FileKind::Results);
    }
    None
}

/// A Batch file's side by its name (`…output…`, `…input…`), where its lines do not say.
fn batch_side_by_name(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.contains("output") {
        Some(FileKind::BatchOutput)
    } else if name.contains("input") {
        Some(FileKind::BatchInput)
    } else {
        None
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// The sink: counting, filters, de-duplication, sampling

/// Why a line or a record was not a usable request.
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
enum Skip {
    Malformed(String),
    Unusable(&'static str, String),
    Ignored,
}

fn malformed(why: impl Into<String>) -> Skip {
    Skip::Malformed(why.into())
}

// Reasons a record is unusable, as the report counts them.
const NO_TEXT: &str = "OTel span without message text";
const NO_ANSWER: &str = "no production answer";
const ERROR_ANSWER: &str = "production answered with an error";
const NO_OUTPUT: &str = "Batch input without output";
const NO_INPUT: &str = "Batch output without input";
const NOT_CHAT: &str = "not a chat completion";
const NO_MESSAGES: &str = "no messages";
const NO_ITEM: &str = "results line without its item";

struct Sink<'o, F> {
    options: &'o ReadOptions,
    f: F,
    report: ReadReport,
    seen: HashSet<u64>,
    sampler: Option<Sampler>,
}

impl<'o, F: FnMut(LoggedRequest)> Sink<'o, F> {
    fn new(options: &'o ReadOptions, f: F) -> Self {
        Sink {
            options,
            f,
            report: ReadReport::default(),
            seen: HashSet::new(),
            sampler: options.sample.clone().map(Sampler::new),
        }
    }

    fn at(&self, file: usize, line: usize) -> Location {
        Location::file(&self.report.files[file].path).line(line)
    }

    fn line(&mut self, file: usize) {
        self.report.lines += 1;
        self.report.files[file].lines += 1;
    }

    /// A line or record was skipped: count it, or under `strict` stop at a malformed one. A
    /// malformed last line without its line break is a torn tail, not a malformed line.
    fn skip(&mut self, file: usize, line: usize, complete: bool, skip: Skip) -> Result<(), Error> {
        match skip {
            Skip::Malformed(_) if !complete => {
                self.report.torn += 1;
                self.report.files[file].torn_tail = true;
            }
            Skip::Malformed(why) => {
                if self.options.strict {
                    return Err(Problem::new(
                        self.at(file, line),
                        format!("malformed log line: {why}"),
                    )
                    .fix("correct or remove the line; without --strict, malformed lines are skipped and counted")
                    .into());
                }
                let at = self
                    .report
                    .malformed
                    .wants_more()
                    .then(|| self.at(file, line));
                self.report.malformed.add(at, || why);
            }
            Skip::Unusable(reason, why) => {
                let at = self
                    .report
                    .unusable
                    .wants_more()
                    .then(|| self.at(file, line));
                *self.report.unusable.by_reason.entry(reason).or_default() += 1;
                self.report.unusable.add(at, || format!("{reason}: {why}"));
            }
            Skip::Ignored => self.report.ignored += 1,
        }
        Ok(())
    }

    fn offer(&mut self, file: usize, r: LoggedRequest) {
        self.report.usable += 1;
        self.report.files[file].usable += 1;
        let o = self.options;
        if o.since.is_some() || o.until.is_some() {
            let Some(t) = r.timestamp else {
                self.report.undated += 1;
                return;
            };
            if o.since.is_some_and(|s| t < s) || o.until.is_some_and(|u| t >= u) {
                self.report.outside_window += 1;
                return;
            }
        }
        let fingerprint = (o.dedup || self.sampler.is_some()).then(|| r.fingerprint());
        if o.dedup && !self.seen.insert(fingerprint.expect("computed for dedup")) {
            self.report.duplicates += 1;
            return;
        }
        match &mut self.sampler {
            Some(sampler) => sampler.offer(fingerprint.expect("computed for sampling"), r),
            None => {
                self.report.delivered += 1;
                (self.f)(r);
            }
        }
    }

    fn finish(mut self) -> ReadReport {
        if let Some(sampler) = self.sampler.take() {
            let (kept, frame) = sampler.finish();
            let total: usize = frame.strata.iter().map(|s| s.seen).sum();
            self.report.sampled_out = total - kept.len();
            self.report.delivered = kept.len();
            self.report.sample = Some(frame);
            kept.into_iter().for_each(&mut self.f);
        }
        self.report
    }
}

/// Seeded, stratified priority sampling: each request gets a key from the seed, its
/// fingerprint and where it was logged; each stratum keeps its `n` smallest keys (any share it
/// can get is at most `n`); at the end each stratum's share is allocated and its smallest keys
/// are kept.
struct Sampler {
    sample: Sample,
    strata: BTreeMap<Option<String>, Reservoir>,
    order: u64,
}

#[derive(Default)]
struct Reservoir {
    seen: usize,
    held: BinaryHeap<Held>,
}

struct Held {
    key: (u64, u64),
    request: LoggedRequest,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl Sampler {
    fn new(sample: Sample) -> Sampler {
        Sampler {
            sample,
            strata: BTreeMap::new(),
            order: 0,
        }
    }

    fn offer(&mut self, fingerprint: u64, request: LoggedRequest) {
        let stratum = self
            .sample
            .stratify
            .as_deref()
            .and_then(|field| stratum_of(&request.metadata, field));
        // Where it was logged tells identical requests apart, and stays put as a log grows.
        let mut key = mix(self.sample.seed ^ mix(fingerprint));
        key = mix(key ^ request.source.line as u64);
        if let Some(id) = &request.source.id {
            key = mix(key ^ fnv1a(id.as_bytes()));
        }
        let order = self.order;
        self.order += 1;
        let reservoir = self.strata.entry(stratum).or_default();
        reservoir.seen += 1;
        if self.sample.n == 0 {
            return;
        }
        if reservoir.held.len() < self.sample.n {
            reservoir.held.push(Held {
                key: (key, order),
                request,
            });
        } else if reservoir
            .held
            .peek()
            .is_some_and(|largest| (key, order) < largest.key)
        {
            reservoir.held.pop();
            reservoir.held.push(Held {
                key: (key, order),
                request,
            });
        }
    }

    /// The sample in log order, and its frame.
    fn finish(self) -> (Vec<LoggedRequest>, SampleFrame) {
        let n = self.sample.n;
        let total: usize = self.strata.values().map(|r| r.seen).sum();
        let shares: Vec<usize> = if total <= n {
            self.strata.values().map(|r| r.seen).collect()
        } else {
            // Largest remainders: each share is floor(n × seen / total), and what is left goes
            // one each to the largest fractions (ties to the first stratum by value).
            let exact: Vec<(usize, u128)> = self
                .strata
                .values()
                .map(|r| {
                    let scaled = n as u128 * r.seen as u128;
                    ((scaled / total as u128) as usize, scaled % total as u128)
                })
                .collect();
            let mut shares: Vec<usize> = exact.iter().map(|&(floor, _)| floor).collect();
            let left = n - shares.iter().sum::<usize>();
            let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
            by_remainder.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
            for &i in by_remainder.iter().take(left) {
                shares[i] += 1;
            }
            shares
        };
        let mut kept: Vec<(u64, LoggedRequest)> = Vec::new();
        let mut strata = Vec::new();
        for ((value, reservoir), share) in self.strata.into_iter().zip(shares) {
            let mut held = reservoir.held.into_sorted_vec();
            held.truncate(share);
            strata.push(Stratum {
                value,
                seen: reservoir.seen,
                kept: held.len(),
            });
            kept.extend(held.into_iter().map(|h| (h.key.1, h.request)));
        }
        kept.sort_by_key(|(order, _)| *order);
        let frame = SampleFrame {
            n,
            seed: self.sample.seed,
            stratify: self.sample.stratify,
            strata,
        };
        (kept.into_iter().map(|(_, r)| r).collect(), frame)
    }
}

/// The stratum of a request: its metadata field `field` (a key, else a dotted path), as text.
/// What `--stratify` samples by, and what the items made from the sample are tagged with.
pub fn stratum_of(metadata: &Map<String, Value>, field: &str) -> Option<String> {
    let value = metadata.get(field).or_else(|| {
        let mut parts = field.split('.');
        let mut v = metadata.get(parts.next()?)?;
        for part in parts {
            v = v.get(part)?;
        }
        Some(v)
    })?;
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// FNV-1a, 64 bits: a stable hash of a short text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: a cheap bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of the chat-completions shapes

/// A chat-completions request body, parsed: what a replay sends.
struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    params: Params,
    /// The body's own `metadata` object (a stored completion's tags), copied for stratifying.
    metadata: Option<Map<String, Value>>,
}

/// A chat completion, parsed.
struct Answer {
    production: Production,
    created: Option<OffsetDateTime>,
    id: Option<String>,
}

fn parse_object(line: &[u8]) -> Result<Map<String, Value>, Skip> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(malformed(format!(
            "not a JSON object but {}",
            json_type(&other)
        ))),
        Err(e) => Err(malformed(format!("not JSON: {e}"))),
    }
}

fn missing(field: &str) -> Skip {
    malformed(format!("missing field `{field}`"))
}

fn take_str(m: &mut Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, Skip> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(format!(
            "`{at}{key}` is {}, not text",
            json_type(&other)
        ))),
    }
}

/// A string or a number, as text (ids are logged as either).
fn take_id(m: &mut Map<String, Value>, key: &str) -> Option<String> {
    match m.remove(key)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn take_f64(m: &mut Map<String, Value>, key: &str, at: &str) -> Result<Option<f64>, Skip> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(malformed(format!(
            "`{at}{key}` is {}, not a number",
            json_type(&other)
        ))),
    }
}

fn take_u64(m: &mut Map<String, Value>, key: &str, at: &str) -> Result<Option<u64>, Skip> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(malformed(format!(
            "`{at}{key}` is {}, not a whole number",
            json_type(&other)
        ))),
    }
}

fn take_i64(m: &mut Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>, Skip> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(malformed(format!(
            "`{at}{key}` is {}, not a whole number",
            json_type(&other)
        ))),
    }
}

fn take_value(m: &mut Map<String, Value>, key: &str) -> Option<Value> {
    m.remove(key).filter(|v| !v.is_null())
}

fn take_object(
    m: &mut Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<Map<String, Value>>, Skip> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(malformed(format!(
            "`{at}{key}` is {}, not an object",
            json_type(&other)
        ))),
    }
}

/// `stop` as logged: a string or a list of strings.
fn stop_list(v: Option<Value>, at: &str) -> Result<Vec<String>, Skip> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Ok(s),
                _ => Err(malformed(format!("`{at}` holds something other than text"))),
            })
            .collect(),
        Some(other) => Err(malformed(format!(
            "`{at}` is {}, not text or a list of text",
            json_type(&other)
        ))),
    }
}

fn parse_chat_request(mut body: Map<String, Value>, at: &str) -> Result<ChatRequest, Skip> {
    drop_secrets_map(&mut body);
    let model = take_str(&mut body, "model", at)?;
    let messages = match body.remove("messages") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(malformed(format!(
                "`{at}messages` is {}, not a list",
                json_type(&other)
            )));
        }
        None => return Err(missing(&format!("{at}messages"))),
    };
    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            parse_message(m).map_err(|why| malformed(format!("`{at}messages[{i}]`: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Err(Skip::Unusable(
            NO_MESSAGES,
            "the request has no messages".into(),
        ));
    }
    let temperature = take_f64(&mut body, "temperature", at)?;
    let top_p = take_f64(&mut body, "top_p", at)?;
    let max_tokens = take_u64(&mut body, "max_tokens", at)?;
    // `max_completion_tokens` stays in `other` under its own name: a replay sends the key
    // production sent, since OpenAI's reasoning models refuse `max_tokens`. Checked as
    // `max_tokens` is; null is no value. Beside a `max_tokens` it is kept as logged.
    if max_tokens.is_none()
        && let Some(n) = take_u64(&mut body, "max_completion_tokens", at)?
    {
        body.insert("max_completion_tokens".to_owned(), n.into());
    }
    let seed = take_i64(&mut body, "seed", at)?;
    let stop = stop_list(body.remove("stop"), &format!("{at}stop"))?;
    let response_format = take_value(&mut body, "response_format");
    let tools = take_value(&mut body, "tools");
    let tool_choice = take_value(&mut body, "tool_choice");
    body.remove("stream");
    body.remove("stream_options");
    let metadata = body.get("metadata").and_then(Value::as_object).cloned();
    Ok(ChatRequest {
        model,
        messages,
        params: Params {
            temperature,
            top_p,
            max_tokens,
            seed,
            stop,
            response_format,
            tools,
            tool_choice,
            other: body,
        },
        metadata,
    })
}

/// One chat-completions message: `role`, `content` (text, null or a list of parts),
/// `tool_calls` (or the legacy `function_call`), `tool_call_id`, `name`. Anything else on the
/// message (`refusal`, `audio`) is not kept.
fn parse_message(v: Value) -> Result<Message, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("is {}, not an object", json_type(&v)));
    };
    let role = match m.remove("role") {
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("`role` is {}, not text", json_type(&other))),
        None => return Err("missing field `role`".into()),
    };
    let (content, parts) = match m.remove("content") {
        None | Some(Value::Null) => (String::new(), None),
        Some(Value::String(s)) => (s, None),
        Some(Value::Array(parts)) => (text_of_parts(&parts), Some(Value::Array(parts))),
        Some(other) => {
            return Err(format!(
                "`content` is {}, not text or a list of parts",
                json_type(&other)
            ));
        }
    };
    let mut tool_calls = match m.remove("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| parse_tool_call(c).map_err(|why| format!("`tool_calls[{i}]`: {why}")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`tool_calls` is {}, not a list", json_type(&other))),
    };
    if let Some(call) = m.remove("function_call").filter(|v| !v.is_null()) {
        tool_calls.push(parse_function(call).map_err(|why| format!("`function_call`: {why}"))?);
    }
    let text_field = |m: &mut Map<String, Value>, key: &str| match m.remove(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(format!("`{key}` is {}, not text", json_type(&other))),
    };
    Ok(Message {
        role,
        content,
        parts,
        tool_calls,
        tool_call_id: text_field(&mut m, "tool_call_id")?,
        name: text_field(&mut m, "name")?,
    })
}

/// The text parts of a content list (`text`, `input_text`, `output_text`), joined by line breaks.
fn text_of_parts(parts: &[Value]) -> String {
    let mut out = String::new();
    for part in parts {
        let text = match part {
            Value::String(s) => Some(s.as_str()),
            Value::Object(p) => match p.get("type").and_then(Value::as_str) {
                Some("text" | "input_text" | "output_text") | None => {
                    p.get("text").and_then(Value::as_str)
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(text) = text {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    }
    out
}

/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
fn parse_tool_call(v: Value) -> Result<ToolCall, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("is {}, not an object", json_type(&v)));
    };
    let id = take_id(&mut m, "id");
    let function = m
        .remove("function")
        .ok_or_else(|| "missing field `function`".to_owned())?;
    let mut call = parse_function(function).map_err(|why| format!("`function`: {why}"))?;
    call.id = id;
    Ok(call)
}

/// `{"name", "arguments"}`; arguments that are not text are kept as their JSON.
fn parse_function(v: Value) -> Result<ToolCall, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("is {}, not an object", json_type(&v)));
    };
    let name = match m.remove("name") {
        Some(Value::String(s)) => s,
        _ => return Err("missing field `name`".into()),
    };
    Ok(ToolCall {
        id: None,
        name,
        arguments: arguments_text(m.remove("arguments")),
    })
}

fn arguments_text(v: Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

/// A `chat.completion` (or `{"status_code", "body"}` around one): the first choice's message,
/// finish reason, `usage`, `model`, `created`, `id`.
fn parse_completion(v: Value, at: &str) -> Result<Answer, Skip> {
    let mut m = match v {
        Value::Object(m) => m,
        Value::Null => return Err(Skip::Unusable(NO_ANSWER, "the response is null".into())),
        other => {
            return Err(malformed(format!(
                "`{at}` is {}, not an object",
                json_type(&other)
            )));
        }
    };
    if !m.contains_key("choices") && m.contains_key("body") {
        let status = m
            .get("status_code")
            .or_else(|| m.get("status"))
            .and_then(Value::as_u64);
        if let Some(status) = status.filter(|&s| s != 200) {
            return Err(Skip::Unusable(ERROR_ANSWER, format!("HTTP {status}")));
        }
        let body = m.remove("body").expect("checked");
        return parse_completion(body, &format!("{at}body."));
    }
    if let Some(error) = m.get("error").filter(|e| !e.is_null())
        && !m.contains_key("choices")
    {
        return Err(Skip::Unusable(ERROR_ANSWER, error_text(error)));
    }
    let choices = match m.remove("choices") {
        Some(Value::Array(c)) => c,
        Some(other) => {
            return Err(malformed(format!(
                "`{at}choices` is {}, not a list",
                json_type(&other)
            )));
        }
        None => return Err(missing(&format!("{at}choices"))),
    };
    let Some(first) = choices.into_iter().next() else {
        return Err(Skip::Unusable(
            NO_ANSWER,
            "the response has no choices".into(),
        ));
    };
    let Value::Object(mut choice) = first else {
        return Err(malformed(format!("`{at}choices[0]` is not an object")));
    };
    let finish_reason = take_str(&mut choice, "finish_reason", &format!("{at}choices[0]."))?;
    let mut message = take_object(&mut choice, "message", &format!("{at}choices[0]."))?
        .ok_or_else(|| missing(&format!("{at}choices[0].message")))?;
    let refusal = take_str(&mut message, "refusal", "")
        .map_err(|_| malformed(format!("`{at}choices[0].message.refusal` is not text")))?;
    let parsed = parse_message(Value::Object(message))
        .map_err(|why| malformed(format!("`{at}choices[0].message`: {why}")))?;
    let usage = match m.remove("usage") {
        Some(Value::Object(u)) => {
            let count = |a: &str, b: &str| {
                u.get(a)
                    .or_else(|| u.get(b))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            Some(Usage {
                input: count("prompt_tokens", "input_tokens"),
                output: count("completion_tokens", "output_tokens"),
            })
        }
        _ => None,
    };
    let created = m.get("created").and_then(|v| instant_of(v).ok().flatten());
    Ok(Answer {
        production: Production {
            text: parsed.content,
            tool_calls: parsed.tool_calls,
            refusal,
            finish_reason,
            usage,
            model: take_str(&mut m, "model", at)?,
            latency_ms: None,
        },
        created,
        id: take_id(&mut m, "id"),
    })
}

fn error_text(error: &Value) -> String {
    let text = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned),
        other => other.to_string(),
    };
    crate::text::ellipsize(&crate::text::one_line(&text), 200)
}

/// A timestamp as logged: RFC 3339 text, or an epoch number (as a number or as text). `Err`
/// when it is there but neither.
fn instant_of(v: &Value) -> Result<Option<OffsetDateTime>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_instant(s).map(Some).ok_or(()),
        Value::Number(n) => {
            let t = if let Some(i) = n.as_i64() {
                epoch_nanos(i128::from(i)).and_then(at_nanos)
            } else if let Some(u) = n.as_u64() {
                epoch_nanos(i128::from(u)).and_then(at_nanos)
            } else {
                n.as_f64().and_then(epoch_f64)
            };
            t.map(Some).ok_or(())
        }
        _ => Err(()),
    }
}

/// An epoch count in seconds, ms, µs or ns (by size), as nanoseconds.
fn epoch_nanos(n: i128) -> Option<i128> {
    let scale = match n.unsigned_abs() {
        0..100_000_000_000 => 1_000_000_000,
        100_000_000_000..100_000_000_000_000 => 1_000_000,
        100_000_000_000_000..100_000_000_000_000_000 => 1_000,
        _ => 1,
    };
    n.checked_mul(scale)
}

fn epoch_f64(x: f64) -> Option<OffsetDateTime> {
    if !x.is_finite() {
        return None;
    }
    let scale = match x.abs() {
        a if a < 1e11 => 1e9,
        a if a < 1e14 => 1e6,
        a if a < 1e17 => 1e3,
        _ => 1.0,
    };
    at_nanos((x * scale).round() as i128)
}

fn at_nanos(nanos: i128) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Whether a field name names a credential (see the module documentation).
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    let norm: String = last
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    matches!(
        norm.as_str(),
        "authorization" | "proxy_authorization" | "cookie" | "set_cookie" | "apikey"
    ) || norm.ends_with("api_key")
}

/// A header-list element naming a credential: `{"name": "Authorization", "value": …}` or
/// `["Authorization", …]`.
fn is_secret_pair(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.contains_key("value")
                && ["name", "key"]
                    .iter()
                    .any(|k| o.get(*k).and_then(Value::as_str).is_some_and(is_secret_key))
        }
        Value::Array(pair) => pair.len() == 2 && pair[0].as_str().is_some_and(is_secret_key),
        _ => false,
    }
}

fn drop_secrets(v: &mut Value) {
    match v {
        Value::Object(m) => drop_secrets_map(m),
        Value::Array(items) => {
            items.retain(|e| !is_secret_pair(e));
            items.iter_mut().for_each(drop_secrets);
        }
        _ => {}
    }
}

fn drop_secrets_map(m: &mut Map<String, Value>) {
    m.retain(|k, _| !is_secret_key(k));
    for (key, value) in m.iter_mut() {
        match value {
            // A JSON Schema's property names are names, not values: keep them, look inside.
            Value::Object(properties) if key == "properties" => {
                properties.values_mut().for_each(drop_secrets);
            }
            _ => drop_secrets(value),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request/response lines

fn read_request_response<F: FnMut(LoggedRequest)>(
    file: usize,
    sink: &mut Sink<'_, F>,
) -> Result<(), Error> {
    let path = sink.report.files[file].path.clone();
    let mut lines = Lines::open(&path)?;
    loop {
        let complete = match next_line(&mut lines, file, sink)? {
            Some(complete) => complete,
            None => return Ok(()),
        };
        if lines.is_blank() {
            continue;
        }
        match parse_request_response(lines.line(), &path, lines.number) {
            Ok(r) => sink.offer(file, r),
            Err(skip) => sink.skip(file, lines.number, complete, skip)?,
        }
    }
}

/// The next line, counted: `Some(complete)`, or `None` at the end. Lines too long and gzip cuts
/// are counted here.
fn next_line<F: FnMut(LoggedRequest)>(
    lines: &mut Lines,
    file: usize,
    sink: &mut Sink<'_, F>,
) -> Result<Option<bool>, Error> {
    loop {
        match lines.next()? {
            Next::End => return Ok(None),
            Next::Cut => {
                sink.line(file);
                sink.skip(file, lines.number, false, malformed("cut off"))?;
                return Ok(None);
            }
            Next::TooLong => {
                sink.line(file);
                sink.skip(
                    file,
                    lines.number,
                    true,
                    malformed(format!("longer than {MAX_LINE} bytes")),
                )?;
            }
            Next::Line { complete } => {
                sink.line(file);
                return Ok(Some(complete));
            }
        }
    }
}

fn parse_request_response(line: &[u8], path: &Path, number: usize) -> Result<LoggedRequest, Skip> {
    let quick = fast::parse(line, path, number);
    // Every line a unit test reads is also a check that the two paths agree.
    #[cfg(test)]
    if let Some(r) = &quick {
        assert_eq!(
            parse_request_response_slow(line, path, number).as_ref(),
            Ok(r),
            "the fast path disagrees on {}",
            String::from_utf8_lossy(line)
        );
    }
    match quick {
        Some(r) => Ok(r),
        None => parse_request_response_slow(line, path, number),
    }
}

/// Any request/response line, through a `Value` tree: the reference the fast path must match,
/// and the one that words what is wrong with a line.
fn parse_request_response_slow(
    line: &[u8],
    path: &Path,
    number: usize,
) -> Result<LoggedRequest, Skip> {
    let mut top = parse_object(line)?;
    let request = match top.remove("request") {
        Some(Value::Object(r)) => r,
        Some(other) => {
            return Err(malformed(format!(
                "`request` is {}, not an object",
                json_type(&other)
            )));
        }
        None => return Err(missing("request")),
    };
    // A gateway may log the HTTP request around the body; its headers are never read.
    let (request, at) = match request.get("body") {
        Some(Value::Object(_)) if !request.contains_key("messages") => {
            let mut request = request;
            let Some(Value::Object(body)) = request.remove("body") else {
                unreachable!("checked")
            };
            (body, "request.body.")
        }
        _ => (request, "request."),
    };
    let chat = parse_chat_request(request, at)?;
    let answer = match top.remove("response") {
        Some(v) => parse_completion(v, "response.")?,
        None => return Err(missing("response")),
    };
    let latency_ms = take_f64(&mut top, "latency_ms", "")?;
    let timestamp = match top.remove("timestamp") {
        Some(v) => instant_of(&v).map_err(|()| {
            malformed(format!(
                "`timestamp` {} is neither RFC 3339 nor epoch seconds, ms, µs or ns",
                crate::text::ellipsize(&v.to_string(), 40)
            ))
        })?,
        None => None,
    }
    .or(answer.created);
    let id = take_id(&mut top, "id").or(answer.id);
    let mut metadata = take_object(&mut top, "metadata", "")?.unwrap_or_default();
    merge_body_metadata(&mut metadata, chat.metadata);
    drop_secrets_map(&mut metadata);
    Ok(LoggedRequest {
        source: Provenance {
            file: path.to_owned(),
            line: number,
            id,
        },
        format: LogFormat::RequestResponse,
        model: chat.model,
        messages: chat.messages,
        params: chat.params,
        production: Production {
            latency_ms,
            ..answer.production
        },
        timestamp,
        metadata,
    })
}

/// The body's own `metadata` fields, under the log line's (which win).
fn merge_body_metadata(metadata: &mut Map<String, Value>, body: Option<Map<String, Value>>) {
    for (k, v) in body.into_iter().flatten() {
        metadata.entry(k).or_insert(v);
    }
}

/// The request/response lines of the common shape, read in one typed pass: no `Value` tree for
/// the messages, the parameters and the answer, which is where the slow path spends its time.
///
/// Read here: `id`, `timestamp`, `latency_ms`, `metadata` and any other top-level field (which
/// the slow path ignores too); a request body of `model`, `messages`, `temperature`, `top_p`,
/// `max_tokens`, `max_completion_tokens`, `seed`, `stop`, `response_format`, `tools`,
/// `tool_choice`, `stream`, `stream_options`; messages with text or null `content`, `name`,
/// `tool_call_id` and fields the slow path ignores; a `chat.completion` with choices, whose first
/// message has text or null content. Anything else gives `None` and the line goes to the slow
/// path: another body field (it belongs in `Params::other`), a `body` or `status_code`
/// wrapper, content parts, tool or function calls, a message with a `value` (a header pair to
/// drop), an empty list of messages or choices, a key given twice, any mistyped field or any
/// line the slow path would call malformed or unusable — so the slow path alone words errors.
///
/// Every value is read as strictly as `Value` reads it: ignored fields go through `Checked`,
/// not `IgnoredAny`, which lets lone surrogates and out-of-range numbers through.
mod fast {
    use std::borrow::Cow;
    use std::fmt;
    use std::path::{Path, PathBuf};

    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};
    use time::OffsetDateTime;

    use super::{
        LogFormat, LoggedRequest, Message, Params, Production, Provenance, Usage, drop_secrets,
        drop_secrets_map, instant_of, parse_instant,
    };

    /// The line as a [`LoggedRequest`], or `None` for the slow path to read it.
    pub(super) fn parse(line: &[u8], path: &Path, number: usize) -> Option<LoggedRequest> {
        // One check of the whole line is cheaper than `from_slice`'s check of each string; a
        // line that is not UTF-8 is malformed, which the slow path words.
        let text = std::str::from_utf8(line).ok()?;
        // Filled in place: moving the request's parts up through the visitors' return values
        // costs more than reading them.
        let mut r = LoggedRequest {
            source: Provenance {
                file: PathBuf::new(),
                line: number,
                id: None,
            },
            format: LogFormat::RequestResponse,
            model: None,
            messages: Vec::new(),
            params: Params::default(),
            production: Production::default(),
            timestamp: None,
            metadata: Map::new(),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let rest = LineSeed(&mut r).deserialize(&mut de).ok()?;
        de.end().ok()?;
        let timestamp = match rest.timestamp {
            Some(t) => t.instant().ok()?,
            None => None,
        };
        r.timestamp = timestamp.or(rest.created);
        r.source.id = rest
            .id
            .and_then(Lax::id)
            .or_else(|| rest.response_id.and_then(Lax::id));
        drop_secrets_map(&mut r.metadata);
        r.source.file = path.to_owned();
        Some(r)
    }

    /// What the fast path leaves to the slow one; never shown.
    const SLOW: &str = "left to the slow path";

    fn slow<E: de::Error>() -> E {
        E::custom(SLOW)
    }

    /// Note a field as read: `Value` keeps the last of a key given twice, the fast path gives
    /// up.
    fn first<E: de::Error>(seen: &mut bool) -> Result<(), E> {
        if std::mem::replace(seen, true) {
            Err(slow())
        } else {
            Ok(())
        }
    }

    /// Any JSON value, checked as `Value` would read it and dropped.
    struct Checked;

    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(CheckedVisitor)
        }
    }

    struct CheckedVisitor;

    impl<'de> Visitor<'de> for CheckedVisitor {
        type Value = Checked;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            while map.next_entry::<Checked, Checked>()?.is_some() {}
            Ok(Checked)
        }
    }

    /// A value of any type, for the fields the slow path reads by matching on the `Value`'s
    /// type; containers and booleans are checked and dropped.
    enum Lax<'a> {
        Null,
        Text(Cow<'a, str>),
        Number(Number),
        Other,
    }

    impl<'de> Deserialize<'de> for Lax<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(LaxVisitor)
        }
    }

    struct LaxVisitor;

    impl<'de> Visitor<'de> for LaxVisitor {
        type Value = Lax<'de>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Lax<'de>, E> {
            Ok(Lax::Other)
        }
        fn visit_i64<E>(self, v: i64) -> Result<Lax<'de>, E> {
            Ok(Lax::Number(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Lax<'de>, E> {
            Ok(Lax::Number(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Lax<'de>, E> {
            // As `Value` reads it (the parser never gives a non-finite number).
            Ok(Number::from_f64(v).map_or(Lax::Null, Lax::Number))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Lax<'de>, E> {
            Ok(Lax::Text(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Lax<'de>, E> {
            Ok(Lax::Text(Cow::Owned(v.to_owned())))
        }
        fn visit_unit<E>(self) -> Result<Lax<'de>, E> {
            Ok(Lax::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lax<'de>, A::Error> {
            CheckedVisitor.visit_seq(seq).map(|_| Lax::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lax<'de>, A::Error> {
            CheckedVisitor.visit_map(map).map(|_| Lax::Other)
        }
    }

    impl Lax<'_> {
        /// As `take_id` reads it.
        fn id(self) -> Option<String> {
            match self {
                Lax::Text(s) => Some(s.into_owned()),
                Lax::Number(n) => Some(n.to_string()),
                Lax::Null | Lax::Other => None,
            }
        }

        /// As `instant_of` reads it.
        fn instant(&self) -> Result<Option<OffsetDateTime>, ()> {
            match self {
                Lax::Null => Ok(None),
                Lax::Text(s) => parse_instant(s).map(Some).ok_or(()),
                Lax::Number(n) => instant_of(&Value::Number(n.clone())),
                Lax::Other => Err(()),
            }
        }

        /// As `Value::as_u64` reads it.
        fn count(&self) -> Option<u64> {
            match self {
                Lax::Number(n) => n.as_u64(),
                _ => None,
            }
        }
    }

    /// Only a null is read; anything else is left to the slow path.
    struct Refused;

    impl<'de> Deserialize<'de> for Refused {
        fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(slow())
        }
    }

    /// A seed that fills `$target` in place from a JSON object (`$map`) or list (`$seq`) and
    /// returns `$out`, which may borrow from the line (`$de`).
    macro_rules! seed {
        (
            $seed:ident<$t:lifetime>($target:ty) -> <$de:lifetime> $out:ty,
            map |$self_:ident, $map:ident| $body:block
        ) => {
            struct $seed<$t>(&$t mut $target);
            impl<$de> DeserializeSeed<$de> for $seed<'_> {
                type Value = $out;
                fn deserialize<D: Deserializer<$de>>(self, d: D) -> Result<$out, D::Error> {
                    d.deserialize_map(self)
                }
            }
            impl<$de> Visitor<$de> for $seed<'_> {
                type Value = $out;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str(stringify!($seed))
                }
                fn visit_map<A: MapAccess<$de>>(self, mut $map: A) -> Result<$out, A::Error> {
                    let $self_ = self;
                    $body
                }
            }
        };
        (
            $seed:ident<$t:lifetime>($target:ty) -> <$de:lifetime> $out:ty,
            seq |$self_:ident, $seq:ident| $body:block
        ) => {
            struct $seed<$t>(&$t mut $target);
            impl<$de> DeserializeSeed<$de> for $seed<'_> {
                type Value = $out;
                fn deserialize<D: Deserializer<$de>>(self, d: D) -> Result<$out, D::Error> {
                    d.deserialize_seq(self)
                }
            }
            impl<$de> Visitor<$de> for $seed<'_> {
                type Value = $out;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str(stringify!($seed))
                }
                fn visit_seq<A: SeqAccess<$de>>(self, mut $seq: A) -> Result<$out, A::Error> {
                    let $self_ = self;
                    $body
                }
            }
        };
    }

    /// What a line gives besides the fields written in place.
    struct Rest<'a> {
        id: Option<Lax<'a>>,
        timestamp: Option<Lax<'a>>,
        created: Option<OffsetDateTime>,
        response_id: Option<Lax<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum LineKey {
        Id,
        Timestamp,
        LatencyMs,
        Metadata,
        Request,
        Response,
        #[serde(other)]
        Other,
    }

    seed!(LineSeed<'r>(LoggedRequest) -> <'de> Rest<'de>, map |seed, map| {
        let r = seed.0;
        let mut rest = Rest {
            id: None,
            timestamp: None,
            created: None,
            response_id: None,
        };
        let (mut latency, mut metadata, mut request, mut response) = (false, false, false, false);
        while let Some(key) = map.next_key()? {
            match key {
                LineKey::Id => {
                    if rest.id.replace(map.next_value()?).is_some() {
                        return Err(slow());
                    }
                }
                LineKey::Timestamp => {
                    if rest.timestamp.replace(map.next_value()?).is_some() {
                        return Err(slow());
                    }
                }
                LineKey::LatencyMs => {
                    first(&mut latency)?;
                    r.production.latency_ms = map.next_value()?;
                }
                LineKey::Metadata => {
                    first(&mut metadata)?;
                    r.metadata = map.next_value::<Option<_>>()?.unwrap_or_default();
                }
                LineKey::Request => {
                    first(&mut request)?;
                    map.next_value_seed(BodySeed(r))?;
                }
                LineKey::Response => {
                    first(&mut response)?;
                    (rest.created, rest.response_id) =
                        map.next_value_seed(ReplySeed(&mut r.production))?;
                }
                LineKey::Other => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        if !(request && response) {
            return Err(slow());
        }
        Ok(rest)
    });

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum BodyKey {
        Model,
        Messages,
        Temperature,
        TopP,
        MaxTokens,
        MaxCompletionTokens,
        Seed,
        Stop,
        ResponseFormat,
        Tools,
        ToolChoice,
        Stream,
        StreamOptions,
        #[serde(other)]
        Other,
    }

    // A request body with no field for `Params::other` but `max_completion_tokens`.
    seed!(BodySeed<'r>(LoggedRequest) -> <'de> (), map |seed, map| {
        let r = seed.0;
        let p = &mut r.params;
        let mut seen = [false; 11];
        let mut max_tokens: Option<u64> = None;
        let mut max_completion_tokens: Option<Option<u64>> = None;
        // `drop_secrets` as the slow path applies it to the whole body; null is no value.
        fn value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Value>, A::Error> {
            Ok(map.next_value::<Option<Value>>()?.map(|mut v| {
                drop_secrets(&mut v);
                v
            }))
        }
        while let Some(key) = map.next_key()? {
            match key {
                BodyKey::Model => {
                    first(&mut seen[0])?;
                    r.model = map.next_value()?;
                }
                BodyKey::Messages => {
                    first(&mut seen[1])?;
                    map.next_value_seed(MessagesSeed(&mut r.messages))?;
                }
                BodyKey::Temperature => {
                    first(&mut seen[2])?;
                    p.temperature = map.next_value()?;
                }
                BodyKey::TopP => {
                    first(&mut seen[3])?;
                    p.top_p = map.next_value()?;
                }
                BodyKey::MaxTokens => {
                    first(&mut seen[4])?;
                    max_tokens = map.next_value()?;
                }
                BodyKey::MaxCompletionTokens => {
                    first(&mut seen[5])?;
                    max_completion_tokens = Some(map.next_value()?);
                }
                BodyKey::Seed => {
                    first(&mut seen[6])?;
                    p.seed = map.next_value()?;
                }
                BodyKey::Stop => {
                    first(&mut seen[7])?;
                    p.stop = map.next_value::<Option<Stop>>()?.map_or_else(Vec::new, |s| s.0);
                }
                BodyKey::ResponseFormat => {
                    first(&mut seen[8])?;
                    p.response_format = value(&mut map)?;
                }
                BodyKey::Tools => {
                    first(&mut seen[9])?;
                    p.tools = value(&mut map)?;
                }
                BodyKey::ToolChoice => {
                    first(&mut seen[10])?;
                    p.tool_choice = value(&mut map)?;
                }
                BodyKey::Stream | BodyKey::StreamOptions => {
                    map.next_value::<Checked>()?;
                }
                BodyKey::Other => return Err(slow()),
            }
        }
        if r.messages.is_empty() {
            return Err(slow());
        }
        // As the slow path: `max_completion_tokens` is kept in `other` under its own name. Null
        // is no value, unless beside a `max_tokens`: then it is kept as logged.
        p.max_tokens = max_tokens;
        let kept = match (max_tokens, max_completion_tokens) {
            (Some(_), Some(n)) => Some(n.map_or(Value::Null, Value::from)),
            (None, Some(Some(n))) => Some(Value::from(n)),
            _ => None,
        };
        if let Some(n) = kept {
            p.other.insert("max_completion_tokens".to_owned(), n);
        }
        Ok(())
    });

    /// `stop`: a string or a list of strings.
    struct Stop(Vec<String>);

    impl<'de> Deserialize<'de> for Stop {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Stop;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("text or a list of text")
                }
                fn visit_str<E>(self, v: &str) -> Result<Stop, E> {
                    Ok(Stop(vec![v.to_owned()]))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stop, A::Error> {
                    let mut stop = Vec::new();
                    while let Some(s) = seq.next_element()? {
                        stop.push(s);
                    }
                    Ok(Stop(stop))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn empty_message() -> Message {
        Message {
            role: String::new(),
            content: String::new(),
            parts: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    seed!(MessagesSeed<'r>(Vec<Message>) -> <'de> (), seq |seed, seq| {
        loop {
            let mut m = empty_message();
            if seq.next_element_seed(MsgSeed(&mut m))?.is_none() {
                return Ok(());
            }
            seed.0.push(m);
        }
    });

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum MsgKey {
        Role,
        Content,
        ToolCalls,
        FunctionCall,
        ToolCallId,
        Name,
        Refusal,
        Value,
        #[serde(other)]
        Other,
    }

    // A message with text or null content and no calls; its `refusal` as found, for an answer.
    seed!(MsgSeed<'r>(Message) -> <'de> Option<Lax<'de>>, map |seed, map| {
        let m = seed.0;
        let mut seen = [false; 4];
        let mut refusal = None;
        while let Some(key) = map.next_key()? {
            match key {
                MsgKey::Role => {
                    first(&mut seen[0])?;
                    m.role = map.next_value()?;
                }
                MsgKey::Content => {
                    first(&mut seen[1])?;
                    m.content = map.next_value::<Option<String>>()?.unwrap_or_default();
                }
                MsgKey::ToolCalls | MsgKey::FunctionCall => {
                    map.next_value::<Option<Refused>>()?;
                }
                MsgKey::ToolCallId => {
                    first(&mut seen[2])?;
                    m.tool_call_id = map.next_value()?;
                }
                MsgKey::Name => {
                    first(&mut seen[3])?;
                    m.name = map.next_value()?;
                }
                MsgKey::Refusal => {
                    if refusal.replace(map.next_value()?).is_some() {
                        return Err(slow());
                    }
                }
                // A header pair (`{"name": "Authorization", "value": …}`), which the slow path
                // may drop from the messages.
                MsgKey::Value => return Err(slow()),
                MsgKey::Other => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        if !seen[0] {
            return Err(slow());
        }
        Ok(refusal)
    });

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum ReplyKey {
        Id,
        Created,
        Model,
        Choices,
        Usage,
        #[serde(other)]
        Other,
    }

    /// A `chat.completion`'s time and id, for a line without its own.
    type Stamp<'a> = (Option<OffsetDateTime>, Option<Lax<'a>>);

    // A `chat.completion` with at least one choice.
    seed!(ReplySeed<'r>(Production) -> <'de> Stamp<'de>, map |seed, map| {
        let p = seed.0;
        let mut seen = [false; 5];
        let mut created = None;
        let mut id = None;
        while let Some(key) = map.next_key()? {
            match key {
                ReplyKey::Id => {
                    first(&mut seen[0])?;
                    id = Some(map.next_value()?);
                }
                // An unreadable `created` is no time, not a malformed line.
                ReplyKey::Created => {
                    first(&mut seen[1])?;
                    created = map.next_value::<Lax>()?.instant().ok().flatten();
                }
                ReplyKey::Model => {
                    first(&mut seen[2])?;
                    p.model = map.next_value()?;
                }
                ReplyKey::Choices => {
                    first(&mut seen[3])?;
                    map.next_value_seed(ChoicesSeed(p))?;
                }
                ReplyKey::Usage => {
                    first(&mut seen[4])?;
                    p.usage = map.next_value::<UsageField>()?.0;
                }
                // With `choices` there, the slow path reads no `error`, `body` or
                // `status_code`.
                ReplyKey::Other => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        if !seen[3] {
            return Err(slow());
        }
        Ok((created, id))
    });

    // The first of the choices, the rest checked and dropped.
    seed!(ChoicesSeed<'r>(Production) -> <'de> (), seq |seed, seq| {
        seq.next_element_seed(ChoiceSeed(seed.0))?.ok_or_else(slow)?;
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(())
    });

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum ChoiceKey {
        FinishReason,
        Message,
        #[serde(other)]
        Other,
    }

    seed!(ChoiceSeed<'r>(Production) -> <'de> (), map |seed, map| {
        let p = seed.0;
        let (mut finish_reason, mut message) = (false, false);
        while let Some(key) = map.next_key()? {
            match key {
                ChoiceKey::FinishReason => {
                    first(&mut finish_reason)?;
                    p.finish_reason = map.next_value()?;
                }
                ChoiceKey::Message => {
                    first(&mut message)?;
                    let mut m = empty_message();
                    p.refusal = match map.next_value_seed(MsgSeed(&mut m))? {
                        None | Some(Lax::Null) => None,
                        Some(Lax::Text(s)) => Some(s.into_owned()),
                        Some(_) => return Err(slow()),
                    };
                    p.text = m.content;
                }
                ChoiceKey::Other => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        if !message {
            return Err(slow());
        }
        Ok(())
    });

    /// `usage`: token counts from an object, nothing from anything else.
    struct UsageField(Option<Usage>);

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum UsageKey {
        PromptTokens,
        InputTokens,
        CompletionTokens,
        OutputTokens,
        #[serde(other)]
        Other,
    }

    impl<'de> Deserialize<'de> for UsageField {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UsageField;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E>(self, _: bool) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_i64<E>(self, _: i64) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_u64<E>(self, _: u64) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_f64<E>(self, _: f64) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_str<E>(self, _: &str) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_unit<E>(self) -> Result<UsageField, E> {
                    Ok(UsageField(None))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<UsageField, A::Error> {
                    CheckedVisitor.visit_seq(seq).map(|_| UsageField(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UsageField, A::Error> {
                    let mut counts: [Option<Lax<'de>>; 4] = [None, None, None, None];
                    while let Some(key) = map.next_key()? {
                        let i = match key {
                            UsageKey::PromptTokens => 0,
                            UsageKey::InputTokens => 1,
                            UsageKey::CompletionTokens => 2,
                            UsageKey::OutputTokens => 3,
                            UsageKey::Other => {
                                map.next_value::<Checked>()?;
                                continue;
                            }
                        };
                        if counts[i].replace(map.next_value()?).is_some() {
                            return Err(slow());
                        }
                    }
                    // A first name present but not a count is 0: the second is not looked at.
                    let count = |a: &Option<Lax>, b: &Option<Lax>| {
                        a.as_ref().or(b.as_ref()).and_then(Lax::count).unwrap_or(0)
                    };
                    Ok(UsageField(Some(Usage {
                        input: count(&counts[0], &counts[1]),
                        output: count(&counts[2], &counts[3]),
                    })))
                }
            }
            d.deserialize_any(V)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batch

/// One side of a Batch pair, held for the join.
struct Pending<T> {
    file: usize,
    line: usize,
    part: BatchPart<T>,
}

fn read_batch<F: FnMut(LoggedRequest)>(
    inputs: &[usize],
    outputs: &[usize],
    sink: &mut Sink<'_, F>,
) -> Result<(), Error> {
    let size = |files: &[usize]| -> u64 {
        files
            .iter()
            .map(|&i| std::fs::metadata(&sink.report.files[i].path).map_or(0, |m| m.len()))
            .sum()
    };
    if size(outputs) <= size(inputs) {
        // Hold the answers, stream the requests.
        let mut table: HashMap<String, VecDeque<Pending<Answer>>> = HashMap::new();
        let mut held = 0;
        for &file in outputs {
            each_batch_line(file, sink, parse_batch_output, |sink, line, id, part| {
                table
                    .entry(id)
                    .or_default()
                    .push_back(Pending { file, line, part });
                held += 1;
                sink.report.batch_held = sink.report.batch_held.max(held);
                Ok(())
            })?;
        }
        for &file in inputs {
            each_batch_line(file, sink, parse_batch_input, |sink, line, id, request| {
                let answer = table.get_mut(&id).and_then(VecDeque::pop_front);
                if answer.is_some() {
                    held -= 1;
                }
                join(sink, (file, line), id, request, answer)
            })?;
        }
        for (id, answers) in sorted(table) {
            for a in answers {
                let why = format!("no input line has custom_id `{id}`");
                sink.skip(a.file, a.line, true, Skip::Unusable(NO_INPUT, why))?;
            }
        }
    } else {
        // Hold the requests, stream the answers.
        let mut table: HashMap<String, VecDeque<Pending<ChatRequest>>> = HashMap::new();
        let mut held = 0;
        for &file in inputs {
            each_batch_line(file, sink, parse_batch_input, |sink, line, id, part| {
                table
                    .entry(id)
                    .or_default()
                    .push_back(Pending { file, line, part });
                held += 1;
                sink.report.batch_held = sink.report.batch_held.max(held);
                Ok(())
            })?;
        }
        for &file in outputs {
            each_batch_line(file, sink, parse_batch_output, |sink, line, id, part| {
                let Some(request) = table.get_mut(&id).and_then(VecDeque::pop_front) else {
                    let why = format!("no input line has custom_id `{id}`");
                    return sink.skip(file, line, true, Skip::Unusable(NO_INPUT, why));
                };
                held -= 1;
                let answer = Pending { file, line, part };
                join(
                    sink,
                    (request.file, request.line),
                    id,
                    request.part,
                    Some(answer),
                )
            })?;
        }
        for (id, requests) in sorted(table) {
            for r in requests {
                let skip = match r.part {
                    Ok(_) => {
                        Skip::Unusable(NO_OUTPUT, format!("no output line has custom_id `{id}`"))
                    }
                    Err((reason, why)) => Skip::Unusable(reason, why),
                };
                sink.skip(r.file, r.line, true, skip)?;
            }
        }
    }
    Ok(())
}

fn sorted<T>(table: HashMap<String, VecDeque<T>>) -> Vec<(String, VecDeque<T>)> {
    let mut left: Vec<_> = table.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    left.sort_by(|a, b| a.0.cmp(&b.0));
    left
}

/// A Batch line's half of a request, or why it is unusable.
type BatchPart<T> = Result<T, (&'static str, String)>;

/// A parser of one side's lines: the `custom_id` and the part.
type BatchParser<T> = fn(&[u8]) -> Result<(String, BatchPart<T>), Skip>;

/// Read a Batch file's lines; hand each well-formed one (its line, `custom_id` and part) to
/// `each`.
fn each_batch_line<F: FnMut(LoggedRequest), T>(
    file: usize,
    sink: &mut Sink<'_, F>,
    parse: BatchParser<T>,
    mut each: impl FnMut(&mut Sink<'_, F>, usize, String, BatchPart<T>) -> Result<(), Error>,
) -> Result<(), Error> {
    let path = sink.report.files[file].path.clone();
    let mut lines = Lines::open(&path)?;
    while let Some(complete) = next_line(&mut lines, file, sink)? {
        if lines.is_blank() {
            continue;
        }
        match parse(lines.line()) {
            Ok((id, part)) => each(sink, lines.number, id, part)?,
            Err(skip) => sink.skip(file, lines.number, complete, skip)?,
        }
    }
    Ok(())
}

fn batch_id(top: &mut Map<String, Value>) -> Result<String, Skip> {
    match top.remove("custom_id") {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(malformed(format!(
            "`custom_id` is {}, not text",
            json_type(&other)
        ))),
        None => Err(missing("custom_id")),
    }
}

fn parse_batch_input(line: &[u8]) -> Result<(String, BatchPart<ChatRequest>), Skip> {
    let mut top = parse_object(line)?;
    let id = batch_id(&mut top)?;
    let url = take_str(&mut top, "url", "")?.unwrap_or_default();
    let body = take_object(&mut top, "body", "")?.ok_or_else(|| missing("body"))?;
    if !url.is_empty() && !url.trim_end_matches('/').ends_with("/chat/completions") {
        return Ok((id, Err((NOT_CHAT, format!("the endpoint is {url}")))));
    }
    match parse_chat_request(body, "body.") {
        Ok(request) => Ok((id, Ok(request))),
        Err(Skip::Unusable(reason, why)) => Ok((id, Err((reason, why)))),
        Err(other) => Err(other),
    }
}

fn parse_batch_output(line: &[u8]) -> Result<(String, BatchPart<Answer>), Skip> {
    let mut top = parse_object(line)?;
    let id = batch_id(&mut top)?;
    if let Some(error) = top.get("error").filter(|e| !e.is_null()) {
        return Ok((id, Err((ERROR_ANSWER, error_text(error)))));
    }
    let response = top.remove("response").ok_or_else(|| missing("response"))?;
    match parse_completion(response, "response.") {
        Ok(answer) => Ok((id, Ok(answer))),
        Err(Skip::Unusable(reason, why)) => Ok((id, Err((reason, why)))),
        Err(other) => Err(other),
    }
}

fn join<F: FnMut(LoggedRequest)>(
    sink: &mut Sink<'_, F>,
    (file, line): (usize, usize),
    id: String,
    request: BatchPart<ChatRequest>,
    answer: Option<Pending<Answer>>,
) -> Result<(), Error> {
    let request = match request {
        Ok(r) => r,
        Err((reason, why)) => return sink.skip(file, line, true, Skip::Unusable(reason, why)),
    };
    let Some(answer) = answer else {
        let why = format!("no output line has custom_id `{id}`");
        return sink.skip(file, line, true, Skip::Unusable(NO_OUTPUT, why));
    };
    let answer = match answer.part {
        Ok(a) => a,
        // The output line says what went wrong: point there.
        Err((reason, why)) => {
            return sink.skip(answer.file, answer.line, true, Skip::Unusable(reason, why));
        }
    };
    let mut metadata = Map::new();
    merge_body_metadata(&mut metadata, request.metadata);
    let r = LoggedRequest {
        source: Provenance {
            file: sink.report.files[file].path.clone(),
            line,
            id: Some(id),
        },
        format: LogFormat::Batch,
        model: request.model,
        messages: request.messages,
        params: request.params,
        production: answer.production,
        timestamp: answer.created,
        metadata,
    };
    sink.offer(file, r);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// OpenTelemetry

/// Span attributes whose values are message text or definitions, read from spans and events.
const CONTENT_ATTRIBUTES: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.prompt",
    "gen_ai.completion",
];

fn read_otel<F: FnMut(LoggedRequest)>(file: usize, sink: &mut Sink<'_, F>) -> Result<(), Error> {
    let path = sink.report.files[file].path.clone();
    let mut lines = Lines::open(&path)?;
    while let Some(complete) = next_line(&mut lines, file, sink)? {
        if lines.is_blank() {
            continue;
        }
        let number = lines.number;
        let (resources, spans) = match otel_spans(lines.line()) {
            Ok(spans) => spans,
            Err(skip) => {
                sink.skip(file, number, complete, skip)?;
                continue;
            }
        };
        for (resource, span) in spans {
            match parse_span(span, &resources[resource], &path, number) {
                Ok(r) => sink.offer(file, r),
                Err(skip) => sink.skip(file, number, true, skip)?,
            }
        }
    }
    Ok(())
}

/// The resources of an export request (their attributes) and every span, with its resource's
/// index.
type Spans = (Vec<Map<String, Value>>, Vec<(usize, Value)>);

fn otel_spans(line: &[u8]) -> Result<Spans, Skip> {
    let mut top = parse_object(line)?;
    let resource_spans = match top.remove("resourceSpans") {
        Some(Value::Array(r)) => r,
        _ => return Err(missing("resourceSpans")),
    };
    let mut resources = Vec::new();
    let mut spans = Vec::new();
    for (i, rs) in resource_spans.into_iter().enumerate() {
        let Value::Object(mut rs) = rs else {
            return Err(malformed(format!("`resourceSpans[{i}]` is not an object")));
        };
        let resource = rs
            .get_mut("resource")
            .and_then(|r| r.get_mut("attributes"))
            .map(Value::take)
            .map(attributes)
            .unwrap_or_default();
        resources.push(resource);
        let scopes = rs
            .remove("scopeSpans")
            .or_else(|| rs.remove("instrumentationLibrarySpans"));
        let Some(Value::Array(scopes)) = scopes else {
            continue;
        };
        for mut scope in scopes {
            if let Some(Value::Array(list)) = scope.get_mut("spans").map(Value::take) {
                spans.extend(list.into_iter().map(|span| (i, span)));
            }
        }
    }
    Ok((resources, spans))
}

/// OTLP attributes (`[{key, value: {stringValue | intValue | …}}]`) as a JSON object.
fn attributes(list: Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Array(list) = list {
        for kv in list {
            if let Value::Object(mut kv) = kv
                && let Some(Value::String(key)) = kv.remove("key")
            {
                out.insert(key, any_value(kv.remove("value").unwrap_or(Value::Null)));
            }
        }
    }
    out
}

/// An OTLP `AnyValue` as plain JSON.
fn any_value(v: Value) -> Value {
    let Value::Object(m) = v else {
        return v;
    };
    let Some((kind, inner)) = m.into_iter().next() else {
        return Value::Null;
    };
    match (kind.as_str(), inner) {
        ("intValue", Value::String(s)) => s
            .parse::<i64>()
            .map_or(Value::String(s), |n| Value::Number(n.into())),
        ("doubleValue", Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(s), Value::Number),
        ("arrayValue", Value::Object(mut a)) => match a.remove("values") {
            Some(Value::Array(values)) => Value::Array(values.into_iter().map(any_value).collect()),
            _ => Value::Array(Vec::new()),
        },
        ("kvlistValue", Value::Object(mut a)) => {
            Value::Object(attributes(a.remove("values").unwrap_or(Value::Null)))
        }
        (_, inner) => inner,
    }
}

/// A nanosecond count as OTLP/JSON writes it: text or a number.
fn nanos_of(v: Option<&Value>) -> Option<i128> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().map(i128::from),
        _ => None,
    }
    .filter(|&n| n > 0)
}

fn parse_span(
    span: Value,
    resource: &Map<String, Value>,
    path: &Path,
    number: usize,
) -> Result<LoggedRequest, Skip> {
    let Value::Object(mut span) = span else {
        return Err(malformed("a span is not an object"));
    };
    let mut attrs = attributes(span.remove("attributes").unwrap_or(Value::Null));
    if !attrs.keys().any(|k| k.starts_with("gen_ai.")) {
        return Err(Skip::Ignored);
    }
    let operation = attrs.get("gen_ai.operation.name").and_then(Value::as_str);
    if operation.is_some_and(|op| !matches!(op, "chat" | "text_completion" | "generate_content")) {
        return Err(Skip::Ignored);
    }
    let span_id = span
        .get("spanId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = span
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let label = span_id.as_deref().unwrap_or(&name).to_owned();
    // Content recorded on the span's events (the current `…operation.details` event, the older
    // `gen_ai.content.prompt` / `.completion` ones) counts as the span's own.
    if let Some(Value::Array(events)) = span.remove("events") {
        for mut event in events {
            let event_attrs = attributes(
                event
                    .get_mut("attributes")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            );
            for (key, value) in event_attrs {
                if CONTENT_ATTRIBUTES.contains(&key.as_str()) && !attrs.contains_key(&key) {
                    attrs.insert(key, value);
                }
            }
        }
    }
    let status = span.get("status").and_then(|s| s.get("code"));
    if matches!(status, Some(Value::Number(n)) if n.as_u64() == Some(2))
        || status.and_then(Value::as_str) == Some("STATUS_CODE_ERROR")
    {
        let message = span
            .get("status")
            .and_then(|s| s.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(Skip::Unusable(
            ERROR_ANSWER,
            format!("span {label} has an error status ({message})"),
        ));
    }

    let mut messages = Vec::new();
    if let Some(system) = attrs.remove("gen_ai.system_instructions") {
        let parts = json_attribute(system, "gen_ai.system_instructions")?;
        let (content, ..) = semconv_parts(parts);
        if !content.is_empty() {
            messages.push(Message::text("system", content));
        }
    }
    let output;
    if let Some(input) = attrs.remove("gen_ai.input.messages") {
        let input = json_attribute(input, "gen_ai.input.messages")?;
        messages.extend(semconv_messages(input).into_iter().map(|(m, _)| m));
        output = attrs
            .remove("gen_ai.output.messages")
            .map(|v| json_attribute(v, "gen_ai.output.messages").map(semconv_messages))
            .transpose()?;
    } else if let Some(prompt) = attrs.remove("gen_ai.prompt") {
        messages.extend(legacy_messages(prompt, "user").into_iter().map(|(m, _)| m));
        output = attrs
            .remove("gen_ai.completion")
            .map(|v| legacy_messages(v, "assistant"));
    } else {
        let prompt = indexed_messages(&mut attrs, "gen_ai.prompt.");
        messages.extend(prompt.into_iter().map(|(m, _)| m));
        let completion = indexed_messages(&mut attrs, "gen_ai.completion.");
        output = (!completion.is_empty()).then_some(completion);
    }
    attrs.remove("gen_ai.output.messages");
    attrs.remove("gen_ai.completion");
    if messages
        .iter()
        .all(|m| m.content.is_empty() && m.tool_calls.is_empty() && m.parts.is_none())
    {
        return Err(Skip::Unusable(
            NO_TEXT,
            format!(
                "span {label} has no input messages: gen_ai.input.messages is opt-in, turn on content capture in the instrumentation"
            ),
        ));
    }
    let Some((answer, message_finish)) = output.and_then(|out| {
        out.into_iter()
            .find(|(m, _)| m.role == "assistant" || m.role.is_empty())
    }) else {
        return Err(Skip::Unusable(
            NO_ANSWER,
            format!("span {label} has input messages but no output messages"),
        ));
    };
    let finish_reasons = attrs.remove("gen_ai.response.finish_reasons");
    let finish_reason = message_finish.or(match finish_reasons {
        Some(Value::Array(list)) => list.first().and_then(Value::as_str).map(str::to_owned),
        Some(Value::String(s)) => Some(s),
        _ => None,
    });

    let f64_attr = |attrs: &mut Map<String, Value>, key: &str| {
        attrs.remove(key).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    };
    let u64_attr = |attrs: &mut Map<String, Value>, key: &str| {
        attrs.remove(key).and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    };
    let temperature = f64_attr(&mut attrs, "gen_ai.request.temperature");
    let top_p = f64_attr(&mut attrs, "gen_ai.request.top_p");
    let max_tokens = u64_attr(&mut attrs, "gen_ai.request.max_tokens");
    let seed = attrs
        .remove("gen_ai.request.seed")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    let stop = stop_list(
        attrs.remove("gen_ai.request.stop_sequences"),
        "gen_ai.request.stop_sequences",
    )?;
    let mut other = Map::new();
    for (attr, param) in [
        ("gen_ai.request.frequency_penalty", "frequency_penalty"),
        ("gen_ai.request.presence_penalty", "presence_penalty"),
        ("gen_ai.request.top_k", "top_k"),
    ] {
        if let Some(v) = attrs.remove(attr) {
            other.insert(param.to_owned(), v);
        }
    }
    let tools = attrs
        .remove("gen_ai.tool.definitions")
        .map(|v| json_attribute(v, "gen_ai.tool.definitions"))
        .transpose()?;
    let input = u64_attr(&mut attrs, "gen_ai.usage.input_tokens")
        .or_else(|| u64_attr(&mut attrs, "gen_ai.usage.prompt_tokens"));
    let output_tokens = u64_attr(&mut attrs, "gen_ai.usage.output_tokens")
        .or_else(|| u64_attr(&mut attrs, "gen_ai.usage.completion_tokens"));
    let usage = (input.is_some() || output_tokens.is_some()).then(|| Usage {
        input: input.unwrap_or(0),
        output: output_tokens.unwrap_or(0),
    });
    let model = attrs
        .remove("gen_ai.request.model")
        .and_then(|v| v.as_str().map(str::to_owned));
    let response_model = attrs
        .remove("gen_ai.response.model")
        .and_then(|v| v.as_str().map(str::to_owned));
    let start = nanos_of(span.get("startTimeUnixNano"));
    let end = nanos_of(span.get("endTimeUnixNano"));
    let latency_ms = match (start, end) {
        (Some(s), Some(e)) if e >= s => Some((e - s) as f64 / 1e6),
        _ => None,
    };

    let mut metadata = resource.clone();
    metadata.extend(attrs);
    if let Some(trace) = span.get("traceId").and_then(Value::as_str) {
        metadata.insert("trace_id".into(), Value::String(trace.to_owned()));
    }
    metadata.insert("span_name".into(), Value::String(name));
    drop_secrets_map(&mut metadata);

    Ok(LoggedRequest {
        source: Provenance {
            file: path.to_owned(),
            line: number,
            id: span_id,
        },
        format: LogFormat::Otel,
        model,
        messages,
        params: Params {
            temperature,
            top_p,
            max_tokens,
            seed,
            stop,
            response_format: None,
            tools,
            tool_choice: None,
            other,
        },
        production: Production {
            text: answer.content,
            tool_calls: answer.tool_calls,
            refusal: None,
            finish_reason,
            usage,
            model: response_model,
            latency_ms,
        },
        timestamp: start.and_then(at_nanos),
        metadata,
    })
}

/// An attribute that holds JSON: as text (the conventions' recording) or already structured.
fn json_attribute(v: Value, key: &str) -> Result<Value, Skip> {
    match v {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| malformed(format!("`{key}` is not JSON: {e}")))
        }
        other => Ok(other),
    }
}

/// Messages in the GenAI conventions' shape, each with its `finish_reason` (output messages
/// have one): `[{role, parts: [{type, …}], name?, finish_reason?}]` (a `{role, content}` message
/// is read too). A `tool_call_response` part becomes a `tool` message of its own, as chat
/// completions has it.
fn semconv_messages(v: Value) -> Vec<(Message, Option<String>)> {
    let Value::Array(list) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in list {
        let Value::Object(mut m) = m else { continue };
        let role = match m.remove("role") {
            Some(Value::String(r)) => r,
            _ => String::new(),
        };
        let finish_reason = match m.remove("finish_reason") {
            Some(Value::String(f)) => Some(f),
            _ => None,
        };
        let name = match m.remove("name") {
            Some(Value::String(n)) => Some(n),
            _ => None,
        };
        if let Some(Value::String(content)) = m.remove("content") {
            let mut message = Message::text(&role, content);
            message.name = name;
            out.push((message, finish_reason));
            continue;
        }
        let parts = m.remove("parts").unwrap_or(Value::Null);
        let (content, tool_calls, responses, other) = semconv_parts(parts);
        let has_own = !content.is_empty() || !tool_calls.is_empty() || !other.is_empty();
        if has_own || responses.is_empty() {
            let message = Message {
                role: role.clone(),
                content,
                parts: (!other.is_empty()).then_some(Value::Array(other)),
                tool_calls,
                tool_call_id: None,
                name,
            };
            out.push((message, finish_reason.clone()));
        }
        for (id, response) in responses {
            let mut tool = Message::text(if role.is_empty() { "tool" } else { &role }, response);
            tool.tool_call_id = id;
            out.push((tool, None));
        }
    }
    out
}

type Parts = (
    String,
    Vec<ToolCall>,
    Vec<(Option<String>, String)>,
    Vec<Value>,
);

/// The parts of a conventions message: its text, tool calls, tool responses (call id, text) and
/// every other part as recorded.
fn semconv_parts(parts: Value) -> Parts {
    let (mut text, mut calls, mut responses, mut other) =
        (String::new(), Vec::new(), Vec::new(), Vec::new());
    let Value::Array(parts) = parts else {
        return (text, calls, responses, other);
    };
    for part in parts {
        let Value::Object(mut p) = part else { continue };
        match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(Value::String(s)) = p.remove("content") {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&s);
                }
            }
            Some("tool_call") => {
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                calls.push(ToolCall {
                    id: take_id(&mut p, "id"),
                    name,
                    arguments: arguments_text(p.remove("arguments")),
                });
            }
            Some("tool_call_response") => {
                let id = take_id(&mut p, "id");
                responses.push((id, arguments_text(p.remove("response"))));
            }
            _ => other.push(Value::Object(p)),
        }
    }
    (text, calls, responses, other)
}

/// The older `gen_ai.prompt` / `gen_ai.completion`: a JSON list of `{role, content}`, or text.
fn legacy_messages(v: Value, role: &str) -> Vec<(Message, Option<String>)> {
    let parsed = match &v {
        Value::String(s) => serde_json::from_str::<Value>(s).ok(),
        Value::Array(_) => Some(v.clone()),
        _ => None,
    };
    match parsed {
        Some(list @ Value::Array(_)) => semconv_messages(list),
        _ => match v {
            Value::String(s) => vec![(Message::text(role, s), None)],
            _ => Vec::new(),
        },
    }
}

/// OpenLLMetry's indexed attributes: `{prefix}N.role`, `{prefix}N.content`,
/// `{prefix}N.finish_reason`, taken out of `attrs`.
fn indexed_messages(
    attrs: &mut Map<String, Value>,
    prefix: &str,
) -> Vec<(Message, Option<String>)> {
    let keys: Vec<String> = attrs
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    let mut by_index: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
    for key in keys {
        let value = attrs.remove(&key).expect("listed");
        let rest = &key[prefix.len()..];
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(index) = index.parse::<usize>() {
            by_index
                .entry(index)
                .or_default()
                .insert(field.to_owned(), value);
        }
    }
    by_index
        .into_values()
        .filter_map(|mut fields| {
            let content = match fields.remove("content") {
                Some(Value::String(s)) => s,
                _ => return None,
            };
            let role = match fields.remove("role") {
                Some(Value::String(r)) => r,
                _ => String::new(),
            };
            let finish_reason = match fields.remove("finish_reason") {
                Some(Value::String(f)) => Some(f),
                _ => None,
            };
            Some((Message::text(&role, content), finish_reason))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// goldgate's results.jsonl

/// What a results line holds that a logged request needs.
#[derive(Deserialize)]
struct ResultLine<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    model: Side,
    trial: u32,
    ok: bool,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    tokens: Option<ResultTokens>,
}

#[derive(Deserialize)]
struct ResultTokens {
    input: u64,
    output: u64,
}

fn read_results<F: FnMut(LoggedRequest)>(file: usize, sink: &mut Sink<'_, F>) -> Result<(), Error> {
    let path = sink.report.files[file].path.clone();
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let items_file = crate::rundir::items_path(&dir);
    let items = if items_file.exists() {
        Some(crate::rundir::read_items(&dir).map_err(|e| {
            Error::input(
                Location::file(&items_file),
                format!("cannot read the run's items: {e:#}"),
                "the items are needed to rebuild the requests of results.jsonl; restore the run directory",
            )
        })?)
    } else {
        None
    };
    let manifest = crate::rundir::read_manifest(&dir).ok();
    let options = sink.options;
    let side = options.results_side;
    let default_template;
    let template = match &options.results_prompt {
        Some(t) => t,
        None => {
            default_template =
                PromptTemplate::new(crate::config::DEFAULT_PROMPT, Path::new("goldgate.toml"))
                    .expect("the default prompt is a valid template");
            &default_template
        }
    };
    let started = manifest.as_ref().and_then(|m| parse_instant(&m.started_at));
    let model = manifest.as_ref().map(|m| m.models[side].model.clone());
    let run_id = manifest.as_ref().map(|m| m.run_id.clone());

    let mut lines = Lines::open(&path)?;
    while let Some(complete) = next_line(&mut lines, file, sink)? {
        if lines.is_blank() {
            continue;
        }
        let number = lines.number;
        let line: ResultLine = match serde_json::from_slice(lines.line()) {
            Ok(line) => line,
            Err(e) => {
                sink.skip(
                    file,
                    number,
                    complete,
                    malformed(format!("not a result line: {e}")),
                )?;
                continue;
            }
        };
        if line.model != side {
            sink.skip(file, number, true, Skip::Ignored)?;
            continue;
        }
        let skip = |reason, why: String| Skip::Unusable(reason, why);
        if !line.ok {
            sink.skip(
                file,
                number,
                true,
                skip(
                    ERROR_ANSWER,
                    format!("item `{}` failed in the run", line.id),
                ),
            )?;
            continue;
        }
        let Some(answer) = line.answer else {
            sink.skip(
                file,
                number,
                true,
                skip(
                    NO_ANSWER,
                    format!("the answer of item `{}` was pruned", line.id),
                ),
            )?;
            continue;
        };
        let Some(items) = &items else {
            let why = format!(
                "no {} beside it: the question is unknown",
                items_file.display()
            );
            sink.skip(file, number, true, skip(NO_ITEM, why))?;
            continue;
        };
        let Some(position) = items.position(&line.id) else {
            let why = format!("item `{}` is not in {}", line.id, items_file.display());
            sink.skip(file, number, true, skip(NO_ITEM, why))?;
            continue;
        };
        let item = items.get(position);
        let prompt = match template.render(&item) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("the prompt of item `{}` does not render: {e}", line.id);
                sink.skip(file, number, true, skip(NO_ITEM, why))?;
                continue;
            }
        };
        let mut messages = Vec::new();
        if let Some(system) = &options.results_system {
            messages.push(Message::text("system", system.clone()));
        }
        messages.push(Message::text("user", prompt));
        let mut metadata = Map::new();
        if let Some(run_id) = &run_id {
            metadata.insert("run_id".into(), Value::String(run_id.clone()));
        }
        metadata.insert("trial".into(), Value::from(line.trial));
        if !item.tags.is_empty() {
            metadata.insert("tags".into(), Value::from(item.tags.clone()));
        }
        if let Some(group) = &item.group {
            metadata.insert("group".into(), Value::String(group.clone()));
        }
        let r = LoggedRequest {
            source: Provenance {
                file: path.clone(),
                line: number,
                id: Some(line.id.into_owned()),
            },
            format: LogFormat::Results,
            model: model.clone(),
            messages,
            params: Params::default(),
            production: Production {
                text: answer,
                usage: line.tokens.map(|t| Usage {
                    input: t.input,
                    output: t.output,
                }),
                model: model.clone(),
                latency_ms: line.latency_ms,
                ..Production::default()
            },
            timestamp: started,
            metadata,
        };
        sink.offer(file, r);
    }
    Ok(())
}

/// `Option<OffsetDateTime>` as RFC 3339 text.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| OffsetDateTime::parse(&t, &Rfc3339).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write as _;

    fn write(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        write_text(dir, name, &text)
    }

    fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn read(files: &[PathBuf], options: &ReadOptions) -> (Vec<LoggedRequest>, ReadReport) {
        let mut out = Vec::new();
        let report = read_logs(files, options, |r| out.push(r)).unwrap();
        (out, report)
    }

    fn read_err(files: &[PathBuf], options: &ReadOptions) -> Error {
        read_logs(files, options, |_| {}).unwrap_err()
    }

    fn completion(text: &str) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_717_000_000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        })
    }

    /// A request/response line asking `question`.
    fn line(question: &str) -> Value {
        json!({
            "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]},
            "response": completion("An answer."),
        })
    }

    fn ids(requests: &[LoggedRequest]) -> Vec<String> {
        requests
            .iter()
            .map(|r| r.source.id.clone().unwrap_or_default())
            .collect()
    }

    fn at(report: &Findings) -> Vec<String> {
        report
            .first
            .iter()
            .map(|f| format!("{} | {}", f.at, f.why))
            .collect()
    }

    #[test]
    fn request_response_lines_become_logged_requests() {
        let dir = tempfile::tempdir().unwrap();
        let full = json!({
            "id": "req-1",
            "timestamp": "2025-03-01T12:00:00+02:00",
            "latency_ms": 812.5,
            "metadata": {"route": "billing", "tenant": {"tier": "gold"}},
            "request": {
                "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
                "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 256, "seed": 7,
                "stop": "END", "n": 1, "user": "u-17",
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is on this image?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ]}
                ]
            },
            "response": completion("A cat."),
        });
        let epoch_ms = json!({
            "timestamp": 1_717_171_717_123_u64,
            "request": {"messages": [{"role": "user", "content": "Hi"}]},
            "response": completion("Hello."),
        });
        // No timestamp, no id: the response's `created` and `id`.
        let bare = line("Bare?");
        let path = write(dir.path(), "gateway.jsonl", &[full, epoch_ms, bare]);
        let (got, report) = read(std::slice::from_ref(&path), &ReadOptions::default());
        assert_eq!(report.files[0].kind, FileKind::RequestResponse);
        assert_eq!((report.lines, report.usable, report.delivered), (3, 3, 3));
        assert_eq!(report.malformed.count + report.unusable.count, 0);

        let r = &got[0];
        assert_eq!(
            r.source,
            Provenance {
                file: path.clone(),
                line: 1,
                id: Some("req-1".into())
            }
        );
        assert_eq!(r.format, LogFormat::RequestResponse);
        assert_eq!(r.model.as_deref(), Some("gpt-4o"));
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0], Message::text("system", "Be brief.".into()));
        assert_eq!(r.messages[1].content, "What is on this image?");
        assert!(r.messages[1].parts.as_ref().unwrap()[1]["image_url"].is_object());
        let p = &r.params;
        assert_eq!(
            (p.temperature, p.top_p, p.max_tokens, p.seed),
            (Some(0.2), Some(0.9), None, Some(7))
        );
        assert_eq!(p.stop, vec!["END".to_owned()]);
        assert_eq!(p.response_format, Some(json!({"type": "json_object"})));
        assert_eq!(
            Value::Object(p.other.clone()),
            json!({"n": 1, "user": "u-17", "max_completion_tokens": 256}),
            "model, messages, stream and the named parameters are not in the rest; \
             max_completion_tokens keeps its own name, for the replay to send"
        );
        assert_eq!(r.production.text, "A cat.");
        assert_eq!(r.production.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            r.production.usage,
            Some(Usage {
                input: 12,
                output: 3
            })
        );
        assert_eq!(r.production.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(r.production.latency_ms, Some(812.5));
        assert_eq!(r.timestamp, parse_instant("2025-03-01T10:00:00Z"));
        assert_eq!(r.timestamp.unwrap().offset(), time::UtcOffset::UTC);
        assert_eq!(r.metadata["tenant"]["tier"], "gold");

        assert_eq!(
            got[1].timestamp,
            Some(OffsetDateTime::from_unix_timestamp_nanos(1_717_171_717_123_000_000).unwrap())
        );
        assert_eq!(got[2].source.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(
            got[2].timestamp,
            Some(OffsetDateTime::from_unix_timestamp(1_717_000_000).unwrap())
        );
    }

    /// OpenAI's reasoning models refuse `max_tokens`: a request that used `max_completion_tokens`
    /// keeps that name, so a replay sends what production sent. Both paths read it alike.
    #[test]
    fn max_completion_tokens_keeps_its_own_name() {
        let path = Path::new("traffic.jsonl");
        let read = |request: Value| {
            let mut v = line("Hi?");
            let body = v["request"].as_object_mut().unwrap();
            body.extend(request.as_object().unwrap().clone());
            let text = v.to_string();
            let slow = parse_request_response_slow(text.as_bytes(), path, 1);
            if let Some(quick) = fast::parse(text.as_bytes(), path, 1) {
                assert_eq!(slow.as_ref(), Ok(&quick), "{text}");
            }
            slow.map(|r| (r.params.max_tokens, Value::Object(r.params.other)))
        };
        assert_eq!(
            read(json!({"max_completion_tokens": 64})),
            Ok((None, json!({"max_completion_tokens": 64})))
        );
        assert_eq!(
            read(json!({"max_tokens": null, "max_completion_tokens": 64})),
            Ok((None, json!({"max_completion_tokens": 64})))
        );
        assert_eq!(read(json!({"max_tokens": 32})), Ok((Some(32), json!({}))));
        // Both: each under its own name, as logged.
        assert_eq!(
            read(json!({"max_tokens": 32, "max_completion_tokens": 64})),
            Ok((Some(32), json!({"max_completion_tokens": 64})))
        );
        assert_eq!(
            read(json!({"max_completion_tokens": null})),
            Ok((None, json!({})))
        );
        assert_eq!(
            read(json!({"max_tokens": 32, "max_completion_tokens": null})),
            Ok((Some(32), json!({"max_completion_tokens": null})))
        );
        assert!(matches!(
            read(json!({"max_completion_tokens": "64"})),
            Err(Skip::Malformed(_))
        ));
    }

    type Edit = Box<dyn Fn(&mut Value)>;

    /// Request/response line variants and whether the fast path should read them: the common
    /// shape and what it tolerates, and every kind of line it must leave to the slow path.
    fn fast_path_variants() -> Vec<(&'static str, bool, Edit)> {
        // Edits that do nothing where their target is gone (an earlier edit removed it).
        fn parent<'v>(v: &'v mut Value, pointer: &str) -> Option<(&'v mut Value, String)> {
            let (parent, key) = pointer.rsplit_once('/')?;
            Some((v.pointer_mut(parent)?, key.to_owned()))
        }
        fn set(v: &mut Value, pointer: &str, value: Value) {
            match parent(v, pointer) {
                Some((Value::Object(m), key)) => {
                    m.insert(key, value);
                }
                Some((Value::Array(a), key)) => {
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        *slot = value;
                    }
                }
                _ => {}
            }
        }
        fn remove(v: &mut Value, pointer: &str) {
            if let Some((Value::Object(m), key)) = parent(v, pointer) {
                m.remove(&key);
            }
        }
        let put = |pointer: &'static str, value: Value| -> Edit {
            Box::new(move |v| set(v, pointer, value.clone()))
        };
        let puts = |edits: Vec<(&'static str, Value)>| -> Edit {
            Box::new(move |v| {
                for (pointer, value) in &edits {
                    set(v, pointer, value.clone());
                }
            })
        };
        let drop = |pointer: &'static str| -> Edit { Box::new(move |v| remove(v, pointer)) };
        let push = |pointer: &'static str, first: bool, values: Vec<Value>| -> Edit {
            Box::new(move |v| {
                if let Some(Value::Array(a)) = v.pointer_mut(pointer) {
                    for value in &values {
                        if first {
                            a.insert(0, value.clone());
                        } else {
                            a.push(value.clone());
                        }
                    }
                }
            })
        };
        let wrap = |pointer: &'static str, around: fn(Value) -> Value| -> Edit {
            Box::new(move |v| {
                if let Some(inner) = v.pointer_mut(pointer) {
                    *inner = around(inner.take());
                }
            })
        };
        let call = json!([{"id": "call_1", "type": "function",
                           "function": {"name": "f", "arguments": "{}"}}]);
        vec![
            ("plain", true, Box::new(|_| {})),
            (
                "system message",
                true,
                push(
                    "/request/messages",
                    true,
                    vec![json!({"role": "system", "content": "Be brief."})],
                ),
            ),
            (
                "metadata",
                true,
                put(
                    "/metadata",
                    json!({"route": "billing", "tenant": {"tier": "gold"}}),
                ),
            ),
            (
                "metadata with credentials",
                true,
                put(
                    "/metadata",
                    json!({"route": "a", "Authorization": "Bearer x",
                           "client": {"x-api-key": "k", "headers": [["cookie", "c"], ["a", "b"]]}}),
                ),
            ),
            ("metadata null", true, put("/metadata", Value::Null)),
            (
                "metadata not an object",
                false,
                put("/metadata", json!("x")),
            ),
            (
                "unknown top-level field",
                true,
                put("/extra", json!({"a": [1, 2.5, {"b": null, "c": true}]})),
            ),
            ("stream", true, put("/request/stream", json!(true))),
            (
                "stream options",
                true,
                put("/request/stream_options", json!({"include_usage": true})),
            ),
            (
                "named parameters",
                true,
                puts(vec![
                    ("/request/temperature", json!(0)),
                    ("/request/top_p", json!(0.95)),
                    ("/request/seed", json!(-3)),
                    ("/request/max_tokens", json!(5)),
                ]),
            ),
            (
                "temperature null",
                true,
                put("/request/temperature", Value::Null),
            ),
            ("huge seed", false, put("/request/seed", json!(u64::MAX))),
            ("float seed", false, put("/request/seed", json!(1.0))),
            (
                "max_completion_tokens",
                true,
                Box::new(|v| {
                    remove(v, "/request/max_tokens");
                    set(v, "/request/max_completion_tokens", json!(64));
                }),
            ),
            (
                "null max_tokens and max_completion_tokens",
                true,
                puts(vec![
                    ("/request/max_tokens", Value::Null),
                    ("/request/max_completion_tokens", json!(7)),
                ]),
            ),
            (
                "null max_completion_tokens",
                true,
                put("/request/max_completion_tokens", Value::Null),
            ),
            (
                "max_completion_tokens as text",
                false,
                put("/request/max_completion_tokens", json!("64")),
            ),
            (
                "max_tokens and max_completion_tokens",
                true,
                puts(vec![
                    ("/request/max_tokens", json!(8)),
                    ("/request/max_completion_tokens", json!(7)),
                ]),
            ),
            (
                "float max_tokens",
                false,
                put("/request/max_tokens", json!(1.5)),
            ),
            (
                "negative max_tokens",
                false,
                put("/request/max_tokens", json!(-1)),
            ),
            ("stop text", true, put("/request/stop", json!("END"))),
            ("stop list", true, put("/request/stop", json!(["a", "b"]))),
            ("stop null", true, put("/request/stop", Value::Null)),
            ("stop number", false, put("/request/stop", json!(5))),
            (
                "stop list of numbers",
                false,
                put("/request/stop", json!([1])),
            ),
            (
                "response format with a schema",
                true,
                put(
                    "/request/response_format",
                    json!({"type": "json_schema", "json_schema": {"name": "s", "schema":
                        {"type": "object", "properties": {"api_key": {"type": "string"}},
                         "api_key": "sk-x"}}}),
                ),
            ),
            (
                "tool definitions",
                true,
                puts(vec![
                    (
                        "/request/tools",
                        json!([{"type": "function", "function": {
                            "name": "f", "parameters": {"type": "object", "properties": {}}}}]),
                    ),
                    ("/request/tool_choice", json!("auto")),
                ]),
            ),
            (
                "temperature as text",
                false,
                put("/request/temperature", json!("hot")),
            ),
            ("model as a number", false, put("/request/model", json!(5))),
            ("model null", true, put("/request/model", Value::Null)),
            ("no model", true, drop("/request/model")),
            (
                "another body field",
                false,
                put("/request/user", json!("u1")),
            ),
            (
                "a credential in the body",
                false,
                put("/request/api_key", json!("sk")),
            ),
            (
                "body metadata",
                false,
                put("/request/metadata", json!({"tag": "a"})),
            ),
            (
                "a credential on a message",
                true,
                put("/request/messages/0/openai_api_key", json!("sk")),
            ),
            (
                "a header pair among the messages",
                false,
                put(
                    "/request/messages/0",
                    json!({"role": "user", "content": "x", "name": "Authorization", "value": "v"}),
                ),
            ),
            (
                "a participant name",
                true,
                put("/request/messages/0/name", json!("bob")),
            ),
            (
                "name as a number",
                false,
                put("/request/messages/0/name", json!(5)),
            ),
            (
                "ignored message fields",
                true,
                puts(vec![
                    ("/request/messages/0/refusal", json!(5)),
                    ("/request/messages/0/audio", json!({"id": "a"})),
                    ("/request/messages/0/tool_calls", Value::Null),
                    ("/request/messages/0/function_call", Value::Null),
                ]),
            ),
            (
                "content null",
                true,
                put("/request/messages/0/content", Value::Null),
            ),
            ("no content", true, drop("/request/messages/0/content")),
            (
                "escaped content",
                true,
                put(
                    "/request/messages/0/content",
                    json!("line\nbreak \"quoted\" \\ é 😀 \u{1}"),
                ),
            ),
            (
                "list content",
                false,
                put(
                    "/request/messages/0/content",
                    json!([{"type": "text", "text": "Hi"}]),
                ),
            ),
            (
                "content a number",
                false,
                put("/request/messages/0/content", json!(5)),
            ),
            ("no role", false, drop("/request/messages/0/role")),
            (
                "role null",
                false,
                put("/request/messages/0/role", Value::Null),
            ),
            (
                "tool calls in the history",
                false,
                push(
                    "/request/messages",
                    false,
                    vec![
                        json!({"role": "assistant", "content": null, "tool_calls": call}),
                        json!({"role": "tool", "tool_call_id": "call_1", "content": "4"}),
                    ],
                ),
            ),
            (
                "empty tool calls",
                false,
                put("/request/messages/0/tool_calls", json!([])),
            ),
            (
                "a function call",
                false,
                put(
                    "/request/messages/0/function_call",
                    json!({"name": "f", "arguments": "{}"}),
                ),
            ),
            (
                "tool_call_id",
                true,
                put("/request/messages/0/tool_call_id", json!("c1")),
            ),
            ("no messages", false, put("/request/messages", json!([]))),
            (
                "messages not a list",
                false,
                put("/request/messages", json!({})),
            ),
            (
                "a message not an object",
                false,
                put("/request/messages/0", json!("hi")),
            ),
            ("messages missing", false, drop("/request/messages")),
            (
                "a body-wrapped request",
                false,
                wrap(
                    "/request",
                    |body| json!({"headers": {"Authorization": "Bearer x"}, "body": body}),
                ),
            ),
            ("request missing", false, drop("/request")),
            ("request a list", false, put("/request", json!([]))),
            ("response missing", false, drop("/response")),
            ("response null", false, put("/response", Value::Null)),
            ("response text", false, put("/response", json!("ok"))),
            (
                "a status-wrapped response",
                false,
                wrap(
                    "/response",
                    |body| json!({"status_code": 200, "body": body}),
                ),
            ),
            (
                "an HTTP error",
                false,
                put(
                    "/response",
                    json!({"status_code": 500, "body": {"error": {"message": "down"}}}),
                ),
            ),
            (
                "an error answer",
                false,
                put("/response", json!({"error": {"message": "rate limited"}})),
            ),
            (
                "an error beside choices",
                true,
                put("/response/error", json!({"message": "ignored"})),
            ),
            (
                "a body beside choices",
                true,
                put("/response/body", json!(3)),
            ),
            (
                "unknown response fields",
                true,
                puts(vec![
                    ("/response/system_fingerprint", json!("fp_1")),
                    ("/response/service_tier", Value::Null),
                    ("/response/choices/0/logprobs", Value::Null),
                    ("/response/choices/0/message/annotations", json!([])),
                ]),
            ),
            (
                "a refusal",
                true,
                put("/response/choices/0/message/refusal", json!("I can't.")),
            ),
            (
                "a refusal null",
                true,
                put("/response/choices/0/message/refusal", Value::Null),
            ),
            (
                "a refusal as a number",
                false,
                put("/response/choices/0/message/refusal", json!(5)),
            ),
            (
                "answer content null",
                true,
                put("/response/choices/0/message/content", Value::Null),
            ),
            (
                "answer content parts",
                false,
                put(
                    "/response/choices/0/message/content",
                    json!([{"type": "output_text", "text": "A."}]),
                ),
            ),
            (
                "answer tool calls",
                false,
                put(
                    "/response/choices/0/message/tool_calls",
                    json!([{"id": "c",
                    "function": {"name": "f", "arguments": {"api_key": "x"}}}]),
                ),
            ),
            (
                "answer without a role",
                false,
                drop("/response/choices/0/message/role"),
            ),
            (
                "answer name as a number",
                false,
                put("/response/choices/0/message/name", json!(1)),
            ),
            (
                "two choices",
                true,
                push(
                    "/response/choices",
                    false,
                    vec![json!({"message": {"role": "assistant", "content": "B."}})],
                ),
            ),
            (
                "a second choice of any type",
                true,
                push("/response/choices", false, vec![json!(7)]),
            ),
            ("no choices", false, put("/response/choices", json!([]))),
            ("choices missing", false, drop("/response/choices")),
            (
                "choices an object",
                false,
                put("/response/choices", json!({})),
            ),
            (
                "a choice not an object",
                false,
                put("/response/choices/0", json!(1)),
            ),
            (
                "a choice without message",
                false,
                drop("/response/choices/0/message"),
            ),
            (
                "a choice with a null message",
                false,
                put("/response/choices/0/message", Value::Null),
            ),
            (
                "finish reason null",
                true,
                put("/response/choices/0/finish_reason", Value::Null),
            ),
            (
                "finish reason a number",
                false,
                put("/response/choices/0/finish_reason", json!(3)),
            ),
            (
                "response model null",
                true,
                put("/response/model", Value::Null),
            ),
            (
                "response model a number",
                false,
                put("/response/model", json!(4)),
            ),
            ("numeric response id", true, put("/response/id", json!(77))),
            ("response id a list", true, put("/response/id", json!([1]))),
            ("no response id", true, drop("/response/id")),
            (
                "created as a float",
                true,
                put("/response/created", json!(1.7e9)),
            ),
            (
                "created unreadable",
                true,
                put("/response/created", json!("soon")),
            ),
            (
                "created out of range",
                true,
                put("/response/created", json!(1e300)),
            ),
            ("no created", true, drop("/response/created")),
            (
                "usage under other names",
                true,
                put(
                    "/response/usage",
                    json!({"input_tokens": 3, "output_tokens": 4}),
                ),
            ),
            (
                "usage with a null first name",
                true,
                put(
                    "/response/usage",
                    json!({"prompt_tokens": null, "input_tokens": 5, "completion_tokens": 1.5,
                           "output_tokens": 2, "details": {"cached": 1}}),
                ),
            ),
            (
                "usage with negative counts",
                true,
                put(
                    "/response/usage",
                    json!({"prompt_tokens": -1, "completion_tokens": "2"}),
                ),
            ),
            ("usage text", true, put("/response/usage", json!("x"))),
            ("usage null", true, put("/response/usage", Value::Null)),
            (
                "usage a list",
                true,
                put("/response/usage", json!([1, {"a": 2}])),
            ),
            ("no usage", true, drop("/response/usage")),
            (
                "latency as a whole number",
                true,
                put("/latency_ms", json!(700)),
            ),
            ("latency as a float", true, put("/latency_ms", json!(812.5))),
            ("latency null", true, put("/latency_ms", Value::Null)),
            ("latency as text", false, put("/latency_ms", json!("fast"))),
            ("id text", true, put("/id", json!("req-1"))),
            ("id a number", true, put("/id", json!(42))),
            ("id negative", true, put("/id", json!(-42))),
            ("id a float", true, put("/id", json!(1.5))),
            ("id a boolean", true, put("/id", json!(true))),
            ("id null", true, put("/id", Value::Null)),
            (
                "timestamp RFC 3339 with an offset",
                true,
                put("/timestamp", json!("2025-03-01T12:00:00.25+02:00")),
            ),
            (
                "timestamp epoch seconds",
                true,
                put("/timestamp", json!(1_717_171_717)),
            ),
            (
                "timestamp epoch ms",
                true,
                put("/timestamp", json!(1_717_171_717_123_u64)),
            ),
            (
                "timestamp epoch µs",
                true,
                put("/timestamp", json!(1_717_171_717_123_456_u64)),
            ),
            (
                "timestamp epoch ns",
                true,
                put("/timestamp", json!(1_717_171_717_123_456_789_u64)),
            ),
            (
                "timestamp epoch float",
                true,
                put("/timestamp", json!(1_717_171_717.5)),
            ),
            (
                "timestamp epoch as text",
                true,
                put("/timestamp", json!("1717171717")),
            ),
            (
                "timestamp negative epoch",
                true,
                put("/timestamp", json!(-86_400)),
            ),
            ("timestamp null", true, put("/timestamp", Value::Null)),
            (
                "timestamp unreadable",
                false,
                put("/timestamp", json!("yesterday")),
            ),
            ("timestamp a boolean", false, put("/timestamp", json!(true))),
            (
                "timestamp out of range",
                false,
                put("/timestamp", json!(1e30)),
            ),
        ]
    }

    /// Lines that only text can make: keys twice, escapes, invalid JSON or UTF-8.
    fn fast_path_raw_variants(base: &str) -> Vec<(&'static str, bool, Vec<u8>)> {
        let inner = &base[1..base.len() - 1];
        let with = |field: &str| format!("{{{field},{inner}}}").into_bytes();
        let in_content = |text: &str| {
            base.replacen(r#""content":""#, &format!(r#""content":"{text}"#), 1)
                .into_bytes()
        };
        let mut not_utf8 = with("\"extra\":\"\u{e9}\"");
        let at = not_utf8.iter().position(|&b| b == 0xc3).unwrap();
        not_utf8[at] = 0xff;
        vec![
            (
                "a key twice",
                false,
                with("\"latency_ms\":1,\"latency_ms\":2"),
            ),
            ("an unknown key twice", true, with("\"x\":1,\"x\":[2]")),
            (
                "a request twice",
                false,
                with(r#""request":{"messages":[{"role":"user","content":"first"}]}"#),
            ),
            ("escapes", true, in_content(r#"a\u00e9\ud83d\ude00\n\/\""#)),
            (
                "a lone surrogate where ignored",
                false,
                with(r#""x":"\ud800""#),
            ),
            (
                "a lone surrogate in content",
                false,
                in_content(r#"\udc00"#),
            ),
            (
                "an out-of-range number where ignored",
                false,
                with(r#""x":1e999"#),
            ),
            ("deep nesting where ignored", false, {
                with(&format!("\"x\":{}{}", "[".repeat(200), "]".repeat(200)))
            }),
            ("nesting within the limit", true, {
                with(&format!("\"x\":{}{}", "[".repeat(100), "]".repeat(100)))
            }),
            ("invalid UTF-8 where ignored", false, not_utf8),
            ("trailing text", false, format!("{base} x").into_bytes()),
            ("trailing spaces", true, format!("{base} \t ").into_bytes()),
            ("not an object", false, b"[1, 2]".to_vec()),
            ("not JSON", false, b"{\"request\": ".to_vec()),
            (
                "whitespace inside",
                true,
                base.replace(",", " ,\n\t").into_bytes(),
            ),
        ]
    }

    #[test]
    fn the_fast_path_reads_every_line_as_the_slow_path_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traffic.jsonl");
        let mut system = line("How long is the refund window?");
        system["id"] = json!("req-0");
        system["timestamp"] = json!("2026-11-01T10:00:00Z");
        system["latency_ms"] = json!(700);
        system["metadata"] = json!({"route": "billing", "tenant": "t0"});
        system["request"]["temperature"] = json!(0.2);
        system["request"]["max_tokens"] = json!(256);
        system["request"]["messages"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"role": "system", "content": "Be brief."}));
        let bases = [line("Bare?"), system];

        let mut checked = 0;
        let mut fast = 0;
        let mut check = |what: &str, text: &[u8], want_fast: Option<bool>| {
            checked += 1;
            let slow = parse_request_response_slow(text, &path, checked);
            let quick = fast::parse(text, &path, checked);
            let shown = String::from_utf8_lossy(text);
            if let Some(q) = &quick {
                fast += 1;
                assert_eq!(slow.as_ref(), Ok(q), "{what}: {shown}");
            }
            assert_eq!(
                parse_request_response(text, &path, checked),
                slow,
                "{what}: {shown}"
            );
            if let Some(want) = want_fast {
                assert_eq!(quick.is_some(), want, "{what}: fast path? {shown}");
            }
        };

        let variants = fast_path_variants();
        for base in &bases {
            for (what, want_fast, edit) in &variants {
                let mut v = base.clone();
                edit(&mut v);
                check(what, v.to_string().as_bytes(), Some(*want_fast));
            }
            for (what, want_fast, text) in fast_path_raw_variants(&base.to_string()) {
                check(what, &text, Some(want_fast));
            }
        }
        // Edits together, for how they interact; which path reads them is not the point.
        for k in 0..2000_u64 {
            let mut v = bases[(k % 2) as usize].clone();
            let mut names = Vec::new();
            for j in 0..1 + mix(k) % 4 {
                let (what, _, edit) = &variants[(mix(k ^ mix(j)) % variants.len() as u64) as usize];
                edit(&mut v);
                names.push(*what);
            }
            check(&names.join(" + "), v.to_string().as_bytes(), None);
        }

        // So that the combinations test the fast path too, not only the fallback.
        assert!(fast > checked / 4, "{fast} of {checked} on the fast path");
        // The lines of the other tests check themselves: see `parse_request_response`.
    }

    #[test]
    fn tool_calls_and_tool_results_are_kept_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let tools = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        let call = json!({"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}});
        let asked = json!({
            "request": {
                "model": "gpt-4o", "tools": tools, "tool_choice": "auto",
                "messages": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"role": "assistant", "content": null, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 4}"}
                ]
            },
            "response": {
                "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Bergen\"}"}}
                ]}, "finish_reason": "tool_calls"}]
            }
        });
        let path = write(dir.path(), "tools.jsonl", &[asked]);
        let (got, _) = read(&[path], &ReadOptions::default());
        let r = &got[0];
        assert_eq!(r.params.tools, Some(tools));
        assert_eq!(r.params.tool_choice, Some(json!("auto")));
        let m = &r.messages;
        assert_eq!(
            m[1].tool_calls,
            vec![ToolCall {
                id: Some("call_1".into()),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into()
            }]
        );
        assert_eq!(m[1].content, "");
        assert_eq!(
            (
                m[2].role.as_str(),
                m[2].tool_call_id.as_deref(),
                m[2].content.as_str()
            ),
            ("tool", Some("call_1"), "{\"temp_c\": 4}")
        );
        assert_eq!(r.production.text, "");
        assert_eq!(r.production.tool_calls[0].name, "get_weather");
        assert_eq!(
            r.production.tool_calls[0].arguments,
            "{\"city\":\"Bergen\"}"
        );
        assert_eq!(r.production.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.production.usage, None);
    }

    #[test]
    fn credentials_never_reach_a_logged_request() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = [
            "Bearer sk-live-HEADER-0001",
            "sk-live-BODY-0002",
            "sk-live-EXTRA-0003",
            "sk-live-META-0004",
            "sk-live-LIST-0005",
            "sk-live-PAIR-0006",
            "sk-live-MSG-0007",
        ];
        let logged = json!({
            "metadata": {"route": "a", "Authorization": secrets[0],
                         "client": {"x-api-key": secrets[3]}},
            "request": {
                "headers": {"Authorization": secrets[0], "Content-Type": "application/json"},
                "body": {
                    "model": "gpt-4o",
                    "api_key": secrets[1],
                    "extra_headers": {"api-key": secrets[2], "X-Trace": "t1"},
                    "http_headers": [{"name": "Authorization", "value": secrets[4]},
                                     {"name": "Accept", "value": "*/*"}],
                    "raw_headers": [["authorization", secrets[5]], ["accept", "*/*"]],
                    "tools": [{"type": "function", "function": {"name": "call_api",
                        "parameters": {"type": "object",
                                       "properties": {"api_key": {"type": "string"}}}}}],
                    "messages": [{"role": "user", "content": "Hi", "openai_api_key": secrets[6]}]
                }
            },
            "response": completion("Hello."),
        });
        let path = write(dir.path(), "keys.jsonl", &[logged]);
        let (got, _) = read(&[path], &ReadOptions::default());
        let r = &got[0];
        let text = serde_json::to_string(r).unwrap();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // What is not a credential stays: other headers, the route, a schema's property name.
        assert_eq!(r.params.other["extra_headers"], json!({"X-Trace": "t1"}));
        assert_eq!(
            r.params.other["http_headers"],
            json!([{"name": "Accept", "value": "*/*"}])
        );
        assert_eq!(r.params.other["raw_headers"], json!([["accept", "*/*"]]));
        assert_eq!(r.metadata["route"], "a");
        assert_eq!(
            r.params.tools.as_ref().unwrap()[0]["function"]["parameters"]["properties"]["api_key"],
            json!({"type": "string"})
        );
        assert_eq!(r.messages[0].content, "Hi");
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted_with_their_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = [
            line("one").to_string(),
            "{\"request\": {\"messages\": [".to_owned(),
            String::new(),
            json!({"request": {"messages": [{"role": "user", "content": "x"}]}}).to_string(),
            json!({"request": {"model": "m"}, "response": completion("a")}).to_string(),
            "[1, 2]".to_owned(),
            json!({"request": {"temperature": "hot", "messages": [{"role": "user", "content": "x"}]},
                   "response": completion("a")})
            .to_string(),
            json!({"request": {"messages": [{"content": "no role"}]}, "response": completion("a")})
                .to_string(),
            line("nine").to_string(),
        ]
        .map(|l| l + "\n")
        .concat();
        let path = write_text(dir.path(), "bad.jsonl", &text);
        let (got, report) = read(std::slice::from_ref(&path), &ReadOptions::default());
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].source.line, got[1].source.line),
            (1, 9),
            "line numbers count blank lines"
        );
        assert_eq!(report.lines, 9);
        assert_eq!(report.malformed.count, 6);
        let p = path.display().to_string();
        assert_eq!(
            at(&report.malformed),
            vec![
                format!("{p}:2 | not JSON: EOF while parsing a list at line 1 column 26"),
                format!("{p}:4 | missing field `response`"),
                format!("{p}:5 | missing field `request.messages`"),
                format!("{p}:6 | not a JSON object but a list"),
                format!("{p}:7 | `request.temperature` is a string, not a number"),
            ],
            "the first {FIRST_FEW}, in order"
        );
        assert_eq!(report.torn, 0);

        let e = read_err(
            &[path],
            &ReadOptions {
                strict: true,
                ..Default::default()
            },
        );
        assert_eq!(e.exit(), crate::error::Exit::BadInput);
        let e = e.to_string();
        assert!(
            e.starts_with(&format!("{p}:2: malformed log line: not JSON")) && e.contains("fix:"),
            "{e}"
        );
    }

    #[test]
    fn a_torn_last_line_is_counted_apart_even_under_strict() {
        let dir = tempfile::tempdir().unwrap();
        let whole = format!("{}\n{}\n", line("a"), line("b"));
        let cut = &line("c").to_string()[..30];
        let path = write_text(dir.path(), "live.jsonl", &format!("{whole}{cut}"));
        for strict in [false, true] {
            let (got, report) = read(
                std::slice::from_ref(&path),
                &ReadOptions {
                    strict,
                    ..Default::default()
                },
            );
            assert_eq!(got.len(), 2);
            assert_eq!(
                (report.lines, report.torn, report.malformed.count),
                (3, 1, 0)
            );
            assert!(report.files[0].torn_tail);
        }
        // A last line without its line break that parses is an ordinary line.
        let path = write_text(dir.path(), "nolf.jsonl", &format!("{whole}{}", line("c")));
        let (got, report) = read(&[path], &ReadOptions::default());
        assert_eq!((got.len(), report.torn), (3, 0));
    }

    #[test]
    fn gzip_logs_are_read_streaming_and_a_cut_stream_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let first: String = (0..3)
            .map(|i| format!("{}\n", line(&format!("q{i}"))))
            .collect();
        let second: String = (3..5)
            .map(|i| format!("{}\n", line(&format!("q{i}"))))
            .collect();
        // Two gzip members one after the other (how logrotate and `cat a.gz b.gz` make them),
        // named without `.gz`: found by the magic bytes.
        let mut bytes = gzip(&first);
        bytes.extend(gzip(&second));
        let path = dir.path().join("traffic.log");
        std::fs::write(&path, &bytes).unwrap();
        let (got, report) = read(&[path], &ReadOptions::default());
        assert!(report.files[0].gzip);
        assert_eq!(report.files[0].kind, FileKind::RequestResponse);
        let questions: Vec<&str> = got.iter().map(|r| r.messages[0].content.as_str()).collect();
        assert_eq!(questions, ["q0", "q1", "q2", "q3", "q4"]);

        // A .gz copied while it was written: the lines before the cut are read.
        let whole = gzip(
            &(0..200)
                .map(|i| format!("{}\n", line(&format!("q{i}"))))
                .collect::<String>(),
        );
        let path = dir.path().join("cut.jsonl.gz");
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let (got, report) = read(&[path], &ReadOptions::default());
        assert!(!got.is_empty() && got.len() < 200, "{}", got.len());
        assert_eq!((report.torn, report.malformed.count), (1, 0));
    }

    /// A Batch input line.
    fn batch_in(id: &str, question: &str, url: &str) -> Value {
        json!({"custom_id": id, "method": "POST", "url": url,
               "body": {"model": "gpt-4o-mini", "temperature": 0,
                        "messages": [{"role": "user", "content": question}]}})
    }

    fn batch_out(id: &str, status: u16, answer: &str) -> Value {
        json!({"id": format!("batch_req_{id}"), "custom_id": id,
               "response": {"status_code": status, "request_id": "r", "body": completion(answer)},
               "error": null})
    }

    #[test]
    fn batch_pairs_are_joined_by_custom_id_whatever_the_file_order_and_side_held() {
        let dir = tempfile::tempdir().unwrap();
        let chat = "/v1/chat/completions";
        let inputs = [
            batch_in("r1", "one", chat),
            batch_in("r2", "two", chat),
            batch_in("r3", "three", "/v1/embeddings"),
            batch_in("r4", "four", chat),
            batch_in("r5", "five", chat),
            batch_in("r6", "six", chat),
        ];
        let outputs = [
            batch_out("r5", 200, "5"),
            batch_out("r2", 500, "server error"),
            batch_out("r1", 200, "1"),
            json!({"custom_id": "r6", "response": null,
                   "error": {"code": "batch_expired", "message": "This request expired."}}),
            batch_out("r9", 200, "stray"),
            batch_out("r3", 200, "embedding"),
        ];
        let input = write(dir.path(), "batch_in.jsonl", &inputs);
        let output = write(dir.path(), "batch_out.jsonl", &outputs);
        // The same inputs made larger than the outputs, so that the outputs are held instead.
        let padded: Vec<Value> = inputs
            .iter()
            .map(|o| {
                let mut o = o.clone();
                o["padding"] = json!("x".repeat(2000));
                o
            })
            .collect();
        let big_input = write(dir.path(), "big_in.jsonl", &padded);

        let mut seen = Vec::new();
        // The smaller side is held and the other streamed: requests come in the streamed
        // side's order.
        for (files, order) in [
            (vec![input.clone(), output.clone()], ["r5", "r1"]),
            (vec![output.clone(), input.clone()], ["r5", "r1"]),
            (vec![output.clone(), big_input.clone()], ["r1", "r5"]),
        ] {
            let (mut got, report) = read(&files, &ReadOptions::default());
            assert_eq!(ids(&got), order);
            let kinds: Vec<FileKind> = report.files.iter().map(|f| f.kind).collect();
            assert!(
                kinds.contains(&FileKind::BatchInput) && kinds.contains(&FileKind::BatchOutput),
                "{kinds:?}"
            );
            got.sort_by(|a, b| a.source.id.cmp(&b.source.id));
            assert_eq!(ids(&got), ["r1", "r5"]);
            let r = &got[0];
            assert_eq!(r.source.line, 1);
            assert!(
                [&input, &big_input].contains(&&r.source.file),
                "the input file"
            );
            assert_eq!(r.format, LogFormat::Batch);
            assert_eq!(r.production.text, "1");
            assert_eq!(r.params.temperature, Some(0.0));
            assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
            assert_eq!(r.timestamp, parse_instant("1717000000"));
            assert_eq!(report.usable, 2);
            assert!(report.batch_held >= 4, "{}", report.batch_held);
            assert_eq!(
                report.unusable.by_reason,
                BTreeMap::from([
                    (NO_INPUT, 1),
                    (NO_OUTPUT, 1),
                    (NOT_CHAT, 1),
                    (ERROR_ANSWER, 2)
                ])
            );
            let shown = at(&report.unusable).join("\n");
            assert!(shown.contains("HTTP 500"), "{shown}");
            assert!(shown.contains("This request expired."), "{shown}");
            assert!(
                shown.contains("no output line has custom_id `r4`"),
                "{shown}"
            );
            assert!(
                shown.contains("no input line has custom_id `r9`"),
                "{shown}"
            );
            seen.push(got);
        }
        assert_eq!(seen[0], seen[1]);
        for (a, b) in seen[0].iter().zip(&seen[2]) {
            assert_eq!((&a.messages, &a.production), (&b.messages, &b.production));
        }
    }

    /// An OTLP attribute.
    fn attr(key: &str, value: Value) -> Value {
        let v = match value {
            Value::String(s) => json!({"stringValue": s}),
            Value::Bool(b) => json!({"boolValue": b}),
            Value::Number(n) if n.is_i64() => json!({"intValue": n.to_string()}),
            Value::Number(n) => json!({"doubleValue": n}),
            Value::Array(a) => json!({"arrayValue": {"values":
                a.into_iter().map(|s| json!({"stringValue": s})).collect::<Vec<_>>()}}),
            other => other,
        };
        json!({"key": key, "value": v})
    }

    fn span(id: &str, attrs: Vec<Value>) -> Value {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": id, "name": "chat gpt-4o",
               "kind": 3, "startTimeUnixNano": "1717000000000000000",
               "endTimeUnixNano": "1717000001250000000", "attributes": attrs, "status": {}})
    }

    #[test]
    fn otel_spans_with_text_are_read_and_spans_without_are_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let input = json!([
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
                "name": "get_weather", "arguments": {"city": "Oslo"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                "response": "4 degrees"}]}
        ]);
        let output = json!([{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": "It is 4 degrees in Oslo."}]}]);
        let full = span(
            "a1",
            vec![
                attr("gen_ai.operation.name", json!("chat")),
                attr("gen_ai.provider.name", json!("openai")),
                attr("gen_ai.request.model", json!("gpt-4o")),
                attr("gen_ai.response.model", json!("gpt-4o-2024-08-06")),
                attr("gen_ai.request.temperature", json!(0.5)),
                attr("gen_ai.request.max_tokens", json!(300)),
                attr("gen_ai.request.stop_sequences", json!(["\n\n"])),
                attr("gen_ai.usage.input_tokens", json!(40)),
                attr("gen_ai.usage.output_tokens", json!(9)),
                attr(
                    "gen_ai.system_instructions",
                    json!(json!([{"type": "text", "content": "Be brief."}]).to_string()),
                ),
                attr("gen_ai.input.messages", json!(input.to_string())),
                attr("gen_ai.output.messages", json!(output.to_string())),
                attr(
                    "http.request.header.authorization",
                    json!(["Bearer sk-otel-SECRET-1"]),
                ),
            ],
        );
        let no_text = span(
            "b2",
            vec![
                attr("gen_ai.operation.name", json!("chat")),
                attr("gen_ai.request.model", json!("gpt-4o")),
                attr("gen_ai.usage.input_tokens", json!(40)),
            ],
        );
        let http = span("c3", vec![attr("http.request.method", json!("POST"))]);
        let tool = span(
            "d4",
            vec![
                attr("gen_ai.operation.name", json!("execute_tool")),
                attr("gen_ai.tool.name", json!("get_weather")),
            ],
        );
        // The older conventions: content on events.
        let mut legacy = span(
            "e5",
            vec![
                attr("gen_ai.system", json!("openai")),
                attr("gen_ai.request.model", json!("gpt-4")),
            ],
        );
        legacy["events"] = json!([
            {"name": "gen_ai.content.prompt", "timeUnixNano": "1717000000000000000",
             "attributes": [attr("gen_ai.prompt",
                json!(json!([{"role": "user", "content": "Hello?"}]).to_string()))]},
            {"name": "gen_ai.content.completion", "timeUnixNano": "1717000000000000000",
             "attributes": [attr("gen_ai.completion",
                json!(json!([{"role": "assistant", "content": "Hi!"}]).to_string()))]}
        ]);
        // OpenLLMetry's indexed attributes.
        let indexed = span(
            "f6",
            vec![
                attr("gen_ai.system", json!("openai")),
                attr("gen_ai.prompt.0.role", json!("system")),
                attr("gen_ai.prompt.0.content", json!("Be kind.")),
                attr("gen_ai.prompt.1.role", json!("user")),
                attr("gen_ai.prompt.1.content", json!("Thanks?")),
                attr("gen_ai.completion.0.role", json!("assistant")),
                attr("gen_ai.completion.0.content", json!("Welcome.")),
                attr("gen_ai.completion.0.finish_reason", json!("stop")),
            ],
        );
        let mut failed = span(
            "g7",
            vec![
                attr("gen_ai.operation.name", json!("chat")),
                attr("gen_ai.input.messages", json!(input.to_string())),
            ],
        );
        failed["status"] = json!({"code": 2, "message": "rate limited"});
        let export = |spans: Vec<Value>| {
            json!({"resourceSpans": [{
                "resource": {"attributes": [attr("service.name", json!("support-bot"))]},
                "scopeSpans": [{"scope": {"name": "openai.instrumentation"}, "spans": spans}]
            }]})
        };
        let path = write(
            dir.path(),
            "spans.jsonl",
            &[
                export(vec![full, no_text, http]),
                export(vec![tool, legacy, indexed, failed]),
            ],
        );
        let (got, report) = read(&[path], &ReadOptions::default());
        assert_eq!(report.files[0].kind, FileKind::Otel);
        assert_eq!(ids(&got), ["a1", "e5", "f6"]);
        assert_eq!(report.ignored, 2, "the HTTP and the tool span");
        assert_eq!(report.unusable.by_reason.get(NO_TEXT), Some(&1));
        assert_eq!(report.unusable.by_reason.get(ERROR_ANSWER), Some(&1));
        let shown = at(&report.unusable).join("\n");
        assert!(
            shown.contains(":1 | OTel span without message text: span b2"),
            "{shown}"
        );
        assert!(shown.contains("rate limited"), "{shown}");

        let r = &got[0];
        let roles: Vec<&str> = r.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(r.messages[0].content, "Be brief.");
        assert_eq!(r.messages[2].tool_calls[0].arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(r.messages[3].content, "4 degrees");
        assert_eq!(r.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            (r.params.temperature, r.params.max_tokens),
            (Some(0.5), Some(300))
        );
        assert_eq!(r.params.stop, ["\n\n"]);
        let p = &r.production;
        assert_eq!(p.text, "It is 4 degrees in Oslo.");
        assert_eq!(p.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            p.usage,
            Some(Usage {
                input: 40,
                output: 9
            })
        );
        assert_eq!(p.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(p.latency_ms, Some(1250.0));
        assert_eq!(r.timestamp, parse_instant("1717000000"));
        assert_eq!(r.metadata["service.name"], "support-bot");
        assert_eq!(r.metadata["gen_ai.provider.name"], "openai");
        assert_eq!(r.metadata["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert!(
            !serde_json::to_string(r)
                .unwrap()
                .contains("sk-otel-SECRET-1")
        );
        assert!(!r.metadata.contains_key("gen_ai.input.messages"));

        assert_eq!(got[1].messages, [Message::text("user", "Hello?".into())]);
        assert_eq!(got[1].production.text, "Hi!");
        assert_eq!(got[2].messages.len(), 2);
        assert_eq!(got[2].production.text, "Welcome.");
        assert_eq!(got[2].production.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn results_files_rebuild_requests_from_the_run_items() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        write(
            &run,
            "items.jsonl",
            &[
                json!({"id": "q1", "question": "What is the refund window?",
                       "context": ["Refunds within 30 days."], "tags": ["billing"]}),
                json!({"id": "q2", "question": "Who are you?"}),
            ],
        );
        let result = |id: &str, model: &str, ok: bool, answer: Option<&str>| {
            json!({"id": id, "model": model, "trial": 0, "ok": ok, "pass": ok,
                   "answer": answer, "latency_ms": 120.0, "attempts": 1,
                   "tokens": {"input": 30, "output": 5, "estimated": false}, "cost_usd": 0.0})
        };
        let lines = [
            result("q1", "current", true, Some("30 days.")),
            result("q1", "candidate", true, Some("Thirty days.")),
            result("q2", "current", false, None),
            result("q3", "current", true, Some("orphan")),
            result("q2", "current", true, Some("A bot.")),
        ];
        let path = write(&run, "results.jsonl", &lines);
        let (got, report) = read(std::slice::from_ref(&path), &ReadOptions::default());
        assert_eq!(report.files[0].kind, FileKind::Results);
        assert_eq!(ids(&got), ["q1", "q2"]);
        assert_eq!(report.ignored, 1, "the candidate's line");
        assert_eq!(report.unusable.by_reason.get(ERROR_ANSWER), Some(&1));
        assert_eq!(report.unusable.by_reason.get(NO_ITEM), Some(&1));
        let r = &got[0];
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].role, "user");
        assert_eq!(
            r.messages[0].content,
            "Answer the question using only the context below.\n\nContext:\nRefunds within 30 days.\n\nQuestion: What is the refund window?"
        );
        assert_eq!(r.production.text, "30 days.");
        assert_eq!(
            r.production.usage,
            Some(Usage {
                input: 30,
                output: 5
            })
        );
        assert_eq!(r.metadata["tags"], json!(["billing"]));
        assert_eq!(got[1].messages[0].content, "Question: Who are you?");

        // The candidate's side, after a system message.
        let options = ReadOptions {
            results_side: Side::Candidate,
            results_system: Some("You are terse.".into()),
            ..Default::default()
        };
        let (got, _) = read(std::slice::from_ref(&path), &options);
        assert_eq!(got[0].production.text, "Thirty days.");
        assert_eq!(
            got[0].messages[0],
            Message::text("system", "You are terse.".into())
        );

        // Without items.jsonl nothing can be rebuilt, and each line says why.
        std::fs::remove_file(run.join("items.jsonl")).unwrap();
        let (got, report) = read(&[path], &ReadOptions::default());
        assert!(got.is_empty());
        assert_eq!(report.unusable.by_reason.get(NO_ITEM), Some(&3));
        assert!(at(&report.unusable)[0].contains("the question is unknown"));
    }

    #[test]
    fn an_unknown_format_names_what_was_recognised_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.jsonl", &[line("a")]);
        let other = write(
            dir.path(),
            "langfuse.jsonl",
            &[json!({"traceId": "t", "input": "x", "output": "y"})],
        );
        let text = write_text(dir.path(), "notes.txt", "\n\nhello world\n");
        let list = write(dir.path(), "list.jsonl", &[json!([1, 2])]);
        let empty = write_text(dir.path(), "empty.jsonl", "\n");
        let e = read_err(
            &[
                good.clone(),
                other.clone(),
                text.clone(),
                list.clone(),
                empty.clone(),
            ],
            &ReadOptions::default(),
        );
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        let e = e.to_string();
        for want in [
            "cannot tell the format of 3 of 5 log file(s)".to_owned(),
            format!("{}: a request/response log", good.display()),
            format!(
                "{}: line 1 is a JSON object with keys `input`, `output`, `traceId`, not a known log shape",
                other.display()
            ),
            format!("{}: line 3 is not JSON (expected value", text.display()),
            format!(
                "{}: line 1 is JSON but not an object (a list)",
                list.display()
            ),
            format!("{}: empty", empty.display()),
            "fix: give --format".to_owned(),
        ] {
            assert!(e.contains(&want), "{want}\nnot in\n{e}");
        }

        let missing = dir.path().join("nope.jsonl");
        let e = read_err(&[missing], &ReadOptions::default()).to_string();
        assert!(e.contains("nope.jsonl: cannot open the log"), "{e}");
    }

    #[test]
    fn a_format_given_overrides_detection_and_names_tell_batch_sides() {
        let dir = tempfile::tempdir().unwrap();
        // An output file whose lines are all errors: no `response` key, so its name says.
        let errors = write(
            dir.path(),
            "batch_123_output.jsonl",
            &[json!({"custom_id": "r1", "error": {"message": "expired"}})],
        );
        let input = write(
            dir.path(),
            "requests.jsonl",
            &[batch_in("r1", "one", "/v1/chat/completions")],
        );
        let kinds = detect(&[errors.clone(), input.clone()], None).unwrap();
        assert_eq!(
            kinds,
            [
                (FileKind::BatchOutput, false),
                (FileKind::BatchInput, false)
            ]
        );
        let (got, report) = read(&[input, errors], &ReadOptions::default());
        assert!(got.is_empty());
        assert_eq!(report.unusable.by_reason.get(ERROR_ANSWER), Some(&1));

        // Detection looks past a malformed first line; the line is then counted.
        let path = write_text(
            dir.path(),
            "mixed.log",
            &format!("garbage\n{}\n", line("a")),
        );
        let (got, report) = read(&[path], &ReadOptions::default());
        assert_eq!((got.len(), report.malformed.count), (1, 1));

        // Given a format, a file nothing in which is recognised is read as that format.
        let path = write(
            dir.path(),
            "renamed.jsonl",
            &[json!({"req": {}}), json!({"req": {}})],
        );
        assert!(read_logs(std::slice::from_ref(&path), &ReadOptions::default(), |_| {}).is_err());
        let options = ReadOptions {
            format: Some(LogFormat::RequestResponse),
            ..Default::default()
        };
        let (got, report) = read(&[path], &options);
        assert_eq!((got.len(), report.malformed.count), (0, 2));
        assert!(at(&report.malformed)[1].ends_with(":2 | missing field `request`"));
    }

    #[test]
    fn duplicates_are_kept_once_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = line("same question");
        a["request"]["user"] = json!("u1");
        a["request"]["logit_bias"] = json!({"50256": -100, "1734": 5});
        // The same request: other key order (in messages and in the rest of the body), model,
        // id, answer and time.
        let again: Value = serde_json::from_str(
            r#"{"id": "x2", "timestamp": 1717000000,
                "request": {"logit_bias": {"1734": 5, "50256": -100}, "user": "u1",
                            "messages": [{"content": "same question", "role": "user"}], "model": "gpt-4o-mini"},
                "response": {"choices": [{"message": {"role": "assistant", "content": "Other."}}]}}"#,
        )
        .unwrap();
        let mut warmer = a.clone();
        warmer["request"]["temperature"] = json!(1.0);
        let path = write(dir.path(), "dups.jsonl", &[a.clone(), again, warmer, a]);
        let (got, report) = read(std::slice::from_ref(&path), &ReadOptions::default());
        assert_eq!((got.len(), report.duplicates), (4, 0), "not asked");
        assert_eq!(got[0].fingerprint(), got[1].fingerprint());
        assert_ne!(got[0].fingerprint(), got[2].fingerprint());
        let (got, report) = read(
            &[path],
            &ReadOptions {
                dedup: true,
                ..Default::default()
            },
        );
        assert_eq!(
            got.iter().map(|r| r.source.line).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(report.duplicates, 2);
        assert_eq!(report.usable, 4);
    }

    #[test]
    fn since_and_until_keep_the_window_and_drop_undated_requests() {
        let dir = tempfile::tempdir().unwrap();
        let stamped = |t: Value| {
            let mut l = line("q");
            l["timestamp"] = t;
            l["response"].as_object_mut().unwrap().remove("created");
            l
        };
        let lines = [
            stamped(json!("2025-01-01T00:00:00Z")),
            stamped(json!("2025-01-02T00:00:00Z")),
            stamped(json!(1_735_862_400)), // 2025-01-03T00:00:00Z
            stamped(json!("2025-01-04T00:00:00Z")),
            stamped(Value::Null),
            stamped(json!("yesterday")),
        ];
        let path = write(dir.path(), "times.jsonl", &lines);
        let options = ReadOptions {
            since: parse_instant("2025-01-02T00:00:00Z"),
            until: parse_instant("2025-01-04T00:00:00Z"),
            ..Default::default()
        };
        let (got, report) = read(&[path], &options);
        assert_eq!(
            got.iter().map(|r| r.source.line).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            (
                report.outside_window,
                report.undated,
                report.malformed.count
            ),
            (2, 1, 1)
        );
        assert!(at(&report.malformed)[0].contains("`timestamp` \"yesterday\" is neither"));
        assert_eq!(
            report.usable,
            report.undated
                + report.outside_window
                + report.duplicates
                + report.sampled_out
                + report.delivered
        );
    }

    #[test]
    fn a_seeded_stratified_sample_is_the_same_for_a_seed_and_proportional() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        for (route, n) in [("billing", 60), ("search", 30), ("admin", 7)] {
            for i in 0..n {
                let mut l = line(&format!("{route} {i}"));
                l["id"] = json!(format!("{route}-{i}"));
                l["metadata"] = json!({"app": {"route": route}});
                lines.push(l);
            }
        }
        for i in 0..3 {
            let mut l = line(&format!("none {i}"));
            l["id"] = json!(format!("none-{i}"));
            lines.push(l);
        }
        // Interleave the strata, as traffic would be.
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by_key(|&i| mix(i as u64));
        let lines: Vec<Value> = order.into_iter().map(|i| lines[i].clone()).collect();
        let path = write(dir.path(), "traffic.jsonl", &lines);
        let sample = |seed| ReadOptions {
            sample: Some(Sample {
                n: 20,
                seed,
                stratify: Some("app.route".into()),
            }),
            ..Default::default()
        };
        let (a, report) = read(std::slice::from_ref(&path), &sample(7));
        let (b, _) = read(std::slice::from_ref(&path), &sample(7));
        let (c, _) = read(std::slice::from_ref(&path), &sample(8));
        assert_eq!(a.len(), 20);
        assert_eq!(ids(&a), ids(&b), "same seed, same sample");
        assert_ne!(ids(&a), ids(&c), "another seed, another sample");
        let lines_of: Vec<usize> = a.iter().map(|r| r.source.line).collect();
        assert!(lines_of.is_sorted(), "in log order: {lines_of:?}");
        assert_eq!((report.delivered, report.sampled_out), (20, 80));

        let frame = report.sample.unwrap();
        assert_eq!(frame.strata.iter().map(|s| s.seen).sum::<usize>(), 100);
        for s in &frame.strata {
            let exact = 20.0 * s.seen as f64 / 100.0;
            assert!(
                (s.kept as f64 - exact).abs() < 1.0,
                "{:?}: {} kept of {} (exactly {exact})",
                s.value,
                s.kept,
                s.seen
            );
            let prefix = s.value.clone().unwrap_or("none".into());
            let kept = ids(&a).iter().filter(|id| id.starts_with(&prefix)).count();
            assert_eq!(kept, s.kept, "{prefix}");
        }
        assert!(
            frame
                .strata
                .iter()
                .any(|s| s.value.is_none() && s.seen == 3)
        );

        // More asked than there is: everything, in log order.
        let mut all = sample(1);
        all.sample.as_mut().unwrap().n = 1000;
        let (got, report) = read(&[path], &all);
        assert_eq!((got.len(), report.sampled_out), (100, 0));
        assert_eq!(
            got.iter().map(|r| r.source.line).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn instants_parse_from_rfc3339_and_every_epoch_unit() {
        let want = OffsetDateTime::from_unix_timestamp(1_717_171_717).unwrap();
        for text in [
            "2024-05-31T16:08:37Z",
            "2024-05-31T18:08:37+02:00",
            "1717171717",
            "1717171717000",
            "1717171717000000",
            "1717171717000000000",
            "1717171717.0",
        ] {
            assert_eq!(parse_instant(text), Some(want), "{text}");
        }
        assert_eq!(instant_of(&json!(1_717_171_717_000_u64)), Ok(Some(want)));
        assert_eq!(
            instant_of(&json!(1_717_171_717.5))
                .unwrap()
                .unwrap()
                .millisecond(),
            500
        );
        assert_eq!(parse_instant("31/05/2024"), None);
        assert_eq!(instant_of(&json!(true)), Err(()));
    }

    #[test]
    fn a_line_past_the_limit_is_skipped_and_the_next_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_text(
            dir.path(),
            "long.jsonl",
            &format!("{}\nshort\n", "x".repeat(500)),
        );
        let mut lines = Lines::open(&path).unwrap();
        lines.max = 100;
        assert!(matches!(lines.next().unwrap(), Next::TooLong));
        assert!(matches!(
            lines.next().unwrap(),
            Next::Line { complete: true }
        ));
        assert_eq!((lines.line(), lines.number), (&b"short"[..], 2));
        assert!(matches!(lines.next().unwrap(), Next::End));
    }

    #[test]
    fn a_logged_request_round_trips_through_json_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = line("Mail me at jane@example.com");
        l["timestamp"] = json!("2025-01-01T00:00:00.5Z");
        l["metadata"] = json!({"user": "bob@example.org"});
        l["response"] = completion("Sure, I wrote to jane@example.com.");
        let path = write(dir.path(), "pii.jsonl", &[l]);
        let (got, _) = read(&[path], &ReadOptions::default());
        let mut r = got.into_iter().next().unwrap();
        let back: LoggedRequest =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let redactor = Redactor::new(&[]).unwrap();
        r.redact(&redactor);
        assert_eq!(r.messages[0].content, "Mail me at [email]");
        assert_eq!(r.production.text, "Sure, I wrote to [email].");
        assert_eq!(r.metadata["user"], "[email]");
        assert_eq!(redactor.counts().get(crate::shadow::redact::Kind::Email), 3);
    }
}
