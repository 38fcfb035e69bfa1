//! The one way a model is called: [`Caller::send`] looks a call up in the
//! run's own trace and in recordings, else makes it within the concurrency
//! limit and the budget; [`Caller::settle`] books what it used; and
//! [`Exchange`] turns a response into the call's trace record.
//!
//! The executor's agents and verifiers and the failure judges all call
//! models through this, so budget, cache keys, retries, the trace and
//! replay hold for every call alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Semaphore, mpsc};

use crate::engine::budget::{Ledger, Reservation};
use crate::engine::executor::Progress;
use crate::model::provider::{
    CallRequest, CallResponse, Provider, ProviderError, Turn, UsageBound, call_key,
};
use crate::model::replay::Recordings;
use crate::scenario::Model;
use crate::scenario::budget::{Price, Spend};
use crate::store::{Blob, CallRecord, CallRole, Record, SampleRecord};

/// What a trace record needs of a model.
pub struct ModelInfo {
    pub name: Arc<str>,
    pub provider: &'static str,
    pub price: Option<Price>,
}

/// Everything a model call goes through.
pub struct Caller {
    pub providers: Vec<Arc<dyn Provider>>,
    pub models: Vec<ModelInfo>,
    /// Each model's [`Provider::fingerprint`], for cache keys.
    fingerprints: Vec<String>,
    /// Whether each model has answered a call: one that never has and
    /// cannot be reached ends the run at once.
    answered: Vec<AtomicBool>,
    calls: Semaphore,
    pub cancel: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    pub ledger: Ledger,
    /// Resuming: the run's own recorded calls, which are neither made nor
    /// written again.
    stored: Option<Arc<dyn Recordings>>,
    records: mpsc::Sender<Record>,
    /// When set, a call is made (or looked up in the recordings) and
    /// traced once per cache key: the first response, which every later or
    /// concurrent call with that key gets as already traced. Replays of one
    /// run repeat each other's calls: this keeps one copy of each, and a
    /// server that answers one prompt two ways (batched decoding) cannot
    /// make them depend on scheduling.
    answers: Option<Answers>,
}

/// The first response to each cache key.
type Answers = std::sync::Mutex<
    std::collections::HashMap<
        String,
        Arc<tokio::sync::OnceCell<Result<CallResponse, ProviderError>>>,
    >,
>;

/// How a [`Caller`] is set up.
pub struct CallerSetup {
    pub concurrency: usize,
    pub progress: Arc<Progress>,
    pub cancel: Arc<AtomicBool>,
    pub ledger: Ledger,
    pub stored: Option<Arc<dyn Recordings>>,
    pub records: mpsc::Sender<Record>,
    /// Make each distinct call once (see [`Caller`]'s `answers`).
    pub once_per_key: bool,
}

impl Caller {
    /// A caller of `models` through `providers` (one per model, in order).
    pub fn new(models: &[Model], providers: Vec<Arc<dyn Provider>>, setup: CallerSetup) -> Caller {
        Caller {
            models: models
                .iter()
                .map(|m| ModelInfo {
                    name: m.name.as_str().into(),
                    provider: m.provider_name(),
                    price: m.price,
                })
                .collect(),
            fingerprints: providers.iter().map(|p| p.fingerprint()).collect(),
            answered: providers.iter().map(|_| AtomicBool::new(false)).collect(),
            providers,
            calls: Semaphore::new(setup.concurrency.max(1)),
            cancel: setup.cancel,
            progress: setup.progress,
            ledger: setup.ledger,
            stored: setup.stored,
            records: setup.records,
            answers: setup.once_per_key.then(Default::default),
        }
    }

    /// A failure that ends the whole run: every other task stops too.
    pub fn fail(&self, why: String) -> Stop {
        self.cancel.store(true, Ordering::Relaxed);
        Stop::Failed(why)
    }
}

/// Why a call (and the task or judgement it belongs to) stopped early.
pub enum Stop {
    Cancelled,
    /// Which cap the next call would have exceeded.
    Budget(String),
    Failed(String),
    /// Calls failed after their retries: this many samples are errors (the
    /// first one's message). The task cannot be evaluated; whether the run
    /// goes on is `fail_on_error`'s to say.
    Errored {
        samples: u64,
        message: String,
    },
}

impl Stop {
    /// Why a task stops whose calls stopped for `self` and for `other`:
    /// errors add up, and anything else outranks an error.
    pub fn and(self, other: Stop) -> Stop {
        match (self, other) {
            (Stop::Errored { samples, message }, Stop::Errored { samples: more, .. }) => {
                Stop::Errored {
                    samples: samples + more,
                    message,
                }
            }
            (Stop::Errored { .. }, other) => other,
            (stop, _) => stop,
        }
    }
}

/// Where a call's response came from.
pub enum Origin<'l> {
    /// The model, within this reservation.
    Live(Reservation<'l>),
    /// A recording (replay, the response cache): no model call, no cost.
    Recorded,
    /// This run's own trace (resume): neither made nor written again.
    Stored,
}

/// A call's key, its response, and where the response came from.
pub type Sent<'l> = (String, Result<CallResponse, ProviderError>, Origin<'l>);

impl Caller {
    /// Send `req` to model `model`, unless the trace or a recording already has
    /// the call; within the concurrency limit and the budget.
    pub async fn send(&self, model: usize, req: CallRequest<'_>) -> Result<Sent<'_>, Stop> {
        let sh = self;
        let key = call_key(&sh.fingerprints[model], &req);
        if let Some(stored) = &sh.stored {
            match stored.get(&key) {
                Ok(Some(r)) => return Ok((key, Ok(r), Origin::Stored)),
                Ok(None) => {}
                Err(e) => return Err(sh.fail(format!("reading the run's recorded calls: {e}"))),
            }
        }
        let provider = &sh.providers[model];
        let Some(answers) = &sh.answers else {
            if let Some(response) = provider.recorded(&key) {
                return Ok((key, response, Origin::Recorded));
            }
            let (response, reservation) = sh.live(model, req).await?;
            return Ok((key, response, Origin::Live(reservation)));
        };
        // Once per key: the first call is recorded or made and traced; the
        // rest are in the trace already.
        let cell = answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let mut first = None;
        let response = cell
            .get_or_try_init(|| async {
                if let Some(response) = provider.recorded(&key) {
                    first = Some(Origin::Recorded);
                    return Ok(response);
                }
                let (response, reservation) = sh.live(model, req).await?;
                first = Some(Origin::Live(reservation));
                Ok::<_, Stop>(response)
            })
            .await?
            .clone();
        Ok((key, response, first.unwrap_or(Origin::Stored)))
    }

    /// Make `req` on model `model`, within the concurrency limit and a
    /// budget reservation.
    async fn live(
        &self,
        model: usize,
        req: CallRequest<'_>,
    ) -> Result<(Result<CallResponse, ProviderError>, Reservation<'_>), Stop> {
        let sh = self;
        let provider = &sh.providers[model];
        let _permit = sh.calls.acquire().await.expect("semaphore open");
        if sh.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        // Only token and cost caps need the bound; requests always count.
        let bound = if sh.ledger.counts_tokens() {
            provider.usage_bound(&req)
        } else {
            UsageBound::default()
        };
        let reservation = sh
            .ledger
            .reserve(Spend::call(
                sh.models[model].price,
                bound.input_tokens,
                bound.output_tokens.unwrap_or(0),
            ))
            .await
            .map_err(Stop::Budget)?;
        sh.progress.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = provider.complete(req).await;
        match &mut response {
            Ok(_) => sh.answered[model].store(true, Ordering::Relaxed),
            Err(e) => {
                // A failure ends the run, whatever errors it tolerates, when
                // retrying anything would fail the same way (a bad key, a wrong
                // model) or when the model was never reached: nothing listens.
                e.fatal |= e.unreachable && !sh.answered[model].load(Ordering::Relaxed);
                if e.fatal {
                    // Before the permit goes, so that no call waiting for it starts.
                    sh.cancel.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok((response, reservation))
    }

    /// Settle a call's reservation with what `record` used, or mark it served
    /// from a recording, which costs nothing. Returns whether the call is new
    /// to the trace (one found in the run's own trace is not).
    pub fn settle(&self, record: &mut CallRecord, origin: Origin<'_>) -> bool {
        let sh = self;
        match origin {
            Origin::Live(reservation) => {
                let used = Spend {
                    requests: 1,
                    tokens: record.input_tokens + record.output_tokens,
                    cost_usd: record.cost_usd.unwrap_or(0.0),
                };
                sh.progress.tokens.fetch_add(used.tokens, Ordering::Relaxed);
                reservation.settle(used);
                true
            }
            Origin::Recorded => {
                record.cached = true;
                record.cost_usd = record.cost_usd.map(|_| 0.0);
                true
            }
            Origin::Stored => false,
        }
    }

    /// Hand `record` to the store's writer.
    pub async fn write(&self, record: Record) -> Result<(), Stop> {
        let sh = self;
        sh.records
            .send(record)
            .await
            .map_err(|_| Stop::Failed("the trace store stopped accepting records".into()))
    }
}

/// What one call for a single reply left.
pub struct Reply {
    pub key: String,
    /// The reply; empty when the call failed.
    pub text: String,
    /// The call's trace record, settled; `None` when the run's trace holds
    /// it already (resume).
    pub record: Option<CallRecord>,
    /// Why the call failed, when it did.
    pub error: Option<String>,
    /// Why the whole run must stop, when the failure says so (a bad key, a
    /// model never reached).
    pub fatal: Option<String>,
    /// Its input and output tokens, as made (also when already traced).
    pub tokens: (u64, u64),
}

impl Caller {
    /// One call of `req` to model `model` for a single reply, traced as
    /// `role` under the request's task and agent, and settled.
    pub async fn reply(
        &self,
        model: usize,
        req: CallRequest<'_>,
        role: impl FnOnce(String) -> CallRole,
    ) -> Result<Reply, Stop> {
        let (key, response, origin) = self.send(model, req).await?;
        let fatal = match &response {
            Err(e) if e.fatal => Some(e.to_string()),
            _ => None,
        };
        let (texts, exchange) = Exchange::of(response, 1);
        let text = texts.into_iter().next().map(|t| t.0).unwrap_or_default();
        let error = exchange.error.clone();
        let head = CallHead {
            task_index: req.task.index,
            agent: req.agent.into(),
            model,
            first_sample: req.first_sample,
            n: 1,
            system: Blob::new(req.system),
            prompt: Blob::new(req.prompt),
            key: key.clone(),
            history: req.history,
        };
        let mut record = CallRecord {
            role: role(text.clone()),
            ..exchange.into_record(self, head, Vec::new())
        };
        let tokens = (record.input_tokens, record.output_tokens);
        let new = self.settle(&mut record, origin);
        Ok(Reply {
            key,
            text,
            record: new.then_some(record),
            error,
            fatal,
            tokens,
        })
    }
}

/// Who made a call, and what it asked.
pub struct CallHead<'a> {
    pub task_index: usize,
    /// The agent, or the verifier whose judge it is.
    pub agent: Arc<str>,
    pub model: usize,
    pub first_sample: usize,
    pub n: usize,
    pub system: Blob,
    pub prompt: Blob,
    pub key: String,
    pub history: &'a [Turn],
}

/// What came back from a call, besides its texts.
pub struct Exchange {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: f64,
    pub raw: Option<String>,
    pub request: Option<String>,
    pub attempts: Vec<crate::model::provider::Attempt>,
    pub error: Option<String>,
}

impl Exchange {
    /// Split a response into its texts (with their output tokens) and the
    /// rest; a failed call yields `n` empty texts.
    pub fn of(
        response: Result<CallResponse, ProviderError>,
        n: usize,
    ) -> (Vec<(String, u64)>, Exchange) {
        let (texts, mut exchange) = match response {
            Ok(r) => (
                r.completions
                    .into_iter()
                    .map(|c| (c.text, c.output_tokens))
                    .collect::<Vec<_>>(),
                Exchange {
                    input_tokens: r.input_tokens,
                    output_tokens: 0,
                    latency_ms: r.latency_ms,
                    raw: r.raw,
                    request: r.request,
                    attempts: r.attempts,
                    error: None,
                },
            ),
            Err(e) => (
                vec![(String::new(), 0); n],
                Exchange {
                    input_tokens: 0,
                    output_tokens: 0,
                    latency_ms: e.latency_ms,
                    raw: None,
                    request: None,
                    attempts: e.attempts.clone(),
                    error: Some(e.to_string()),
                },
            ),
        };
        exchange.output_tokens = texts.iter().map(|t| t.1).sum();
        (texts, exchange)
    }

    /// The call's trace record, holding `samples`.
    pub fn into_record(
        self,
        sh: &Caller,
        head: CallHead<'_>,
        samples: Vec<SampleRecord>,
    ) -> CallRecord {
        let model = &sh.models[head.model];
        CallRecord {
            task_index: head.task_index,
            agent: head.agent,
            model: model.name.clone(),
            provider: model.provider,
            first_sample: head.first_sample,
            n: head.n,
            system: head.system,
            prompt: head.prompt,
            // The simulated provider sends nothing; its parameters stand in.
            request: self.request.unwrap_or_else(|| {
                let mut r = serde_json::json!({"model": &*model.name, "n": head.n});
                if !head.history.is_empty() {
                    r["history"] = head
                        .history
                        .iter()
                        .map(|t| serde_json::json!({"reply": t.reply, "feedback": t.feedback}))
                        .collect();
                }
                r.to_string()
            }),
            attempts: self.attempts,
            cache_key: head.key,
            response: self.raw,
            error: self.error,
            latency_ms: self.latency_ms,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: model
                .price
                .map(|p| p.cost(self.input_tokens, self.output_tokens)),
            samples,
            role: CallRole::Generator,
            cached: false,
        }
    }
}
