//! Gates decided along the way: `goldgate run --until-decided` takes the items in a seeded
//! random order and, after every batch, evaluates each gate with an **anytime-valid** interval —
//! a confidence sequence, which holds at every look at once, so stopping at the first look that
//! decides keeps the stated error rate (a fixed-sample interval looked at after every batch
//! does not: `stats::sequential`'s simulations show both). The run stops once the verdict is
//! decided: a gate failed, or every gate that can hold the run passed.
//!
//! Which gates hold the run: `decide = "noninferiority"` gates on a bounded metric (accuracy and
//! the other rates, faithfulness, similarity) and on latency percentiles. A `harm` gate fails
//! the run as soon as its harm is shown, and otherwise never holds it (it cannot show "no harm at
//! all"). A `point` gate, and a gate on an unbounded metric (cost) or on macro-F1, has no
//! anytime-valid interval here: it never holds the run and is judged at the end as in any run.

use serde::{Deserialize, Serialize};

use super::{Bound, Gate, GateResult, GateTest, Outcome};
use crate::golden::Items;
use crate::metrics::ItemTallies;
use crate::metrics::evidence::{item_mean, percentile_of, value_range};
use crate::record::{ResultRecord, Side};
use crate::stats::sequential::{MeanSequence, quantile_sequence, ratio_interval};
use crate::stats::{Decide, Interval};

/// How a `--until-decided` run takes its items and when it looks (`sequential` in run.json).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialPlan {
    /// The seed of the items' random order.
    pub seed: u64,
    /// The gates are evaluated each time this many more items are complete, in order.
    pub batch: usize,
    /// No look before this many items.
    pub min_items: usize,
    /// The items the run could take (the golden set after --limit, cut at --max-items).
    pub items_total: usize,
}

/// What one look concluded of one gate, on the items complete so far in the run's order.
#[derive(Debug, Clone)]
pub struct Look {
    pub outcome: Outcome,
    /// Whether this gate keeps the run going until it is decided.
    pub holds: bool,
    pub statistic: String,
    pub estimate: f64,
    pub interval: Interval,
    pub null: f64,
    pub lower_is_worse: bool,
    pub units: usize,
    pub method: &'static str,
}

const MEAN_METHOD: &str = "anytime-valid: predictable plug-in empirical-Bernstein confidence sequence (Waudby-Smith & Ramdas 2024), items in a seeded random order";
const QUANTILE_METHOD: &str = "anytime-valid: time-uniform confidence sequences for quantiles (Howard & Ramdas 2022), each at half the error rate";

/// Each gate's look over the first `prefix` items (in the run's order) that both models
/// completed; `None` for a gate with no anytime-valid interval.
pub fn look(
    gates: &[Gate],
    items: &Items,
    tallies: &ItemTallies,
    prefix: usize,
    repeats: u32,
    confidence: f64,
) -> Vec<Option<Look>> {
    // Harm gates share the error rate (Bonferroni): each can fail the run on its own.
    let harm = gates
        .iter()
        .filter(|g| g.decide() == Decide::Harm)
        .count()
        .max(1);
    gates
        .iter()
        .map(|g| {
            let decide = g.decide();
            let confidence = match decide {
                Decide::Point => return None,
                Decide::Harm => 1.0 - (1.0 - confidence) / harm as f64,
                Decide::Noninferiority => confidence,
            };
            let in_scope = |i: usize| {
                tallies[i].is_complete(repeats)
                    && g.metric
                        .tag
                        .as_deref()
                        .is_none_or(|tag| items.tags(i).any(|t| t == tag))
            };
            let mut look = match percentile_of(g.metric.kind) {
                Some(q) => percentile_look(g, tallies, prefix, q, confidence, &in_scope),
                None => mean_look(g, tallies, prefix, confidence, &in_scope),
            }?;
            look.holds = decide == Decide::Noninferiority;
            if decide == Decide::Harm && look.outcome == Outcome::Pass {
                // Harm is only ever shown, never ruled out: undecided until the end.
                look.outcome = Outcome::Inconclusive;
            }
            Some(look)
        })
        .collect()
}

/// Where an interval lies against the bound: wholly on the good side, wholly on the bad side,
/// or across it.
fn decide(interval: Interval, null: f64, lower_is_worse: bool) -> Outcome {
    let (good, bad) = if lower_is_worse {
        (interval.low > null, interval.high < null)
    } else {
        (interval.high < null, interval.low > null)
    };
    if good {
        Outcome::Pass
    } else if bad {
        Outcome::Fail
    } else {
        Outcome::Inconclusive
    }
}

/// A gate on a bounded mean (a rate, a 1–5 score): per item, candidate − r × current (ratio
/// bounds) or the candidate's value (absolute bounds), rescaled to [0, 1] for the sequence.
fn mean_look(
    g: &Gate,
    tallies: &ItemTallies,
    prefix: usize,
    confidence: f64,
    in_scope: &dyn Fn(usize) -> bool,
) -> Option<Look> {
    let kind = g.metric.kind;
    let (lo, hi) = value_range(kind);
    if !hi.is_finite() {
        return None;
    }
    let (ratio, null, lower_is_worse) = match g.bound {
        Bound::MinRatio(r) => (Some(r), 0.0, true),
        Bound::MaxRatio(r) => (Some(r), 0.0, false),
        Bound::Min(v) => (None, v, true),
        Bound::Max(v) => (None, v, false),
    };
    // The values the per-item statistic can take.
    let (low, high) = match ratio {
        Some(r) => (lo - r * hi, hi - r * lo),
        None => (lo, hi),
    };
    let width = high - low;
    let mut sequence = MeanSequence::new(confidence);
    let mut sum = 0.0;
    for i in (0..prefix).filter(|&i| in_scope(i)) {
        let t = &tallies[i];
        let Some(c) = item_mean(kind, t, Side::Candidate) else {
            continue;
        };
        let v = match ratio {
            Some(r) => match item_mean(kind, t, Side::Current) {
                Some(b) => c - r * b,
                None => continue,
            },
            None => c,
        };
        sum += v;
        sequence.push((v - low) / width);
    }
    let units = sequence.len();
    if units == 0 {
        return None;
    }
    let interval = sequence
        .interval()
        .map(|x| low + x * width)
        .clamp(low, high);
    Some(Look {
        outcome: decide(interval, null, lower_is_worse),
        holds: true,
        statistic: match ratio {
            Some(r) => format!("mean per item of candidate - {r} x current"),
            None => "candidate".to_owned(),
        },
        estimate: sum / units as f64,
        interval,
        null,
        lower_is_worse,
        units,
        method: MEAN_METHOD,
    })
}

/// A gate on a latency percentile: a confidence sequence for each model's quantile, and for a
/// ratio bound the ratio of the two (each at half the error rate).
fn percentile_look(
    g: &Gate,
    tallies: &ItemTallies,
    prefix: usize,
    q: f64,
    confidence: f64,
    in_scope: &dyn Fn(usize) -> bool,
) -> Option<Look> {
    let sorted = |side: Side| {
        let mut v: Vec<f64> = tallies
            .latencies(side)
            .iter()
            .filter(|(i, _)| (*i as usize) < prefix && in_scope(*i as usize))
            .map(|&(_, ms)| f64::from(ms))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let candidate = sorted(Side::Candidate);
    if candidate.is_empty() {
        return None;
    }
    let point = |v: &[f64]| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let half = 1.0 - (1.0 - confidence) / 2.0;
    let (statistic, estimate, interval, null, lower_is_worse) = match g.bound {
        Bound::MinRatio(r) | Bound::MaxRatio(r) => {
            let current = sorted(Side::Current);
            if current.is_empty() {
                return None;
            }
            let c = quantile_sequence(&candidate, q, half);
            let b = quantile_sequence(&current, q, half);
            let interval = ratio_interval(c, b);
            (
                "candidate / current".to_owned(),
                point(&candidate) / point(&current),
                interval,
                r,
                matches!(g.bound, Bound::MinRatio(_)),
            )
        }
        Bound::Min(v) | Bound::Max(v) => (
            "candidate".to_owned(),
            point(&candidate),
            quantile_sequence(&candidate, q, confidence),
            v,
            matches!(g.bound, Bound::Min(_)),
        ),
    };
    Some(Look {
        outcome: decide(interval, null, lower_is_worse),
        holds: true,
        statistic,
        estimate,
        interval,
        null,
        lower_is_worse,
        units: candidate.len(),
        method: QUANTILE_METHOD,
    })
}

/// Whether the looks decide the verdict: a gate failed, or every gate that holds the run passed
/// (and at least one does: with none, nothing says when enough is enough).
pub fn verdict_decided(looks: &[Option<Look>]) -> bool {
    let looks: Vec<&Look> = looks.iter().flatten().collect();
    looks.iter().any(|l| l.outcome == Outcome::Fail)
        || (looks.iter().any(|l| l.holds)
            && looks
                .iter()
                .filter(|l| l.holds)
                .all(|l| l.outcome == Outcome::Pass))
}

/// Whether any gate can hold the run: without one, `--until-decided` runs every item.
pub fn any_holds(gates: &[Gate]) -> bool {
    gates.iter().any(|g| {
        g.decide() == Decide::Noninferiority
            && (percentile_of(g.metric.kind).is_some() || value_range(g.metric.kind).1.is_finite())
    })
}

/// A run's gate results with the anytime-valid looks in place of the fixed-sample tests: what a
/// `--until-decided` run's summary says, recomputed the same way by `goldgate report`. A harm
/// gate whose harm was never shown passes, as in any run.
pub fn apply(results: &mut [GateResult], looks: &[Option<Look>]) {
    for (r, look) in results.iter_mut().zip(looks) {
        let Some(l) = look else { continue };
        r.outcome = match (r.decide, l.outcome) {
            (Decide::Harm, Outcome::Inconclusive) => Outcome::Pass,
            (_, o) => o,
        };
        r.pass = r.outcome == Outcome::Pass;
        r.note = None;
        r.test = Some(GateTest {
            statistic: l.statistic.clone(),
            estimate: l.estimate,
            interval: l.interval,
            null: l.null,
            lower_is_worse: l.lower_is_worse,
            p_value: None,
            p_adjusted: None,
            method: l.method.to_owned(),
            items: l.units,
            clusters: l.units,
            se: f64::NAN,
            mde: None,
            items_to_decide: None,
        });
    }
}

/// Follows a `--until-decided` run: results as they arrive, a look at each point of the plan
/// the items complete in the run's order reach, and whether the verdict is decided.
pub struct Monitor {
    gates: Vec<Gate>,
    plan: SequentialPlan,
    repeats: u32,
    confidence: f64,
    items: std::sync::Arc<Items>,
    tallies: ItemTallies,
    /// Items complete (both models, every trial) from the first, in order.
    prefix: usize,
    next_look: usize,
    decided: bool,
}

impl Monitor {
    /// `tallies`: what the run already holds (a resumed run), or empty.
    pub fn new(
        gates: Vec<Gate>,
        plan: SequentialPlan,
        repeats: u32,
        confidence: f64,
        items: std::sync::Arc<Items>,
        tallies: ItemTallies,
    ) -> Monitor {
        Monitor {
            next_look: plan.min_items.max(1),
            gates,
            plan,
            repeats,
            confidence,
            items,
            tallies,
            prefix: 0,
            decided: false,
        }
    }

    pub fn record(&mut self, item: usize, r: &ResultRecord) {
        self.tallies.record(item, r);
    }

    /// After a batch of results: look at each point of the plan the complete items have
    /// reached ([`look_points`]), and say whether the verdict is decided (then the run schedules
    /// nothing more). The points are fixed by the plan, not by when answers arrive, so
    /// `goldgate report` replays the same looks ([`replay`]).
    pub fn decided(&mut self) -> bool {
        if self.decided {
            return true;
        }
        while self.prefix < self.tallies.len()
            && self.tallies[self.prefix].is_complete(self.repeats)
        {
            self.prefix += 1;
        }
        while !self.decided && self.prefix >= self.next_look {
            let looks = look(
                &self.gates,
                &self.items,
                &self.tallies,
                self.next_look,
                self.repeats,
                self.confidence,
            );
            self.decided = verdict_decided(&looks);
            self.next_look += self.plan.batch.max(1);
        }
        self.decided
    }
}

/// The looks of a plan over `complete` items in order: at `min_items`, then every `batch` more.
fn look_points(plan: &SequentialPlan, complete: usize) -> impl Iterator<Item = usize> {
    (plan.min_items.max(1)..=complete).step_by(plan.batch.max(1))
}

/// What a `--until-decided` run's looks concluded, replayed from its items.
pub struct Replay {
    pub looks: Vec<Option<Look>>,
    /// The items the deciding (or last) look was over.
    pub at: usize,
    pub decided: bool,
}

/// The run's looks replayed over its first `complete` items (each complete on both models, in
/// the run's order): the first that decides the verdict, as the run stopped on it; else, when
/// the items ran out (`ended`), one last look over all of them — a stop that is no look of the
/// plan is a stop too — else the last look taken.
#[allow(clippy::too_many_arguments)]
pub fn replay(
    gates: &[Gate],
    plan: &SequentialPlan,
    items: &Items,
    tallies: &ItemTallies,
    complete: usize,
    repeats: u32,
    confidence: f64,
    ended: bool,
) -> Replay {
    let at = |n: usize| look(gates, items, tallies, n, repeats, confidence);
    let mut last = None;
    for n in look_points(plan, complete) {
        let looks = at(n);
        if verdict_decided(&looks) {
            return Replay {
                looks,
                at: n,
                decided: true,
            };
        }
        last = Some((n, looks));
    }
    match last {
        Some((n, looks)) if !ended || n == complete => Replay {
            looks,
            at: n,
            decided: false,
        },
        _ => {
            let looks = at(complete);
            let decided = verdict_decided(&looks);
            Replay {
                looks,
                at: complete,
                decided,
            }
        }
    }
}

/// `sequential` in summary.json: how far a `--until-decided` run went, and why it stopped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequentialInfo {
    pub seed: u64,
    pub batch: usize,
    pub min_items: usize,
    /// Items answered by both models: those the looks saw, and any in flight at the stop.
    pub items_used: usize,
    pub items_total: usize,
    /// The items of the look that decided the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<usize>,
    /// `decided` (the verdict was settled), `exhausted` (the items ran out first) or
    /// `interrupted`.
    pub stopped: String,
}

impl SequentialInfo {
    /// `decided after 640 of 10,000 items (6.4% of the calls)`.
    pub fn describe(&self) -> String {
        let share = 100.0 * self.items_used as f64 / self.items_total.max(1) as f64;
        match self.stopped.as_str() {
            "decided" => format!(
                "decided after {} of {} items ({share:.1}% of the calls)",
                self.decided_at.unwrap_or(self.items_used),
                self.items_total
            ),
            "exhausted" => format!(
                "all {} items used: no look settled the verdict earlier",
                self.items_used
            ),
            _ => format!(
                "interrupted after {} of {} items (--resume continues in the same order)",
                self.items_used, self.items_total
            ),
        }
    }
}

/// A seeded random order of the items: a uniform shuffle of the groups (an item without a
/// `group` is its own), each group's items kept together, since a confidence sequence needs its
/// observations in an order that knows nothing of their outcomes — and, uniform, every tag is
/// represented in proportion from the first items on, in expectation. (A stratified order would
/// fix the proportions exactly but make each next item's distribution depend on the ones
/// before, which the sequence's guarantee does not cover.)
pub fn order(items: &Items, seed: u64) -> Vec<usize> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    #[derive(Deserialize)]
    struct Group<'a> {
        #[serde(borrow, default)]
        group: Option<std::borrow::Cow<'a, str>>,
    }
    for i in 0..items.len() {
        // An item alone is keyed apart from every group name (a NUL starts no group's name).
        let key = items
            .get_as::<Group>(i)
            .group
            .map_or_else(|| format!("\u{0}{}", items.id(i)), |g| g.into_owned());
        match index.get(&key) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![i]));
            }
        }
    }
    // By key first (a group's items by id), so the order depends on the seed and the items,
    // not on the file's order.
    for (_, members) in &mut groups {
        members.sort_by(|&a, &b| items.id(a).cmp(items.id(b)));
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = fastrand::Rng::with_seed(seed);
    rng.shuffle(&mut groups);
    groups
        .into_iter()
        .flat_map(|(_, members)| members)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::Item;

    fn items(specs: &[(&str, Option<&str>)]) -> Items {
        let mut items = Items::default();
        for (id, group) in specs {
            let mut item: Item = serde_json::from_value(serde_json::json!({
                "id": id, "question": "q", "keywords": ["k"]
            }))
            .unwrap();
            item.group = group.map(str::to_owned);
            items.push(&item);
        }
        items
    }

    fn look_with(outcome: Outcome, holds: bool) -> Option<Look> {
        Some(Look {
            outcome,
            holds,
            statistic: String::new(),
            estimate: 0.0,
            interval: Interval::new(0.0, 0.0),
            null: 0.0,
            lower_is_worse: true,
            units: 1,
            method: MEAN_METHOD,
        })
    }

    #[test]
    fn the_order_is_a_seeded_permutation_that_keeps_groups_together() {
        let specs: Vec<(String, Option<&str>)> = (0..40)
            .map(|i| (format!("i{i:02}"), (i % 4 == 0).then_some("g")))
            .collect();
        let refs: Vec<(&str, Option<&str>)> =
            specs.iter().map(|(id, g)| (id.as_str(), *g)).collect();
        let set = items(&refs);
        let a = order(&set, 7);
        assert_eq!(a, order(&set, 7), "the same seed, the same order");
        assert_ne!(a, order(&set, 8), "another seed, another order");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<_>>(), "a permutation");
        assert_ne!(a, sorted, "shuffled");
        // The group's ten items come one after another.
        let at: Vec<usize> = a
            .iter()
            .enumerate()
            .filter(|&(_, &i)| i % 4 == 0)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(at.last().unwrap() - at[0], at.len() - 1, "{at:?}");
        // The file's order does not matter, only the items.
        let reversed: Vec<(&str, Option<&str>)> = refs.iter().rev().copied().collect();
        let b = order(&items(&reversed), 7);
        let ids = |set: &Items, o: &[usize]| -> Vec<String> {
            o.iter().map(|&i| set.id(i).to_owned()).collect()
        };
        assert_eq!(ids(&set, &a), ids(&items(&reversed), &b));
    }

    #[test]
    fn the_verdict_is_decided_by_a_failure_or_every_holding_pass() {
        use Outcome::*;
        assert!(verdict_decided(&[
            look_with(Fail, false),
            look_with(Inconclusive, true)
        ]));
        assert!(verdict_decided(&[
            look_with(Pass, true),
            None,
            look_with(Inconclusive, false)
        ]));
        assert!(!verdict_decided(&[
            look_with(Pass, true),
            look_with(Inconclusive, true)
        ]));
        // Nothing holds the run: nothing says when enough is enough.
        assert!(!verdict_decided(&[look_with(Inconclusive, false), None]));
        assert!(!verdict_decided(&[]));
    }
}
