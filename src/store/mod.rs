//! The trace store: the only code that touches SQLite.
//!
//! One database file holds every run. The schema is versioned with
//! `PRAGMA user_version` and migrated on open. While a run executes, a single
//! writer thread owns a connection, fed by a bounded channel, and commits in
//! batched transactions: finished work is durable within one batch of being
//! done, and nothing is held in memory for the run as a whole. Reads (listing,
//! summaries, export) use their own connection; WAL mode lets them run beside
//! the writer. `docs/schema.md` documents every table and view.
//!
//! Split by concern: `schema` (migrations), `records` and `writer` (what the
//! engine hands the writer thread), and the reads per area — `runs`,
//! `recorded` (replay and resume), `pools` (analyze), `samples` (export),
//! `transcript` (show), `viewed` (the viewer's and reports' pages),
//! `judged` (failure judges' traces, judgements and labels), `imported`
//! (other tools' traces stored as runs), `annotations` (people's labels
//! with their history, mirrored into `labels`), `faithful` (a faithfulness
//! experiment's predictions and answers).
//!
//! May use: `scenario`, `model` (the response types replay serves), `stats`
//! (the outcome and summary rows it stores), `import` (the imported traces
//! it stores), `seed`.

mod annotations;
mod blamed;
mod faithful;
mod imported;
mod judged;
mod pools;
mod recorded;
mod records;
mod runs;
mod samples;
mod schema;
mod transcript;
mod viewed;
mod writer;

pub use annotations::*;
pub use blamed::*;
pub use faithful::*;
pub use imported::*;
pub use judged::*;
pub use pools::*;
pub use recorded::StoreRecordings;
pub use records::*;
pub use runs::*;
pub use samples::*;
pub use schema::SCHEMA_VERSION;
pub use transcript::*;
pub use viewed::*;
pub use writer::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

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
    #[error(
        "database {path} has schema version {found}, older than this crucible's ({supported}), and is opened read-only; open it once without --read-only (any crucible command that writes upgrades it)"
    )]
    TooOldToRead {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {path}: no run {run}; `crucible runs` lists the runs it holds")]
    NoSuchRun { path: PathBuf, run: i64 },
    #[error(
        "database {path}: run {run} has no trace with task index {task_index} and attempt {attempt} (a trace is one of its graph runs)"
    )]
    NoSuchTrace {
        path: PathBuf,
        run: i64,
        task_index: usize,
        attempt: usize,
    },
    #[error(
        "database {path}: an annotation of run {run} names no annotator; give the person's name"
    )]
    EmptyAnnotator { path: PathBuf, run: i64 },
    #[error("database {path}: the writer thread stopped unexpectedly")]
    WriterGone { path: PathBuf },
    #[error(
        "database {path}: run {run} already holds sample {sample} of agent \"{agent}\" on task {task_index}, from a call this session does not make again: the run's scenario or model settings changed since that sample was drawn (a different pool size, say); start a new run, or resume with the scenario the run was made from"
    )]
    SampleConflict {
        path: PathBuf,
        run: i64,
        agent: String,
        task_index: usize,
        sample: usize,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

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
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Open the database at `path` for reading only: what the viewer's
    /// pages use, so that no page can change the trace. The schema must be
    /// current, as a read-only connection cannot migrate it.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let err = sqlite_err(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        match found.cmp(&SCHEMA_VERSION) {
            std::cmp::Ordering::Less => Err(StoreError::TooOldToRead {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            std::cmp::Ordering::Greater => Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            std::cmp::Ordering::Equal => Ok(Store {
                conn,
                path: path.to_path_buf(),
            }),
        }
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

    /// Fails with [`StoreError::NoSuchRun`] unless run `run_id` exists.
    fn require_run(&self, run_id: i64) -> Result<()> {
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
            .and_then(|mut st| st.exists([run_id]))
            .map_err(self.err())?;
        match found {
            true => Ok(()),
            false => Err(self.no_such_run(run_id)),
        }
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sqlite_err(&self.path)
    }

    /// Direct read access for tests and analysis helpers in this crate.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
