//! Change points in a nightly metric series: the nights after which a metric moved to a new
//! level and stayed there, as performance-CI trackers find them (MongoDB, Daly et al. 2020;
//! Hunter / Apache Otava, Fleming et al. 2023). A run-by-run gate compares two models on one
//! night; this looks at many nights of one setup, where a provider's silent model update or a
//! slow drift shows up as a step no single night makes significant.
//!
//! The method is Hunter's (`otava/analysis.py`, `split` and `merge`):
//!
//! 1. **Candidates** (split). Fixed windows of `window` points, each overlapping the previous by
//!    half, are cut by E-divisive means (Matteson & James 2014, "A nonparametric approach for
//!    multiple change point analysis of multivariate data", JASA 109(505)): the split τ, with a
//!    right end κ, that maximises the divergence `Q = τ(κ−τ)/κ · E`, with `E` twice the mean
//!    distance between the two sides minus the mean distances within each (α = 1). The split
//!    found is kept when Student's two-sample t-test between its sides, bounded by the change
//!    points already kept and the window's edges, gives p below a relaxed threshold
//!    (10 × `p_value`); the window is then cut again (binary segmentation) until a split fails.
//! 2. **Re-test** (merge). Every candidate is tested again between its neighbouring candidates
//!    (or the series' ends) at `p_value`; the weakest failing one is dropped and its neighbours
//!    re-tested, until every one left passes.
//!
//! Why these choices:
//!
//! - Windows, because over a whole year a large change dominates the divergence and can hide a
//!   small one months away, and because they bound the work: a search is O(window²), so a
//!   series costs O(n · window), about 0.2 ms for a year of nights in a release build.
//! - The t-test in place of Matteson & James's permutation test, because permutations are slow
//!   and random (Fleming et al.), and a history page must show the same change points every
//!   time it is drawn. The divergence only *places* the split; it uses distances, not squares,
//!   so one wild night moves it less than it moves a least-squares step fit.
//! - Student's pooled t-test, as Hunter's, not Welch's. Welch's was tried and measured worse on
//!   both counts (the `false_alarms_on_stationary_*` tests print it): E-divisive, maximising
//!   over the right end too, finds short runs of nights that happen to lie close together, and
//!   Welch's test, trusting that short run's own tiny spread, calls them significant (p down to
//!   1e-20 on pure noise), nearly tripling the false alarms; and with three nights after a step
//!   Welch's degrees of freedom fall to about two, so a real step is confirmed two nights later.
//!   The pooled test's weakness, unequal spreads, matters little here: where the spread
//!   changes, something did change.
//! - The relaxed first threshold, because a window sees only part of each side: a real change
//!   can miss the strict threshold there and pass it once re-tested on all the points between
//!   its neighbours (Fleming et al.: "weak" change points, re-checked with the strict threshold).
//! - `p_value` 0.001 is Hunter's default. The t-test's p-value is for a split fixed in advance;
//!   the split tested is the best of many, so the real rate of false alarms is higher: it is
//!   measured by simulation in the tests below (about one false change point per 1,600 nights of
//!   a stationary series) and stated in docs/statistics.md.
//!
//! Two constant sides at different levels are a change (p = 0), at the same level not (p = 1):
//! a deterministic metric that moves has moved.

use serde::{Deserialize, Serialize};

use super::dist;

/// How the detector decides. Defaults: window 30 (Hunter's), p_value 0.001 (Hunter's), min_size 3.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// Points in each sliding window of the candidate search.
    pub window: usize,
    /// A change point is reported when its t-test's two-sided p-value is below this.
    pub p_value: f64,
    /// The fewest points either side of a change point (taken as 2 if below: a single point has
    /// no spread to judge it by). A window shorter than twice this finds nothing.
    pub min_size: usize,
}

impl Default for Detector {
    fn default() -> Detector {
        Detector {
            window: 30,
            p_value: 0.001,
            min_size: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePoint {
    /// Index into the series of the first point after the change.
    pub index: usize,
    /// Mean of the segment before and after (the points between the neighbouring change
    /// points, or the series' ends, used by the final test).
    pub before: f64,
    pub after: f64,
    /// The t-test's two-sided p-value.
    pub p: f64,
}

impl ChangePoint {
    pub fn change(&self) -> f64 {
        self.after - self.before
    }

    /// The change relative to the level before: `(after − before) / |before|`; `None` from 0.
    pub fn relative(&self) -> Option<f64> {
        (self.before != 0.0).then(|| self.change() / self.before.abs())
    }
}

impl Detector {
    /// Change points of one series, in index order. The caller splits series at markers (a golden-set
    /// or model change) and calls this on each segment, so a change is never found across a marker.
    /// Non-finite values are ignored (skipped, indices still refer to the input slice).
    pub fn detect(&self, series: &[f64]) -> Vec<ChangePoint> {
        self.detect_with(series, student)
    }

    /// `detect` with another two-sample test in place of Student's (the tests compare Welch's).
    fn detect_with(&self, series: &[f64], test: TwoSample) -> Vec<ChangePoint> {
        let (values, at): (Vec<f64>, Vec<usize>) = series
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (v, i))
            .unzip();
        let candidates = self.candidates(&values, test);
        self.retest(&values, candidates, test)
            .into_iter()
            .map(|c| ChangePoint {
                index: at[c.index],
                ..c
            })
            .collect()
    }

    fn min_size(&self) -> usize {
        self.min_size.max(2)
    }

    /// Hunter's first-pass threshold: ten times the final one, less relaxed near 0.5
    /// (`compute_change_points` in otava/analysis.py).
    fn relaxed_p_value(&self) -> f64 {
        let p = self.p_value;
        if p < 0.05 {
            p * 10.0
        } else if p < 0.5 {
            p * 2.0
        } else {
            p
        }
    }

    /// The split step: the union, in index order, of the change points E-divisive finds in each
    /// half-overlapping window at the relaxed threshold.
    fn candidates(&self, x: &[f64], test: TwoSample) -> Vec<usize> {
        let step = (self.window / 2).max(1);
        let mut found = Vec::new();
        let mut start = 0;
        while start < x.len() {
            let end = (start + self.window).min(x.len());
            let new: Vec<usize> = self
                .divide(&x[start..end], test)
                .into_iter()
                .map(|i| i + start)
                .collect();
            for &i in &new {
                if !found.contains(&i) {
                    found.push(i);
                }
            }
            if end == x.len() {
                break;
            }
            // The next window starts at the last change found, if that is further on: the
            // points before it belong to an earlier level and would only dilute the next search.
            start = new.last().map_or(0, |&i| i).max(start + step);
        }
        found.sort_unstable();
        found
    }

    /// E-divisive means within one window: cut at the best split of any segment while the cut
    /// passes the relaxed t-test. Indices are into `w`, in order.
    fn divide(&self, w: &[f64], test: TwoSample) -> Vec<usize> {
        let d = Distances::new(w);
        let mut cuts: Vec<usize> = Vec::new();
        loop {
            let mut bounds = Vec::with_capacity(cuts.len() + 2);
            bounds.push(0);
            bounds.extend_from_slice(&cuts);
            bounds.push(w.len());
            // The best split of any segment; the first of equals (`max_by` keeps the last).
            let best = bounds
                .windows(2)
                .filter_map(|b| d.best_split(b[0], b[1], self.min_size()).map(|s| (s, b)))
                .rev()
                .max_by(|x, y| x.0.1.total_cmp(&y.0.1));
            let Some(((tau, _), b)) = best else {
                return cuts;
            };
            if !significant(test(&w[b[0]..tau], &w[tau..b[1]]).p, self.relaxed_p_value()) {
                return cuts;
            }
            let at = cuts.partition_point(|&c| c < tau);
            cuts.insert(at, tau);
        }
    }

    /// The merge step: test every candidate between its neighbours, drop the weakest failing one,
    /// re-test the two it bordered, until all pass.
    fn retest(&self, x: &[f64], mut cuts: Vec<usize>, test: TwoSample) -> Vec<ChangePoint> {
        let mut tested: Vec<ChangePoint> = (0..cuts.len())
            .map(|k| self.test_cut(x, &cuts, k, test))
            .collect();
        loop {
            // The first of the largest p-values (`max_by` keeps the last of equals).
            let weakest = tested
                .iter()
                .enumerate()
                .rev()
                .max_by(|a, b| a.1.p.total_cmp(&b.1.p));
            let Some((k, _)) = weakest.filter(|(_, c)| !significant(c.p, self.p_value)) else {
                return tested;
            };
            cuts.remove(k);
            tested.remove(k);
            for j in [k.wrapping_sub(1), k] {
                if j < cuts.len() {
                    tested[j] = self.test_cut(x, &cuts, j, test);
                }
            }
        }
    }

    /// The t-test of cut `k` against the points between its neighbouring cuts (or the ends).
    fn test_cut(&self, x: &[f64], cuts: &[usize], k: usize, test: TwoSample) -> ChangePoint {
        let tau = cuts[k];
        let low = if k == 0 { 0 } else { cuts[k - 1] };
        let high = cuts.get(k + 1).copied().unwrap_or(x.len());
        let (before, after) = (&x[low..tau], &x[tau..high]);
        let sides = test(before, after);
        let too_short = before.len() < self.min_size() || after.len() < self.min_size();
        ChangePoint {
            index: tau,
            before: sides.before,
            after: sides.after,
            p: if too_short { 1.0 } else { sides.p },
        }
    }
}

/// Whether `p` is below the threshold; a NaN on either side is not.
fn significant(p: f64, threshold: f64) -> bool {
    p < threshold
}

/// Running sums of the distances |x_i − x_j| within one window, from which E-divisive's
/// divergence of any split comes in O(1): `upto[a·n + j] = Σ_{i<a} |x_i − x_j|`.
struct Distances {
    n: usize,
    upto: Vec<f64>,
}

impl Distances {
    fn new(x: &[f64]) -> Distances {
        let n = x.len();
        let mut upto = vec![0.0; (n + 1) * n];
        for a in 0..n {
            for j in 0..n {
                upto[(a + 1) * n + j] = upto[a * n + j] + (x[a] - x[j]).abs();
            }
        }
        Distances { n, upto }
    }

    /// Σ_{from<=i<to} |x_i − x_j|.
    fn sum(&self, from: usize, to: usize, j: usize) -> f64 {
        self.upto[to * self.n + j] - self.upto[from * self.n + j]
    }

    /// The split τ of `[start, end)` and its divergence, maximised over τ and the right end κ
    /// (Matteson & James 2014), both sides at least `min` points:
    /// `Q = 2/(n+m)·Σ|X−Y| − 2m/((n+m)(n−1))·Σ_{i<k}|X_i−X_k| − 2n/((n+m)(m−1))·Σ_{j<k}|Y_j−Y_k|`
    /// with X = x[start..τ] (n points) and Y = x[τ..κ] (m points).
    fn best_split(&self, start: usize, end: usize, min: usize) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        if end < start + 2 * min {
            return None;
        }
        // Within-X distances, grown one point at a time as τ moves right.
        let mut within_x: f64 = (start..start + min).map(|k| self.sum(start, k, k)).sum();
        for tau in start + min..=end - min {
            if tau > start + min {
                within_x += self.sum(start, tau - 1, tau - 1);
            }
            let n = (tau - start) as f64;
            let (mut between, mut within_y) = (0.0, 0.0);
            for j in tau..end {
                between += self.sum(start, tau, j);
                within_y += self.sum(tau, j, j);
                let m = (j + 1 - tau) as f64;
                if j + 1 - tau < min {
                    continue;
                }
                let q = 2.0 / (n + m) * between
                    - 2.0 * m / ((n + m) * (n - 1.0)) * within_x
                    - 2.0 * n / ((n + m) * (m - 1.0)) * within_y;
                if best.is_none_or(|(_, b)| q > b) {
                    best = Some((tau, q));
                }
            }
        }
        best
    }
}

/// A two-sample test's result: the two means and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sides {
    before: f64,
    after: f64,
    p: f64,
}

type TwoSample = fn(&[f64], &[f64]) -> Sides;

/// Below this relative size, a difference of means or a standard error is rounding: n copies of
/// 0.8 average to 0.8 only to within an ulp or so.
const ROUNDING: f64 = 1e-9;

/// Student's two-sample t-test with the pooled variance, two-sided (df = n_a + n_b − 2).
fn student(a: &[f64], b: &[f64]) -> Sides {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let df = na + nb - 2.0;
    t_test(a, b, |va, vb| {
        let pooled = ((na - 1.0) * va + (nb - 1.0) * vb) / df;
        (pooled * (1.0 / na + 1.0 / nb), df)
    })
}

/// A two-sided t-test of the difference of means, given the squared standard error and degrees
/// of freedom as functions of the two variances. Sides with no spread: p = 0 when their means
/// differ, 1 when they do not. A side with fewer than two points: p = 1.
fn t_test(a: &[f64], b: &[f64], se2_df: impl Fn(f64, f64) -> (f64, f64)) -> Sides {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let mut sides = Sides {
        before: ma,
        after: mb,
        p: 1.0,
    };
    if a.len() < 2 || b.len() < 2 {
        return sides;
    }
    let (se2, df) = se2_df(va, vb);
    let se = se2.sqrt();
    let diff = mb - ma;
    let scale = ma.abs().max(mb.abs());
    sides.p = if diff.abs() <= ROUNDING * scale {
        1.0
    } else if se <= ROUNDING * scale {
        0.0
    } else {
        (2.0 * dist::student_t_cdf(-(diff / se).abs(), df)).min(1.0)
    };
    sides
}

/// Mean and unbiased variance (NaN variance for fewer than two points).
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let ss: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (n - 1.0))
}

#[cfg(test)]
mod tests {
    use super::super::simulation::{normal, rng};
    use super::*;

    /// Welch's unequal-variances t-test, with Welch–Satterthwaite degrees of freedom: the
    /// alternative to Student's that the false-alarm simulation measures.
    fn welch(a: &[f64], b: &[f64]) -> Sides {
        let (na, nb) = (a.len() as f64, b.len() as f64);
        t_test(a, b, |va, vb| {
            let (sa, sb) = (va / na, vb / nb);
            let df = (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
            (sa + sb, df)
        })
    }

    /// Two standard errors of a rate estimated from `reps` replications.
    fn sim_err(rate: f64, reps: usize) -> f64 {
        2.0 * (rate * (1.0 - rate) / reps as f64).sqrt()
    }

    fn share(hits: usize, reps: usize) -> f64 {
        hits as f64 / reps as f64
    }

    /// P[K <= k] for K ~ Binomial(200, 0.85), k = 0..=200.
    static ACCURACY_CDF: std::sync::LazyLock<Vec<f64>> = std::sync::LazyLock::new(|| {
        (0..=200)
            .map(|k| dist::binomial_cdf(k, 200, 0.85))
            .collect()
    });

    /// A night's accuracy over a 200-item golden set with true accuracy 0.85: Binomial(200,
    /// 0.85)/200, drawn by inverting its CDF (one uniform a night, not 200).
    fn accuracy(rng: &mut fastrand::Rng) -> f64 {
        let u = rng.f64();
        ACCURACY_CDF.partition_point(|&c| c < u) as f64 / 200.0
    }

    /// The nightly noise of a simulated series.
    #[derive(Debug, Clone, Copy)]
    enum Noise {
        /// Accuracy over 200 items at 0.85: Binomial(200, 0.85)/200, sd 0.0252.
        Accuracy,
        /// Standard normal.
        Gaussian,
    }

    impl Noise {
        const SD_ACCURACY: f64 = 0.025_248_762_345_905_19; // sqrt(0.85 · 0.15 / 200)

        fn series(self, rng: &mut fastrand::Rng, nights: usize) -> Vec<f64> {
            (0..nights)
                .map(|_| match self {
                    Noise::Accuracy => accuracy(rng),
                    Noise::Gaussian => normal(rng),
                })
                .collect()
        }

        /// The series with its level moved by `sds` noise standard deviations from `night` on.
        fn stepped(
            self,
            rng: &mut fastrand::Rng,
            nights: usize,
            night: usize,
            sds: f64,
        ) -> Vec<f64> {
            let sd = match self {
                Noise::Accuracy => Noise::SD_ACCURACY,
                Noise::Gaussian => 1.0,
            };
            let mut x = self.series(rng, nights);
            for v in &mut x[night..] {
                *v -= sds * sd;
            }
            x
        }
    }

    #[test]
    fn empty_and_short_series_have_no_change_points() {
        let d = Detector::default();
        assert!(d.detect(&[]).is_empty());
        assert!(d.detect(&[0.8]).is_empty());
        assert!(d.detect(&[0.8, 0.2]).is_empty());
        // Five points cannot have three on each side of a change, however clear it is.
        assert!(d.detect(&[0.9, 0.9, 0.1, 0.1, 0.1]).is_empty());
        assert!(d.detect(&[f64::NAN; 40]).is_empty());
    }

    #[test]
    fn a_clean_step_is_found_where_it_happens() {
        let mut rng = rng(10);
        let x: Vec<f64> = (0..40)
            .map(|i| if i < 20 { 0.8 } else { 0.6 } + 1e-3 * normal(&mut rng))
            .collect();
        let found = Detector::default().detect(&x);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c.index, 20);
        assert!(
            (c.before - 0.8).abs() < 1e-3 && (c.after - 0.6).abs() < 1e-3,
            "{c:?}"
        );
        assert!(c.p < 1e-10, "{c:?}");
        assert!((c.change() + 0.2).abs() < 2e-3);
        assert!((c.relative().unwrap() + 0.25).abs() < 3e-3);
    }

    #[test]
    fn constant_sides_change_only_when_their_levels_differ() {
        let d = Detector::default();
        let step: Vec<f64> = [vec![0.8; 20], vec![0.6; 20]].concat();
        let found = d.detect(&step);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].index, found[0].p), (20, 0.0));
        // n copies of 0.8 do not all average to the same last bit; that is not a change.
        assert!(d.detect(&[0.8; 365]).is_empty());
        assert!(d.detect(&vec![0.1 + 0.2; 100]).is_empty());
    }

    #[test]
    fn two_steps_are_both_found() {
        let x: Vec<f64> = (0..60)
            .map(|i| match i {
                0..20 => 0.8,
                20..40 => 0.6,
                _ => 0.7,
            } + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let found: Vec<usize> = Detector::default()
            .detect(&x)
            .iter()
            .map(|c| c.index)
            .collect();
        assert_eq!(found, vec![20, 40]);
    }

    #[test]
    fn non_finite_values_are_skipped_and_indices_refer_to_the_input() {
        let mut x: Vec<f64> = [vec![0.8; 20], vec![0.6; 20]].concat();
        x.insert(20, f64::NAN);
        x.insert(5, f64::INFINITY);
        x.insert(0, f64::NEG_INFINITY);
        // Now: -inf, 5 × 0.8, inf, 15 × 0.8, NaN, 20 × 0.6; the first 0.6 is at 1 + 5 + 1 + 15 + 1.
        let found = Detector::default().detect(&x);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 23);
        let c = &found[0];
        assert!(
            (c.before - 0.8).abs() < 1e-12 && (c.after - 0.6).abs() < 1e-12,
            "{c:?}"
        );
    }

    #[test]
    fn relative_change_is_undefined_from_zero() {
        let c = ChangePoint {
            index: 3,
            before: 0.0,
            after: 0.5,
            p: 0.0,
        };
        assert_eq!(c.relative(), None);
        let c = ChangePoint { before: -2.0, ..c };
        assert_eq!(c.relative(), Some(1.25));
    }

    #[test]
    fn the_divergence_is_matteson_and_james_by_brute_force() {
        let mut rng = rng(11);
        let x: Vec<f64> = (0..24)
            .map(|i| normal(&mut rng) + f64::from(i / 12))
            .collect();
        let pairs = |a: &[f64], b: &[f64]| -> f64 {
            a.iter()
                .map(|u| b.iter().map(|v| (u - v).abs()).sum::<f64>())
                .sum()
        };
        let within = |a: &[f64]| pairs(a, a) / 2.0;
        let d = Distances::new(&x);
        for (start, end, min) in [(0, 24, 3), (5, 19, 2), (0, 6, 3)] {
            let mut best: Option<(usize, f64)> = None;
            for tau in start + min..=end - min {
                for kappa in tau + min..=end {
                    let (a, b) = (&x[start..tau], &x[tau..kappa]);
                    let (n, m) = (a.len() as f64, b.len() as f64);
                    let e = 2.0 * pairs(a, b) / (n * m)
                        - within(a) / (n * (n - 1.0) / 2.0)
                        - within(b) / (m * (m - 1.0) / 2.0);
                    let q = n * m / (n + m) * e;
                    if best.is_none_or(|(_, b)| q > b) {
                        best = Some((tau, q));
                    }
                }
            }
            let (tau, q) = best.unwrap();
            let (fast_tau, fast_q) = d.best_split(start, end, min).unwrap();
            assert_eq!(fast_tau, tau, "[{start}, {end})");
            assert!(
                (fast_q - q).abs() < 1e-9 * q.abs(),
                "[{start}, {end}): {fast_q} vs {q}"
            );
        }
        assert_eq!(d.best_split(0, 5, 3), None);
    }

    #[test]
    fn t_tests_match_a_reference_computation() {
        // t and df by hand, p = I_{df/(df+t²)}(df/2, 1/2) in 30-digit arithmetic (mpmath 1.3.0
        // betainc). Student's: t = 5.67423, df = 9, p = 3.04084032506e-4. Welch's: t = 5.54719,
        // df = 7.63952, p = 6.37672041081e-4.
        let (a, b) = (
            [19.1, 20.4, 18.9, 21.3, 20.0],
            [22.4, 23.1, 21.8, 24.0, 22.9, 23.5],
        );
        let s = student(&a, &b);
        assert!((s.p / 3.040_840_325_06e-4 - 1.0).abs() < 1e-9, "{s:?}");
        assert!((s.before - 19.94).abs() < 1e-12 && (s.after - 22.95).abs() < 1e-12);
        assert_eq!(student(&b, &a).p, s.p);
        let w = welch(&a, &b);
        assert!((w.p / 6.376_720_410_81e-4 - 1.0).abs() < 1e-9, "{w:?}");
    }

    // ---- Simulations -----------------------------------------------------------------------
    // Seeded; each prints what it measured (`cargo test --lib stats::changepoint -- --nocapture`).

    /// Bencher's `z_score` threshold as a series detector: each night from the `min`-th on is
    /// checked against the mean and sd of all nights before it, an alarm beyond `z` sds. The
    /// nights it alarms on.
    fn z_score_alarms(x: &[f64], min: usize, z: f64) -> Vec<usize> {
        (min..x.len())
            .filter(|&i| {
                let (m, v) = mean_var(&x[..i]);
                (x[i] - m).abs() > z * v.sqrt()
            })
            .collect()
    }

    /// Share of stationary series with at least one change point, and change points per 100
    /// nights, for `alarms` (the indices a detector flags) over `reps` series.
    fn false_alarms(
        noise: Noise,
        nights: usize,
        reps: usize,
        seed: u64,
        alarms: impl Fn(&[f64]) -> usize,
    ) -> (f64, f64) {
        let mut rng = rng(seed);
        let (mut series, mut points) = (0, 0);
        for _ in 0..reps {
            let k = alarms(&noise.series(&mut rng, nights));
            series += usize::from(k > 0);
            points += k;
        }
        (
            share(series, reps),
            100.0 * points as f64 / (reps * nights) as f64,
        )
    }

    /// Series lengths, series simulated, and the bound asserted on the share of those stationary
    /// series with a false change point. The detector's true rates, from 10,000 to 40,000
    /// series in a release build, are 0.013 (30 nights), 0.029 (90) and 0.118 (365), for
    /// accuracy and Gaussian noise alike: about 1 − (1 − 0.00035)^nights, one false change point
    /// per ~1,600 nights. Each bound is more than five standard errors of its simulation above
    /// that.
    const LENGTHS: [(usize, usize, f64); 3] = [(30, 2000, 0.03), (90, 1000, 0.06), (365, 500, 0.2)];

    /// The bound asserted on false change points per 100 nights, at any length; the true rate is
    /// 0.045 to 0.064.
    const PER_100_NIGHTS: f64 = 0.12;

    /// Stationary series of each length in `LENGTHS`: the share with a false change point and
    /// false change points per 100 nights, under their bounds; Welch's test in place of
    /// Student's raises more. (The witness that these bounds can fail is
    /// `naive_detectors_raise_far_more_false_alarms`.)
    fn check_false_alarms(noise: Noise, seed: u64) {
        let d = Detector::default();
        let mut failures = Vec::new();
        for (nights, reps, bound) in LENGTHS {
            let seed = seed + nights as u64;
            let t = std::time::Instant::now();
            let (series, per_100) = false_alarms(noise, nights, reps, seed, |x| d.detect(x).len());
            println!(
                "false alarms, {noise:?} {nights} nights ({reps} series, {:.2} ms each): \
                 {series:.4} ± {:.4} of series, {per_100:.3} per 100 nights",
                t.elapsed().as_secs_f64() * 1e3 / reps as f64,
                sim_err(series, reps),
            );
            if series > bound || per_100 > PER_100_NIGHTS {
                failures.push(format!("{noise:?} {nights}: {series:.4}, {per_100:.3}"));
            }
            if nights == 90 {
                // The same series through Welch's test in place of Student's: the reason
                // for Student's (module docs). Should this fail, that choice needs a look.
                let welch = |x: &[f64]| d.detect_with(x, welch).len();
                let (w_series, w_100) = false_alarms(noise, nights, reps, seed, welch);
                println!(
                    "  with Welch's t-test: {w_series:.4} of series, {w_100:.3} per 100 nights"
                );
                if w_series <= series {
                    failures.push(format!("{noise:?}: Welch's {w_series:.4} <= Student's"));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn false_alarms_on_stationary_accuracy_series() {
        check_false_alarms(Noise::Accuracy, 100);
    }

    #[test]
    fn false_alarms_on_stationary_gaussian_series() {
        check_false_alarms(Noise::Gaussian, 110);
    }

    /// What a detector made of series that drop by a step at one night.
    #[derive(Debug, Default)]
    struct StepFound {
        /// Series with any change point.
        found: usize,
        /// Series with a change point within 2 nights of the step.
        located: usize,
        /// Sum over found series of the distance from the step to the nearest change point.
        distance: usize,
        /// Sum over series of the nights of data after the step when it was first located
        /// (within 2 nights) in the series so far; the series' length + 1 if never.
        delay: usize,
        /// Series whose first Bencher-style z-score alarm (at 3.29 sd, two-sided p 0.001 like
        /// the detector's) is within 2 nights of the step.
        z_located: usize,
    }

    fn step_found(
        noise: Noise,
        sds: f64,
        reps: usize,
        seed: u64,
        nights: usize,
        night: usize,
    ) -> StepFound {
        let d = Detector::default();
        let mut rng = rng(seed);
        let mut f = StepFound::default();
        let near = |cps: &[ChangePoint]| cps.iter().map(|c| c.index.abs_diff(night)).min();
        for _ in 0..reps {
            let x = noise.stepped(&mut rng, nights, night, sds);
            if let Some(e) = near(&d.detect(&x)) {
                f.found += 1;
                f.distance += e;
                f.located += usize::from(e <= 2);
            }
            f.delay += (night + 1..=nights)
                .find(|&end| near(&d.detect(&x[..end])).is_some_and(|e| e <= 2))
                .map_or(nights + 1, |end| end)
                - night;
            let first = z_score_alarms(&x, d.min_size, 3.29).first().copied();
            f.z_located += usize::from(first.is_some_and(|i| i.abs_diff(night) <= 2));
        }
        f
    }

    /// A drop of 3 noise sds at night 25 of 40. Also reported, not asserted: a drop of 2 sds.
    /// Witness: a per-night z-score check held to the same p (Bencher's `z_score` at 3.29 sd)
    /// sees the first night after the step alone, and places the step far less often.
    #[test]
    fn a_three_sigma_step_is_found_and_located() {
        let (reps, nights, night) = (1000, 40, 25);
        for (seed, noise) in [Noise::Accuracy, Noise::Gaussian].into_iter().enumerate() {
            for sds in [3.0, 2.0] {
                let f = step_found(noise, sds, reps, 200 + seed as u64, nights, night);
                let (found, located, z_located) = (
                    share(f.found, reps),
                    share(f.located, reps),
                    share(f.z_located, reps),
                );
                println!(
                    "{sds}-sd drop at night {night} of {nights}, {noise:?} ({reps} series): \
                     found in {found:.4}, within 2 nights in {located:.4}, mean distance \
                     {:.3} nights, mean nights of data after the step until located {:.2}; \
                     witness z-score at 3.29 sd: first alarm within 2 nights in {z_located:.4}",
                    f.distance as f64 / f.found as f64,
                    f.delay as f64 / reps as f64,
                );
                if sds == 3.0 {
                    assert!(found >= 0.9, "{noise:?}: found {found:.4}");
                    assert!(located >= 0.9, "{noise:?}: located {located:.4}");
                    assert!(z_located < 0.9, "witness {noise:?}: z-score {z_located:.4}");
                }
            }
        }
    }

    #[test]
    fn naive_detectors_raise_far_more_false_alarms() {
        let (nights, reps, series_bound) = LENGTHS[1];
        let loose = Detector {
            p_value: 0.05,
            ..Detector::default()
        };
        let (loose_series, loose_100) = false_alarms(Noise::Accuracy, nights, reps, 300, |x| {
            loose.detect(x).len()
        });
        let (z_series, z_100) = false_alarms(Noise::Accuracy, nights, reps, 300, |x| {
            z_score_alarms(x, 3, 2.0).len()
        });
        println!(
            "witness false alarms, Accuracy {nights} nights ({reps} series): p < 0.05 \
             {loose_series:.4} of series, {loose_100:.3} per 100 nights; z-score at 2 sd \
             {z_series:.4} of series, {z_100:.3} per 100 nights"
        );
        assert!(
            loose_series > series_bound,
            "witness p < 0.05: {loose_series:.4}"
        );
        assert!(z_series > series_bound, "witness z-score: {z_series:.4}");
    }
}
