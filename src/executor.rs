//! The executor: draws every task's sample pools, scores them, evaluates the
//! strategies, and streams everything to the store's writer.
//!
//! Tasks run concurrently (at most `concurrency` model calls in flight), but
//! nothing a task produces depends on scheduling: samples come from seeded
//! providers, pools are ordered by sample index, and strategy results are
//! collected by task index. The executor holds only per-task numbers for the
//! summary, never the samples of the whole run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};

use crate::budget::{Ledger, Spend};
use crate::estimator::Binomials;
use crate::provider::{CallRequest, Provider, UsageBound, call_key};
use crate::scenario::{Scenario, Task};
use crate::store::{Blob, CallRecord, Record, SampleRecord, ScoreRecord, TaskResultRecord};
use crate::strategy::{self, PoolSample, TaskOutcome, UNSCORED};
use crate::verifier::{Candidate, Score};

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Calls waiting to retry (backoff or Retry-After).
    pub waiting: Arc<AtomicU64>,
    pub samples: AtomicU64,
    pub tasks: AtomicU64,
    pub requests: AtomicU64,
    pub tokens: AtomicU64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Completed,
    Interrupted,
    BudgetExhausted,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Interrupted => "interrupted",
            Status::BudgetExhausted => "budget_exhausted",
            Status::Failed => "failed",
        }
    }
}

/// What the executor hands back: per-task strategy outcomes (None where the
/// task did not finish) and how the run ended.
pub struct Execution {
    pub status: Status,
    pub error: Option<String>,
    pub outcomes: Vec<Option<Vec<TaskOutcome>>>,
}

pub struct Executor {
    /// Resuming: outcomes of tasks already finished, and calls already stored
    /// (by cache key), which are neither requested nor written again.
    prior: Option<Prior>,
    scenario: Arc<Scenario>,
    providers: Vec<Arc<dyn Provider>>,
    concurrency: usize,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
}

/// Why a task stopped early.
enum Stop {
    Cancelled,
    /// Which cap the next call would have exceeded.
    Budget(String),
    Failed(String),
}

struct Shared {
    scenario: Arc<Scenario>,
    providers: Vec<Arc<dyn Provider>>,
    binomials: Binomials,
    calls: Semaphore,
    /// Verifier commands running at once: one per CPU.
    commands: Semaphore,
    concurrency: usize,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    records: mpsc::Sender<Record>,
    ledger: Ledger,
    system_blobs: Vec<Blob>,
    verifier_names: Vec<Arc<str>>,
    agent_names: Vec<Arc<str>>,
    model_names: Vec<Arc<str>>,
    stored: Arc<StoredCalls>,
}

/// Per-task outcomes of the tasks that finished (`None` where a task did not).
pub type Finished = Vec<Option<Vec<TaskOutcome>>>;

/// What a resumed run already has: finished tasks, stored calls, and what it
/// spent (which counts against the budget).
type Prior = (Finished, Arc<StoredCalls>, Spend);

/// Calls already in the trace, by cache key.
pub type StoredCalls = std::collections::HashMap<String, crate::provider::CallResponse>;

impl Executor {
    pub fn new(
        scenario: Arc<Scenario>,
        providers: Vec<Arc<dyn Provider>>,
        concurrency: usize,
        progress: Arc<Progress>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Executor {
            prior: None,
            scenario,
            providers,
            concurrency: concurrency.max(1),
            progress,
            cancel,
        }
    }

    /// Continue a run: skip finished tasks, reuse stored calls.
    /// `spent` counts against the budget.
    pub fn resuming(
        mut self,
        finished: Vec<Option<Vec<TaskOutcome>>>,
        stored: Arc<StoredCalls>,
        spent: Spend,
    ) -> Self {
        self.prior = Some((finished, stored, spent));
        self
    }

    /// Run every task, sending records to `records`.
    pub async fn run(self, records: mpsc::Sender<Record>) -> Execution {
        let (finished, stored, spent) = self.prior.unwrap_or_default();
        let sc = &self.scenario;
        let max_n = sc.pool_sizes().into_iter().max().unwrap_or(0);
        let shared = Arc::new(Shared {
            binomials: Binomials::new(max_n),
            calls: Semaphore::new(self.concurrency),
            commands: Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
            concurrency: self.concurrency,
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
            records,
            ledger: Ledger::new(sc.budget.clone(), spent),
            system_blobs: sc.agents.iter().map(|a| Blob::new(&a.system)).collect(),
            verifier_names: sc
                .verifiers
                .iter()
                .map(|v| v.name.as_str().into())
                .collect(),
            agent_names: sc.agents.iter().map(|a| a.name.as_str().into()).collect(),
            model_names: sc.models.iter().map(|m| m.name.as_str().into()).collect(),
            scenario: self.scenario.clone(),
            providers: self.providers,
            stored,
        });
        let n_tasks = sc.tasks.len();
        let mut outcomes: Vec<Option<Vec<TaskOutcome>>> = vec![None; n_tasks];
        for (slot, done) in outcomes.iter_mut().zip(finished) {
            if done.is_some() {
                self.progress.tasks.fetch_add(1, Ordering::Relaxed);
            }
            *slot = done;
        }
        let mut failure: Option<String> = None;
        let mut stopped = None;
        // Tasks in flight: enough to keep `concurrency` calls busy, bounded so
        // memory does not grow with the dataset.
        let window = self.concurrency.max(2);
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while set.len() < window && next < n_tasks && stopped.is_none() {
                if outcomes[next].is_some() {
                    next += 1;
                    continue;
                }
                let shared = shared.clone();
                let idx = next;
                set.spawn(async move { (idx, run_task(&shared, idx).await) });
                next += 1;
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            match joined {
                Ok((idx, Ok(o))) => {
                    outcomes[idx] = Some(o);
                    self.progress.tasks.fetch_add(1, Ordering::Relaxed);
                }
                Ok((_, Err(stop))) => {
                    let kind = match stop {
                        Stop::Cancelled => Status::Interrupted,
                        Stop::Budget(why) => {
                            failure.get_or_insert(why);
                            Status::BudgetExhausted
                        }
                        Stop::Failed(e) => {
                            failure.get_or_insert(e);
                            Status::Failed
                        }
                    };
                    // Let in-flight tasks finish what they can; start no more.
                    stopped.get_or_insert(kind);
                    self.cancel.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    failure.get_or_insert(format!("task panicked: {e}"));
                    stopped.get_or_insert(Status::Failed);
                    self.cancel.store(true, Ordering::Relaxed);
                }
            }
        }
        let status = match stopped {
            Some(s) => s,
            None if self.cancel.load(Ordering::Relaxed) => Status::Interrupted,
            None => Status::Completed,
        };
        Execution {
            status,
            error: failure,
            outcomes,
        }
    }
}

async fn run_task(sh: &Shared, idx: usize) -> Result<Vec<TaskOutcome>, Stop> {
    let sc = &*sh.scenario;
    let task = &sc.tasks[idx];
    let mut pools: Vec<Vec<PoolSample>> = vec![Vec::new(); sc.agents.len()];
    for (agent_idx, &size) in sc.pool_sizes().iter().enumerate() {
        if size == 0 {
            continue;
        }
        pools[agent_idx] = draw_pool(sh, task, agent_idx, size).await?;
    }
    let mut outcomes = Vec::new();
    let mut rows = Vec::new();
    for (si, s) in sc.strategies.iter().enumerate() {
        for o in strategy::evaluate(&sh.binomials, sc.seed, si, s, task, &pools[s.agent]) {
            rows.push(TaskResultRecord {
                strategy: s.name.as_str().into(),
                kind: s.kind.as_str(),
                n: o.n,
                task_index: idx,
                accuracy: o.accuracy,
                abstain: o.abstain,
                tokens: o.tokens,
                samples: o.samples,
                selected: o.selected.clone(),
                selected_correct: o.selected_correct,
            });
            outcomes.push(o);
        }
    }
    if sh.records.send(Record::TaskResults(rows)).await.is_err() {
        return Err(Stop::Failed(
            "the trace store stopped accepting records".into(),
        ));
    }
    Ok(outcomes)
}

/// Draw `size` samples of `task` from agent `agent_idx`, as many per request
/// as the provider allows, sending every call to the store as it completes.
async fn draw_pool(
    sh: &Shared,
    task: &Task,
    agent_idx: usize,
    size: usize,
) -> Result<Vec<PoolSample>, Stop> {
    let sc = &*sh.scenario;
    let agent = &sc.agents[agent_idx];
    let prompt = agent.prompt.render(&task.inputs).map_err(|e| {
        Stop::Failed(format!(
            "agent \"{}\": prompt template failed on task \"{}\": {e}",
            agent.name, task.id
        ))
    })?;
    let prompt_blob = Blob::new(&prompt);
    let provider = sh.providers[agent.model].clone();
    let verifiers = sc.verifiers_of(agent_idx);
    let per_request = provider.max_n_per_request().clamp(1, size.max(1));
    let fingerprint = provider.fingerprint();
    let price = sc.models[agent.model].price;
    let batches: Vec<(usize, usize)> = (0..size)
        .step_by(per_request)
        .map(|first| (first, per_request.min(size - first)))
        .collect();

    let calls = futures_util::stream::iter(batches)
        .map(|(first, n)| {
            let provider = provider.clone();
            let prompt = prompt.as_str();
            let key = call_key(&fingerprint, &agent.system, prompt, first, n);
            async move {
                if let Some(r) = sh.stored.get(&key) {
                    return Ok((first, n, key, Ok(r.clone()), None));
                }
                let _permit = sh.calls.acquire().await.expect("semaphore open");
                if sh.cancel.load(Ordering::Relaxed) {
                    return Err(Stop::Cancelled);
                }
                let req = CallRequest {
                    agent: &agent.name,
                    task,
                    system: &agent.system,
                    prompt,
                    first_sample: first,
                    n,
                };
                // Only token and cost caps need the bound; requests always count.
                let bound = if sh.ledger.counts_tokens() {
                    provider.usage_bound(&req)
                } else {
                    UsageBound::default()
                };
                let reservation = sh
                    .ledger
                    .reserve(Spend::call(
                        price,
                        bound.input_tokens,
                        bound.output_tokens.unwrap_or(0),
                    ))
                    .await
                    .map_err(Stop::Budget)?;
                sh.progress.requests.fetch_add(1, Ordering::Relaxed);
                let response = provider.complete(req).await;
                Ok((first, n, key, response, Some(reservation)))
            }
        })
        .buffer_unordered(sh.concurrency);
    futures_util::pin_mut!(calls);

    let mut pool: Vec<Option<PoolSample>> = vec![None; size];
    let mut stop = None;
    while let Some(result) = calls.next().await {
        // No reservation: the call was already in the trace.
        let (first, n, key, response, reservation) = match result {
            Ok(r) => r,
            Err(s) => {
                stop.get_or_insert(s);
                continue;
            }
        };
        let call = CallMeta {
            task,
            agent_idx,
            first,
            n,
            verifiers: &verifiers,
            prompt: &prompt_blob,
            key,
        };
        let fatal = match &response {
            Err(e) if e.fatal => Some(e.to_string()),
            _ => None,
        };
        let (mut record, mut samples) = trace_call(sh, &call, response);
        if call
            .verifiers
            .iter()
            .any(|&v| sc.verifiers[v].runs_command())
        {
            score_by_commands(sh, &call, &mut record, &mut samples).await;
        }
        let used = Spend {
            requests: 1,
            tokens: record.input_tokens + record.output_tokens,
            cost_usd: record.cost_usd.unwrap_or(0.0),
        };
        sh.progress.tokens.fetch_add(used.tokens, Ordering::Relaxed);
        let already_stored = reservation.is_none();
        if let Some(r) = reservation {
            r.settle(used);
        }
        if !already_stored
            && sh
                .records
                .send(Record::Call(Box::new(record)))
                .await
                .is_err()
        {
            return Err(Stop::Failed(
                "the trace store stopped accepting records".into(),
            ));
        }
        sh.progress.samples.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(message) = fatal {
            stop.get_or_insert(Stop::Failed(message));
            sh.cancel.store(true, Ordering::Relaxed);
            continue;
        }
        for (k, sample) in samples.into_iter().enumerate() {
            pool[first + k] = Some(sample);
        }
    }
    if let Some(s) = stop {
        return Err(s);
    }
    Ok(pool
        .into_iter()
        .map(|s| s.expect("every call answered"))
        .collect())
}

/// Fill in the scores of the command verifiers of `call` on every sample of
/// `record`, running at most one command per CPU at a time.
async fn score_by_commands(
    sh: &Shared,
    call: &CallMeta<'_>,
    record: &mut CallRecord,
    pool: &mut [PoolSample],
) {
    let sc = &*sh.scenario;
    let jobs: Vec<(usize, usize, usize)> = (0..record.samples.len())
        .flat_map(|i| {
            call.verifiers
                .iter()
                .enumerate()
                .filter(|&(_, &v)| sc.verifiers[v].runs_command())
                .map(move |(slot, &v)| (i, slot, v))
        })
        .collect();
    let record_ref = &*record;
    let scored = futures_util::future::join_all(jobs.iter().map(|&(i, _, v)| async move {
        let _permit = sh.commands.acquire().await.expect("semaphore open");
        let s = &record_ref.samples[i];
        let candidate = Candidate {
            agent: &sc.agents[call.agent_idx].name,
            task: call.task,
            index: s.sample_index,
            text: &s.text,
            extracted: s.extracted.as_deref(),
            answer: s.normalized.as_deref(),
            correct: s.correct,
        };
        sc.verifiers[v].score_by_command(&candidate).await
    }))
    .await;
    for ((i, slot, v), s) in jobs.into_iter().zip(scored) {
        pool[i].scores[v] = s.value.unwrap_or(UNSCORED);
        let stored = &mut record.samples[i].scores[slot];
        stored.value = s.value;
        stored.accepted = s.accepted;
        stored.detail = s.detail;
    }
}

/// What a call was for.
struct CallMeta<'a> {
    task: &'a Task,
    agent_idx: usize,
    first: usize,
    n: usize,
    verifiers: &'a [usize],
    prompt: &'a Blob,
    key: String,
}

/// Turn one provider response into a trace record and pool entries. A failed
/// call yields `n` abstentions carrying the error.
fn trace_call(
    sh: &Shared,
    call: &CallMeta<'_>,
    response: Result<crate::provider::CallResponse, crate::provider::ProviderError>,
) -> (CallRecord, Vec<PoolSample>) {
    let sc = &*sh.scenario;
    let agent = &sc.agents[call.agent_idx];
    let task = call.task;
    let (texts, input_tokens, latency, raw, request, attempts, error) = match response {
        Ok(r) => (
            r.completions
                .into_iter()
                .map(|c| (c.text, c.output_tokens))
                .collect(),
            r.input_tokens,
            r.latency_ms,
            r.raw,
            r.request,
            r.attempts,
            None,
        ),
        Err(e) => (
            vec![(String::new(), 0); call.n],
            0,
            e.latency_ms,
            None,
            None,
            e.attempts.clone(),
            Some(e.to_string()),
        ),
    };
    let mut pool = Vec::with_capacity(call.n);
    let mut samples = Vec::with_capacity(call.n);
    let mut output_total = 0;
    for (i, (text, output_tokens)) in texts.into_iter().enumerate() {
        let k = call.first + i;
        output_total += output_tokens;
        let answer = if error.is_none() {
            sc.answer.extract(&text)
        } else {
            None
        };
        let correct = match (&answer, &task.expected) {
            (Some(a), Some(e)) => Some(a.normalized == *e),
            (None, Some(_)) => Some(false),
            (_, None) => None,
        };
        let mut scores = vec![f64::NAN; sc.verifiers.len()];
        let mut stored_scores = Vec::with_capacity(call.verifiers.len());
        let candidate = Candidate {
            agent: &agent.name,
            task,
            index: k,
            text: &text,
            extracted: answer.as_ref().map(|a| a.raw.as_str()),
            answer: answer.as_ref().map(|a| a.normalized.as_str()),
            correct,
        };
        for &v in call.verifiers {
            // Command verifiers leave a blank, filled by `score_by_commands`.
            let s = sc.verifiers[v]
                .score_now(sc.seed, &candidate)
                .unwrap_or(Score {
                    value: None,
                    accepted: None,
                    detail: None,
                });
            scores[v] = s.value.unwrap_or(UNSCORED);
            stored_scores.push(ScoreRecord {
                verifier: sh.verifier_names[v].clone(),
                value: s.value,
                accepted: s.accepted,
                detail: s.detail,
            });
        }
        // A request's input tokens count once, against its first sample.
        let sample_input = if i == 0 { input_tokens } else { 0 };
        pool.push(PoolSample {
            answer: answer.as_ref().map(|a| a.normalized.clone()),
            correct: correct.unwrap_or(false),
            tokens: sample_input + output_tokens,
            scores,
        });
        samples.push(SampleRecord {
            sample_index: k,
            text,
            extracted: answer.as_ref().map(|a| a.raw.clone()),
            normalized: answer.map(|a| a.normalized),
            correct,
            output_tokens,
            error: error.clone(),
            scores: stored_scores,
        });
    }
    let record = CallRecord {
        task_index: task.index,
        agent: sh.agent_names[call.agent_idx].clone(),
        model: sh.model_names[agent.model].clone(),
        provider: sc.models[agent.model].provider_name(),
        first_sample: call.first,
        n: call.n,
        system: sh.system_blobs[call.agent_idx].clone(),
        prompt: call.prompt.clone(),
        request: request.unwrap_or_else(|| {
            serde_json::json!({"model": sc.models[agent.model].name, "n": call.n}).to_string()
        }),
        attempts,
        cache_key: call.key.clone(),
        response: raw,
        error,
        latency_ms: latency,
        input_tokens,
        output_tokens: output_total,
        cost_usd: sc.models[agent.model]
            .price
            .map(|p| p.cost(input_tokens, output_total)),
        samples,
    };
    (record, pool)
}
