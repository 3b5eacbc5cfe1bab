//! The run: both models over the golden set at the same time, interleaved item by item, results
//! appended as they arrive, tallies kept for the summary.
//!
//! Work flows one way: item → request → provider → scores → one line in `results.jsonl` and the
//! tallies. Nothing holds an answer after its line is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::golden::{Item, Items};
use crate::metrics::{ItemTallies, ModelTally};
use crate::progress::Progress;
use crate::prompt::PromptTemplate;
use crate::provider::{CallError, Chat, Client, Outcome, Request};
use crate::record::{ResultRecord, Side, Sides, TokenCount, TrialKey, TrialSet};
use crate::rundir::ResultsWriter;
use crate::score::{Scores, Scoring};

/// What the run hands to the summary.
pub struct RunOutput {
    pub tallies: Sides<ModelTally>,
    pub items: ItemTallies,
    pub interrupted: bool,
    /// A `--until-decided` run stopped because its verdict was decided.
    pub decided: bool,
}

/// What every trial needs, shared by the tasks that run them.
pub struct Work {
    pub items: Arc<Items>,
    pub clients: Sides<Arc<Client>>,
    pub prompt: Arc<PromptTemplate>,
    pub system: Option<String>,
    pub scoring: Arc<Scoring>,
    /// A shadow replay's conversations, by item number: sent as logged instead of a rendered
    /// prompt.
    pub chats: Option<Arc<Chats>>,
}

/// Conversations held compactly, one JSON text after another: a replay of 100,000 logged
/// requests holds their text once, not as trees of JSON values.
#[derive(Debug, Default)]
pub struct Chats {
    json: Vec<u8>,
    ends: Vec<usize>,
}

impl Chats {
    pub fn push(&mut self, chat: &Chat) {
        serde_json::to_writer(&mut self.json, chat).expect("a chat always serialises");
        self.ends.push(self.json.len());
    }

    /// Add a conversation already written as JSON by [`Chats::push`].
    pub fn push_json(&mut self, json: &[u8]) {
        self.json.extend_from_slice(json);
        self.ends.push(self.json.len());
    }

    /// The conversation of item `i`, as logged.
    pub fn json(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.json[start..self.ends[i]]
    }

    pub fn get(&self, i: usize) -> Chat {
        serde_json::from_slice(self.json(i)).expect("chats are written by push")
    }
}

pub struct Runner<'a> {
    pub work: Arc<Work>,
    pub repeats: u32,
    pub concurrency: usize,
    /// After the first interrupt, how long in-flight requests may take to finish.
    pub grace: Duration,
    /// (item, model, trial) already answered: a resumed run skips them and appends.
    pub done: Option<&'a TrialSet>,
    /// A model never to call (`--baseline`: the current model's answers are stored ones).
    pub skip: Option<Side>,
}

impl Runner<'_> {
    /// Run every trial not yet done, appending each result to `results` as it arrives.
    /// With a `monitor` (`--until-decided`), nothing new is scheduled once it says the verdict
    /// is decided; what is in flight finishes and is recorded.
    pub async fn run(
        &self,
        mut results: ResultsWriter,
        progress: &Progress,
        mut monitor: Option<&mut crate::gate::sequential::Monitor>,
    ) -> anyhow::Result<RunOutput> {
        use anyhow::Context as _;
        let mut tallies = Sides::<ModelTally>::default();
        let mut items = ItemTallies::new(self.work.items.len());

        let stopping = Arc::new(AtomicBool::new(false));
        let decided = Arc::new(AtomicBool::new(false));
        let (abort_tx, mut abort_rx) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(watch_interrupts(stopping.clone(), abort_tx, self.grace));

        // Interleave item by item, current then candidate, so drift at a provider hits both alike.
        let repeats = self.repeats;
        let stop = stopping.clone();
        let enough = decided.clone();
        let done = self.done;
        let skip = self.skip;
        let store = self.work.items.clone();
        // Items are parsed here, once each, as the pipeline reaches them; the trials of an item
        // share it, and it is dropped with its last trial.
        let trials = (0..self.work.items.len())
            .flat_map(move |item| {
                let store = store.clone();
                let mut parsed: Option<Arc<Item>> = None;
                (0..repeats)
                    .flat_map(move |trial| Side::BOTH.map(|side| TrialKey { item, side, trial }))
                    .filter(move |t| Some(t.side) != skip && done.is_none_or(|d| !d.contains(t)))
                    .map(move |t| {
                        let item = parsed.get_or_insert_with(|| Arc::new(store.get(item)));
                        (t, item.clone())
                    })
            })
            // Checked each time the pipeline has room for more work: after an interrupt nothing new starts.
            .take_while(move |_| !stop.load(Ordering::SeqCst) && !enough.load(Ordering::SeqCst));
        // Results that are ready together are written together and flushed once: a syscall per
        // batch, not per line, and nothing answered waits longer than the batch it arrived in.
        //
        // Each trial is a task of its own: the runtime's threads share the work of requests and
        // scoring, and one slow scoring never delays noticing another request's last byte.
        let mut answers = futures::stream::iter(trials)
            .map(|(t, item)| tokio::spawn(self.work.clone().attempt(t, item)))
            .buffer_unordered(self.concurrency)
            .ready_chunks(256);

        loop {
            let next = tokio::select! {
                biased;
                _ = abort_rx.changed() => break,
                next = answers.next() => next,
            };
            let Some(batch) = next else { break };
            for joined in batch {
                let (t, record) = joined.context("a trial's task failed")?;
                tallies[t.side].record(self.work.items.tags(t.item), &record);
                items.record(t.item, &record);
                results.write(&record)?;
                progress.record(!record.ok);
                if let Some(m) = monitor.as_deref_mut() {
                    m.record(t.item, &record);
                }
            }
            results.flush()?;
            if let Some(m) = monitor.as_deref_mut()
                && m.decided()
            {
                decided.store(true, Ordering::SeqCst);
            }
        }
        signals.abort();
        results.flush()?;
        Ok(RunOutput {
            tallies,
            items,
            interrupted: stopping.load(Ordering::SeqCst),
            decided: decided.load(Ordering::SeqCst),
        })
    }
}

impl Work {
    async fn attempt(self: Arc<Self>, t: TrialKey, item: Arc<Item>) -> (TrialKey, ResultRecord) {
        let item = &*item;
        let rendered = match &self.chats {
            // A replay sends the conversation as logged; prompt-only providers get it flattened.
            Some(chats) => {
                let chat = chats.get(t.item);
                let (system, prompt) = chat.flatten();
                Ok((system, prompt, Some(Arc::new(chat))))
            }
            None => self
                .prompt
                .render(item)
                .map(|prompt| (self.system.clone(), prompt, None)),
        };
        let outcome = match rendered {
            Ok((system, prompt, chat)) => {
                let request = Request {
                    system,
                    prompt,
                    question: item.question.clone(),
                    context: item.context.clone(),
                    trial: t.trial,
                    chat,
                };
                self.clients[t.side].call(&request).await
            }
            // Every item was rendered before the run started, so this is an item that changed
            // since; a prompt that did not render is never sent in its place.
            Err(e) => Outcome::not_sent(CallError::new(
                crate::provider::ErrorKind::BadResponse,
                format!("not sent: the prompt does not render for this item: {e}"),
            )),
        };
        // Scoring (a judge's calls included) happens after the answer was timed.
        let scores = match &outcome.result {
            Ok(answer) => Some(self.scoring.score(item, answer).await),
            Err(_) => None,
        };
        (t, record(item, t, outcome, scores))
    }
}

/// An outcome and its scores as a result line.
fn record(item: &Item, t: TrialKey, outcome: Outcome, scores: Option<Scores>) -> ResultRecord {
    let Outcome {
        result,
        latency,
        ttft,
        server_ms,
        attempts,
        usage,
        usage_estimated,
        cost_usd,
        cached,
    } = outcome;
    let (answer, error) = match result {
        Ok(answer) => (Some(answer), None),
        Err(e) => (None, Some(e)),
    };
    let ok = answer.is_some();
    ResultRecord {
        id: item.id.clone(),
        model: t.side,
        trial: t.trial,
        ok,
        pass: ok && scores.as_ref().is_some_and(|s| s.pass()),
        answer,
        latency_ms: latency.map(|d| d.as_secs_f64() * 1000.0),
        ttft_ms: ttft.map(|d| d.as_secs_f64() * 1000.0),
        server_ms,
        cached,
        attempts,
        tokens: ok.then_some(TokenCount {
            input: usage.input,
            output: usage.output,
            estimated: usage_estimated,
        }),
        cost_usd,
        faithfulness: scores.as_ref().and_then(|s| s.faithfulness.clone()),
        similarity: scores.as_ref().and_then(|s| s.similarity),
        judge: scores
            .as_ref()
            .and_then(|s| s.judge.clone())
            .map(|(usage, error)| crate::record::JudgeRecord { usage, error }),
        shadow: scores.as_ref().and_then(|s| s.shadow),
        checks: scores.map(|s| s.checks).unwrap_or_default(),
        error,
        answer_hash: None,
    }
}

/// First interrupt: stop scheduling, let in-flight requests finish within the grace period.
/// Second interrupt, or the grace period running out: abort at once (written results stay).
async fn watch_interrupts(
    stopping: Arc<AtomicBool>,
    abort: tokio::sync::watch::Sender<bool>,
    grace: Duration,
) {
    let Ok(mut interrupts) = Interrupts::new() else {
        return;
    };
    if interrupts.next().await.is_err() {
        return;
    }
    stopping.store(true, Ordering::SeqCst);
    eprintln!(
        "\ninterrupted: finishing requests in flight (up to {}s); press Ctrl-C again to stop now",
        grace.as_secs()
    );
    tokio::select! {
        _ = interrupts.next() => {}
        _ = tokio::time::sleep(grace) => {}
    }
    let _ = abort.send(true);
}

/// SIGINT (Ctrl-C) and SIGTERM (how CI systems cancel a job, and `kill` by default) are one
/// request to stop: either keeps the partial results and ends the run as interrupted.
struct Interrupts {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> std::io::Result<Interrupts> {
        Ok(Interrupts {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = self.terminate.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}
