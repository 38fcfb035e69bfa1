//! Graph runs as `crucible show --transcript` reads them: messages, events
//! and the failures injected into them.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::{MessageRecord, Result, Store};

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

impl Store {
    /// The graph runs of `task_id` in run `run_id`, each with its messages in
    /// order: what `show --transcript` prints. The task is found by its id
    /// in `tasks_by_id`, then its rows by primary key: nothing else of the
    /// run is read.
    pub fn transcript(&self, run_id: i64, task_id: &str) -> Result<Vec<Transcript>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT g.task_index, g.attempt FROM graph_runs g
                 WHERE g.run_id = ?1 AND g.task_index IN (SELECT task_index FROM tasks
                    WHERE run_id = ?1 AND task_id = ?2)
                 ORDER BY g.attempt",
            )
            .map_err(self.err())?;
        let keys: Vec<(i64, i64)> = st
            .query_map(params![run_id, task_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        let mut runs = Vec::with_capacity(keys.len());
        for (task_index, attempt) in keys {
            runs.extend(self.trace(run_id, task_index as usize, attempt as usize)?);
        }
        Ok(runs)
    }

    /// Graph run `attempt` of task `task_index` in run `run_id`, with its
    /// messages in order and the failures injected into it.
    pub fn trace(
        &self,
        run_id: i64,
        task_index: usize,
        attempt: usize,
    ) -> Result<Option<Transcript>> {
        let key = params![run_id, task_index as i64, attempt as i64];
        let head = self
            .conn
            .prepare_cached(
                "SELECT ending, turns, final FROM graph_runs
                 WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3",
            )
            .and_then(|mut st| {
                st.query_row(key, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as usize,
                        r.get::<_, Option<i64>>(2)?.map(|m| m as usize),
                    ))
                })
                .optional()
            })
            .map_err(self.err())?;
        let Some((ending, turns, final_message)) = head else {
            return Ok(None);
        };
        let messages = self
            .conn
            .prepare_cached(
                "SELECT turn, node, sender, reply_to, receivers, summary, text FROM messages
                 WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 ORDER BY position",
            )
            .and_then(|mut st| {
                st.query_map(key, |r| {
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
            })
            .map_err(self.err())?;
        let injected = self
            .conn
            .prepare_cached(
                "SELECT position, mode, name FROM injected_failures
                 WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 ORDER BY position",
            )
            .and_then(|mut st| {
                st.query_map(key, |r| {
                    Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?))
                })
                .and_then(|rows| rows.collect())
            })
            .map_err(self.err())?;
        Ok(Some(Transcript {
            attempt,
            ending,
            turns,
            final_message,
            messages,
            injected,
        }))
    }
}
