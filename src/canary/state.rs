//! What a sequential canary keeps between looks: each gate's running interval (a confidence
//! sequence intersected over the looks stays one, and never widens) and the looks so far. A small
//! JSON file, written atomically after every look.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Decision;
use super::analysis::Analysis;
use crate::error::{Error, Location};
use crate::gate::Gate;
use crate::stats::Interval;

pub const SCHEMA: &str = "goldgate-canary-state/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub schema: String,
    /// What the intervals were computed for: a state is only carried on with the same.
    pub gates: Vec<String>,
    pub confidence: f64,
    pub running: Vec<Option<Interval>>,
    /// Where the running sequence's records start (ms since the epoch): the flag's last step or
    /// `--since`. A new start is a new sequence (the looks before it stay listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    pub looks: Vec<Look>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Look {
    pub at: String,
    pub requests: [u64; 2],
    pub decision: Decision,
    /// The analysis directory of this look.
    pub dir: String,
    /// The sequence this look belongs to ([`State::since_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

fn gate_names(gates: &[Gate]) -> Vec<String> {
    gates
        .iter()
        .map(|g| format!("{} {}", g.metric, g.bound))
        .collect()
}

impl State {
    pub fn new(gates: &[Gate], confidence: f64, since_ms: Option<i64>) -> State {
        State {
            schema: SCHEMA.to_owned(),
            gates: gate_names(gates),
            confidence,
            running: vec![None; gates.len()],
            since_ms,
            looks: Vec::new(),
        }
    }

    /// The state at `path`, or a new one when there is none; refused (exit 2) when it was made
    /// for other gates or another confidence. When the records judged now start elsewhere
    /// (`since_ms`: the flag was stepped), the running intervals start over: they were of the
    /// old split's stream.
    pub fn load(
        path: &Path,
        gates: &[Gate],
        confidence: f64,
        since_ms: Option<i64>,
    ) -> Result<State, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::new(gates, confidence, since_ms));
            }
            Err(e) => {
                return Err(Error::input(
                    Location::file(path),
                    format!("cannot read the sequential state: {e}"),
                    "check the path given to --state",
                ));
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                Location::file(path).line(e.line()),
                format!("not a goldgate canary state file: {e}"),
                "give --state a file goldgate wrote, or a new path to start a new sequence",
            )
        })?;
        if state.schema != SCHEMA {
            return Err(Error::input(
                Location::file(path).field("schema"),
                format!("state schema `{}`, expected `{SCHEMA}`", state.schema),
                "start a new sequence with a new --state path",
            ));
        }
        if state.gates != gate_names(gates) || state.confidence != confidence {
            return Err(Error::input(
                Location::file(path).field("gates"),
                "the state was made for other gates or another confidence: its intervals say nothing about these",
                "keep the gates while a canary runs, or start a new sequence with a new --state path",
            ));
        }
        if state.since_ms != since_ms {
            return Ok(State {
                looks: state.looks,
                ..State::new(gates, confidence, since_ms)
            });
        }
        Ok(state)
    }

    /// Check that the log only grew since the last look: a sequence is valid over one stream of
    /// observations, not a rotated or replaced log.
    pub fn check_growth(&self, path: &Path, requests: [u64; 2]) -> Result<(), Error> {
        let last = self
            .looks
            .iter()
            .rev()
            .find(|l| l.since_ms == self.since_ms);
        if let Some(last) = last
            && (requests[0] < last.requests[0] || requests[1] < last.requests[1])
        {
            return Err(Error::input(
                Location::file(path).field("looks"),
                format!(
                    "the logs hold fewer requests than at the last look ({} and {} now, {} and {} then): a sequential analysis needs the same growing log",
                    requests[0], requests[1], last.requests[0], last.requests[1]
                ),
                "give every log file of the canary from its start, or start a new sequence with a new --state path",
            ));
        }
        Ok(())
    }

    /// Record a look: the gates' running intervals and the decision.
    pub fn record(&mut self, analysis: &Analysis, at: String, dir: String) {
        for (slot, g) in self.running.iter_mut().zip(&analysis.gates) {
            if let Some(t) = &g.result.test {
                *slot = Some(t.interval);
            }
        }
        self.looks.push(Look {
            at,
            requests: [analysis.counts.current, analysis.counts.candidate],
            decision: analysis.decision,
            dir,
            since_ms: self.since_ms,
        });
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
