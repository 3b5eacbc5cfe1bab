//! Everything the analysis needs of the records, folded one record at a time in memory that does
//! not grow with the log: latencies as histograms (three significant digits: a value is known to
//! 0.1%), and a timeline of at most [`MAX_BUCKETS`] time buckets. A user's requests are not
//! independent, so intervals treat users as the unit; to keep the memory constant however many
//! users there are, users are hashed into groups ([`MEAN_GROUPS`] for the means,
//! [`LATENCY_GROUPS`] latency histograms for the percentiles): a group of independent users is
//! as independent of the other groups as the users are, and a few hundred groups estimate a
//! spread well. The users themselves are only counted, from a sample of at most [`USER_SAMPLE`]
//! when there are more. With `--sequential`, each mean also feeds an always-valid confidence
//! sequence, in the order the records were logged.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Arm;
use super::log::Record;
use crate::config::CanaryPrices;
use crate::stats::Interval;
use crate::stats::canary::{ClusterMoments, Counted, GroupedSample};
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

/// The tags tallied on their own (the first this many the logs name); records still count
/// overall whatever their tags.
pub const MAX_TAGS: usize = 64;

/// The groups users are hashed into for the means' clustered intervals.
pub const MEAN_GROUPS: usize = 512;
/// The groups users are hashed into for the latency percentiles' bootstrap, each a histogram.
pub const LATENCY_GROUPS: usize = 128;
/// The users counted exactly; above this many, a hash-chosen sample of them (the sample halves
/// each time it fills), which the split's test on users is as valid on as on all of them.
pub const USER_SAMPLE: usize = 1 << 20;

/// One group's sums, per mean metric: value sum and count.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    sum: [f64; 5],
    n: [u64; 5],
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
    /// Requests with a user, summed per group of users.
    groups: Box<[Sums; MEAN_GROUPS]>,
    /// Latencies per group (users hashed into groups; requests without a user spread over them).
    latency_groups: Vec<Histogram<u32>>,
    /// Requests that carried a user.
    pub with_user: u64,
    /// Display counts.
    pub csat_counts: [u64; 5],
    pub thumbs: [u64; 2],
    sequences: Option<Vec<Option<MeanSequence>>>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs up, three significant digits; grown as larger values come (an hour's range costs
    // three times a ten-second one).
    let mut h = Histogram::new(3).expect("valid histogram precision");
    h.auto(true);
    h
}

fn group_histogram() -> Histogram<u32> {
    // Two significant digits: the bootstrap's grid; the estimate itself comes from the
    // three-digit histogram.
    let mut h = Histogram::new(2).expect("valid histogram precision");
    h.auto(true);
    h
}

/// A latency in ms as whole µs, from 1 µs to an hour (a longer one is an hour: the histograms
/// grow to the largest value, and a wild one should not make them huge).
fn micros(ms: f64) -> u64 {
    (ms * 1000.0).round().clamp(1.0, 3_600_000_000.0) as u64
}

/// Where a record falls among the groups.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Its user's group for the means; `None` without a user.
    mean: Option<usize>,
    latency: usize,
}

impl Group {
    /// `user`: the user's hash; `spread`: a number unique to the record, to spread requests
    /// without a user over the latency groups.
    fn of(user: Option<u64>, spread: u64) -> Group {
        match user {
            Some(u) => {
                let h = mix(u ^ 0x6772_6f75_7073_0001);
                Group {
                    mean: Some((h >> 32) as usize % MEAN_GROUPS),
                    latency: (h as u32) as usize % LATENCY_GROUPS,
                }
            }
            None => Group {
                mean: None,
                latency: (mix(spread) as u32) as usize % LATENCY_GROUPS,
            },
        }
    }
}

/// SplitMix64's finaliser: a cheap bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ArmTally {
    fn new(sequence_confidence: Option<f64>) -> ArmTally {
        ArmTally {
            requests: 0,
            latency_us: histogram(),
            ttft_us: histogram(),
            singles: [ClusterMoments::default(); 5],
            groups: Box::new([Sums::default(); MEAN_GROUPS]),
            latency_groups: (0..LATENCY_GROUPS).map(|_| group_histogram()).collect(),
            with_user: 0,
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

    fn add(&mut self, r: &Record, values: &[Option<f64>; 5], group: Group) {
        self.requests += 1;
        if let Some(l) = r.latency_ms {
            let us = micros(l);
            // Growing histograms: `record` resizes them (`saturating_record` would clamp the
            // value to the present range instead).
            let _ = self.latency_us.record(us);
            let _ = self.latency_groups[group.latency].record(us);
        }
        if let Some(t) = r.ttft_ms {
            self.ttft_us.record(micros(t)).ok();
        }
        if let Some(c) = r.csat {
            self.csat_counts[(c.round() as usize).clamp(1, 5) - 1] += 1;
        }
        if let Some(up) = r.thumbs_up {
            self.thumbs[usize::from(up)] += 1;
        }
        match group.mean {
            Some(g) => {
                self.with_user += 1;
                self.groups[g].add(values);
            }
            None => {
                for (i, v) in values.iter().enumerate() {
                    if let Some(v) = v {
                        self.singles[i].add(*v, 1.0);
                    }
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

    /// The latencies in their groups of users, for a bootstrap over users; `None` when no
    /// request of this arm carried a user (requests are then the independent units).
    pub fn latency_groups(&self) -> Option<GroupedSample> {
        if self.with_user == 0 {
            return None;
        }
        let groups: Vec<Vec<(f64, u64)>> = self
            .latency_groups
            .iter()
            .map(|h| {
                h.iter_recorded()
                    .map(|v| {
                        let us = h.median_equivalent(v.value_iterated_to());
                        (us as f64 / 1000.0, u64::from(v.count_at_value()))
                    })
                    .collect()
            })
            .collect();
        Some(GroupedSample::new(&groups))
    }

    /// Each mean's clustered moments: groups of users as clusters, requests without a user
    /// each alone.
    fn moments(&self) -> [ClusterMoments; 5] {
        let mut m = self.singles;
        for sums in self.groups.iter() {
            for ((m, &sum), &n) in m.iter_mut().zip(&sums.sum).zip(&sums.n) {
                if n > 0 {
                    m.add(sum, n as f64);
                }
            }
        }
        m
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

/// The users seen and the arms each was in: every user up to [`USER_SAMPLE`], then the users
/// whose hash falls in a shrinking share (a half, a quarter, ...), a sample chosen by the hash
/// alone, so independent of the arms.
#[derive(Debug, Clone, Default)]
struct UserSample {
    /// User hash → the arms it was seen in (bit 0 current, bit 1 candidate).
    arms: HashMap<u64, u8>,
    /// The sample keeps the users whose mixed hash has its top `level` bits zero.
    level: u32,
}

impl UserSample {
    fn kept(&self, h: u64) -> bool {
        self.level == 0 || h >> (64 - self.level) == 0
    }

    fn add(&mut self, user: u64, arm: Arm) {
        let h = mix(user ^ 0x7573_6572_7361_6d70);
        if !self.kept(h) {
            return;
        }
        *self.arms.entry(h).or_default() |= 1 << arm.index();
        while self.arms.len() > USER_SAMPLE {
            self.level += 1;
            let level = self.level;
            self.arms.retain(|&h, _| h >> (64 - level) == 0);
        }
    }
}

/// The fold of a whole log.
#[derive(Debug, Clone)]
pub struct Tally {
    pub arms: [ArmTally; 2],
    /// Per tag (indexed as [`super::log::ReadReport::tags`]).
    pub tags: Vec<[ArmTally; 2]>,
    users: UserSample,
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
            users: UserSample::default(),
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
        let seen = self.arms[0].requests + self.arms[1].requests;
        let group = Group::of(r.user, seen);
        self.arms[arm.index()].add(r, &values, group);
        for &t in &r.tags {
            let t = usize::from(t);
            if t >= MAX_TAGS {
                // Tags are per-tag tallies of their own (a few MB each): a log that carries an
                // id in `tags` must not take the memory a tag per request would.
                continue;
            }
            while self.tags.len() <= t {
                let c = self.sequence_confidence;
                self.tags.push([ArmTally::new(c), ArmTally::new(c)]);
            }
            self.tags[t][arm.index()].add(r, &values, group);
        }
        if let Some(user) = r.user {
            self.users.add(user, arm);
        }
        self.timeline.add(r, arm);
    }

    /// Each arm's clustered mean of each metric, overall and within each tag.
    pub fn moments(&self) -> Moments {
        Moments {
            overall: [self.arms[0].moments(), self.arms[1].moments()],
            tags: self
                .tags
                .iter()
                .map(|arms| [arms[0].moments(), arms[1].moments()])
                .collect(),
        }
    }

    /// Users seen per arm, overall: exact up to [`USER_SAMPLE`] users, estimated from the
    /// sample above.
    pub fn users(&self) -> [u64; 2] {
        let scale = 1u64 << self.users.level;
        self.sampled_users().map(|n| n * scale)
    }

    /// Users per arm in the sample (all of them up to [`USER_SAMPLE`]): what a test on users
    /// counts.
    pub fn sampled_users(&self) -> [u64; 2] {
        let mut n = [0; 2];
        for &arms in self.users.arms.values() {
            for (a, n) in n.iter_mut().enumerate() {
                *n += u64::from(arms >> a & 1);
            }
        }
        n
    }

    /// One in how many users the counts come from (1: every user).
    pub fn users_sampled_one_in(&self) -> u64 {
        1 << self.users.level
    }

    /// The candidate's share of requests with users as clusters (in their groups): each
    /// user's requests all land in one arm when traffic is split by user, so the share varies
    /// by who the heavy users are far more than by chance; requests without a user are each
    /// their own cluster.
    pub fn share_moments(&self) -> ClusterMoments {
        let mut m = ClusterMoments::default();
        let error = Mean::Error as usize;
        for (current, candidate) in self.arms[0].groups.iter().zip(self.arms[1].groups.iter()) {
            let (b, c) = (current.n[error], candidate.n[error]);
            m.add(c as f64, (b + c) as f64);
        }
        for (a, arm) in self.arms.iter().enumerate() {
            let value = if a == 1 { 1.0 } else { 0.0 };
            m.add_each(value, arm.requests - arm.with_user);
        }
        m
    }

    /// Users seen in both arms (in the sample): none (or nearly) when traffic is split by user,
    /// as A/B tests and sticky canaries do; many when it is split request by request.
    pub fn users_in_both(&self) -> u64 {
        self.users.arms.values().filter(|&&a| a == 3).count() as u64
    }
}

/// Clustered moments per arm and mean metric, overall and per tag.
pub struct Moments {
    pub overall: [[ClusterMoments; 5]; 2],
    pub tags: Vec<[[ClusterMoments; 5]; 2]>,
}
