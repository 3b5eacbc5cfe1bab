//! Canary and A/B analysis: per-request records of live traffic split between the current model
//! and the candidate, judged by gates into a rollout decision (promote / rollback / continue) that
//! a flag system acts on.
//!
//! - [`log`]: the records as logged (JSONL, CSV, OTel spans; gzip), streamed, fields mapped by
//!   `[canary.fields]`;
//! - [`tally`]: everything the analysis needs, folded record by record in bounded memory
//!   (latency histograms, per-user sums for clustered intervals, the timeline);
//! - [`analysis`]: the gates' tests on two unpaired arms, the sample-ratio check, the decision;
//! - [`flag`]: the OpenFeature flagd flag definition the decision is written to;
//! - [`simulate`]: logs with a known truth, for the tests and the benchmark.

pub mod analysis;
pub mod flag;
pub mod log;
pub mod simulate;
pub mod state;
pub mod tally;

#[cfg(test)]
mod simulation;

use serde::{Deserialize, Serialize};

/// Which model served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Current,
    Candidate,
}

impl Arm {
    pub const BOTH: [Arm; 2] = [Arm::Current, Arm::Candidate];

    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Current => "current",
            Arm::Candidate => "candidate",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Arm::Current => 0,
            Arm::Candidate => 1,
        }
    }
}

/// What the rollout should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Every gate passed with enough data: route everyone to the candidate.
    Promote,
    /// A gate failed (or a critical one did): route everyone back to the current model.
    Rollback,
    /// Not decided yet: keep collecting, one step further along `[canary] steps`.
    Continue,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Promote => "promote",
            Decision::Rollback => "rollback",
            Decision::Continue => "continue",
        }
    }

    /// The process exit code: 0 promote, 1 rollback, 4 continue (docs/canary.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Decision::Promote => 0,
            Decision::Rollback => 1,
            Decision::Continue => 4,
        }
    }
}
