//! The trace store: the only module that touches SQLite.
//!
//! One database file holds every run. The schema is versioned with
//! `PRAGMA user_version` and migrated on open. While a run executes, a single
//! writer thread owns a connection, fed by a bounded channel, and commits in
//! batched transactions: finished work is durable within one batch of being
//! done, and nothing is held in memory for the run as a whole. Reads (listing,
//! summaries, export) use their own connection; WAL mode lets them run beside
//! the writer. `docs/schema.md` documents every table and view.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc::{Receiver, Sender, channel};

use crate::scenario::budget::Spend;
use crate::stats::summary::{ResultRow, RunSummary};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this crucible understands ({supported}); upgrade crucible"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {path}: no run {run}; `crucible runs` lists the runs it holds")]
    NoSuchRun { path: PathBuf, run: i64 },
    #[error("database {path}: the writer thread stopped unexpectedly")]
    WriterGone { path: PathBuf },
}

type Result<T> = std::result::Result<T, StoreError>;

/// Migrations, in order; entry i brings the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
    include_str!("schema/v6.sql"),
    include_str!("schema/v7.sql"),
    include_str!("schema/v8.sql"),
    include_str!("schema/v9.sql"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A content address: 128 bits of blake3, as hex.
pub fn blob_hash(text: &str) -> String {
    let h = blake3::hash(text.as_bytes());
    h.to_hex()[..32].to_owned()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An open trace database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

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

/// Wraps SQLite errors with the database path.
fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let err = sqlite_err(path);
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(err)?;
    Ok(conn)
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = open_conn(path)?;
        let err = sqlite_err(path);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn no_such_run(&self, run: i64) -> StoreError {
        StoreError::NoSuchRun {
            path: self.path.clone(),
            run,
        }
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sqlite_err(&self.path)
    }

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
                "SELECT name, status, scenario_path, (SELECT count(*) FROM samples WHERE run_id = ?1), error
                 FROM runs WHERE id = ?1",
                [run_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
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

    /// Every sample of a run, in (agent, task, sample) order, with its verifier scores.
    pub fn for_each_sample(
        &self,
        run_id: i64,
        mut f: impl FnMut(ExportRow) -> std::io::Result<()>,
    ) -> std::result::Result<(), ExportError> {
        self.run_summary(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT v.run_id, v.task_id, v.task_index, v.agent, v.model, v.sample_index,
                    v.answer, v.normalized, v.expected, v.correct, v.abstained, v.text,
                    v.input_tokens, v.output_tokens, v.latency_ms, v.error,
                    (SELECT json_group_object(verifier, score) FROM scores WHERE sample_id = v.sample_id),
                    v.strategy, v.round
                 FROM sample_view v WHERE v.run_id = ?1
                 ORDER BY v.agent, v.task_index, v.sample_index",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let get = || -> rusqlite::Result<ExportRow> {
                let scores: Option<String> = r.get(16)?;
                Ok(ExportRow {
                    run_id: r.get(0)?,
                    task_id: r.get(1)?,
                    task_index: r.get(2)?,
                    agent: r.get(3)?,
                    model: r.get(4)?,
                    sample_index: r.get(5)?,
                    extracted: r.get(6)?,
                    answer: r.get(7)?,
                    expected: r.get(8)?,
                    correct: r.get::<_, Option<i64>>(9)?.map(|c| c != 0),
                    abstained: r.get::<_, i64>(10)? != 0,
                    text: r.get(11)?,
                    input_tokens: r.get(12)?,
                    output_tokens: r.get(13)?,
                    latency_ms: r.get(14)?,
                    error: r.get(15)?,
                    scores: scores
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default(),
                    strategy: r.get(17)?,
                    round: r.get(18)?,
                })
            };
            f(get().map_err(self.err())?)?;
        }
        Ok(())
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
                 FROM calls WHERE run_id = ?1",
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

    /// Every pool sample of `run_id` (self-correction rounds are not pool
    /// samples) as analysis reads it, in (agent, task, sample) order, so that
    /// each pool arrives in one piece.
    pub fn for_each_pool_sample(
        &self,
        run_id: i64,
        mut f: impl FnMut(PoolSampleRow<'_>),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, agent, task_index, normalized, correct, input_tokens + output_tokens
                 FROM samples WHERE run_id = ?1 AND round IS NULL
                 ORDER BY agent, task_index, sample_index",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let row = (|| -> rusqlite::Result<PoolSampleRow<'_>> {
                Ok(PoolSampleRow {
                    sample_id: r.get(0)?,
                    agent: r.get_ref(1)?.as_str()?,
                    task_index: r.get::<_, i64>(2)? as usize,
                    normalized: r.get_ref(3)?.as_str_or_null()?,
                    correct: r.get::<_, Option<i64>>(4)?.map(|c| c != 0),
                    tokens: r.get::<_, i64>(5)? as u64,
                })
            })()
            .map_err(self.err())?;
            f(row);
        }
        Ok(())
    }

    /// How many of `run_id`'s tasks have a stored pool row (every finished
    /// task of a run written at schema 7 or later).
    pub fn tasks_with_pools(&self, run_id: i64) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT count(DISTINCT task_index) FROM pools WHERE run_id = ?1",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.err())
    }

    /// Every stored pool row of `run_id`, in (agent, task) order.
    pub fn for_each_pool(&self, run_id: i64, mut f: impl FnMut(PoolRecord)) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT agent, task_index, answers, verifiers, classes, correct, tokens, scores
                 FROM pools WHERE run_id = ?1 ORDER BY agent, task_index",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let pool = (|| -> rusqlite::Result<PoolRecord> {
                let json = |i: usize| -> rusqlite::Result<Vec<String>> {
                    serde_json::from_str(r.get_ref(i)?.as_str()?).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })
                };
                let blob = |i: usize| -> rusqlite::Result<&[u8]> { Ok(r.get_ref(i)?.as_blob()?) };
                let classes = blob(4)?.chunks_exact(4).map(|b| {
                    let c = u32::from_le_bytes(b.try_into().expect("4 bytes"));
                    (c != ABSTAINED).then_some(c)
                });
                let correct = blob(5)?.iter().map(|&c| c != 0);
                let tokens = blob(6)?
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                let samples: Vec<(Option<u32>, bool, u64)> = classes
                    .zip(correct)
                    .zip(tokens)
                    .map(|((class, correct), tokens)| (class, correct, tokens))
                    .collect();
                let verifiers = json(3)?;
                let mut scores = blob(7)?
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")));
                let scores = verifiers
                    .into_iter()
                    .map(|v| (v, scores.by_ref().take(samples.len()).collect()))
                    .collect();
                Ok(PoolRecord {
                    agent: r.get_ref(0)?.as_str()?.into(),
                    task_index: r.get::<_, i64>(1)? as usize,
                    answers: json(2)?,
                    samples,
                    scores,
                })
            })()
            .map_err(self.err())?;
            f(pool);
        }
        Ok(())
    }

    /// The graph runs of `task_id` in run `run_id`, each with its messages in
    /// order: what `show --transcript` prints.
    pub fn transcript(&self, run_id: i64, task_id: &str) -> Result<Vec<Transcript>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT g.attempt, g.ending, g.turns, g.final FROM graph_runs g
                 JOIN tasks t ON t.run_id = g.run_id AND t.task_index = g.task_index
                 WHERE g.run_id = ?1 AND t.task_id = ?2 ORDER BY g.attempt",
            )
            .map_err(self.err())?;
        let mut runs: Vec<Transcript> = st
            .query_map(params![run_id, task_id], |r| {
                Ok(Transcript {
                    attempt: r.get::<_, i64>(0)? as usize,
                    ending: r.get(1)?,
                    turns: r.get::<_, i64>(2)? as usize,
                    final_message: r.get::<_, Option<i64>>(3)?.map(|m| m as usize),
                    messages: Vec::new(),
                    injected: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        let mut st = self
            .conn
            .prepare(
                "SELECT m.turn, m.node, m.sender, m.reply_to, m.receivers, m.summary, m.text
                 FROM messages m JOIN tasks t ON t.run_id = m.run_id AND t.task_index = m.task_index
                 WHERE m.run_id = ?1 AND t.task_id = ?2 AND m.attempt = ?3 ORDER BY m.position",
            )
            .map_err(self.err())?;
        let mut injected = self
            .conn
            .prepare(
                "SELECT f.position, f.mode, f.name
                 FROM injected_failures f JOIN tasks t ON t.run_id = f.run_id AND t.task_index = f.task_index
                 WHERE f.run_id = ?1 AND t.task_id = ?2 AND f.attempt = ?3 ORDER BY f.position",
            )
            .map_err(self.err())?;
        for run in &mut runs {
            run.messages = st
                .query_map(params![run_id, task_id, run.attempt as i64], |r| {
                    let receivers: String = r.get(4)?;
                    Ok(MessageRecord {
                        turn: r.get::<_, i64>(0)? as usize,
                        node: r.get(1)?,
                        sender: r.get::<_, Option<String>>(2)?.map(Arc::from),
                        reply_to: r.get::<_, Option<i64>>(3)?.map(|m| m as usize),
                        receivers: serde_json::from_str(&receivers).unwrap_or_default(),
                        summary: r.get(5)?,
                        text: r.get(6)?,
                    })
                })
                .and_then(|rows| rows.collect())
                .map_err(self.err())?;
            run.injected = injected
                .query_map(params![run_id, task_id, run.attempt as i64], |r| {
                    Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?))
                })
                .and_then(|rows| rows.collect())
                .map_err(self.err())?;
        }
        Ok(runs)
    }

    /// Mean tokens each verifier's model spent per pool sample it judged,
    /// by (judged agent, verifier): what a verifier adds to a sample's cost.
    pub fn verifier_tokens_per_sample(&self, run_id: i64) -> Result<Vec<(String, String, f64)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT c.subject, c.agent, avg(c.input_tokens + c.output_tokens)
                 FROM calls c JOIN samples s ON s.run_id = c.run_id AND s.agent = c.subject
                   AND s.task_index = c.task_index AND s.sample_index = c.first_sample
                 WHERE c.run_id = ?1 AND c.role = 'verifier' AND s.round IS NULL
                 GROUP BY c.subject, c.agent",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err())
    }

    /// The smallest and largest sample id of `run_id` (`None`: no samples).
    pub fn sample_id_range(&self, run_id: i64) -> Result<Option<std::ops::RangeInclusive<i64>>> {
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT min(id), max(id) FROM samples WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err())?;
        Ok(lo.zip(hi).map(|(lo, hi)| lo..=hi))
    }

    /// Every verifier score of the samples with ids in `ids` (inclusive), in
    /// sample-id order: `(sample id, verifier, score)`, the score `None` where
    /// the verifier could not score. Scores of other runs' samples in that
    /// range are passed too; the caller knows its ids.
    pub fn for_each_score(
        &self,
        ids: std::ops::RangeInclusive<i64>,
        mut f: impl FnMut(i64, &str, Option<f64>),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT sample_id, verifier, score FROM scores
                 WHERE sample_id BETWEEN ?1 AND ?2 ORDER BY sample_id",
            )
            .map_err(self.err())?;
        let mut rows = st.query([ids.start(), ids.end()]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let (id, verifier, score) = (|| -> rusqlite::Result<(i64, &str, Option<f64>)> {
                Ok((r.get(0)?, r.get_ref(1)?.as_str()?, r.get(2)?))
            })()
            .map_err(self.err())?;
            f(id, verifier, score);
        }
        Ok(())
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

    /// Successful recorded calls by cache key, as provider responses: of one
    /// run, or of every run when `run_id` is `None`.
    pub fn recorded_responses(
        &self,
        run_id: Option<i64>,
    ) -> Result<std::collections::HashMap<String, crate::model::provider::CallResponse>> {
        // A call's completions are its samples, or a judge's reply.
        const COMPLETIONS: [&str; 2] = [
            "SELECT c.id, c.cache_key, c.input_tokens, c.latency_ms, c.request, rb.text,
                s.text, s.output_tokens
             FROM calls c
             JOIN samples s ON s.call_id = c.id
             LEFT JOIN blobs rb ON rb.hash = c.response_hash
             WHERE c.status = 'ok' AND c.cache_key IS NOT NULL AND (?1 IS NULL OR c.run_id = ?1)
             ORDER BY c.id, s.sample_index",
            "SELECT c.id, c.cache_key, c.input_tokens, c.latency_ms, c.request, rb.text,
                r.text, c.output_tokens
             FROM calls c
             JOIN replies r ON r.call_id = c.id
             LEFT JOIN blobs rb ON rb.hash = c.response_hash
             WHERE c.status = 'ok' AND c.cache_key IS NOT NULL AND (?1 IS NULL OR c.run_id = ?1)
             ORDER BY c.id",
        ];
        let mut out: std::collections::HashMap<String, crate::model::provider::CallResponse> =
            std::collections::HashMap::new();
        for sql in COMPLETIONS {
            let mut st = self.conn.prepare(sql).map_err(self.err())?;
            let mut rows = st.query([run_id]).map_err(self.err())?;
            // The call being read, and whether it is the first with its key.
            let mut current: Option<(i64, String, bool)> = None;
            while let Some(r) = rows.next().map_err(self.err())? {
                let call_id: i64 = r.get(0).map_err(self.err())?;
                if current.as_ref().is_none_or(|c| c.0 != call_id) {
                    let key: String = r.get(1).map_err(self.err())?;
                    let first = !out.contains_key(&key);
                    if first {
                        let head = || -> rusqlite::Result<crate::model::provider::CallResponse> {
                            Ok(crate::model::provider::CallResponse {
                                completions: Vec::new(),
                                input_tokens: r.get::<_, i64>(2)? as u64,
                                latency_ms: r.get(3)?,
                                request: Some(r.get(4)?),
                                raw: r.get(5)?,
                                attempts: Vec::new(),
                            })
                        };
                        out.insert(key.clone(), head().map_err(self.err())?);
                    }
                    current = Some((call_id, key, first));
                }
                let Some((_, key, true)) = &current else {
                    continue;
                };
                let completion = crate::model::provider::Completion {
                    text: r.get(6).map_err(self.err())?,
                    output_tokens: r.get::<_, i64>(7).map_err(self.err())? as u64,
                };
                if let Some(resp) = out.get_mut(key) {
                    resp.completions.push(completion);
                }
            }
        }
        Ok(out)
    }

    /// Strategy outcomes of the tasks of `run_id` that finished, in the order
    /// the executor produces them (strategies, then their `n`); `None` for a
    /// task that did not finish.
    pub fn finished_tasks(
        &self,
        run_id: i64,
        scenario: &crate::scenario::Scenario,
    ) -> Result<Vec<Option<Vec<crate::stats::strategy::TaskOutcome>>>> {
        let slots: Vec<(usize, usize)> = scenario
            .strategies
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.ns.iter().map(move |&n| (si, n)))
            .collect();
        let mut found: Vec<Vec<Option<crate::stats::strategy::TaskOutcome>>> =
            vec![vec![None; slots.len()]; scenario.tasks.len()];
        let mut st = self
            .conn
            .prepare(
                "SELECT strategy, n, task_index, accuracy, abstain, tokens, selected, selected_correct,
                    coalesce(samples, n), coalesce(verifier_tokens, 0)
                 FROM task_results WHERE run_id = ?1",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                    r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    r.get::<_, f64>(4)?,
                    r.get::<_, f64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, f64>(8)?,
                    r.get::<_, f64>(9)?,
                ))
            };
            let (
                name,
                n,
                task,
                accuracy,
                abstain,
                tokens,
                selected,
                selected_correct,
                samples,
                verifier_tokens,
            ) = read().map_err(self.err())?;
            let Some(si) = scenario.strategies.iter().position(|s| s.name == name) else {
                continue;
            };
            let Some(slot) = slots.iter().position(|&(i, m)| i == si && m == n) else {
                continue;
            };
            if let Some(row) = found.get_mut(task) {
                row[slot] = Some(crate::stats::strategy::TaskOutcome {
                    strategy: si,
                    n,
                    accuracy,
                    abstain,
                    tokens,
                    verifier_tokens,
                    samples,
                    selected,
                    selected_correct,
                });
            }
        }
        Ok(found
            .into_iter()
            .map(|row| row.into_iter().collect::<Option<Vec<_>>>())
            .collect())
    }

    /// Mark a run as running again, for `resume`.
    pub fn reopen_run(&self, run_id: i64, resumed: &Resumed<'_>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL,
                    scenario_text = ?2, scenario_hash = ?3
                 WHERE id = ?1",
                params![run_id, resumed.scenario_text, resumed.scenario_hash],
            )
            .map_err(self.err())?;
        self.conn
            .execute(
                "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'run_resumed', ?3)",
                params![run_id, now(), resumed.detail.to_string()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Start the writer thread for `run_id`.
    pub fn writer(&self, run_id: i64) -> Result<StoreWriter> {
        let conn = open_conn(&self.path)?;
        // A record carries one request's samples; 4096 of them keep the
        // writer fed while bounding memory (~110 MB at 64 samples a request).
        let (tx, rx) = channel::<Record>(4096);
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("crucible-store".into())
            .spawn(move || write_loop(conn, path, run_id, rx))
            .expect("spawn store writer thread");
        Ok(StoreWriter {
            tx: Some(tx),
            handle: Some(handle),
            path: self.path.clone(),
        })
    }

    /// Direct read access for tests and analysis helpers in this crate.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// One graph run as stored, with its messages.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub attempt: usize,
    pub ending: String,
    pub turns: usize,
    pub final_message: Option<usize>,
    pub messages: Vec<MessageRecord>,
    /// Failures injected on purpose: (message position, mode code, name).
    pub injected: Vec<(usize, String, String)>,
}

/// A run's name, seed, and tasks as (id, expected answer) by task index.
pub struct RunTasks {
    pub name: String,
    pub seed: u64,
    pub tasks: Vec<(String, Option<String>)>,
}

/// One stored sample, as analysis reads it.
pub struct PoolSampleRow<'a> {
    pub sample_id: i64,
    pub agent: &'a str,
    pub task_index: usize,
    /// The normalized answer; `None` for an abstention.
    pub normalized: Option<&'a str>,
    pub correct: Option<bool>,
    /// Output tokens, plus the request's input tokens on its first sample.
    pub tokens: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing export: {0}")]
    Io(#[from] std::io::Error),
}

/// One sample as exported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportRow {
    pub run_id: i64,
    pub task_id: String,
    pub task_index: i64,
    pub agent: String,
    pub model: String,
    pub sample_index: i64,
    /// The answer as written in the text.
    pub extracted: Option<String>,
    /// The normalized answer (what votes compare).
    pub answer: Option<String>,
    pub expected: Option<String>,
    pub correct: Option<bool>,
    pub abstained: bool,
    pub text: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub latency_ms: f64,
    pub error: Option<String>,
    /// By verifier; `None` where the verifier could not score the sample.
    pub scores: std::collections::BTreeMap<String, Option<f64>>,
    /// For a self-correction round: its strategy and round.
    pub strategy: Option<String>,
    pub round: Option<i64>,
}

/// One sample to store.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    pub sample_index: usize,
    pub text: String,
    pub extracted: Option<String>,
    pub normalized: Option<String>,
    pub correct: Option<bool>,
    pub output_tokens: u64,
    pub error: Option<String>,
    pub scores: Vec<ScoreRecord>,
    /// For a self-correction round: the strategy and the round (0-based).
    pub round: Option<(Arc<str>, usize)>,
}

/// One verifier's judgement of a sample, as stored in `scores`.
#[derive(Debug, Clone)]
pub struct ScoreRecord {
    pub verifier: Arc<str>,
    /// `None`: the verifier could not score the sample.
    pub value: Option<f64>,
    pub accepted: Option<bool>,
    pub detail: Option<String>,
}

/// A text stored once under its content hash.
#[derive(Debug, Clone)]
pub struct Blob {
    pub hash: Arc<str>,
    pub text: Arc<str>,
}

impl Blob {
    pub fn new(text: &str) -> Blob {
        Blob {
            hash: blob_hash(text).into(),
            text: text.into(),
        }
    }
}

/// One model call and the samples it produced.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub model: Arc<str>,
    pub provider: &'static str,
    pub first_sample: usize,
    pub n: usize,
    pub system: Blob,
    pub prompt: Blob,
    /// The request body (JSON) as sent, or its parameters for the simulated provider.
    pub request: String,
    /// HTTP exchanges behind the call, retries included.
    pub attempts: Vec<crate::model::provider::Attempt>,
    /// See [`crate::model::provider::call_key`].
    pub cache_key: String,
    pub response: Option<String>,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// At the model's price; `None` when it has none.
    pub cost_usd: Option<f64>,
    pub samples: Vec<SampleRecord>,
    /// For a verifier's call: the agent whose sample it judged (the sample
    /// is `first_sample`), and the reply.
    pub judged: Option<(Arc<str>, String)>,
}

/// A verifier's score of a sample stored before (an `llm` verifier's, which
/// comes after the sample's own call).
#[derive(Debug, Clone)]
pub struct LateScore {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub sample_index: usize,
    pub score: ScoreRecord,
    /// A process reward model's steps and their scores, in order.
    pub steps: Vec<(String, f64)>,
}

/// A strategy's outcome on one task, as stored in `task_results`.
#[derive(Debug, Clone)]
pub struct TaskResultRecord {
    pub strategy: Arc<str>,
    pub kind: &'static str,
    pub n: usize,
    pub task_index: usize,
    pub accuracy: f64,
    pub abstain: f64,
    pub tokens: f64,
    pub verifier_tokens: f64,
    pub samples: f64,
    pub selected: Option<String>,
    pub selected_correct: bool,
}

/// One agent's pool of one finished task, as `analyze` reads it (the
/// `pools` table).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRecord {
    pub agent: Arc<str>,
    pub task_index: usize,
    /// The pool's distinct normalized answers, in order of first appearance.
    pub answers: Vec<String>,
    /// Per sample, in sample order: index into `answers` (`None`: an
    /// abstention), correct, and generator tokens.
    pub samples: Vec<(Option<u32>, bool, u64)>,
    /// Each verifier that scored the pool, with a score per sample (NaN: not
    /// scored; −∞: the verifier could not score it).
    pub scores: Vec<(String, Vec<f64>)>,
}

/// The `classes` entry of an abstention in a stored pool.
const ABSTAINED: u32 = u32::MAX;

/// What a finished task leaves: its strategies' outcomes and its pools,
/// written in one transaction.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub results: Vec<TaskResultRecord>,
    pub pools: Vec<PoolRecord>,
}

/// One run of the graph on a task, as traced (`graph_runs`, `messages`,
/// `graph_events`).
#[derive(Debug, Clone)]
pub struct GraphRunRecord {
    pub task_index: usize,
    pub attempt: usize,
    pub ending: &'static str,
    pub turns: usize,
    /// Position of the run's answer among `messages`.
    pub final_message: Option<usize>,
    pub messages: Vec<MessageRecord>,
    /// (kind, node, detail) in order.
    pub events: Vec<(&'static str, Option<String>, Option<String>)>,
    /// The failures simulated agents acted out on purpose.
    pub injected: Vec<InjectedRecord>,
}

/// A failure injected into one message of a graph run: ground truth for
/// failure judges (`injected_failures`).
#[derive(Debug, Clone)]
pub struct InjectedRecord {
    /// The message's position in the run.
    pub position: usize,
    pub turn: usize,
    pub agent: Arc<str>,
    pub node: String,
    pub mode: crate::scenario::failure::FailureMode,
}

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub turn: usize,
    pub node: String,
    pub sender: Option<Arc<str>>,
    pub reply_to: Option<usize>,
    pub receivers: Vec<String>,
    pub summary: bool,
    pub text: String,
}

/// What the executor sends the writer.
pub enum Record {
    Call(Box<CallRecord>),
    Score(Box<LateScore>),
    Task(Box<TaskRecord>),
    Graph(Box<GraphRunRecord>),
}

/// Sends records to the writer thread.
pub struct StoreWriter {
    tx: Option<Sender<Record>>,
    handle: Option<JoinHandle<Result<WriterStats>>>,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub calls: u64,
    pub samples: u64,
    pub transactions: u64,
}

impl StoreWriter {
    /// A sender for executor tasks; sending waits while the writer is behind,
    /// which keeps memory bounded.
    pub fn sender(&self) -> Sender<Record> {
        self.tx.clone().expect("writer is open")
    }

    /// Flush everything sent so far and stop the thread.
    pub fn finish(mut self) -> Result<WriterStats> {
        self.tx.take();
        let handle = self.handle.take().expect("writer is open");
        match handle.join() {
            Ok(r) => r,
            Err(_) => Err(StoreError::WriterGone {
                path: self.path.clone(),
            }),
        }
    }
}

const BATCH_RECORDS: usize = 20_000;
const BATCH_TIME: Duration = Duration::from_millis(200);

fn write_loop(
    mut conn: Connection,
    path: PathBuf,
    run_id: i64,
    mut rx: Receiver<Record>,
) -> Result<WriterStats> {
    let err = sqlite_err(&path);
    let mut stats = WriterStats::default();
    let mut seen_blobs: HashSet<Arc<str>> = HashSet::new();
    while let Some(first) = rx.blocking_recv() {
        let tx = conn.transaction().map_err(err)?;
        {
            let mut w = BatchWriter::new(&tx, run_id).map_err(err)?;
            let started = Instant::now();
            let mut count = 0;
            let mut next = Some(first);
            while let Some(record) = next.take() {
                w.write(record, &mut seen_blobs, &mut stats).map_err(err)?;
                count += 1;
                if count >= BATCH_RECORDS || started.elapsed() >= BATCH_TIME {
                    break;
                }
                next = rx.try_recv().ok();
            }
        }
        tx.commit().map_err(err)?;
        stats.transactions += 1;
        // Bound memory on long runs with many distinct texts.
        if seen_blobs.len() > 1_000_000 {
            seen_blobs.clear();
        }
    }
    Ok(stats)
}

/// Prepared statements for one transaction.
struct BatchWriter<'c> {
    run_id: i64,
    blob: rusqlite::CachedStatement<'c>,
    call: rusqlite::CachedStatement<'c>,
    sample: rusqlite::CachedStatement<'c>,
    score: rusqlite::CachedStatement<'c>,
    late_score: rusqlite::CachedStatement<'c>,
    step_score: rusqlite::CachedStatement<'c>,
    reply: rusqlite::CachedStatement<'c>,
    attempt: rusqlite::CachedStatement<'c>,
    result: rusqlite::CachedStatement<'c>,
    pool: rusqlite::CachedStatement<'c>,
    graph_run: rusqlite::CachedStatement<'c>,
    message: rusqlite::CachedStatement<'c>,
    event: rusqlite::CachedStatement<'c>,
    injected: rusqlite::CachedStatement<'c>,
}

impl<'c> BatchWriter<'c> {
    fn new(tx: &'c rusqlite::Transaction<'_>, run_id: i64) -> rusqlite::Result<Self> {
        Ok(BatchWriter {
            run_id,
            blob: tx.prepare_cached("INSERT OR IGNORE INTO blobs (hash, text) VALUES (?1, ?2)")?,
            call: tx.prepare_cached(
                "INSERT INTO calls (run_id, task_index, agent, model, provider, first_sample, n,
                    system_hash, prompt_hash, request, response_hash, status, error, latency_ms,
                    input_tokens, output_tokens, cache_key, cost_usd, role, subject)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                    ?19, ?20)",
            )?,
            sample: tx.prepare_cached(
                "INSERT INTO samples (run_id, task_index, agent, model, sample_index, call_id, text,
                    answer, normalized, correct, abstained, input_tokens, output_tokens, latency_ms, error,
                    strategy, round)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?,
            score: tx.prepare_cached(
                "INSERT INTO scores (sample_id, verifier, score, accepted, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            // A judge's score may replace an earlier failed one (a resumed run judges again).
            late_score: tx.prepare_cached(
                "INSERT OR REPLACE INTO scores (sample_id, verifier, score, accepted, detail)
                 SELECT id, ?5, ?6, ?7, ?8 FROM samples
                 WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3 AND sample_index = ?4",
            )?,
            step_score: tx.prepare_cached(
                "INSERT OR REPLACE INTO step_scores (sample_id, verifier, step, text, score)
                 SELECT id, ?5, ?6, ?7, ?8 FROM samples
                 WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3 AND sample_index = ?4",
            )?,
            reply: tx.prepare_cached("INSERT INTO replies (call_id, text) VALUES (?1, ?2)")?,
            attempt: tx.prepare_cached(
                "INSERT INTO attempts (call_id, attempt, n, status, error, latency_ms, wait_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            result: tx.prepare_cached(
                "INSERT INTO task_results (run_id, strategy, kind, n, task_index, accuracy, abstain,
                    tokens, selected, selected_correct, samples, verifier_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            graph_run: tx.prepare_cached(
                "INSERT OR REPLACE INTO graph_runs (run_id, task_index, attempt, ending, turns, final)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            message: tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (run_id, task_index, attempt, position, turn, node,
                    sender, reply_to, receivers, summary, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?,
            event: tx.prepare_cached(
                "INSERT OR REPLACE INTO graph_events (run_id, task_index, attempt, position, kind, node, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            injected: tx.prepare_cached(
                "INSERT OR REPLACE INTO injected_failures (run_id, task_index, attempt, position,
                    turn, agent, node, mode, name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            pool: tx.prepare_cached(
                "INSERT OR REPLACE INTO pools (run_id, agent, task_index, answers, verifiers,
                    classes, correct, tokens, scores)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
        })
    }

    fn blob(&mut self, b: &Blob, seen: &mut HashSet<Arc<str>>) -> rusqlite::Result<()> {
        if seen.insert(b.hash.clone()) {
            self.blob.execute(params![&*b.hash, &*b.text])?;
        }
        Ok(())
    }

    fn write_pool(&mut self, p: &PoolRecord) -> rusqlite::Result<()> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let verifiers: Vec<String> = p.scores.iter().map(|(v, _)| v.clone()).collect();
        let classes: Vec<u8> = p
            .samples
            .iter()
            .flat_map(|s| s.0.unwrap_or(ABSTAINED).to_le_bytes())
            .collect();
        let correct: Vec<u8> = p.samples.iter().map(|s| u8::from(s.1)).collect();
        let tokens: Vec<u8> = p.samples.iter().flat_map(|s| s.2.to_le_bytes()).collect();
        let scores: Vec<u8> = p
            .scores
            .iter()
            .flat_map(|(_, s)| s.iter().flat_map(|x| x.to_le_bytes()))
            .collect();
        self.pool.execute(params![
            self.run_id,
            &*p.agent,
            p.task_index as i64,
            json(&p.answers),
            json(&verifiers),
            classes,
            correct,
            tokens,
            scores,
        ])?;
        Ok(())
    }

    fn write(
        &mut self,
        record: Record,
        seen: &mut HashSet<Arc<str>>,
        stats: &mut WriterStats,
    ) -> rusqlite::Result<()> {
        match record {
            Record::Call(c) => {
                self.blob(&c.system, seen)?;
                self.blob(&c.prompt, seen)?;
                let response_hash = match &c.response {
                    Some(body) => {
                        let b = Blob::new(body);
                        self.blob(&b, seen)?;
                        Some(b.hash)
                    }
                    None => None,
                };
                let call_id = self.call.insert(params![
                    self.run_id,
                    c.task_index as i64,
                    &*c.agent,
                    &*c.model,
                    c.provider,
                    c.first_sample as i64,
                    c.n as i64,
                    &*c.system.hash,
                    &*c.prompt.hash,
                    c.request,
                    response_hash.as_deref(),
                    if c.error.is_some() { "error" } else { "ok" },
                    c.error,
                    c.latency_ms,
                    c.input_tokens as i64,
                    c.output_tokens as i64,
                    c.cache_key,
                    c.cost_usd,
                    if c.judged.is_some() {
                        "verifier"
                    } else {
                        "generator"
                    },
                    c.judged.as_ref().map(|j| &*j.0),
                ])?;
                stats.calls += 1;
                if let Some((_, reply)) = &c.judged {
                    self.reply.execute(params![call_id, reply])?;
                }
                for (i, a) in c.attempts.iter().enumerate() {
                    self.attempt.execute(params![
                        call_id,
                        i as i64 + 1,
                        a.n as i64,
                        a.status,
                        a.error,
                        a.latency_ms,
                        a.wait_ms
                    ])?;
                }
                // Input tokens are per request; attribute them to its first sample.
                for (i, s) in c.samples.iter().enumerate() {
                    let sample_id = self.sample.insert(params![
                        self.run_id,
                        c.task_index as i64,
                        &*c.agent,
                        &*c.model,
                        s.sample_index as i64,
                        call_id,
                        s.text,
                        s.extracted,
                        s.normalized,
                        s.correct,
                        s.normalized.is_none(),
                        if i == 0 { c.input_tokens as i64 } else { 0 },
                        s.output_tokens as i64,
                        c.latency_ms,
                        s.error,
                        s.round.as_ref().map(|r| &*r.0),
                        s.round.as_ref().map(|r| r.1 as i64),
                    ])?;
                    stats.samples += 1;
                    for sc in &s.scores {
                        self.score.execute(params![
                            sample_id,
                            &*sc.verifier,
                            sc.value,
                            sc.accepted,
                            sc.detail
                        ])?;
                    }
                }
            }
            Record::Score(s) => {
                self.late_score.execute(params![
                    self.run_id,
                    &*s.agent,
                    s.task_index as i64,
                    s.sample_index as i64,
                    &*s.score.verifier,
                    s.score.value,
                    s.score.accepted,
                    s.score.detail
                ])?;
                for (step, (text, score)) in s.steps.iter().enumerate() {
                    self.step_score.execute(params![
                        self.run_id,
                        &*s.agent,
                        s.task_index as i64,
                        s.sample_index as i64,
                        &*s.score.verifier,
                        step as i64,
                        text,
                        score
                    ])?;
                }
            }
            Record::Graph(g) => {
                let (task, attempt) = (g.task_index as i64, g.attempt as i64);
                self.graph_run.execute(params![
                    self.run_id,
                    task,
                    attempt,
                    g.ending,
                    g.turns as i64,
                    g.final_message.map(|m| m as i64),
                ])?;
                for (i, m) in g.messages.iter().enumerate() {
                    self.message.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        i as i64,
                        m.turn as i64,
                        m.node,
                        m.sender.as_deref(),
                        m.reply_to.map(|r| r as i64),
                        serde_json::to_string(&m.receivers).expect("strings serialize"),
                        m.summary,
                        m.text,
                    ])?;
                }
                for (i, (kind, node, detail)) in g.events.iter().enumerate() {
                    self.event.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        i as i64,
                        kind,
                        node,
                        detail
                    ])?;
                }
                for f in &g.injected {
                    self.injected.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        f.position as i64,
                        f.turn as i64,
                        &*f.agent,
                        f.node,
                        f.mode.code(),
                        f.mode.name(),
                    ])?;
                }
            }
            Record::Task(task) => {
                for p in &task.pools {
                    self.write_pool(p)?;
                }
                for r in task.results {
                    self.result.execute(params![
                        self.run_id,
                        &*r.strategy,
                        r.kind,
                        r.n as i64,
                        r.task_index as i64,
                        r.accuracy.is_finite().then_some(r.accuracy),
                        r.abstain,
                        r.tokens,
                        r.selected,
                        r.selected_correct,
                        r.samples,
                        r.verifier_tokens,
                    ])?;
                }
            }
        }
        Ok(())
    }
}
