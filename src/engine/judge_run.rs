//! `crucible judge`: a judge file applied to a stored or imported run's
//! traces after the fact, without running anything again.
//!
//! The judge's models come from the run's stored scenario (with `--set`
//! overrides) or from a models file (any YAML file with a `models:`
//! section, a scenario included). Calls go through the same
//! [`Caller`] as a run's: within a budget of their own, traced into the
//! run, and looked up first in the run's own trace — so judging again with
//! the same judge and models costs nothing, and a judgement stopped by its
//! budget resumes where it stopped when run again. Traces every model and
//! repeat has already judged are skipped.

use std::path::Path;
use std::sync::Arc;

use crate::engine::budget::Ledger;
use crate::engine::caller::{Caller, CallerSetup, Stop};
use crate::engine::error::Error;
use crate::engine::judging::{self, Subject, Tally};
use crate::engine::runner::{Runner, with_stored_scenario};
use crate::model::provider::Provider;
use crate::model::replay::Recordings;
use crate::scenario::budget::unenforceable_on;
use crate::scenario::failure::FailureMode;
use crate::scenario::judge_file::{JudgeFile, JudgeUse};
use crate::scenario::validator::load_models;
use crate::scenario::{Model, ModelKind};
use crate::store::{Store, StoreWriter};

/// What to judge a run with.
#[derive(Debug, Clone)]
pub struct JudgeRequest<'a> {
    pub run_id: i64,
    pub judge: &'a Path,
    /// Model names; several make an ensemble.
    pub models: &'a [String],
    /// A scenario file whose `models` to use instead of the run's own.
    pub models_file: Option<&'a Path>,
    pub repeats: usize,
    pub max_trace_tokens: Option<usize>,
    pub reask: bool,
    /// The judge's own sampling temperature and request seed, instead of
    /// its models'.
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
}

/// How judging a run ended.
#[derive(Debug, Clone)]
pub struct JudgeOutcome {
    pub judge: Arc<JudgeFile>,
    /// The judge's models by name (with its own sampling, when given).
    pub models: Vec<String>,
    pub tally: Tally,
    /// Traces already judged by every model and repeat, left alone.
    pub skipped: usize,
    /// Why judging stopped before every trace was judged.
    pub stopped: Option<String>,
    /// Whether it stopped for the budget (resume with a larger one).
    pub budget_exhausted: bool,
}

impl Runner {
    /// Judge run `req.run_id`'s traces with the judge file `req.judge`.
    pub fn judge(&self, req: &JudgeRequest<'_>) -> Result<JudgeOutcome, Error> {
        let file = Arc::new(JudgeFile::load(req.judge).map_err(Error::Invalid)?);
        let store = Store::open(&self.options.db)?;
        let (mut models, source) = self.judge_models(&store, req.run_id, req.models_file)?;
        let mut indices = Vec::new();
        for (k, name) in req.models.iter().enumerate() {
            if req.models[..k].contains(name) {
                return Err(Error::Setup(format!(
                    "model \"{name}\" is named twice; an ensemble needs different models"
                )));
            }
            let Some(i) = models.iter().position(|m| m.name == *name) else {
                let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
                return Err(Error::Setup(format!(
                    "{source} has no model \"{name}\" to judge with (its models: {}); define it in a file given with --models-file, or add it with --set",
                    known.join(", ")
                )));
            };
            if let Some(why) = unfit_to_judge(&models[i]) {
                return Err(Error::Setup(format!("model \"{name}\" ({source}) {why}")));
            }
            if req.temperature.is_some() || req.seed.is_some() {
                let own = models[i]
                    .with_sampling(req.temperature, req.seed)
                    .map_err(Error::Setup)?;
                models.push(own);
                indices.push(models.len() - 1);
            } else {
                indices.push(i);
            }
        }
        let caps = unenforceable_on(&self.options.budget, indices.iter().map(|&i| &models[i]));
        if !caps.is_empty() {
            let lines: Vec<String> = caps.into_iter().map(|(_, m)| m).collect();
            return Err(Error::Setup(lines.join("; ")));
        }
        let judge = JudgeUse {
            file: file.clone(),
            models: indices,
            repeats: req.repeats.max(1),
            max_trace_tokens: req.max_trace_tokens,
            reask: req.reask,
        };
        let tasks = store.tasks(req.run_id)?;
        let done = store.judged(req.run_id, &file.hash)?;
        let traces = store.traces(req.run_id)?;
        let (todo, skipped): (Vec<_>, Vec<_>) = traces.into_iter().partition(|t| {
            !judge.models.iter().all(|&m| {
                (0..judge.repeats)
                    .all(|r| done.contains(&(t.task_index, t.attempt, models[m].name.clone(), r)))
            })
        });
        let by_index: std::collections::HashMap<usize, &crate::scenario::Task> =
            tasks.iter().map(|t| (t.index, t)).collect();
        let subjects: Vec<Subject<'_>> = todo
            .iter()
            .filter_map(|t| {
                let task = *by_index.get(&t.task_index)?;
                let injected = t.injected.iter().filter_map(|(code, position, agent)| {
                    Some((FailureMode::from_code(code)?, *position, agent.clone()))
                });
                Some(Subject::new(task, t.attempt, &t.messages, injected))
            })
            .collect();
        let (caller, writer) = self.caller_into(&store, req.run_id, &models)?;
        let judges = [judge];
        let (tally, stop) = self.block_on(judging::judge_traces(
            &caller,
            &judges,
            subjects,
            self.options.concurrency,
        ))?;
        drop(caller);
        writer.finish()?;
        let (stopped, budget_exhausted) = why_stopped(stop);
        let names: Vec<&str> = judges[0]
            .models
            .iter()
            .map(|&m| models[m].name.as_str())
            .collect();
        store.add_event(
            req.run_id,
            "judged",
            &serde_json::json!({
                "judge": file.name, "version": file.version, "hash": file.hash,
                "models": names, "repeats": judges[0].repeats,
                "traces": tally.traces, "judgements": tally.judgements,
                "unparsed": tally.unparsed, "errors": tally.errors,
                "skipped": skipped.len(), "stopped": stopped,
            }),
        )?;
        Ok(JudgeOutcome {
            models: names.iter().map(|n| n.to_string()).collect(),
            judge: file,
            tally,
            skipped: skipped.len(),
            stopped,
            budget_exhausted,
        })
    }

    /// A caller of `models` whose calls go into run `run`'s trace, looked
    /// up there first (so asking again costs nothing), within this
    /// command's budget; and the writer behind it.
    pub(crate) fn caller_into(
        &self,
        store: &Store,
        run: i64,
        models: &[Model],
    ) -> Result<(Caller, StoreWriter), Error> {
        let providers: Vec<Arc<dyn Provider>> = self.providers(models, false)?;
        let stored: Arc<dyn Recordings> = Arc::new(store.recordings(Some(run))?);
        let writer = store.writer(run, true)?;
        let caller = Caller::new(
            models,
            providers,
            CallerSetup {
                concurrency: self.options.concurrency,
                progress: self.progress.clone(),
                cancel: self.cancel.clone(),
                ledger: Ledger::new(self.options.budget.clone(), Default::default()),
                stored: Some(stored),
                records: writer.sender(),
                once_per_key: false,
            },
        );
        Ok((caller, writer))
    }

    /// The models a judge may use — those of `req.models_file`, else of the
    /// run's stored scenario, with `--set` overrides — and where they are.
    pub(crate) fn judge_models(
        &self,
        store: &Store,
        run_id: i64,
        models_file: Option<&Path>,
    ) -> Result<(Vec<Model>, String), Error> {
        let overrides = &self.options.overrides;
        if let Some(file) = models_file {
            let models = load_models(file, overrides).map_err(Error::Invalid)?;
            return Ok((models, file.display().to_string()));
        }
        let source = store.run_source(run_id)?;
        if source.text.is_empty() {
            return Err(Error::Setup(format!(
                "run {run_id} was imported and has no scenario of its own; name a file whose `models:` to judge with (--models-file FILE)"
            )));
        }
        let models = with_stored_scenario(&source, run_id, |file| {
            load_models(file, overrides).map_err(Error::Invalid)
        })?;
        Ok((models, format!("run {run_id}'s scenario ({})", source.path)))
    }
}

/// Why `model` cannot write a verdict, if it cannot: a reward model writes
/// no text, and a simulated model needs its `judge` section.
pub(crate) fn unfit_to_judge(model: &Model) -> Option<&'static str> {
    match &model.kind {
        ModelKind::Simulated(s) if s.judge.is_none() => Some(
            "is simulated and has no `judge` section, so it cannot judge; add one (sensitivity, specificity) or name another model",
        ),
        ModelKind::Network(h) if h.api == crate::scenario::Api::RewardModel => {
            Some("is a reward model, which scores text and writes no verdict; name a chat model")
        }
        _ => None,
    }
}

/// Why asking stopped early, if it did, and whether for the budget
/// (resume with a larger one).
pub(crate) fn why_stopped(stop: Option<Stop>) -> (Option<String>, bool) {
    match stop {
        None => (None, false),
        Some(Stop::Budget(why)) => (Some(why), true),
        Some(Stop::Cancelled) => (Some("interrupted".to_owned()), false),
        Some(Stop::Failed(why)) | Some(Stop::Errored { message: why, .. }) => (Some(why), false),
    }
}
