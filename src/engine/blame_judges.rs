//! `crucible blame`'s judge methods: a model asked who made a run fail and
//! when — the whole log at once, step by step until it calls a step
//! decisive, or by halving the log — on a stored run's failed graph runs
//! or every trace of an imported run (Who&When's). Every question is a
//! call through the [`Caller`], traced into the judged run with the judge
//! role, looked up first in its trace (so asking again costs nothing, and
//! a stopped blame resumes), and every reply read or counted unparsed.
//! The answers go to `attributions`, one per trace and method.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::engine::caller::{Caller, Stop};
use crate::engine::error::Error;
use crate::engine::judge_run::{unfit_to_judge, why_stopped};
use crate::engine::judging::Subject;
use crate::engine::runner::Runner;
use crate::judge::attribution::{self, Method, Question, Search};
use crate::model::judged::TraceView;
use crate::model::provider::CallRequest;
use crate::scenario::Task;
use crate::scenario::attribution_file::AttributionFile;
use crate::store::{AttributionRecord, CallRole, Record, Store};

/// What to ask, of which run, with which model.
#[derive(Debug, Clone)]
pub struct JudgeBlameRequest<'a> {
    pub run: i64,
    /// Only these tasks (ids); all when empty.
    pub tasks: &'a [String],
    pub methods: &'a [Method],
    pub model: &'a str,
    /// A YAML file whose `models:` to take the model from.
    pub models_file: Option<&'a Path>,
    /// The prompts; the built-in `judges/attribution.yaml` when `None`.
    pub prompts: Option<&'a Path>,
    pub max_trace_tokens: Option<usize>,
}

/// How the questions went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// Traces and methods attributed.
    pub attributions: usize,
    pub questions: usize,
    /// Replies that could not be read.
    pub unparsed: usize,
    /// Calls that failed after their retries: their trace and method get
    /// no attribution (asked again next time).
    pub errors: usize,
}

/// What the judge methods did.
#[derive(Debug, Clone)]
pub struct JudgeBlameOutcome {
    pub asked: Asked,
    /// The graph runs (task, attempt) asked about.
    pub traces: Vec<(usize, usize)>,
    pub stopped: Option<String>,
    pub budget_exhausted: bool,
}

/// Questions a method may ask of one trace: its calls ask for samples
/// `(attempt × 3 + method) × QUESTIONS + k`, fixed whatever was asked before.
const QUESTIONS: usize = 1 << 20;

impl Runner {
    /// Ask `req.model` who made each failed trace of `req.run` fail, by
    /// each of `req.methods`.
    pub fn blame_by_judge(&self, req: &JudgeBlameRequest<'_>) -> Result<JudgeBlameOutcome, Error> {
        let file = Arc::new(match req.prompts {
            Some(path) => AttributionFile::load(path).map_err(Error::Invalid)?,
            None => AttributionFile::builtin(),
        });
        let mut store = Store::open(&self.options.db)?;
        let (models, source) = self.judge_models(&store, req.run, req.models_file)?;
        let Some(model) = models.iter().position(|m| m.name == req.model) else {
            let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::Setup(format!(
                "{source} has no model \"{}\" to ask (its models: {}); define it in a file given with --models-file",
                req.model,
                known.join(", ")
            )));
        };
        if let Some(why) = unfit_to_judge(&models[model]) {
            return Err(Error::Setup(format!(
                "model \"{}\" ({source}) {why}",
                req.model
            )));
        }
        let imported = store.run_source(req.run)?.text.is_empty();
        let tasks = store.tasks(req.run)?;
        for t in req.tasks {
            if !tasks.iter().any(|k| &k.id == t) {
                return Err(Error::Setup(format!(
                    "run {} has no task \"{t}\"; `crucible show {}` lists its tasks",
                    req.run, req.run
                )));
            }
        }
        // An imported run's traces are failures by construction; a run of
        // crucible's, its graph runs that answered wrong.
        let failed: Vec<(usize, usize)> = store
            .graph_outcomes(req.run)?
            .into_iter()
            .filter(|o| imported || o.correct == Some(false))
            .map(|o| (o.task_index, o.attempt))
            .collect();
        let culprits = store.culprits(req.run)?;
        let traces: Vec<(&Task, usize, TraceView)> = store
            .traces(req.run)?
            .into_iter()
            .filter(|t| failed.contains(&(t.task_index, t.attempt)))
            .filter_map(|t| {
                let task = tasks.iter().find(|k| k.index == t.task_index)?;
                if !req.tasks.is_empty() && !req.tasks.contains(&task.id) {
                    return None;
                }
                let mut view = Subject::new(task, t.attempt, &t.messages, std::iter::empty()).view;
                view.culprit = culprits.get(&(t.task_index, t.attempt)).cloned();
                Some((task, t.attempt, view))
            })
            .collect();
        let (caller, writer) = self.caller_into(&store, req.run, &models)?;
        let jobs: Vec<(&Task, usize, &TraceView, Method)> = traces
            .iter()
            .flat_map(|(task, attempt, view)| {
                req.methods.iter().map(move |&m| (*task, *attempt, view, m))
            })
            .collect();
        let ask = Ask {
            caller: &caller,
            file: &file,
            model,
            max_tokens: req.max_trace_tokens,
        };
        let (records, asked, stop) = self.block_on(async {
            let mut results = futures_util::stream::iter(jobs)
                .map(|(task, attempt, view, method)| ask.attribute(task, attempt, view, method))
                .buffer_unordered(self.options.concurrency.max(1));
            let (mut records, mut asked, mut stop) = (Vec::new(), Asked::default(), None);
            while let Some(result) = results.next().await {
                match result {
                    Ok((record, tally)) => {
                        asked.questions += tally.questions;
                        asked.unparsed += tally.unparsed;
                        asked.errors += tally.errors;
                        if let Some(r) = record {
                            asked.attributions += 1;
                            records.push(r);
                        }
                    }
                    Err(s) => {
                        stop.get_or_insert(s);
                    }
                }
            }
            (records, asked, stop)
        })?;
        drop(caller);
        writer.finish()?;
        store.save_attributions(req.run, &records)?;
        let (stopped, budget_exhausted) = why_stopped(stop);
        Ok(JudgeBlameOutcome {
            asked,
            traces: traces.iter().map(|(t, a, _)| (t.index, *a)).collect(),
            stopped,
            budget_exhausted,
        })
    }
}

/// Asking one model about traces.
struct Ask<'a> {
    caller: &'a Caller,
    file: &'a AttributionFile,
    model: usize,
    max_tokens: Option<usize>,
}

impl Ask<'_> {
    /// `method`'s attribution of one trace (`None` when a call failed),
    /// and how its questions went.
    async fn attribute(
        &self,
        task: &Task,
        attempt: usize,
        view: &TraceView,
        method: Method,
    ) -> Result<(Option<AttributionRecord>, Asked), Stop> {
        let steps = view.messages.len();
        let senders = attribution::senders(view);
        let method_index = Method::ALL.iter().position(|&m| m == method).unwrap_or(0);
        let first = (attempt * Method::ALL.len() + method_index) * QUESTIONS;
        let mut tally = Asked::default();
        let mut tokens = 0;
        let mut found: Option<(Option<String>, usize, Option<String>)> = None;
        let mut failed = false;
        {
            let question = |q: Question, k: usize| {
                let view = TraceView {
                    question: Some(q),
                    ..view.clone()
                };
                async move { self.question(task, &view, q, first + k).await }
            };
            match method {
                Method::AllAtOnce if steps > 0 => match question(Question::Whole, 0).await? {
                    Answer::Reply(reply, t) => {
                        tally.questions += 1;
                        tokens += t;
                        match attribution::read_blame(&reply, &senders, steps) {
                            Ok(b) => found = Some((Some(b.agent), b.step, b.reason)),
                            Err(why) => {
                                tally.unparsed += 1;
                                tracing::debug!("unparsed all-at-once reply: {why}");
                            }
                        }
                    }
                    Answer::Failed => failed = true,
                },
                Method::StepByStep => {
                    for (k, m) in view.messages.iter().enumerate() {
                        if m.sender.is_none() {
                            continue;
                        }
                        match question(Question::Step(m.position), k).await? {
                            Answer::Reply(reply, t) => {
                                tally.questions += 1;
                                tokens += t;
                                match attribution::read_verdict(&reply) {
                                    Ok(true) => {
                                        found = Some((m.sender.clone(), m.position, None));
                                        break;
                                    }
                                    Ok(false) => {}
                                    Err(_) => tally.unparsed += 1,
                                }
                            }
                            Answer::Failed => {
                                failed = true;
                                break;
                            }
                        }
                    }
                }
                Method::BinarySearch if steps > 0 => {
                    let mut search = Search::new(steps);
                    let mut k = 0;
                    while let Some(q) = search.question() {
                        match question(q, k).await? {
                            Answer::Reply(reply, t) => {
                                tally.questions += 1;
                                tokens += t;
                                match attribution::read_half(&reply) {
                                    Ok(half) => search.narrow(half),
                                    Err(_) => {
                                        tally.unparsed += 1;
                                        break;
                                    }
                                }
                            }
                            Answer::Failed => {
                                failed = true;
                                break;
                            }
                        }
                        k += 1;
                    }
                    if let Some(step) = search.found() {
                        found = Some((view.messages[step].sender.clone(), step, None));
                    }
                }
                _ => {}
            }
        }
        if failed {
            tally.errors += 1;
            return Ok((None, tally));
        }
        let (agent, turn, reason) = match found {
            Some((agent, step, reason)) => (agent, Some(step), reason),
            None => (None, None, None),
        };
        Ok((
            Some(AttributionRecord {
                task_index: task.index,
                attempt,
                method: method.as_str().to_owned(),
                agent,
                turn,
                reason,
                score: None,
                stderr: None,
                replays: None,
                calls: tally.questions as u64,
                tokens,
                cost_usd: 0.0,
                replay_run: None,
                credits: Vec::new(),
            }),
            tally,
        ))
    }

    /// Ask one question: its reply and tokens, or that the call failed.
    async fn question(
        &self,
        task: &Task,
        view: &TraceView,
        q: Question,
        first_sample: usize,
    ) -> Result<Answer, Stop> {
        let expected = task.expected.as_deref();
        let prompt = attribution::render(self.file, view, expected, q, self.max_tokens)
            .map_err(|e| Stop::Failed(format!("{}: {e}", self.file.path.display())))?;
        let req = CallRequest {
            agent: &self.file.name,
            task,
            system: &prompt.system,
            prompt: &prompt.user,
            history: &[],
            first_sample,
            n: 1,
            scene: None,
            trace: Some(view),
            explaining: None,
        };
        let sent = self
            .caller
            .reply(self.model, req, |reply| CallRole::Judge { reply })
            .await?;
        if let Some(record) = sent.record {
            self.caller.write(Record::Call(Box::new(record))).await?;
        }
        if let Some(why) = sent.fatal {
            return Err(self.caller.fail(why));
        }
        Ok(match sent.error {
            Some(_) => Answer::Failed,
            None => Answer::Reply(sent.text, sent.tokens.0 + sent.tokens.1),
        })
    }
}

/// What one question came back with.
enum Answer {
    /// The reply and the call's tokens.
    Reply(String, u64),
    Failed,
}
