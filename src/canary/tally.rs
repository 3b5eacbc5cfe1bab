//! Everything the analysis needs of the records, folded one record at a time in memory that does
//! not grow with the log: latencies as histograms (three significant digits: a value is known to
//! 0.1%), means as sums per user (a user's requests are one cluster: they are not independent),
//! and a timeline of at most [`MAX_BUCKETS`] time buckets. With `--sequential`, each mean also
//! feeds an always-valid confidence sequence, in the order the records were logged.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Arm;
use super::log::Record;
use crate::config::CanaryPrices;
use crate::stats::Interval;
use crate::stats::canary::{ClusterMoments, Counted};
use crate::stats::sequential::MeanSequence;

/// The timeline's buckets are merged two by two above this many, so a week of traffic takes the
/// memory an hour does.
pub const MAX_BUCKETS: usize = 240;

/// The mean metrics: each request (or each request with the signal) contributes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mean {
    /// 1 for a failed request, else 0; over every request.
    Error,
    /// 1–5, over the requests rated.
    Csat,
    /// 1 for a thumbs-up, 0 down; over the requests with feedback.
    ThumbsUp,
    /// 1 for a right answer; over the requests with a downstream signal.
    Correct,
    /// USD per request; over the requests with a cost (or tokens and prices).
    Cost,
}

impl Mean {
    pub const ALL: [Mean; 5] = [
        Mean::Error,
        Mean::Csat,
        Mean::ThumbsUp,
        Mean::Correct,
        Mean::Cost,
    ];

    /// The range of a value, for the bounded confidence sequence; `None` for cost (unbounded).
    pub fn range(self) -> Option<(f64, f64)> {
        match self {
            Mean::Error | Mean::ThumbsUp | Mean::Correct => Some((0.0, 1.0)),
            Mean::Csat => Some((1.0, 5.0)),
            Mean::Cost => None,
        }
    }
}

/// One user's (or one request's) sums, per mean metric: value sum and count.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    sum: [f64; 5],
    n: [u32; 5],
}

impl Sums {
    fn add(&mut self, values: &[Option<f64>; 5]) {
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                self.sum[i] += v;
                self.n[i] += 1;
            }
        }
    }
}

/// One arm's (or one arm's within a tag) fold.
#[derive(Debug, Clone)]
pub struct ArmTally {
    pub requests: u64,
    latency_us: Histogram<u64>,
    ttft_us: Histogram<u64>,
    /// Requests without a user: each its own cluster.
    singles: [ClusterMoments; 5],
    /// Display counts.
    pub csat_counts: [u64; 5],
    pub thumbs: [u64; 2],
    sequences: Option<Vec<Option<MeanSequence>>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to an hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl ArmTally {
    fn new(sequence_confidence: Option<f64>) -> ArmTally {
        ArmTally {
            requests: 0,
            latency_us: histogram(),
            ttft_us: histogram(),
            singles: [ClusterMoments::default(); 5],
            csat_counts: [0; 5],
            thumbs: [0; 2],
            sequences: sequence_confidence.map(|c| {
                Mean::ALL
                    .iter()
                    .map(|m| m.range().map(|_| MeanSequence::new(c)))
                    .collect()
            }),
        }
    }

    fn add(&mut self, r: &Record, values: &[Option<f64>; 5], clustered: bool) {
        self.requests += 1;
        if let Some(l) = r.latency_ms {
            self.latency_us
                .saturating_record((l * 1000.0).round().max(1.0) as u64);
        }
        if let Some(t) = r.ttft_ms {
            self.ttft_us
                .saturating_record((t * 1000.0).round().max(1.0) as u64);
        }
        if let Some(c) = r.csat {
            self.csat_counts[(c.round() as usize).clamp(1, 5) - 1] += 1;
        }
        if let Some(up) = r.thumbs_up {
            self.thumbs[usize::from(up)] += 1;
        }
        if !clustered {
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    self.singles[i].add(*v, 1.0);
                }
            }
        }
        if let Some(seqs) = &mut self.sequences {
            for (i, m) in Mean::ALL.iter().enumerate() {
                if let (Some(seq), Some(v), Some((lo, hi))) = (&mut seqs[i], values[i], m.range()) {
                    seq.push((v - lo) / (hi - lo));
                }
            }
        }
    }

    /// The latencies (ms) as counted values.
    pub fn latency(&self) -> Counted {
        counted(&self.latency_us)
    }

    pub fn ttft(&self) -> Counted {
        counted(&self.ttft_us)
    }

    /// The always-valid interval of a mean, in its own unit (`--sequential`).
    pub fn sequence(&self, m: Mean) -> Option<(Interval, usize)> {
        let seq = self.sequences.as_ref()?[m as usize].as_ref()?;
        let (lo, hi) = m.range()?;
        Some((seq.interval().map(|x| lo + x * (hi - lo)), seq.len()))
    }
}

fn counted(h: &Histogram<u64>) -> Counted {
    let mut c = Counted::default();
    for v in h.iter_recorded() {
        let us = h.median_equivalent(v.value_iterated_to());
        c.push(us as f64 / 1000.0, v.count_at_value());
    }
    c
}

/// One time bucket of one arm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketArm {
    pub requests: u64,
    pub errors: u64,
    pub csat_sum: f64,
    pub csat_n: u64,
    pub thumbs_up: u64,
    pub thumbs_n: u64,
    #[serde(skip)]
    latency_us: Option<Histogram<u64>>,
}

impl BucketArm {
    pub fn latency_quantile(&self, p: f64) -> Option<f64> {
        let h = self.latency_us.as_ref()?;
        (!h.is_empty()).then(|| h.value_at_quantile(p) as f64 / 1000.0)
    }

    fn merge(&mut self, o: &BucketArm) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.csat_sum += o.csat_sum;
        self.csat_n += o.csat_n;
        self.thumbs_up += o.thumbs_up;
        self.thumbs_n += o.thumbs_n;
        if let Some(h) = &o.latency_us {
            let mine = self.latency_us.get_or_insert_with(bucket_histogram);
            let _ = mine.add(h);
        }
    }
}

fn bucket_histogram() -> Histogram<u64> {
    // Two significant digits: a trend line, not a gate.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

/// The records per time bucket, per arm. Buckets are `width_ms` wide from the epoch; when there
/// are more than [`MAX_BUCKETS`], the width doubles and neighbours merge.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub width_ms: i64,
    pub buckets: std::collections::BTreeMap<i64, [BucketArm; 2]>,
}

impl Timeline {
    fn new(width_ms: i64) -> Timeline {
        Timeline {
            width_ms: width_ms.max(1),
            buckets: Default::default(),
        }
    }

    fn add(&mut self, r: &Record, arm: Arm) {
        let key = r.at_ms.div_euclid(self.width_ms);
        let b = &mut self.buckets.entry(key).or_default()[arm.index()];
        b.requests += 1;
        b.errors += u64::from(r.error == Some(true));
        if let Some(c) = r.csat {
            b.csat_sum += c;
            b.csat_n += 1;
        }
        if let Some(up) = r.thumbs_up {
            b.thumbs_up += u64::from(up);
            b.thumbs_n += 1;
        }
        if let Some(l) = r.latency_ms {
            b.latency_us
                .get_or_insert_with(bucket_histogram)
                .saturating_record((l * 1000.0).round().max(1.0) as u64);
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.coarsen();
        }
    }

    fn coarsen(&mut self) {
        self.width_ms *= 2;
        let old = std::mem::take(&mut self.buckets);
        for (k, arms) in old {
            let merged = self.buckets.entry(k.div_euclid(2)).or_default();
            for (m, a) in merged.iter_mut().zip(&arms) {
                m.merge(a);
            }
        }
    }
}

/// The fold of a whole log.
#[derive(Debug, Clone)]
pub struct Tally {
    pub arms: [ArmTally; 2],
    /// Per tag (indexed as [`super::log::ReadReport::tags`]).
    pub tags: Vec<[ArmTally; 2]>,
    /// Per (arm, tag + 1 or 0 for all, user): that user's sums.
    users: HashMap<(u8, u16, u64), Sums>,
    pub timeline: Timeline,
    prices: Option<CanaryPrices>,
    sequence_confidence: Option<f64>,
}

impl Tally {
    /// `sequence_confidence`: with `--sequential`, the confidence of each arm's sequences.
    pub fn new(
        interval_ms: i64,
        prices: Option<CanaryPrices>,
        sequence_confidence: Option<f64>,
    ) -> Tally {
        Tally {
            arms: [
                ArmTally::new(sequence_confidence),
                ArmTally::new(sequence_confidence),
            ],
            tags: Vec::new(),
            users: HashMap::new(),
            timeline: Timeline::new(interval_ms),
            prices,
            sequence_confidence,
        }
    }

    /// The record's value for each mean metric.
    fn values(&self, r: &Record, arm: Arm) -> [Option<f64>; 5] {
        let cost = r.cost_usd.or_else(|| {
            let p = self.prices?;
            let price = if arm == Arm::Current {
                p.current
            } else {
                p.candidate
            };
            let (i, o) = (r.input_tokens?, r.output_tokens.unwrap_or(0.0));
            Some((i * price.input + o * price.output) / 1e6)
        });
        let answered = r.error != Some(true);
        [
            Some(f64::from(u8::from(r.error == Some(true)))),
            r.csat.filter(|_| answered),
            r.thumbs_up.map(|u| f64::from(u8::from(u))),
            r.correct.map(|c| f64::from(u8::from(c))),
            cost,
        ]
    }

    pub fn add(&mut self, r: &Record) {
        let Some(arm) = r.arm else { return };
        let values = self.values(r, arm);
        let clustered = r.user.is_some();
        self.arms[arm.index()].add(r, &values, clustered);
        for &t in &r.tags {
            let t = usize::from(t);
            while self.tags.len() <= t {
                let c = self.sequence_confidence;
                self.tags.push([ArmTally::new(c), ArmTally::new(c)]);
            }
            self.tags[t][arm.index()].add(r, &values, clustered);
        }
        if let Some(user) = r.user {
            let a = arm.index() as u8;
            self.users.entry((a, 0, user)).or_default().add(&values);
            for &t in &r.tags {
                self.users.entry((a, t + 1, user)).or_default().add(&values);
            }
        }
        self.timeline.add(r, arm);
    }

    /// Each arm's clustered mean of `m`, overall (`tag` None) or within a tag: users' sums as
    /// clusters, requests without a user each alone.
    pub fn moments(&self) -> Moments {
        let mut overall = [[ClusterMoments::default(); 5]; 2];
        let mut tags = vec![[[ClusterMoments::default(); 5]; 2]; self.tags.len()];
        for (a, arm) in self.arms.iter().enumerate() {
            overall[a] = arm.singles;
        }
        for (t, arms) in self.tags.iter().enumerate() {
            for (a, arm) in arms.iter().enumerate() {
                tags[t][a] = arm.singles;
            }
        }
        for (&(a, t, _), sums) in &self.users {
            let target = if t == 0 {
                &mut overall[usize::from(a)]
            } else {
                &mut tags[usize::from(t - 1)][usize::from(a)]
            };
            for ((m, &sum), &n) in target.iter_mut().zip(&sums.sum).zip(&sums.n) {
                if n > 0 {
                    m.add(sum, f64::from(n));
                }
            }
        }
        Moments { overall, tags }
    }

    /// Users seen (per arm, overall).
    pub fn users(&self) -> [u64; 2] {
        let mut n = [0; 2];
        for &(a, t, _) in self.users.keys() {
            if t == 0 {
                n[usize::from(a)] += 1;
            }
        }
        n
    }

    /// The candidate's share of requests with users as clusters: each user's requests all land
    /// in one arm when traffic is split by user, so the share varies by who the heavy users are
    /// far more than by chance; requests without a user are each their own cluster.
    pub fn share_moments(&self) -> ClusterMoments {
        let mut m = ClusterMoments::default();
        let mut with_user = [0u64; 2];
        for (&(a, t, _), sums) in &self.users {
            if t == 0 {
                let n = sums.n[Mean::Error as usize];
                with_user[usize::from(a)] += u64::from(n);
                let cand = if a == 1 { f64::from(n) } else { 0.0 };
                m.add(cand, f64::from(n));
            }
        }
        for (a, (arm, users)) in self.arms.iter().zip(with_user).enumerate() {
            let value = if a == 1 { 1.0 } else { 0.0 };
            for _ in users..arm.requests {
                m.add(value, 1.0);
            }
        }
        m
    }

    /// Users seen in both arms: none (or nearly) when traffic is split by user, as A/B tests
    /// and sticky canaries do; many when it is split request by request.
    pub fn users_in_both(&self) -> u64 {
        self.users
            .keys()
            .filter(|&&(a, t, u)| a == 0 && t == 0 && self.users.contains_key(&(1, 0, u)))
            .count() as u64
    }
}

/// Clustered moments per arm and mean metric, overall and per tag.
pub struct Moments {
    pub overall: [[ClusterMoments; 5]; 2],
    pub tags: Vec<[[ClusterMoments; 5]; 2]>,
}
