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
    let (n, m) = (current.len(), candidate.len());
    if n == 0 || m == 0 {
        return None;
    }
    current.sort_unstable_by(f64::total_cmp);
    candidate.sort_unstable_by(f64::total_cmp);
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
    let interval = if k >= 1.0 {
        let k = k as u64;
        let total_pairs = (n as u64) * (m as u64);
        Interval::new(
            kth_difference(current, candidate, k),
            kth_difference(current, candidate, total_pairs - k + 1),
        )
    } else {
        Interval::UNBOUNDED
    };
    let total_pairs = (n as u64) * (m as u64);
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
        current: n,
        candidate: m,
    })
}

/// U of the candidate over sorted samples, and the ties' Σ(t³ − t) over the pooled sample.
fn u_statistic(current: &[f64], candidate: &[f64]) -> (f64, f64) {
    let (mut i, mut j) = (0, 0);
    let mut u = 0.0;
    let mut ties = 0.0;
    // Walk the pooled values in order, a run of equal values at a time.
    while i < current.len() || j < candidate.len() {
        let v = match (current.get(i), candidate.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        let mut a = 0usize;
        while current.get(i + a).is_some_and(|&x| x == v) {
            a += 1;
        }
        let mut b = 0usize;
        while candidate.get(j + b).is_some_and(|&x| x == v) {
            b += 1;
        }
        // Each candidate value here beats every current value below it and ties with `a`.
        u += b as f64 * (i as f64 + a as f64 / 2.0);
        let t = (a + b) as f64;
        ties += t * t * t - t;
        i += a;
        j += b;
    }
    (u, ties)
}

/// How many differences `candidate[j] − current[i]` are at most `d`, over sorted samples: one
/// pass with two pointers.
fn count_at_most(current: &[f64], candidate: &[f64], d: f64) -> u64 {
    // For each candidate value y, the current values x with y − x <= d are those x >= y − d;
    // as y grows, the first such x moves right.
    let mut first = 0usize;
    let mut count = 0u64;
    for &y in candidate {
        while first < current.len() && y - current[first] > d {
            first += 1;
        }
        count += (current.len() - first) as u64;
    }
    count
}

/// The k-th smallest (from 1) of the n·m differences `candidate[j] − current[i]`, by bisection
/// on the value: each step one pass of [`count_at_most`].
fn kth_difference(current: &[f64], candidate: &[f64], k: u64) -> f64 {
    let mut low = candidate[0] - current[current.len() - 1];
    let mut high = candidate[candidate.len() - 1] - current[0];
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
fn snap(current: &[f64], candidate: &[f64], d: f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    let mut first = 0usize;
    for &y in candidate {
        // The first current value x with y − x <= d gives y's largest difference at most d.
        while first < current.len() && y - current[first] > d {
            first += 1;
        }
        if let Some(&x) = current.get(first) {
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
    if !(a.se.is_finite() && b.se.is_finite()) {
        return None;
    }
    let difference = b.mean - a.mean;
    let se = (a.se * a.se + b.se * b.se).sqrt();
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
                    kth_difference(&a, &b, k as u64),
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
