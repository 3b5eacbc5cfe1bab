//! Everything an evaluation needs, loaded and checked together: `validate` stops here, `run`
//! goes on. Problems from every file are reported at once.

use std::path::{Path, PathBuf};

use crate::config::{EvalConfig, ProviderConfig};
use crate::error::{Error, Problem};
use crate::gate::Gate;
use crate::golden::GoldenSet;
use crate::prompt::PromptTemplate;
use crate::provider::{Client, load_config};
use crate::record::Sides;
use crate::score::Scoring;

/// Paths given on the command line, overriding the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub golden: Option<PathBuf>,
    pub current: Option<PathBuf>,
    pub candidate: Option<PathBuf>,
    /// The current model's answers come from a stored run (`run --baseline`): it is never
    /// called, so its provider file is not loaded (its key may not even be set); the candidate's
    /// stands in for it.
    pub current_stored: bool,
}

pub struct Evaluation {
    pub config: EvalConfig,
    pub golden: GoldenSet,
    pub providers: Sides<ProviderConfig>,
    pub clients: Sides<Client>,
    pub gates: Vec<Gate>,
    pub prompt: PromptTemplate,
    pub scoring: Scoring,
}

impl Evaluation {
    /// What runs of this evaluation are grouped and accepted under: its `name`, or its golden
    /// set's.
    pub fn name(&self) -> &str {
        self.config
            .name
            .as_deref()
            .unwrap_or(&self.golden.meta.name)
    }

    pub fn load(config_path: &Path, overrides: &Overrides) -> Result<Evaluation, Error> {
        let mut config = EvalConfig::load(config_path)?;
        if let Some(p) = &overrides.golden {
            config.golden = p.clone();
        }
        if let Some(p) = &overrides.current {
            config.current = p.clone();
        }
        if let Some(p) = &overrides.candidate {
            config.candidate = p.clone();
        }
        if overrides.current_stored {
            config.current = config.candidate.clone();
        }

        let mut problems: Vec<Problem> = Vec::new();
        let golden = keep(&mut problems, config_path, GoldenSet::load(&config.golden));
        let current = keep(&mut problems, config_path, load_config(&config.current));
        let candidate = keep(&mut problems, config_path, load_config(&config.candidate));
        let prompt = keep(
            &mut problems,
            config_path,
            PromptTemplate::new(config.prompt(), config_path),
        );
        if let Some(g) = &golden {
            problems.extend(unchecked_items(g, &config.scoring));
        }
        if let (Some(g), Some(p)) = (&golden, &prompt) {
            problems.extend(unrenderable_items(g, p, config_path));
        }
        let gates = golden.as_ref().and_then(|g| {
            keep(
                &mut problems,
                config_path,
                Gate::parse_all(&config.gates, config_path, &g.tags()),
            )
        });
        let current_client = current.as_ref().and_then(|p| {
            keep(
                &mut problems,
                config_path,
                Client::from_config(&config.current, p),
            )
        });
        let judge = match &config.scoring.faithfulness.provider {
            Some(path)
                if config.scoring.faithfulness.method
                    == crate::config::FaithfulnessMethod::Judge =>
            {
                keep(&mut problems, config_path, load_config(path))
                    .and_then(|p| keep(&mut problems, config_path, Client::from_config(path, &p)))
                    .map(crate::score::Judge::new)
            }
            _ => None,
        };
        let candidate_client = candidate.as_ref().and_then(|p| {
            keep(
                &mut problems,
                config_path,
                Client::from_config(&config.candidate, p),
            )
        });

        match (
            golden,
            current,
            candidate,
            prompt,
            gates,
            current_client,
            candidate_client,
        ) {
            (
                Some(golden),
                Some(cur),
                Some(cand),
                Some(prompt),
                Some(gates),
                Some(cc),
                Some(kc),
            ) if problems.is_empty() => {
                let echo = config.scoring.echo.then(|| crate::score::EchoScorer {
                    prompt: prompt.clone(),
                    system: config.system.clone(),
                });
                let scoring = Scoring::new(
                    &config.scoring,
                    &golden.items,
                    golden.patterns.clone(),
                    judge,
                    echo,
                )
                .map_err(|e| Error::Usage(format!("a check pattern does not compile: {e}")))?;
                Ok(Evaluation {
                    config,
                    golden,
                    providers: Sides {
                        current: cur,
                        candidate: cand,
                    },
                    clients: Sides {
                        current: cc,
                        candidate: kc,
                    },
                    gates,
                    prompt,
                    scoring,
                })
            }
            _ => Err(Error::Input(problems)),
        }
    }

    /// Requests in flight across both models: the flag, else the file, else both providers' sum.
    pub fn concurrency(&self, flag: Option<usize>) -> usize {
        flag.or(self.config.concurrency)
            .unwrap_or_else(|| self.clients.iter().map(|(_, c)| c.concurrency).sum())
            .max(1)
    }
}

/// An item that no check applies to passes whenever it is answered: accuracy would count it as
/// correct whatever the model says. That is an error unless the evaluation opts in.
fn unchecked_items(golden: &GoldenSet, scoring: &crate::config::ScoringConfig) -> Vec<Problem> {
    /// Enough to show the pattern; the rest are counted.
    const SHOWN: usize = 10;
    if scoring.allow_unchecked || !scoring.checks.is_empty() {
        return Vec::new();
    }
    let similarity = scoring.similarity.is_some();
    let bad: Vec<_> = golden
        .unchecked
        .iter()
        .filter(|u| !(similarity && u.has_expected))
        .collect();
    let path = GoldenSet::items_path(&golden.dir);
    let mut problems: Vec<Problem> = bad
        .iter()
        .take(SHOWN)
        .map(|u| {
            Problem::new(
                crate::error::Location::file(&path).line(u.line),
                format!(
                    "item `{}` has no check, so it would pass whenever the model answers anything",
                    u.id
                ),
            )
            .fix(if u.has_expected {
                "give it `keywords`, `forbidden`, `label` or `checks`, or make `expected` a check with `[scoring] similarity = { threshold = 0.5 }`; to accept unchecked items, set `allow_unchecked = true` under [scoring] in goldgate.toml"
            } else {
                "give it `keywords`, `forbidden`, `label` or `checks`; to accept unchecked items, set `allow_unchecked = true` under [scoring] in goldgate.toml"
            })
        })
        .collect();
    if bad.len() > SHOWN {
        problems.push(Problem::new(
            crate::error::Location::file(&path),
            format!("… and {} more item(s) with no check", bad.len() - SHOWN),
        ));
    }
    problems
}

/// Items whose prompt does not render. A template can fail on one item and not another (a filter
/// on a field of the wrong type, `contexts[2]` where there are two, `throw`), so every item is
/// rendered before anything runs: cheap next to one model call.
fn unrenderable_items(
    golden: &GoldenSet,
    prompt: &PromptTemplate,
    config_path: &Path,
) -> Vec<Problem> {
    /// Enough to show the pattern; the rest are counted.
    const SHOWN: usize = 10;
    let mut problems = Vec::new();
    let mut failed = 0usize;
    for i in 0..golden.items.len() {
        let item = golden.items.get(i);
        if let Err(e) = prompt.render(&item) {
            failed += 1;
            if failed <= SHOWN {
                problems.push(
                    Problem::new(
                        crate::error::Location::file(config_path).field("prompt"),
                        format!("the prompt does not render for item `{}`: {e}", item.id),
                    )
                    .fix("make the template work for every item (e.g. `{% if contexts | length > 2 %}` before `contexts[2]`, or `| default(value=\"\")`)"),
                );
            }
        }
    }
    if failed > SHOWN {
        problems.push(Problem::new(
            crate::error::Location::file(config_path).field("prompt"),
            format!(
                "… and {} more item(s) whose prompt does not render",
                failed - SHOWN
            ),
        ));
    }
    problems
}

/// Keep a loaded part, or collect its problems so every file's are reported together.
fn keep<T>(problems: &mut Vec<Problem>, config_path: &Path, r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Input(ps)) => {
            problems.extend(ps);
            None
        }
        Err(other) => {
            problems.push(Problem::new(
                crate::error::Location::file(config_path),
                other.to_string(),
            ));
            None
        }
    }
}
