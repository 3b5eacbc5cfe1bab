//! The statistics behind a verdict: confidence intervals, paired comparisons, the seeded
//! bootstrap, power. Pure functions of numbers; what the numbers are (items, models, metrics) is
//! the callers' business. Methods and their sources are in docs/statistics.md; every interval is
//! checked by simulation against a known truth in `simulation.rs`.

pub mod canary;
pub mod changepoint;
pub mod dist;
pub mod sequential;
#[cfg(test)]
mod simulation;

use serde::{Deserialize, Serialize};

/// A two-sided confidence interval. A side with no finite bound (at 95%, p99 of fewer than 368
/// latencies has no distribution-free upper bound) is infinite here and `null` in JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub const UNBOUNDED: Interval = Interval {
        low: f64::NEG_INFINITY,
        high: f64::INFINITY,
    };

    pub fn new(low: f64, high: f64) -> Interval {
        Interval { low, high }
    }

    pub fn contains(&self, v: f64) -> bool {
        self.low <= v && v <= self.high
    }

    /// The interval cut to the values a metric can take (a mean of 1–5 scores is never 5.2).
    pub fn clamp(self, lo: f64, hi: f64) -> Interval {
        Interval {
            low: self.low.clamp(lo, hi),
            high: self.high.clamp(lo, hi),
        }
    }

    /// The smallest interval holding both.
    pub fn union(self, other: Interval) -> Interval {
        Interval {
            low: self.low.min(other.low),
            high: self.high.max(other.high),
        }
    }

    pub fn map(self, f: impl Fn(f64) -> f64) -> Interval {
        let (a, b) = (f(self.low), f(self.high));
        Interval {
            low: a.min(b),
            high: a.max(b),
        }
    }
}

/// `[low, high]`, each `null` when unbounded (or not a number).
impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let finite = |v: f64| v.is_finite().then_some(v);
        [finite(self.low), finite(self.high)].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        let [low, high] = <[Option<f64>; 2]>::deserialize(d)?;
        Ok(Interval {
            low: low.unwrap_or(f64::NEG_INFINITY),
            high: high.unwrap_or(f64::INFINITY),
        })
    }
}

/// The two-sided critical value of the standard normal: 1.96 at 0.95.
pub fn z(confidence: f64) -> f64 {
    dist::normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

/// The two-sided critical value of Student's t with `df` degrees of freedom.
pub fn t(confidence: f64, df: f64) -> f64 {
    dist::student_t_quantile(1.0 - (1.0 - confidence) / 2.0, df)
}

/// Wilson's score interval for a proportion `p` observed over `n` (Wilson 1927): right at 0% and
/// 100% and at small n, where the textbook p ± z·SE collapses to a point. `n` may be an
/// effective size below the count of observations (trials of one item, items of one group are
/// not independent; see [`effective_n`]).
pub fn wilson(p: f64, n: f64, confidence: f64) -> Interval {
    if n.is_nan() || n <= 0.0 || !p.is_finite() {
        return Interval::new(0.0, 1.0);
    }
    let p = p.clamp(0.0, 1.0);
    let z = z(confidence);
    let z2n = z * z / n;
    let centre = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt() / (1.0 + z2n);
    Interval::new((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A mean over observations grouped in clusters, with its clustered standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanEstimate {
    pub mean: f64,
    /// Clustered standard error; NaN with fewer than two clusters.
    pub se: f64,
    /// Observations (item-trials) and clusters (independent units: items, or groups of items).
    pub n: f64,
    pub clusters: usize,
}

/// The mean of observations given per cluster as (sum of values, number of values), and its
/// standard error clustered on those units: `sqrt(C/(C-1) · Σ_c (s_c − mean·n_c)²) / Σ n_c`, the
/// ratio-estimator form of Miller (2024) Appendix A with Inspect AI's finite-cluster correction.
/// With one observation per cluster it is the ordinary `sd / sqrt(n)`.
pub fn clustered_mean(sums: &[f64], counts: &[f64]) -> Option<MeanEstimate> {
    let n: f64 = counts.iter().sum();
    if n.is_nan() || n <= 0.0 {
        return None;
    }
    let mean = sums.iter().sum::<f64>() / n;
    let clusters = counts.iter().filter(|&&c| c > 0.0).count();
    let se = if clusters >= 2 {
        let c = clusters as f64;
        let ss: f64 = sums
            .iter()
            .zip(counts)
            .map(|(s, k)| (s - mean * k).powi(2))
            .sum();
        (c / (c - 1.0) * ss).sqrt() / n
    } else {
        f64::NAN
    };
    Some(MeanEstimate {
        mean,
        se,
        n,
        clusters,
    })
}

/// The sample size at which independent observations would give this estimate's standard error
/// for a proportion (its design effect undone), for Wilson's interval. Never above the count of
/// observations (a negative intra-cluster correlation is not credited), and the count of clusters
/// where the data show no spread at all (all passed: every cluster is then one unit of evidence).
pub fn effective_n(e: &MeanEstimate) -> f64 {
    let var = e.mean * (1.0 - e.mean);
    if e.se > 0.0 && var > 0.0 {
        (var / (e.se * e.se)).clamp(e.clusters as f64, e.n)
    } else {
        e.clusters as f64
    }
}

/// The interval of a proportion given per cluster: Wilson's at the effective size.
pub fn proportion_interval(e: &MeanEstimate, confidence: f64) -> Interval {
    wilson(e.mean, effective_n(e), confidence)
}

/// The interval of a mean: `mean ± t(C−1) · SE`; unbounded with fewer than two clusters.
pub fn t_interval(e: &MeanEstimate, confidence: f64) -> Interval {
    if !(e.se.is_finite()) || e.clusters < 2 {
        return Interval::UNBOUNDED;
    }
    let half = t(confidence, (e.clusters - 1) as f64) * e.se;
    Interval::new(e.mean - half, e.mean + half)
}

/// Below this many clusters the CLT interval of a mean is not trusted alone: the interval is
/// widened to hold the bootstrap's too (Bowyer et al. 2025: CLT intervals are too narrow on
/// small sets, most of all for skewed scores).
pub const SMALL_SAMPLE: usize = 30;

/// The seeded cluster bootstrap: clusters drawn with replacement, the statistic computed from
/// how many times each was drawn. Resample `k` draws from its own generator, seeded from
/// (`seed`, `k`), so the result does not depend on the order resamples are computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub seed: u64,
    pub resamples: u32,
}

impl Bootstrap {
    /// The statistic over `resamples` resamples of `clusters` clusters; resamples where it is
    /// undefined (`None`) are left out.
    pub fn run(&self, clusters: usize, stat: impl Fn(&[u32]) -> Option<f64> + Sync) -> Vec<f64> {
        if clusters == 0 {
            return Vec::new();
        }
        let resample = |k: u32, weights: &mut [u32]| {
            weights.fill(0);
            let mut rng = fastrand::Rng::with_seed(splitmix(self.seed ^ splitmix(u64::from(k))));
            for _ in 0..clusters {
                weights[rng.usize(..clusters)] += 1;
            }
            stat(weights)
        };
        // Large bootstraps (a 100,000-item latency ratio) are split over the cores. Each resample
        // draws from its own seed and lands in its own slot, so the result is the same bit for
        // bit on any machine. Every buffer is allocated here, not in the threads (each thread's
        // first allocation would cost it an allocator arena).
        let work = clusters as u64 * u64::from(self.resamples);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let threads = if work < 2_000_000 { 1 } else { threads };
        let mut results: Vec<Option<f64>> = vec![None; self.resamples as usize];
        let mut buffers = vec![vec![0u32; clusters]; threads];
        let chunk = (self.resamples as usize).div_ceil(threads).max(1);
        if threads == 1 {
            for (k, slot) in results.iter_mut().enumerate() {
                *slot = resample(k as u32, &mut buffers[0]);
            }
        } else {
            std::thread::scope(|scope| {
                for (t, (slots, weights)) in results
                    .chunks_mut(chunk)
                    .zip(buffers.iter_mut())
                    .enumerate()
                {
                    let resample = &resample;
                    scope.spawn(move || {
                        for (j, slot) in slots.iter_mut().enumerate() {
                            *slot = resample((t * chunk + j) as u32, weights);
                        }
                    });
                }
            });
        }
        results.into_iter().flatten().collect()
    }
}

/// SplitMix64's finaliser: nearby seeds (0, 1, 2 …) become unrelated generator states.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The percentile interval of bootstrap replicates; unbounded when there are too few of them.
pub fn percentile_interval(replicates: &mut Vec<f64>, confidence: f64) -> Interval {
    replicates.retain_mut(|v| !v.is_nan());
    let n = replicates.len();
    if n < 20 {
        return Interval::UNBOUNDED;
    }
    replicates.sort_unstable_by(f64::total_cmp);
    let a = (1.0 - confidence) / 2.0;
    // The order statistics at a·(n+1) and (1−a)·(n+1), the usual percentile-method ranks.
    let rank = |q: f64| ((q * (n + 1) as f64).floor() as usize).clamp(1, n) - 1;
    Interval::new(replicates[rank(a)], replicates[rank(1.0 - a).max(rank(a))])
}

/// The share of replicates on the null side of `null`, as a one-sided p-value of "the
/// statistic is above `null`" (the percentile interval inverted): (count + 1) / (B + 1).
pub fn bootstrap_p_above(replicates: &[f64], null: f64) -> f64 {
    let b = replicates.iter().filter(|v| !v.is_nan()).count();
    let at_or_below = replicates.iter().filter(|&&v| v <= null).count();
    (at_or_below as f64 + 1.0) / (b as f64 + 1.0)
}

/// A mean's interval over clusters given as (sum, count), for values within `range`: the t
/// interval; below [`SMALL_SAMPLE`] clusters the union with a seeded percentile bootstrap (so
/// skew at small n widens it rather than being ignored) and, for a bounded range, with Wilson's
/// interval of the mean scaled to 0–1 at one observation per cluster (a variable in [0, 1] with
/// mean μ has variance at most μ(1 − μ), so the score interval is the conservative one; it also
/// keeps a sample with no spread — every score 5 — from claiming a zero-width interval).
pub fn mean_interval(
    sums: &[f64],
    counts: &[f64],
    range: (f64, f64),
    confidence: f64,
    boot: &Bootstrap,
) -> Option<(MeanEstimate, Interval)> {
    let e = clustered_mean(sums, counts)?;
    let mut interval = t_interval(&e, confidence);
    let (lo, hi) = range;
    let bounded = lo.is_finite() && hi.is_finite() && hi > lo;
    let no_spread = e.se.is_nan() || e.se <= 0.0;
    if bounded && (e.clusters < SMALL_SAMPLE || no_spread) {
        let scaled = wilson((e.mean - lo) / (hi - lo), e.clusters as f64, confidence);
        let wilson = scaled.map(|v| lo + v * (hi - lo));
        interval = if no_spread {
            wilson
        } else {
            interval.union(wilson)
        };
    }
    if e.clusters < SMALL_SAMPLE && e.clusters >= 2 {
        let mut reps = boot.run(sums.len(), |w| weighted_mean(sums, counts, w));
        interval = interval.union(percentile_interval(&mut reps, confidence));
    }
    Some((e, interval))
}

/// A paired comparison over units (items, or their clusters): the mean of `d = c − r·b` with its
/// interval and a one-sided p-value for "the candidate is worse" in the gate's direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// mean(c) − r·mean(b).
    pub estimate: f64,
    pub interval: Interval,
    pub se: f64,
    /// Correlation of the two models' unit values (what pairing gains: Miller's 0.3–0.7).
    pub correlation: f64,
    pub units: usize,
    pub clusters: usize,
}

/// Per-unit values of both models, and the cluster of each unit (its own, or its group).
#[derive(Debug, Clone, Default)]
pub struct PairedUnits {
    pub current: Vec<f64>,
    pub candidate: Vec<f64>,
    pub cluster: Vec<u32>,
}

impl PairedUnits {
    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    pub fn push(&mut self, current: f64, candidate: f64, cluster: u32) {
        self.current.push(current);
        self.candidate.push(candidate);
        self.cluster.push(cluster);
    }

    /// Cluster numbers made dense (0..C) in order of first appearance, so per-cluster sums fit
    /// a vector. Cluster ids are small (an item's rank or its group's), so a table indexed by id
    /// does it without hashing.
    fn dense_clusters(&self) -> (Vec<u32>, usize) {
        let top = self
            .cluster
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut index = vec![u32::MAX; top];
        let mut next = 0;
        let dense: Vec<u32> = self
            .cluster
            .iter()
            .map(|&c| {
                let slot = &mut index[c as usize];
                if *slot == u32::MAX {
                    *slot = next;
                    next += 1;
                }
                *slot
            })
            .collect();
        (dense, next as usize)
    }

    /// The paired estimate of mean(c) − r·mean(b). For proportions (`proportion`), the interval
    /// is MOVER's (Zou & Donner 2008; Newcombe 1998's method 10 when r = 1): Wilson intervals of
    /// the two means, combined with their correlation, which stays right at 0% and 100% where
    /// the plain SE collapses; widened to hold a "plus four" interval of the differences where
    /// few items disagree (below). Otherwise the clustered t interval of the unit differences, below
    /// [`SMALL_SAMPLE`] clusters widened to hold a seeded cluster bootstrap.
    pub fn linear(
        &self,
        r: f64,
        scale: Scale,
        confidence: f64,
        boot: &Bootstrap,
    ) -> Option<Paired> {
        if self.is_empty() {
            return None;
        }
        let (dense, clusters) = self.dense_clusters();
        // Per cluster: the units counted once, and the sums of d, b and c over them.
        let mut counts = vec![0.0; clusters];
        for &k in &dense {
            counts[k as usize] += 1.0;
        }
        let sums = |f: &dyn Fn(usize) -> f64| {
            let mut sums = vec![0.0; clusters];
            for (i, &k) in dense.iter().enumerate() {
                sums[k as usize] += f(i);
            }
            sums
        };
        let d = sums(&|i| self.candidate[i] - r * self.current[i]);
        let est = clustered_mean(&d, &counts)?;
        let b = sums(&|i| self.current[i]);
        let c = sums(&|i| self.candidate[i]);
        drop(dense);
        let eb = clustered_mean(&b, &counts)?;
        let ec = clustered_mean(&c, &counts)?;
        let correlation = cluster_correlation(&b, &c, &counts, eb.mean, ec.mean);
        let interval = if scale == Scale::Proportion {
            let (ib, ic) = (
                proportion_interval(&eb, confidence),
                proportion_interval(&ec, confidence),
            );
            // MOVER leans on the estimated correlation, and with few discordant items (two
            // models that agree almost everywhere) that estimate nears 1 and the interval
            // collapses: a candidate exactly at the margin then passed 15% of the time on 48
            // items. So the interval also holds the clustered t interval of the differences
            // with "plus four" pseudo-items, two that only the current model passed and two that
            // only the candidate passed, which keeps a small or one-sided disagreement from
            // looking certain.
            mover(ec.mean, ic, eb.mean, ib, r, correlation)
                .union(plus_four(&d, &counts, r, 0.0, 1.0, confidence))
        } else {
            let mut interval = t_interval(&est, confidence);
            if est.clusters < SMALL_SAMPLE && est.clusters >= 2 {
                let mut reps = boot.run(d.len(), |w| weighted_mean(&d, &counts, w));
                interval = interval.union(percentile_interval(&mut reps, confidence));
            }
            // A bounded score gets the same guard as a proportion, at its extremes: where the
            // models score most items alike (a deterministic scorer, mostly the same answers)
            // the differences' spread understates what a few more disagreements would do. It
            // costs power on small sets (docs/statistics.md has the figures).
            if let Scale::Bounded(lo, hi) = scale {
                interval = interval.union(plus_four(&d, &counts, r, lo, hi, confidence));
            }
            interval
        };
        // Never wider than what c − r·b can be: a handful of items on a bounded score would
        // otherwise give an interval far outside the scale.
        let interval = match scale {
            Scale::Proportion => interval.clamp(-r, 1.0),
            Scale::Bounded(lo, hi) => interval.clamp(lo - r * hi, hi - r * lo),
            Scale::Unbounded => interval,
        };
        Some(Paired {
            estimate: est.mean,
            interval,
            se: est.se,
            correlation,
            units: self.len(),
            clusters: est.clusters,
        })
    }
}

/// The clustered t interval of `c − r·b`, given per cluster as (sums, counts), with "plus four"
/// pseudo-items added as clusters of their own: two on which the current model scored `hi` and
/// the candidate `lo`, two the other way round (after Agresti & Min 2005's cell correction for
/// paired proportions).
fn plus_four(d: &[f64], counts: &[f64], r: f64, lo: f64, hi: f64, confidence: f64) -> Interval {
    // `clustered_mean` over the clusters and the four pseudo-clusters, without copying the
    // clusters (at 100,000 items the copies were the peak of a summary's memory).
    let pseudo = [lo - r * hi, hi - r * lo, lo - r * hi, hi - r * lo];
    let n = counts.iter().sum::<f64>() + 4.0;
    let mean = (d.iter().sum::<f64>() + pseudo.iter().sum::<f64>()) / n;
    let clusters = counts.iter().filter(|&&c| c > 0.0).count() + 4;
    let ss: f64 = d
        .iter()
        .zip(counts)
        .map(|(s, k)| (s - mean * k).powi(2))
        .chain(pseudo.iter().map(|p| (p - mean).powi(2)))
        .sum();
    let c = clusters as f64;
    let e = MeanEstimate {
        mean,
        se: (c / (c - 1.0) * ss).sqrt() / n,
        n,
        clusters,
    };
    t_interval(&e, confidence)
}

/// What values a paired comparison's units take: shares of trials (Wilson and MOVER apply),
/// a bounded score, or any number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Proportion,
    Bounded(f64, f64),
    Unbounded,
}

fn weighted_mean(sums: &[f64], counts: &[f64], w: &[u32]) -> Option<f64> {
    let (s, n) = sums
        .iter()
        .zip(counts)
        .zip(w)
        .fold((0.0, 0.0), |(s, n), ((x, k), &w)| {
            (s + x * f64::from(w), n + k * f64::from(w))
        });
    (n > 0.0).then(|| s / n)
}

/// The correlation of two means' cluster residuals: what their clustered covariance implies.
/// 0 where either side has no spread (Newcombe sets φ = 0 when a margin is empty).
fn cluster_correlation(b: &[f64], c: &[f64], counts: &[f64], mb: f64, mc: f64) -> f64 {
    let (mut sbb, mut scc, mut sbc) = (0.0, 0.0, 0.0);
    for k in 0..b.len() {
        let rb = b[k] - mb * counts[k];
        let rc = c[k] - mc * counts[k];
        sbb += rb * rb;
        scc += rc * rc;
        sbc += rb * rc;
    }
    if sbb > 0.0 && scc > 0.0 {
        (sbc / (sbb * scc).sqrt()).clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// MOVER's interval for `c − r·b` from the intervals of `c` and `b` and their correlation
/// (Zou & Donner 2008, "Construction of confidence limits about effect measures").
pub fn mover(c: f64, ic: Interval, b: f64, ib: Interval, r: f64, rho: f64) -> Interval {
    let theta = c - r * b;
    let (lc, uc) = (c - ic.low, ic.high - c);
    let (lb, ub) = (b - ib.low, ib.high - b);
    let low = theta
        - (lc * lc + r * r * ub * ub - 2.0 * rho * r * lc * ub)
            .max(0.0)
            .sqrt();
    let high = theta
        + (uc * uc + r * r * lb * lb - 2.0 * rho * r * uc * lb)
            .max(0.0)
            .sqrt();
    Interval::new(low, high)
}

/// The one-sided p-value that a normally distributed estimate with this SE is at or beyond
/// `estimate` when the truth is `null`, in the direction `worse_if_below`.
pub fn one_sided_p(estimate: f64, se: f64, null: f64, worse_if_below: bool, df: f64) -> f64 {
    if se.is_nan() || se <= 0.0 {
        let worse = if worse_if_below {
            estimate < null
        } else {
            estimate > null
        };
        return if worse { 0.0 } else { 1.0 };
    }
    let t = (estimate - null) / se;
    let t = if worse_if_below { t } else { -t };
    dist::student_t_cdf(t, df.max(1.0))
}

/// The smallest true distance from the null a two-sided test at `confidence` detects with 80%
/// power, given the standard error: `(z_{1−α/2} + z_{0.8}) · SE` (Miller 2024, Eq. 9–10).
pub fn minimum_detectable(se: f64, confidence: f64) -> f64 {
    (z(confidence) + dist::normal_quantile(0.8)) * se
}

/// How many units would likely decide a comparison now at `units` units with this SE, if the
/// observed distance from the null is the true one: SE shrinks as 1/√n.
pub fn units_to_decide(units: usize, se: f64, distance: f64, confidence: f64) -> Option<u64> {
    if se.is_nan() || se <= 0.0 || distance == 0.0 || !distance.is_finite() {
        return None;
    }
    let k = minimum_detectable(se, confidence) / distance.abs();
    let n = (units as f64 * k * k).ceil();
    (n.is_finite() && n < 1e12).then_some(n as u64)
}

/// `[statistics]` of goldgate.toml, recorded in the run so `report`, `diff` and `merge` compute
/// the same intervals bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The confidence level of every interval (two-sided).
    #[serde(default = "Settings::default_confidence")]
    pub confidence: f64,
    /// The bootstrap's seed: the same results give the same intervals.
    #[serde(default = "Settings::default_seed")]
    pub seed: u64,
    /// Bootstrap resamples (latency ratios, macro-F1, means of fewer than 30 items).
    #[serde(default = "Settings::default_resamples")]
    pub resamples: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            confidence: Settings::default_confidence(),
            seed: Settings::default_seed(),
            resamples: Settings::default_resamples(),
        }
    }
}

impl Settings {
    fn default_confidence() -> f64 {
        0.95
    }
    fn default_seed() -> u64 {
        1
    }
    fn default_resamples() -> u32 {
        1000
    }

    pub fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            seed: self.seed,
            resamples: self.resamples,
        }
    }

    /// α/2: the one-sided error rate each side of a two-sided interval allows.
    pub fn alpha_one_sided(&self) -> f64 {
        (1.0 - self.confidence) / 2.0
    }
}

/// How a gate decides (`decide` in a `[[gate]]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decide {
    /// The candidate must show it meets the bound: pass when the whole interval is on the good
    /// side, fail when it is all on the bad side, inconclusive otherwise.
    Noninferiority,
    /// Fail only on a significant worsening (Holm-adjusted across such gates); otherwise pass.
    Harm,
    /// The point estimates alone, as before intervals.
    Point,
}

impl Decide {
    pub fn as_str(self) -> &'static str {
        match self {
            Decide::Noninferiority => "noninferiority",
            Decide::Harm => "harm",
            Decide::Point => "point",
        }
    }
}

/// When an item passes for a model that ran it several times (`item_pass`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemPass {
    /// Every trial passed: a case that passes 2 of 3 is not stable (the default).
    #[default]
    All,
    /// More than half of the trials passed.
    Majority,
    /// At least one trial passed (pass@k).
    Any,
}

impl ItemPass {
    pub fn passes(self, passed: u32, trials: u32) -> bool {
        match self {
            ItemPass::All => trials > 0 && passed == trials,
            ItemPass::Majority => 2 * passed > trials,
            ItemPass::Any => passed > 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ItemPass::All => "all",
            ItemPass::Majority => "majority",
            ItemPass::Any => "any",
        }
    }
}

/// pass@k from n trials of which c passed (Chen et al. 2021, unbiased): 1 − C(n−c, k)/C(n, k).
pub fn pass_at_k(n: u32, c: u32, k: u32) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    // The product form avoids the huge binomials.
    let miss: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - f64::from(k) / f64::from(i))
        .product();
    Some(1.0 - miss)
}

/// pass^k from n trials of which c passed (Yao et al. 2024, τ-bench): C(c, k)/C(n, k), the
/// chance that k trials drawn without replacement all pass.
pub fn pass_hat_k(n: u32, c: u32, k: u32) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    if c < k {
        return Some(0.0);
    }
    Some(
        (0..k)
            .map(|j| f64::from(c - j) / f64::from(n - j))
            .product(),
    )
}

/// What a planned paired accuracy comparison can decide (`goldgate golden stats
/// --baseline-accuracy P --margin M`): both models near accuracy `p`, their per-item outcomes
/// correlated by `rho` (Miller 2024 measured 0.3–0.7 between frontier models).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerPlan {
    pub items: u64,
    pub baseline: f64,
    pub margin: f64,
    pub correlation: f64,
    pub confidence: f64,
    /// The share of items the two models would disagree on: 2p(1−p)(1−ρ).
    pub discordance: f64,
    /// The smallest accuracy drop (absolute) a paired test on these items detects with 80% power.
    pub detectable_drop: f64,
    /// The chance an equally good candidate passes `min_ratio = 1 − margin` on these items.
    pub pass_probability: f64,
    /// Items for that chance to reach 80%.
    pub items_for_80_percent: u64,
}

pub fn power_plan(items: u64, p: f64, margin: f64, rho: f64, confidence: f64) -> PowerPlan {
    let r = 1.0 - margin;
    let n = items.max(1) as f64;
    let var = p * (1.0 - p);
    let sd_drop = (2.0 * var * (1.0 - rho)).max(0.0).sqrt();
    let sd_ratio = (var * (1.0 + r * r - 2.0 * r * rho)).max(0.0).sqrt();
    let z_a = z(confidence);
    let z_b = dist::normal_quantile(0.8);
    let shift = (1.0 - r) * p;
    let pass_probability = if sd_ratio > 0.0 {
        dist::normal_cdf(shift * n.sqrt() / sd_ratio - z_a)
    } else {
        1.0
    };
    let needed = if shift > 0.0 {
        ((z_a + z_b) * sd_ratio / shift).powi(2).ceil()
    } else {
        f64::INFINITY
    };
    PowerPlan {
        items,
        baseline: p,
        margin,
        correlation: rho,
        confidence,
        discordance: 2.0 * var * (1.0 - rho),
        detectable_drop: (z_a + z_b) * sd_drop / n.sqrt(),
        pass_probability,
        items_for_80_percent: if needed.is_finite() {
            needed as u64
        } else {
            u64::MAX
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_newcombes_published_intervals() {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II,
        // method 3 (Wilson score without continuity correction).
        for (x, n, low, high) in [
            (81.0, 263.0, 0.2553, 0.3662),
            (15.0, 148.0, 0.0624, 0.1605),
            (0.0, 20.0, 0.0, 0.1611),
            (1.0, 29.0, 0.0061, 0.1718),
        ] {
            let i = wilson(x / n, n, 0.95);
            assert!(
                (i.low - low).abs() < 5e-5 && (i.high - high).abs() < 5e-5,
                "{x}/{n}: {i:?}"
            );
        }
    }

    #[test]
    fn clustered_se_is_the_plain_se_for_singletons_and_grows_with_clusters() {
        let values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let ones = [1.0; 6];
        let e = clustered_mean(&values, &ones).unwrap();
        let mean = 4.0 / 6.0;
        let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 5.0).sqrt();
        assert!((e.se - sd / 6f64.sqrt()).abs() < 1e-12);
        // The same six values in two clusters that move together: (1,1,1) and (0,0,1)...
        let e2 = clustered_mean(&[3.0, 1.0], &[3.0, 3.0]).unwrap();
        // Inspect's formula by hand: sqrt(C/(C-1) Σ_c (s_c − mean·n_c)²) / n.
        let by_hand = (2.0 * ((3.0 - 2.0f64).powi(2) + (1.0 - 2.0f64).powi(2))).sqrt() / 6.0;
        assert!((e2.se - by_hand).abs() < 1e-12);
        assert!(e2.se > e.se);
    }

    #[test]
    fn mover_with_r_one_is_newcombes_method_10() {
        // Newcombe's hybrid score interval for a paired difference, written out for r = 1.
        let (c, b, rho) = (0.6, 0.5, 0.3);
        let (ic, ib) = (wilson(c, 40.0, 0.95), wilson(b, 40.0, 0.95));
        let i = mover(c, ic, b, ib, 1.0, rho);
        let (dl2, du2, dl3, du3) = (c - ic.low, ic.high - c, b - ib.low, ib.high - b);
        let low = (c - b) - (dl2 * dl2 - 2.0 * rho * dl2 * du3 + du3 * du3).sqrt();
        let high = (c - b) + (du2 * du2 - 2.0 * rho * du2 * dl3 + dl3 * dl3).sqrt();
        assert!((i.low - low).abs() < 1e-12 && (i.high - high).abs() < 1e-12);
    }

    #[test]
    fn the_bootstrap_repeats_itself_and_depends_on_its_seed() {
        let values: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        let ones = vec![1.0; 50];
        let run = |seed| {
            Bootstrap {
                seed,
                resamples: 200,
            }
            .run(50, |w| weighted_mean(&values, &ones, w))
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn an_interval_serialises_unbounded_sides_as_null() {
        let i = Interval::new(1.5, f64::INFINITY);
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(json, "[1.5,null]");
        assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), i);
    }

    #[test]
    fn planned_power_matches_the_research_table() {
        // ../shared/research/statistics.md §1.4: MDE = 2.487·sqrt(disc/n) at one-sided α = 0.05;
        // at two-sided 95% (z = 1.96) the constant is 2.80: disc 0.09, n = 200 → 5.9 points.
        let p = power_plan(200, 0.9, 0.05, 0.5, 0.95);
        assert!((p.discordance - 0.09).abs() < 1e-12);
        assert!((p.detectable_drop - 2.8016 * (0.09f64 / 200.0).sqrt()).abs() < 1e-3);
        assert!(p.pass_probability > 0.0 && p.pass_probability < 1.0);
        let q = power_plan(p.items_for_80_percent, 0.9, 0.05, 0.5, 0.95);
        assert!((q.pass_probability - 0.8).abs() < 0.01, "{q:?}");
    }
}
