//! Canary logs with a known truth, for the tests and the benchmark.
//!
//! A [`Scenario`] states the truth (each arm's error rate, thumbs-up rate, mean CSAT, accuracy,
//! latency, the split, lost records, users and how strongly a user's requests hang together);
//! [`Scenario::records`] draws a log from it, deterministically for a seed, in bounded memory;
//! [`Scenario::write_jsonl`] and [`Scenario::write_csv`] write it in the field names goldgate reads
//! by default.
//!
//! The model, so a test knows what "the truth" is:
//!
//! - **Arms.** Without users each request goes to the candidate with probability
//!   `candidate_share`. With users a user's arm is a hash of (seed, user): sticky, as real splits
//!   are, so the realised request share scatters around the configured one (heavy users move it).
//!   A candidate record is then dropped with probability `lost_candidate`
//!   ([`Scenario::logged_candidate_share`] is the share that results).
//! - **Users** are drawn as `floor(users * u^2)`: user 0 gets `1/sqrt(users)` of the traffic, the
//!   least active ones very little. Each user has two effects, `z` (experience) and `w` (errors),
//!   independent `N(0, 1)` (hashes of the user, so no table). With `user_effect = e` a request's
//!   latent scores are shifted by `e * z` in units of the request's own noise (intraclass
//!   correlation `e^2 / (1 + e^2)` on the latent scale) for CSAT, thumbs-up and correctness, by
//!   `-0.2 * e * z` on log latency, and by `e * w` on the error probit. The arms' parameters are
//!   solved so the population means stay exactly the configured ones (probit intercepts scaled by
//!   `sqrt(1 + e^2)`; the CSAT latent mean solved numerically). Errors have their own effect
//!   because the signals exist only on answered requests: were errors driven by `z`, the
//!   answered requests would over-represent happy users and their CSAT would exceed the truth.
//! - **Latency** is lognormal, median `latency_ms`, sigma 0.5; the candidate's is the same draw
//!   times `latency_factor`. `ttft_ms` is 10–40 % of it. This is the truth for *answered*
//!   requests: an errored request is a `"timeout"` (30 % of errors, latency exactly 30 000 ms) or
//!   an `"http 500"` (fails fast at 0.2 x the drawn latency), with no output tokens, no TTFT (0.0
//!   here, absent from the written log), no feedback, CSAT or correctness.
//! - **Signals**, on answered requests only, each on its own independent fraction:
//!   thumbs (`feedback`) on `feedback_share`, `csat` on `csat_share`, `correct` on
//!   `correct_share`. CSAT is a normal (sd 1 per request) rounded to the nearest of 1..5.
//! - **Tokens and cost** are the same for both arms: input lognormal (median 400), output
//!   lognormal (median 150), cost at $2.50 / $10 per million.
//! - **Time**: record `i` of `requests` is at `start_ms + (i + u) * span / requests`, u uniform, so
//!   timestamps are in order; a session is a user's 30-minute window.
//!
//! Every record consumes the same random numbers whatever the parameters, so two scenarios with
//! one seed differ only where their parameters do: `no_effect(n, s)` and
//! `no_effect(n, s).csat_drop(0.3)` give the same log except the candidate's CSAT scores.

use std::io::{self, Write};

use super::Arm;

/// Latency of a request that timed out.
pub const TIMEOUT_MS: f64 = 30_000.0;
/// Share of errors that are timeouts; the rest are `http 500`s that fail fast.
const TIMEOUT_SHARE: f64 = 0.3;
const FAIL_FAST: f64 = 0.2;
const LATENCY_SIGMA: f64 = 0.5;
/// Log-latency shift per unit of user effect: a user's latency moves "a little".
const LATENCY_USER: f64 = 0.2;
/// Per-request sd of the latent CSAT score, on the 1..5 scale.
const CSAT_NOISE: f64 = 1.0;
const SESSION_MS: i64 = 30 * 60 * 1000;
/// Prices per token in units of 1e-8 dollars: $2.50 and $10 per million.
const INPUT_PRICE: u64 = 250;
const OUTPUT_PRICE: u64 = 1_000;
const COST_UNITS: f64 = 1e8;
/// 2026-11-30T12:00:00Z.
const DEFAULT_START_MS: i64 = 1_796_040_000_000;

/// The truth a simulated canary log is drawn from. Arrays are per arm, `[current, candidate]`.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Requests drawn; the log has fewer when candidate records are lost.
    pub requests: u64,
    /// Configured share of traffic routed to the candidate.
    pub candidate_share: f64,
    /// Share of the candidate's records missing from the log (sample-ratio mismatch); 0 = none.
    pub lost_candidate: f64,
    /// 0 = no user ids; else requests spread (skewed) over this many users, each sticky to one arm.
    pub users: u64,
    /// Per-user effect strength, in units of a request's own latent noise; 0 = independent requests.
    pub user_effect: f64,
    /// Current model's median latency (lognormal, sigma 0.5).
    pub latency_ms: f64,
    /// Candidate latency = current's distribution x this.
    pub latency_factor: f64,
    pub error_rate: [f64; 2],
    /// P(up | thumbs given).
    pub thumbs_up: [f64; 2],
    /// Mean CSAT on 1..5 (exclusive of the ends).
    pub csat_mean: [f64; 2],
    /// P(correct | signal given).
    pub accuracy: [f64; 2],
    /// Fraction of answered requests with thumbs up/down.
    pub feedback_share: f64,
    /// Fraction of answered requests with a CSAT score (independent of thumbs).
    pub csat_share: f64,
    /// Fraction of answered requests with a correctness signal.
    pub correct_share: f64,
    pub seed: u64,
    /// Unix ms of the first record.
    pub start_ms: i64,
    /// The records' timestamps spread evenly (with jitter), in order, over this many seconds.
    pub span_s: f64,
    /// Variant names in the log, `[current, candidate]`.
    pub names: [String; 2],
    /// Tag values, one assigned at random per record; empty = no `tags` key.
    pub tags: Vec<String>,
}

/// One simulated request, as drawn (values already rounded to what the writers print).
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub timestamp_ms: i64,
    pub arm: Arm,
    pub latency_ms: f64,
    /// 0.0 on an errored record (absent from the written log).
    pub ttft_ms: f64,
    pub error: bool,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub thumbs_up: Option<bool>,
    pub csat: Option<u8>,
    pub correct: Option<bool>,
    pub user: Option<u64>,
    pub session: Option<u64>,
    pub tag: Option<usize>,
}

impl SimRecord {
    /// The `error` string the writers print for an errored record.
    pub fn error_kind(&self) -> Option<&'static str> {
        if !self.error {
            None
        } else if self.latency_ms >= TIMEOUT_MS {
            Some("timeout")
        } else {
            Some("http 500")
        }
    }
}

impl Scenario {
    /// Identical arms, a 50/50 split, independent requests, 1 % errors, a day of traffic.
    pub fn no_effect(requests: u64, seed: u64) -> Scenario {
        Scenario {
            requests,
            candidate_share: 0.5,
            lost_candidate: 0.0,
            users: 0,
            user_effect: 0.0,
            latency_ms: 800.0,
            latency_factor: 1.0,
            error_rate: [0.01, 0.01],
            thumbs_up: [0.8, 0.8],
            csat_mean: [4.2, 4.2],
            accuracy: [0.85, 0.85],
            feedback_share: 0.1,
            csat_share: 0.05,
            correct_share: 0.3,
            seed,
            start_ms: DEFAULT_START_MS,
            span_s: 86_400.0,
            names: ["current".to_owned(), "candidate".to_owned()],
            tags: ["billing", "shipping", "returns", "account"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Candidate latency x `factor`.
    pub fn latency_shift(mut self, factor: f64) -> Self {
        self.latency_factor = factor;
        self
    }

    /// Candidate mean CSAT = current's - `drop`.
    pub fn csat_drop(mut self, drop: f64) -> Self {
        self.csat_mean[1] = self.csat_mean[0] - drop;
        self
    }

    /// Candidate P(up) = current's - `drop`.
    pub fn thumbs_drop(mut self, drop: f64) -> Self {
        self.thumbs_up[1] = self.thumbs_up[0] - drop;
        self
    }

    /// Candidate accuracy = current's - `drop`.
    pub fn accuracy_drop(mut self, drop: f64) -> Self {
        self.accuracy[1] = self.accuracy[0] - drop;
        self
    }

    /// Candidate error rate = `rate`.
    pub fn error_spike(mut self, rate: f64) -> Self {
        self.error_rate[1] = rate;
        self
    }

    /// `lost` of the candidate's records missing from the log.
    pub fn srm(mut self, lost: f64) -> Self {
        self.lost_candidate = lost;
        self
    }

    /// Requests from `users` sticky users with per-user effect `effect` (0.5 moderate, 1 strong).
    pub fn per_user(mut self, users: u64, effect: f64) -> Self {
        self.users = users;
        self.user_effect = effect;
        self
    }

    /// Configured candidate share, e.g. 0.05 for a canary.
    pub fn split(mut self, candidate_share: f64) -> Self {
        self.candidate_share = candidate_share;
        self
    }

    /// Variant names in the log, e.g. `("control", "canary")`.
    pub fn names(mut self, current: &str, candidate: &str) -> Self {
        self.names = [current.to_owned(), candidate.to_owned()];
        self
    }

    /// The candidate's expected share of the *logged* records, after losses.
    pub fn logged_candidate_share(&self) -> f64 {
        let s = self.candidate_share.clamp(0.0, 1.0);
        let kept = s * (1.0 - self.lost_candidate.clamp(0.0, 1.0));
        if kept + (1.0 - s) == 0.0 {
            0.0
        } else {
            kept / (kept + 1.0 - s)
        }
    }

    /// What is wrong with the parameters, if anything (the generator clamps rather than fails).
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v} is not in [0, 1]"))
            }
        };
        unit("candidate_share", self.candidate_share)?;
        unit("lost_candidate", self.lost_candidate)?;
        unit("feedback_share", self.feedback_share)?;
        unit("csat_share", self.csat_share)?;
        unit("correct_share", self.correct_share)?;
        for a in 0..2 {
            unit("error_rate", self.error_rate[a])?;
            unit("thumbs_up", self.thumbs_up[a])?;
            unit("accuracy", self.accuracy[a])?;
            let m = self.csat_mean[a];
            if !(m > 1.0 && m < 5.0) {
                return Err(format!("csat_mean = {m} is not strictly between 1 and 5"));
            }
        }
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} = {v} is not a positive number"))
            }
        };
        positive("latency_ms", self.latency_ms)?;
        positive("latency_factor", self.latency_factor)?;
        if !(self.user_effect >= 0.0 && self.user_effect.is_finite()) {
            return Err(format!("user_effect = {} is negative", self.user_effect));
        }
        if !(self.span_s >= 0.0 && self.span_s.is_finite()) {
            return Err(format!("span_s = {} is negative", self.span_s));
        }
        Ok(())
    }

    /// The log, drawn record by record: deterministic for a seed, constant memory.
    pub fn records(&self) -> impl Iterator<Item = SimRecord> + '_ {
        Records {
            truth: Truth::new(self),
            rng: fastrand::Rng::with_seed(self.seed),
            next: 0,
            requests: self.requests,
        }
    }

    /// Writes the log as JSONL; returns the records written.
    pub fn write_jsonl(&self, w: impl Write) -> io::Result<u64> {
        self.write_jsonl_from(self.records(), w)
    }

    /// Writes the log as CSV with a header; returns the records written.
    pub fn write_csv(&self, w: impl Write) -> io::Result<u64> {
        self.write_csv_from(self.records(), w)
    }

    /// Writes `records` (e.g. this scenario's, edited) as JSONL with this scenario's names and tags.
    pub fn write_jsonl_from(
        &self,
        records: impl IntoIterator<Item = SimRecord>,
        w: impl Write,
    ) -> io::Result<u64> {
        let names = self.names.clone().map(|n| json_string(&n));
        let tags: Vec<Vec<u8>> = self.tags.iter().map(|t| json_string(t)).collect();
        write_lines(records, w, Vec::new(), |buf, r, day| {
            json_line(buf, r, day, &names, &tags)
        })
    }

    /// Writes `records` as CSV with this scenario's names and tags.
    pub fn write_csv_from(
        &self,
        records: impl IntoIterator<Item = SimRecord>,
        w: impl Write,
    ) -> io::Result<u64> {
        let names = self.names.clone().map(|n| csv_field(&n));
        let tags: Vec<Vec<u8>> = self.tags.iter().map(|t| csv_field(t)).collect();
        let header = format!("{}\n", CSV_HEADER.join(",")).into_bytes();
        write_lines(records, w, header, |buf, r, day| {
            csv_line(buf, r, day, &names, &tags)
        })
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 14] = [
    "timestamp",
    "variant",
    "latency_ms",
    "ttft_ms",
    "error",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "feedback",
    "csat",
    "correct",
    "user_id",
    "session_id",
    "tags",
];

// ---------------------------------------------------------------------------------------------
// Drawing

/// A probability that a user's effect shifts on the probit scale, keeping the population mean.
#[derive(Debug, Clone, Copy)]
struct Probit {
    p: f64,
    /// Intercept such that E_z[Phi(intercept + e z)] = p for z ~ N(0, 1).
    intercept: f64,
}

impl Probit {
    fn new(p: f64, effect: f64) -> Probit {
        let p = clamp_unit(p);
        Probit {
            p,
            intercept: inverse_phi(p) * (1.0 + effect * effect).sqrt(),
        }
    }

    fn at(self, shift: f64) -> f64 {
        if shift == 0.0 || self.p == 0.0 || self.p == 1.0 {
            self.p
        } else {
            phi(self.intercept + shift)
        }
    }
}

/// The scenario's parameters, prepared for drawing.
struct Truth {
    share: f64,
    lost: f64,
    users: u64,
    effect: f64,
    seed: u64,
    log_median: [f64; 2],
    error: [Probit; 2],
    up: [Probit; 2],
    correct: [Probit; 2],
    csat_latent: [f64; 2],
    feedback_share: f64,
    csat_share: f64,
    correct_share: f64,
    start_ms: i64,
    step_ms: f64,
    tags: usize,
}

impl Truth {
    fn new(s: &Scenario) -> Truth {
        let effect = if s.users > 0 {
            s.user_effect.max(0.0)
        } else {
            0.0
        };
        let csat_sd = CSAT_NOISE * (1.0 + effect * effect).sqrt();
        let base = s.latency_ms.max(f64::MIN_POSITIVE).ln();
        Truth {
            share: clamp_unit(s.candidate_share),
            lost: clamp_unit(s.lost_candidate),
            users: s.users,
            effect,
            seed: s.seed,
            log_median: [base, base + s.latency_factor.max(f64::MIN_POSITIVE).ln()],
            error: s.error_rate.map(|p| Probit::new(p, effect)),
            up: s.thumbs_up.map(|p| Probit::new(p, effect)),
            correct: s.accuracy.map(|p| Probit::new(p, effect)),
            csat_latent: s.csat_mean.map(|m| csat_latent_mean(m, csat_sd)),
            feedback_share: clamp_unit(s.feedback_share),
            csat_share: clamp_unit(s.csat_share),
            correct_share: clamp_unit(s.correct_share),
            start_ms: s.start_ms,
            step_ms: if s.requests == 0 {
                0.0
            } else {
                s.span_s.max(0.0) * 1000.0 / s.requests as f64
            },
            tags: s.tags.len(),
        }
    }

    fn user_arm(&self, user: u64) -> Arm {
        if unit(mix(self.seed ^ SALT_ARM ^ mix(user))) < self.share {
            Arm::Candidate
        } else {
            Arm::Current
        }
    }

    /// The user's (experience, error) effects: independent standard normals.
    fn user_effects(&self, user: u64) -> (f64, f64) {
        let h = mix(self.seed ^ SALT_EFFECT ^ mix(user));
        let u1 = 1.0 - unit(h);
        let u2 = unit(mix(h));
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        (radius * cos, radius * sin)
    }

    fn session(&self, user: u64, timestamp_ms: i64) -> u64 {
        let window = (timestamp_ms - self.start_ms).div_euclid(SESSION_MS) as u64;
        mix(self.seed ^ SALT_SESSION ^ mix(user) ^ mix(window)) >> 24
    }
}

const SALT_ARM: u64 = 0x6172_6d73_0000_0001;
const SALT_EFFECT: u64 = 0x7573_6572_0000_0002;
const SALT_SESSION: u64 = 0x7365_7373_0000_0003;

struct Records {
    truth: Truth,
    rng: fastrand::Rng,
    next: u64,
    requests: u64,
}

impl Iterator for Records {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        while self.next < self.requests {
            let i = self.next;
            self.next += 1;
            if let Some(record) = self.draw(i) {
                return Some(record);
            }
        }
        None
    }
}

impl Records {
    /// Request `i`, or `None` when it is a lost candidate record. Always consumes the same
    /// random numbers, so scenarios with one seed share everything their parameters don't change.
    fn draw(&mut self, i: u64) -> Option<SimRecord> {
        let t = &self.truth;
        let r = &mut self.rng;
        let [u_arm, u_lost, u_time, u_user] = [r.f64(), r.f64(), r.f64(), r.f64()];
        let (n_latency, n_input) = normal_pair(r);
        let (n_output, _) = normal_pair(r);
        let [u_ttft, u_error, u_kind, u_tag] = [r.f64(), r.f64(), r.f64(), r.f64()];
        let [u_fb, u_up, u_csat_given, u_csat] = [r.f64(), r.f64(), r.f64(), r.f64()];
        let [u_correct_given, u_correct] = [r.f64(), r.f64()];

        let (user, arm) = if t.users > 0 {
            let user = ((u_user * u_user * t.users as f64) as u64).min(t.users - 1);
            (Some(user), t.user_arm(user))
        } else if u_arm < t.share {
            (None, Arm::Candidate)
        } else {
            (None, Arm::Current)
        };
        if arm == Arm::Candidate && u_lost < t.lost {
            return None;
        }
        let a = arm.index();
        let (shift, error_shift) = match user {
            Some(user) if t.effect > 0.0 => {
                let (z, w) = t.user_effects(user);
                (t.effect * z, t.effect * w)
            }
            _ => (0.0, 0.0),
        };

        // Non-negative, so truncation is floor (here and in `nearest`: libm calls cost).
        let timestamp_ms = t.start_ms + ((i as f64 + u_time) * t.step_ms) as i64;
        let drawn = (t.log_median[a] + LATENCY_SIGMA * n_latency - LATENCY_USER * shift).exp();
        let input_tokens = nearest(400.0 * (0.8 * n_input).exp()).clamp(1, 200_000) as u32;
        let error = u_error < t.error[a].at(error_shift);

        let mut record = SimRecord {
            timestamp_ms,
            arm,
            latency_ms: 0.0,
            ttft_ms: 0.0,
            error,
            input_tokens,
            output_tokens: 0,
            cost_usd: 0.0,
            thumbs_up: None,
            csat: None,
            correct: None,
            user,
            session: user.map(|u| t.session(u, timestamp_ms)),
            tag: (t.tags > 0).then(|| ((u_tag * t.tags as f64) as usize).min(t.tags - 1)),
        };
        if error {
            record.latency_ms = if u_kind < TIMEOUT_SHARE {
                TIMEOUT_MS
            } else {
                // Kept below the timeout so the kind reads back from the latency.
                tenths((drawn * FAIL_FAST).min(TIMEOUT_MS - 1.0))
            };
        } else {
            record.latency_ms = tenths(drawn);
            record.ttft_ms = tenths(drawn * (0.1 + 0.3 * u_ttft));
            record.output_tokens = nearest(150.0 * (0.7 * n_output).exp()).clamp(1, 16_000) as u32;
            record.thumbs_up = (u_fb < t.feedback_share).then(|| u_up < t.up[a].at(shift));
            record.csat = (u_csat_given < t.csat_share).then(|| {
                let latent = t.csat_latent[a] + CSAT_NOISE * (shift + inverse_phi(u_csat));
                latent.round().clamp(1.0, 5.0) as u8
            });
            record.correct =
                (u_correct_given < t.correct_share).then(|| u_correct < t.correct[a].at(shift));
        }
        // In units of 1e-8 dollars, exactly, so the printed value parses back to this one.
        let cost = u64::from(record.input_tokens) * INPUT_PRICE
            + u64::from(record.output_tokens) * OUTPUT_PRICE;
        record.cost_usd = cost as f64 / COST_UNITS;
        Some(record)
    }
}

fn tenths(x: f64) -> f64 {
    nearest(x * 10.0) as f64 / 10.0
}

/// `x.round()` for non-negative `x` (0 for negative), without the libm call.
fn nearest(x: f64) -> u64 {
    (x + 0.5) as u64
}

fn clamp_unit(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// Two independent standard normals (Box-Muller).
fn normal_pair(rng: &mut fastrand::Rng) -> (f64, f64) {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    let radius = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
    (radius * cos, radius * sin)
}

/// splitmix64's finaliser: a well-mixed hash of one word.
fn mix(x: u64) -> u64 {
    let mut x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The standard normal CDF, via erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn phi(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * (-z * z + poly).exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
fn inverse_phi(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Mean of `clamp(round(N(mu, sd)), 1, 5)`: 1 + sum over k of P(score > k).
fn csat_mean_at(mu: f64, sd: f64) -> f64 {
    1.0 + (1..=4)
        .map(|k| phi((mu - (f64::from(k) + 0.5)) / sd))
        .sum::<f64>()
}

/// The latent mean whose rounded, clamped scores have mean `target` (bisection; the mean is
/// increasing in mu).
fn csat_latent_mean(target: f64, sd: f64) -> f64 {
    let target = if target.is_nan() {
        3.0
    } else {
        target.clamp(1.0 + 1e-9, 5.0 - 1e-9)
    };
    let (mut lo, mut hi) = (1.0 - 12.0 * sd - 12.0, 5.0 + 12.0 * sd + 12.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if csat_mean_at(mid, sd) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

// ---------------------------------------------------------------------------------------------
// Writing

/// The "YYYY-MM-DDT" of the last day formatted: records come in order, so it rarely changes.
struct DayCache {
    day: i64,
    prefix: Vec<u8>,
}

fn write_lines(
    records: impl IntoIterator<Item = SimRecord>,
    mut w: impl Write,
    mut buf: Vec<u8>,
    mut line: impl FnMut(&mut Vec<u8>, &SimRecord, &mut DayCache),
) -> io::Result<u64> {
    const CHUNK: usize = 1 << 16;
    buf.reserve(CHUNK + 1024);
    let mut day = DayCache {
        day: i64::MIN,
        prefix: Vec::new(),
    };
    let mut written = 0;
    for record in records {
        line(&mut buf, &record, &mut day);
        written += 1;
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    w.flush()?;
    Ok(written)
}

fn json_line(
    buf: &mut Vec<u8>,
    r: &SimRecord,
    day: &mut DayCache,
    names: &[Vec<u8>; 2],
    tags: &[Vec<u8>],
) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(buf, r.timestamp_ms, day);
    buf.extend_from_slice(b"\",\"variant\":");
    buf.extend_from_slice(&names[r.arm.index()]);
    buf.extend_from_slice(b",\"latency_ms\":");
    push_tenths(buf, r.latency_ms);
    if !r.error {
        buf.extend_from_slice(b",\"ttft_ms\":");
        push_tenths(buf, r.ttft_ms);
    }
    buf.extend_from_slice(b",\"error\":");
    match r.error_kind() {
        Some(kind) => {
            buf.push(b'"');
            buf.extend_from_slice(kind.as_bytes());
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"input_tokens\":");
    push_u64(buf, r.input_tokens.into());
    buf.extend_from_slice(b",\"output_tokens\":");
    push_u64(buf, r.output_tokens.into());
    buf.extend_from_slice(b",\"cost_usd\":");
    push_cost(buf, r.cost_usd);
    if let Some(up) = r.thumbs_up {
        buf.extend_from_slice(if up {
            b",\"feedback\":\"up\""
        } else {
            b",\"feedback\":\"down\""
        });
    }
    if let Some(csat) = r.csat {
        buf.extend_from_slice(b",\"csat\":");
        push_u64(buf, csat.into());
    }
    if let Some(correct) = r.correct {
        buf.extend_from_slice(if correct {
            b",\"correct\":true"
        } else {
            b",\"correct\":false"
        });
    }
    if let Some(user) = r.user {
        buf.extend_from_slice(b",\"user_id\":\"u-");
        push_u64(buf, user);
        buf.push(b'"');
    }
    if let Some(session) = r.session {
        buf.extend_from_slice(b",\"session_id\":\"s-");
        push_u64(buf, session);
        buf.push(b'"');
    }
    if let Some(tag) = r.tag.and_then(|t| tags.get(t)) {
        buf.extend_from_slice(b",\"tags\":[");
        buf.extend_from_slice(tag);
        buf.push(b']');
    }
    buf.extend_from_slice(b"}\n");
}

fn csv_line(
    buf: &mut Vec<u8>,
    r: &SimRecord,
    day: &mut DayCache,
    names: &[Vec<u8>; 2],
    tags: &[Vec<u8>],
) {
    push_timestamp(buf, r.timestamp_ms, day);
    buf.push(b',');
    buf.extend_from_slice(&names[r.arm.index()]);
    buf.push(b',');
    push_tenths(buf, r.latency_ms);
    buf.push(b',');
    if !r.error {
        push_tenths(buf, r.ttft_ms);
    }
    buf.push(b',');
    if let Some(kind) = r.error_kind() {
        buf.extend_from_slice(kind.as_bytes());
    }
    buf.push(b',');
    push_u64(buf, r.input_tokens.into());
    buf.push(b',');
    push_u64(buf, r.output_tokens.into());
    buf.push(b',');
    push_cost(buf, r.cost_usd);
    buf.push(b',');
    if let Some(up) = r.thumbs_up {
        buf.extend_from_slice(if up { b"up" } else { b"down" });
    }
    buf.push(b',');
    if let Some(csat) = r.csat {
        push_u64(buf, csat.into());
    }
    buf.push(b',');
    if let Some(correct) = r.correct {
        buf.extend_from_slice(if correct { b"true" } else { b"false" });
    }
    buf.push(b',');
    if let Some(user) = r.user {
        buf.extend_from_slice(b"u-");
        push_u64(buf, user);
    }
    buf.push(b',');
    if let Some(session) = r.session {
        buf.extend_from_slice(b"s-");
        push_u64(buf, session);
    }
    buf.push(b',');
    if let Some(tag) = r.tag.and_then(|t| tags.get(t)) {
        buf.extend_from_slice(tag);
    }
    buf.push(b'\n');
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

fn csv_field(s: &str) -> Vec<u8> {
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into_bytes()
    } else {
        s.as_bytes().to_vec()
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// A non-negative value with one decimal: "412.3".
fn push_tenths(buf: &mut Vec<u8>, x: f64) {
    let t = nearest(x * 10.0);
    push_u64(buf, t / 10);
    buf.push(b'.');
    buf.push(b'0' + (t % 10) as u8);
}

/// A non-negative amount to 8 decimals, trailing zeros trimmed: "0.00123".
fn push_cost(buf: &mut Vec<u8>, x: f64) {
    const SCALE: u64 = COST_UNITS as u64;
    let n = nearest(x * COST_UNITS);
    push_u64(buf, n / SCALE);
    buf.push(b'.');
    let mut frac = n % SCALE;
    let mut digits = [b'0'; 8];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let used = digits
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(1, |last| last + 1);
    buf.extend_from_slice(&digits[..used]);
}

/// RFC 3339 UTC with milliseconds: "2026-11-30T12:00:00.123Z".
fn push_timestamp(buf: &mut Vec<u8>, ms: i64, cache: &mut DayCache) {
    const DAY_MS: i64 = 86_400_000;
    let day = ms.div_euclid(DAY_MS);
    if day != cache.day {
        let (y, m, d) = civil_from_days(day);
        cache.day = day;
        cache.prefix = format!("{y:04}-{m:02}-{d:02}T").into_bytes();
    }
    buf.extend_from_slice(&cache.prefix);
    let of_day = ms.rem_euclid(DAY_MS) as u64;
    let (s, milli) = (of_day / 1000, of_day % 1000);
    let two = |buf: &mut Vec<u8>, v: u64| {
        buf.push(b'0' + (v / 10) as u8);
        buf.push(b'0' + (v % 10) as u8);
    };
    two(buf, s / 3600);
    buf.push(b':');
    two(buf, s / 60 % 60);
    buf.push(b':');
    two(buf, s % 60);
    buf.push(b'.');
    buf.push(b'0' + (milli / 100) as u8);
    two(buf, milli % 100);
    buf.push(b'Z');
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The timestamp as the writers print it.
pub fn format_timestamp(ms: i64) -> String {
    let mut buf = Vec::with_capacity(24);
    let mut cache = DayCache {
        day: i64::MIN,
        prefix: Vec::new(),
    };
    push_timestamp(&mut buf, ms, &mut cache);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Asserts |observed - expected| <= k standard errors.
    fn within(what: &str, observed: f64, expected: f64, se: f64, k: f64) {
        assert!(
            (observed - expected).abs() <= k * se,
            "{what}: observed {observed:.5}, truth {expected:.5}, {:.1} standard errors off (se {se:.5})",
            (observed - expected) / se
        );
    }

    fn rate(xs: impl Iterator<Item = bool>) -> (f64, f64) {
        let (mut n, mut k) = (0.0, 0.0);
        for x in xs {
            n += 1.0;
            k += f64::from(u8::from(x));
        }
        let p = k / n;
        (p, (p * (1.0 - p) / n).sqrt())
    }

    fn mean_se(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, (v / n).sqrt())
    }

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    }

    #[test]
    fn timestamps_format_known_dates() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(DEFAULT_START_MS),
            "2026-11-30T12:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(951_868_799_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_timestamp(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_timestamp(1_709_210_096_123),
            "2024-02-29T12:34:56.123Z"
        );
        // Against the time crate, at random instants from 1900 to 2286.
        let format = time::format_description::well_known::Rfc3339;
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let ms = rng.i64(-2_208_988_800_000..10_000_000_000_000);
            let reference =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap()
                    .format(&format)
                    .unwrap();
            // time prints fractional seconds without trailing zeros; compare as instants.
            let ours = format_timestamp(ms);
            let parsed = time::OffsetDateTime::parse(&ours, &format).unwrap();
            assert_eq!(
                parsed.unix_timestamp_nanos() / 1_000_000,
                i128::from(ms),
                "{ours}"
            );
            assert_eq!(ours[..19], reference[..19]);
        }
    }

    #[test]
    fn normal_cdf_and_quantile_are_accurate() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.959_963_984_540_054) - 0.975).abs() < 1e-7);
        assert!((phi(-1.0) - 0.158_655_253_931_457_05).abs() < 1e-7);
        assert!((phi(-3.0) - 0.001_349_898_031_630_094_6).abs() < 1e-9);
        assert!((inverse_phi(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((inverse_phi(0.001) + 3.090_232_306_167_813_5).abs() < 1e-8);
        for p in [1e-6, 0.01, 0.2, 0.5, 0.77, 0.99, 0.999_999] {
            assert!((phi(inverse_phi(p)) - p).abs() < 1e-7 * p.max(1e-3), "{p}");
        }
        assert_eq!(inverse_phi(0.0), f64::NEG_INFINITY);
        assert_eq!(phi(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn csat_scores_have_the_configured_mean() {
        for target in [1.1, 2.0, 3.3, 4.2, 4.6, 4.95] {
            for sd in [1.0, 2f64.sqrt()] {
                let mu = csat_latent_mean(target, sd);
                assert!(
                    (csat_mean_at(mu, sd) - target).abs() < 1e-9,
                    "{target} {sd}"
                );
            }
            // Drawn as the generator draws them.
            let mu = csat_latent_mean(target, CSAT_NOISE);
            let mut rng = fastrand::Rng::with_seed(target.to_bits());
            let scores: Vec<f64> = (0..200_000)
                .map(|_| {
                    let s = (mu + CSAT_NOISE * inverse_phi(rng.f64()))
                        .round()
                        .clamp(1.0, 5.0);
                    assert!(s.fract() == 0.0 && (1.0..=5.0).contains(&s));
                    s
                })
                .collect();
            let (m, se) = mean_se(&scores);
            within("csat mean", m, target, se, 4.0);
        }
    }

    /// Every parameter of both arms, read back from 200k records within 4 standard errors.
    #[test]
    fn the_log_shows_the_truth() {
        let mut s = Scenario::no_effect(200_000, 11).split(0.3).srm(0.1);
        s.error_rate = [0.02, 0.05];
        s.thumbs_up = [0.8, 0.7];
        s.csat_mean = [4.2, 3.9];
        s.accuracy = [0.85, 0.8];
        s.latency_factor = 1.3;
        s.feedback_share = 0.2;
        s.csat_share = 0.2;
        let records: Vec<SimRecord> = s.records().collect();
        let n = records.len() as f64;
        // Candidate share after the losses.
        let expected = s.logged_candidate_share();
        assert!((expected - 0.27 / 0.97).abs() < 1e-12);
        let (share, se) = rate(records.iter().map(|r| r.arm == Arm::Candidate));
        within(
            "candidate share",
            share,
            expected,
            se.max((expected * (1.0 - expected) / n).sqrt()),
            4.0,
        );
        // Requests drawn = records + lost: about 10 % of 30 %.
        within(
            "lost",
            (200_000.0 - n) / 200_000.0,
            0.03,
            (0.03f64 * 0.97 / 200_000.0).sqrt(),
            4.0,
        );

        let mut medians = [0.0; 2];
        for arm in Arm::BOTH {
            let a = arm.index();
            let mine: Vec<&SimRecord> = records.iter().filter(|r| r.arm == arm).collect();
            let (p, se) = rate(mine.iter().map(|r| r.error));
            within("error rate", p, s.error_rate[a], se, 4.0);
            let answered: Vec<&&SimRecord> = mine.iter().filter(|r| !r.error).collect();
            assert!(
                mine.iter()
                    .filter(|r| r.error)
                    .all(|r| r.thumbs_up.is_none()
                        && r.csat.is_none()
                        && r.correct.is_none()
                        && r.output_tokens == 0)
            );
            let (p, se) = rate(answered.iter().filter_map(|r| r.thumbs_up));
            within("thumbs up", p, s.thumbs_up[a], se, 4.0);
            let (p, se) = rate(answered.iter().filter_map(|r| r.correct));
            within("accuracy", p, s.accuracy[a], se, 4.0);
            let csat: Vec<f64> = answered
                .iter()
                .filter_map(|r| r.csat.map(f64::from))
                .collect();
            let (m, se) = mean_se(&csat);
            within("csat", m, s.csat_mean[a], se, 4.0);
            // Signal fractions.
            let given = |f: fn(&SimRecord) -> bool| rate(answered.iter().map(|r| f(r)));
            let (p, se) = given(|r| r.thumbs_up.is_some());
            within("feedback share", p, s.feedback_share, se, 4.0);
            let (p, se) = given(|r| r.correct.is_some());
            within("correct share", p, s.correct_share, se, 4.0);
            medians[a] = median(answered.iter().map(|r| r.latency_ms).collect());
            // The sample median of a lognormal: se of its log is sqrt(pi/2) sigma / sqrt(n).
            let se_log = (std::f64::consts::PI / 2.0).sqrt() * LATENCY_SIGMA
                / (answered.len() as f64).sqrt();
            let truth = s.latency_ms * if a == 1 { s.latency_factor } else { 1.0 };
            within(
                "log median latency",
                medians[a].ln(),
                truth.ln(),
                se_log,
                4.0,
            );
            // Timeouts are 30 % of errors.
            let errors = mine.iter().filter(|r| r.error).count() as f64;
            let timeouts = mine
                .iter()
                .filter(|r| r.error_kind() == Some("timeout"))
                .count() as f64;
            within(
                "timeouts",
                timeouts / errors,
                TIMEOUT_SHARE,
                (0.21 / errors).sqrt(),
                4.0,
            );
        }
        within(
            "median ratio",
            (medians[1] / medians[0]).ln(),
            1.3f64.ln(),
            0.01,
            4.0,
        );
        // In order, within the span.
        assert!(
            records
                .windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
        let end = s.start_ms + (s.span_s * 1000.0) as i64;
        assert!(
            records
                .iter()
                .all(|r| (s.start_ms..=end).contains(&r.timestamp_ms))
        );
        assert!(records[0].timestamp_ms - s.start_ms < 5000);
        assert!(end - records.last().unwrap().timestamp_ms < 5000);
    }

    #[test]
    fn a_seed_determines_the_log_and_harms_change_only_their_field() {
        let none = Scenario::no_effect(20_000, 5);
        let a: Vec<SimRecord> = none.records().collect();
        assert_eq!(a, none.records().collect::<Vec<_>>());
        assert_ne!(
            a,
            Scenario::no_effect(20_000, 6).records().collect::<Vec<_>>()
        );

        let drop: Vec<SimRecord> = none.clone().csat_drop(0.5).records().collect();
        assert_eq!(a.len(), drop.len());
        let mut changed = 0;
        for (x, y) in a.iter().zip(&drop) {
            let mut y = y.clone();
            if y.csat != x.csat {
                assert_eq!(x.arm, Arm::Candidate);
                assert!(y.csat < x.csat);
                changed += 1;
                y.csat = x.csat;
            }
            assert_eq!(*x, y);
        }
        assert!(changed > 50, "{changed}");

        // A lost record is just missing: the rest are the same records.
        let lost: Vec<SimRecord> = none.clone().srm(0.2).records().collect();
        let kept: std::collections::HashSet<i64> = lost.iter().map(|r| r.timestamp_ms).collect();
        assert!(lost.len() < a.len());
        let survivors: Vec<&SimRecord> = a
            .iter()
            .filter(|r| r.arm == Arm::Current || kept.contains(&r.timestamp_ms))
            .collect();
        assert!(lost.iter().zip(&survivors).all(|(x, y)| x == *y));
    }

    #[test]
    fn users_are_sticky_and_skewed() {
        let s = Scenario::no_effect(100_000, 3)
            .split(0.2)
            .per_user(5_000, 0.0);
        let mut arms: HashMap<u64, Arm> = HashMap::new();
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for r in s.records() {
            let user = r.user.expect("a user id");
            assert!(user < 5_000);
            assert!(r.session.is_some());
            assert_eq!(
                *arms.entry(user).or_insert(r.arm),
                r.arm,
                "user {user} in both arms"
            );
            *counts.entry(user).or_default() += 1;
        }
        let (p, se) = rate(arms.values().map(|a| *a == Arm::Candidate));
        within("users on the candidate", p, 0.2, se, 4.0);
        let most = counts.values().max().copied().unwrap_or(0);
        assert!(most > 1_000, "the heaviest user has {most} requests");
        // User 0 draws 1/sqrt(5000) of the traffic.
        within(
            "user 0",
            counts[&0] as f64 / 1e5,
            5_000f64.sqrt().recip(),
            0.0005,
            4.0,
        );

        let none = Scenario::no_effect(1_000, 3);
        assert!(
            none.records()
                .all(|r| r.user.is_none() && r.session.is_none())
        );
    }

    /// Ratio of the between-user variance of per-user means to what independent requests give
    /// (about 1 without an effect), over users with at least `min` observations.
    fn clustering(records: &[SimRecord], value: fn(&SimRecord) -> Option<f64>, min: usize) -> f64 {
        let mut per_user: HashMap<u64, Vec<f64>> = HashMap::new();
        for r in records {
            if let (Some(u), Some(v)) = (r.user, value(r)) {
                per_user.entry(u).or_default().push(v);
            }
        }
        let all: Vec<f64> = per_user.values().flatten().copied().collect();
        let (grand, se) = mean_se(&all);
        let variance = se * se * all.len() as f64;
        let groups: Vec<&Vec<f64>> = per_user.values().filter(|v| v.len() >= min).collect();
        let k = groups.len() as f64;
        // Sum of (mean_u - grand)^2 / (variance / n_u): chi-square with about k degrees of
        // freedom under independence.
        let chi2: f64 = groups
            .iter()
            .map(|v| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (m - grand).powi(2) * v.len() as f64 / variance
            })
            .sum();
        chi2 / k
    }

    #[test]
    fn a_users_requests_hang_together() {
        let csat = |r: &SimRecord| r.csat.map(f64::from);
        let error = |r: &SimRecord| Some(f64::from(u8::from(r.error)));
        let independent: Vec<SimRecord> = Scenario::no_effect(200_000, 8)
            .per_user(2_000, 0.0)
            .records()
            .collect();
        let correlated: Vec<SimRecord> = Scenario::no_effect(200_000, 8)
            .per_user(2_000, 1.0)
            .records()
            .collect();
        let ratio = clustering(&independent, csat, 5);
        assert!((0.85..1.15).contains(&ratio), "independent csat: {ratio}");
        let ratio = clustering(&correlated, csat, 5);
        assert!(ratio > 2.0, "correlated csat: {ratio}");
        let ratio = clustering(&independent, error, 50);
        assert!((0.8..1.2).contains(&ratio), "independent errors: {ratio}");
        let ratio = clustering(&correlated, error, 50);
        assert!(ratio > 2.0, "correlated errors: {ratio}");
    }

    /// With a user effect the per-arm means are still the configured ones, within clustered
    /// standard errors (users are the independent units).
    #[test]
    fn user_effects_keep_the_means() {
        let mut s = Scenario::no_effect(300_000, 21).per_user(20_000, 1.0);
        s.csat_share = 0.3;
        s.feedback_share = 0.3;
        s.error_rate = [0.05, 0.05];
        let records: Vec<SimRecord> = s.records().collect();
        for arm in Arm::BOTH {
            let a = arm.index();
            let check = |what: &str, value: &dyn Fn(&SimRecord) -> Option<f64>, truth: f64| {
                let mut sums: HashMap<u64, (f64, f64)> = HashMap::new();
                for r in records.iter().filter(|r| r.arm == arm) {
                    if let (Some(u), Some(v)) = (r.user, value(r)) {
                        let e = sums.entry(u).or_default();
                        e.0 += v;
                        e.1 += 1.0;
                    }
                }
                let total: f64 = sums.values().map(|e| e.0).sum();
                let n: f64 = sums.values().map(|e| e.1).sum();
                let m = total / n;
                let k = sums.len() as f64;
                // The cluster-robust variance of a ratio estimator.
                let v: f64 = sums.values().map(|e| (e.0 - m * e.1).powi(2)).sum::<f64>() * k
                    / (k - 1.0)
                    / (n * n);
                within(what, m, truth, v.sqrt(), 4.0);
            };
            check("csat", &|r| r.csat.map(f64::from), s.csat_mean[a]);
            check(
                "thumbs",
                &|r| r.thumbs_up.map(|b| f64::from(u8::from(b))),
                s.thumbs_up[a],
            );
            check(
                "errors",
                &|r| Some(f64::from(u8::from(r.error))),
                s.error_rate[a],
            );
        }
    }

    #[test]
    fn jsonl_lines_parse_and_match_the_records() {
        let s = Scenario::no_effect(5_000, 2)
            .per_user(100, 0.5)
            .names("control", "canary")
            .error_spike(0.2);
        let mut out = Vec::new();
        let written = s.write_jsonl(&mut out).unwrap();
        let records: Vec<SimRecord> = s.records().collect();
        assert_eq!(written, records.len() as u64);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), records.len());
        let mut missing_feedback = 0;
        for (line, r) in text.lines().zip(&records) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let o = v.as_object().unwrap();
            assert_eq!(o["timestamp"], format_timestamp(r.timestamp_ms));
            assert_eq!(
                o["variant"],
                if r.arm == Arm::Current {
                    "control"
                } else {
                    "canary"
                }
            );
            assert_eq!(o["latency_ms"].as_f64(), Some(r.latency_ms));
            assert_eq!(
                o.get("ttft_ms").and_then(|t| t.as_f64()),
                (!r.error).then_some(r.ttft_ms)
            );
            match r.error_kind() {
                Some(kind) => assert_eq!(o["error"], kind),
                None => assert!(o["error"].is_null()),
            }
            assert_eq!(o["input_tokens"].as_u64(), Some(u64::from(r.input_tokens)));
            assert_eq!(
                o["output_tokens"].as_u64(),
                Some(u64::from(r.output_tokens))
            );
            assert_eq!(o["cost_usd"].as_f64(), Some(r.cost_usd));
            assert_eq!(
                o.get("feedback").and_then(|f| f.as_str()),
                r.thumbs_up.map(|u| if u { "up" } else { "down" })
            );
            assert_eq!(
                o.get("csat").and_then(|c| c.as_u64()),
                r.csat.map(u64::from)
            );
            assert_eq!(o.get("correct").and_then(|c| c.as_bool()), r.correct);
            assert_eq!(o["user_id"], format!("u-{}", r.user.unwrap()));
            assert_eq!(o["session_id"], format!("s-{}", r.session.unwrap()));
            assert_eq!(o["tags"][0], s.tags[r.tag.unwrap()].as_str());
            missing_feedback += usize::from(!o.contains_key("feedback"));
        }
        assert!(missing_feedback > records.len() / 2);
        assert!(text.contains("\"error\":\"timeout\"") && text.contains("\"error\":\"http 500\""));

        // No users, no tags: no such keys.
        let mut bare = Scenario::no_effect(100, 2);
        bare.tags.clear();
        let mut out = Vec::new();
        bare.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("user_id") && !text.contains("session_id") && !text.contains("tags")
        );
    }

    #[test]
    fn csv_has_the_header_and_every_column() {
        let s = Scenario::no_effect(3_000, 4)
            .per_user(50, 0.3)
            .error_spike(0.1);
        let mut out = Vec::new();
        let written = s.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "timestamp,variant,latency_ms,ttft_ms,error,input_tokens,output_tokens,cost_usd,feedback,csat,correct,user_id,session_id,tags"
            )
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len() as u64, written);
        for (row, r) in rows.iter().zip(s.records()) {
            let cells: Vec<&str> = row.split(',').collect();
            assert_eq!(cells.len(), 14, "{row}");
            assert_eq!(cells[0], format_timestamp(r.timestamp_ms));
            assert_eq!(cells[2].parse::<f64>().unwrap(), r.latency_ms);
            assert_eq!(cells[4], r.error_kind().unwrap_or(""));
            assert_eq!(cells[7].parse::<f64>().unwrap(), r.cost_usd);
            assert_eq!(cells[9], r.csat.map(|c| c.to_string()).unwrap_or_default());
        }
        // Names that need quoting are quoted.
        let odd = Scenario::no_effect(10, 4).names("a,b", "say \"hi\"");
        let mut out = Vec::new();
        odd.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(",\"a,b\",") || text.contains(",\"say \"\"hi\"\"\","));
    }

    #[test]
    fn numbers_print_as_parsed() {
        let print = |f: fn(&mut Vec<u8>, f64), x: f64| {
            let mut buf = Vec::new();
            f(&mut buf, x);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(print(push_tenths, 412.0), "412.0");
        assert_eq!(print(push_tenths, 0.3), "0.3");
        assert_eq!(print(push_tenths, 30_000.0), "30000.0");
        assert_eq!(print(push_cost, 0.00123), "0.00123");
        assert_eq!(print(push_cost, 0.0), "0.0");
        assert_eq!(print(push_cost, 1.5), "1.5");
        assert_eq!(print(push_cost, 0.00000001), "0.00000001");
        assert_eq!(print(push_cost, 12.0102), "12.0102");
        let mut buf = Vec::new();
        push_u64(&mut buf, u64::MAX);
        assert_eq!(buf, u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn edges_do_not_panic() {
        assert_eq!(Scenario::no_effect(0, 1).records().count(), 0);
        assert!(
            Scenario::no_effect(1_000, 1)
                .split(0.0)
                .records()
                .all(|r| r.arm == Arm::Current)
        );
        assert!(
            Scenario::no_effect(1_000, 1)
                .srm(1.0)
                .records()
                .all(|r| r.arm == Arm::Current)
        );
        assert_eq!(
            Scenario::no_effect(1_000, 1)
                .srm(1.0)
                .logged_candidate_share(),
            0.0
        );
        let mut s = Scenario::no_effect(2_000, 1).per_user(1, 2.0);
        s.error_rate = [0.0, 1.0];
        s.csat_mean = [1.0, 5.0];
        s.thumbs_up = [0.0, 1.0];
        assert!(s.validate().is_err());
        assert!(s.records().all(|r| r.user == Some(0)));
        let s = s.split(1.0);
        assert!(s.records().all(|r| r.error && r.arm == Arm::Candidate));
        assert!(Scenario::no_effect(10, 1).validate().is_ok());
    }
}
