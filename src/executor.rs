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
use crate::provider::{CallRequest, Provider, Turn, UsageBound, call_key};
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
        let evaluated = if s.correction.is_some() {
            correct_iteratively(sh, task, si).await?
        } else {
            strategy::evaluate(&sh.binomials, sc.seed, si, s, task, &pools[s.agent])
        };
        for o in evaluated {
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
    let conversation = Conversation::new(sh, task, agent_idx)?;
    let provider = &sh.providers[sh.scenario.agents[agent_idx].model];
    let per_request = provider.max_n_per_request().clamp(1, size.max(1));
    let batches: Vec<(usize, usize)> = (0..size)
        .step_by(per_request)
        .map(|first| (first, per_request.min(size - first)))
        .collect();
    let calls = futures_util::stream::iter(batches)
        .map(|(first, n)| {
            let conversation = &conversation;
            async move { (first, n, conversation.send(sh, &[], first, n).await) }
        })
        .buffer_unordered(sh.concurrency);
    futures_util::pin_mut!(calls);

    let mut pool: Vec<Option<PoolSample>> = vec![None; size];
    let mut stop = None;
    while let Some((first, n, sent)) = calls.next().await {
        let recorded = match sent {
            Ok(sent) => conversation.record(sh, (&[], None), first, n, sent).await,
            Err(s) => Err(s),
        };
        match recorded {
            Ok((samples, _)) => {
                for (k, sample) in samples.into_iter().enumerate() {
                    pool[first + k] = Some(sample);
                }
            }
            Err(s) => {
                stop.get_or_insert(s);
            }
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

/// Self-correction of strategy `si` on `task`: one sample per round; after a
/// rejected answer the model gets its reply back with the verifier's
/// feedback and answers again, until the verifier accepts or the largest `n`
/// of rounds is spent. Every round is a traced call.
async fn correct_iteratively(
    sh: &Shared,
    task: &Task,
    si: usize,
) -> Result<Vec<TaskOutcome>, Stop> {
    let sc = &*sh.scenario;
    let strategy = &sc.strategies[si];
    let correction = strategy
        .correction
        .as_ref()
        .expect("self-correction strategy");
    let v = strategy
        .verifier
        .expect("validated: self_correction has a verifier");
    let slot = sc
        .verifiers_of(strategy.agent)
        .iter()
        .position(|&x| x == v)
        .expect("the strategy's verifier scores its agent");
    let conversation = Conversation::new(sh, task, strategy.agent)?;
    let first_round = sc.first_round(si);
    let mut history: Vec<Turn> = Vec::new();
    let mut rounds: Vec<PoolSample> = Vec::new();
    for round in 0..strategy.most_rounds() {
        let k = first_round + round;
        let sent = conversation.send(sh, &history, k, 1).await?;
        let round = Some((Arc::<str>::from(strategy.name.as_str()), first_round));
        let (mut samples, records) = conversation
            .record(sh, (&history, round), k, 1, sent)
            .await?;
        let (sample, record) = (samples.remove(0), &records[0]);
        let verdict = &record.scores[slot];
        let accepted = verdict
            .accepted
            .unwrap_or_else(|| verdict.value.is_some_and(|s| s >= correction.accept));
        rounds.push(sample);
        if accepted {
            break;
        }
        let mut context = task.inputs.clone();
        context.insert(
            "answer".into(),
            record
                .normalized
                .clone()
                .unwrap_or_else(|| "(no final answer)".into())
                .into(),
        );
        context.insert(
            "score".into(),
            verdict
                .value
                .map_or(serde_json::Value::from("none"), serde_json::Value::from),
        );
        context.insert(
            "detail".into(),
            verdict.detail.clone().unwrap_or_default().into(),
        );
        let feedback = correction.feedback.render(&context).map_err(|e| {
            Stop::Failed(format!(
                "strategy \"{}\": feedback template failed on task \"{}\": {e}",
                strategy.name, task.id
            ))
        })?;
        history.push(Turn {
            reply: record.text.clone(),
            feedback,
        });
    }
    let has_expected = task.expected.is_some();
    Ok(strategy
        .ns
        .iter()
        .map(|&n| {
            // Rounds stop at the first accepted answer; the last one taken counts.
            let taken = &rounds[..n.min(rounds.len())];
            let last = taken.last().expect("at least one round");
            TaskOutcome {
                strategy: si,
                n,
                accuracy: if has_expected {
                    f64::from(u8::from(last.correct))
                } else {
                    f64::NAN
                },
                abstain: f64::from(u8::from(last.answer.is_none())),
                tokens: taken.iter().map(|s| s.tokens as f64).sum(),
                samples: taken.len() as f64,
                selected: last.answer.clone(),
                selected_correct: last.correct,
            }
        })
        .collect())
}

/// One agent talking about one task: what every call of it shares.
struct Conversation<'a> {
    task: &'a Task,
    agent_idx: usize,
    prompt: String,
    prompt_blob: Blob,
    provider: Arc<dyn Provider>,
    fingerprint: String,
    verifiers: Vec<usize>,
}

/// A call that went out (or was found in the trace: no reservation).
type Sent<'l> = (
    String,
    Result<crate::provider::CallResponse, crate::provider::ProviderError>,
    Option<crate::budget::Reservation<'l>>,
);

impl<'a> Conversation<'a> {
    fn new(sh: &Shared, task: &'a Task, agent_idx: usize) -> Result<Self, Stop> {
        let sc = &*sh.scenario;
        let agent = &sc.agents[agent_idx];
        let prompt = agent.prompt.render(&task.inputs).map_err(|e| {
            Stop::Failed(format!(
                "agent \"{}\": prompt template failed on task \"{}\": {e}",
                agent.name, task.id
            ))
        })?;
        let provider = sh.providers[agent.model].clone();
        Ok(Conversation {
            task,
            agent_idx,
            prompt_blob: Blob::new(&prompt),
            prompt,
            fingerprint: provider.fingerprint(),
            provider,
            verifiers: sc.verifiers_of(agent_idx),
        })
    }

    fn request<'r>(
        &'r self,
        sh: &'r Shared,
        history: &'r [Turn],
        first: usize,
        n: usize,
    ) -> CallRequest<'r> {
        let agent = &sh.scenario.agents[self.agent_idx];
        CallRequest {
            agent: &agent.name,
            task: self.task,
            system: &agent.system,
            prompt: &self.prompt,
            history,
            first_sample: first,
            n,
        }
    }

    /// Ask for samples `first..first + n` after `history`, unless the trace
    /// already has them; within the concurrency limit and the budget.
    async fn send<'s>(
        &self,
        sh: &'s Shared,
        history: &[Turn],
        first: usize,
        n: usize,
    ) -> Result<Sent<'s>, Stop> {
        let req = self.request(sh, history, first, n);
        let key = call_key(&self.fingerprint, &req);
        if let Some(r) = sh.stored.get(&key) {
            return Ok((key, Ok(r.clone()), None));
        }
        let _permit = sh.calls.acquire().await.expect("semaphore open");
        if sh.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        // Only token and cost caps need the bound; requests always count.
        let bound = if sh.ledger.counts_tokens() {
            self.provider.usage_bound(&req)
        } else {
            UsageBound::default()
        };
        let price = sh.scenario.models[sh.scenario.agents[self.agent_idx].model].price;
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
        let response = self.provider.complete(req).await;
        Ok((key, response, Some(reservation)))
    }

    /// Trace a call that came back: extract and score its samples, settle its
    /// reservation, and send it to the store (unless it was already there).
    /// Returns the samples as strategies see them and as stored.
    async fn record(
        &self,
        sh: &Shared,
        (history, round): (&[Turn], Option<(Arc<str>, usize)>),
        first: usize,
        n: usize,
        (key, response, reservation): Sent<'_>,
    ) -> Result<(Vec<PoolSample>, Vec<SampleRecord>), Stop> {
        let sc = &*sh.scenario;
        let call = CallMeta {
            task: self.task,
            agent_idx: self.agent_idx,
            first,
            n,
            history,
            round,
            verifiers: &self.verifiers,
            prompt: &self.prompt_blob,
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
        // A self-correction round is read back; pool calls need only their samples.
        let stored = if call.round.is_some() {
            record.samples.clone()
        } else {
            Vec::new()
        };
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
            sh.cancel.store(true, Ordering::Relaxed);
            return Err(Stop::Failed(message));
        }
        Ok((samples, stored))
    }
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
    /// Earlier rounds, for self-correction.
    history: &'a [Turn],
    /// For a self-correction round: the strategy, and its first round's sample index.
    round: Option<(Arc<str>, usize)>,
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
            sc.answer.extract_for(&text, task)
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
            round: call
                .round
                .as_ref()
                .map(|(strategy, first)| (strategy.clone(), k - first)),
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
            let mut r = serde_json::json!({"model": sc.models[agent.model].name, "n": call.n});
            if !call.history.is_empty() {
                r["history"] = call
                    .history
                    .iter()
                    .map(|t| serde_json::json!({"reply": t.reply, "feedback": t.feedback}))
                    .collect();
            }
            r.to_string()
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
