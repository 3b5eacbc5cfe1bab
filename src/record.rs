//! One line of `results.jsonl`: written as each answer arrives, read back by `report`, `diff`
//! and (later) `merge` and `--resume`. Every metric is a fold over these lines, so a summary
//! rebuilt from the file equals the one the run computed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::CheckKind;
use crate::provider::CallError;
use crate::score::{Check, Faithfulness, JudgeUsage, Similarity};

/// Which of the two models a result belongs to.
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
#[serde(rename_all = "lowercase")]
pub enum Side {
    Current,
    Candidate,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Current, Side::Candidate];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Current => "current",
            Side::Candidate => "candidate",
        }
    }
}

/// One of a thing for each of the two models, indexed by [`Side`]: the one way goldgate holds
/// "the two models", from the clients to the tallies to the summary. Serialised as
/// `{"current": …, "candidate": …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides<T> {
    pub current: T,
    pub candidate: T,
}

impl<T> Sides<T> {
    /// Make each side's value from its side.
    pub fn new(mut f: impl FnMut(Side) -> T) -> Sides<T> {
        Sides {
            current: f(Side::Current),
            candidate: f(Side::Candidate),
        }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Sides<U> {
        Sides {
            current: f(self.current),
            candidate: f(self.candidate),
        }
    }

    pub fn as_ref(&self) -> Sides<&T> {
        Sides {
            current: &self.current,
            candidate: &self.candidate,
        }
    }

    /// Both sides, current first.
    pub fn iter(&self) -> impl Iterator<Item = (Side, &T)> {
        [
            (Side::Current, &self.current),
            (Side::Candidate, &self.candidate),
        ]
        .into_iter()
    }

    /// Both values, current first.
    pub fn values(&self) -> [&T; 2] {
        [&self.current, &self.candidate]
    }
}

impl<T> std::ops::Index<Side> for Sides<T> {
    type Output = T;

    fn index(&self, side: Side) -> &T {
        match side {
            Side::Current => &self.current,
            Side::Candidate => &self.candidate,
        }
    }
}

impl<T> std::ops::IndexMut<Side> for Sides<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Current => &mut self.current,
            Side::Candidate => &mut self.candidate,
        }
    }
}

/// The key of one result: one trial of one item (by its index in the run's items) on one model.
/// A run has exactly one result per key; a resumed run skips the keys it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialKey {
    pub item: usize,
    pub side: Side,
    pub trial: u32,
}

/// Which results a run has, one bit per (item, model, trial): what `--resume` skips, and how a
/// re-read counts a key answered twice once. A million-item run's keys take 250 KB here, where a
/// `HashSet<TrialKey>` took 70 MB.
#[derive(Debug, Clone, Default)]
pub struct TrialSet {
    items: usize,
    /// Trials below this have their bit; the run's repeats, at most 64, so a manifest that claims
    /// billions of repeats cannot make the set huge.
    trials: u32,
    bits: Vec<u64>,
    /// Keys past the bits (an item or trial the run does not have), kept exactly: there are as
    /// many as the results file has such lines, and a sound run has none.
    beyond: std::collections::HashSet<TrialKey>,
    len: usize,
}

impl TrialSet {
    /// Room for every trial of `items` items, `repeats` each, on both models.
    pub fn new(items: usize, repeats: u32) -> TrialSet {
        let trials = repeats.min(64);
        let bits = items.saturating_mul(2 * trials as usize);
        TrialSet {
            items,
            trials,
            bits: vec![0; bits.div_ceil(64)],
            beyond: std::collections::HashSet::new(),
            len: 0,
        }
    }

    fn bit(&self, k: &TrialKey) -> Option<usize> {
        (k.item < self.items && k.trial < self.trials).then(|| {
            let side = match k.side {
                Side::Current => 0,
                Side::Candidate => 1,
            };
            (k.item * 2 + side) * self.trials as usize + k.trial as usize
        })
    }

    /// Add a key; false if it was there already.
    pub fn insert(&mut self, k: TrialKey) -> bool {
        let added = match self.bit(&k) {
            Some(b) => {
                let (word, mask) = (&mut self.bits[b / 64], 1u64 << (b % 64));
                let added = *word & mask == 0;
                *word |= mask;
                added
            }
            None => self.beyond.insert(k),
        };
        self.len += usize::from(added);
        added
    }

    pub fn contains(&self, k: &TrialKey) -> bool {
        match self.bit(k) {
            Some(b) => self.bits[b / 64] & (1u64 << (b % 64)) != 0,
            None => self.beyond.contains(k),
        }
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCount {
    pub input: u64,
    pub output: u64,
    pub estimated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRecord {
    pub id: String,
    pub model: Side,
    pub trial: u32,
    /// The request succeeded (an answer came back).
    pub ok: bool,
    /// The answer passed every check of its item (false for a failed request).
    pub pass: bool,
    pub answer: Option<String>,
    pub latency_ms: Option<f64>,
    /// Time to first token, for streamed answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// The provider's own timing of the request, where its API reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ms: Option<f64>,
    /// Served from the response cache (`run --cache`), with the latency recorded when fetched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    pub attempts: u32,
    pub tokens: Option<TokenCount>,
    pub cost_usd: f64,
    #[serde(default)]
    pub checks: BTreeMap<CheckKind, Check>,
    #[serde(default)]
    pub faithfulness: Option<Faithfulness>,
    #[serde(default)]
    pub error: Option<CallError>,
    /// Similarity to the item's `expected` answer, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<Similarity>,
    /// What judging this answer cost (never counted as the judged model's), and any judge error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeRecord>,
    /// In a pruned run, where `answer` is gone: [`answer_hash`] of it (16 hex digits), so
    /// `history` still tells a changed answer from the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_hash: Option<String>,
    /// A shadow replay's answer next to production's (`goldgate shadow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<crate::score::ShadowScores>,
}

/// A fingerprint of an answer (FNV-1a, 64 bits, of the trimmed text): enough to tell two answers
/// apart night to night, and cheap over a year of runs. Never 0.
pub fn answer_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.trim().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JudgeRecord {
    #[serde(flatten)]
    pub usage: JudgeUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ResultRecord {
    /// The label check's (expected, predicted), for the confusion matrix.
    pub fn label(&self) -> Option<(&str, &str)> {
        match &self.checks.get(&CheckKind::Label)?.evidence {
            crate::score::Evidence::Label {
                expected,
                predicted,
            } => Some((expected, predicted)),
            _ => None,
        }
    }
}

impl ResultRecord {
    /// Whether the answer said nothing (only whitespace, or none at all); in a pruned line, told
    /// from the hash it kept.
    pub fn answer_is_empty(&self) -> bool {
        match (&self.answer, &self.answer_hash) {
            (Some(a), _) => a.trim().is_empty(),
            (None, Some(h)) => *h == format!("{:016x}", answer_hash("")),
            (None, None) => true,
        }
    }

    /// Drop every text the answer or the context put in this record — the answer, each claim
    /// and the context window it matched, where keywords were found, echoed words, a JSON
    /// parser's message — and keep what every metric folds: pass, each check's outcome, labels,
    /// scores, latency, tokens, cost, errors. What `history prune` keeps of an old run.
    pub fn compact(&mut self) {
        use crate::score::Evidence;
        if let Some(answer) = self.answer.take() {
            self.answer_hash = Some(format!("{:016x}", answer_hash(&answer)));
        }
        if let Some(f) = &mut self.faithfulness {
            f.details.clear();
        }
        for check in self.checks.values_mut() {
            match &mut check.evidence {
                Evidence::Keywords { spans, .. } => spans.clear(),
                Evidence::Echo { copied, .. } => copied.clear(),
                Evidence::Json { error, .. } => *error = None,
                _ => {}
            }
        }
    }

    /// Latency in whole microseconds, as the histograms hold it. Derived from the stored
    /// milliseconds, so a live run and a re-read of its file agree to the microsecond.
    pub fn latency_us(&self) -> Option<u64> {
        self.latency_ms.map(ms_to_us)
    }

    pub fn ttft_us(&self) -> Option<u64> {
        self.ttft_ms.map(ms_to_us)
    }
}

fn ms_to_us(ms: f64) -> u64 {
    (ms * 1000.0).round().max(1.0) as u64
}

/// What reading a results file found besides the records.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    pub lines: usize,
    /// A last line cut off by a crash: ignored, and said.
    pub torn_tail: bool,
}

/// Stream the records of a results file to `f`, tolerating a torn last line (a crash mid-write).
/// A malformed line anywhere else is an error: the file was edited or corrupted.
pub fn read_results(path: &Path, mut f: impl FnMut(ResultRecord)) -> anyhow::Result<ReadStats> {
    read_lines(path, |line| {
        serde_json::from_slice::<ResultRecord>(line).map(&mut f)
    })
}

/// The cheap part of a result line: enough to decide whether the rest is worth parsing.
#[derive(Debug, Deserialize)]
pub struct ResultHead<'a> {
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    pub model: Side,
    pub trial: u32,
    pub ok: bool,
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

/// Stream the raw lines of a results file to `f`, which parses them; same tolerance as
/// [`read_results`].
pub fn read_lines(
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<(), serde_json::Error>,
) -> anyhow::Result<ReadStats> {
    use anyhow::Context as _;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut stats = ReadStats::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        stats.lines += 1;
        let complete = buf.last() == Some(&b'\n');
        match f(&buf) {
            Ok(()) => {}
            Err(_) if !complete => stats.torn_tail = true,
            Err(e) => {
                return Err(crate::error::Error::RunFailed(format!(
                    "{}:{}: not a result line: {e}",
                    path.display(),
                    stats.lines
                ))
                .into());
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(item: usize, side: Side, trial: u32) -> TrialKey {
        TrialKey { item, side, trial }
    }

    #[test]
    fn a_trial_set_holds_each_key_once_whatever_its_range() {
        let mut set = TrialSet::new(3, 2);
        let inside = [
            key(0, Side::Current, 0),
            key(0, Side::Candidate, 0),
            key(2, Side::Candidate, 1),
            key(1, Side::Current, 1),
        ];
        // Past the run's items or trials: a line the manifest does not account for.
        let beyond = [key(3, Side::Current, 0), key(0, Side::Candidate, 2)];
        for k in inside.iter().chain(&beyond) {
            assert!(!set.contains(k), "{k:?}");
            assert!(set.insert(*k), "{k:?}");
            assert!(!set.insert(*k), "{k:?} counted twice");
            assert!(set.contains(k), "{k:?}");
        }
        assert_eq!(set.len(), 6);
        // Neighbours of what was added stay out: each bit is one key.
        for k in [
            key(0, Side::Current, 1),
            key(1, Side::Candidate, 1),
            key(2, Side::Current, 1),
            key(1, Side::Current, 0),
            key(4, Side::Current, 0),
        ] {
            assert!(!set.contains(&k), "{k:?}");
        }
    }

    #[test]
    fn a_trial_set_stays_small_whatever_the_manifest_claims() {
        // A hand-edited run.json with billions of repeats: bits for 64 trials per item at most.
        let mut set = TrialSet::new(1000, u32::MAX);
        assert!(set.bits.len() <= 1000 * 2 * 64 / 64);
        assert!(set.insert(key(999, Side::Candidate, 63)));
        assert!(set.insert(key(999, Side::Candidate, 64)));
        assert!(set.insert(key(0, Side::Current, u32::MAX)));
        assert_eq!(set.len(), 3);
        assert!(set.contains(&key(0, Side::Current, u32::MAX)));
        assert!(!set.contains(&key(0, Side::Candidate, u32::MAX)));
        assert!(TrialSet::default().is_empty());
        assert!(!TrialSet::default().contains(&key(0, Side::Current, 0)));
    }
}
