//! Graph runs as `crucible show --transcript` reads them: messages, events
//! and the failures injected into them.

use std::sync::Arc;

use rusqlite::params;

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
                "SELECT g.attempt, g.ending, g.turns, g.final FROM graph_runs g
                 WHERE g.run_id = ?1 AND g.task_index IN (SELECT task_index FROM tasks
                    WHERE run_id = ?1 AND task_id = ?2)
                 ORDER BY g.attempt",
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
                 FROM messages m
                 WHERE m.run_id = ?1 AND m.task_index IN (SELECT task_index FROM tasks
                    WHERE run_id = ?1 AND task_id = ?2)
                    AND m.attempt = ?3 ORDER BY m.position",
            )
            .map_err(self.err())?;
        let mut injected = self
            .conn
            .prepare(
                "SELECT f.position, f.mode, f.name
                 FROM injected_failures f
                 WHERE f.run_id = ?1 AND f.task_index IN (SELECT task_index FROM tasks
                    WHERE run_id = ?1 AND task_id = ?2)
                    AND f.attempt = ?3 ORDER BY f.position",
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
}
