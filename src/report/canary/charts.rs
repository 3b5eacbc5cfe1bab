//! Charts: inline SVG, every coordinate computed here, so the template only places elements.

use std::fmt::Write as _;

use serde::Serialize;

use super::thousands;
use crate::canary::analysis::{Analysis, Arms, BucketFigures, Distributions, Timeline};
use crate::metrics::MetricKind;

#[derive(Serialize)]
pub(super) struct Charts {
    latency: Option<Overlay>,
    bars: Vec<Bars>,
    timeline: Vec<LineChart>,
    /// The timeline's interval width, in words.
    interval: String,
}

/// A chart's canvas: the SVG's size, the plot area inside it, and the axes' ticks.
#[derive(Serialize)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
}

#[derive(Serialize)]
struct Tick {
    at: f64,
    label: String,
    /// How an x tick's label is anchored: `middle`, or `end` near the right edge, so it stays
    /// inside the chart.
    anchor: &'static str,
}

impl Tick {
    fn x(frame: &Frame, at: f64, label: String) -> Tick {
        // About 6 px per character at 11 px.
        let half = label.chars().count() as f64 * 3.2;
        let anchor = if at + half > frame.width {
            "end"
        } else if at - half < 0.0 {
            "start"
        } else {
            "middle"
        };
        Tick { at, label, anchor }
    }
}

impl Frame {
    fn new(width: f64, height: f64) -> Frame {
        Frame {
            width,
            height,
            left: 64.0,
            right: width - 20.0,
            top: 14.0,
            bottom: height - 28.0,
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
        }
    }

    /// x of a fraction of the plot's width.
    fn x(&self, f: f64) -> f64 {
        round1(self.left + f.clamp(0.0, 1.0) * (self.right - self.left))
    }

    /// y of a fraction of the plot's height, from the bottom.
    fn y(&self, f: f64) -> f64 {
        round1(self.bottom - f.clamp(0.0, 1.0) * (self.bottom - self.top))
    }

    /// Horizontal grid lines at round values of a linear axis from `lo` to `hi`; only at whole
    /// numbers for a count.
    fn y_axis(&mut self, lo: f64, hi: f64, whole: bool, label: impl Fn(f64) -> String) {
        self.y_ticks = nice_ticks(lo, hi, 5)
            .into_iter()
            .filter(|v| !whole || v.fract() == 0.0)
            .map(|v| Tick {
                at: self.y((v - lo) / (hi - lo)),
                label: label(v),
                anchor: "end",
            })
            .collect();
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Both arms' latency histograms on the shared log-spaced bins, each as shares of its own
/// requests (a 5% canary is drawn on the scale of a 95% control), as semi-transparent steps.
#[derive(Serialize)]
struct Overlay {
    frame: Frame,
    /// The SVG path of each arm's steps, `[current, candidate]`; empty for an arm with none.
    paths: [String; 2],
    /// Each arm's p95, as a dashed vertical line.
    p95: [Option<f64>; 2],
    n: [String; 2],
    note: String,
}

fn overlay(d: &Distributions, arms: &Arms) -> Option<Overlay> {
    let edges = &d.latency_edges;
    let bins = edges.len().checked_sub(1)?;
    let totals = [0, 1].map(|a| d.latency[a].iter().take(bins).sum::<u64>());
    if bins == 0 || totals == [0, 0] {
        return None;
    }
    let shares = [0, 1].map(|a| {
        d.latency[a]
            .iter()
            .take(bins)
            .map(|&c| c as f64 / totals[a].max(1) as f64)
            .collect::<Vec<f64>>()
    });
    let top = shares.iter().flatten().copied().fold(0.0, f64::max) * 1.1;
    let top = if top > 0.0 { top } else { 1.0 };
    let (lo, hi) = (edges[0], edges[bins]);
    if !(lo > 0.0 && hi > lo) {
        return None;
    }
    let span = (hi / lo).ln();
    let mut frame = Frame::new(1100.0, 300.0);
    let fx = |ms: f64| (ms / lo).ln() / span;
    frame.y_axis(0.0, top, false, percent_label);
    frame.x_ticks = log_ticks(lo, hi)
        .into_iter()
        .map(|v| Tick::x(&frame, frame.x(fx(v)), MetricKind::LatencyP50.format(v)))
        .collect();
    let paths = [0, 1].map(|a| {
        if totals[a] == 0 {
            return String::new();
        }
        let mut p = format!("M{},{}", frame.x(0.0), frame.bottom);
        for (i, s) in shares[a].iter().enumerate() {
            let y = frame.y(s / top);
            let _ = write!(
                p,
                " L{},{y} L{},{y}",
                frame.x(fx(edges[i])),
                frame.x(fx(edges[i + 1]))
            );
        }
        let _ = write!(p, " L{},{} Z", frame.x(1.0), frame.bottom);
        p
    });
    let p95 = [&arms.current, &arms.candidate].map(|f| {
        f.latency_ms
            .map(|p| p.p95)
            .filter(|&v| v >= lo && v <= hi)
            .map(|v| frame.x(fx(v)))
    });
    Some(Overlay {
        note: format!(
            "{} log-spaced bins from {} to {}; each arm's share of its own requests, so arms of any size compare. The first and last bins also hold everything below and above.",
            bins,
            MetricKind::LatencyP50.format(lo),
            MetricKind::LatencyP50.format(hi)
        ),
        frame,
        paths,
        p95,
        n: totals.map(thousands),
    })
}

/// Grouped bars: per category, each arm's share of its own answers.
#[derive(Serialize)]
struct Bars {
    id: &'static str,
    title: &'static str,
    frame: Frame,
    groups: Vec<BarGroup>,
    n: [String; 2],
}

#[derive(Serialize)]
struct BarGroup {
    label: String,
    center: f64,
    bars: [Bar; 2],
}

#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    /// The share, printed above the bar.
    label: String,
    /// For the tooltip: the count behind it.
    title: String,
}

fn bars(
    id: &'static str,
    title: &'static str,
    labels: &[&str],
    counts: [&[u64]; 2],
) -> Option<Bars> {
    let totals = counts.map(|c| c.iter().sum::<u64>());
    if totals == [0, 0] {
        return None;
    }
    let share = |a: usize, i: usize| counts[a][i] as f64 / totals[a].max(1) as f64;
    let top = (0..2)
        .flat_map(|a| (0..labels.len()).map(move |i| (a, i)))
        .map(|(a, i)| share(a, i))
        .fold(0.0, f64::max)
        * 1.15;
    let top = if top > 0.0 { top } else { 1.0 };
    let mut frame = Frame::new(540.0, 230.0);
    frame.y_axis(0.0, top, false, percent_label);
    let slot = (frame.right - frame.left) / labels.len() as f64;
    let width = round1((slot * 0.34).min(48.0));
    let groups = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let center = round1(frame.left + slot * (i as f64 + 0.5));
            let bars = [0, 1].map(|a| {
                let s = share(a, i);
                let y = frame.y(s / top);
                Bar {
                    x: if a == 0 {
                        round1(center - width - 1.0)
                    } else {
                        round1(center + 1.0)
                    },
                    y,
                    width,
                    height: round1(frame.bottom - y),
                    label: if totals[a] == 0 {
                        String::new()
                    } else {
                        format!("{:.0}%", s * 100.0)
                    },
                    title: format!(
                        "{}: {} of {} ({:.1}%)",
                        ["current", "candidate"][a],
                        thousands(counts[a][i]),
                        thousands(totals[a]),
                        s * 100.0
                    ),
                }
            });
            BarGroup {
                label: (*label).to_owned(),
                center,
                bars,
            }
        })
        .collect();
    Some(Bars {
        id,
        title,
        frame,
        groups,
        n: totals.map(thousands),
    })
}

/// One metric per time interval, both arms as lines.
#[derive(Serialize)]
struct LineChart {
    id: &'static str,
    title: &'static str,
    frame: Frame,
    /// SVG paths, `[current, candidate]`; a gap in the data starts a new segment.
    paths: [String; 2],
    /// Markers: at each point when there are few enough to see, else at the lone points.
    points: [Vec<(f64, f64)>; 2],
}

struct Series {
    id: &'static str,
    title: &'static str,
    value: fn(&BucketFigures) -> Option<f64>,
    label: fn(f64) -> String,
    /// A fixed range for the y axis (CSAT's 1–5); else from 0 to the largest value.
    range: Option<(f64, f64)>,
    /// Counts: ticks at whole numbers only.
    whole: bool,
}

const SERIES: [Series; 5] = [
    Series {
        id: "timeline-requests",
        title: "Requests per interval",
        value: |b| Some(b.requests as f64),
        label: |v| thousands(v.round() as u64),
        range: None,
        whole: true,
    },
    Series {
        id: "timeline-error-rate",
        title: "Error rate",
        value: |b| b.error_rate,
        label: percent_label,
        range: None,
        whole: false,
    },
    Series {
        id: "timeline-latency-p95",
        title: "Latency p95",
        value: |b| b.latency_p95_ms,
        label: |v| {
            if v == 0.0 {
                "0 ms".to_owned()
            } else {
                MetricKind::LatencyP95.format(v)
            }
        },
        range: None,
        whole: false,
    },
    Series {
        id: "timeline-csat",
        title: "CSAT (mean of the interval)",
        value: |b| b.csat,
        label: |v| format!("{v:.1}"),
        range: Some((1.0, 5.0)),
        whole: false,
    },
    Series {
        id: "timeline-thumbs",
        title: "Thumbs-up rate",
        value: |b| b.thumbs_up_rate,
        label: percent_label,
        range: None,
        whole: false,
    },
];

/// Markers are drawn at each point up to this many intervals.
const MARKED_POINTS: usize = 60;

fn timeline(t: &Timeline, arms: &Arms) -> Vec<LineChart> {
    let rfc = &time::format_description::well_known::Rfc3339;
    let Some(starts) = t
        .buckets
        .iter()
        .map(|b| {
            time::OffsetDateTime::parse(&b.start, rfc)
                .ok()
                .map(|d| d.unix_timestamp() as f64)
        })
        .collect::<Option<Vec<f64>>>()
    else {
        return Vec::new();
    };
    let (Some(&t0), Some(&last)) = (starts.first(), starts.last()) else {
        return Vec::new();
    };
    let width = t.width_s.max(1.0);
    let t1 = last + width;
    // The logs carry no errors: every bucket's error rate would be a meaningless 0.
    let errors = arms.current.error_rate.is_some() || arms.candidate.error_rate.is_some();
    SERIES
        .iter()
        .filter(|s| errors || s.id != "timeline-error-rate")
        .filter_map(|s| {
            let values: [Vec<Option<f64>>; 2] = [
                t.buckets.iter().map(|b| (s.value)(&b.current)).collect(),
                t.buckets.iter().map(|b| (s.value)(&b.candidate)).collect(),
            ];
            let max = values
                .iter()
                .flatten()
                .flatten()
                .copied()
                .fold(f64::NAN, f64::max);
            if max.is_nan() {
                return None;
            }
            let (lo, hi) = s
                .range
                .unwrap_or((0.0, if max > 0.0 { max * 1.1 } else { 1.0 }));
            let mut frame = Frame::new(540.0, 210.0);
            frame.y_axis(lo, hi, s.whole, s.label);
            frame.x_ticks = time_ticks(t0, t1)
                .into_iter()
                .map(|(at, label)| Tick::x(&frame, frame.x((at - t0) / (t1 - t0)), label))
                .collect();
            // Each arm's runs of consecutive intervals with a value.
            let segments = [0, 1].map(|a| {
                let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
                let mut previous: Option<f64> = None;
                for (v, &start) in values[a].iter().zip(&starts) {
                    let Some(v) = v else {
                        previous = None;
                        continue;
                    };
                    // An interval with no records at all has no bucket: the line breaks there too.
                    if !previous.is_some_and(|s| start - s < width * 1.5) {
                        runs.push(Vec::new());
                    }
                    previous = Some(start);
                    let x = frame.x((start + width / 2.0 - t0) / (t1 - t0));
                    let y = frame.y((v - lo) / (hi - lo));
                    runs.last_mut().expect("a run was started").push((x, y));
                }
                runs
            });
            let paths = segments.each_ref().map(|runs| {
                let mut p = String::new();
                for run in runs.iter().filter(|r| r.len() > 1) {
                    for (i, (x, y)) in run.iter().enumerate() {
                        let _ = write!(p, "{}{x},{y} ", if i == 0 { 'M' } else { 'L' });
                    }
                }
                p.trim_end().to_owned()
            });
            // Every point when there are few; else the lone ones, which no line would show.
            let points = segments.map(|runs| {
                runs.into_iter()
                    .filter(|r| r.len() == 1 || t.buckets.len() <= MARKED_POINTS)
                    .flatten()
                    .collect()
            });
            Some(LineChart {
                id: s.id,
                title: s.title,
                frame,
                paths,
                points,
            })
        })
        .collect()
}

impl Charts {
    pub(super) fn new(a: &Analysis) -> Charts {
        let d = &a.distributions;
        let csat = bars(
            "csat-bars",
            "CSAT ratings",
            &["1", "2", "3", "4", "5"],
            [&d.csat[0], &d.csat[1]],
        );
        let thumbs = bars(
            "thumbs-bars",
            "Thumbs down / up",
            &["down", "up"],
            [&d.thumbs[0], &d.thumbs[1]],
        );
        Charts {
            latency: overlay(d, &a.arms),
            bars: csat.into_iter().chain(thumbs).collect(),
            timeline: timeline(&a.timeline, &a.arms),
            interval: duration(a.timeline.width_s),
        }
    }
}

fn duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn percent_label(v: f64) -> String {
    let pct = v * 100.0;
    if pct == 0.0 || pct >= 10.0 || (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}%")
    } else if pct >= 1.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.2}%")
    }
}

/// About `target` round values (1, 2 or 5 × 10ⁿ apart) from `lo` to `hi`.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw / 1.3)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Round values for a log axis from `lo` to `hi`: 1, 2, 5 × 10ⁿ, thinned to at most eight;
/// linear round values when the range is too narrow for those.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > 8 {
        ticks.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    if ticks.len() < 3 {
        return nice_ticks(lo, hi, 4);
    }
    ticks
}

/// Time ticks (unix seconds) on round UTC boundaries, at most about seven, labelled `18:00`, or
/// `11-30 18:00` when the range spans days.
fn time_ticks(t0: f64, t1: f64) -> Vec<(f64, String)> {
    const STEPS: [f64; 14] = [
        60.0,
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        10_800.0,
        21_600.0,
        43_200.0,
        86_400.0,
        172_800.0,
        604_800.0,
        2_592_000.0,
    ];
    let span = t1 - t0;
    if span.is_nan() || span <= 0.0 {
        return Vec::new();
    }
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 7.0)
        .unwrap_or(span / 6.0);
    let days = span >= 86_400.0;
    let short = time::macros::format_description!("[hour]:[minute]");
    let long = time::macros::format_description!("[month]-[day] [hour]:[minute]");
    let mut ticks = Vec::new();
    let mut t = (t0 / step).ceil() * step;
    while t <= t1 {
        if let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t as i64) {
            let label = if days {
                at.format(&long)
            } else {
                at.format(&short)
            };
            ticks.push((t, label.unwrap_or_default()));
        }
        t += step;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_get_round_ticks() {
        assert_eq!(nice_ticks(0.0, 0.11, 5), [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]);
        assert_eq!(nice_ticks(1.0, 5.0, 5), [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(log_ticks(170.8, 4111.4), [200.0, 500.0, 1000.0, 2000.0]);
        // Too narrow for 1-2-5 steps: linear round values instead.
        assert_eq!(log_ticks(700.0, 900.0), [700.0, 750.0, 800.0, 850.0, 900.0]);
        let day = time_ticks(1_796_040_000.0, 1_796_040_000.0 + 86_400.0);
        assert_eq!(day.first().map(|t| t.1.as_str()), Some("11-30 12:00"));
        assert!(day.len() <= 7, "{day:?}");
        assert_eq!(percent_label(0.025), "2.5%");
        assert_eq!(percent_label(0.2), "20%");
    }
}
