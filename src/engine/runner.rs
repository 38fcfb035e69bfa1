//! The runner: one `crucible run`, end to end — validate, open the store,
//! record the run, execute on a tokio runtime, finish the writer, summarize,
//! and store the summary and final status.
//!
//! Validation happens before the database is opened, so an invalid scenario
//! writes nothing. Ctrl-C (when enabled) stops scheduling; everything already
//! sent to the writer is committed and the run is marked `interrupted`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::error::Error;
use crate::engine::executor::{Executor, Progress, Status};
use crate::engine::faithfulness::faith_pairs;
use crate::model::network::NetworkModel;
use crate::model::provider::Provider;
use crate::model::replay::{Recorded, Recordings};
use crate::scenario::budget::Budget;
use crate::scenario::tolerance::ErrorTolerance;
use crate::scenario::validator::{directory_of, load_scenario, load_scenario_in};
use crate::scenario::{Model, ModelKind, Scenario, hash_without_limits};
use crate::stats::summary::{RunSummary, summarize};
use crate::store::{NewRun, Resumed, RunSource, Store, TaskRow};

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub db: PathBuf,
    /// Most model calls in flight at once.
    pub concurrency: usize,
    /// Stop cleanly on Ctrl-C.
    pub handle_ctrl_c: bool,
    /// Reuse recorded responses with the same cache key from any run in the
    /// database; call the model only for the rest.
    pub cache: bool,
    /// Caps that replace the scenario's (`--max-requests` and the like).
    pub budget: Budget,
    /// How many errored samples to tolerate, instead of the scenario's
    /// `fail_on_error` (`--fail-on-error`).
    pub fail_on_error: Option<ErrorTolerance>,
    /// `PATH=VALUE` overrides of the scenario file's values (`--set`); a
    /// stored scenario carries its own.
    pub overrides: Vec<String>,
}

/// Runs scenarios.
pub struct Runner {
    pub options: RunOptions,
    pub progress: Arc<Progress>,
    pub cancel: Arc<AtomicBool>,
}

impl Runner {
    pub fn new(options: RunOptions) -> Self {
        Runner {
            options,
            progress: Arc::new(Progress::default()),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Record a new run and its tasks.
    fn create_run(
        &self,
        store: &mut Store,
        scenario: &Scenario,
        scenario_path: &str,
    ) -> Result<i64, Error> {
        Ok(store.create_run(
            &NewRun {
                name: &scenario.name,
                scenario_path,
                scenario_text: &scenario.source.text,
                scenario_hash: &scenario.source.hash,
                files: &scenario.source.files,
                seed: scenario.seed,
                concurrency: self.options.concurrency,
                planned_samples: scenario.planned_samples(),
                faith_pairs: &faith_pairs(scenario),
            },
            scenario.tasks.iter().map(|t| TaskRow {
                index: t.index,
                id: &t.id,
                inputs: serde_json::Value::Object(t.inputs.clone()).to_string(),
                expected: t.expected.as_deref(),
            }),
        )?)
    }

    /// Replace the scenario's limits with those given on the command line,
    /// and check that its models can be held to its caps.
    pub(crate) fn override_limits(&self, scenario: &mut Scenario) -> Result<(), Error> {
        if let Some(tolerance) = self.options.fail_on_error {
            scenario.fail_on_error = tolerance;
        }
        let (b, o) = (&mut scenario.budget, &self.options.budget);
        b.max_requests = o.max_requests.or(b.max_requests);
        b.max_tokens = o.max_tokens.or(b.max_tokens);
        b.max_cost_usd = o.max_cost_usd.or(b.max_cost_usd);
        let problems = crate::scenario::budget::unenforceable(scenario);
        if problems.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
        Err(Error::Setup(format!(
            "{}: {}",
            scenario.source.path.display(),
            lines.join("; ")
        )))
    }

    /// One provider per model of the scenario. `offline`: no call will go
    /// out (strict replay), so API keys are not required.
    pub(crate) fn providers(
        &self,
        models: &[Model],
        offline: bool,
    ) -> Result<Vec<Arc<dyn Provider>>, Error> {
        models
            .iter()
            .map(|m| match &m.kind {
                ModelKind::Simulated(s) => Ok(Arc::new(s.clone()) as Arc<dyn Provider>),
                ModelKind::Network(h) => {
                    let key = match &h.api_key_env {
                        None => None,
                        Some(env) if offline => std::env::var(env).ok(),
                        Some(env) => Some(std::env::var(env).map_err(|_| {
                            Error::Setup(format!(
                                "model \"{}\": environment variable {env} is not set; export it with the API key for {}",
                                m.name, h.base_url
                            ))
                        })?),
                    };
                    NetworkModel::new(h.clone(), key, self.progress.waiting.clone())
                        .map(|p| Arc::new(p) as Arc<dyn Provider>)
                        .map_err(Error::Setup)
                }
            })
            .collect()
    }

    /// Check the judge file at `path`.
    pub fn validate_judge(path: &Path) -> Result<crate::scenario::judge_file::JudgeFile, Error> {
        crate::scenario::judge_file::JudgeFile::load(path).map_err(Error::Invalid)
    }

    /// Run `run_id`'s stored scenario, validated as it was run (with the
    /// files it read), from the database at `db`.
    pub fn stored_scenario(db: &Path, run_id: i64) -> Result<Scenario, Error> {
        let source = Store::open(db)?.run_source(run_id)?;
        with_stored_scenario(&source, run_id, |file| Self::validate(file, &[]))
    }

    /// Validate `path`, with `overrides` applied, without running it.
    pub fn validate(path: &Path, overrides: &[String]) -> Result<Scenario, Error> {
        load_scenario(path, overrides).map_err(Error::Invalid)
    }

    /// Validate and run the scenario at `path`. `on_start` is called with the
    /// validated scenario and the new run id before any sample is drawn.
    pub fn run(
        &self,
        path: &Path,
        on_start: impl FnOnce(&Scenario, i64),
    ) -> Result<RunSummary, Error> {
        let recorded = if self.options.cache && self.options.db.exists() {
            let recordings: Arc<dyn Recordings> =
                Arc::new(Store::open(&self.options.db)?.recordings(None)?);
            Some((recordings, true))
        } else {
            None
        };
        self.execute(path, Origin::File, recorded, None, on_start)
    }

    /// Re-execute run `run_id`'s stored scenario, answering every call from
    /// that run's recorded responses. `strict`: a call that was not recorded
    /// fails the replay, naming the call; otherwise it goes to the model.
    pub fn replay(
        &self,
        run_id: i64,
        strict: bool,
        on_start: impl FnOnce(&Scenario, i64),
    ) -> Result<RunSummary, Error> {
        let store = Store::open(&self.options.db)?;
        let source = store.run_source(run_id)?;
        let responses: Arc<dyn Recordings> = Arc::new(store.recordings(Some(run_id))?);
        drop(store);
        with_stored_scenario(&source, run_id, |file| {
            self.execute(
                file,
                Origin::Stored(&source.path),
                Some((responses, !strict)),
                None,
                on_start,
            )
        })
    }

    /// Continue run `run_id` where it stopped: finished tasks are kept,
    /// recorded calls are neither requested nor stored again, and the rest is
    /// drawn. With `file`, that scenario must be the one the run was made
    /// from (same hash); without, the stored scenario is used.
    pub fn resume(
        &self,
        run_id: i64,
        file: Option<&Path>,
        on_start: impl FnOnce(&Scenario, i64),
    ) -> Result<RunSummary, Error> {
        let store = Store::open(&self.options.db)?;
        let source = store.run_source(run_id)?;
        // A completed run may still hold errors it tolerated: those are retried.
        if source.status == "completed" && store.run_summary(run_id)?.errors == 0 {
            return Err(Error::Setup(format!(
                "run {run_id} is already completed; nothing to resume"
            )));
        }
        drop(store);
        match file {
            Some(file) => {
                let scenario = Self::validate(file, &self.options.overrides)?;
                // Only the limits may differ: compare the scenarios without them.
                let meaning = hash_without_limits(&scenario.source.text, &scenario.source.files);
                if meaning.is_none() || meaning != hash_without_limits(&source.text, &source.files)
                {
                    return Err(Error::Setup(format!(
                        "{} has changed since run {run_id} was made from it (scenario hash {} vs {}); \
                         only `budget` and `fail_on_error` may change when resuming. Resume without a file to use the \
                         stored scenario, or start a new run",
                        file.display(),
                        &scenario.source.hash[..12],
                        &source.hash[..12]
                    )));
                }
                self.execute(
                    file,
                    Origin::Resumed(&source.path),
                    None,
                    Some(run_id),
                    on_start,
                )
            }
            None => with_stored_scenario(&source, run_id, |file| {
                self.execute(
                    file,
                    Origin::Stored(&source.path),
                    None,
                    Some(run_id),
                    on_start,
                )
            }),
        }
    }

    /// One run of the scenario at `path`, which comes from `origin`:
    /// `recorded` responses (and whether misses may go live) stand in front
    /// of the models; `existing` is a run to continue instead of a new one.
    fn execute(
        &self,
        path: &Path,
        origin: Origin<'_>,
        recorded: Option<(Arc<dyn Recordings>, bool)>,
        existing: Option<i64>,
        on_start: impl FnOnce(&Scenario, i64),
    ) -> Result<RunSummary, Error> {
        // A stored copy runs its commands where its run was made (their
        // scripts are not part of the stored scenario), while that exists.
        let made_in = match origin {
            Origin::Stored(p) => Some(directory_of(Path::new(p))).filter(|d| d.is_dir()),
            _ => None,
        };
        let mut scenario =
            load_scenario_in(path, &self.options.overrides, made_in).map_err(Error::Invalid)?;
        self.override_limits(&mut scenario)?;
        let scenario = Arc::new(scenario);
        // Providers first: a missing API key fails before anything is written.
        let mut providers = self.providers(
            &scenario.models,
            recorded.as_ref().is_some_and(|(_, live)| !live),
        )?;
        if let Some((responses, live)) = recorded {
            providers = providers
                .into_iter()
                .map(|p| Arc::new(Recorded::new(p, responses.clone(), live)) as Arc<dyn Provider>)
                .collect();
        }
        let mut store = Store::open(&self.options.db)?;
        let scenario_path = match origin {
            Origin::File => scenario.source.path.display().to_string(),
            Origin::Resumed(p) | Origin::Stored(p) => p.to_owned(),
        };
        let (run_id, prior) = match existing {
            Some(run_id) => {
                let finished = store.finished_tasks(run_id, &scenario)?;
                let stored: Arc<dyn Recordings> = Arc::new(store.recordings(Some(run_id))?);
                let spent = store.spent(run_id)?;
                store.reopen_run(
                    run_id,
                    &Resumed {
                        scenario_text: &scenario.source.text,
                        scenario_hash: &scenario.source.hash,
                        detail: serde_json::json!({ "budget": scenario.budget, "spent": spent }),
                    },
                )?;
                (run_id, Some((finished, stored, spent)))
            }
            None => (
                self.create_run(&mut store, &scenario, &scenario_path)?,
                None,
            ),
        };
        on_start(&scenario, run_id);
        let writer = store.writer(run_id, existing.is_some())?;
        let mut executor = Executor::new(
            scenario.clone(),
            providers,
            self.options.concurrency,
            self.progress.clone(),
            self.cancel.clone(),
        );
        if let Some((finished, stored, spent)) = prior {
            executor = executor.resuming(finished, stored, spent);
        }
        let sender = writer.sender();
        let execution = self.block_on(executor.run(sender))?;
        let stats = writer.finish();
        let (status, error) = match (&stats, execution.status) {
            (Err(e), _) => (Status::Failed, Some(e.to_string())),
            (Ok(_), s) => (s, execution.error.clone()),
        };
        let rows = summarize(&scenario, &execution.outcomes);
        store.finish_run(run_id, status.as_str(), error.as_deref(), &rows)?;
        stats?;
        let failed: u64 = store
            .judgement_counts(run_id)?
            .iter()
            .map(|c| c.errors)
            .sum();
        if failed > 0 {
            tracing::warn!(
                "{failed} failure-judge calls failed after their retries, so their traces are not judged; \
                 `crucible judge {run_id}` with the same judge and model judges them"
            );
        }
        store.run_summary(run_id).map_err(Error::from)
    }
}

impl Runner {
    /// Run `work` to completion on a multi-threaded runtime; Ctrl-C (when
    /// handled) sets the cancel flag, so that calls in flight finish and no
    /// new one starts.
    pub(crate) fn block_on<F: std::future::Future>(&self, work: F) -> Result<F::Output, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("crucible-worker")
            .build()
            .map_err(|source| Error::Io {
                context: "starting the async runtime".into(),
                source,
            })?;
        let cancel = self.cancel.clone();
        let handle_ctrl_c = self.options.handle_ctrl_c;
        let output = runtime.block_on(async move {
            if handle_ctrl_c {
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        tracing::warn!("interrupted: finishing calls in flight, then stopping");
                        cancel.store(true, Ordering::Relaxed);
                    }
                });
            }
            work.await
        });
        runtime.shutdown_background();
        Ok(output)
    }
}

/// Where the scenario a run executes comes from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// The file itself, recorded as the run's path.
    File,
    /// The file, continuing a run that was made from this path.
    Resumed(&'a str),
    /// A stored copy of the scenario of a run made from this path.
    Stored(&'a str),
}

/// Write a stored run's scenario and the files it refers to into a temporary
/// folder, call `f` with the scenario's path there, and clean up.
pub(crate) fn with_stored_scenario<T>(
    source: &RunSource,
    run_id: i64,
    f: impl FnOnce(&Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let dir = std::env::temp_dir().join(format!("crucible-run-{}-{run_id}", std::process::id()));
    let io = |e| Error::Io {
        context: format!("writing run {run_id}'s scenario to {}", dir.display()),
        source: e,
    };
    // Referenced files may climb out of the scenario's folder (`../agents`):
    // nest the scenario deep enough that they land inside `dir`.
    let depth = source
        .files
        .iter()
        .map(|(p, _)| {
            Path::new(p)
                .components()
                .take_while(|c| matches!(c, std::path::Component::ParentDir))
                .count()
        })
        .max()
        .unwrap_or(0);
    let mut base = dir.clone();
    for i in 0..depth {
        base.push(format!("d{i}"));
    }
    let name = Path::new(&source.path)
        .file_name()
        .map_or("scenario.yaml".into(), |n| n.to_owned());
    let scenario_file = base.join(name);
    let result = (|| {
        std::fs::create_dir_all(&base).map_err(io)?;
        std::fs::write(&scenario_file, &source.text).map_err(io)?;
        for (rel, body) in &source.files {
            let target = base.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&target, body).map_err(io)?;
        }
        f(&scenario_file)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
