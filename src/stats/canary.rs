//! Two unpaired arms of live traffic (a canary, an A/B split): the comparisons `goldgate canary`
//! judges with. Requests of the two arms are different requests, so nothing here is paired:
//!
//! - a location shift between two samples (latency): Mann-Whitney U and the Hodges-Lehmann shift
//!   with its distribution-free interval (Kayenta's NetflixACAJudge), computed from the sorted
//!   samples without forming the n·m pairwise differences, so ten million latencies take seconds;
//! - a difference of two means or proportions (error rate, thumbs-up rate, CSAT), clustered on
//!   users when requests carry one: the requests of one user are not independent, and an interval
//!   that treats them as such is too narrow (the simulation shows by how much);
//! - the sample-ratio mismatch test: the split observed against the split configured.
//!
//! Pure functions of numbers; `simulation` tests each against a known truth.

use super::dist::normal_cdf;
use super::{Interval, MeanEstimate, clustered_mean, z};

/// Mann-Whitney U of `candidate` against `current`, and the Hodges-Lehmann estimate of the shift
/// (the median of every candidate − current difference) with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftTest {
    /// `U` of the candidate: pairs where the candidate's value is larger, ties counting half.
    pub u: f64,
    /// The common-language effect size `U / (n·m)`: the chance a candidate value exceeds a
    /// current one.
    pub cles: f64,
    /// Two-sided p-value of "no shift" (normal approximation with the tie correction).
    pub p_value: f64,
    /// The Hodges-Lehmann shift, candidate − current.
    pub shift: f64,
    /// Its distribution-free interval (Lehmann): order statistics of the pairwise differences.
    pub interval: Interval,
    pub current: usize,
    pub candidate: usize,
}

/// The shift test of two samples; `None` when either is empty. The samples are sorted in place.
pub fn shift_test(
    current: &mut [f64],
    candidate: &mut [f64],
    confidence: f64,
) -> Option<ShiftTest> {
    current.sort_unstable_by(f64::total_cmp);
    candidate.sort_unstable_by(f64::total_cmp);
    shift_test_counted(
        &Counted::from_sorted(current),
        &Counted::from_sorted(candidate),
        confidence,
    )
}

/// A sample as its distinct values in ascending order, each with how often it occurs: what a
/// latency histogram holds, and what the rank statistics need (ties are runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counted {
    values: Vec<f64>,
    counts: Vec<u64>,
    total: u64,
}

impl Counted {
    /// From values sorted ascending (no NaN).
    pub fn from_sorted(sorted: &[f64]) -> Counted {
        let mut c = Counted::default();
        for &v in sorted {
            c.push(v, 1);
        }
        c
    }

    /// Add `count` observations of `value`, which must not be below the last value added.
    pub fn push(&mut self, value: f64, count: u64) {
        if count == 0 {
            return;
        }
        debug_assert!(self.values.last().is_none_or(|&l| l <= value));
        if self.values.last() == Some(&value) {
            *self.counts.last_mut().expect("a value has a count") += count;
        } else {
            self.values.push(value);
            self.counts.push(count);
        }
        self.total += count;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `rank`-th smallest observation (from 1).
    pub fn at_rank(&self, rank: u64) -> Option<f64> {
        if rank == 0 || rank > self.total {
            return None;
        }
        let mut seen = 0;
        for (&v, &c) in self.values.iter().zip(&self.counts) {
            seen += c;
            if seen >= rank {
                return Some(v);
            }
        }
        None
    }

    /// The `p`-quantile as the order statistic of rank `ceil(p·n)` (nearest rank, as the
    /// latency percentiles of a run are).
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        self.at_rank(rank)
    }

    /// The mean of the observations.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| {
            self.values
                .iter()
                .zip(&self.counts)
                .map(|(v, &c)| v * c as f64)
                .sum::<f64>()
                / self.total as f64
        })
    }

    /// (value, count) in ascending order.
    pub fn runs(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.values.iter().copied().zip(self.counts.iter().copied())
    }

    fn first(&self) -> f64 {
        self.values[0]
    }

    fn last(&self) -> f64 {
        self.values[self.values.len() - 1]
    }
}

/// The shift test of two samples given as counted values; `None` when either is empty.
pub fn shift_test_counted(
    current: &Counted,
    candidate: &Counted,
    confidence: f64,
) -> Option<ShiftTest> {
    let (n, m) = (current.total, candidate.total);
    if n == 0 || m == 0 {
        return None;
    }
    let (u, tie_term) = u_statistic(current, candidate);
    let (nf, mf) = (n as f64, m as f64);
    let pairs = nf * mf;
    let total = nf + mf;
    let variance = pairs / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)).max(1.0));
    let p_value = if variance > 0.0 {
        let zu = (u - pairs / 2.0).abs() / variance.sqrt();
        (2.0 * (1.0 - normal_cdf(zu))).min(1.0)
    } else {
        1.0
    };
    // Lehmann's interval: the k-th smallest and k-th largest pairwise differences, k from the
    // normal approximation of U's null distribution (without ties: their effect on the ranks of
    // differences is small, and the interval is the standard one).
    let sd = (pairs * (total + 1.0) / 12.0).sqrt();
    let k = (pairs / 2.0 - z(confidence) * sd).floor();
    let total_pairs = n * m;
    let interval = if k >= 1.0 {
        let k = k as u64;
        Interval::new(
            kth_difference(current, candidate, k),
            kth_difference(current, candidate, total_pairs - k + 1),
        )
    } else {
        Interval::UNBOUNDED
    };
    // The median of the differences: the middle one, or the mean of the middle two.
    let shift = if total_pairs % 2 == 1 {
        kth_difference(current, candidate, total_pairs / 2 + 1)
    } else {
        (kth_difference(current, candidate, total_pairs / 2)
            + kth_difference(current, candidate, total_pairs / 2 + 1))
            / 2.0
    };
    Some(ShiftTest {
        u,
        cles: u / pairs,
        p_value,
        shift,
        interval,
        current: n as usize,
        candidate: m as usize,
    })
}

/// U of the candidate, and the ties' Σ(t³ − t) over the pooled sample.
fn u_statistic(current: &Counted, candidate: &Counted) -> (f64, f64) {
    let (mut i, mut j) = (0, 0);
    let mut below = 0.0;
    let mut u = 0.0;
    let mut ties = 0.0;
    // Walk the pooled distinct values in order.
    while i < current.values.len() || j < candidate.values.len() {
        let v = match (current.values.get(i), candidate.values.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        let a = if current.values.get(i) == Some(&v) {
            i += 1;
            current.counts[i - 1] as f64
        } else {
            0.0
        };
        let b = if candidate.values.get(j) == Some(&v) {
            j += 1;
            candidate.counts[j - 1] as f64
        } else {
            0.0
        };
        // Each candidate value here beats every current value below it and ties with `a`.
        u += b * (below + a / 2.0);
        let t = a + b;
        ties += t * t * t - t;
        below += a;
    }
    (u, ties)
}

/// How many differences `y − x` (y a candidate value, x a current one) are at most `d`: one pass
/// with two pointers over the distinct values.
fn count_at_most(current: &Counted, candidate: &Counted, d: f64) -> u64 {
    // For each candidate value y, the current values x with y − x <= d are those x >= y − d;
    // as y grows, the first such x moves right.
    let mut first = 0usize;
    let mut passed = 0u64;
    let mut count = 0u64;
    for (y, w) in candidate.runs() {
        while first < current.values.len() && y - current.values[first] > d {
            passed += current.counts[first];
            first += 1;
        }
        count += w * (current.total - passed);
    }
    count
}

/// The k-th smallest (from 1) of the n·m differences `y − x`, by bisection on the value: each
/// step one pass of [`count_at_most`].
fn kth_difference(current: &Counted, candidate: &Counted, k: u64) -> f64 {
    let mut low = candidate.first() - current.last();
    let mut high = candidate.last() - current.first();
    if count_at_most(current, candidate, low) >= k {
        return low;
    }
    // Invariant: fewer than k differences are <= low, at least k are <= high.
    for _ in 0..200 {
        let mid = low + (high - low) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if count_at_most(current, candidate, mid) >= k {
            high = mid;
        } else {
            low = mid;
        }
    }
    // `high` is within a rounding step of the k-th difference: snap it to the one it is.
    snap(current, candidate, high)
}

/// The largest actual difference at most `d`: after the bisection every difference in
/// (low, high] is the k-th one, so this is it, exactly, rather than a bound a rounding step away.
fn snap(current: &Counted, candidate: &Counted, d: f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    let mut first = 0usize;
    for (y, _) in candidate.runs() {
        // The first current value x with y − x <= d gives y's largest difference at most d.
        while first < current.values.len() && y - current.values[first] > d {
            first += 1;
        }
        if let Some(&x) = current.values.get(first) {
            best = best.max(y - x);
        }
    }
    if best.is_finite() { best } else { d }
}

/// A difference of two arms' means (a rate, a mean score), candidate − current, each arm's mean
/// clustered on its units (users, or each request alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmDifference {
    pub current: MeanEstimate,
    pub candidate: MeanEstimate,
    pub difference: f64,
    pub se: f64,
    pub interval: Interval,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
}

/// The difference of two arms given as (sum, count) per cluster of each arm. The arms are
/// independent, so the variances add; each arm's standard error is the clustered one of
/// [`clustered_mean`]. `None` when an arm has no observation or fewer than two clusters.
pub fn arm_difference(
    current: (&[f64], &[f64]),
    candidate: (&[f64], &[f64]),
    confidence: f64,
) -> Option<ArmDifference> {
    let a = clustered_mean(current.0, current.1)?;
    let b = clustered_mean(candidate.0, candidate.1)?;
    scaled_difference(a, b, 1.0, confidence)
}

/// `candidate − ratio × current` of two independent arms' clustered means (a ratio gate
/// "candidate ≥ 0.95 × current" holds when it is positive), with its normal interval and the
/// two-sided p-value of 0. `None` when an arm's standard error is unknown (under two clusters).
pub fn scaled_difference(
    current: MeanEstimate,
    candidate: MeanEstimate,
    ratio: f64,
    confidence: f64,
) -> Option<ArmDifference> {
    let (a, b) = (current, candidate);
    if !(a.se.is_finite() && b.se.is_finite()) {
        return None;
    }
    let difference = b.mean - ratio * a.mean;
    let se = (b.se * b.se + ratio * ratio * a.se * a.se).sqrt();
    let (interval, p_value) = if se > 0.0 {
        let half = z(confidence) * se;
        (
            Interval::new(difference - half, difference + half),
            (2.0 * (1.0 - normal_cdf(difference.abs() / se))).min(1.0),
        )
    } else {
        (
            Interval::new(difference, difference),
            if difference == 0.0 { 1.0 } else { 0.0 },
        )
    };
    Some(ArmDifference {
        current: a,
        candidate: b,
        difference,
        se,
        interval,
        p_value,
    })
}

/// A clustered mean folded one cluster at a time, in constant memory: the sums that
/// [`clustered_mean`]'s `Σ_c (s_c − mean·n_c)²` expands to (`Σs², Σs·n, Σn²`), so ten million
/// requests of a million users need no list of either.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClusterMoments {
    clusters: usize,
    sum: f64,
    n: f64,
    sum_sq: f64,
    sum_n: f64,
    n_sq: f64,
}

impl ClusterMoments {
    /// One cluster: the sum of its values and how many there are.
    pub fn add(&mut self, sum: f64, n: f64) {
        if n > 0.0 && sum.is_finite() {
            self.clusters += 1;
            self.sum += sum;
            self.n += n;
            self.sum_sq += sum * sum;
            self.sum_n += sum * n;
            self.n_sq += n * n;
        }
    }

    /// `count` clusters of one observation each, all of value `value`: what `count` calls
    /// of `add(value, 1)` give, at once.
    pub fn add_each(&mut self, value: f64, count: u64) {
        if count > 0 && value.is_finite() {
            let k = count as f64;
            self.clusters += count as usize;
            self.sum += value * k;
            self.n += k;
            self.sum_sq += value * value * k;
            self.sum_n += value * k;
            self.n_sq += k;
        }
    }

    pub fn observations(&self) -> f64 {
        self.n
    }

    pub fn estimate(&self) -> Option<MeanEstimate> {
        if self.n <= 0.0 {
            return None;
        }
        let mean = self.sum / self.n;
        let se = if self.clusters >= 2 {
            let c = self.clusters as f64;
            let ss = (self.sum_sq - 2.0 * mean * self.sum_n + mean * mean * self.n_sq).max(0.0);
            (c / (c - 1.0) * ss).sqrt() / self.n
        } else {
            f64::NAN
        };
        Some(MeanEstimate {
            mean,
            se,
            n: self.n,
            clusters: self.clusters,
        })
    }
}

/// The ratio of two arms' `p`-quantiles, candidate / current, with a Poisson bootstrap interval:
/// each resample gives every distinct value a Poisson(count) weight (Chamandy et al. 2012,
/// "Estimating uncertainty for massive data streams": the streaming form of the bootstrap, which
/// needs only the counted values, not the requests), the arms resampled independently. `None`
/// when an arm is empty or the current quantile is 0.
pub fn quantile_ratio(
    current: &Counted,
    candidate: &Counted,
    p: f64,
    resamples: usize,
    seed: u64,
    confidence: f64,
) -> Option<(f64, Interval)> {
    let (b, c) = (current.quantile(p)?, candidate.quantile(p)?);
    if b <= 0.0 {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut weights = Vec::new();
    let mut replicates: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let qb = poisson_quantile(current, p, &mut rng, &mut weights)?;
            let qc = poisson_quantile(candidate, p, &mut rng, &mut weights)?;
            (qb > 0.0).then(|| qc / qb)
        })
        .collect();
    if replicates.len() < resamples / 2 {
        return Some((c / b, Interval::UNBOUNDED));
    }
    Some((
        c / b,
        super::percentile_interval(&mut replicates, confidence),
    ))
}

/// A sample in independent groups: requests hashed into groups by their user, so that one
/// user's requests, which hang together, always fall into one group, and the groups are
/// independent of each other. Each group is kept as its counted values on a grid shared by every
/// group (a histogram's bins), cumulated: the quantile of any weighting of the groups is then a
/// binary search over the grid, at a cost of one pass over the groups per probe.
#[derive(Debug, Clone, Default)]
pub struct GroupedSample {
    /// The grid: every value any group holds, ascending.
    values: Vec<f64>,
    /// Per group, its count at or below each grid value.
    cumulative: Vec<Vec<u64>>,
}

impl GroupedSample {
    /// `groups`: each group's (value, count) pairs, in any order; empty groups are dropped.
    pub fn new(groups: &[Vec<(f64, u64)>]) -> GroupedSample {
        let mut values: Vec<f64> = groups
            .iter()
            .flat_map(|g| g.iter().filter(|(_, c)| *c > 0).map(|&(v, _)| v))
            .collect();
        values.sort_unstable_by(f64::total_cmp);
        values.dedup();
        let cumulative = groups
            .iter()
            .filter(|g| g.iter().any(|(_, c)| *c > 0))
            .map(|g| {
                let mut counts = vec![0u64; values.len()];
                for &(v, c) in g {
                    if let Ok(i) = values.binary_search_by(|x| x.total_cmp(&v)) {
                        counts[i] += c;
                    }
                }
                let mut running = 0;
                for c in &mut counts {
                    running += *c;
                    *c = running;
                }
                counts
            })
            .collect();
        GroupedSample { values, cumulative }
    }

    /// The groups that hold any value.
    pub fn groups(&self) -> usize {
        self.cumulative.len()
    }

    /// The `p`-quantile (the value at rank ⌈p·total⌉) of the groups weighted by `weights`,
    /// given as (group, weight) for the groups with a weight above 0.
    fn weighted_quantile(&self, p: f64, weights: &[(usize, u64)]) -> Option<f64> {
        let last = self.values.len().checked_sub(1)?;
        let at = |k: usize| -> u64 {
            weights
                .iter()
                .map(|&(g, w)| w * self.cumulative[g][k])
                .sum()
        };
        let total = at(last);
        if total == 0 {
            return None;
        }
        let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
        // The first grid value whose weighted cumulative count reaches the rank.
        let (mut lo, mut hi) = (0, last);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if at(mid) >= rank {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(self.values[lo])
    }

    fn quantile(&self, p: f64) -> Option<f64> {
        let all: Vec<(usize, u64)> = (0..self.groups()).map(|g| (g, 1)).collect();
        self.weighted_quantile(p, &all)
    }
}

/// The interval of the ratio of two arms' `p`-quantiles, candidate / current, when requests
/// come in groups ([`GroupedSample`]: users hashed into groups): a Poisson bootstrap over the
/// groups rather than the requests, so a user's requests are resampled together. This is
/// Chamandy et al.'s (2012) streaming bootstrap with the user as the unit; hashing users into
/// a fixed number of groups keeps its memory constant however many users there are (groups of
/// independent users are independent; a few hundred of them estimate the spread well).
///
/// The grid the groups are kept on is coarser than the arms' own histograms, so the interval is
/// the bootstrap's spread of the ratio around the grid's own ratio, placed around `estimate`
/// (the ratio from the exact histograms): the grid's rounding cancels. `None` when an arm has
/// fewer than two groups or a quantile of 0; unbounded below [`super::SMALL_SAMPLE`] groups.
pub fn grouped_quantile_ratio(
    current: &GroupedSample,
    candidate: &GroupedSample,
    p: f64,
    estimate: f64,
    resampling: Resampling,
) -> Option<Interval> {
    grouped_bootstrap(&[current, candidate], p, estimate, resampling, |q| {
        (q[0] > 0.0).then(|| q[1] / q[0])
    })
}

/// The interval of one arm's `p`-quantile when its requests come in groups: the same bootstrap
/// over groups as [`grouped_quantile_ratio`], around `estimate`.
pub fn grouped_quantile(
    sample: &GroupedSample,
    p: f64,
    estimate: f64,
    resampling: Resampling,
) -> Option<Interval> {
    grouped_bootstrap(&[sample], p, estimate, resampling, |q| Some(q[0]))
}

/// How a bootstrap over groups of users runs, and what it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resampling {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    /// `None`: the percentile interval of the replicates (a fixed analysis). `Some(rho)`: an
    /// asymptotic confidence sequence ([`normal_mixture_half_width`]) on the log of the
    /// statistic, the replicates' standard deviation of that log as its standard error and
    /// `rho` (in log units) as the mixture's scale: `--sequential`, where the interval must
    /// hold at every look.
    pub always_valid: Option<f64>,
}

/// A Poisson bootstrap over the groups of each sample (independently), of `statistic` of the
/// samples' `p`-quantiles; the replicates scaled by `estimate / statistic(grid quantiles)`.
fn grouped_bootstrap(
    samples: &[&GroupedSample],
    p: f64,
    estimate: f64,
    resampling: Resampling,
    statistic: impl Fn(&[f64]) -> Option<f64>,
) -> Option<Interval> {
    let Resampling {
        resamples,
        seed,
        confidence,
        always_valid,
    } = resampling;
    if samples.iter().any(|s| s.groups() < 2) {
        return None;
    }
    // A percentile bootstrap over a handful of units is far too sure of itself: below
    // SMALL_SAMPLE groups of users, nothing is known yet.
    if samples.iter().any(|s| s.groups() < super::SMALL_SAMPLE) {
        return Some(Interval::UNBOUNDED);
    }
    let on_grid: Vec<f64> = samples
        .iter()
        .map(|s| s.quantile(p))
        .collect::<Option<_>>()?;
    let grid = statistic(&on_grid).filter(|g| *g != 0.0 && g.is_finite())?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut weights = Vec::new();
    let mut quantiles = vec![0.0; samples.len()];
    let mut replicates: Vec<f64> = Vec::with_capacity(resamples);
    'resample: for _ in 0..resamples {
        for (q, sample) in quantiles.iter_mut().zip(samples) {
            weights.clear();
            weights.extend(
                (0..sample.groups())
                    .map(|g| (g, poisson(&mut rng, 1.0)))
                    .filter(|&(_, w)| w > 0),
            );
            match sample.weighted_quantile(p, &weights) {
                Some(v) => *q = v,
                None => continue 'resample,
            }
        }
        if let Some(r) = statistic(&quantiles) {
            replicates.push(estimate * r / grid);
        }
    }
    if replicates.len() < resamples / 2 {
        return Some(Interval::UNBOUNDED);
    }
    let Some(rho) = always_valid else {
        return Some(super::percentile_interval(&mut replicates, confidence));
    };
    let logs: Vec<f64> = replicates
        .iter()
        .filter(|r| **r > 0.0)
        .map(|r| r.ln())
        .collect();
    let n = logs.len() as f64;
    if n < 2.0 || estimate <= 0.0 {
        return Some(Interval::UNBOUNDED);
    }
    let mean = logs.iter().sum::<f64>() / n;
    let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // Resamples that all agree (one grid value everywhere) are no certainty: half a step of the
    // two-digit grid is the least error.
    let half = normal_mixture_half_width(sd.max(0.005), rho, confidence);
    Some(Interval::new(
        estimate * (-half).exp(),
        estimate * half.exp(),
    ))
}

/// The `p`-quantile of one Poisson-weighted resample of `sample`.
fn poisson_quantile(
    sample: &Counted,
    p: f64,
    rng: &mut fastrand::Rng,
    weights: &mut Vec<u64>,
) -> Option<f64> {
    weights.clear();
    weights.extend(sample.counts.iter().map(|&c| poisson(rng, c as f64)));
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (&v, &w) in sample.values.iter().zip(weights.iter()) {
        seen += w;
        if seen >= rank {
            return Some(v);
        }
    }
    None
}

/// A Poisson draw: by multiplication of uniforms for a small mean, by the normal approximation
/// (rounded, at least 0) from a mean of 30, where it is within a fraction of a percent in the
/// quantities a bootstrap uses.
fn poisson(rng: &mut fastrand::Rng, mean: f64) -> u64 {
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut prod = rng.f64();
        while prod > limit {
            k += 1;
            prod *= rng.f64();
        }
        k
    } else {
        let u1 = 1.0 - rng.f64();
        let u2 = rng.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (mean + mean.sqrt() * z).round().max(0.0) as u64
    }
}

/// The always-valid interval of the `p`-quantile of the distribution a counted sample comes
/// from ([`super::sequential::quantile_sequence`]).
pub fn quantile_sequence(sample: &Counted, p: f64, confidence: f64) -> Interval {
    super::sequential::quantile_sequence_by_rank(sample.total, p, confidence, |rank| {
        sample.at_rank(rank).unwrap_or(f64::NAN)
    })
}

/// The half-width at `confidence` of an asymptotic confidence sequence for a mean known at each
/// look by its estimate and standard error `se` (Waudby-Smith, Arnold, Wu, Howard & Ramdas 2024,
/// "Time-uniform central limit theory and asymptotic confidence sequences", Ann. Statist.):
/// Robbins' normal-mixture boundary for a Brownian motion in information time `I = 1/se²`,
/// `|θ̂ − θ| ≤ sqrt((I + r)·ln((I + r)/(r·α²))) / I`, which with `v = r·se²` is
/// `se·sqrt((1 + v)·ln((1 + v)/(v·α²)))`. `rho = 1/√r` is the scale of the deviations the
/// mixture weighs (tightest where `se` is about a third of it, and loose slowly either side).
///
/// It needs nothing but the estimate and its standard error, so the error can be the clustered
/// one: with users, where a per-request sequence treats a user's requests as independent and
/// errs (the simulation measures by how much).
pub fn normal_mixture_half_width(se: f64, rho: f64, confidence: f64) -> f64 {
    if !(se > 0.0 && se.is_finite() && rho > 0.0) {
        return f64::INFINITY;
    }
    let alpha = 1.0 - confidence;
    let v = (se / rho).powi(2);
    se * ((1.0 + v) * ((1.0 + v) / (v * alpha * alpha)).ln()).sqrt()
}

/// The sample-ratio mismatch test: the requests observed per arm against the configured shares
/// (which need not sum to 1: they are normalised). Pearson's chi-square; its p-value for two arms
/// (one degree of freedom) is exact in the normal approximation, `2(1 − Φ(√χ²))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatio {
    pub observed: [u64; 2],
    pub expected: [f64; 2],
    pub chi_square: f64,
    pub p_value: f64,
}

/// Below this p-value the split is a mismatch: the common threshold in online experiments (a
/// true mismatch is usually far below it; a stricter bar than 0.05 keeps a canary checked every
/// few minutes from crying wolf).
pub const SRM_ALPHA: f64 = 0.001;

pub fn sample_ratio(observed: [u64; 2], shares: [f64; 2]) -> Option<SampleRatio> {
    let total: u64 = observed.iter().sum();
    let weight: f64 = shares.iter().sum();
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if total == 0 || !positive(weight) || !shares.iter().all(|&s| positive(s)) {
        return None;
    }
    let expected = shares.map(|s| s / weight * total as f64);
    let chi_square: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
        .sum();
    Some(SampleRatio {
        observed,
        expected,
        chi_square,
        p_value: (2.0 * (1.0 - normal_cdf(chi_square.sqrt()))).min(1.0),
    })
}

impl SampleRatio {
    pub fn mismatch(&self) -> bool {
        self.p_value < SRM_ALPHA
    }
}

/// An always-valid comparison of two arms' means, for a canary looked at every few minutes: a
/// confidence sequence for each arm's mean ([`super::sequential::MeanSequence`], each at half
/// the error), their difference bounded crosswise. A fixed-sample interval checked at every look
/// raises false alarms far above its level; this one holds its level however often it is looked
/// at. Observations are values in `[low, high]` (a rate in [0, 1], CSAT in [1, 5]), fed in the
/// order they were logged.
#[derive(Debug, Clone)]
pub struct ArmSequence {
    low: f64,
    high: f64,
    current: super::sequential::MeanSequence,
    candidate: super::sequential::MeanSequence,
}

impl ArmSequence {
    pub fn new(low: f64, high: f64, confidence: f64) -> ArmSequence {
        let each = 1.0 - (1.0 - confidence) / 2.0;
        ArmSequence {
            low,
            high,
            current: super::sequential::MeanSequence::new(each),
            candidate: super::sequential::MeanSequence::new(each),
        }
    }

    fn unit(&self, x: f64) -> f64 {
        (x - self.low) / (self.high - self.low)
    }

    pub fn push_current(&mut self, x: f64) {
        let u = self.unit(x);
        self.current.push(u);
    }

    pub fn push_candidate(&mut self, x: f64) {
        let u = self.unit(x);
        self.candidate.push(u);
    }

    /// The sequence for candidate − current, in the values' own unit.
    pub fn difference(&self) -> Interval {
        let (a, b) = (self.current.interval(), self.candidate.interval());
        let span = self.high - self.low;
        Interval::new((b.low - a.high) * span, (b.high - a.low) * span)
    }

    /// Observations so far, per arm.
    pub fn counts(&self) -> (usize, usize) {
        (self.current.len(), self.candidate.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every difference, sorted: what [`kth_difference`] finds without forming them.
    fn brute_differences(a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut d: Vec<f64> = b
            .iter()
            .flat_map(|y| a.iter().map(move |x| y - x))
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        d
    }

    #[test]
    fn the_kth_difference_is_the_brute_force_one_ties_and_all() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let n = rng.usize(1..30);
            let m = rng.usize(1..30);
            // Rounded values make ties, as latencies in whole milliseconds do.
            let mut a: Vec<f64> = (0..n).map(|_| (rng.f64() * 20.0).round()).collect();
            let mut b: Vec<f64> = (0..m).map(|_| (rng.f64() * 20.0).round() + 3.0).collect();
            a.sort_unstable_by(f64::total_cmp);
            b.sort_unstable_by(f64::total_cmp);
            let d = brute_differences(&a, &b);
            for k in [1, d.len() / 3 + 1, d.len() / 2 + 1, d.len()] {
                assert_eq!(
                    kth_difference(
                        &Counted::from_sorted(&a),
                        &Counted::from_sorted(&b),
                        k as u64
                    ),
                    d[k - 1],
                    "n {n} m {m} k {k}"
                );
            }
        }
    }

    #[test]
    fn u_matches_the_pair_count_with_ties_half() {
        let mut a = vec![1.0, 2.0, 2.0, 5.0];
        let mut b = vec![2.0, 3.0, 6.0];
        let t = shift_test(&mut a, &mut b, 0.95).unwrap();
        // Pairs (b > a): 2 vs {1} = 1 + ties {2,2} half each = 1 → 2; 3 vs {1,2,2} = 3; 6 vs all = 4.
        assert_eq!(t.u, 9.0);
        assert_eq!(t.shift, brute_median(&a, &b));
    }

    fn brute_median(a: &[f64], b: &[f64]) -> f64 {
        let d = brute_differences(a, b);
        let n = d.len();
        if n % 2 == 1 {
            d[n / 2]
        } else {
            (d[n / 2 - 1] + d[n / 2]) / 2.0
        }
    }

    #[test]
    fn a_split_that_matches_its_shares_is_no_mismatch_and_a_skewed_one_is() {
        let fine = sample_ratio([9_950, 10_050], [50.0, 50.0]).unwrap();
        assert!(!fine.mismatch(), "{fine:?}");
        let skewed = sample_ratio([9_600, 10_400], [50.0, 50.0]).unwrap();
        assert!(skewed.mismatch(), "{skewed:?}");
        let canary = sample_ratio([95_000, 5_000], [95.0, 5.0]).unwrap();
        assert!(!canary.mismatch() && canary.chi_square < 1e-9);
        assert!(sample_ratio([0, 0], [1.0, 1.0]).is_none());
    }

    // Simulations with a known truth: seeded, a few hundred replications each, printed with
    // `--nocapture`. Each has a witness: the wrong method failing the same check.

    fn normal(rng: &mut fastrand::Rng) -> f64 {
        let u1 = 1.0 - rng.f64();
        let u2 = rng.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A skewed latency, as services have: lognormal around 400 ms.
    fn latency(rng: &mut fastrand::Rng) -> f64 {
        (400.0 * (0.5 * normal(rng)).exp()).round()
    }

    #[test]
    fn the_shift_interval_covers_a_known_shift_and_u_holds_its_level() {
        let mut rng = fastrand::Rng::with_seed(11);
        let reps = 400;
        let (mut covered, mut false_alarms, mut witness_covered) = (0, 0, 0);
        for rep in 0..reps {
            let shift = if rep % 2 == 0 { 0.0 } else { 60.0 };
            let mut a: Vec<f64> = (0..150).map(|_| latency(&mut rng)).collect();
            let mut b: Vec<f64> = (0..250).map(|_| latency(&mut rng) + shift).collect();
            let t = shift_test(&mut a, &mut b, 0.95).unwrap();
            covered += usize::from(t.interval.low <= shift && shift <= t.interval.high);
            if shift == 0.0 {
                false_alarms += usize::from(t.p_value < 0.05);
            }
            // The witness: the n·m pairwise differences taken as independent observations (their
            // mean with SE sd/√(n·m)), the mistake of counting pairs as evidence. Far too narrow.
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let var = |v: &[f64]| {
                let m = mean(v);
                v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
            };
            let d = mean(&b) - mean(&a);
            let se = ((var(&a) + var(&b)) / (a.len() * b.len()) as f64).sqrt();
            witness_covered += usize::from((d - 1.96 * se) <= shift && shift <= (d + 1.96 * se));
        }
        let coverage = covered as f64 / reps as f64;
        let level = false_alarms as f64 / (reps / 2) as f64;
        let witness = witness_covered as f64 / reps as f64;
        println!(
            "HL interval coverage {coverage:.3}; U false alarms {level:.3}; witness coverage {witness:.3}"
        );
        assert!((0.92..=0.98).contains(&coverage), "{coverage}");
        assert!(level <= 0.09, "{level}");
        assert!(witness < 0.9, "the witness should undercover: {witness}");
    }

    /// Thumbs-up per request, users with their own propensity: 10 requests each.
    fn arm(
        rng: &mut fastrand::Rng,
        users: usize,
        p: f64,
        spread: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut user_sums, mut user_counts, mut req_sums, mut req_counts) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..users {
            let pu = (p + spread * normal(rng)).clamp(0.0, 1.0);
            let mut s = 0.0;
            for _ in 0..10 {
                let y = f64::from(u8::from(rng.f64() < pu));
                s += y;
                req_sums.push(y);
                req_counts.push(1.0);
            }
            user_sums.push(s);
            user_counts.push(10.0);
        }
        (user_sums, user_counts, req_sums, req_counts)
    }

    #[test]
    fn clustered_differences_cover_when_users_repeat_and_unclustered_ones_do_not() {
        let mut rng = fastrand::Rng::with_seed(23);
        let reps = 400;
        let (mut clustered, mut unclustered) = (0, 0);
        for _ in 0..reps {
            let (cs, cc, rs, rc) = arm(&mut rng, 120, 0.7, 0.25);
            let (cs2, cc2, rs2, rc2) = arm(&mut rng, 120, 0.7, 0.25);
            let by_user = arm_difference((&cs, &cc), (&cs2, &cc2), 0.95).unwrap();
            let by_request = arm_difference((&rs, &rc), (&rs2, &rc2), 0.95).unwrap();
            clustered += usize::from(by_user.interval.low <= 0.0 && 0.0 <= by_user.interval.high);
            unclustered +=
                usize::from(by_request.interval.low <= 0.0 && 0.0 <= by_request.interval.high);
        }
        let (c, u) = (
            clustered as f64 / reps as f64,
            unclustered as f64 / reps as f64,
        );
        println!(
            "difference of thumbs-up rates, users repeating: clustered coverage {c:.3}, unclustered {u:.3}"
        );
        assert!((0.92..=0.98).contains(&c), "{c}");
        assert!(u < 0.85, "the unclustered witness should undercover: {u}");
    }

    /// One arm's latencies from `users` users of skewed activity (a few heavy ones), each with
    /// a latency factor of their own: the requests in their groups (user → group by hash, as the
    /// tally does), and as a plain counted sample.
    fn users_latencies(rng: &mut fastrand::Rng, users: usize) -> (GroupedSample, Counted) {
        let mut groups: Vec<Vec<(f64, u64)>> = vec![Vec::new(); 128];
        let mut all = Vec::new();
        for u in 0..users {
            let own = 0.5 * normal(rng);
            let requests = 1 + (40.0 * rng.f64().powi(3)) as usize;
            let g = (u * 2_654_435_761) % groups.len();
            for _ in 0..requests {
                // Whole 10 ms, as coarse logs have: fewer distinct values, a faster witness.
                let v = (40.0 * (own + 0.3 * normal(rng)).exp()).round() * 10.0;
                groups[g].push((v, 1));
                all.push(v);
            }
        }
        all.sort_unstable_by(f64::total_cmp);
        (GroupedSample::new(&groups), Counted::from_sorted(&all))
    }

    #[test]
    fn the_percentile_ratio_bootstrapped_over_users_covers_and_over_requests_does_not() {
        // Both arms drawn from one population of users: the true p95 ratio is 1. A user's
        // requests share that user's latency factor, so the requests are not independent.
        let mut rng = fastrand::Rng::with_seed(41);
        let reps = 200;
        let (mut by_user, mut by_request) = (0, 0);
        for rep in 0..reps {
            let (ga, ca) = users_latencies(&mut rng, 150);
            let (gb, cb) = users_latencies(&mut rng, 150);
            let estimate = cb.quantile(0.95).unwrap() / ca.quantile(0.95).unwrap();
            let seed = 1000 + rep;
            let resampling = Resampling {
                resamples: 300,
                seed,
                confidence: 0.95,
                always_valid: None,
            };
            let iv = grouped_quantile_ratio(&ga, &gb, 0.95, estimate, resampling).unwrap();
            by_user += usize::from(iv.low <= 1.0 && 1.0 <= iv.high);
            let (_, w) = quantile_ratio(&ca, &cb, 0.95, 300, seed, 0.95).unwrap();
            by_request += usize::from(w.low <= 1.0 && 1.0 <= w.high);
        }
        let (u, r) = (
            by_user as f64 / reps as f64,
            by_request as f64 / reps as f64,
        );
        println!(
            "p95 ratio, users with latency factors of their own: coverage bootstrapped over users {u:.3}, over requests (witness) {r:.3}"
        );
        assert!((0.91..=0.99).contains(&u), "{u}");
        assert!(r < 0.85, "the request-level witness should undercover: {r}");
    }

    #[test]
    fn a_grouped_quantile_is_the_counted_one() {
        let mut rng = fastrand::Rng::with_seed(43);
        let (g, c) = users_latencies(&mut rng, 60);
        for p in [0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            assert_eq!(g.quantile(p), c.quantile(p), "p {p}");
        }
    }

    #[test]
    fn the_sample_ratio_test_alarms_rarely_on_a_true_split_and_always_on_a_skewed_one() {
        let mut rng = fastrand::Rng::with_seed(5);
        let reps = 2000;
        let (mut false_alarms, mut caught) = (0, 0);
        for _ in 0..reps {
            let n = 20_000;
            let canary = (0..n).filter(|_| rng.f64() < 0.10).count() as u64;
            false_alarms += usize::from(
                sample_ratio([n - canary, canary], [90.0, 10.0])
                    .unwrap()
                    .mismatch(),
            );
            // A canary that loses a tenth of its traffic (9% where 10% was configured).
            let lost = (0..n).filter(|_| rng.f64() < 0.09).count() as u64;
            caught += usize::from(
                sample_ratio([n - lost, lost], [90.0, 10.0])
                    .unwrap()
                    .mismatch(),
            );
        }
        let (fa, power) = (
            false_alarms as f64 / reps as f64,
            caught as f64 / reps as f64,
        );
        println!(
            "SRM at p < {SRM_ALPHA}: false alarms {fa:.4}, a tenth of the canary's share lost, caught {power:.3}"
        );
        assert!(fa <= 0.004, "{fa}");
        assert!(power >= 0.9, "{power}");
    }

    #[test]
    fn an_always_valid_difference_holds_its_level_over_twenty_looks_and_a_fixed_one_does_not() {
        // An error rate of 2% on both arms, a canary at 10% of 3,000 requests an interval,
        // looked at after each of 20 intervals: how often does either method ever call a
        // difference that is not there?
        let mut rng = fastrand::Rng::with_seed(31);
        let reps = 240;
        let (mut sequential_alarms, mut fixed_alarms, mut caught) = (0, 0, 0);
        for rep in 0..reps {
            let harm = rep % 3 == 2;
            let p_candidate = if harm { 0.04 } else { 0.02 };
            let mut seq = ArmSequence::new(0.0, 1.0, 0.95);
            let (mut a, mut b) = ((0.0, 0.0), (0.0, 0.0));
            let (mut seq_alarm, mut fixed_alarm) = (false, false);
            for _look in 0..20 {
                for _ in 0..3_000 {
                    if rng.f64() < 0.10 {
                        let y = f64::from(u8::from(rng.f64() < p_candidate));
                        seq.push_candidate(y);
                        b = (b.0 + y, b.1 + 1.0);
                    } else {
                        let y = f64::from(u8::from(rng.f64() < 0.02));
                        seq.push_current(y);
                        a = (a.0 + y, a.1 + 1.0);
                    }
                }
                let d = seq.difference();
                seq_alarm |= d.low > 0.0 || d.high < 0.0;
                // The witness: the fixed-sample Wald interval of the difference, at every look.
                let (pa, pb) = (a.0 / a.1, b.0 / b.1);
                let se = (pa * (1.0 - pa) / a.1 + pb * (1.0 - pb) / b.1).sqrt();
                fixed_alarm |= ((pb - pa) / se).abs() > 1.96;
            }
            if harm {
                caught += usize::from(seq_alarm);
            } else {
                sequential_alarms += usize::from(seq_alarm);
                fixed_alarms += usize::from(fixed_alarm);
            }
        }
        let nulls = (reps - reps / 3) as f64;
        let (seq_rate, fixed_rate) = (
            sequential_alarms as f64 / nulls,
            fixed_alarms as f64 / nulls,
        );
        let power = caught as f64 / (reps / 3) as f64;
        println!(
            "20 looks, no difference: always-valid false alarms {seq_rate:.3}, fixed-sample {fixed_rate:.3}; error rate doubled: caught {power:.3}"
        );
        assert!(seq_rate <= 0.05, "{seq_rate}");
        assert!(
            fixed_rate > 0.08,
            "the fixed-sample witness should exceed its level: {fixed_rate}"
        );
        assert!(power >= 0.9, "{power}");
    }
}
