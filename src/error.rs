//! The error type a user can act on, and the exit codes the spec promises.
//!
//! Everything a user can get wrong before a run starts is an [`Error::Input`] (exit 2). A run that
//! started but could not complete is [`Error::RunFailed`] (exit 3). A failed request is *not* an
//! error here: it is data in `results.jsonl`, counted and judged by the gates.

use std::fmt;
use std::path::{Path, PathBuf};

/// The process exit codes of the spec, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every gate passed.
    Pass = 0,
    /// At least one gate failed.
    GateFailed = 1,
    /// Bad usage, configuration or input; nothing was run.
    BadInput = 2,
    /// The run could not complete (e.g. a provider unreachable throughout).
    RunFailed = 3,
    /// No gate failed, but at least one could not be decided with the data (more items or
    /// repeats needed); `--allow-inconclusive` makes it 0.
    Inconclusive = 4,
    /// Interrupted; partial results were kept.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Where in the user's input a problem sits: a file, and optionally a line and a field.
#[derive(Debug, Clone)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub field: Option<String>,
}

impl Location {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            line: None,
            field: None,
        }
    }

    pub fn line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

/// One problem in the user's input, with the fix.
#[derive(Debug, Clone)]
pub struct Problem {
    pub at: Location,
    pub message: String,
    pub fix: Option<String>,
}

impl Problem {
    pub fn new(at: Location, message: impl Into<String>) -> Self {
        Problem {
            at,
            message: message.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more problems in configuration or input files (exit 2).
    #[error("{}", render_problems(.0))]
    Input(Vec<Problem>),
    /// A command-line usage problem (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The run started but could not complete (exit 3).
    #[error("{0}")]
    RunFailed(String),
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        Error::Input(vec![p])
    }
}

impl Error {
    pub fn input(at: Location, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem::new(at, message).fix(fix).into()
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Input(_) | Error::Usage(_) => Exit::BadInput,
            Error::RunFailed(_) => Exit::RunFailed,
        }
    }
}

/// The exit code for any error: typed errors anywhere in the chain decide, anything else
/// (an I/O failure while writing results, say) means the run could not complete.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(Exit::RunFailed, Error::exit)
}

/// What is printed for an error that ends a command, each line escaped for a terminal or a CI
/// log: a message can quote a file, a server's body or a model's name, and none of them may
/// forge a line, a terminal sequence or a workflow command.
pub fn message(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .lines()
        .map(|line| crate::text::printable(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read a file the user pointed us at, naming it in the error.
pub fn read_input(path: &Path, what: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::input(
            Location::file(path),
            format!("cannot read {what}: {e}"),
            "check the path (relative paths in goldgate.toml are resolved from the file's directory)",
        )
    })
}
