//! Typed configuration files: the evaluation (`goldgate.toml`) and provider adapters
//! (`providers/<name>.toml`). Unknown keys are errors that name the key and the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::check::{CheckSpec, Measure, Patterns};
use crate::error::{Error, Location, Problem, read_input};

/// Parse a TOML file into a typed struct; a syntax error, a typo'd key or a wrong type names the
/// file, the line and the key.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Error> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_problem(path, text, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let mut p = toml_problem(path, text, &inner);
        if p.at.field.is_none() && field != "." && !field.is_empty() {
            p.at = p.at.field(field);
        }
        p.into()
    })
}

fn toml_problem(path: &Path, text: &str, e: &toml::de::Error) -> Problem {
    let mut at = Location::file(path);
    if let Some(span) = e.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        at = at.line(line);
    }
    let message = e.message().trim().to_owned();
    let fix = if message.starts_with("unknown field") {
        "remove the key or correct its spelling (the message lists the keys this table accepts)"
    } else if message.starts_with("missing field") {
        "add the key; see the configuration reference in README.md"
    } else {
        "see the configuration reference in README.md"
    };
    Problem::new(at, message).fix(fix)
}

/// The largest `repeats`: more trials than this is a typo, not a plan (each is a paid call).
const MAX_REPEATS: f64 = 1000.0;
/// The most requests in flight: beyond this, a run exhausts file descriptors before any server.
const MAX_CONCURRENCY: f64 = 4096.0;
/// A day: no single attempt should wait longer, and a `Duration` of it cannot overflow.
pub(crate) const MAX_TIMEOUT_S: f64 = 86_400.0;
/// Retries after the first attempt; with backoff, 100 already spans hours.
const MAX_RETRIES: f64 = 100.0;
/// USD per million tokens or per machine hour; far above any price list, low enough that a cost
/// per 1,000 queries stays a finite number.
const MAX_PRICE: f64 = 1e6;

/// A numeric field's documented range. Every number a configuration file gives is checked against
/// one, with the field's location, because TOML accepts `inf`, `nan` and `1e308`: a timeout of
/// 1e30 seconds panics when it becomes a `Duration`, a price of `inf` makes every cost `null` in
/// results.jsonl (which a resume then cannot read), and a negative delay is nobody's intent.
pub(crate) struct NumberRule {
    field: &'static str,
    min: f64,
    max: f64,
    fix: &'static str,
}

impl NumberRule {
    pub(crate) const fn new(field: &'static str, min: f64, max: f64) -> NumberRule {
        NumberRule {
            field,
            min,
            max,
            fix: "",
        }
    }

    pub(crate) const fn fix(mut self, fix: &'static str) -> NumberRule {
        self.fix = fix;
        self
    }

    /// The problem with `value`, if it is not a finite number within the range.
    pub(crate) fn check(
        &self,
        at: impl Fn(&str) -> Location,
        value: impl Into<NumberValue>,
    ) -> Option<Problem> {
        let v = value.into().0;
        let message = if v.is_nan() {
            "is not a number (nan)".to_owned()
        } else if (self.min..=self.max).contains(&v) {
            return None;
        } else if v.is_infinite() {
            format!(
                "{v} is not a finite number: it must be from {} to {}",
                self.min, self.max
            )
        } else {
            format!(
                "{v} is out of range: it must be from {} to {}",
                self.min, self.max
            )
        };
        let mut problem = Problem::new(at(self.field), message);
        if !self.fix.is_empty() {
            problem = problem.fix(self.fix);
        }
        Some(problem)
    }
}

/// Any of the number types configuration fields have, widened to f64 for [`NumberRule::check`];
/// u32, usize and u64 values up to 2^53 convert exactly, which every range here is within.
pub(crate) struct NumberValue(f64);

impl From<f64> for NumberValue {
    fn from(v: f64) -> Self {
        NumberValue(v)
    }
}
impl From<u32> for NumberValue {
    fn from(v: u32) -> Self {
        NumberValue(f64::from(v))
    }
}
impl From<usize> for NumberValue {
    fn from(v: usize) -> Self {
        NumberValue(v as f64)
    }
}
impl From<u64> for NumberValue {
    fn from(v: u64) -> Self {
        NumberValue(v as f64)
    }
}

pub const DEFAULT_PROMPT: &str = "{% if context %}Answer the question using only the context below.\n\nContext:\n{{ context }}\n\n{% endif %}Question: {{ question }}";

/// `goldgate.toml`: which golden set, which two providers, the prompt, the scorers and the gates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// What `history` and `accept` call this evaluation: runs of one name are one series. Default:
    /// the golden set's name.
    #[serde(default)]
    pub name: Option<String>,
    pub golden: PathBuf,
    pub current: PathBuf,
    pub candidate: PathBuf,
    /// A tera template; variables: `question`, `context`, `contexts`, `id`, `tags`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// An optional system message sent before the prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Trials per item and model.
    #[serde(default = "one")]
    pub repeats: u32,
    /// Requests in flight across both models; default: the sum of the providers' `concurrency`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// The most either model's requests may fail (after retries) for the run to be judged at all:
    /// above it, the comparison measures an outage, not the models, and the run fails (exit 3)
    /// whatever the ratio gates say. 1 turns it off.
    #[serde(default = "EvalConfig::default_max_error_rate")]
    pub max_error_rate: f64,
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// When an item counts as passed for a model that ran it `repeats` times.
    #[serde(default)]
    pub item_pass: crate::stats::ItemPass,
    #[serde(default)]
    pub statistics: crate::stats::Settings,
    #[serde(default, rename = "gate")]
    pub gates: Vec<GateConfig>,
    /// How `goldgate shadow` replays logged traffic.
    #[serde(default)]
    pub shadow: ShadowConfig,
    /// How `goldgate canary` reads live-traffic logs and decides.
    #[serde(default)]
    pub canary: CanaryConfig,
}

/// What `goldgate canary` reads of goldgate.toml: `[canary]` and `[statistics]`, and nothing else,
/// so a canary-only file needs no golden set or providers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CanaryFile {
    #[serde(default)]
    pub statistics: crate::stats::Settings,
    #[serde(default)]
    pub canary: CanaryConfig,
}

/// `[canary]`: the analysis of canary / A-B traffic logs (docs/canary.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// `[[canary.gate]]`: the gates, in `[[gate]]`'s syntax plus `critical`; default
    /// [`crate::gate::default_canary_gates`].
    #[serde(default, rename = "gate")]
    pub gates: Vec<GateConfig>,
    /// Where each value is in a record.
    #[serde(default)]
    pub fields: CanaryFields,
    /// The names the log gives each arm.
    #[serde(default)]
    pub variants: CanaryVariants,
    /// The candidate's configured share of traffic, in percent, that the observed split is
    /// tested against (sample-ratio mismatch). Default: the flag file's split, if one is given.
    #[serde(default)]
    pub candidate_percent: Option<f64>,
    /// The candidate's shares, in percent, that `continue` steps along in the flag file.
    #[serde(default = "CanaryConfig::default_steps")]
    pub steps: Vec<u32>,
    /// The variant names in the flagd flag that stand for each model.
    #[serde(default)]
    pub flag: FlagVariants,
    /// Requests each arm needs before a gate other than a critical one may decide.
    #[serde(default = "CanaryConfig::default_min_requests")]
    pub min_requests: u64,
    /// The width of a time bucket in the reports' per-interval view (`30s`, `5m`, `1h`); buckets
    /// are merged two by two while there are more than 240.
    #[serde(default = "CanaryConfig::default_interval")]
    pub interval: String,
    /// Prices in USD per million tokens, per arm, for cost from token counts when the log has no
    /// `cost_usd`.
    #[serde(default)]
    pub price: Option<CanaryPrices>,
}

impl CanaryConfig {
    fn default_steps() -> Vec<u32> {
        vec![1, 5, 25, 50, 100]
    }
    fn default_min_requests() -> u64 {
        100
    }
    fn default_interval() -> String {
        "5m".to_owned()
    }

    /// The interval in seconds, or what is wrong with it.
    pub fn interval_seconds(&self) -> Option<u64> {
        let t = self.interval.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let n: u64 = t[..split].parse().ok()?;
        let unit = match t[split..].trim() {
            "" | "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        (n > 0).then_some(n * unit)
    }
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            gates: Vec::new(),
            fields: CanaryFields::default(),
            variants: CanaryVariants::default(),
            candidate_percent: None,
            steps: CanaryConfig::default_steps(),
            flag: FlagVariants::default(),
            min_requests: CanaryConfig::default_min_requests(),
            interval: CanaryConfig::default_interval(),
            price: None,
        }
    }
}

/// `[canary.fields]`: the key (or dotted path, or CSV column) of each value in a record.
/// Optional values that no record carries leave their metrics out.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryFields {
    pub variant: String,
    pub timestamp: String,
    pub latency_ms: String,
    pub ttft_ms: String,
    pub error: String,
    pub input_tokens: String,
    pub output_tokens: String,
    pub cost_usd: String,
    pub feedback: String,
    pub csat: String,
    pub correct: String,
    pub label: String,
    pub expected_label: String,
    pub user_id: String,
    pub session_id: String,
    pub tags: String,
}

impl Default for CanaryFields {
    fn default() -> Self {
        let s = |v: &str| v.to_owned();
        CanaryFields {
            variant: s("variant"),
            timestamp: s("timestamp"),
            latency_ms: s("latency_ms"),
            ttft_ms: s("ttft_ms"),
            error: s("error"),
            input_tokens: s("input_tokens"),
            output_tokens: s("output_tokens"),
            cost_usd: s("cost_usd"),
            feedback: s("feedback"),
            csat: s("csat"),
            correct: s("correct"),
            label: s("label"),
            expected_label: s("expected_label"),
            user_id: s("user_id"),
            session_id: s("session_id"),
            tags: s("tags"),
        }
    }
}

/// `[canary.variants]`: the values of the variant field that mean each arm (compared without
/// regard to case). Any other value is counted as unknown and shown, never guessed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryVariants {
    pub current: Vec<String>,
    pub candidate: Vec<String>,
}

impl Default for CanaryVariants {
    fn default() -> Self {
        let v = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect();
        CanaryVariants {
            current: v(&["current", "control", "baseline", "stable"]),
            candidate: v(&["candidate", "canary", "treatment", "experiment"]),
        }
    }
}

/// `[canary.flag]`: the variants of the flagd flag goldgate moves traffic between.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlagVariants {
    pub current: String,
    pub candidate: String,
}

impl Default for FlagVariants {
    fn default() -> Self {
        FlagVariants {
            current: "current".to_owned(),
            candidate: "candidate".to_owned(),
        }
    }
}

/// `[canary.price]`: `current = { input = 2.5, output = 10 }`, `candidate = {...}`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CanaryPrices {
    pub current: TokenPrice,
    pub candidate: TokenPrice,
}

/// USD per million input and output tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenPrice {
    pub input: f64,
    pub output: f64,
}

/// `[shadow]`: the replay of captured production traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// `[[shadow.gate]]`: the shadow run's gates, in `[[gate]]`'s syntax; default
    /// [`crate::gate::default_shadow_gates`].
    #[serde(default, rename = "gate")]
    pub gates: Vec<GateConfig>,
    /// More patterns to redact besides the built-in kinds (regexes; each match becomes
    /// `[redacted]`).
    #[serde(default)]
    pub redact: Vec<String>,
    /// Where a request's retrieved context is: faithfulness is scored against it.
    #[serde(default)]
    pub context: ContextRule,
    /// A replayed answer agrees with production's at this token-set similarity or more: the
    /// shadow run's `accuracy`.
    #[serde(default = "ShadowConfig::default_agree_at")]
    pub agree_at: f64,
    /// Production answers of at most this many words (and all JSON and tool calls) are also
    /// compared exactly (`exact_match`).
    #[serde(default = "ShadowConfig::default_exact_max_words")]
    pub exact_max_words: usize,
}

impl ShadowConfig {
    fn default_agree_at() -> f64 {
        0.6
    }

    fn default_exact_max_words() -> usize {
        12
    }
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            gates: Vec::new(),
            redact: Vec::new(),
            context: ContextRule::default(),
            agree_at: ShadowConfig::default_agree_at(),
            exact_max_words: ShadowConfig::default_exact_max_words(),
        }
    }
}

/// `[shadow.context]`: the messages that carry retrieved context, and optionally the markers
/// around it inside them (`start = "<context>"`, `end = "</context>"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContextRule {
    /// Roles whose messages hold context: by default `tool` (results of a retrieval tool).
    #[serde(default = "ContextRule::default_roles")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

impl ContextRule {
    fn default_roles() -> Vec<String> {
        vec!["tool".to_owned()]
    }
}

impl Default for ContextRule {
    fn default() -> Self {
        ContextRule {
            roles: ContextRule::default_roles(),
            start: None,
            end: None,
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    #[serde(default)]
    pub keywords: KeywordScoring,
    #[serde(default)]
    pub faithfulness: FaithfulnessConfig,
    /// Similarity to `expected` is always recorded; with a threshold it is also a check.
    #[serde(default)]
    pub similarity: Option<SimilarityConfig>,
    #[serde(default)]
    pub classification: ClassificationConfig,
    /// Checks applied to every item, besides the item's own `checks`.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Accept items with no check at all (they pass whenever answered; faithfulness and
    /// similarity are still measured). Off by default: such an item is usually a mistake.
    #[serde(default)]
    pub allow_unchecked: bool,
    /// The echo guard: an answer that repeats the prompt's instructions or the whole context
    /// fails its item, whatever else it matches, and is not scored for faithfulness. On by default.
    #[serde(default = "ScoringConfig::echo_default")]
    pub echo: bool,
    /// The regexes of `checks`, compiled when the file was read.
    #[serde(skip)]
    pub patterns: Patterns,
}

impl ScoringConfig {
    fn echo_default() -> bool {
        true
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            keywords: KeywordScoring::default(),
            faithfulness: FaithfulnessConfig::default(),
            similarity: None,
            classification: ClassificationConfig::default(),
            checks: Vec::new(),
            allow_unchecked: false,
            echo: true,
            patterns: Patterns::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordScoring {
    /// 0 = exact (case-insensitive) matching; above 0, a keyword also matches a span whose
    /// normalised similarity reaches this value (e.g. 0.8).
    #[serde(default)]
    pub fuzzy: f64,
    /// Match keywords only as whole words ("cat" does not match "category").
    #[serde(default)]
    pub whole_word: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaithfulnessConfig {
    #[serde(default)]
    pub method: FaithfulnessMethod,
    /// The judge's provider file, for `method = "judge"` (relative to the evaluation file).
    #[serde(default)]
    pub provider: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaithfulnessMethod {
    #[default]
    Lexical,
    /// An LLM judge extracts statements and verifies each against the context.
    Judge,
    /// Turn faithfulness scoring off.
    Off,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarityConfig {
    /// The similarity to `expected` an answer needs to pass (0..1).
    pub threshold: f64,
    #[serde(default)]
    pub measure: Measure,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// A regex whose first capture group (or whole match) is the predicted label.
    #[serde(default)]
    pub extract: Option<String>,
}

/// One `[[gate]]` table as written; [`crate::gate::Gate::parse`] turns it into checked rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min_ratio: Option<f64>,
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// How the gate decides; by default per metric (docs/statistics.md).
    #[serde(default)]
    pub decide: Option<crate::stats::Decide>,
    /// `[[canary.gate]]` only: a failure rolls the canary back on its own, from the first look,
    /// before the arms have `min_requests`.
    #[serde(default)]
    pub critical: bool,
}

impl EvalConfig {
    pub fn load(path: &Path) -> Result<EvalConfig, Error> {
        if !path.exists() {
            return Err(Error::input(
                Location::file(path),
                "evaluation file not found",
                "run goldgate in a directory with goldgate.toml, pass -c FILE, or create one with `goldgate init`",
            ));
        }
        let text = read_input(path, "the evaluation file")?;
        let mut cfg: EvalConfig = parse_toml(path, &text)?;
        // Paths inside the file are relative to the file, so an evaluation works from any directory.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.golden, &mut cfg.current, &mut cfg.candidate] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let mut problems = cfg.check_numbers(path);
        match cfg.check_scoring(path) {
            Ok(patterns) if problems.is_empty() => cfg.scoring.patterns = patterns,
            Ok(_) => return Err(Error::Input(problems)),
            Err(Error::Input(more)) => {
                problems.extend(more);
                return Err(Error::Input(problems));
            }
            Err(e) => return Err(e),
        }
        if let Some(p) = &mut cfg.scoring.faithfulness.provider
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
        Ok(cfg)
    }

    fn default_max_error_rate() -> f64 {
        0.05
    }

    /// Every number of the file against its documented range (docs/configuration.md).
    fn check_numbers(&self, path: &Path) -> Vec<Problem> {
        let at = |field: &str| Location::file(path).field(field);
        let sc = &self.scoring;
        [
            NumberRule::new("repeats", 1.0, MAX_REPEATS)
                .fix("one trial per item and model is repeats = 1")
                .check(at, self.repeats),
            self.concurrency.and_then(|c| {
                NumberRule::new("concurrency", 1.0, MAX_CONCURRENCY)
                    .fix("remove the key to use the sum of the providers' concurrency")
                    .check(at, c)
            }),
            NumberRule::new("max_error_rate", 0.0, 1.0)
                .fix("a share of the requests, e.g. 0.05 for 5%; 1 turns the ceiling off")
                .check(at, self.max_error_rate),
            NumberRule::new("statistics.confidence", 0.5, 0.999)
                .fix("a confidence level such as 0.95 (95%) or 0.9")
                .check(at, self.statistics.confidence),
            NumberRule::new("statistics.resamples", 100.0, 100_000.0)
                .fix("bootstrap resamples: 1000 is the default, 10000 for finer tails")
                .check(at, self.statistics.resamples),
            NumberRule::new("scoring.keywords.fuzzy", 0.0, 1.0)
                .fix("0 for exact matching, or a similarity such as 0.8")
                .check(at, sc.keywords.fuzzy),
            sc.similarity.and_then(|s| {
                NumberRule::new("scoring.similarity.threshold", 0.0, 1.0)
                    .fix("e.g. similarity = { threshold = 0.5 }")
                    .check(at, s.threshold)
            }),
            NumberRule::new("shadow.agree_at", 0.0, 1.0)
                .fix("the token-set similarity to production's answer that counts as agreeing, e.g. 0.6")
                .check(at, self.shadow.agree_at),
            NumberRule::new("shadow.exact_max_words", 0.0, 10_000.0)
                .fix("e.g. 12: answers of up to 12 words are also compared exactly")
                .check(at, self.shadow.exact_max_words),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Check `[scoring]`; its regex checks come back compiled.
    fn check_scoring(&self, path: &Path) -> Result<Patterns, Error> {
        let sc = &self.scoring;
        let at = |field: &str| Location::file(path).field(field);
        let mut problems = Vec::new();
        if sc.faithfulness.method == FaithfulnessMethod::Judge && sc.faithfulness.provider.is_none()
        {
            problems.push(
                Problem::new(
                    at("scoring.faithfulness"),
                    "method = \"judge\" needs a provider",
                )
                .fix("faithfulness = { method = \"judge\", provider = \"providers/judge.toml\" }"),
            );
        }
        if sc.faithfulness.method != FaithfulnessMethod::Judge && sc.faithfulness.provider.is_some()
        {
            problems.push(
                Problem::new(
                    at("scoring.faithfulness.provider"),
                    "a provider is only used with method = \"judge\"",
                )
                .fix("remove it, or set method = \"judge\""),
            );
        }
        if let Some(re) = &sc.classification.extract
            && let Err(e) = regex::Regex::new(re)
        {
            problems.push(
                Problem::new(
                    at("scoring.classification.extract"),
                    format!("not a valid regex: {e}"),
                )
                .fix("a Rust regex with one capture group, e.g. \"(?i)label:\\s*(\\w+)\""),
            );
        }
        let patterns = Patterns::new(&sc.checks).unwrap_or_else(|e| {
            problems.push(
                Problem::new(at("scoring.checks"), format!("not a valid regex: {e}"))
                    .fix("patterns use Rust regex syntax"),
            );
            Patterns::default()
        });
        if problems.is_empty() {
            Ok(patterns)
        } else {
            Err(Error::Input(problems))
        }
    }

    pub fn prompt(&self) -> &str {
        self.prompt.as_deref().unwrap_or(DEFAULT_PROMPT)
    }

    /// A short fingerprint of how answers are asked for and scored (prompt, system message,
    /// `[scoring]`, `item_pass`): `history` marks the night it changed, since scores on either
    /// side of it measure different things.
    pub fn scoring_fingerprint(&self) -> String {
        use sha2::Digest;
        let shape = format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            self.prompt(),
            self.system,
            self.scoring,
            self.item_pass
        );
        crate::text::hex(&sha2::Sha256::digest(shape.as_bytes())[..8])
    }
}

/// What is wrong with a URL a provider file gives for requests, if anything: it must be an
/// absolute http(s) URL with a host, as a URL parser reads it (`http://exa mple.com`, `http://`
/// and `http://[::1` start like one and are not).
pub fn http_url_problem(url: &str) -> Option<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Some(format!("`{url}` is not an http(s) URL"));
    }
    match reqwest::Url::parse(url) {
        Ok(u) if u.host().is_some() => None,
        Ok(_) => Some(format!("`{url}` names no host")),
        Err(e) => Some(format!("`{url}` is not a valid URL: {e}")),
    }
}

/// The provider adapter kinds. Each kind's own options live in a table of its name; its
/// adapter, the checks of its options and the way it is built are one row of `provider::kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat completions server.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// A local or remote Ollama server's native chat API.
    Ollama,
    /// Any JSON endpoint, described by the `[http]` table.
    Http,
    /// A local program, run once per request (`[command]`).
    Command,
    /// Built-in deterministic extractive answerers (no network), for the shipped example and tests.
    Reference,
    /// A GGUF model run in-process on the CPU (needs the `gguf` cargo feature).
    Gguf,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Http => "http",
            ProviderKind::Command => "command",
            ProviderKind::Reference => "reference",
            ProviderKind::Gguf => "gguf",
        }
    }
}

/// `providers/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub model: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The name of the environment variable holding the key; the key itself is never in a file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stream the answer (server-sent events) and record the time to first token; `kind = "openai"`.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub pricing: Pricing,
    #[serde(default)]
    pub limits: Limits,
    /// Options of `kind = "reference"`.
    #[serde(default)]
    pub reference: Option<ReferenceOptions>,
    /// Options of `kind = "http"`.
    #[serde(default)]
    pub http: Option<HttpOptions>,
    /// Options of `kind = "command"`.
    #[serde(default)]
    pub command: Option<CommandOptions>,
    /// Options of `kind = "gguf"`.
    #[serde(default)]
    pub gguf: Option<GgufOptions>,
    /// `kind = "openai"`: count tokens with the server's own tokenizer when an answer comes
    /// without usage (llama.cpp's Python server streams none).
    #[serde(default)]
    pub tokenize: Option<TokenizeOptions>,
}

/// `[tokenize]`: a server endpoint that counts tokens with the model's own tokenizer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeOptions {
    /// The full URL, e.g. `http://127.0.0.1:8000/extras/tokenize/count`.
    pub url: String,
    /// The request body's text field: `input` (llama-cpp-python), `content` (llama.cpp's
    /// `llama-server`), `prompt` (vLLM).
    #[serde(default = "TokenizeOptions::default_field")]
    pub field: String,
}

impl TokenizeOptions {
    fn default_field() -> String {
        "input".to_owned()
    }
}

/// `[http]`: any JSON endpoint. The request body is a tera template; the answer and the token
/// counts are found in the response by JSON pointers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// The full URL of the endpoint (`base_url` is not used by this kind).
    pub url: String,
    #[serde(default = "HttpOptions::default_method")]
    pub method: String,
    /// Request headers; `${VAR}` in a value is replaced by that environment variable, and such
    /// values are treated as secrets.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// A tera template of the request body. Variables: `prompt`, `system`, `question`, `context`,
    /// `contexts`, `model`, `temperature`, `max_tokens`, `seed`; `{{ prompt | json }}` writes a
    /// JSON value (quoted and escaped).
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON pointer (RFC 6901) to the answer text, e.g. `/choices/0/message/content`.
    pub answer: String,
    /// JSON pointers to the token counts; both or neither.
    #[serde(default)]
    pub input_tokens: Option<String>,
    #[serde(default)]
    pub output_tokens: Option<String>,
}

impl HttpOptions {
    fn default_method() -> String {
        "POST".to_owned()
    }
}

/// `[command]`: a local program run once per request, the request as JSON on its stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOptions {
    /// The program and its arguments; a relative program path is relative to the provider file,
    /// which is also the program's working directory.
    pub argv: Vec<String>,
    /// Extra environment variables for the program (it inherits goldgate's environment);
    /// `${VAR}` in a value is replaced by that variable, and such values are treated as secrets.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// What the program prints: the answer as plain text, or a JSON object
    /// `{"answer": "…", "input_tokens": n, "output_tokens": n}`.
    #[serde(default)]
    pub output: CommandOutput,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandOutput {
    #[default]
    Text,
    Json,
}

/// USD per million tokens, and for a model on one's own machine, USD per hour of that machine.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    /// A machine's cost per hour: a request costs `per_hour × its latency / 3600`, so cost per 1k
    /// queries follows from measured throughput. Added to any token prices.
    #[serde(default)]
    pub per_hour: f64,
}

impl Pricing {
    /// What one answered request cost.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64, latency: std::time::Duration) -> f64 {
        (input_tokens as f64 * self.input + output_tokens as f64 * self.output) / 1e6
            + self.per_hour * latency.as_secs_f64() / 3600.0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests in flight to this provider.
    #[serde(default = "Limits::default_concurrency")]
    pub concurrency: usize,
    /// Per-attempt timeout, seconds.
    #[serde(default = "Limits::default_timeout")]
    pub timeout_s: f64,
    /// Retries after the first attempt on 408, 429, 5xx, timeouts, connection errors and answers
    /// the server never finished.
    #[serde(default = "Limits::default_retries")]
    pub retries: u32,
    /// Requests per minute to this provider, enforced by the client's rate limiter.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens (input + output) per minute, estimated before a call and settled from its usage.
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
}

impl Limits {
    fn default_concurrency() -> usize {
        8
    }
    fn default_timeout() -> f64 {
        60.0
    }
    fn default_retries() -> u32 {
        4
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrency: Self::default_concurrency(),
            timeout_s: Self::default_timeout(),
            retries: Self::default_retries(),
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }
}

/// `[reference]`: how the built-in extractive answerer behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceOptions {
    /// How many best-matching context sentences the answer is made of.
    #[serde(default = "one_usize")]
    pub sentences: usize,
    /// A deterministic stand-in for a model server's service time: `base_ms + per_output_token_ms × tokens`.
    #[serde(default)]
    pub base_ms: f64,
    #[serde(default)]
    pub per_output_token_ms: f64,
}

fn one_usize() -> usize {
    1
}

/// `[gguf]`: where the weights are and how to run them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufOptions {
    /// The `.gguf` file. `~/` and `${VAR}` / `${VAR:-default}` are expanded; a relative path is
    /// relative to the provider file.
    pub path: String,
    /// The file's SHA-256, checked when the model is loaded.
    pub sha256: String,
    /// The chat template; by default the file's architecture (Gemma) or its own template (ChatML) decides.
    #[serde(default)]
    pub template: Option<TemplateKind>,
    /// Threads of one generation; by default candle's pool, one per core, shared by all models.
    #[serde(default)]
    pub threads: Option<usize>,
    /// The longest prompt + answer, in tokens (bounds memory); default the model's, at most 4096.
    #[serde(default)]
    pub context: Option<usize>,
}

/// `[gguf] template`: how a local model's chat turns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen, many fine-tunes).
    Chatml,
    /// `<start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n` (Gemma).
    Gemma,
    /// No template: the prompt as it is (after BOS), for base models.
    None,
}

impl Default for ReferenceOptions {
    fn default() -> Self {
        ReferenceOptions {
            sentences: 1,
            base_ms: 0.0,
            per_output_token_ms: 0.0,
        }
    }
}

impl ProviderConfig {
    /// Read a provider file as its schema says: a syntax error, a typo'd key or a wrong type is
    /// an error naming the file, the line and the key. Checking the values is
    /// [`ProviderConfig::check`]'s and the kind's own (`provider::load_config` runs both).
    pub fn parse(path: &Path) -> Result<ProviderConfig, Error> {
        let text = read_input(path, "the provider file")?;
        let mut cfg: ProviderConfig = parse_toml(path, &text)?;
        // A local model runs one generation at a time unless told otherwise: on a small machine
        // two at once only share the same cores.
        if cfg.kind == ProviderKind::Gguf
            && !toml::from_str::<toml::Table>(&text)
                .is_ok_and(|t| t.get("limits").and_then(|l| l.get("concurrency")).is_some())
        {
            cfg.limits.concurrency = 1;
        }
        Ok(cfg)
    }

    /// The checks every kind shares: the model name, limits, prices, `base_url` and
    /// `api_key_env`, and that no kind's own table or key is used with another kind (an error,
    /// not silently ignored). What a kind's own table must hold is checked by its adapter.
    pub fn check(&self, path: &Path) -> Vec<Problem> {
        let at = || Location::file(path);
        let mut problems = Vec::new();
        if self.model.trim().is_empty() {
            problems.push(
                Problem::new(at().field("model"), "the model name is empty")
                    .fix("name the model as the API knows it, e.g. model = \"gpt-4o\""),
            );
        }
        problems.extend(self.check_numbers(path));
        self.check_kind_owned(path, &mut problems);
        if let Some(problem) = self.base_url.as_deref().and_then(http_url_problem) {
            problems.push(
                Problem::new(at().field("base_url"), problem)
                    .fix("write the API root, e.g. base_url = \"http://127.0.0.1:8000/v1\""),
            );
        }
        if let Some(var) = &self.api_key_env
            && (var.is_empty() || var.starts_with("sk-") || var.contains(char::is_whitespace))
        {
            // Someone pasted the key itself: say so without echoing it.
            problems.push(
                Problem::new(
                    at().field("api_key_env"),
                    "this must be the NAME of an environment variable, not a key",
                )
                .fix("write api_key_env = \"OPENAI_API_KEY\" and export the key in that variable"),
            );
        }
        problems
    }

    /// Every number of the file against its documented range (docs/configuration.md).
    fn check_numbers(&self, path: &Path) -> Vec<Problem> {
        let at = |field: &str| Location::file(path).field(field);
        let limits = &self.limits;
        let price = "USD per million tokens, e.g. input = 2.50; 0 for a free model";
        [
            self.temperature.and_then(|t| {
                NumberRule::new("temperature", 0.0, 2.0)
                    .fix("0 for greedy decoding; the APIs accept at most 2 (Anthropic 1)")
                    .check(at, t)
            }),
            self.max_tokens.and_then(|n| {
                NumberRule::new("max_tokens", 1.0, 1_000_000.0)
                    .fix("the longest answer in tokens, e.g. max_tokens = 512; remove it for the server's default")
                    .check(at, n)
            }),
            NumberRule::new("pricing.input", 0.0, MAX_PRICE)
                .fix(price)
                .check(at, self.pricing.input),
            NumberRule::new("pricing.output", 0.0, MAX_PRICE)
                .fix(price)
                .check(at, self.pricing.output),
            NumberRule::new("pricing.per_hour", 0.0, MAX_PRICE)
                .fix("USD per hour of the machine that runs the model, e.g. per_hour = 0.10")
                .check(at, self.pricing.per_hour),
            NumberRule::new("limits.concurrency", 1.0, MAX_CONCURRENCY)
                .fix("requests in flight to this provider, e.g. concurrency = 8")
                .check(at, limits.concurrency),
            NumberRule::new("limits.timeout_s", 0.001, MAX_TIMEOUT_S)
                .fix("seconds one attempt may take, e.g. timeout_s = 60")
                .check(at, limits.timeout_s),
            NumberRule::new("limits.retries", 0.0, MAX_RETRIES)
                .fix("retries after the first attempt, e.g. retries = 4; 0 for none")
                .check(at, limits.retries),
            // 0 would read as "no limit" to some and "never send" to others: neither is said by 0.
            limits.requests_per_minute.and_then(|n| {
                NumberRule::new("limits.requests_per_minute", 1.0, 1e9)
                    .fix("remove the key for no limit, or give the provider's limit, e.g. 500")
                    .check(at, n)
            }),
            limits.tokens_per_minute.and_then(|n| {
                NumberRule::new("limits.tokens_per_minute", 1.0, 1e12)
                    .fix("remove the key for no limit, or give the provider's limit, e.g. 30000")
                    .check(at, n)
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// A table (or key) that belongs to one kind, in another kind's file: an error, not silently
    /// ignored. Whether the file's own kind has its table is the kind's check.
    fn check_kind_owned(&self, path: &Path, problems: &mut Vec<Problem>) {
        let at = |field: &str| Location::file(path).field(field);
        let kind = self.kind.as_str();
        // Two wordings, kept as users know them: these two name only the owner.
        for (table, present, owner) in [
            ("gguf", self.gguf.is_some(), ProviderKind::Gguf),
            (
                "reference",
                self.reference.is_some(),
                ProviderKind::Reference,
            ),
        ] {
            if present && self.kind != owner {
                problems.push(
                    Problem::new(
                        at(table),
                        format!(
                            "the [{table}] table applies only to kind = \"{}\"",
                            owner.as_str()
                        ),
                    )
                    .fix(format!(
                        "remove the table, or set kind = \"{}\"",
                        owner.as_str()
                    )),
                );
            }
        }
        for (table, present, owner) in [
            ("http", self.http.is_some(), ProviderKind::Http),
            ("command", self.command.is_some(), ProviderKind::Command),
            ("tokenize", self.tokenize.is_some(), ProviderKind::Openai),
        ] {
            if present && self.kind != owner {
                problems.push(
                    Problem::new(
                        at(table),
                        format!(
                            "the [{table}] table applies only to kind = \"{}\", not \"{kind}\"",
                            owner.as_str()
                        ),
                    )
                    .fix(format!(
                        "remove the table, or set kind = \"{}\"",
                        owner.as_str()
                    )),
                );
            }
        }
        if self.stream && self.kind != ProviderKind::Openai {
            problems.push(
                Problem::new(
                    at("stream"),
                    format!("streaming is supported by kind = \"openai\" only, not \"{kind}\""),
                )
                .fix("remove stream = true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_in_provider_names_key_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        std::fs::write(
            &p,
            "kind = \"openai\"\nmodel = \"m\"\n[limits]\nconcurency = 4\n",
        )
        .unwrap();
        let msg = ProviderConfig::parse(&p).unwrap_err().to_string();
        assert!(msg.contains("p.toml:4"), "{msg}");
        assert!(msg.contains("concurency"), "{msg}");
    }

    #[test]
    fn a_pasted_key_is_refused_without_being_echoed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        std::fs::write(
            &p,
            "kind = \"openai\"\nmodel = \"m\"\napi_key_env = \"sk-secret123\"\n",
        )
        .unwrap();
        let problems = ProviderConfig::parse(&p).unwrap().check(&p);
        let msg = Error::Input(problems).to_string();
        assert!(msg.contains("NAME of an environment variable"), "{msg}");
        assert!(!msg.contains("secret123"), "{msg}");
    }

    #[test]
    fn provider_urls_are_parsed_not_prefix_matched() {
        for ok in [
            "http://127.0.0.1:8000/v1",
            "https://api.openai.com/v1",
            "http://[::1]:11434",
            "http://llm.internal",
        ] {
            assert_eq!(http_url_problem(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("localhost:8000/v1", "is not an http(s) URL"),
            ("ftp://host/x", "is not an http(s) URL"),
            ("http://exa mple.com/v1", "is not a valid URL"),
            ("http://[::1/v1", "is not a valid URL"),
            ("http://", "is not a valid URL"),
            ("http://host:99999/v1", "is not a valid URL"),
        ] {
            let problem = http_url_problem(bad).unwrap_or_default();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }

    /// Numbers TOML accepts that no run can use: each is refused with its field, none panics.
    #[test]
    fn every_number_is_checked_against_its_range() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        for (line, field) in [
            ("[limits]\ntimeout_s = 1e30", "limits.timeout_s"),
            ("[limits]\ntimeout_s = inf", "limits.timeout_s"),
            ("[limits]\ntimeout_s = nan", "limits.timeout_s"),
            ("[limits]\ntimeout_s = -1", "limits.timeout_s"),
            ("[limits]\ntimeout_s = 0", "limits.timeout_s"),
            ("[limits]\nconcurrency = 0", "limits.concurrency"),
            ("[limits]\nconcurrency = 1000000", "limits.concurrency"),
            ("[limits]\nretries = 4000000000", "limits.retries"),
            (
                "[limits]\nrequests_per_minute = 0",
                "limits.requests_per_minute",
            ),
            (
                "[limits]\ntokens_per_minute = 0",
                "limits.tokens_per_minute",
            ),
            ("[pricing]\ninput = nan", "pricing.input"),
            ("[pricing]\noutput = inf", "pricing.output"),
            ("[pricing]\noutput = -0.5", "pricing.output"),
            ("[pricing]\nper_hour = 1e300", "pricing.per_hour"),
            ("temperature = nan", "temperature"),
            ("temperature = 7", "temperature"),
            ("max_tokens = 0", "max_tokens"),
        ] {
            let text = format!("kind = \"openai\"\nmodel = \"m\"\n{line}\n");
            std::fs::write(&p, &text).unwrap();
            let problems = ProviderConfig::parse(&p).unwrap().check(&p);
            let msg = Error::Input(problems).to_string();
            assert!(msg.contains(&format!("field `{field}`")), "{line}: {msg}");
        }
        std::fs::write(
            &p,
            "kind = \"openai\"\nmodel = \"m\"\ntemperature = 0\nmax_tokens = 512\n[limits]\ntimeout_s = 0.5\nrequests_per_minute = 60\n[pricing]\ninput = 2.5\n",
        )
        .unwrap();
        assert!(ProviderConfig::parse(&p).unwrap().check(&p).is_empty());

        let e = d.path().join("goldgate.toml");
        for (line, field) in [
            ("repeats = 0", "repeats"),
            ("repeats = 100000", "repeats"),
            ("concurrency = 0", "concurrency"),
            ("max_error_rate = 1.5", "max_error_rate"),
            ("max_error_rate = nan", "max_error_rate"),
            ("[scoring.keywords]\nfuzzy = nan", "scoring.keywords.fuzzy"),
            (
                "[scoring]\nsimilarity = { threshold = inf }",
                "scoring.similarity.threshold",
            ),
        ] {
            std::fs::write(
                &e,
                format!("golden = \"g\"\ncurrent = \"a.toml\"\ncandidate = \"b.toml\"\n{line}\n"),
            )
            .unwrap();
            let msg = EvalConfig::load(&e).unwrap_err().to_string();
            assert!(msg.contains(&format!("field `{field}`")), "{line}: {msg}");
        }
    }

    #[test]
    fn eval_paths_are_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("goldgate.toml");
        std::fs::write(
            &p,
            "golden = \"g\"\ncurrent = \"a.toml\"\ncandidate = \"b.toml\"\n",
        )
        .unwrap();
        let cfg = EvalConfig::load(&p).unwrap();
        assert_eq!(cfg.golden, d.path().join("g"));
        assert_eq!(cfg.repeats, 1);
    }
}
