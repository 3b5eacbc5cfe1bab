//! Calibration of every interval and test in `stats` by simulation against a known truth.
//! Seeded, so each figure is reproducible; each test prints what it measured (`--nocapture`)
//! and, where it can, shows a wrong method failing the same check (the witness that the check
//! has teeth). Confidence is 0.95 throughout.

use super::*;

const CONF: f64 = 0.95;

pub(super) fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Two standard errors of a rate estimated from `reps` replications.
pub(super) fn sim_err(rate: f64, reps: usize) -> f64 {
    2.0 * (rate * (1.0 - rate) / reps as f64).sqrt()
}

pub(super) fn share(hits: usize, reps: usize) -> f64 {
    hits as f64 / reps as f64
}

/// Cell probabilities (both pass, current only, candidate only, neither) of two binary outcomes
/// with these marginals and phi correlation.
pub(super) fn cells(pb: f64, pc: f64, phi: f64) -> [f64; 4] {
    let p11 = pb * pc + phi * (pb * (1.0 - pb) * pc * (1.0 - pc)).sqrt();
    let cells = [p11, pb - p11, pc - p11, 1.0 - pb - pc + p11];
    assert!(
        cells.iter().all(|&p| p >= 0.0),
        "impossible cells {cells:?}"
    );
    cells
}

/// One paired binary item (current, candidate) drawn from `cells`.
pub(super) fn draw_pair(rng: &mut fastrand::Rng, cells: &[f64; 4]) -> (f64, f64) {
    let u = rng.f64();
    if u < cells[0] {
        (1.0, 1.0)
    } else if u < cells[0] + cells[1] {
        (1.0, 0.0)
    } else if u < cells[0] + cells[1] + cells[2] {
        (0.0, 1.0)
    } else {
        (0.0, 0.0)
    }
}

/// `n` paired binary items, each its own cluster.
fn paired_binary(rng: &mut fastrand::Rng, cells: &[f64; 4], n: usize) -> PairedUnits {
    let mut u = PairedUnits::default();
    for i in 0..n {
        let (b, c) = draw_pair(rng, cells);
        u.push(b, c, i as u32);
    }
    u
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The nearest-rank q-quantile of values sorted as (value, cluster), clusters weighted by how
/// often a bootstrap resample drew them (as `metrics::evidence` computes it).
fn weighted_quantile(sorted: &[(f64, usize)], w: &[u32], q: f64) -> Option<f64> {
    let total: u64 = sorted.iter().map(|&(_, c)| u64::from(w[c])).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for &(v, c) in sorted {
        seen += u64::from(w[c]);
        if seen >= rank {
            return Some(v);
        }
    }
    sorted.last().map(|&(v, _)| v)
}

fn sorted_with_index(v: &[f64]) -> Vec<(f64, usize)> {
    let mut s: Vec<(f64, usize)> = v.iter().copied().zip(0..).collect();
    s.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    s
}

/// Truth: Binomial(n, p). Coverage is computed exactly (summing the binomial probabilities of
/// the counts whose interval holds p), so it carries no simulation error. Witness: the textbook
/// Wald interval collapses at small n and extreme p.
#[test]
fn wilson_coverage() {
    let (mut total, mut cells_n, mut worst_wald) = (0.0, 0, 1.0f64);
    let mut low_cells = Vec::new();
    for p in [0.02f64, 0.1, 0.5, 0.9, 0.98] {
        for n in [20u32, 50, 200] {
            let nf = f64::from(n);
            let (mut wilson_cov, mut wald_cov) = (0.0, 0.0);
            for k in 0..=n {
                let kf = f64::from(k);
                let pmf = (dist::ln_gamma(nf + 1.0)
                    - dist::ln_gamma(kf + 1.0)
                    - dist::ln_gamma(nf - kf + 1.0)
                    + kf * p.ln()
                    + (nf - kf) * (1.0 - p).ln())
                .exp();
                let ph = f64::from(k) / nf;
                if wilson(ph, nf, CONF).contains(p) {
                    wilson_cov += pmf;
                }
                let half = z(CONF) * (ph * (1.0 - ph) / nf).sqrt();
                if Interval::new(ph - half, ph + half).contains(p) {
                    wald_cov += pmf;
                }
            }
            eprintln!("wilson_coverage p={p} n={n}: Wilson {wilson_cov:.4}, Wald {wald_cov:.4}");
            total += wilson_cov;
            cells_n += 1;
            worst_wald = worst_wald.min(wald_cov);
            // Wilson's known dip near 0 and 1 (Brown, Cai & DasGupta 2001) reaches 0.9216 at
            // p = 0.02, n = 50: the floor below is that, stated in docs/statistics.md; the
            // issue's target is the average.
            if wilson_cov < 0.92 {
                low_cells.push(format!("p={p} n={n}: {wilson_cov:.4}"));
            }
        }
    }
    let average = total / f64::from(cells_n);
    eprintln!("wilson_coverage: average {average:.4}, worst Wald {worst_wald:.4}");
    assert!(average >= 0.94, "Wilson average coverage {average:.4}");
    assert!(
        worst_wald < 0.90,
        "witness: Wald should undercover somewhere"
    );
    assert!(
        low_cells.is_empty(),
        "Wilson coverage below 0.92 in {low_cells:?}"
    );
}

/// Truth: 40 groups of 5 items; an item passes with its group's probability 0.55 + U(−0.4, 0.4)
/// (intra-cluster correlation ≈ 0.2), mean 0.55. Witness: the same items taken as independent.
#[test]
fn clustered_coverage() {
    let (reps, groups, size, truth) = (4000, 40, 5, 0.55);
    let mut rng = rng(2);
    let (mut clustered, mut naive) = (0, 0);
    for _ in 0..reps {
        let mut sums = vec![0.0; groups];
        let mut items = Vec::with_capacity(groups * size);
        for s in &mut sums {
            let p = truth + 0.8 * (rng.f64() - 0.5);
            for _ in 0..size {
                let x = f64::from(u8::from(rng.f64() < p));
                *s += x;
                items.push(x);
            }
        }
        let e = clustered_mean(&sums, &vec![size as f64; groups]).unwrap();
        clustered += usize::from(proportion_interval(&e, CONF).contains(truth));
        let e = clustered_mean(&items, &vec![1.0; items.len()]).unwrap();
        naive += usize::from(proportion_interval(&e, CONF).contains(truth));
    }
    let (clustered, naive) = (share(clustered, reps), share(naive, reps));
    eprintln!("clustered_coverage: clustered {clustered:.4}, items as independent {naive:.4}");
    assert!(clustered >= 0.94, "clustered coverage {clustered:.4}");
    assert!(
        naive < 0.90,
        "witness: independent-items coverage {naive:.4}"
    );
}

/// Truth: 100 items with pass probability p_i ~ U(0, 1), 5 trials each; the mean of p_i is 0.5.
/// Witness: the 500 trials taken as independent observations.
#[test]
fn repeats_are_means_per_item() {
    let (reps, items, k) = (4000, 100, 5);
    let mut rng = rng(3);
    let (mut per_item, mut per_trial) = (0, 0);
    for _ in 0..reps {
        let mut sums = vec![0.0; items];
        let mut trials = Vec::with_capacity(items * k);
        for s in &mut sums {
            let p = rng.f64();
            for _ in 0..k {
                let x = f64::from(u8::from(rng.f64() < p));
                *s += x;
                trials.push(x);
            }
        }
        let e = clustered_mean(&sums, &vec![k as f64; items]).unwrap();
        per_item += usize::from(proportion_interval(&e, CONF).contains(0.5));
        let e = clustered_mean(&trials, &vec![1.0; trials.len()]).unwrap();
        per_trial += usize::from(proportion_interval(&e, CONF).contains(0.5));
    }
    let (per_item, per_trial) = (share(per_item, reps), share(per_trial, reps));
    eprintln!(
        "repeats_are_means_per_item: items as clusters {per_item:.4}, trials as independent {per_trial:.4}"
    );
    assert!(per_item >= 0.94, "per-item coverage {per_item:.4}");
    assert!(
        per_trial < 0.90,
        "witness: per-trial coverage {per_trial:.4}"
    );
}

/// Truth: paired binary items, current accuracy 0.85, candidate exactly at the margin
/// (0.95 × 0.85), phi correlation 0.5; a pass is a false pass. Witness: comparing the
/// candidate's lower bound with 0.95 × the current's lower bound (a common shortcut) passes far
/// too often. (Taking r·mean(b) as a known constant is reported, not a witness: at phi 0.5 it
/// is conservative, as ignoring b's variance also ignores the covariance pairing subtracts.)
/// Also: pairing's power over the unpaired Wald difference when the models are equal.
#[test]
fn paired_noninferiority_false_pass() {
    let (reps, r, pb) = (2000, 0.95, 0.85);
    let boot = Bootstrap {
        seed: 1,
        resamples: 200,
    };
    let margin = cells(pb, r * pb, 0.5);
    let mut rng = rng(4);
    for n in [100, 400] {
        let (mut paired, mut known_b, mut bounds) = (0, 0, 0);
        for _ in 0..reps {
            let u = paired_binary(&mut rng, &margin, n);
            let p = u.linear(r, Scale::Proportion, CONF, &boot).unwrap();
            paired += usize::from(p.interval.low > 0.0);
            let (mb, mc) = (mean(&u.current), mean(&u.candidate));
            let (ib, ic) = (wilson(mb, n as f64, CONF), wilson(mc, n as f64, CONF));
            known_b += usize::from(ic.low > r * mb);
            bounds += usize::from(ic.low > r * ib.low);
        }
        let (paired, known_b, bounds) = (
            share(paired, reps),
            share(known_b, reps),
            share(bounds, reps),
        );
        eprintln!(
            "paired_noninferiority_false_pass n={n}: paired MOVER {paired:.4}, \
             r·mean(b) as a known constant {known_b:.4}, lower bound vs r·lower bound {bounds:.4}"
        );
        assert!(paired <= 0.05, "n={n}: paired false pass {paired:.4}");
        assert!(bounds > 0.05, "witness n={n}: bound comparison {bounds:.4}");
    }
    let n = 400;
    let equal = cells(pb, pb, 0.5);
    let (mut paired, mut unpaired) = (0, 0);
    for _ in 0..reps {
        let u = paired_binary(&mut rng, &equal, n);
        let p = u.linear(r, Scale::Proportion, CONF, &boot).unwrap();
        paired += usize::from(p.interval.low > 0.0);
        let (mb, mc) = (mean(&u.current), mean(&u.candidate));
        let se = (r * r * mb * (1.0 - mb) / n as f64 + mc * (1.0 - mc) / n as f64).sqrt();
        unpaired += usize::from(mc - r * mb - z(CONF) * se > 0.0);
    }
    let (paired, unpaired) = (share(paired, reps), share(unpaired, reps));
    eprintln!(
        "paired_noninferiority_false_pass power (equal models, n={n}): paired {paired:.4}, unpaired Wald {unpaired:.4}"
    );
    assert!(paired > unpaired, "pairing should add power");
}

/// A skewed score in [1, 5] piled up near 5: 5 − 4·u^a, mean 5 − 4/(a + 1).
fn skewed_score(u: f64, a: f64) -> f64 {
    5.0 - 4.0 * u.powf(a)
}

/// Truth: paired 1–5 scores, current 5 − 4·U³ (mean 4), candidate 5 − 4·V^(7/3) (mean 3.8 =
/// 0.95 × 4), V = U for 60% of items (shared difficulty) else a fresh uniform. A pass is a
/// false pass. n = 20 takes the bootstrap union, n = 200 the t interval alone.
#[test]
fn paired_continuous_false_pass() {
    let mut rng = rng(5);
    for (n, reps) in [(20, 1000), (200, 2000)] {
        let (mut passes, mut corr) = (0, 0.0);
        for k in 0..reps {
            let mut u = PairedUnits::default();
            for i in 0..n {
                let ub = rng.f64();
                let uc = if rng.f64() < 0.6 { ub } else { rng.f64() };
                u.push(skewed_score(ub, 3.0), skewed_score(uc, 7.0 / 3.0), i as u32);
            }
            let boot = Bootstrap {
                seed: k as u64,
                resamples: 200,
            };
            let p = u
                .linear(0.95, Scale::Bounded(1.0, 5.0), CONF, &boot)
                .unwrap();
            passes += usize::from(p.interval.low > 0.0);
            corr += p.correlation;
        }
        let rate = share(passes, reps);
        eprintln!(
            "paired_continuous_false_pass n={n}: false pass {rate:.4} (mean correlation {:.2})",
            corr / reps as f64
        );
        assert!(rate <= 0.05, "n={n}: false pass {rate:.4}");
    }
    // What the plus-four guard costs: the power to pass equal models (both 5 − 4·U³).
    for n in [50, 200] {
        let reps = 500;
        let mut passes = 0;
        for k in 0..reps {
            let mut u = PairedUnits::default();
            for i in 0..n {
                let ub = rng.f64();
                let uc = if rng.f64() < 0.6 { ub } else { rng.f64() };
                u.push(skewed_score(ub, 3.0), skewed_score(uc, 3.0), i as u32);
            }
            let boot = Bootstrap {
                seed: k as u64,
                resamples: 100,
            };
            let p = u
                .linear(0.95, Scale::Bounded(1.0, 5.0), CONF, &boot)
                .unwrap();
            passes += usize::from(p.interval.low > 0.0);
        }
        let power = share(passes, reps);
        eprintln!("paired_continuous_false_pass power (equal models) n={n}: {power:.4}");
        if n == 200 {
            assert!(power > 0.5, "power {power:.4}");
        }
    }
}

/// Truth: equal models, error-rate-like binary outcomes at rate 0.05 each, phi 0.5, n = 200;
/// a harm failure is a false failure. Three independent such gates show Holm's family-wise
/// control against the unadjusted any-of-three.
#[test]
fn harm_false_fail_equal_models() {
    let (families, n, alpha) = (1500, 200, 0.025);
    let boot = Bootstrap {
        seed: 1,
        resamples: 200,
    };
    let null = cells(0.05, 0.05, 0.5);
    let mut rng = rng(6);
    let (mut single, mut any_raw, mut any_holm) = (0, 0, 0);
    for _ in 0..families {
        let p: Vec<f64> = (0..3)
            .map(|_| {
                let u = paired_binary(&mut rng, &null, n);
                let e = u.linear(1.0, Scale::Proportion, CONF, &boot).unwrap();
                one_sided_p(e.estimate, e.se, 0.0, false, (e.clusters - 1) as f64)
            })
            .collect();
        single += p.iter().filter(|&&p| p < alpha).count();
        any_raw += usize::from(p.iter().any(|&p| p < alpha));
        any_holm += usize::from(dist::holm(&p).iter().any(|&p| p < alpha));
    }
    let single = share(single, 3 * families);
    let (any_raw, any_holm) = (share(any_raw, families), share(any_holm, families));
    eprintln!(
        "harm_false_fail_equal_models: single gate {single:.4}, any of 3 unadjusted {any_raw:.4}, \
         any of 3 Holm {any_holm:.4}"
    );
    assert!(single <= 0.05, "single-gate false fail {single:.4}");
    assert!(
        any_holm <= 0.05 + sim_err(0.05, families),
        "Holm family-wise false fail {any_holm:.4}"
    );
    assert!(
        any_raw > single,
        "unadjusted any-of-3 should exceed one gate's rate"
    );
}

/// Truth: lognormal(0, 1) latencies, whose p95 is exp(z₀.₉₅). The order-statistic interval at
/// `quantile_ranks` must cover it. Witnesses: the normal-theory interval x̄ + z₀.₉₅·s ± z·SE, and
/// (reported) the percentile bootstrap of the p95.
#[test]
fn latency_percentile_coverage() {
    let truth = dist::normal_quantile(0.95).exp();
    let z95 = dist::normal_quantile(0.95);
    let mut rng = rng(7);
    assert_eq!(
        dist::quantile_ranks(100, 0.99, CONF).1,
        None,
        "p99 of 100 has no upper bound"
    );
    for (n, reps) in [(100usize, 2000), (500, 1000)] {
        let (lo, hi) = dist::quantile_ranks(n as u64, 0.95, CONF);
        let (lo, hi) = (lo.unwrap() as usize, hi.unwrap() as usize);
        let (mut order, mut normal_theory, mut boot_cov, mut boot_reps) = (0, 0, 0, 0);
        for k in 0..reps {
            let mut x: Vec<f64> = (0..n).map(|_| normal(&mut rng).exp()).collect();
            let (m, nf) = (mean(&x), n as f64);
            let s = (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (nf - 1.0)).sqrt();
            let est = m + z95 * s;
            let se = s * (1.0 / nf + z95 * z95 / (2.0 * (nf - 1.0))).sqrt();
            let half = z(CONF) * se;
            normal_theory += usize::from(Interval::new(est - half, est + half).contains(truth));
            if n == 100 && k < 400 {
                let sorted = sorted_with_index(&x);
                let boot = Bootstrap {
                    seed: k as u64,
                    resamples: 200,
                };
                let mut reps = boot.run(n, |w| weighted_quantile(&sorted, w, 0.95));
                boot_cov += usize::from(percentile_interval(&mut reps, CONF).contains(truth));
                boot_reps += 1;
            }
            x.sort_unstable_by(f64::total_cmp);
            order += usize::from(Interval::new(x[lo - 1], x[hi - 1]).contains(truth));
        }
        let (order, normal_theory) = (share(order, reps), share(normal_theory, reps));
        eprint!(
            "latency_percentile_coverage n={n} (ranks {lo}..{hi}): order statistics {order:.4}, \
             normal theory {normal_theory:.4}"
        );
        if boot_reps > 0 {
            eprint!(", percentile bootstrap {:.4}", share(boot_cov, boot_reps));
        }
        eprintln!();
        assert!(order >= 0.94, "n={n}: order-statistic coverage {order:.4}");
        assert!(
            normal_theory < 0.90,
            "witness n={n}: normal theory {normal_theory:.4}"
        );
    }
}

/// Truth: per item a shared lognormal(0, 1) latency factor times per-model lognormal(0, 0.3)
/// noise, the candidate's scaled by 1.10, so the true p95 ratio is exactly 1.10. A pass of
/// "p95 ratio ≤ 1.10" (upper bound of the cluster-bootstrap percentile interval) is a false pass.
#[test]
fn paired_latency_ratio() {
    let (reps, n) = (300, 200);
    let mut rng = rng(8);
    let (mut passes, mut above) = (0, 0);
    for k in 0..reps {
        let (mut b, mut c) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let item = normal(&mut rng);
            b.push((item + 0.3 * normal(&mut rng)).exp());
            c.push(1.10 * (item + 0.3 * normal(&mut rng)).exp());
        }
        let (sb, sc) = (sorted_with_index(&b), sorted_with_index(&c));
        let boot = Bootstrap {
            seed: k as u64,
            resamples: 200,
        };
        let mut ratios = boot.run(n, |w| {
            Some(weighted_quantile(&sc, w, 0.95)? / weighted_quantile(&sb, w, 0.95)?)
        });
        let interval = percentile_interval(&mut ratios, CONF);
        passes += usize::from(interval.high <= 1.10);
        above += usize::from(interval.low > 1.10);
    }
    let rate = share(passes, reps);
    eprintln!(
        "paired_latency_ratio n={n}: false pass {rate:.4} (lower bound above 1.10: {:.4}) over {reps} reps",
        share(above, reps)
    );
    assert!(rate <= 0.05 + sim_err(0.05, reps), "false pass {rate:.4}");
}

/// Truth: paired binary items, current 0.8, discordance 0.1; the minimum detectable difference
/// from one null sample's SE is then made the true difference: power should be about 80%.
#[test]
fn power_matches_mde() {
    let (reps, n) = (2000, 400);
    let boot = Bootstrap {
        seed: 1,
        resamples: 200,
    };
    let mut rng = rng(9);
    let null = [0.75, 0.05, 0.05, 0.15];
    let se = paired_binary(&mut rng, &null, n)
        .linear(1.0, Scale::Proportion, CONF, &boot)
        .unwrap()
        .se;
    let mde = minimum_detectable(se, CONF);
    let alt = [0.75, 0.05 - mde / 2.0, 0.05 + mde / 2.0, 0.15];
    let mut rejections = 0;
    for _ in 0..reps {
        let p = paired_binary(&mut rng, &alt, n)
            .linear(1.0, Scale::Proportion, CONF, &boot)
            .unwrap();
        rejections += usize::from(!p.interval.contains(0.0));
    }
    let power = share(rejections, reps);
    eprintln!("power_matches_mde n={n}: se {se:.4}, MDE {mde:.4}, power at the MDE {power:.4}");
    assert!((0.70..=0.90).contains(&power), "power {power:.4}");
}

/// Exact small cases, and unbiasedness: with per-trial pass probability p and 10 trials, the
/// estimates of pass^3 and pass@3 average to p³ and 1 − (1 − p)³.
#[test]
fn pass_at_k_and_pass_hat_k() {
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    assert!(close(pass_at_k(5, 2, 1), 0.4));
    assert!(close(pass_at_k(5, 0, 3), 0.0));
    assert!(close(pass_at_k(5, 3, 3), 1.0));
    assert!(close(pass_hat_k(5, 3, 2), 0.3));
    assert!(close(pass_hat_k(4, 4, 4), 1.0));
    assert_eq!(pass_at_k(5, 2, 6), None);
    assert_eq!(pass_hat_k(5, 2, 0), None);

    let (reps, p, k) = (20_000, 0.7, 3);
    let mut rng = rng(10);
    let (mut hat, mut at) = (0.0, 0.0);
    for _ in 0..reps {
        let c = (0..10).filter(|_| rng.f64() < p).count() as u32;
        hat += pass_hat_k(10, c, k).unwrap();
        at += pass_at_k(10, c, k).unwrap();
    }
    let (hat, at) = (hat / f64::from(reps), at / f64::from(reps));
    let (hat_true, at_true) = (p.powi(3), 1.0 - (1.0 - p).powi(3));
    eprintln!(
        "pass_at_k_and_pass_hat_k p={p}: pass^3 mean {hat:.4} (true {hat_true:.4}), \
         pass@3 mean {at:.4} (true {at_true:.4})"
    );
    assert!((hat - hat_true).abs() < 0.01);
    assert!((at - at_true).abs() < 0.01);
}

/// Truth: skewed 1–5 scores (5 − 4·U³, mean 4), n items each its own cluster. `mean_interval`
/// (t, widened below 30 items by a seeded bootstrap and the scaled Wilson interval) must cover
/// the mean. Witness: the CLT
/// interval with the normal quantile and no bootstrap, the usual shortcut, undercovers at n = 8.
#[test]
fn mean_interval_coverage() {
    let mut rng = rng(9);
    for (n, reps) in [(8usize, 1000usize), (15, 1000), (30, 1500), (200, 1500)] {
        let (mut covered, mut covered_z) = (0, 0);
        for k in 0..reps {
            let sums: Vec<f64> = (0..n).map(|_| skewed_score(rng.f64(), 3.0)).collect();
            let counts = vec![1.0; n];
            let boot = Bootstrap {
                seed: k as u64,
                resamples: 200,
            };
            let (e, i) = mean_interval(&sums, &counts, (1.0, 5.0), CONF, &boot).unwrap();
            covered += usize::from(i.clamp(1.0, 5.0).contains(4.0));
            let half = z(CONF) * e.se;
            covered_z += usize::from((e.mean - half..=e.mean + half).contains(&4.0));
        }
        let (rate, rate_z) = (share(covered, reps), share(covered_z, reps));
        eprintln!("mean_interval_coverage n={n}: mean_interval {rate:.4}, normal CLT {rate_z:.4}");
        assert!(
            rate >= 0.94 - sim_err(0.95, reps),
            "n={n}: coverage {rate:.4}"
        );
        if n == 8 {
            assert!(
                rate_z < 0.92,
                "witness: the normal CLT interval at n = 8: {rate_z:.4}"
            );
        }
    }
}

/// Truth: equal models with single-trial binary outcomes (rate 0.1, phi 0.5), n = 150: the harm
/// gate's McNemar exact one-sided test falsely fails at most α/2 = 2.5%.
#[test]
fn mcnemar_harm_false_fail() {
    let null = cells(0.1, 0.1, 0.5);
    let mut rng = rng(10);
    let reps = 4000;
    let mut fails = 0;
    for _ in 0..reps {
        let u = paired_binary(&mut rng, &null, 150);
        let (mut worse, mut better) = (0, 0);
        for (b, c) in u.current.iter().zip(&u.candidate) {
            worse += u64::from(c > b);
            better += u64::from(c < b);
        }
        fails += usize::from(dist::mcnemar_exact_greater(worse, better) < 0.025);
    }
    let rate = share(fails, reps);
    eprintln!("mcnemar_harm_false_fail n=150: {rate:.4}");
    assert!(rate <= 0.025 + sim_err(0.025, reps), "{rate:.4}");
}

/// Truth: the candidate exactly at the margin (c = 0.95·b) with all the disagreement one way
/// (it never passes an item the current model fails): few discordant items, the case where two
/// versions of one model differ a little. A pass is a false pass. Witness: MOVER alone, whose
/// estimated correlation nears 1 when hardly any item disagrees.
#[test]
fn noninferiority_with_few_disagreements() {
    let mut rng = rng(11);
    let r = 0.95;
    let boot = Bootstrap {
        seed: 1,
        resamples: 100,
    };
    let (mut worst, mut worst_mover) = (0.0f64, 0.0f64);
    for (b, n) in [(0.667, 48), (0.5, 100), (0.7, 200), (0.9, 100), (0.9, 400)] {
        let x = (1.0 - r) * b;
        // (both pass, current only, candidate only, neither)
        let table = [b - x, x, 0.0, 1.0 - b];
        let reps = 1500;
        let (mut passes, mut mover_passes) = (0, 0);
        for _ in 0..reps {
            let u = paired_binary(&mut rng, &table, n);
            let p = u.linear(r, Scale::Proportion, CONF, &boot).unwrap();
            passes += usize::from(p.interval.low > 0.0);
            let (mb, mc) = (mean(&u.current), mean(&u.candidate));
            let alone = mover(
                mc,
                wilson(mc, n as f64, CONF),
                mb,
                wilson(mb, n as f64, CONF),
                r,
                p.correlation,
            );
            mover_passes += usize::from(alone.low > 0.0);
        }
        let (rate, rate_mover) = (share(passes, reps), share(mover_passes, reps));
        eprintln!(
            "noninferiority_with_few_disagreements b={b} n={n}: false pass {rate:.4}, MOVER alone {rate_mover:.4}"
        );
        worst = worst.max(rate);
        worst_mover = worst_mover.max(rate_mover);
    }
    assert!(worst <= 0.05 + sim_err(0.05, 1500), "false pass {worst:.4}");
    assert!(worst_mover > 0.08, "witness: MOVER alone {worst_mover:.4}");
}

/// Truth: a 1–5 score that is mostly 5 (1 on 2.5% of items) for the current model; the
/// candidate scores 1 on a further 6.25% of the items the current model scores 5 on, which puts
/// its mean exactly at 0.95 × the current one, with hardly any spread in the differences. A
/// pass is a false pass. Witness: the clustered t interval of the differences alone.
#[test]
fn bounded_scores_with_few_disagreements() {
    let mut rng = rng(12);
    let r = 0.95;
    let boot = Bootstrap {
        seed: 1,
        resamples: 100,
    };
    let mut worst_t = 0.0f64;
    for n in [48usize, 100, 200] {
        let reps = 2000;
        let (mut passes, mut t_passes) = (0, 0);
        for _ in 0..reps {
            let mut u = PairedUnits::default();
            for i in 0..n {
                let b = if rng.f64() < 0.025 { 1.0 } else { 5.0 };
                let c = if b == 5.0 && rng.f64() < 0.0625 {
                    1.0
                } else {
                    b
                };
                u.push(b, c, i as u32);
            }
            let p = u.linear(r, Scale::Bounded(1.0, 5.0), CONF, &boot).unwrap();
            passes += usize::from(p.interval.low > 0.0);
            let d: Vec<f64> = (0..n).map(|i| u.candidate[i] - r * u.current[i]).collect();
            let e = clustered_mean(&d, &vec![1.0; n]).unwrap();
            t_passes += usize::from(t_interval(&e, CONF).low > 0.0);
        }
        let (rate, rate_t) = (share(passes, reps), share(t_passes, reps));
        eprintln!(
            "bounded_scores_with_few_disagreements n={n}: false pass {rate:.4}, t alone {rate_t:.4}"
        );
        assert!(rate <= 0.05 + sim_err(0.05, reps), "n={n}: {rate:.4}");
        worst_t = worst_t.max(rate_t);
    }
    assert!(worst_t > 0.05, "witness: the t interval alone {worst_t:.4}");
}
