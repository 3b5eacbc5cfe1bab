//! The canary's decisions on simulated logs with a known truth ([`super::simulate`]): no false
//! rollback when nothing changed, a rollback on each injected harm, the sample-ratio mismatch
//! found, clustered intervals holding where users repeat, and the sequential analysis holding its
//! error rate over 20 looks. Each check has a witness: the wrong method failing it. Seeded;
//! `cargo test --lib canary::simulation -- --nocapture` prints every figure (docs/canary.md
//! quotes them).

use super::analysis::{Analysis, Plan, analyse};
use super::log::{Carried, ReadReport, Record};
use super::simulate::{Scenario, SimRecord};
use super::tally::Tally;
use super::{Arm, Decision};
use crate::gate::{Gate, default_canary_gates};
use crate::stats::{Interval, Settings};

fn record(s: &SimRecord, keep_user: bool) -> Record {
    Record {
        arm: Some(s.arm),
        at_ms: s.timestamp_ms,
        latency_ms: Some(s.latency_ms),
        ttft_ms: (!s.error).then_some(s.ttft_ms),
        error: Some(s.error),
        input_tokens: Some(f64::from(s.input_tokens)),
        output_tokens: Some(f64::from(s.output_tokens)),
        cost_usd: Some(s.cost_usd),
        thumbs_up: s.thumbs_up,
        csat: s.csat.map(f64::from),
        correct: s.correct,
        user: if keep_user { s.user } else { None },
        tags: Vec::new(),
    }
}

fn read_report(records: u64) -> ReadReport {
    ReadReport {
        records,
        carried: Carried {
            latency: true,
            ttft: true,
            error: true,
            tokens: true,
            cost: true,
            feedback: true,
            csat: true,
            correct: true,
            user: true,
            tags: false,
        },
        ..ReadReport::default()
    }
}

fn settings() -> Settings {
    Settings {
        resamples: 200,
        ..Settings::default()
    }
}

/// Whether an error rate is plausibly at most `alpha` after `trials`: below the one-sided 99.9%
/// binomial bound, so a correct method fails this check once in a thousand seeds.
fn within(rate: f64, alpha: f64, trials: usize) -> bool {
    let sd = (alpha * (1.0 - alpha) / trials as f64).sqrt();
    rate <= alpha + 3.1 * sd
}

/// One fixed analysis of a whole simulated log.
fn fixed(s: &Scenario, gates: &[Gate], keep_user: bool) -> Analysis {
    let mut tally = Tally::new(300_000, None, None);
    let mut n = 0;
    for r in s.records() {
        tally.add(&record(&r, keep_user));
        n += 1;
    }
    analyse(
        &tally,
        &read_report(n),
        &Plan {
            gates,
            settings: settings(),
            min_requests: 100,
            candidate_percent: Some(s.candidate_share * 100.0),
            sequential: None,
        },
    )
}

/// How many logs a check draws: all of them in an optimised build (`cargo test --release`, which
/// prints the figures docs/canary.md quotes), half in a debug build (the plain `cargo test`,
/// where they would take minutes); the checks hold at both sizes.
fn replications(n: u64) -> u64 {
    if cfg!(debug_assertions) { n / 2 } else { n }
}

fn rate(decisions: &[Analysis], what: impl Fn(&Analysis) -> bool) -> f64 {
    decisions.iter().filter(|a| what(a)).count() as f64 / decisions.len() as f64
}

fn rolled_back(a: &Analysis) -> bool {
    a.decision == Decision::Rollback
}

#[test]
fn no_false_rollback_when_nothing_changed_and_a_rollback_on_each_harm() {
    let gates = default_canary_gates();
    let reps = replications(100) as usize;
    let none: Vec<Analysis> = (0..reps as u64)
        .map(|seed| fixed(&Scenario::no_effect(6_000, seed), &gates, true))
        .collect();
    let false_rollback = rate(&none, rolled_back);
    let promoted = rate(&none, |a| a.decision == Decision::Promote);
    println!(
        "no effect: false rollback {false_rollback:.3}, promoted {promoted:.3} ({reps} logs of 6,000)"
    );
    // Four harm gates (Holm) and a non-inferiority gate: the family errs at most α/2 = 0.025.
    assert!(within(false_rollback, 0.025, reps), "{false_rollback}");
    assert!(
        promoted > 0.5,
        "identical arms are mostly promoted: {promoted}"
    );

    type Harm = (&'static str, fn(Scenario) -> Scenario, &'static str);
    let harms: [Harm; 5] = [
        ("latency x1.3", |s| s.latency_shift(1.3), "latency_p95_ms"),
        ("CSAT -0.4", |s| s.csat_drop(0.4), "csat"),
        ("errors 1% -> 4%", |s| s.error_spike(0.04), "error_rate"),
        (
            "thumbs-up -15 points",
            |s| s.thumbs_drop(0.15),
            "thumbs_up_rate",
        ),
        ("accuracy -15 points", |s| s.accuracy_drop(0.15), "accuracy"),
    ];
    for (name, harm, metric) in harms {
        let reps = replications(30);
        let runs: Vec<Analysis> = (0..reps)
            .map(|seed| {
                fixed(
                    &harm(Scenario::no_effect(6_000, 1_000 + seed)),
                    &gates,
                    true,
                )
            })
            .collect();
        let caught = rate(&runs, |a| {
            rolled_back(a)
                && a.gates.iter().any(|g| {
                    g.result.metric.to_string() == metric
                        && g.result.outcome == crate::gate::Outcome::Fail
                })
        });
        println!("{name}: rolled back on {metric} in {caught:.3} of {reps}");
        assert!(caught >= 0.9, "{name}: {caught}");
    }
}

#[test]
fn a_lost_share_of_the_candidate_is_a_sample_ratio_mismatch() {
    let gates = default_canary_gates();
    let reps = replications(40);
    let (mut found, mut false_alarm) = (0, 0);
    for seed in 0..reps {
        let lossy = fixed(
            &Scenario::no_effect(20_000, seed).split(0.1).srm(0.1),
            &gates,
            true,
        );
        found += usize::from(!lossy.trustworthy && lossy.exit_code == 3);
        let fine = fixed(&Scenario::no_effect(20_000, seed).split(0.1), &gates, true);
        false_alarm += usize::from(!fine.trustworthy);
    }
    println!(
        "SRM: a tenth of a 10% canary lost found in {found}/{reps}; false alarms {false_alarm}/{reps}"
    );
    assert!(found as f64 / reps as f64 >= 0.8, "{found}");
    assert!(false_alarm <= 1, "{false_alarm}");

    // Sticky users, some of them heavy: the split is tested on users, so their request counts
    // raise no false alarm (the witness, requests counted, does); a fifth of the candidate's
    // users lost is still found.
    let (mut user_alarm, mut request_alarm, mut lost_found) = (0, 0, 0);
    for seed in 0..reps {
        let s = Scenario::no_effect(20_000, 300 + seed).per_user(2_000, 0.5);
        let a = fixed(&s, &gates, true);
        user_alarm += usize::from(!a.trustworthy);
        let split = a.split.as_ref().expect("a split");
        assert!(split.unit.starts_with("users"), "{}", split.unit);
        let r = [a.counts.current, a.counts.candidate];
        let by_request = crate::stats::canary::sample_ratio(r, [50.0, 50.0]).unwrap();
        request_alarm += usize::from(by_request.mismatch());
        // Lost requests, every user kept: only the requests per user show it.
        let lossy = fixed(
            &Scenario::no_effect(40_000, 300 + seed)
                .per_user(8_000, 0.5)
                .srm(0.2),
            &gates,
            true,
        );
        lost_found += usize::from(!lossy.trustworthy);
    }
    println!(
        "SRM with sticky users: false alarms counting users {user_alarm}/{reps}, counting requests (witness) {request_alarm}/{reps}; a fifth of the candidate lost found in {lost_found}/{reps}"
    );
    assert!(user_alarm <= 1, "{user_alarm}");
    assert!(request_alarm > 4, "{request_alarm}");
    assert!(lost_found as f64 / reps as f64 >= 0.8, "{lost_found}");
}

#[test]
fn users_repeating_requests_need_clustered_intervals() {
    // Sticky users with strong effects of their own (on latency too): the arms differ by who
    // landed in them. Every default gate, the latency p95's bootstrap included.
    let gates = default_canary_gates();
    let reps = replications(100);
    let (mut clustered, mut unclustered) = (0, 0);
    for seed in 0..reps {
        let s = Scenario::no_effect(8_000, 500 + seed).per_user(100, 1.5);
        clustered += usize::from(rolled_back(&fixed(&s, &gates, true)));
        unclustered += usize::from(rolled_back(&fixed(&s, &gates, false)));
    }
    let (c, u) = (
        clustered as f64 / reps as f64,
        unclustered as f64 / reps as f64,
    );
    println!(
        "per-user correlation, no effect: false rollback clustered {c:.3}, unclustered (witness) {u:.3}"
    );
    assert!(within(c, 0.025, reps as usize), "clustered {c}");
    // The witness errs at more than twice the family's level.
    assert!(
        u > 0.05 && u > c + 0.04,
        "the witness must err visibly more: {u} vs {c}"
    );
}

/// A growing log looked at `looks` times: the sequential analysis carries its running intervals
/// between looks; the fixed one (the witness) is recomputed each time. Returns the first look
/// that rolled back, if any.
fn looks(
    s: &Scenario,
    gates: &[Gate],
    sequential: bool,
    looks: usize,
    keep_user: bool,
) -> Option<usize> {
    let records: Vec<SimRecord> = s.records().collect();
    let per_look = records.len() / looks;
    let g = gates.len() as f64;
    let conf = settings().confidence;
    let seq_conf = sequential.then(|| 1.0 - (1.0 - conf) / g / 2.0);
    let mut tally = Tally::new(300_000, None, seq_conf);
    let mut running: Vec<Option<Interval>> = vec![None; gates.len()];
    for look in 0..looks {
        for r in &records[look * per_look..(look + 1) * per_look] {
            tally.add(&record(r, keep_user));
        }
        let a = analyse(
            &tally,
            &read_report(((look + 1) * per_look) as u64),
            &Plan {
                gates,
                settings: settings(),
                min_requests: 100,
                candidate_percent: None,
                sequential: sequential.then_some(running.as_slice()),
            },
        );
        if rolled_back(&a) {
            return Some(look + 1);
        }
        if sequential {
            for (slot, g) in running.iter_mut().zip(&a.gates) {
                if let Some(t) = &g.result.test {
                    *slot = Some(t.interval);
                }
            }
        }
    }
    None
}

#[test]
fn twenty_looks_keep_the_false_rollback_rate_within_alpha() {
    // The rate-style gates only: latency percentiles are checked per look the same way, and
    // leaving them out keeps this test fast.
    let gates: Vec<Gate> = default_canary_gates()
        .into_iter()
        .filter(|g| g.metric.kind != crate::metrics::MetricKind::LatencyP95)
        .collect();
    let reps = replications(100);
    let (mut seq_false, mut fixed_false) = (0, 0);
    for seed in 0..reps {
        let s = Scenario::no_effect(10_000, 7_000 + seed);
        seq_false += usize::from(looks(&s, &gates, true, 20, true).is_some());
        fixed_false += usize::from(looks(&s, &gates, false, 20, true).is_some());
    }
    let (sq, fx) = (
        seq_false as f64 / reps as f64,
        fixed_false as f64 / reps as f64,
    );
    println!(
        "20 looks, no effect: false rollback sequential {sq:.3}, fixed-sample looked at as often (witness) {fx:.3}"
    );
    assert!(within(sq, 0.05, reps as usize), "sequential {sq}");
    assert!(
        fx > 0.05 && fx > sq + 0.03,
        "the witness must exceed alpha: {fx}"
    );

    // Detection: errors 1% -> 5% from the start; which look rolls back.
    let reps = replications(40);
    let mut delays: Vec<usize> = (0..reps)
        .filter_map(|seed| {
            looks(
                &Scenario::no_effect(10_000, 9_000 + seed).error_spike(0.05),
                &gates,
                true,
                20,
                true,
            )
        })
        .collect();
    let caught = delays.len() as f64 / reps as f64;
    delays.sort_unstable();
    let median = delays.get(delays.len() / 2).copied().unwrap_or(0);
    println!(
        "errors 1% -> 5%: rolled back in {caught:.3} of {reps}, median at look {median} of 20 ({} requests)",
        median * 500
    );
    assert!(caught >= 0.9, "{caught}");
}

#[test]
fn an_arm_without_data_continues_and_never_promotes() {
    let gates = default_canary_gates();
    let s = Scenario::no_effect(2_000, 3);
    let mut tally = Tally::new(300_000, None, None);
    for r in s.records().filter(|r| r.arm == Arm::Current) {
        tally.add(&record(&r, true));
    }
    let a = analyse(
        &tally,
        &read_report(1_000),
        &Plan {
            gates: &gates,
            settings: settings(),
            min_requests: 100,
            candidate_percent: None,
            sequential: None,
        },
    );
    assert_eq!(a.decision, Decision::Continue, "{:?}", a.reasons);
    assert!(
        a.reasons
            .iter()
            .any(|r| r.contains("candidate arm has no requests"))
    );
}

/// Twenty sequential looks at each of `reps` logs with nothing changed, once with the users'
/// ids and once without (the witness: requests taken as independent): the false-rollback rate
/// of each.
fn false_rollbacks_with_and_without_users(
    reps: u64,
    gates: &[Gate],
    log: impl Fn(u64) -> Scenario,
) -> (f64, f64) {
    let (mut with_users, mut without) = (0, 0);
    for seed in 0..reps {
        let s = log(seed);
        with_users += usize::from(looks(&s, gates, true, 20, true).is_some());
        without += usize::from(looks(&s, gates, true, 20, false).is_some());
    }
    (
        with_users as f64 / reps as f64,
        without as f64 / reps as f64,
    )
}

/// The share of `reps` logs with a harm that twenty sequential looks rolled back.
fn caught_in_twenty_looks(reps: u64, gates: &[Gate], log: impl Fn(u64) -> Scenario) -> f64 {
    (0..reps)
        .filter(|&seed| looks(&log(seed), gates, true, 20, true).is_some())
        .count() as f64
        / reps as f64
}

#[test]
fn twenty_looks_at_users_who_repeat_need_the_clustered_sequence() {
    // Few, heavy users with strong effects of their own: a user's requests hang together, so
    // a per-request sequence (the witness: the same log without its user ids) is too sure.
    let gates: Vec<Gate> = default_canary_gates()
        .into_iter()
        .filter(|g| g.metric.kind != crate::metrics::MetricKind::LatencyP95)
        .collect();
    let reps = replications(60);
    let (c, w) = false_rollbacks_with_and_without_users(reps, &gates, |seed| {
        Scenario::no_effect(10_000, 11_000 + seed).per_user(100, 1.5)
    });
    println!(
        "20 looks, 100 repeating users, no effect: false rollback clustered sequence {c:.3}, per-request sequence (witness) {w:.3}"
    );
    assert!(within(c, 0.05, reps as usize), "clustered {c}");
    assert!(
        w > 0.05 && w > c + 0.05,
        "the witness must err visibly more: {w} vs {c}"
    );

    // It still finds a harm: errors 1% -> 5% among 2,000 users.
    let reps = replications(30);
    let caught = caught_in_twenty_looks(reps, &gates, |seed| {
        Scenario::no_effect(10_000, 13_000 + seed)
            .per_user(2_000, 0.5)
            .error_spike(0.05)
    });
    println!("errors 1% -> 5% among 2,000 users: rolled back in {caught:.3} of {reps}");
    assert!(caught >= 0.9, "{caught}");
}

#[test]
fn twenty_looks_at_latency_with_users_of_their_own_speed_need_the_bootstrap_over_users() {
    // A latency gate with no margin (`max_ratio = 1.0`, a harm gate: it fails only when the
    // candidate is shown slower at all), 100 heavy users each with a latency of their own, and
    // nothing changed. The witness is the same logs without user ids: per-request quantile
    // sequences.
    let mut gate = default_canary_gates()
        .into_iter()
        .find(|g| g.metric.kind == crate::metrics::MetricKind::LatencyP95)
        .expect("a p95 gate");
    gate.bound = crate::gate::Bound::MaxRatio(1.0);
    let gates = [gate];
    let reps = replications(40);
    let (u, w) = false_rollbacks_with_and_without_users(reps, &gates, |seed| {
        Scenario::no_effect(10_000, 15_000 + seed).per_user(100, 3.0)
    });
    println!(
        "20 looks at p95 <= 1.0x, 100 users with latencies of their own, no effect: false rollback over users {u:.3}, per request (witness) {w:.3}"
    );
    assert!(within(u, 0.05, reps as usize), "over users {u}");
    assert!(
        w > 0.05 && w > u + 0.05,
        "the witness must err visibly more: {w} vs {u}"
    );

    // A candidate 1.5x slower is still caught.
    let reps = replications(20);
    let caught = caught_in_twenty_looks(reps, &gates, |seed| {
        Scenario::no_effect(10_000, 17_000 + seed)
            .per_user(2_000, 1.0)
            .latency_shift(1.5)
    });
    println!("latency x1.5 among 2,000 users: rolled back in {caught:.3} of {reps}");
    assert!(caught >= 0.9, "{caught}");
}
