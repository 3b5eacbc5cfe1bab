//! Canary logs as written: one record per request, as JSON lines, CSV with a header, or OTel
//! spans (OTLP/JSON export lines, as the collector's file exporter writes them); gzip is read as
//! it is. Files are streamed line by line: nothing but the record being read is held.
//!
//! Where each value is comes from `[canary.fields]` (a key, a dotted path into nested objects, or
//! a CSV column). A record needs a variant the configuration knows and a timestamp; a line that
//! is not a record is skipped and counted with its file and line (`--strict` stops at it), a
//! variant no one configured is counted by name, and a value that cannot mean what its field
//! says (a CSAT of 7) is dropped from that record and counted by field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::Value;

use super::Arm;
use crate::config::{CanaryFields, CanaryVariants};
use crate::error::{Error, Location, Problem};
use crate::shadow::log::{Lines, Next};

/// Examples kept of skipped lines, per kind of problem: enough to find and mend them.
const EXAMPLES: usize = 5;
/// Distinct unknown variant names kept; the rest are counted together.
const UNKNOWN_NAMES: usize = 20;

/// One request as the analysis sees it. Absent values are `None`; `tags` index
/// [`ReadReport::tags`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub arm: Option<Arm>,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub error: Option<bool>,
    pub input_tokens: Option<f64>,
    pub output_tokens: Option<f64>,
    pub cost_usd: Option<f64>,
    pub thumbs_up: Option<bool>,
    pub csat: Option<f64>,
    pub correct: Option<bool>,
    /// A hash of the user's id (or, without one, of the session's): the unit requests cluster on.
    pub user: Option<u64>,
    pub tags: Vec<u16>,
}

/// The format of one log file, as recognised from its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
    Otel,
}

/// What reading found, for the reports and `decision.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadReport {
    pub files: Vec<FileRead>,
    /// Lines that were records of a known arm, inside the time window.
    pub records: u64,
    /// Lines skipped: not a record (not JSON, no variant, no timestamp, ...).
    pub malformed: u64,
    /// Examples of skipped lines: `file:line: what was wrong`.
    pub examples: Vec<String>,
    /// Records whose variant no `[canary.variants]` name matches, by name.
    pub unknown_variants: BTreeMap<String, u64>,
    /// Records outside `--since` / `--until`.
    pub outside_window: u64,
    /// Values dropped because they could not mean what their field says, by field.
    pub invalid_values: BTreeMap<String, u64>,
    /// The tag values seen, in order of first appearance.
    pub tags: Vec<String>,
    /// The first and last timestamps of the records read (unix ms).
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Which optional fields any record carried: a metric on one that none did is left out.
    pub carried: Carried,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileRead {
    pub path: PathBuf,
    pub format: Format,
    pub lines: u64,
}

/// The optional values at least one record carried.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Carried {
    pub latency: bool,
    pub ttft: bool,
    pub error: bool,
    pub tokens: bool,
    pub cost: bool,
    pub feedback: bool,
    pub csat: bool,
    pub correct: bool,
    pub user: bool,
    pub tags: bool,
}

/// How to read: the field map, the variant names, the time window, strictness.
pub struct ReadOptions<'a> {
    pub fields: &'a CanaryFields,
    pub variants: &'a CanaryVariants,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub strict: bool,
}

/// The fields of a record, in slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Variant,
    Timestamp,
    Latency,
    Ttft,
    Error,
    InputTokens,
    OutputTokens,
    Cost,
    Feedback,
    Csat,
    Correct,
    Label,
    ExpectedLabel,
    User,
    Session,
    Tags,
}

const FIELDS: [Field; 16] = [
    Field::Variant,
    Field::Timestamp,
    Field::Latency,
    Field::Ttft,
    Field::Error,
    Field::InputTokens,
    Field::OutputTokens,
    Field::Cost,
    Field::Feedback,
    Field::Csat,
    Field::Correct,
    Field::Label,
    Field::ExpectedLabel,
    Field::User,
    Field::Session,
    Field::Tags,
];

impl Field {
    fn name(self, f: &CanaryFields) -> &str {
        match self {
            Field::Variant => &f.variant,
            Field::Timestamp => &f.timestamp,
            Field::Latency => &f.latency_ms,
            Field::Ttft => &f.ttft_ms,
            Field::Error => &f.error,
            Field::InputTokens => &f.input_tokens,
            Field::OutputTokens => &f.output_tokens,
            Field::Cost => &f.cost_usd,
            Field::Feedback => &f.feedback,
            Field::Csat => &f.csat,
            Field::Correct => &f.correct,
            Field::Label => &f.label,
            Field::ExpectedLabel => &f.expected_label,
            Field::User => &f.user_id,
            Field::Session => &f.session_id,
            Field::Tags => &f.tags,
        }
    }

    /// The `[canary.fields]` key that maps it.
    fn key(self) -> &'static str {
        match self {
            Field::Variant => "variant",
            Field::Timestamp => "timestamp",
            Field::Latency => "latency_ms",
            Field::Ttft => "ttft_ms",
            Field::Error => "error",
            Field::InputTokens => "input_tokens",
            Field::OutputTokens => "output_tokens",
            Field::Cost => "cost_usd",
            Field::Feedback => "feedback",
            Field::Csat => "csat",
            Field::Correct => "correct",
            Field::Label => "label",
            Field::ExpectedLabel => "expected_label",
            Field::User => "user_id",
            Field::Session => "session_id",
            Field::Tags => "tags",
        }
    }

    /// Where OTel's semantic conventions put it, when the configured name is not on a span.
    fn otel_names(self) -> &'static [&'static str] {
        match self {
            Field::Variant => &["feature_flag.result.variant", "feature_flag.variant"],
            Field::InputTokens => &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"],
            Field::OutputTokens => &[
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
            ],
            Field::User => &["user.id", "enduser.id"],
            Field::Session => &["session.id"],
            _ => &[],
        }
    }
}

/// The configured name of each field, split at dots: the first segment is the key looked up at
/// the top of a record, the rest a path below it (unless the whole name is itself a key).
struct FieldMap {
    names: Vec<String>,
    /// Distinct first segments and whole names: the keys worth keeping from a JSON line.
    keys: Vec<String>,
}

impl FieldMap {
    fn new(fields: &CanaryFields) -> FieldMap {
        let names: Vec<String> = FIELDS.iter().map(|f| f.name(fields).to_owned()).collect();
        let mut keys: Vec<String> = Vec::new();
        for n in &names {
            for k in [n.as_str(), n.split('.').next().unwrap_or(n)] {
                if !k.is_empty() && !keys.iter().any(|x| x == k) {
                    keys.push(k.to_owned());
                }
            }
        }
        FieldMap { names, keys }
    }

    /// The value of `field` among the kept top-level values.
    fn get<'v>(&self, kept: &'v [Option<Value>], field: Field) -> Option<&'v Value> {
        let name = &self.names[field as usize];
        let slot = |k: &str| self.keys.iter().position(|x| x == k);
        if let Some(v) = slot(name).and_then(|i| kept[i].as_ref()) {
            return Some(v);
        }
        let mut parts = name.split('.');
        let mut v = slot(parts.next()?).and_then(|i| kept[i].as_ref())?;
        for p in parts {
            v = v.get(p)?;
        }
        Some(v)
    }
}

/// A JSON object's top-level values at the wanted keys, the rest skipped unparsed.
struct Keep<'a> {
    keys: &'a [String],
    kept: &'a mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(KeySlot(self.keys))? {
            match slot {
                Some(i) => self.kept[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, as the index of the wanted key it is (no allocation for the keys skipped).
struct KeySlot<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for KeySlot<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySlot<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| k == v))
    }
}

/// Reads canary logs record by record.
pub struct Reader<'a> {
    options: ReadOptions<'a>,
    map: FieldMap,
    current: Vec<String>,
    candidate: Vec<String>,
    pub report: ReadReport,
    kept: Vec<Option<Value>>,
    record: Record,
}

impl<'a> Reader<'a> {
    pub fn new(options: ReadOptions<'a>) -> Reader<'a> {
        let map = FieldMap::new(options.fields);
        let lower = |v: &[String]| v.iter().map(|s| s.trim().to_lowercase()).collect();
        Reader {
            current: lower(&options.variants.current),
            candidate: lower(&options.variants.candidate),
            kept: vec![None; map.keys.len()],
            map,
            options,
            report: ReadReport::default(),
            record: Record::default(),
        }
    }

    /// Read one file, calling `each` with every record of a known arm inside the window.
    pub fn read_file(&mut self, path: &Path, each: &mut dyn FnMut(&Record)) -> Result<(), Error> {
        let mut lines = Lines::open(path)?;
        let mut format: Option<Format> = None;
        let mut csv: Option<CsvColumns> = None;
        let mut count = 0u64;
        loop {
            match lines.next()? {
                Next::End => break,
                Next::Cut => {
                    self.skip(path, lines.number, "the gzip stream ends early")?;
                    break;
                }
                Next::TooLong => {
                    self.skip(path, lines.number, "the line is too long")?;
                    continue;
                }
                Next::Line { .. } => {}
            }
            count += 1;
            if lines.is_blank() {
                continue;
            }
            let line = lines.line();
            let number = lines.number;
            let f = *format.get_or_insert_with(|| sniff(line));
            match f {
                Format::Csv if csv.is_none() => {
                    csv = Some(CsvColumns::from_header(line, &self.map, path)?);
                }
                Format::Csv => {
                    let columns = csv.as_ref().expect("read the header first");
                    let cells = match split_csv(line) {
                        Some(c) => c,
                        None => {
                            self.skip(path, number, "an unterminated quoted CSV cell")?;
                            continue;
                        }
                    };
                    self.kept.iter_mut().for_each(|k| *k = None);
                    for (i, slot) in columns.slots.iter().enumerate() {
                        if let (Some(slot), Some(cell)) = (slot, cells.get(i)) {
                            // An empty cell is a null: no value (for `error`: no error).
                            self.kept[*slot] = Some(if cell.is_empty() {
                                Value::Null
                            } else {
                                Value::String(cell.clone())
                            });
                        }
                    }
                    self.finish(path, number, Source::Kept, each)?;
                }
                Format::Jsonl => {
                    self.kept.iter_mut().for_each(|k| *k = None);
                    let mut de = serde_json::Deserializer::from_slice(line);
                    let parsed = Keep {
                        keys: &self.map.keys,
                        kept: &mut self.kept,
                    }
                    .deserialize(&mut de)
                    .and_then(|()| de.end());
                    if let Err(e) = parsed {
                        self.skip(path, number, &format!("not a JSON object: {e}"))?;
                        continue;
                    }
                    self.finish(path, number, Source::Kept, each)?;
                }
                Format::Otel => {
                    let export: Value = match serde_json::from_slice(line) {
                        Ok(v) => v,
                        Err(e) => {
                            self.skip(path, number, &format!("not JSON: {e}"))?;
                            continue;
                        }
                    };
                    let spans = otel_spans(&export);
                    if spans.is_empty() {
                        self.skip(path, number, "no span in this OTLP export")?;
                    }
                    for span in spans {
                        self.finish(path, number, Source::Span(&span), each)?;
                    }
                }
            }
        }
        self.report.files.push(FileRead {
            path: path.to_owned(),
            format: format.unwrap_or(Format::Jsonl),
            lines: count,
        });
        Ok(())
    }

    fn skip(&mut self, path: &Path, line: usize, why: &str) -> Result<(), Error> {
        if self.options.strict {
            return Err(Error::input(
                Location::file(path).line(line),
                format!("not a canary record: {why}"),
                "mend or remove the line, or run without --strict to skip and count such lines",
            ));
        }
        self.report.malformed += 1;
        if self.report.examples.len() < EXAMPLES {
            let mut why = why.to_owned();
            why.truncate(200);
            self.report
                .examples
                .push(format!("{}:{line}: {why}", path.display()));
        }
        Ok(())
    }

    fn invalid(&mut self, field: Field) {
        *self
            .report
            .invalid_values
            .entry(field.key().to_owned())
            .or_default() += 1;
    }

    /// Turn the values found into a record and hand it on.
    fn finish(
        &mut self,
        path: &Path,
        line: usize,
        source: Source,
        each: &mut dyn FnMut(&Record),
    ) -> Result<(), Error> {
        let kept = std::mem::take(&mut self.kept);
        let result = self.build(&kept, source, path, line);
        self.kept = kept;
        if result? {
            each(&self.record);
        }
        Ok(())
    }

    /// Fill `self.record`; false when the line is skipped or outside the window.
    fn build(
        &mut self,
        kept: &[Option<Value>],
        source: Source,
        path: &Path,
        line: usize,
    ) -> Result<bool, Error> {
        let get = |f: Field| -> Option<&Value> {
            match source {
                Source::Kept => self.map.get(kept, f),
                Source::Span(span) => span
                    .get(&self.map.names[f as usize])
                    .or_else(|| f.otel_names().iter().find_map(|n| span.get(*n)))
                    // What the span itself says (its start, duration and status), kept under
                    // the default names: found whatever [canary.fields] renamed for other logs.
                    .or_else(|| {
                        matches!(f, Field::Timestamp | Field::Latency | Field::Error)
                            .then(|| span.get(f.key()))
                            .flatten()
                    }),
            }
            // A null error says the request did not fail; any other null is no value.
            .filter(|v| f == Field::Error || !v.is_null())
        };
        let Some(variant) = get(Field::Variant) else {
            let name = &self.map.names[Field::Variant as usize];
            return self
                .skip(path, line, &format!("no variant (field `{name}`)"))
                .map(|()| false);
        };
        let variant = match variant {
            Value::String(s) => s.trim().to_lowercase(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return self
                    .skip(path, line, "the variant is not a name")
                    .map(|()| false);
            }
        };
        let arm = if self.current.contains(&variant) {
            Arm::Current
        } else if self.candidate.contains(&variant) {
            Arm::Candidate
        } else {
            let unknown = &mut self.report.unknown_variants;
            if unknown.contains_key(&variant) || unknown.len() < UNKNOWN_NAMES {
                *unknown.entry(variant).or_default() += 1;
            } else {
                *unknown.entry("(other names)".to_owned()).or_default() += 1;
            }
            return Ok(false);
        };
        let at_ms = match get(Field::Timestamp).and_then(instant_ms) {
            Some(t) => t,
            None => {
                let name = &self.map.names[Field::Timestamp as usize];
                return self
                    .skip(
                        path,
                        line,
                        &format!("no timestamp (field `{name}`: RFC 3339 or epoch)"),
                    )
                    .map(|()| false);
            }
        };
        if self.options.since_ms.is_some_and(|s| at_ms < s)
            || self.options.until_ms.is_some_and(|u| at_ms >= u)
        {
            self.report.outside_window += 1;
            return Ok(false);
        }
        let mut invalid: Vec<Field> = Vec::new();
        let mut number = |f: Field, low: f64, high: f64| -> Option<f64> {
            let v = get(f)?;
            match number_of(v).filter(|x| (low..=high).contains(x)) {
                Some(x) => Some(x),
                None => {
                    invalid.push(f);
                    None
                }
            }
        };
        let latency_ms = number(Field::Latency, 0.0, 1e9);
        let ttft_ms = number(Field::Ttft, 0.0, 1e9);
        let input_tokens = number(Field::InputTokens, 0.0, 1e12);
        let output_tokens = number(Field::OutputTokens, 0.0, 1e12);
        let cost_usd = number(Field::Cost, 0.0, 1e6);
        let csat = number(Field::Csat, 1.0, 5.0);
        let error = get(Field::Error).map(error_of);
        let thumbs_up = get(Field::Feedback).and_then(|v| {
            let t = thumbs_of(v);
            if t.is_none() {
                invalid.push(Field::Feedback);
            }
            t
        });
        let correct = match get(Field::Correct) {
            Some(v) => {
                let c = truth_of(v);
                if c.is_none() {
                    invalid.push(Field::Correct);
                }
                c
            }
            None => match (get(Field::Label), get(Field::ExpectedLabel)) {
                (Some(l), Some(e)) => Some(label_text(l) == label_text(e)),
                _ => None,
            },
        };
        let user = get(Field::User)
            .or_else(|| get(Field::Session))
            .and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(fnv(s.as_bytes())),
                Value::Number(n) => Some(fnv(n.to_string().as_bytes())),
                _ => None,
            });
        let mut tags: Vec<u16> = Vec::new();
        if let Some(v) = get(Field::Tags) {
            let mut add = |t: &str| {
                let t = t.trim();
                if t.is_empty() {
                    return;
                }
                let known = &mut self.report.tags;
                let i = match known.iter().position(|k| k == t) {
                    Some(i) => i,
                    None if known.len() < u16::MAX as usize => {
                        known.push(t.to_owned());
                        known.len() - 1
                    }
                    None => return,
                };
                if !tags.contains(&(i as u16)) {
                    tags.push(i as u16);
                }
            };
            match v {
                Value::Array(a) => a.iter().filter_map(Value::as_str).for_each(&mut add),
                Value::String(s) => s.split([';', ',']).for_each(&mut add),
                _ => {}
            }
        }
        for f in invalid {
            self.invalid(f);
        }
        let c = &mut self.report.carried;
        c.latency |= latency_ms.is_some();
        c.ttft |= ttft_ms.is_some();
        c.error |= error.is_some();
        c.tokens |= input_tokens.is_some() || output_tokens.is_some();
        c.cost |= cost_usd.is_some();
        c.feedback |= thumbs_up.is_some();
        c.csat |= csat.is_some();
        c.correct |= correct.is_some();
        c.user |= user.is_some();
        c.tags |= !tags.is_empty();
        self.report.records += 1;
        self.report.first_ms = Some(self.report.first_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.report.last_ms = Some(self.report.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        self.record = Record {
            arm: Some(arm),
            at_ms,
            latency_ms,
            ttft_ms,
            error,
            input_tokens,
            output_tokens,
            cost_usd,
            thumbs_up,
            csat,
            correct,
            user,
            tags,
        };
        Ok(true)
    }
}

/// Where a record's values are: the kept top-level values of a JSON or CSV line, or a span's
/// attributes flattened.
#[derive(Clone, Copy)]
enum Source<'s> {
    Kept,
    Span(&'s serde_json::Map<String, Value>),
}

/// What a file is, from its first non-blank line.
fn sniff(line: &[u8]) -> Format {
    let trimmed = line.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        let head = &trimmed[..trimmed.len().min(4096)];
        if head.windows(15).any(|w| w == b"\"resourceSpans\"") {
            Format::Otel
        } else {
            Format::Jsonl
        }
    } else {
        Format::Csv
    }
}

/// The CSV columns that hold a field: for each column, the slot of the kept values it fills.
struct CsvColumns {
    slots: Vec<Option<usize>>,
}

impl CsvColumns {
    fn from_header(line: &[u8], map: &FieldMap, path: &Path) -> Result<CsvColumns, Error> {
        let Some(header) = split_csv(line) else {
            return Err(Error::input(
                Location::file(path).line(1),
                "the CSV header has an unterminated quoted cell",
                "mend the header",
            ));
        };
        let slots: Vec<Option<usize>> = header
            .iter()
            .map(|h| map.keys.iter().position(|k| k == h.trim()))
            .collect();
        let variant = &map.names[Field::Variant as usize];
        if !header.iter().any(|h| h.trim() == variant) {
            return Err(Problem::new(
                Location::file(path).line(1),
                format!(
                    "the first line is neither JSON nor a CSV header with a `{variant}` column (it has: {})",
                    header.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .fix("give the log as JSON lines, CSV with a header, or OTLP/JSON spans; name the variant column in [canary.fields] variant")
            .into());
        }
        Ok(CsvColumns { slots })
    }
}

/// One CSV line's cells (RFC 4180 quoting); `None` when a quoted cell is not closed.
fn split_csv(line: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(line);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cell.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            cells.push(std::mem::take(&mut cell));
            at_start = true;
        } else {
            cell.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    cells.push(cell);
    Some(cells)
}

/// Every span of an OTLP/JSON export, flattened: its attributes by key, `timestamp` (start),
/// `latency_ms` (end − start) and `error` (status code 2) under the default field names.
fn otel_spans(export: &Value) -> Vec<serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    let list = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).cloned();
    for rs in list(export, "resourceSpans").unwrap_or_default() {
        let mut resource = serde_json::Map::new();
        if let Some(r) = rs.get("resource") {
            attributes_into(r, &mut resource);
        }
        for ss in list(&rs, "scopeSpans").unwrap_or_default() {
            for span in list(&ss, "spans").unwrap_or_default() {
                let mut m = resource.clone();
                attributes_into(&span, &mut m);
                let nanos = |k: &str| {
                    span.get(k).and_then(|v| match v {
                        Value::String(s) => s.parse::<i128>().ok(),
                        Value::Number(n) => n.as_i64().map(i128::from),
                        _ => None,
                    })
                };
                if let Some(start) = nanos("startTimeUnixNano") {
                    m.entry("timestamp")
                        .or_insert(Value::from((start / 1_000_000) as i64));
                    if let Some(end) = nanos("endTimeUnixNano") {
                        m.entry("latency_ms")
                            .or_insert(Value::from((end - start) as f64 / 1e6));
                    }
                }
                let code = span.pointer("/status/code");
                let failed = code.is_some_and(|c| c == 2 || c == "STATUS_CODE_ERROR");
                m.entry("error").or_insert(if failed {
                    span.pointer("/status/message")
                        .cloned()
                        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                        .unwrap_or(Value::Bool(true))
                } else {
                    Value::Null
                });
                out.push(m);
            }
        }
    }
    out
}

/// OTLP attributes (`[{key, value: {stringValue | intValue | doubleValue | boolValue |
/// arrayValue}}]`) into a map of plain values.
fn attributes_into(owner: &Value, into: &mut serde_json::Map<String, Value>) {
    let Some(attrs) = owner.get("attributes").and_then(Value::as_array) else {
        return;
    };
    for a in attrs {
        let (Some(k), Some(v)) = (a.get("key").and_then(Value::as_str), a.get("value")) else {
            continue;
        };
        into.insert(k.to_owned(), any_value(v));
    }
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = v.get("intValue") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
            other => other.clone(),
        };
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(values) = v.pointer("/arrayValue/values").and_then(Value::as_array) {
        return Value::Array(values.iter().map(any_value).collect());
    }
    Value::Null
}

/// A number, or a string that is one.
fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

/// Whether the error field says the request failed: null, false, 0, "" and "ok"-like words say
/// it did not; any other value (a message, a code, true, an object) says it did.
fn error_of(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !matches!(
            s.trim().to_lowercase().as_str(),
            "" | "false" | "0" | "null" | "none" | "ok" | "no"
        ),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A thumbs up (true) or down (false): booleans, 1 / 0 / −1, and the usual words.
fn thumbs_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|x| x > 0.0),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "up" | "thumbs_up" | "thumbsup" | "thumbs-up" | "👍" | "positive" | "like" | "good"
            | "yes" | "true" | "1" | "+1" => Some(true),
            "down" | "thumbs_down" | "thumbsdown" | "thumbs-down" | "👎" | "negative"
            | "dislike" | "bad" | "no" | "false" | "0" | "-1" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a downstream signal says the answer was right.
fn truth_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "correct" | "right" | "pass" => Some(true),
            "false" | "0" | "no" | "incorrect" | "wrong" | "fail" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_lowercase(),
        other => other.to_string(),
    }
}

/// A timestamp in unix milliseconds: RFC 3339 (the common `…Z` form parsed by hand, fast) or an
/// epoch number in s / ms / µs / ns.
fn instant_ms(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => {
            rfc3339_utc_ms(s.as_bytes()).or_else(|| crate::shadow::log::parse_instant(s).map(ms))
        }
        Value::Number(n) => crate::shadow::log::parse_instant(&n.to_string()).map(ms),
        _ => None,
    }
}

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…]Z` in unix ms; anything else (offsets, spaces) is left to the full
/// parser.
fn rfc3339_utc_ms(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || *b.last()? != b'Z' || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut millis = 0;
    let rest = &b[19..b.len() - 1];
    if !rest.is_empty() {
        if rest[0] != b'.' || rest.len() < 2 || !rest[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let digits = &rest[1..];
        for i in 0..3 {
            millis = millis * 10 + digits.get(i).map_or(0, |&c| i64::from(c - b'0'));
        }
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + millis)
}

/// FNV-1a: a stable 64-bit hash of a user's id (the ids themselves are never kept).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, name: &str) -> (Vec<Record>, ReadReport) {
        read_with(text, name, &CanaryFields::default())
    }

    fn read_with(text: &str, name: &str, fields: &CanaryFields) -> (Vec<Record>, ReadReport) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let variants = CanaryVariants::default();
        let mut r = Reader::new(ReadOptions {
            fields,
            variants: &variants,
            since_ms: None,
            until_ms: None,
            strict: false,
        });
        let mut out = Vec::new();
        r.read_file(&path, &mut |rec| out.push(rec.clone()))
            .unwrap();
        (out, r.report)
    }

    #[test]
    fn the_hand_parsed_timestamp_is_the_full_parsers() {
        for t in [
            "2026-11-30T12:00:00.123Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999Z",
            "2024-12-31T00:00:00.5Z",
            "1969-12-31T23:59:59Z",
        ] {
            let full = ms(crate::shadow::log::parse_instant(t).unwrap());
            assert_eq!(rfc3339_utc_ms(t.as_bytes()), Some(full), "{t}");
        }
        assert_eq!(rfc3339_utc_ms(b"2026-11-30T12:00:00+01:00"), None);
    }

    #[test]
    fn json_lines_csv_and_otel_give_the_same_record() {
        let json = r#"{"timestamp":"2026-11-30T12:00:00Z","variant":"Canary","latency_ms":412,"error":null,"feedback":"up","csat":4,"correct":true,"user_id":"u-1","tags":["billing"],"other":{"deep":[1,2]}}"#;
        let (j, _) = read(&format!("{json}\n"), "a.jsonl");
        let csv = "timestamp,variant,latency_ms,error,feedback,csat,correct,user_id,tags\n2026-11-30T12:00:00Z,canary,412,,up,4,true,u-1,billing\n";
        let (c, _) = read(csv, "a.csv");
        let otel = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"chat"}}]},"scopeSpans":[{"spans":[{"name":"chat","startTimeUnixNano":"1796040000000000000","endTimeUnixNano":"1796040000412000000","status":{},"attributes":[{"key":"feature_flag.result.variant","value":{"stringValue":"canary"}},{"key":"feedback","value":{"stringValue":"up"}},{"key":"csat","value":{"intValue":"4"}},{"key":"correct","value":{"boolValue":true}},{"key":"user.id","value":{"stringValue":"u-1"}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"billing"}]}}}]}]}]}]}"#;
        let (o, _) = read(&format!("{otel}\n"), "spans.jsonl");
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].arm, Some(Arm::Candidate));
        assert_eq!(j[0].latency_ms, Some(412.0));
        assert_eq!(j[0].error, Some(false));
        assert_eq!(j[0].thumbs_up, Some(true));
        assert_eq!(j[0].csat, Some(4.0));
        assert_eq!(j, c, "csv");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].at_ms, j[0].at_ms);
        assert_eq!(o[0].latency_ms, Some(412.0));
        assert_eq!(o[0].user, j[0].user);
        assert_eq!(
            (o[0].csat, o[0].correct, o[0].thumbs_up),
            (Some(4.0), Some(true), Some(true))
        );
    }

    #[test]
    fn a_span_keeps_its_own_time_duration_and_status_when_fields_are_renamed() {
        // [canary.fields] renamed for the JSON logs; the spans still say when, how long and
        // whether they failed.
        let fields = CanaryFields {
            timestamp: "ts".to_owned(),
            latency_ms: "duration_ms".to_owned(),
            error: "failed".to_owned(),
            ..CanaryFields::default()
        };
        let span = |status: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"startTimeUnixNano":"1796040000000000000","endTimeUnixNano":"1796040000412000000","status":{status},"attributes":[{{"key":"feature_flag.result.variant","value":{{"stringValue":"current"}}}}]}}]}}]}}]}}"#
            )
        };
        let text = format!("{}\n{}\n", span("{}"), span(r#"{"code":2}"#));
        let (o, report) = read_with(&text, "spans.jsonl", &fields);
        assert_eq!(report.malformed, 0, "{:?}", report.examples);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].at_ms, 1_796_040_000_000);
        assert_eq!(o[0].latency_ms, Some(412.0));
        assert_eq!((o[0].error, o[1].error), (Some(false), Some(true)));
    }

    #[test]
    fn bad_lines_are_counted_with_their_place_and_odd_values_dropped() {
        let text = "{\"timestamp\":\"2026-11-30T12:00:00Z\",\"variant\":\"current\",\"csat\":7,\"latency_ms\":\"fast\"}\nnot json\n{\"variant\":\"current\"}\n{\"timestamp\":1796040000,\"variant\":\"shadow\"}\n\n{\"timestamp\":1796040000123,\"variant\":\"control\",\"error\":\"timeout\",\"feedback\":0}\n";
        let (recs, report) = read(text, "log.jsonl");
        assert_eq!(recs.len(), 2);
        assert_eq!(report.malformed, 2);
        assert!(
            report.examples[0].contains("log.jsonl:2: not a JSON object"),
            "{:?}",
            report.examples
        );
        assert!(report.examples[1].contains("log.jsonl:3: no timestamp"));
        assert_eq!(report.unknown_variants.get("shadow"), Some(&1));
        assert_eq!(report.invalid_values.get("csat"), Some(&1));
        assert_eq!(report.invalid_values.get("latency_ms"), Some(&1));
        assert_eq!(recs[0].csat, None);
        assert_eq!(recs[1].error, Some(true));
        assert_eq!(recs[1].thumbs_up, Some(false));
        assert_eq!(recs[1].at_ms, 1_796_040_000_123);
    }
}
