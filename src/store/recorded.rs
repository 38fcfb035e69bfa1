//! Reads for replay and resume: recorded responses by cache key, looked up
//! as calls are made, and the outcomes of the tasks a run finished.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::provider::{CallResponse, Completion};
use crate::model::replay::Recordings;

use super::{Result, Store, open_conn};

/// Recorded responses of one run (or of every run), read one call at a
/// time on a connection of their own, so they are never all in memory.
pub struct StoreRecordings {
    conn: Mutex<Connection>,
    path: PathBuf,
    run_id: Option<i64>,
    /// With `run_id`: also the replay runs of it (its own calls first).
    replays: bool,
}

impl StoreRecordings {
    fn lookup(&self, key: &str) -> rusqlite::Result<Option<CallResponse>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let head = conn
            .prepare_cached(
                "SELECT c.id, c.run_id, c.agent, c.task_index, c.first_sample, c.n,
                    c.input_tokens, c.latency_ms, c.request, rb.text, c.output_tokens
                 FROM calls c LEFT JOIN blobs rb ON rb.hash = c.response_hash
                 WHERE c.cache_key = ?1 AND c.status = 'ok'
                   AND (?2 IS NULL OR c.run_id = ?2 OR (?3 AND c.run_id IN
                        (SELECT run_id FROM replay_plans WHERE origin_run = ?2)))
                 ORDER BY c.id LIMIT 1",
            )?
            .query_row(params![key, self.run_id, self.replays], |r| {
                let call = (
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(10)?,
                );
                let response = CallResponse {
                    completions: Vec::new(),
                    input_tokens: r.get::<_, i64>(6)? as u64,
                    latency_ms: r.get(7)?,
                    request: Some(r.get(8)?),
                    raw: r.get(9)?,
                    attempts: Vec::new(),
                };
                Ok((call, response))
            })
            .optional()?;
        let Some(((id, run, agent, task, first, n, output_tokens), mut response)) = head else {
            return Ok(None);
        };
        // A call's completions are its samples, or a judge's reply.
        let mut samples = conn.prepare_cached(
            "SELECT text, output_tokens FROM samples
             WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3
               AND sample_index >= ?4 AND sample_index < ?4 + ?5 AND call_id = ?6
             ORDER BY sample_index",
        )?;
        response.completions = samples
            .query_map(params![run, agent, task, first, n, id], |r| {
                Ok(Completion {
                    text: r.get(0)?,
                    output_tokens: r.get::<_, i64>(1)? as u64,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        if response.completions.is_empty() {
            let reply: Option<String> = conn
                .prepare_cached("SELECT text FROM replies WHERE call_id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            response.completions.extend(reply.map(|text| Completion {
                text,
                output_tokens: output_tokens as u64,
            }));
        }
        Ok(Some(response))
    }
}

impl Recordings for StoreRecordings {
    fn get(&self, key: &str) -> std::result::Result<Option<CallResponse>, String> {
        self.lookup(key)
            .map_err(|e| format!("database {}: {e}", self.path.display()))
    }
}

impl Store {
    /// The successful recorded calls of `run_id`, or of every run when it is
    /// `None`, to be looked up by cache key.
    pub fn recordings(&self, run_id: Option<i64>) -> Result<StoreRecordings> {
        Ok(StoreRecordings {
            conn: Mutex::new(open_conn(&self.path)?),
            path: self.path.clone(),
            run_id,
            replays: false,
        })
    }

    /// The recorded calls of `run_id` and of the runs replaying it (the
    /// first made of each key, which is the run's own when it has one,
    /// being older): what a replay of it may be served from.
    pub fn lineage_recordings(&self, run_id: i64) -> Result<StoreRecordings> {
        Ok(StoreRecordings {
            replays: true,
            ..self.recordings(Some(run_id))?
        })
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
}
