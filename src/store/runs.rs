//! Runs: creating, finishing, reopening and listing them, and reading a
//! run's summary, spending, tasks and stored scenario back.

use rusqlite::{OptionalExtension, params};

use crate::scenario::budget::Spend;
use crate::stats::summary::{ResultRow, RunSummary};

use super::{FaithPairRecord, Result, Store, now, sqlite_err};

/// A run's status as stored.
pub const STATUSES: &[&str] = &[
    "running",
    "completed",
    "failed",
    "interrupted",
    "budget_exhausted",
];

/// What a new run row records.
pub struct NewRun<'a> {
    pub name: &'a str,
    pub scenario_path: &'a str,
    pub scenario_text: &'a str,
    pub scenario_hash: &'a str,
    pub files: &'a [(String, String)],
    pub seed: u64,
    pub concurrency: usize,
    pub planned_samples: u64,
    /// A faithfulness experiment's counterfactual pairs.
    pub faith_pairs: &'a [FaithPairRecord],
}

/// A task row.
pub struct TaskRow<'a> {
    pub index: usize,
    pub id: &'a str,
    pub inputs: String,
    pub expected: Option<&'a str>,
}

/// How a run is resumed: the scenario it continues with (which differs from
/// the stored one at most in its `budget`) and what to record of it.
pub struct Resumed<'a> {
    pub scenario_text: &'a str,
    pub scenario_hash: &'a str,
    pub detail: serde_json::Value,
}

/// A stored run's scenario: its path, its text, and the files it refers to
/// (path relative to the scenario, text).
pub struct RunSource {
    pub path: String,
    pub text: String,
    pub files: Vec<(String, String)>,
    pub hash: String,
    pub status: String,
}

/// One row of `crucible runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunListing {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub tasks: i64,
    pub samples: i64,
}

/// A run's name, seed, and tasks as (id, expected answer) by task index.
pub struct RunTasks {
    pub name: String,
    pub seed: u64,
    pub tasks: Vec<(String, Option<String>)>,
}

impl Store {
    /// Record a new run and its tasks; returns the run id.
    pub fn create_run<'a>(
        &mut self,
        run: &NewRun<'_>,
        tasks: impl Iterator<Item = TaskRow<'a>>,
    ) -> Result<i64> {
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO runs (name, scenario_path, scenario_text, scenario_hash, seed,
                crucible_version, status, concurrency, planned_samples, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9)",
            params![
                run.name,
                run.scenario_path,
                run.scenario_text,
                run.scenario_hash,
                run.seed as i64,
                env!("CARGO_PKG_VERSION"),
                run.concurrency as i64,
                run.planned_samples as i64,
                now(),
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        {
            let mut f = tx
                .prepare("INSERT INTO run_files (run_id, path, text) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for (p, text) in run.files {
                f.execute(params![id, p, text]).map_err(err)?;
            }
            let mut t = tx
                .prepare(
                    "INSERT INTO tasks (run_id, task_index, task_id, inputs, expected)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for task in tasks {
                t.execute(params![
                    id,
                    task.index as i64,
                    task.id,
                    task.inputs,
                    task.expected
                ])
                .map_err(err)?;
            }
            let mut p = tx
                .prepare(
                    "INSERT INTO faith_pairs (run_id, dataset, reference, counterfactual, source,
                        distance, differing)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for pair in run.faith_pairs {
                let differing = serde_json::to_string(&pair.differing).expect("strings serialize");
                p.execute(params![
                    id,
                    pair.dataset,
                    pair.reference as i64,
                    pair.counterfactual as i64,
                    pair.source,
                    pair.distance.map(|d| d as i64),
                    differing
                ])
                .map_err(err)?;
            }
        }
        tx.execute(
            "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'run_started', NULL)",
            params![id, now()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Store the run's summary and final status in one transaction.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        status: &str,
        error: Option<&str>,
        results: &[ResultRow],
    ) -> Result<()> {
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM results WHERE run_id = ?1", [run_id])
            .map_err(err)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO results (run_id, strategy, kind, agent, verifier, n, accuracy,
                        ci_low, ci_high, tasks, abstain_rate, mean_tokens, mean_samples,
                        mean_verifier_tokens)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(err)?;
            for r in results {
                ins.execute(params![
                    run_id,
                    r.strategy,
                    r.kind,
                    r.agent,
                    r.verifier,
                    r.n as i64,
                    r.accuracy,
                    r.ci_low,
                    r.ci_high,
                    r.tasks as i64,
                    r.abstain_rate,
                    r.mean_tokens,
                    r.mean_samples,
                    r.mean_verifier_tokens
                ])
                .map_err(err)?;
            }
        }
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
            params![run_id, status, now(), error],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'run_finished', ?3)",
            params![
                run_id,
                now(),
                serde_json::json!({"status": status, "error": error}).to_string()
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn list_runs(&self) -> Result<Vec<RunListing>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT r.id, r.name, r.status, r.started_at, r.finished_at,
                    (SELECT count(*) FROM tasks t WHERE t.run_id = r.id),
                    (SELECT count(*) FROM samples s WHERE s.run_id = r.id)
                 FROM runs r ORDER BY r.id",
            )
            .map_err(self.err())?;
        st.query_map([], |r| {
            Ok(RunListing {
                id: r.get(0)?,
                name: r.get(1)?,
                status: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                tasks: r.get(5)?,
                samples: r.get(6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// A stored run's summary, from the database alone.
    pub fn run_summary(&self, run_id: i64) -> Result<RunSummary> {
        let head = self
            .conn
            .query_row(
                // A faithfulness experiment's failed calls are its rows with
                // status 'error', one failed call each (a run has those or
                // samples, not both).
                "WITH faith_errors AS (
                    SELECT task_index FROM faith_answers WHERE run_id = ?1 AND status = 'error'
                    UNION ALL SELECT reference FROM faith_predictions WHERE run_id = ?1 AND status = 'error'
                    UNION ALL SELECT counterfactual FROM faith_generated WHERE run_id = ?1 AND status = 'error'
                    UNION ALL SELECT task_index FROM faith_reasoning WHERE run_id = ?1 AND status = 'error'
                    UNION ALL SELECT task_index FROM faith_biased WHERE run_id = ?1 AND status = 'error')
                 SELECT name, status, scenario_path, (SELECT count(*) FROM samples WHERE run_id = ?1), error,
                    (SELECT count(*) FROM samples WHERE run_id = ?1 AND error IS NOT NULL)
                    + (SELECT count(*) FROM faith_errors),
                    (SELECT count(DISTINCT task_index) FROM samples WHERE run_id = ?1 AND error IS NOT NULL)
                    + (SELECT count(DISTINCT task_index) FROM faith_errors)
                 FROM runs WHERE id = ?1",
                [run_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err())?
            .ok_or_else(|| self.no_such_run(run_id))?;
        let mut st = self
            .conn
            .prepare(
                "SELECT strategy, kind, agent, verifier, n, accuracy, ci_low, ci_high, tasks,
                    abstain_rate, mean_tokens, coalesce(mean_samples, n),
                    coalesce(mean_verifier_tokens, 0)
                 FROM results WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(self.err())?;
        let results = st
            .query_map([run_id], |r| {
                Ok(ResultRow {
                    strategy: r.get(0)?,
                    kind: r.get(1)?,
                    agent: r.get(2)?,
                    verifier: r.get(3)?,
                    n: r.get::<_, i64>(4)? as usize,
                    accuracy: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
                    ci_low: r.get::<_, Option<f64>>(6)?.unwrap_or(f64::NAN),
                    ci_high: r.get::<_, Option<f64>>(7)?.unwrap_or(f64::NAN),
                    tasks: r.get::<_, i64>(8)? as usize,
                    abstain_rate: r.get(9)?,
                    mean_tokens: r.get(10)?,
                    mean_samples: r.get(11)?,
                    mean_verifier_tokens: r.get(12)?,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(self.err())?;
        Ok(RunSummary {
            run_id,
            name: head.0,
            status: head.1,
            scenario_path: head.2,
            samples: head.3 as u64,
            error: head.4,
            errors: head.5 as u64,
            errored_tasks: head.6 as u64,
            spent: self.spent(run_id)?,
            verifier_tokens: self.verifier_tokens(run_id)?,
            results,
        })
    }

    /// Tokens the calls of verifiers' models (judges, reward models) of
    /// `run_id` used; part of what the run spent.
    pub fn verifier_tokens(&self, run_id: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM calls
                 WHERE run_id = ?1 AND role = 'verifier'",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|t| t as u64)
            .map_err(self.err())
    }

    /// Names of the verifiers that scored samples of `run_id`.
    pub fn verifier_names(&self, run_id: i64) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT DISTINCT sc.verifier FROM scores sc JOIN samples s ON s.id = sc.sample_id
                 WHERE s.run_id = ?1 ORDER BY sc.verifier",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(self.err())
    }

    /// What `run_id` has spent: calls, tokens and (priced) dollars.
    pub fn spent(&self, run_id: i64) -> Result<Spend> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens + output_tokens), 0),
                        COALESCE(SUM(cost_usd), 0.0)
                 FROM calls WHERE run_id = ?1 AND NOT cached",
                [run_id],
                |r| {
                    Ok(Spend {
                        requests: r.get::<_, i64>(0)? as u64,
                        tokens: r.get::<_, i64>(1)? as u64,
                        cost_usd: r.get(2)?,
                    })
                },
            )
            .map_err(self.err())
    }

    /// A run's name, seed and tasks (id and expected answer, by task index).
    pub fn run_tasks(&self, run_id: i64) -> Result<RunTasks> {
        let (name, seed) = self
            .conn
            .query_row("SELECT name, seed FROM runs WHERE id = ?1", [run_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(self.err())?
            .ok_or_else(|| self.no_such_run(run_id))?;
        let mut st = self
            .conn
            .prepare("SELECT task_id, expected FROM tasks WHERE run_id = ?1 ORDER BY task_index")
            .map_err(self.err())?;
        let tasks = st
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        Ok(RunTasks { name, seed, tasks })
    }

    /// The scenario a run was made from.
    pub fn run_source(&self, run_id: i64) -> Result<RunSource> {
        let (path, text, hash, status) = self
            .conn
            .query_row(
                "SELECT scenario_path, scenario_text, scenario_hash, status FROM runs WHERE id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err())?
            .ok_or_else(|| self.no_such_run(run_id))?;
        let mut st = self
            .conn
            .prepare("SELECT path, text FROM run_files WHERE run_id = ?1 ORDER BY path")
            .map_err(self.err())?;
        let files = st
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        Ok(RunSource {
            path,
            text,
            files,
            hash,
            status,
        })
    }

    /// Mark a run as running again, for `resume`, and clear its errored
    /// samples so that their calls are made again (the failed calls stay in
    /// `calls`, with their attempts). Returns how many samples were cleared.
    pub fn reopen_run(&self, run_id: i64, resumed: &Resumed<'_>) -> Result<u64> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        let errored = "SELECT id FROM samples WHERE run_id = ?1 AND error IS NOT NULL";
        for table in ["scores", "step_scores"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE sample_id IN ({errored})"),
                [run_id],
            )
            .map_err(self.err())?;
        }
        let cleared = tx
            .execute(
                "DELETE FROM samples WHERE run_id = ?1 AND error IS NOT NULL",
                [run_id],
            )
            .map_err(self.err())?;
        tx.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL,
                    scenario_text = ?2, scenario_hash = ?3
                 WHERE id = ?1",
            params![run_id, resumed.scenario_text, resumed.scenario_hash],
        )
        .map_err(self.err())?;
        let mut detail = resumed.detail.clone();
        detail["retried_errors"] = cleared.into();
        tx.execute(
            "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'run_resumed', ?3)",
            params![run_id, now(), detail.to_string()],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(cleared as u64)
    }
}
