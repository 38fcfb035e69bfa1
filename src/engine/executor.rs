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

use crate::engine::budget::Ledger;
use crate::engine::caller::{CallHead, Caller, CallerSetup, Exchange, Sent, Stop};
use crate::engine::verifier::{Candidate, Score};
use crate::model::provider::{CallRequest, CallResponse, Provider, ProviderError, Turn};
use crate::model::replay::Recordings;
use crate::scenario::budget::Spend;
use crate::scenario::tolerance::ErrorTolerance;
use crate::scenario::{Scenario, Task, Verifier};
use crate::stats::estimator::Binomials;
use crate::stats::online::{self, Learner};
use crate::stats::strategy::{self, PoolSample, TaskOutcome, UNSCORED};
use crate::store::{
    Blob, CallRecord, CallRole, CounterfactualRecord, LateScore, PoolRecord, Record, SampleRecord,
    ScoreRecord, TaskRecord, TaskResultRecord,
};

mod graph_run;

pub(crate) use graph_run::{Intervention, Redraw, Target};

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
    /// Make each distinct call once (replays repeat each other's calls).
    once_per_key: bool,
}

struct Shared {
    scenario: Arc<Scenario>,
    caller: Caller,
    binomials: Binomials,
    /// Verifier commands running at once: one per CPU.
    commands: Semaphore,
    concurrency: usize,
    system_blobs: Vec<Blob>,
    verifier_names: Vec<Arc<str>>,
    agent_names: Vec<Arc<str>>,
}

impl Shared {
    fn new(scenario: Arc<Scenario>, caller: Caller, max_n: usize, concurrency: usize) -> Shared {
        let sc = &scenario;
        Shared {
            caller,
            binomials: Binomials::new(max_n),
            commands: Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
            concurrency,
            system_blobs: sc.agents.iter().map(|a| Blob::new(&a.system)).collect(),
            verifier_names: sc
                .verifiers
                .iter()
                .map(|v| v.name.as_str().into())
                .collect(),
            agent_names: sc.agents.iter().map(|a| a.name.as_str().into()).collect(),
            scenario,
        }
    }

    /// A failure that ends the whole run: every other task stops too.
    fn fail(&self, why: String) -> Stop {
        self.caller.fail(why)
    }
}

/// One replayed graph run for [`Executor::replay_graphs`].
#[derive(Debug, Clone)]
pub(crate) struct ReplayJob {
    pub task_index: usize,
    /// Its graph run in the replay run.
    pub attempt: usize,
    pub intervention: Intervention,
    /// `agent` or `turn`, and the players intervened on as JSON.
    pub level: &'static str,
    pub coalition: String,
}

/// Per-task outcomes of the tasks that finished (`None` where a task did not).
pub type Finished = Vec<Option<Vec<TaskOutcome>>>;

/// What a resumed run already has: finished tasks, stored calls, and what it
/// spent (which counts against the budget).
type Prior = (Finished, Arc<dyn Recordings>, Spend);

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
            once_per_key: false,
        }
    }

    /// Continue a run: skip finished tasks, reuse stored calls.
    /// `spent` counts against the budget.
    pub fn resuming(
        mut self,
        finished: Vec<Option<Vec<TaskOutcome>>>,
        stored: Arc<dyn Recordings>,
        spent: Spend,
    ) -> Self {
        self.prior = Some((finished, stored, spent));
        self
    }

    /// The caller every call of this execution goes through.
    fn caller(
        &self,
        stored: Option<Arc<dyn Recordings>>,
        spent: Spend,
        records: mpsc::Sender<Record>,
    ) -> Caller {
        Caller::new(
            &self.scenario.models,
            self.providers.clone(),
            CallerSetup {
                concurrency: self.concurrency,
                progress: self.progress.clone(),
                cancel: self.cancel.clone(),
                ledger: Ledger::new(self.scenario.budget.clone(), spent),
                stored,
                records,
                once_per_key: self.once_per_key,
            },
        )
    }

    /// Replay graph runs (`crucible blame`): each job one walk with its
    /// intervention, stored as a graph run of the replay run with its
    /// outcome as a counterfactual. Jobs already stored are not given.
    pub(crate) async fn replay_graphs(
        mut self,
        records: mpsc::Sender<Record>,
        jobs: Vec<ReplayJob>,
    ) -> (Status, Option<String>) {
        let (stored, spent) = match &self.prior {
            Some((_, stored, spent)) => (Some(stored.clone()), *spent),
            None => (None, Spend::default()),
        };
        self.once_per_key = true;
        let caller = self.caller(stored, spent, records);
        let sc = self.scenario.clone();
        let graph_agent = sc.graph_agent.expect("replays are of graph runs");
        let shared = Arc::new(Shared::new(sc.clone(), caller, 0, self.concurrency));
        let jobs = Arc::new(jobs);
        let progress = self.progress.clone();
        schedule(
            &sc,
            (0..jobs.len()).collect(),
            self.concurrency.max(2),
            &self.cancel,
            |j| {
                let (shared, jobs) = (shared.clone(), jobs.clone());
                async move {
                    let job = &jobs[j];
                    let task = &shared.scenario.tasks[job.task_index];
                    let walked = graph_run::run_once(
                        &shared,
                        task,
                        graph_agent,
                        job.attempt,
                        Some(&job.intervention),
                    )
                    .await;
                    let written = match walked {
                        Ok(w) => {
                            let record = CounterfactualRecord {
                                task_index: job.task_index,
                                attempt: job.attempt,
                                origin_attempt: job.intervention.origin_attempt,
                                level: job.level,
                                coalition: job.coalition.clone(),
                                replay: job.intervention.replay,
                                correct: (!w.errored).then_some(w.sample.correct),
                                calls: w.calls,
                                tokens: w.tokens,
                                cost_usd: w.cost_usd,
                            };
                            shared
                                .caller
                                .write(Record::Counterfactual(Box::new(record)))
                                .await
                        }
                        Err(stop) => Err(stop),
                    };
                    (j, written)
                }
            },
            |_, ()| {
                progress.tasks.fetch_add(1, Ordering::Relaxed);
            },
        )
        .await
    }

    /// Run every task, sending records to `records`.
    pub async fn run(mut self, records: mpsc::Sender<Record>) -> Execution {
        let (finished, stored, spent) = match self.prior.take() {
            Some((finished, stored, spent)) => (finished, Some(stored), spent),
            None => (Vec::new(), None, Spend::default()),
        };
        let sc = &self.scenario;
        let max_n = sc.pool_sizes().into_iter().max().unwrap_or(0);
        let caller = self.caller(stored, spent, records);
        if sc.faithfulness.is_some() {
            let experiment = crate::engine::faithfulness::Experiment::new(sc.clone(), caller);
            let (status, error) = experiment.run(self.concurrency, &self.cancel).await;
            return Execution {
                status,
                error,
                outcomes: vec![None; sc.tasks.len()],
            };
        }
        let shared = Arc::new(Shared::new(
            self.scenario.clone(),
            caller,
            max_n,
            self.concurrency,
        ));
        let n_tasks = sc.tasks.len();
        let mut outcomes: Vec<Option<Vec<TaskOutcome>>> = vec![None; n_tasks];
        for (slot, done) in outcomes.iter_mut().zip(finished) {
            if done.is_some() {
                self.progress.tasks.fetch_add(1, Ordering::Relaxed);
            }
            *slot = done;
        }
        // Tasks in flight: enough to keep `concurrency` calls busy, bounded so
        // memory does not grow with the dataset.
        let window = self.concurrency.max(2);
        let todo: Vec<usize> = (0..n_tasks).filter(|&i| outcomes[i].is_none()).collect();
        let progress = self.progress.clone();
        let (status, failure) = schedule(
            sc,
            todo,
            window,
            &self.cancel,
            |idx| {
                let shared = shared.clone();
                async move { (idx, run_task(&shared, idx).await) }
            },
            |idx, o| {
                outcomes[idx] = Some(o);
                progress.tasks.fetch_add(1, Ordering::Relaxed);
            },
        )
        .await;
        Execution {
            status,
            error: failure,
            outcomes,
        }
    }
}

/// Run `work` on every index of `todo`, at most `window` at once, handing
/// each result to `done`, and say how the run ended. The first stop that
/// ends the run (Ctrl-C, a budget cap, a failure, more errors than
/// `fail_on_error` tolerates) starts no more work; work in flight finishes
/// what it can.
pub(crate) async fn schedule<T, Fut>(
    sc: &Scenario,
    todo: Vec<usize>,
    window: usize,
    cancel: &AtomicBool,
    work: impl Fn(usize) -> Fut,
    mut done: impl FnMut(usize, T),
) -> (Status, Option<String>)
where
    T: Send + 'static,
    Fut: std::future::Future<Output = (usize, Result<T, Stop>)> + Send + 'static,
{
    let mut failure: Option<String> = None;
    let mut stopped = None;
    let planned = sc.planned_samples();
    let mut errors = 0;
    let mut set = tokio::task::JoinSet::new();
    let mut todo = todo.into_iter();
    loop {
        while set.len() < window && stopped.is_none() {
            let Some(idx) = todo.next() else { break };
            set.spawn(work(idx));
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok((idx, Ok(o))) => done(idx, o),
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
                    // The task's errors are in the trace; the run goes
                    // on while they are tolerated.
                    Stop::Errored { samples, message } => {
                        errors += samples;
                        if stopped.is_some() || sc.fail_on_error.tolerates(errors, planned) {
                            continue;
                        }
                        failure.get_or_insert(too_many_errors(sc, errors, planned, &message));
                        Status::Failed
                    }
                };
                // Let in-flight tasks finish what they can; start no more.
                stopped.get_or_insert(kind);
                cancel.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                failure.get_or_insert(format!("task panicked: {e}"));
                stopped.get_or_insert(Status::Failed);
                cancel.store(true, Ordering::Relaxed);
            }
        }
    }
    let status = match stopped {
        Some(s) => s,
        None if cancel.load(Ordering::Relaxed) => Status::Interrupted,
        None => Status::Completed,
    };
    (status, failure)
}

/// Why a run with `errors` errored samples of `planned` fails, given the
/// first one's `message`, in one line that says what to do.
fn too_many_errors(sc: &Scenario, errors: u64, planned: u64, message: &str) -> String {
    match sc.fail_on_error {
        ErrorTolerance::None => format!(
            "{message} (a failed call fails the run; `fail_on_error` or --fail-on-error tolerates some)"
        ),
        tolerance => format!(
            "{errors} samples failed, more than {} tolerates; the first: {message}",
            tolerance.describe(planned)
        ),
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
        pools[agent_idx] = if sc.graph_agent == Some(agent_idx) {
            graph_run::draw_graph_pool(sh, task, agent_idx, size).await?
        } else {
            draw_pool(sh, task, agent_idx, size).await?
        };
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
                verifier_tokens: o.verifier_tokens,
                samples: o.samples,
                selected: o.selected.clone(),
                selected_correct: o.selected_correct,
            });
            outcomes.push(o);
        }
    }
    let pools = pools
        .iter()
        .enumerate()
        .filter(|(_, pool)| !pool.is_empty())
        .map(|(a, pool)| pool_record(sh, idx, a, pool))
        .collect();
    let task = TaskRecord {
        results: rows,
        pools,
    };
    sh.caller.write(Record::Task(Box::new(task))).await?;
    Ok(outcomes)
}

/// Agent `agent`'s pool of task `task_index` as the store keeps it for
/// analysis: answers as classes, and the verifiers that scored it.
fn pool_record(sh: &Shared, task_index: usize, agent: usize, pool: &[PoolSample]) -> PoolRecord {
    let mut answers: Vec<String> = Vec::new();
    let samples = pool
        .iter()
        .map(|s| {
            let class = s.answer.as_ref().map(|a| {
                answers.iter().position(|x| x == a).unwrap_or_else(|| {
                    answers.push(a.clone());
                    answers.len() - 1
                }) as u32
            });
            (class, s.correct, s.tokens)
        })
        .collect();
    let scored: Vec<usize> = (0..sh.scenario.verifiers.len())
        .filter(|&v| pool.iter().any(|s| !s.scores[v].is_nan()))
        .collect();
    PoolRecord {
        agent: sh.agent_names[agent].clone(),
        task_index,
        answers,
        samples,
        scores: scored
            .iter()
            .map(|&v| {
                let name = sh.verifier_names[v].to_string();
                (name, pool.iter().map(|s| s.scores[v]).collect())
            })
            .collect(),
        verifier_tokens: scored
            .iter()
            .map(|&v| pool.iter().map(|s| s.verifier_tokens[v]).collect())
            .collect(),
    }
}

/// Agent `agent_idx`'s prompt template rendered for `task`.
fn render_prompt(sh: &Shared, task: &Task, agent_idx: usize) -> Result<String, Stop> {
    let agent = &sh.scenario.agents[agent_idx];
    agent.prompt.render(&task.inputs).map_err(|e| {
        Stop::Failed(format!(
            "agent \"{}\": prompt template failed on task \"{}\": {e}",
            agent.name, task.id
        ))
    })
}

/// Draw `size` samples of `task` from agent `agent_idx`, as many per request
/// as the provider allows, sending every call to the store as it completes.
async fn draw_pool(
    sh: &Shared,
    task: &Task,
    agent_idx: usize,
    size: usize,
) -> Result<Vec<PoolSample>, Stop> {
    let conversation = Conversation::new(sh, task, agent_idx, sh.scenario.verifiers_of(agent_idx))?;
    let provider = &sh.caller.providers[sh.scenario.agents[agent_idx].model];
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
    let mut stop: Option<Stop> = None;
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
                stop = Some(match stop.take() {
                    Some(earlier) => earlier.and(s),
                    None => s,
                });
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

/// Self-correction of strategy `si` on `task`: one sample per round;
/// after a rejected answer the model gets its reply back with the
/// verifier's feedback and answers again, until the verifier accepts or the
/// largest `n` of rounds is spent. With experts, the strategy's policy
/// picks the agent for each round from the verdicts so far (its draws
/// seeded by the task and round). Every round is a traced call.
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
    // Rounds are not pool samples: only the strategy's own verifier scores them.
    let conversations = strategy
        .callers()
        .into_iter()
        .map(|agent| Conversation::new(sh, task, agent, vec![v]))
        .collect::<Result<Vec<_>, Stop>>()?;
    let mut learner = Learner::new(
        online::Policy::from(correction.policy),
        conversations.len(),
        strategy.most_rounds(),
    );
    let first_round = sc.first_round(si);
    let mut history: Vec<Turn> = Vec::new();
    let mut rounds: Vec<PoolSample> = Vec::new();
    for round in 0..strategy.most_rounds() {
        let k = first_round + round;
        let expert = learner.choose(&mut crate::seed::rng(
            sc.seed,
            &[
                "policy".into(),
                strategy.name.as_str().into(),
                task.id.as_str().into(),
                round.into(),
            ],
        ));
        let conversation = &conversations[expert];
        let sent = conversation.send(sh, &history, k, 1).await?;
        let round = Some((Arc::<str>::from(strategy.name.as_str()), first_round));
        let (mut samples, records) = conversation
            .record(sh, (&history, round), k, 1, sent)
            .await?;
        let (sample, record) = (samples.remove(0), &records[0]);
        let verdict = &record.scores[0];
        let accepted = verdict
            .accepted
            .unwrap_or_else(|| verdict.value.is_some_and(|s| s >= correction.accept));
        learner.update(
            expert,
            if accepted {
                1.0
            } else {
                verdict.value.unwrap_or(0.0)
            },
        );
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
                tokens: taken
                    .iter()
                    .map(|s| (s.tokens + s.verifier_tokens[v]) as f64)
                    .sum(),
                verifier_tokens: taken.iter().map(|s| s.verifier_tokens[v] as f64).sum(),
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
    verifiers: Vec<usize>,
    /// A graph turn's scene, sent along to simulated models.
    scene: Option<crate::model::scene::Scene>,
    /// Whether its samples are samples of the plan (a graph turn's are part
    /// of its run's, counted as the run ends).
    planned: bool,
}

impl<'a> Conversation<'a> {
    /// Agent `agent_idx` on `task`, its samples scored by `verifiers`.
    fn new(
        sh: &Shared,
        task: &'a Task,
        agent_idx: usize,
        verifiers: Vec<usize>,
    ) -> Result<Self, Stop> {
        let prompt = render_prompt(sh, task, agent_idx)?;
        Ok(Conversation::with_prompt(
            task, agent_idx, prompt, verifiers,
        ))
    }

    /// Agent `agent_idx` on `task` with `prompt` as its user message.
    fn with_prompt(
        task: &'a Task,
        agent_idx: usize,
        prompt: String,
        verifiers: Vec<usize>,
    ) -> Self {
        Conversation {
            task,
            agent_idx,
            prompt_blob: Blob::new(&prompt),
            prompt,
            verifiers,
            scene: None,
            planned: true,
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
        let agent = &sh.scenario.agents[self.agent_idx];
        let req = CallRequest {
            agent: &agent.name,
            task: self.task,
            system: &agent.system,
            prompt: &self.prompt,
            history,
            first_sample: first,
            n,
            scene: self.scene.as_ref(),
            trace: None,
            explaining: None,
        };
        sh.caller.send(agent.model, req).await
    }

    /// Trace a call that came back: extract and score its samples (calling
    /// the models of verifiers that have one), settle its reservation, and
    /// send it to the store (unless it was already there), then the verdicts.
    /// Returns the samples as strategies see them and as stored.
    async fn record(
        &self,
        sh: &Shared,
        (history, round): (&[Turn], Option<(Arc<str>, usize)>),
        first: usize,
        n: usize,
        (key, response, origin): Sent<'_>,
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
        let failed = match &response {
            Err(e) => Some((e.fatal, e.to_string())),
            Ok(_) => None,
        };
        let (mut record, mut samples) = trace_call(sh, &call, response);
        // Settled before judging: the judges' calls may wait on the budget
        // until every reservation is settled.
        let new = sh.caller.settle(&mut record, origin);
        if let Some((fatal, message)) = failed {
            // Errors are traced but never scored: nothing came back to score.
            if new {
                sh.caller.write(Record::Call(Box::new(record))).await?;
            }
            if self.planned {
                sh.caller
                    .progress
                    .samples
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            return Err(if fatal {
                sh.fail(message)
            } else {
                Stop::Errored {
                    samples: n as u64,
                    message,
                }
            });
        }
        let runs = |pick: fn(&crate::scenario::Verifier) -> bool| {
            call.verifiers.iter().any(|&v| pick(&sc.verifiers[v]))
        };
        if runs(|v| v.runs_command()) {
            score_by_commands(sh, &call, &mut record, &mut samples).await;
        }
        let (judgements, stopped) = if runs(|v| v.model().is_some()) {
            judge(sh, &call, &mut record, &mut samples).await
        } else {
            (Vec::new(), None)
        };
        // A self-correction round is read back; pool calls need only their samples.
        let stored = if call.round.is_some() {
            record.samples.clone()
        } else {
            Vec::new()
        };
        // Judges' scores follow their samples into the trace, as their own records.
        let judged: Vec<bool> = call
            .verifiers
            .iter()
            .map(|&v| sc.verifiers[v].model().is_some())
            .collect();
        for s in &mut record.samples {
            let mut slot = judged.iter();
            s.scores.retain(|_| slot.next() == Some(&false));
        }
        if new {
            sh.caller.write(Record::Call(Box::new(record))).await?;
        }
        for j in judgements {
            let judged_anew = j.call.is_some();
            if let Some(c) = j.call {
                sh.caller.write(Record::Call(c)).await?;
            }
            if new || judged_anew {
                sh.caller.write(Record::Score(j.score)).await?;
            }
        }
        if self.planned {
            sh.caller
                .progress
                .samples
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(stop) = stopped {
            return Err(stop);
        }
        Ok((samples, stored))
    }
}

/// A verifier's verdict on one sample as it goes to the trace: the score,
/// and the call when it is new to the trace.
struct Judgement {
    score: Box<LateScore>,
    call: Option<Box<CallRecord>>,
}

/// Have every verifier of `call` that calls a model (an `llm` judge, a
/// reward model) judge every sample of `record`, one call per sample and
/// verifier, within the concurrency limit; fill in their scores and tokens.
/// Returns the verdicts, and why judging stopped if it did (verdicts reached
/// before that are returned all the same).
async fn judge(
    sh: &Shared,
    call: &CallMeta<'_>,
    record: &mut CallRecord,
    pool: &mut [PoolSample],
) -> (Vec<Judgement>, Option<Stop>) {
    let sc = &*sh.scenario;
    let jobs = call.jobs(sc, record.samples.len(), |v| v.model().is_some());
    let record_ref = &*record;
    let verdicts = futures_util::future::join_all(jobs.iter().map(|&(i, _, v)| {
        judge_one(
            sh,
            call.agent_idx,
            v,
            call.candidate(sc, &record_ref.samples[i]),
        )
    }))
    .await;
    collect_verdicts(sh, call, record, pool, jobs, verdicts)
}

/// What a verifier's model said about one sample (see [`judge_one`]).
struct Verdict {
    score: Score,
    /// A process reward model's steps and their scores.
    steps: Vec<(String, f64)>,
    /// Tokens the call used.
    tokens: u64,
    /// The call's record, when it is new to the trace.
    call: Option<Box<CallRecord>>,
    /// The call's error, when it must stop the run.
    fatal: Option<String>,
}

/// Put each job's verdict on its sample.
fn collect_verdicts(
    sh: &Shared,
    call: &CallMeta<'_>,
    record: &mut CallRecord,
    pool: &mut [PoolSample],
    jobs: Vec<(usize, usize, usize)>,
    verdicts: Vec<Result<Verdict, Stop>>,
) -> (Vec<Judgement>, Option<Stop>) {
    let mut judgements = Vec::with_capacity(jobs.len());
    let mut stop = None;
    for (job, verdict) in jobs.into_iter().zip(verdicts) {
        let mut verdict = match verdict {
            Ok(v) => v,
            Err(s) => {
                stop.get_or_insert(s);
                continue;
            }
        };
        if let Some(fatal) = verdict.fatal.take() {
            stop.get_or_insert(sh.fail(fatal));
        }
        let (i, _, v) = job;
        pool[i].verifier_tokens[v] = verdict.tokens;
        let (agent, sample_index) = (record.agent.clone(), record.samples[i].sample_index);
        let stored = set_score(record, pool, job, verdict.score).clone();
        judgements.push(Judgement {
            score: Box::new(LateScore {
                task_index: call.task.index,
                agent,
                sample_index,
                score: stored,
                steps: verdict.steps,
            }),
            call: verdict.call,
        });
    }
    (judgements, stop)
}

/// Verifier `v`'s verdict on `candidate` (a sample of agent `agent_idx`),
/// from one call to its model. A failed call scores nothing.
async fn judge_one(
    sh: &Shared,
    agent_idx: usize,
    v: usize,
    candidate: Candidate<'_>,
) -> Result<Verdict, Stop> {
    let sc = &*sh.scenario;
    let task = candidate.task;
    let verifier = &sc.verifiers[v];
    let model = verifier.model().expect("a verifier that calls a model");
    let (system, prompt) = verifier.request(&candidate).map_err(|e| {
        Stop::Failed(format!(
            "verifier \"{}\": prompt template failed on task \"{}\": {e}",
            verifier.name, task.id
        ))
    })?;
    let req = CallRequest {
        agent: &verifier.name,
        task,
        system: &system,
        prompt: &prompt,
        history: &[],
        first_sample: candidate.index,
        n: 1,
        scene: None,
        trace: None,
        explaining: None,
    };
    let (key, response, origin) = sh.caller.send(model, req).await?;
    let fatal = match &response {
        Err(e) if e.fatal => Some(e.to_string()),
        _ => None,
    };
    let (replies, exchange) = Exchange::of(response, 1);
    let reply = replies.into_iter().next().map(|r| r.0);
    let (score, steps) = match (&exchange.error, &reply) {
        (Some(e), _) => (
            Score::failed(format!("the verifier's call failed: {e}")),
            Vec::new(),
        ),
        (None, None) => (
            Score::failed("the verifier's call returned no reply".into()),
            Vec::new(),
        ),
        (None, Some(reply)) => verifier.read(candidate.text, reply, exchange.raw.as_deref()),
    };
    let head = CallHead {
        task_index: task.index,
        agent: sh.verifier_names[v].clone(),
        model,
        first_sample: candidate.index,
        n: 1,
        system: Blob::new(&system),
        prompt: Blob::new(&prompt),
        key,
        history: &[],
    };
    let mut record = CallRecord {
        role: CallRole::Verifier {
            subject: sh.agent_names[agent_idx].clone(),
            reply: reply.unwrap_or_default(),
        },
        ..exchange.into_record(&sh.caller, head, Vec::new())
    };
    let new = sh.caller.settle(&mut record, origin);
    Ok(Verdict {
        score,
        steps,
        tokens: record.input_tokens + record.output_tokens,
        call: new.then(|| Box::new(record)),
        fatal,
    })
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
    let jobs = call.jobs(sc, record.samples.len(), Verifier::runs_command);
    let record_ref = &*record;
    let scored = futures_util::future::join_all(jobs.iter().map(|&(i, _, v)| async move {
        let _permit = sh.commands.acquire().await.expect("semaphore open");
        let candidate = call.candidate(sc, &record_ref.samples[i]);
        sc.verifiers[v].score_by_command(&candidate).await
    }))
    .await;
    for (job, s) in jobs.into_iter().zip(scored) {
        set_score(record, pool, job, s);
    }
}

/// Give sample `i` of `record` verifier `v`'s score (at `slot` among the
/// call's verifiers), in the trace and in the pool.
fn set_score<'r>(
    record: &'r mut CallRecord,
    pool: &mut [PoolSample],
    (i, slot, v): (usize, usize, usize),
    score: Score,
) -> &'r ScoreRecord {
    pool[i].scores[v] = score.value.unwrap_or(UNSCORED);
    let stored = &mut record.samples[i].scores[slot];
    stored.value = score.value;
    stored.accepted = score.accepted;
    stored.detail = score.detail;
    stored
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

impl CallMeta<'_> {
    /// (sample, slot, verifier) for each of `samples` samples and each of the
    /// call's verifiers that `pick` selects (slot: its place among them).
    fn jobs(
        &self,
        sc: &Scenario,
        samples: usize,
        pick: fn(&Verifier) -> bool,
    ) -> Vec<(usize, usize, usize)> {
        (0..samples)
            .flat_map(|i| {
                self.verifiers
                    .iter()
                    .enumerate()
                    .filter(|&(_, &v)| pick(&sc.verifiers[v]))
                    .map(move |(slot, &v)| (i, slot, v))
            })
            .collect()
    }

    /// What a verifier sees of sample `s` of this call.
    fn candidate<'r>(&'r self, sc: &'r Scenario, s: &'r SampleRecord) -> Candidate<'r> {
        Candidate {
            agent: &sc.agents[self.agent_idx].name,
            task: self.task,
            prompt: &self.prompt.text,
            index: s.sample_index,
            within: None,
            text: &s.text,
            extracted: s.extracted.as_deref(),
            answer: s.normalized.as_deref(),
            correct: s.correct,
        }
    }
}

/// Whether `answer` is `task`'s expected one: `None` without an expected
/// answer; an abstention is wrong.
fn correctness(answer: Option<&crate::scenario::answer::Answer>, task: &Task) -> Option<bool> {
    match (answer, &task.expected) {
        (Some(a), Some(e)) => Some(a.normalized == *e),
        (None, Some(_)) => Some(false),
        (_, None) => None,
    }
}

/// Turn one provider response into a trace record and pool entries. A failed
/// call yields `n` abstentions carrying the error.
fn trace_call(
    sh: &Shared,
    call: &CallMeta<'_>,
    response: Result<CallResponse, ProviderError>,
) -> (CallRecord, Vec<PoolSample>) {
    let sc = &*sh.scenario;
    let agent = &sc.agents[call.agent_idx];
    let task = call.task;
    let (texts, exchange) = Exchange::of(response, call.n);
    let error = &exchange.error;
    let mut pool = Vec::with_capacity(call.n);
    let mut samples = Vec::with_capacity(call.n);
    for (i, (text, output_tokens)) in texts.into_iter().enumerate() {
        let k = call.first + i;
        let answer = if error.is_none() {
            sc.answer.extract_for(&text, task)
        } else {
            None
        };
        let correct = correctness(answer.as_ref(), task).filter(|_| error.is_none());
        let mut scores = vec![f64::NAN; sc.verifiers.len()];
        let mut stored_scores = Vec::with_capacity(call.verifiers.len());
        let candidate = Candidate {
            agent: &agent.name,
            task,
            prompt: &call.prompt.text,
            index: k,
            within: None,
            text: &text,
            extracted: answer.as_ref().map(|a| a.raw.as_str()),
            answer: answer.as_ref().map(|a| a.normalized.as_str()),
            correct,
        };
        for &v in call.verifiers.iter().filter(|_| error.is_none()) {
            // Commands and judges leave a blank, filled in by `score_by_commands` and `judge`.
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
        let sample_input = if i == 0 { exchange.input_tokens } else { 0 };
        pool.push(PoolSample {
            answer: answer.as_ref().map(|a| a.normalized.clone()),
            correct: correct.unwrap_or(false),
            tokens: sample_input + output_tokens,
            scores,
            verifier_tokens: vec![0; sc.verifiers.len()],
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
    let head = CallHead {
        task_index: task.index,
        agent: sh.agent_names[call.agent_idx].clone(),
        model: agent.model,
        first_sample: call.first,
        n: call.n,
        system: sh.system_blobs[call.agent_idx].clone(),
        prompt: call.prompt.clone(),
        key: call.key.clone(),
        history: call.history,
    };
    (exchange.into_record(&sh.caller, head, samples), pool)
}
