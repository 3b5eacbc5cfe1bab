//! The progress bar: on stderr, only when stderr is a terminal, never in CI or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    errors: std::cell::Cell<u64>,
}

impl Progress {
    pub fn new(total: u64, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = visible.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            errors: std::cell::Cell::new(0),
        }
    }

    pub fn record(&self, failed: bool) {
        if let Some(bar) = &self.bar {
            if failed {
                self.errors.set(self.errors.get() + 1);
                bar.set_message(format!("{} errors", self.errors.get()));
            }
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
