//! The provider kinds, one row each: how the kind's own options are checked, how its adapter is
//! built, and which field says where its requests go. Loading a provider file,
//! [`Client::from_config`](super::Client::from_config) and `validate --check-reachable` all go
//! through this table, so a new kind is its variant and options in `config.rs`, its adapter file
//! (with `check` and `build`), and one row here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::{Provider, anthropic, command, gguf, http_json, ollama, openai, reference};
use crate::config::{ProviderConfig, ProviderKind};
use crate::error::{Error, Location, Problem};

/// What one provider kind brings besides its schema.
pub struct Kind {
    /// The checks of the kind's own table and of the keys it cannot honour, run when the file is
    /// loaded; the checks every kind shares are [`ProviderConfig::check`].
    pub check: fn(&Path, &ProviderConfig) -> Vec<Problem>,
    /// The adapter of a checked file, given the key read from `api_key_env` (if one is named)
    /// and the per-attempt timeout.
    pub build: Build,
    /// The field that says where requests go: blamed when a test call finds no server or route.
    pub endpoint_field: &'static str,
}

/// See [`Kind::build`].
pub type Build =
    fn(&Path, &ProviderConfig, Option<SecretString>, Duration) -> Result<Arc<dyn Provider>, Error>;

/// The row of a kind.
pub fn kind(kind: ProviderKind) -> &'static Kind {
    match kind {
        ProviderKind::Openai => &Kind {
            check: openai::check,
            build: openai::build,
            endpoint_field: "base_url",
        },
        ProviderKind::Anthropic => &Kind {
            check: anthropic::check,
            build: anthropic::build,
            endpoint_field: "base_url",
        },
        ProviderKind::Ollama => &Kind {
            check: ollama::check,
            build: ollama::build,
            endpoint_field: "base_url",
        },
        ProviderKind::Http => &Kind {
            check: http_json::check,
            build: http_json::build,
            endpoint_field: "http.url",
        },
        ProviderKind::Command => &Kind {
            check: command::check,
            build: command::build,
            endpoint_field: "command.argv",
        },
        ProviderKind::Reference => &Kind {
            check: reference::check,
            build: reference::build,
            // It sends nothing anywhere; a failed call can only be the base_url it does not use.
            endpoint_field: "base_url",
        },
        ProviderKind::Gguf => &Kind {
            check: gguf::check,
            build: gguf::build,
            endpoint_field: "gguf.path",
        },
    }
}

/// Read a provider file and check it: the schema, the checks every kind shares and the kind's
/// own. Every problem found is reported at once (exit 2).
pub fn load_config(path: &Path) -> Result<ProviderConfig, Error> {
    let cfg = ProviderConfig::parse(path)?;
    let mut problems = cfg.check(path);
    problems.extend((kind(cfg.kind).check)(path, &cfg));
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(Error::Input(problems))
    }
}

impl ProviderConfig {
    /// [`load_config`], as the method library callers know. It lives here rather than in
    /// `config.rs` because the checks it runs are the adapters', and config sits below them.
    pub fn load(path: &Path) -> Result<ProviderConfig, Error> {
        load_config(path)
    }
}

/// `base_url` and `api_key_env` in a kind that reaches its model otherwise (a templated endpoint,
/// a local program): refused rather than silently ignored, each with the kind's own fix.
pub(super) fn unused_endpoint_keys(
    path: &Path,
    cfg: &ProviderConfig,
    base_url_fix: &str,
    api_key_env_fix: &str,
) -> Vec<Problem> {
    [
        ("base_url", cfg.base_url.is_some(), base_url_fix),
        ("api_key_env", cfg.api_key_env.is_some(), api_key_env_fix),
    ]
    .into_iter()
    .filter(|(_, present, _)| *present)
    .map(|(field, _, fix)| {
        Problem::new(
            Location::file(path).field(field),
            format!("kind = \"{}\" does not use {field}", cfg.kind.as_str()),
        )
        .fix(fix)
    })
    .collect()
}
