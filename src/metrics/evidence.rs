//! The item-level evidence of a run, for the statistics: per item and model what its trials
//! scored, each item's cluster (its `group`, or itself), and the intervals and paired
//! comparisons computed from them. The arithmetic is in [`crate::stats`]; this module knows what
//! an item, a metric and a tag are.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{ItemTallies, ItemTally, MetricKind, MetricRef, Metrics, Unit};
use crate::golden::Items;
use crate::record::Side;
use crate::stats::{self, Interval, PairedUnits, Scale, Settings};

/// What a run's statistics are computed from.
pub struct Evidence<'a> {
    items: &'a Items,
    tallies: &'a ItemTallies,
    /// The items in id order: every sum and every cluster number is taken in this order, so the
    /// same results give the same intervals bit for bit whatever order the items came in (a
    /// merged sharded run has the intervals of the unsharded one).
    order: Vec<usize>,
    /// Per item, its cluster: the number of its group, or one of its own, numbered in id order.
    cluster: Vec<u32>,
    /// The count of clusters: `cluster` holds 0..clusters.
    clusters: usize,
    /// Per tag, its items in id order: a per-tag metric walks its own items, not every item
    /// (a report with thousands of per-tag gates stays linear in the items).
    tag_items: HashMap<String, Vec<usize>>,
    /// Per model, each item's answered latencies: `latency_ms[side][offsets[side][i]..][..]`.
    latency_ms: [Vec<f32>; 2],
    latency_offsets: [Vec<u32>; 2],
    /// Items that carry a `group`.
    pub grouped_items: usize,
    pub settings: Settings,
}

/// Where a metric's per-item values come from.
enum Source {
    /// A mean over trials: (sum, count) per item and model.
    Mean {
        proportion: bool,
    },
    /// A percentile of the answered trials' latencies.
    Percentile(f64),
    MacroF1,
}

fn source(kind: MetricKind) -> Source {
    match kind {
        MetricKind::LatencyP50 => Source::Percentile(0.50),
        MetricKind::LatencyP90 => Source::Percentile(0.90),
        MetricKind::LatencyP95 => Source::Percentile(0.95),
        MetricKind::LatencyP99 => Source::Percentile(0.99),
        MetricKind::MacroF1 => Source::MacroF1,
        k => Source::Mean {
            proportion: k.info().unit == Unit::Proportion,
        },
    }
}

/// One item's value of a mean-type metric on one model, its trials averaged; `None` when the
/// item has none (no context to be faithful to, nothing answered) or the metric is not a mean.
pub fn item_mean(kind: MetricKind, t: &ItemTally, side: Side) -> Option<f64> {
    item_value(kind, t, side).map(|(sum, n)| sum / n)
}

/// The quantile a latency percentile metric is of (`latency_p95_ms`: 0.95).
pub fn percentile_of(kind: MetricKind) -> Option<f64> {
    match source(kind) {
        Source::Percentile(q) => Some(q),
        _ => None,
    }
}

/// The (sum, count) of one item's trials on one model for a mean-type metric; `None` when the
/// item has no value for it on that model (no context to be faithful to, nothing answered).
fn item_value(kind: MetricKind, t: &ItemTally, side: Side) -> Option<(f64, f64)> {
    let s = &t.sums[side];
    let done = f64::from(t.done[side]);
    let v = match kind {
        MetricKind::Accuracy => (f64::from(t.passed[side]), done),
        MetricKind::ErrorRate => (f64::from(s.errors), done),
        MetricKind::ForbiddenRate => (f64::from(s.forbidden), done),
        MetricKind::Faithfulness => (f64::from(s.faithfulness), f64::from(s.faithfulness_n)),
        MetricKind::FaithfulnessSupport => (f64::from(s.support), f64::from(s.support_n)),
        MetricKind::Similarity => (f64::from(s.similarity), f64::from(s.similarity_n)),
        MetricKind::CostPer1k => (f64::from(s.cost_usd) * 1000.0, f64::from(s.answered)),
        MetricKind::RefusalRate => (f64::from(s.refusals), done),
        MetricKind::EmptyRate => (f64::from(s.empty), done),
        MetricKind::ExactMatch => (f64::from(s.exact), f64::from(s.exact_n)),
        MetricKind::JsonValidity => (f64::from(s.json_valid), f64::from(s.json_n)),
        MetricKind::LengthRatio => (f64::from(s.length_ratio), f64::from(s.length_n)),
        _ => return None,
    };
    (v.1 > 0.0).then_some(v)
}

/// The values a metric can take, for clamping an interval (a mean of 1–5 scores is never 5.2).
pub fn value_range(kind: MetricKind) -> (f64, f64) {
    match kind.info().unit {
        Unit::Proportion | Unit::Fraction => (0.0, 1.0),
        Unit::Score => (1.0, 5.0),
        Unit::Millis | Unit::Usd | Unit::Ratio => (0.0, f64::INFINITY),
    }
}

/// A paired comparison of the two models on one metric (`comparisons` in summary.json).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub metric: MetricRef,
    /// candidate − current, the mean over items of the per-item difference.
    pub difference: f64,
    pub interval: Interval,
    /// Two-sided p-value of "no difference": McNemar's exact test where every item has one
    /// pass/fail trial, else the paired t test.
    pub p_value: f64,
    pub method: String,
    /// Items compared (both models have a value), and the independent clusters among them.
    pub items: usize,
    pub clusters: usize,
    /// Correlation of the two models' per-item values: what pairing saved.
    pub correlation: f64,
}

/// pass@k, pass^k and flakiness of one model over repeated trials (`repeats` > 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepeatStats {
    pub k: u32,
    /// Mean over items of the chance that at least one of k trials passes.
    pub pass_at_k: f64,
    /// Mean over items of the chance that all k trials pass.
    pub pass_hat_k: f64,
    /// Items that passed every trial, none, or some (flaky).
    pub stable_pass: usize,
    pub stable_fail: usize,
    pub flaky: usize,
    /// The share of accuracy's variance that comes from trials disagreeing within items, not
    /// from items differing: near 0 for a deterministic model; more repeats shrink it.
    pub within_item_share: Option<f64>,
}

impl<'a> Evidence<'a> {
    pub fn new(items: &'a Items, tallies: &'a ItemTallies, settings: Settings) -> Evidence<'a> {
        #[derive(Deserialize)]
        struct GroupOnly<'b> {
            #[serde(borrow, default)]
            group: Option<std::borrow::Cow<'b, str>>,
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_unstable_by(|&a, &b| items.id(a).cmp(items.id(b)));
        let mut groups: HashMap<String, u32> = HashMap::new();
        let mut grouped_items = 0;
        // Clusters numbered 0.. in id order: an item alone, or a group at its first item.
        let mut clusters = 0u32;
        let mut cluster = vec![0; items.len()];
        for &i in &order {
            // Most sets have no groups: look for the key before parsing the item.
            let json = items.json(i);
            let group = if json.windows(8).any(|w| w == b"\"group\":") {
                items.get_as::<GroupOnly>(i).group
            } else {
                None
            };
            cluster[i] = match group {
                Some(g) => {
                    grouped_items += 1;
                    *groups.entry(g.into_owned()).or_insert_with(|| {
                        clusters += 1;
                        clusters - 1
                    })
                }
                None => {
                    clusters += 1;
                    clusters - 1
                }
            };
        }
        let mut tag_items: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in &order {
            for tag in items.tags(i) {
                match tag_items.get_mut(tag) {
                    Some(v) => v.push(i),
                    None => {
                        tag_items.insert(tag.to_owned(), vec![i]);
                    }
                }
            }
        }
        // Latencies grouped by item (a counting sort), so a tag's are found by its items.
        let by_item = |side: Side| {
            let all = tallies.latencies(side);
            let mut offsets = vec![0u32; items.len() + 1];
            for &(i, _) in all {
                offsets[i as usize + 1] += 1;
            }
            for k in 1..offsets.len() {
                offsets[k] += offsets[k - 1];
            }
            let mut next = offsets.clone();
            let mut values = vec![0f32; all.len()];
            for &(i, ms) in all {
                values[next[i as usize] as usize] = ms;
                next[i as usize] += 1;
            }
            (values, offsets)
        };
        let (cur, cand) = (by_item(Side::Current), by_item(Side::Candidate));
        Evidence {
            items,
            tallies,
            order,
            cluster,
            clusters: clusters as usize,
            tag_items,
            latency_ms: [cur.0, cand.0],
            latency_offsets: [cur.1, cand.1],
            grouped_items,
            settings,
        }
    }

    /// The items a metric on `tag` counts, in id order (every item for an overall metric).
    fn scope(&self, tag: Option<&str>) -> &[usize] {
        match tag {
            None => &self.order,
            Some(t) => self.tag_items.get(t).map_or(&[], Vec::as_slice),
        }
    }

    /// Whether each item counts for a metric on `tag`; `None` for every item.
    fn in_scope_mask(&self, tag: Option<&str>) -> Option<Vec<bool>> {
        tag.map(|t| {
            let mut mask = vec![false; self.items.len()];
            for &i in self.scope(Some(t)) {
                mask[i] = true;
            }
            mask
        })
    }

    /// Per cluster (dense numbering), the (sum, count) of a mean-type metric on one model.
    fn cluster_sums(
        &self,
        kind: MetricKind,
        side: Side,
        tag: Option<&str>,
    ) -> (Vec<f64>, Vec<f64>) {
        let scope = self.scope(tag);
        let values = scope.iter().filter_map(|&i| {
            item_value(kind, &self.tallies[i], side).map(|v| (self.cluster[i] as usize, v))
        });
        if scope.len() * 8 >= self.clusters {
            // Indexed by cluster id, then the empty ones dropped: no hashing for the whole set.
            let (mut sums, mut counts) = (vec![0.0; self.clusters], vec![0.0; self.clusters]);
            for (k, (s, n)) in values {
                sums[k] += s;
                counts[k] += n;
            }
            let kept: Vec<usize> = (0..self.clusters).filter(|&k| counts[k] > 0.0).collect();
            (
                kept.iter().map(|&k| sums[k]).collect(),
                kept.iter().map(|&k| counts[k]).collect(),
            )
        } else {
            // A small tag of a large set: only its own clusters, in order of first appearance.
            let mut index: HashMap<usize, usize> = HashMap::new();
            let (mut sums, mut counts) = (Vec::new(), Vec::new());
            for (c, (s, n)) in values {
                let k = *index.entry(c).or_insert_with(|| {
                    sums.push(0.0);
                    counts.push(0.0);
                    sums.len() - 1
                });
                sums[k] += s;
                counts[k] += n;
            }
            (sums, counts)
        }
    }

    /// One model's answered latencies of the items on `tag` (all items for `None`), sorted, with
    /// each one's cluster.
    fn sorted_latencies(&self, side: Side, tag: Option<&str>) -> Vec<(f32, u32)> {
        let k = side as usize;
        let (values, offsets) = (&self.latency_ms[k], &self.latency_offsets[k]);
        let mut v: Vec<(f32, u32)> = Vec::new();
        for &i in self.scope(tag) {
            let range = offsets[i] as usize..offsets[i + 1] as usize;
            v.extend(values[range].iter().map(|&ms| (ms, self.cluster[i])));
        }
        v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }

    /// The interval of one model's metric (overall or on a tag).
    pub fn interval(&self, side: Side, metric: &MetricRef) -> Option<Interval> {
        self.interval_cached(side, metric, &mut None)
    }

    /// [`Evidence::interval`], keeping the sorted latencies in `sorted` for the next percentile
    /// of the same model and scope.
    fn interval_cached(
        &self,
        side: Side,
        metric: &MetricRef,
        sorted: &mut Option<Vec<(f32, u32)>>,
    ) -> Option<Interval> {
        let tag = metric.tag.as_deref();
        let conf = self.settings.confidence;
        match source(metric.kind) {
            Source::Mean { proportion } => {
                let (sums, counts) = self.cluster_sums(metric.kind, side, tag);
                if proportion {
                    let e = stats::clustered_mean(&sums, &counts)?;
                    Some(stats::proportion_interval(&e, conf))
                } else {
                    let (lo, hi) = value_range(metric.kind);
                    let (_, i) = stats::mean_interval(
                        &sums,
                        &counts,
                        (lo, hi),
                        conf,
                        &self.settings.bootstrap(),
                    )?;
                    Some(i.clamp(lo, hi))
                }
            }
            Source::Percentile(q) => {
                let sorted = sorted.get_or_insert_with(|| self.sorted_latencies(side, tag));
                percentile_interval(sorted, q, conf)
            }
            Source::MacroF1 => {
                let mask = self.in_scope_mask(tag);
                let (clusters, preds, labels) = self.predictions(side, mask.as_deref());
                let mut reps = self
                    .settings
                    .bootstrap()
                    .run(clusters, |w| macro_f1(&preds, labels, Some(w)));
                macro_f1(&preds, labels, None)?;
                Some(stats::percentile_interval(&mut reps, conf).clamp(0.0, 1.0))
            }
        }
    }

    /// One model's labelled trials in scope as (dense cluster, expected, predicted), the count
    /// of clusters, and the count of labels.
    fn predictions(
        &self,
        side: Side,
        mask: Option<&[bool]>,
    ) -> (usize, Vec<(u32, u32, u32)>, usize) {
        let (preds, labels) = self.tallies.predictions(side);
        let kept: Vec<(u32, u32, u32)> = preds
            .iter()
            .filter(|(i, ..)| mask.is_none_or(|m| m[*i as usize]))
            .map(|&(i, e, p)| (self.cluster[i as usize], e, p))
            .collect();
        let index = dense(kept.iter().map(|k| k.0));
        let out = kept.iter().map(|&(c, e, p)| (index[&c], e, p)).collect();
        (index.len(), out, labels)
    }

    /// Every interval of one model's metrics, keyed by metric name (overall, or on a tag).
    pub fn intervals(
        &self,
        side: Side,
        tag: Option<&str>,
        m: &Metrics,
    ) -> BTreeMap<String, Interval> {
        let mut sorted = None;
        super::CATALOGUE
            .iter()
            .filter(|info| (info.value)(m).is_some())
            .filter_map(|info| {
                let metric = MetricRef {
                    kind: info.kind,
                    tag: tag.map(str::to_owned),
                };
                Some((
                    info.name.to_owned(),
                    self.interval_cached(side, &metric, &mut sorted)?,
                ))
            })
            .collect()
    }

    /// The per-item values of both models for a mean-type metric: items where both have one.
    pub fn units(&self, metric: &MetricRef) -> Option<PairedUnits> {
        let Source::Mean { .. } = source(metric.kind) else {
            return None;
        };
        let tag = metric.tag.as_deref();
        let mut units = PairedUnits::default();
        for &i in self.scope(tag) {
            let t = &self.tallies[i];
            if let (Some(b), Some(c)) = (
                item_value(metric.kind, t, Side::Current),
                item_value(metric.kind, t, Side::Candidate),
            ) {
                // Means per item first: K repeats of an item are one unit, never K new items.
                units.push(b.0 / b.1, c.0 / c.1, self.cluster[i]);
            }
        }
        Some(units)
    }

    /// Whether a mean-type metric is a proportion (Wilson / MOVER intervals apply).
    pub fn is_proportion(kind: MetricKind) -> bool {
        matches!(source(kind), Source::Mean { proportion: true })
    }

    /// The values a metric's per-item means take, for the paired interval.
    pub fn scale(kind: MetricKind) -> Scale {
        let (lo, hi) = value_range(kind);
        if Evidence::is_proportion(kind) {
            Scale::Proportion
        } else if hi.is_finite() {
            Scale::Bounded(lo, hi)
        } else {
            Scale::Unbounded
        }
    }

    /// Whether McNemar's exact test applies: every unit is a single pass/fail outcome of an item
    /// of its own (one trial each, no groups).
    pub fn binary_units(&self, units: &PairedUnits) -> bool {
        let singletons = {
            let mut seen = std::collections::HashSet::new();
            units.cluster.iter().all(|c| seen.insert(*c))
        };
        singletons
            && units
                .current
                .iter()
                .chain(&units.candidate)
                .all(|&v| v == 0.0 || v == 1.0)
    }

    /// Bootstrap replicates of a metric's candidate/current ratio (percentiles) or of the
    /// candidate's value minus `r` times the current one (macro-F1): clusters of items resampled
    /// with both models' trials carried together, so the pairing is kept.
    pub fn paired_replicates(&self, metric: &MetricRef, r: f64) -> Option<Vec<f64>> {
        let tag = metric.tag.as_deref();
        let mask = self.in_scope_mask(tag);
        // Dense cluster numbers over everything in scope, shared by both models, in cluster
        // order (so the same clusters draw the same weights whatever order results came in).
        let index = dense(self.scope(tag).iter().map(|&i| self.cluster[i]));
        let densify = |c: u32| index[&c];
        let boot = self.settings.bootstrap();
        match source(metric.kind) {
            Source::Percentile(q) => {
                let [b, c] = [Side::Current, Side::Candidate].map(|side| {
                    self.sorted_latencies(side, tag)
                        .into_iter()
                        .map(|(ms, k)| (ms, densify(k)))
                        .collect::<Vec<_>>()
                });
                if b.is_empty() || c.is_empty() {
                    return None;
                }
                let clusters = index.len();
                // Each cluster's count of latencies, so a resample's total is a sum over
                // clusters, not over latencies.
                let count = |v: &[(f32, u32)]| {
                    let mut n = vec![0u32; clusters];
                    for (_, k) in v {
                        n[*k as usize] += 1;
                    }
                    n
                };
                let (nb, nc) = (count(&b), count(&c));
                Some(boot.run(clusters, |w| {
                    let pb = weighted_quantile(&b, &nb, w, q)?;
                    let pc = weighted_quantile(&c, &nc, w, q)?;
                    (pb > 0.0).then(|| pc / pb)
                }))
            }
            Source::MacroF1 => {
                let (b, c) = {
                    let remap = |side| {
                        let (preds, labels) = self.tallies.predictions(side);
                        let v: Vec<(u32, u32, u32)> = preds
                            .iter()
                            .filter(|(i, ..)| mask.as_deref().is_none_or(|m| m[*i as usize]))
                            .map(|&(i, e, p)| (densify(self.cluster[i as usize]), e, p))
                            .collect();
                        (v, labels)
                    };
                    (remap(Side::Current), remap(Side::Candidate))
                };
                let clusters = index.len();
                Some(boot.run(clusters, |w| {
                    Some(macro_f1(&c.0, c.1, Some(w))? - r * macro_f1(&b.0, b.1, Some(w))?)
                }))
            }
            Source::Mean { .. } => None,
        }
    }

    /// The paired comparison of the two models on a mean-type metric.
    pub fn compare(&self, metric: &MetricRef) -> Option<Comparison> {
        let units = self.units(metric)?;
        let proportion = Evidence::is_proportion(metric.kind);
        let paired = units.linear(
            1.0,
            Evidence::scale(metric.kind),
            self.settings.confidence,
            &self.settings.bootstrap(),
        )?;
        let (p_value, method) = if proportion && self.binary_units(&units) {
            let (mut b, mut c) = (0, 0);
            for (x, y) in units.current.iter().zip(&units.candidate) {
                b += u64::from(*x > *y);
                c += u64::from(*y > *x);
            }
            (
                stats::dist::mcnemar_exact(b, c),
                "McNemar exact; Newcombe/MOVER interval",
            )
        } else {
            let df = (paired.clusters.max(2) - 1) as f64;
            let p = 2.0
                * stats::one_sided_p(paired.estimate, paired.se, 0.0, paired.estimate < 0.0, df)
                    .min(0.5);
            let method = if proportion {
                "paired t; MOVER interval"
            } else {
                "paired t (clustered)"
            };
            (p.min(1.0), method)
        };
        Some(Comparison {
            metric: metric.clone(),
            difference: paired.estimate,
            interval: paired.interval,
            p_value,
            method: method.to_owned(),
            items: paired.units,
            clusters: paired.clusters,
            correlation: paired.correlation,
        })
    }

    /// The items with a result on `metric`'s tag (all items for an overall metric), and the
    /// independent clusters among them.
    pub fn scope_size(&self, metric: &MetricRef) -> (usize, usize) {
        self.count(self.scope(metric.tag.as_deref()), |i| self.has_result(i))
    }

    /// The items in `metric`'s scope where one model has a value for it (faithfulness only where
    /// an answer was scored, a latency only where one came back), and their clusters: what its
    /// interval stands on.
    pub fn measured(&self, side: Side, metric: &MetricRef) -> (usize, usize) {
        let k = side as usize;
        let has = |i: usize| match source(metric.kind) {
            Source::Mean { .. } => item_value(metric.kind, &self.tallies[i], side).is_some(),
            Source::Percentile(_) => self.latency_offsets[k][i + 1] > self.latency_offsets[k][i],
            Source::MacroF1 => self.tallies[i].done[side] > 0,
        };
        self.count(self.scope(metric.tag.as_deref()), has)
    }

    /// Of these items, those `keep` accepts, and the clusters among them.
    fn count(&self, items: &[usize], keep: impl Fn(usize) -> bool) -> (usize, usize) {
        let mut seen = vec![false; self.clusters];
        let (mut kept, mut clusters) = (0, 0);
        for &i in items {
            if keep(i) {
                kept += 1;
                let c = &mut seen[self.cluster[i] as usize];
                clusters += usize::from(!*c);
                *c = true;
            }
        }
        (kept, clusters)
    }

    /// Whether item `i` has a result on either model.
    fn has_result(&self, i: usize) -> bool {
        let t = &self.tallies[i];
        t.done.current + t.done.candidate > 0
    }

    /// The count of independent clusters (items, or groups of items) with a result.
    pub fn clusters(&self) -> usize {
        self.count(&self.order, |i| self.has_result(i)).1
    }

    /// pass@k, pass^k and flakiness of one model, with `repeats` > 1 trials per item.
    pub fn repeat_stats(&self, side: Side, repeats: u32) -> Option<RepeatStats> {
        if repeats < 2 {
            return None;
        }
        let (mut at, mut hat, mut n) = (0.0, 0.0, 0usize);
        let (mut stable_pass, mut stable_fail, mut flaky) = (0, 0, 0);
        let (mut within, mut means) = (0.0, Vec::new());
        for &i in &self.order {
            let t = &self.tallies[i];
            let (done, passed) = (t.done[side], t.passed[side]);
            if done < repeats {
                continue;
            }
            n += 1;
            at += stats::pass_at_k(done, passed, repeats).unwrap_or(0.0);
            hat += stats::pass_hat_k(done, passed, repeats).unwrap_or(0.0);
            match passed {
                0 => stable_fail += 1,
                p if p == done => stable_pass += 1,
                _ => flaky += 1,
            }
            let p = f64::from(passed) / f64::from(done);
            // The unbiased within-item variance of the trials' 0/1 outcomes.
            within += p * (1.0 - p) * f64::from(done) / f64::from(done - 1);
            means.push(p);
        }
        if n == 0 {
            return None;
        }
        let mean = means.iter().sum::<f64>() / n as f64;
        let between = if n > 1 {
            means.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let within_per_mean = within / n as f64 / f64::from(repeats);
        Some(RepeatStats {
            k: repeats,
            pass_at_k: at / n as f64,
            pass_hat_k: hat / n as f64,
            stable_pass,
            stable_fail,
            flaky,
            within_item_share: (between > 0.0).then(|| (within_per_mean / between).min(1.0)),
        })
    }
}

/// Dense numbers (0..C) for cluster ids, in id order: a table indexed by id, no hashing.
fn dense(ids: impl Iterator<Item = u32>) -> Dense {
    let mut present: Vec<bool> = Vec::new();
    for id in ids {
        let id = id as usize;
        if id >= present.len() {
            present.resize(id + 1, false);
        }
        present[id] = true;
    }
    let mut number = vec![u32::MAX; present.len()];
    let mut next = 0;
    for (id, &p) in present.iter().enumerate() {
        if p {
            number[id] = next;
            next += 1;
        }
    }
    Dense {
        number,
        len: next as usize,
    }
}

/// The dense numbers of a set of cluster ids.
struct Dense {
    number: Vec<u32>,
    len: usize,
}

impl Dense {
    fn len(&self) -> usize {
        self.len
    }
}

impl std::ops::Index<&u32> for Dense {
    type Output = u32;
    fn index(&self, id: &u32) -> &u32 {
        &self.number[*id as usize]
    }
}

/// The distribution-free interval of the q-quantile of sorted values: order statistics at the
/// binomial ranks (Hahn & Meeker); a side with no rank is unbounded.
fn percentile_interval(sorted: &[(f32, u32)], q: f64, confidence: f64) -> Option<Interval> {
    if sorted.is_empty() {
        return None;
    }
    let (lo, hi) = stats::dist::quantile_ranks(sorted.len() as u64, q, confidence);
    let at = |rank: u64| f64::from(sorted[rank as usize - 1].0);
    Some(Interval::new(
        lo.map_or(f64::NEG_INFINITY, at).max(0.0),
        hi.map_or(f64::INFINITY, at),
    ))
}

/// The q-quantile (nearest rank, as HDR histograms take it) of sorted values whose clusters are
/// weighted by how often a bootstrap resample drew them; `counts` is each cluster's number of
/// values. A high quantile is found walking down from the top: a p95 reads 5% of the values.
fn weighted_quantile(sorted: &[(f32, u32)], counts: &[u32], w: &[u32], q: f64) -> Option<f64> {
    let total: u64 = counts
        .iter()
        .zip(w)
        .map(|(&n, &w)| u64::from(n) * u64::from(w))
        .sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    if q > 0.5 {
        // The rank-th smallest is the (total − rank + 1)-th largest.
        let from_top = total - rank + 1;
        let mut seen = 0;
        for (ms, c) in sorted.iter().rev() {
            seen += u64::from(w[*c as usize]);
            if seen >= from_top {
                return Some(f64::from(*ms));
            }
        }
        return sorted.first().map(|(ms, _)| f64::from(*ms));
    }
    let mut seen = 0;
    for (ms, c) in sorted {
        seen += u64::from(w[*c as usize]);
        if seen >= rank {
            return Some(f64::from(*ms));
        }
    }
    sorted.last().map(|(ms, _)| f64::from(*ms))
}

/// Macro-F1 over the expected classes of weighted (cluster, expected, predicted) trials, as
/// [`crate::score::Confusion`] computes it unweighted.
fn macro_f1(preds: &[(u32, u32, u32)], labels: usize, w: Option<&[u32]>) -> Option<f64> {
    let (mut tp, mut support, mut predicted) =
        (vec![0.0; labels], vec![0.0; labels], vec![0.0; labels]);
    for &(c, e, p) in preds {
        let wt = w.map_or(1.0, |w| f64::from(w[c as usize]));
        support[e as usize] += wt;
        predicted[p as usize] += wt;
        if e == p {
            tp[e as usize] += wt;
        }
    }
    let classes: Vec<usize> = (0..labels).filter(|&l| support[l] > 0.0).collect();
    if classes.is_empty() {
        return None;
    }
    let f1 = |l: usize| {
        let d = support[l] + predicted[l];
        if tp[l] > 0.0 { 2.0 * tp[l] / d } else { 0.0 }
    };
    Some(classes.iter().map(|&l| f1(l)).sum::<f64>() / classes.len() as f64)
}
