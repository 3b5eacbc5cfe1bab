//! Anytime-valid inference: confidence sequences, which hold at every sample size at once.
//!
//! A fixed-sample 95% interval looked at after every batch, stopping at the first look that
//! excludes the null, errs far more often than 5%: with a candidate exactly at a gate's margin,
//! looked at every 50 items up to 10,000, a paired t interval passed it in 24% of the simulated
//! runs and failed it in 21% (`stopping_at_the_margin` below). A confidence sequence (CS) `C_t`
//! instead satisfies `P(∃t: μ ∉ C_t) ≤ α`, so a run may stop at any look, chosen by what it saw,
//! and the stated error rate holds. Every sequence here is two-sided at `confidence`, α/2 per
//! side: used one-sidedly (pass when the lower bound clears the null) it errs at most α/2.
//!
//! **Means of observations in [0, 1]** ([`MeanSequence`]): the predictable plug-in
//! empirical-Bernstein CS of Waudby-Smith & Ramdas (2024), "Estimating means of bounded random
//! variables by betting", JRSS-B 86(1), Theorem 2 with eqs. (13)–(15):
//!
//! ```text
//! μ̂_t  = (1/2 + Σ_{i≤t} x_i) / (t + 1)          σ̂²_t = (1/4 + Σ_{i≤t} (x_i − μ̂_i)²) / (t + 1)
//! λ_t  = min( sqrt(2 log(2/α) / (σ̂²_{t−1} · t · log(1 + t))), c ),  c = 1/2
//! v_i  = 4 (x_i − μ̂_{i−1})²                       ψ_E(λ) = (−log(1 − λ) − λ) / 4
//! C_t  = Σ λ_i x_i / Σ λ_i  ±  (log(2/α) + Σ v_i ψ_E(λ_i)) / Σ λ_i
//! ```
//!
//! cut to [0, 1] and intersected with every earlier `C_s` (the running intersection is a CS too,
//! and it never widens). λ, σ̂² and ψ are as in the authors' reference code (`confseq`,
//! `betting_strategies.py::lambda_predmix_eb`, `predmix.py`, each side at α/2; it centres v on
//! the plain running mean, the paper on μ̂, as here). Each observation costs O(1).
//!
//! Their tighter hedged-capital CS (Theorem 3: per candidate mean `m` a capital
//! `max(½K⁺_t(m), ½K⁻_t(m))`, `K^±_t(m) = Π (1 ± λ^±_i(m)(x_i − m))`, the CS being the `m` where it
//! stays below 1/α) was measured against it on the gate's own case (`items_used_to_decide`:
//! paired binary items, `candidate ≥ 0.95 × current`, batches of 50 up to 10,000 items). It
//! decides with 6% fewer items for equal models (877 against 935), 19% fewer for a candidate 10
//! points worse (520 against 645) and 80 fewer (1.6 batches) for one 5 points better, and spends
//! more of α at the margin (false pass 2.1% against 0.8%, both within 2.5%). It is not used:
//! its interval needs a grid of candidate means (1,000, each with a capital updated at every
//! observation while inside the interval: tens of times the work of this closed form, with the
//! bounds rounded outwards to the grid), and the runner rebuilds a gate's sequence from its
//! items at every look.
//!
//! **Quantiles** ([`quantile_sequence`]): Howard & Ramdas (2022), "Sequential estimation of
//! quantiles with applications to A/B-testing and best-arm identification", Bernoulli 28(3),
//! Theorem 1. At the true p-quantile `q`, the count of observations below `q` is a sum of
//! Bernoulli(≤ p) indicators, so a time-uniform boundary `u_t` for the centred Bernoulli(p) walk
//! (crossed with probability ≤ α/2) gives, for the sorted observations `x_(1) ≤ … ≤ x_(t)`,
//!
//! ```text
//! q ≥ x_(j), j = ⌊tp − u⁻_t⌋ + 1  (−∞ when j < 1)      q ≤ x_(k), k = ⌈tp + u⁺_t⌉  (+∞ when k > t)
//! ```
//!
//! for every `t` at once, for any distribution (ties included). The boundary is the polynomial
//! stitching of Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
//! nonasymptotic confidence sequences", Ann. Statist. 49(2), Theorem 1, for a sub-gamma process
//! with variance `V_t = p(1 − p)t` and scale `c` (a centred Bernoulli is sub-Bernoulli, hence
//! sub-gamma with `c = (h − g)/3`: `(1 − 2p)/3` for the count above, `(2p − 1)/3` below, taken
//! as 0 when negative), with η = 2, s = 1.4, m = p(1 − p):
//!
//! ```text
//! u_t = sqrt(k₁² V_t ℓ(V_t) + k₂² c² ℓ(V_t)²) + c k₂ ℓ(V_t)
//! ℓ(v) = s log log(η v / m) + log(ζ(s) / ((α/2) log^s η)),  k₁ = (η^¼ + η^−¼)/√2,  k₂ = (√η + 1)/2
//! ```
//!
//! (the constants as in the authors' `confseq`, `uniform_boundaries.h`, `PolyStitchingBound`).
//! Its width follows `sqrt(p(1 − p))`, which is what makes tail percentiles usable: at 95% the
//! p95's upper bound is finite from 311 latencies and the p99's from 1,687, where the
//! time-uniform DKW band of the same paper (Theorem 2: `sup_x |F̂_t(x) − F(x)| ≤ 0.85 sqrt((log
//! log(et) + 0.8 log(1612/α))/t)` for all t, every quantile at once) needs 3,036 and 78,114
//! (`quantile_sequence_covers_at_every_time` prints both; a fixed-sample interval needs 72 and
//! 368). The function is stateless: valid at every `t`, and a caller may intersect its
//! intervals over the looks.
//!
//! The ratio of two models' quantiles ([`ratio_interval`]) combines a sequence for each at
//! `(1 + confidence)/2`: by Bonferroni both hold at once with probability ≥ `confidence`,
//! whatever the dependence between the two models' latencies.
//!
//! Checked by simulation in this module's tests (seeded; `cargo test --lib stats::sequential --
//! --nocapture` prints every figure), each with a fixed-sample witness that fails the same check.

use super::Interval;

/// λ's cap `c` (Waudby-Smith & Ramdas suggest 1/2 or 3/4): bets stay small while the
/// variance estimate rests on a few observations.
const TRUNCATION: f64 = 0.5;

/// A confidence sequence for the mean of observations in [0, 1], valid at every time at once:
/// Waudby-Smith & Ramdas's predictable plug-in empirical-Bernstein CS (module docs), with its
/// running intersection. Callers rescale: a paired difference `d = c − r·b` of values in [0, 1]
/// lies in [−r, 1] and enters as `(d + r)/(1 + r)`; map the interval back with
/// [`Interval::map`]. The guarantee needs the observations in an order fixed without looking at
/// them (i.i.d. draws, or items in a seeded random order).
#[derive(Debug, Clone)]
pub struct MeanSequence {
    /// log(2/α): each side of the two-sided sequence spends α/2.
    log_two_over_alpha: f64,
    n: usize,
    /// Σ x_i and Σ (x_i − μ̂_i)²: the regularised running mean and variance (eq. 14).
    sum: f64,
    squares: f64,
    /// Σ λ_i, Σ λ_i x_i and Σ v_i ψ_E(λ_i).
    bets: f64,
    weighted: f64,
    penalty: f64,
    running: Interval,
}

impl MeanSequence {
    /// A two-sided sequence at `confidence` (in (0, 1), e.g. 0.95).
    pub fn new(confidence: f64) -> MeanSequence {
        MeanSequence {
            log_two_over_alpha: (2.0 / (1.0 - confidence)).ln(),
            n: 0,
            sum: 0.0,
            squares: 0.0,
            bets: 0.0,
            weighted: 0.0,
            penalty: 0.0,
            running: Interval::new(0.0, 1.0),
        }
    }

    /// The next observation, clamped to [0, 1]; NaN is ignored.
    pub fn push(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        let x = x.clamp(0.0, 1.0);
        let t = (self.n + 1) as f64;
        // μ̂_{t−1} and σ̂²_{t−1}: from the observations before this one only (predictable).
        let mean_before = (0.5 + self.sum) / t;
        let var_before = (0.25 + self.squares) / t;
        let bet = (2.0 * self.log_two_over_alpha / (var_before * t * t.ln_1p()))
            .sqrt()
            .min(TRUNCATION);
        let v = 4.0 * (x - mean_before).powi(2);
        let psi = (-(-bet).ln_1p() - bet) / 4.0;
        self.bets += bet;
        self.weighted += bet * x;
        self.penalty += v * psi;
        self.n += 1;
        self.sum += x;
        self.squares += (x - (0.5 + self.sum) / (t + 1.0)).powi(2);

        let centre = self.weighted / self.bets;
        let half = (self.log_two_over_alpha + self.penalty) / self.bets;
        let low = self.running.low.max(centre - half);
        let high = self.running.high.min(centre + half);
        // Disjoint bounds (probability ≤ α, and evidence the order was not random) would make an
        // empty interval; the point between them is reported instead.
        self.running = if low <= high {
            Interval::new(low, high)
        } else {
            let mid = (low + high) / 2.0;
            Interval::new(mid, mid)
        };
    }

    /// The current sequence (the running intersection); [0, 1] before any observation.
    pub fn interval(&self) -> Interval {
        self.running
    }

    /// Observations so far.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Where a sequence stands against a null value: wholly above it, wholly below, or across.
/// A run may stop at the first look that is not `Undecided`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Above,
    Below,
    Undecided,
}

impl Decision {
    /// `Above` when the whole interval is above `null`, `Below` when it is all below (a bound
    /// equal to the null decides nothing).
    pub fn of(interval: Interval, null: f64) -> Decision {
        if interval.low > null {
            Decision::Above
        } else if interval.high < null {
            Decision::Below
        } else {
            Decision::Undecided
        }
    }
}

/// ζ(1.4), for the stitched boundary's ℓ.
const ZETA_S: f64 = 3.105_547_277_977_58;
/// Stitching's epoch growth η and its exponent s (Howard et al. 2021's example choices).
const ETA: f64 = 2.0;
const S: f64 = 1.4;

/// The polynomial stitched boundary of Howard et al. (2021), Theorem 1: a sub-gamma process with
/// variance process `v` (at least `m`) and scale `c` (negative taken as 0) crosses it at some time
/// with probability at most `alpha`.
fn stitched_boundary(v: f64, m: f64, c: f64, alpha: f64) -> f64 {
    let v = v.max(m);
    let c = c.max(0.0);
    let ell = S * (ETA * v / m).ln().ln() + (ZETA_S / (alpha * ETA.ln().powf(S))).ln();
    let k1 = (ETA.powf(0.25) + ETA.powf(-0.25)) / std::f64::consts::SQRT_2;
    let k2 = (ETA.sqrt() + 1.0) / 2.0;
    (k1 * k1 * v * ell + (k2 * c * ell).powi(2)).sqrt() + c * k2 * ell
}

/// A time-uniform confidence sequence for the `p`-quantile (0 < p < 1) of the distribution the
/// observations come from, given them sorted ascending (no NaN): Howard & Ramdas (2022) with a
/// stitched boundary (module docs). A side whose order statistic falls outside the data is
/// infinite: at 95% the p99's upper bound needs 1,687 observations. Unbounded with no data.
pub fn quantile_sequence(sorted: &[f64], p: f64, confidence: f64) -> Interval {
    quantile_sequence_by_rank(sorted.len() as u64, p, confidence, |rank| {
        sorted[rank as usize - 1]
    })
}

/// [`quantile_sequence`] over observations reached by rank (from 1, ascending): a sorted slice,
/// or a histogram's counted values.
pub fn quantile_sequence_by_rank(
    n: u64,
    p: f64,
    confidence: f64,
    at_rank: impl Fn(u64) -> f64,
) -> Interval {
    let alpha = (1.0 - confidence) / 2.0;
    if n == 0 || p.is_nan() || p <= 0.0 || p >= 1.0 || alpha.is_nan() || alpha <= 0.0 {
        return Interval::UNBOUNDED;
    }
    let t = n as f64;
    let m = p * (1.0 - p);
    // Against too many observations below q (the upper bound): the centred count of them moves
    // up by 1 − p, down by p.
    let above = stitched_boundary(m * t, m, (1.0 - 2.0 * p) / 3.0, alpha);
    // Against too few at or below q (the lower bound): its shortfall moves up by p.
    let below = stitched_boundary(m * t, m, (2.0 * p - 1.0) / 3.0, alpha);
    let j = (t * p - below).floor() + 1.0;
    let k = (t * p + above).ceil();
    Interval::new(
        if j >= 1.0 {
            at_rank(j as u64)
        } else {
            f64::NEG_INFINITY
        },
        if k <= t {
            at_rank((k as u64).max(1))
        } else {
            f64::INFINITY
        },
    )
}

/// The interval of `num / den` for two positive quantities (latency percentiles) from an
/// interval of each. Each at `(1 + confidence)/2` gives the ratio at `confidence` (Bonferroni;
/// no independence needed). A lower bound at or below 0 (or −∞) counts as 0, so an unbounded
/// denominator gives a lower bound of 0 and a denominator that may be 0 an upper bound of +∞.
pub fn ratio_interval(num: Interval, den: Interval) -> Interval {
    let (num_low, den_low) = (num.low.max(0.0), den.low.max(0.0));
    Interval::new(
        if den.high > 0.0 {
            num_low / den.high
        } else {
            0.0
        },
        if den_low > 0.0 {
            num.high / den_low
        } else {
            f64::INFINITY
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::simulation::{cells, draw_pair, normal, rng, share, sim_err};
    use crate::stats::{MeanEstimate, dist, t_interval, wilson};

    const CONF: f64 = 0.95;
    const ALPHA: f64 = 0.05;

    /// One draw from a distribution under test.
    type Draw<'a> = &'a dyn Fn(&mut fastrand::Rng) -> f64;

    /// Running sums of a sample, for the fixed-sample witnesses' mean and standard error.
    #[derive(Default)]
    struct Sums {
        n: f64,
        sum: f64,
        squares: f64,
    }

    impl Sums {
        fn push(&mut self, x: f64) {
            self.n += 1.0;
            self.sum += x;
            self.squares += x * x;
        }

        fn mean(&self) -> f64 {
            self.sum / self.n
        }

        /// The textbook t interval of the mean, `super::t_interval`.
        fn t_interval(&self) -> Interval {
            let mean = self.mean();
            let var = ((self.squares - self.n * mean * mean) / (self.n - 1.0)).max(0.0);
            let e = MeanEstimate {
                mean,
                se: (var / self.n).sqrt(),
                n: self.n,
                clusters: self.n as usize,
            };
            t_interval(&e, CONF)
        }
    }

    /// The sequence written out from the paper's formulas over the whole sample at each time
    /// (no running sums), against the incremental one.
    #[test]
    fn mean_sequence_is_the_published_formula() {
        let xs = [0.2, 0.9, 0.4, 1.0, 0.0, 0.7, 0.7, 0.55, 0.3, 1.0];
        let a = (2.0 / ALPHA).ln();
        let mu = |k: usize| (0.5 + xs[..k].iter().sum::<f64>()) / (k as f64 + 1.0);
        let var = |k: usize| {
            (0.25 + (1..=k).map(|i| (xs[i - 1] - mu(i)).powi(2)).sum::<f64>()) / (k as f64 + 1.0)
        };
        let mut seq = MeanSequence::new(CONF);
        assert_eq!(seq.interval(), Interval::new(0.0, 1.0));
        assert!(seq.is_empty());
        let (mut low, mut high) = (0.0f64, 1.0f64);
        for t in 1..=xs.len() {
            let lambda = |i: usize| {
                let i_f = i as f64;
                (2.0 * a / (var(i - 1) * i_f * (1.0 + i_f).ln()))
                    .sqrt()
                    .min(0.5)
            };
            let psi = |l: f64| (-(1.0 - l).ln() - l) / 4.0;
            // The first bet is the cap: sqrt(2·log 40 / (¼ · 1 · log 2)) ≈ 6.5 > ½.
            assert_eq!(lambda(1), 0.5);
            let sl: f64 = (1..=t).map(lambda).sum();
            let slx: f64 = (1..=t).map(|i| lambda(i) * xs[i - 1]).sum();
            let svp: f64 = (1..=t)
                .map(|i| 4.0 * (xs[i - 1] - mu(i - 1)).powi(2) * psi(lambda(i)))
                .sum();
            low = low.max(slx / sl - (a + svp) / sl);
            high = high.min(slx / sl + (a + svp) / sl);
            seq.push(xs[t - 1]);
            let got = seq.interval();
            assert!(
                (got.low - low).abs() < 1e-12 && (got.high - high).abs() < 1e-12,
                "t={t}: {got:?} vs [{low}, {high}]"
            );
        }
        assert_eq!(seq.len(), xs.len());
        // Inputs are clamped, NaN skipped; the interval never widens.
        let mut seq = MeanSequence::new(CONF);
        let mut previous = seq.interval();
        for (i, x) in [1.7, -0.3, f64::NAN, 0.5, 0.5, 0.5]
            .into_iter()
            .cycle()
            .take(600)
            .enumerate()
        {
            seq.push(x);
            let now = seq.interval();
            assert!(
                now.low >= previous.low && now.high <= previous.high,
                "{i}: {now:?}"
            );
            previous = now;
        }
        assert_eq!(seq.len(), 500);
        assert!(previous.contains(0.5) && previous.high - previous.low < 0.5);
    }

    /// Truth: i.i.d. observations with a known mean, up to 2,000 of them, looked at after every
    /// batch of 50. Time-uniform coverage: the share of paths on which the sequence ever misses
    /// the mean is at most α. Witness: the fixed-sample interval (Wilson for proportions, t
    /// for the skewed scores) checked at the same looks misses on far more paths.
    #[test]
    fn mean_sequence_covers_at_every_time() {
        let (reps, n, batch) = (1000, 2000, 50);
        let bernoulli = |p: f64| move |r: &mut fastrand::Rng| f64::from(u8::from(r.f64() < p));
        // A 1–5 score piled up near 5 (5 − 4·U³, as `simulation.rs`'s), scaled to [0, 1].
        let skewed = |r: &mut fastrand::Rng| 1.0 - r.f64().powi(3);
        // (name, mean, draw, whether the witness is Wilson's interval (proportions) or t's)
        let cases: [(&str, f64, Draw, bool); 3] = [
            ("Bernoulli(0.5)", 0.5, &bernoulli(0.5), true),
            ("Bernoulli(0.05)", 0.05, &bernoulli(0.05), true),
            ("skewed 1 - U^3", 0.75, &skewed, false),
        ];
        let mut rng = rng(31);
        for (name, truth, draw, proportion) in cases {
            let (mut cs_misses, mut fixed_misses) = (0, 0);
            let (mut cs_width, mut fixed_width) = (0.0, 0.0);
            for _ in 0..reps {
                let mut seq = MeanSequence::new(CONF);
                let mut sums = Sums::default();
                let (mut cs_missed, mut fixed_missed) = (false, false);
                let mut fixed = Interval::UNBOUNDED;
                for _ in 0..n / batch {
                    for _ in 0..batch {
                        let x = draw(&mut rng);
                        seq.push(x);
                        sums.push(x);
                    }
                    fixed = if proportion {
                        wilson(sums.mean(), sums.n, CONF)
                    } else {
                        sums.t_interval()
                    };
                    cs_missed |= !seq.interval().contains(truth);
                    fixed_missed |= !fixed.contains(truth);
                }
                cs_misses += usize::from(cs_missed);
                fixed_misses += usize::from(fixed_missed);
                cs_width += seq.interval().high - seq.interval().low;
                fixed_width += fixed.high - fixed.low;
            }
            let (cs, fixed) = (share(cs_misses, reps), share(fixed_misses, reps));
            eprintln!(
                "mean_sequence_covers_at_every_time {name}: ever missed by the sequence {cs:.4}, \
                 by the fixed-sample interval {fixed:.4} (±{:.4}); width at n={n}: sequence {:.4}, \
                 fixed {:.4}",
                sim_err(ALPHA, reps),
                cs_width / reps as f64,
                fixed_width / reps as f64
            );
            assert!(cs <= ALPHA, "{name}: time-uniform miss rate {cs:.4}");
            assert!(
                fixed > 0.10,
                "witness {name}: fixed-sample miss rate {fixed:.4}"
            );
        }
    }

    /// Waudby-Smith & Ramdas's hedged-capital test (Theorem 3, θ = ½, c = ½) at one candidate
    /// mean: what the sequence would decide with betting in place of the closed form, for the
    /// comparison in the module docs. Its bets use the same λ as the sequence, uncapped, then
    /// capped at c/m (c/(1 − m)) so that capital stays positive.
    struct HedgedTest {
        m: f64,
        log_two_over_alpha: f64,
        n: usize,
        sum: f64,
        squares: f64,
        log_plus: f64,
        log_minus: f64,
        decision: Decision,
    }

    impl HedgedTest {
        fn new(m: f64, confidence: f64) -> HedgedTest {
            HedgedTest {
                m,
                log_two_over_alpha: (2.0 / (1.0 - confidence)).ln(),
                n: 0,
                sum: 0.0,
                squares: 0.0,
                log_plus: 0.0,
                log_minus: 0.0,
                decision: Decision::Undecided,
            }
        }

        fn push(&mut self, x: f64) {
            let t = (self.n + 1) as f64;
            let var_before = (0.25 + self.squares) / t;
            let bet = (2.0 * self.log_two_over_alpha / (var_before * t * t.ln_1p())).sqrt();
            let plus = bet.min(TRUNCATION / self.m);
            let minus = bet.min(TRUNCATION / (1.0 - self.m));
            self.log_plus += (plus * (x - self.m)).ln_1p();
            self.log_minus += (-minus * (x - self.m)).ln_1p();
            self.n += 1;
            self.sum += x;
            self.squares += (x - (0.5 + self.sum) / (t + 1.0)).powi(2);
            // ½K⁺ ≥ 1/α, i.e. K⁺ ≥ 2/α: the mean is above m (and once shown, stays shown).
            if self.decision == Decision::Undecided {
                if self.log_plus >= self.log_two_over_alpha {
                    self.decision = Decision::Above;
                } else if self.log_minus >= self.log_two_over_alpha {
                    self.decision = Decision::Below;
                }
            }
        }
    }

    /// One simulated `--until-decided` run of the gate `candidate ≥ r × current` on paired binary
    /// items drawn from `cells`: what each method decided and after how many items.
    struct Stops {
        sequence: (Decision, usize),
        hedged: (Decision, usize),
        fixed: (Decision, usize),
    }

    fn until_decided(
        rng: &mut fastrand::Rng,
        cells: &[f64; 4],
        r: f64,
        batch: usize,
        max_items: usize,
    ) -> Stops {
        // d = c − r·b lies in [−r, 1]; the gate passes when mean d > 0.
        let null = r / (1.0 + r);
        let mut seq = MeanSequence::new(CONF);
        let mut hedged = HedgedTest::new(null, CONF);
        let mut sums = Sums::default();
        let undecided = (Decision::Undecided, max_items);
        let mut stops = Stops {
            sequence: undecided,
            hedged: undecided,
            fixed: undecided,
        };
        let mut n = 0;
        while n < max_items
            && [stops.sequence, stops.hedged, stops.fixed]
                .iter()
                .any(|s| s.0 == Decision::Undecided)
        {
            for _ in 0..batch {
                let (b, c) = draw_pair(rng, cells);
                let d = c - r * b;
                seq.push((d + r) / (1.0 + r));
                hedged.push((d + r) / (1.0 + r));
                sums.push(d);
            }
            n += batch;
            for (stop, decision) in [
                (&mut stops.sequence, Decision::of(seq.interval(), null)),
                (&mut stops.hedged, hedged.decision),
                (&mut stops.fixed, Decision::of(sums.t_interval(), 0.0)),
            ] {
                if stop.0 == Decision::Undecided && decision != Decision::Undecided {
                    *stop = (decision, n);
                }
            }
        }
        stops
    }

    /// Shares of runs that passed, failed and ran out, and the mean share of the items used.
    fn tally(stops: &[(Decision, usize)], max_items: usize) -> [f64; 4] {
        let count = |d: Decision| share(stops.iter().filter(|s| s.0 == d).count(), stops.len());
        let used = stops.iter().map(|s| s.1).sum::<usize>() as f64;
        [
            count(Decision::Above),
            count(Decision::Below),
            count(Decision::Undecided),
            used / (stops.len() * max_items) as f64,
        ]
    }

    /// Truth: paired binary items, current accuracy 0.85, candidate exactly at the margin of
    /// `candidate ≥ 0.95 × current` (0.8075), per-item correlation φ 0.5. Each run looks after
    /// every batch of 50 items, up to 10,000, and stops at the first look that decides; a pass
    /// is a false pass. The two-sided 95% sequence used one-sidedly allows 2.5%. Witness: the
    /// fixed-sample paired t interval of d with the same stopping rule.
    #[test]
    fn stopping_at_the_margin() {
        let (reps, batch, max_items, r) = (1000, 50, 10_000, 0.95);
        let margin = cells(0.85, r * 0.85, 0.5);
        let mut rng = rng(32);
        let runs: Vec<Stops> = (0..reps)
            .map(|_| until_decided(&mut rng, &margin, r, batch, max_items))
            .collect();
        let [seq_pass, seq_fail, _, seq_used] = tally(
            &runs.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            max_items,
        );
        let [hedged_pass, hedged_fail, _, _] = tally(
            &runs.iter().map(|s| s.hedged).collect::<Vec<_>>(),
            max_items,
        );
        let [fixed_pass, fixed_fail, _, fixed_used] =
            tally(&runs.iter().map(|s| s.fixed).collect::<Vec<_>>(), max_items);
        eprintln!(
            "stopping_at_the_margin ({reps} runs, batch {batch}, up to {max_items} items): \
             sequence false pass {seq_pass:.4} (fail {seq_fail:.4}, items used {seq_used:.3}); \
             hedged capital false pass {hedged_pass:.4} (fail {hedged_fail:.4}); \
             fixed-sample paired t false pass {fixed_pass:.4} (fail {fixed_fail:.4}, items used \
             {fixed_used:.3}); allowed 0.025 (±{:.4})",
            sim_err(0.025, reps)
        );
        assert!(
            seq_pass <= 0.025 + sim_err(0.025, reps),
            "false pass {seq_pass:.4}"
        );
        assert!(
            fixed_pass > 0.05,
            "witness: fixed-sample false pass {fixed_pass:.4}"
        );
    }

    /// Truth: paired binary items as above (current 0.85, φ 0.5), the gate `candidate ≥ 0.95 ×
    /// current`, batches of 50 up to 10,000 items. How many items a run uses, and what it
    /// decides, for equal models and for clearly different ones; the hedged-capital test at the
    /// same looks for comparison (module docs). A candidate 5 points worse (0.80) is only 0.75
    /// points below the gate's margin (0.8075): it is reported, not expected to be decided.
    #[test]
    fn items_used_to_decide() {
        let (reps, batch, max_items, r) = (500, 50, 10_000, 0.95);
        let mut rng = rng(33);
        for (name, candidate) in [
            ("equal", 0.85),
            ("5 points better", 0.90),
            ("5 points worse", 0.80),
            ("10 points worse", 0.75),
        ] {
            let table = cells(0.85, candidate, 0.5);
            let runs: Vec<Stops> = (0..reps)
                .map(|_| until_decided(&mut rng, &table, r, batch, max_items))
                .collect();
            let [pass, fail, open, used] = tally(
                &runs.iter().map(|s| s.sequence).collect::<Vec<_>>(),
                max_items,
            );
            let [h_pass, h_fail, h_open, h_used] = tally(
                &runs.iter().map(|s| s.hedged).collect::<Vec<_>>(),
                max_items,
            );
            eprintln!(
                "items_used_to_decide {name} (candidate {candidate}, current 0.85): sequence \
                 pass {pass:.3} fail {fail:.3} undecided {open:.3}, mean share of items used \
                 {used:.4}; hedged capital pass {h_pass:.3} fail {h_fail:.3} undecided \
                 {h_open:.3}, used {h_used:.4}"
            );
            match name {
                "equal" => assert!(pass >= 0.95 && used < 0.2, "{name}: {pass} {used}"),
                "5 points better" => assert!(pass >= 0.99 && used < 0.05, "{name}: {pass} {used}"),
                "10 points worse" => assert!(fail >= 0.95 && used < 0.2, "{name}: {fail} {used}"),
                _ => assert!(
                    pass <= 0.025 + sim_err(0.025, reps),
                    "{name}: false pass {pass}"
                ),
            }
        }
    }

    /// The time-uniform DKW band's half-width (Howard & Ramdas 2022, Theorem 2), for comparison.
    fn dkw_epsilon(t: f64, alpha: f64) -> f64 {
        0.85 * (((std::f64::consts::E * t).ln().ln() + 0.8 * (1612.0 / alpha).ln()) / t).sqrt()
    }

    /// The DKW band's interval for the p-quantile, at the order statistics H&R's demo uses.
    fn dkw_quantile(sorted: &[f64], p: f64, alpha: f64) -> Interval {
        let t = sorted.len() as f64;
        let e = dkw_epsilon(t, alpha);
        let j = (t * (p - e)).floor() + 1.0;
        let k = (t * (p + e)).ceil();
        Interval::new(
            if j >= 1.0 {
                sorted[j as usize - 1]
            } else {
                f64::NEG_INFINITY
            },
            if k <= t {
                sorted[k as usize - 1]
            } else {
                f64::INFINITY
            },
        )
    }

    /// The fewest observations at which an interval method gives the p-quantile a finite
    /// upper bound (it depends on n only).
    fn first_finite_upper(p: f64, method: &dyn Fn(&[f64], f64) -> Interval) -> usize {
        let data: Vec<f64> = (0..200_000).map(f64::from).collect();
        let (mut lo, mut hi) = (1, data.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if method(&data[..mid], p).high.is_finite() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// Truth: lognormal(0, 1) latencies, whose p-quantile is exp(z_p); up to 2,000 of them,
    /// looked at after every batch of 50. The share of paths on which the sequence for p95
    /// (and p99) ever misses is at most α. Witness: the fixed-sample order-statistic interval
    /// (`dist::quantile_ranks`) at the same looks. The DKW band (Theorem 2) is reported.
    #[test]
    fn quantile_sequence_covers_at_every_time() {
        let (reps, n, batch) = (1000, 2000, 50);
        let looks: Vec<usize> = (1..=n / batch).map(|k| k * batch).collect();
        let mut rng = rng(34);
        for p in [0.95, 0.99] {
            let truth = dist::normal_quantile(p).exp();
            let ranks: Vec<(Option<u64>, Option<u64>)> = looks
                .iter()
                .map(|&k| dist::quantile_ranks(k as u64, p, CONF))
                .collect();
            let (mut cs_misses, mut fixed_misses, mut dkw_misses) = (0, 0, 0);
            let (mut cs_width, mut fixed_width, mut dkw_width) = (0.0, 0.0, 0.0);
            for _ in 0..reps {
                let mut sorted: Vec<f64> = Vec::with_capacity(n);
                let (mut cs_missed, mut fixed_missed, mut dkw_missed) = (false, false, false);
                for (look, &(lo, hi)) in ranks.iter().enumerate() {
                    for _ in 0..batch {
                        let x = normal(&mut rng).exp();
                        let at = sorted.partition_point(|&v| v < x);
                        sorted.insert(at, x);
                    }
                    let cs = quantile_sequence(&sorted, p, CONF);
                    let fixed = Interval::new(
                        lo.map_or(f64::NEG_INFINITY, |r| sorted[r as usize - 1]),
                        hi.map_or(f64::INFINITY, |r| sorted[r as usize - 1]),
                    );
                    let dkw = dkw_quantile(&sorted, p, ALPHA);
                    cs_missed |= !cs.contains(truth);
                    fixed_missed |= !fixed.contains(truth);
                    dkw_missed |= !dkw.contains(truth);
                    if look + 1 == ranks.len() {
                        cs_width += cs.high - cs.low;
                        fixed_width += fixed.high - fixed.low;
                        dkw_width += dkw.high - dkw.low;
                    }
                }
                cs_misses += usize::from(cs_missed);
                fixed_misses += usize::from(fixed_missed);
                dkw_misses += usize::from(dkw_missed);
            }
            let (cs, fixed, dkw) = (
                share(cs_misses, reps),
                share(fixed_misses, reps),
                share(dkw_misses, reps),
            );
            let first_cs = first_finite_upper(p, &|s, p| quantile_sequence(s, p, CONF));
            let first_dkw = first_finite_upper(p, &|s, p| dkw_quantile(s, p, ALPHA));
            let first_fixed = (1..)
                .find(|&k| dist::quantile_ranks(k, p, CONF).1.is_some())
                .unwrap_or(0);
            eprintln!(
                "quantile_sequence_covers_at_every_time p{}: ever missed by the sequence {cs:.4}, \
                 fixed-sample order statistics {fixed:.4}, DKW band {dkw:.4} (±{:.4}); mean \
                 width at n={n}: sequence {:.3}, fixed-sample {:.3}, DKW band {:.3}; first n with \
                 a finite upper \
                 bound: sequence {first_cs}, DKW band {first_dkw}, fixed-sample {first_fixed}",
                (p * 100.0).round(),
                sim_err(ALPHA, reps),
                cs_width / reps as f64,
                fixed_width / reps as f64,
                dkw_width / reps as f64,
            );
            assert!(cs <= ALPHA, "p{p}: time-uniform miss rate {cs:.4}");
            assert!(
                fixed > ALPHA && fixed > 2.0 * cs,
                "witness p{p}: fixed-sample miss rate {fixed:.4}"
            );
            assert!(first_cs < first_dkw, "p{p}: {first_cs} vs {first_dkw}");
        }
    }

    #[test]
    fn quantile_sequence_reads_the_order_statistics() {
        let data: Vec<f64> = (1..=1000).map(f64::from).collect();
        let i = quantile_sequence(&data, 0.5, CONF);
        // The ranks by hand: tp ∓ u_t with c = 0 on both sides at p = ½.
        let m = 0.25;
        let u = stitched_boundary(250.0, m, 0.0, 0.025);
        assert_eq!(i.low, (500.0 - u).floor() + 1.0);
        assert_eq!(i.high, (500.0 + u).ceil());
        // Wider than the fixed-sample interval at the same n, as a price for every n at once.
        let (lo, hi) = dist::quantile_ranks(1000, 0.5, CONF);
        assert!(
            i.low < lo.unwrap() as f64 && i.high > hi.unwrap() as f64,
            "{i:?}"
        );
        // The p99 of 100 latencies has no upper bound, nor a sequence of no data any bound.
        let small: Vec<f64> = (1..=100).map(f64::from).collect();
        let p99 = quantile_sequence(&small, 0.99, CONF);
        assert!(p99.low.is_finite() && p99.high == f64::INFINITY, "{p99:?}");
        assert_eq!(quantile_sequence(&[], 0.5, CONF), Interval::UNBOUNDED);
        assert_eq!(quantile_sequence(&data, 1.0, CONF), Interval::UNBOUNDED);
        // A distribution with atoms: the bounds are data values, covering the true median 2.
        let ties: Vec<f64> = [1.0; 300]
            .into_iter()
            .chain([2.0; 400])
            .chain([3.0; 300])
            .collect();
        let median = quantile_sequence(&ties, 0.5, CONF);
        assert_eq!(median, Interval::new(2.0, 2.0));
    }

    #[test]
    fn the_stitched_boundary_uses_zeta_of_s() {
        // ζ(1.4) by a partial sum and the Euler–Maclaurin tail.
        let big = 10_000.0f64;
        let partial: f64 = (1..10_000).map(|k| f64::from(k).powf(-S)).sum();
        let tail =
            big.powf(1.0 - S) / (S - 1.0) + 0.5 * big.powf(-S) + S * big.powf(-S - 1.0) / 12.0;
        assert!(
            (partial + tail - ZETA_S).abs() < 1e-10,
            "{}",
            partial + tail
        );
        // At v = m the iterated log cancels: ℓ = log(ζ(s)/α), u = k₁ sqrt(m ℓ) with c = 0.
        let k1 = (ETA.powf(0.25) + ETA.powf(-0.25)) / 2f64.sqrt();
        let u = stitched_boundary(1.0, 1.0, 0.0, 0.05);
        assert!((u - k1 * (ZETA_S / 0.05f64).ln().sqrt()).abs() < 1e-12);
        // A positive scale only adds; a negative one counts as 0.
        assert!(stitched_boundary(50.0, 1.0, 0.3, 0.05) > stitched_boundary(50.0, 1.0, 0.0, 0.05));
        assert_eq!(
            stitched_boundary(50.0, 1.0, -0.3, 0.05),
            stitched_boundary(50.0, 1.0, 0.0, 0.05)
        );
    }

    #[test]
    fn ratio_interval_divides_the_bounds_crosswise() {
        let r = ratio_interval(Interval::new(110.0, 132.0), Interval::new(100.0, 120.0));
        assert!((r.low - 110.0 / 120.0).abs() < 1e-15 && (r.high - 1.32).abs() < 1e-15);
        // An unbounded denominator leaves no lower bound above 0; a denominator that may be 0
        // (or a lower bound of −∞) no upper bound.
        let r = ratio_interval(
            Interval::new(110.0, 132.0),
            Interval::new(100.0, f64::INFINITY),
        );
        assert_eq!(r, Interval::new(0.0, 1.32));
        let r = ratio_interval(Interval::new(110.0, f64::INFINITY), Interval::UNBOUNDED);
        assert_eq!(r, Interval::new(0.0, f64::INFINITY));
    }

    #[test]
    fn decision_reads_the_interval_against_the_null() {
        assert_eq!(Decision::of(Interval::new(0.51, 0.6), 0.5), Decision::Above);
        assert_eq!(Decision::of(Interval::new(0.3, 0.49), 0.5), Decision::Below);
        assert_eq!(
            Decision::of(Interval::new(0.5, 0.6), 0.5),
            Decision::Undecided
        );
        assert_eq!(
            Decision::of(Interval::new(0.4, 0.6), 0.5),
            Decision::Undecided
        );
        assert_eq!(Decision::of(Interval::UNBOUNDED, 0.5), Decision::Undecided);
    }
}
