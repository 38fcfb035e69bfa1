//! Reading what failure judges work on and what they (and every other
//! rater) said: a run's tasks and traces, the judgements already made, and
//! the labels. Written by the writer ([`crate::store::writer`]); read by the
//! engine's post-hoc judging and by the reports.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::params;

use super::{MessageRecord, Result, Store, now};
use crate::scenario::Task;
use crate::scenario::failure::FailureMode;

/// One graph run (or imported trace) with its messages in order and the
/// failures injected into it.
#[derive(Debug, Clone)]
pub struct StoredTrace {
    pub task_index: usize,
    pub attempt: usize,
    pub messages: Vec<MessageRecord>,
    /// (mode code, message position, agent).
    pub injected: Vec<(String, usize, String)>,
}

/// One row of `label_rows`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredLabel {
    /// The trace's task id (an imported trace's content hash).
    pub trace: String,
    pub task_index: usize,
    pub attempt: usize,
    /// The id in the imported file, with its system's name.
    pub source_id: Option<String>,
    pub mas_name: Option<String>,
    /// 14-mode MAST code; `None` for a label with no counterpart.
    pub code: Option<String>,
    pub original: String,
    pub rater: String,
    pub present: Option<bool>,
    pub agent: Option<String>,
    pub turn: Option<u64>,
    pub quote: Option<String>,
    pub evidence_verified: Option<bool>,
    /// Why a person gave the label; `None` for every other rater.
    pub rationale: Option<String>,
}

/// A run's labels as agreement statistics read them: every rater's
/// present/absent/unknown per trace and mode, with raters interned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelTable {
    pub raters: Vec<String>,
    pub rows: Vec<LabelRow>,
}

/// One label of a [`LabelTable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRow {
    pub task_index: usize,
    pub attempt: usize,
    /// Index into the table's `raters`.
    pub rater: usize,
    /// `None`: a label with no 14-mode counterpart.
    pub mode: Option<FailureMode>,
    pub present: Option<bool>,
}

/// How a judge's readings of a run went, per judge version and model.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JudgementCounts {
    pub judge: String,
    pub model: String,
    pub parsed: u64,
    pub unparsed: u64,
    pub errors: u64,
    pub reasked: u64,
    /// Judgements whose transcript was cut to fit.
    pub fitted: u64,
}

impl Store {
    /// Run `run_id`'s tasks, as the engine's types.
    pub fn tasks(&self, run_id: i64) -> Result<Vec<Task>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, task_id, inputs, expected FROM tasks
                 WHERE run_id = ?1 ORDER BY task_index",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| {
            let inputs: String = r.get(2)?;
            Ok(Task {
                index: r.get::<_, i64>(0)? as usize,
                id: r.get(1)?,
                inputs: serde_json::from_str(&inputs).unwrap_or_default(),
                expected: r.get(3)?,
                distribution: None,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Every trace of run `run_id`, in (task, attempt) order.
    pub fn traces(&self, run_id: i64) -> Result<Vec<StoredTrace>> {
        let mut traces: Vec<StoredTrace> = Vec::new();
        let mut at: HashMap<(usize, usize), usize> = HashMap::new();
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, turn, node, sender, reply_to, receivers, summary, text
                 FROM messages WHERE run_id = ?1 ORDER BY task_index, attempt, position",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let key = (
                r.get::<_, i64>(0).map_err(self.err())? as usize,
                r.get::<_, i64>(1).map_err(self.err())? as usize,
            );
            let receivers: String = r.get(6).map_err(self.err())?;
            let message = MessageRecord {
                turn: r.get::<_, i64>(2).map_err(self.err())? as usize,
                node: r.get(3).map_err(self.err())?,
                sender: r
                    .get::<_, Option<String>>(4)
                    .map_err(self.err())?
                    .map(Arc::from),
                reply_to: r
                    .get::<_, Option<i64>>(5)
                    .map_err(self.err())?
                    .map(|m| m as usize),
                receivers: serde_json::from_str(&receivers).unwrap_or_default(),
                summary: r.get(7).map_err(self.err())?,
                text: r.get(8).map_err(self.err())?,
            };
            let i = *at.entry(key).or_insert_with(|| {
                traces.push(StoredTrace {
                    task_index: key.0,
                    attempt: key.1,
                    messages: Vec::new(),
                    injected: Vec::new(),
                });
                traces.len() - 1
            });
            traces[i].messages.push(message);
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, mode, position, agent FROM injected_failures
                 WHERE run_id = ?1 ORDER BY task_index, attempt, position",
            )
            .map_err(self.err())?;
        let injected = st
            .query_map([run_id], |r| {
                Ok((
                    (r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize),
                    (r.get(2)?, r.get::<_, i64>(3)? as usize, r.get(4)?),
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        for (key, failure) in injected {
            if let Some(&i) = at.get(&key) {
                traces[i].injected.push(failure);
            }
        }
        Ok(traces)
    }

    /// (task index, attempt, model, repeat) of every judgement by the judge
    /// file with hash `judge_hash` that was read or found unreadable: a
    /// failed call's is left out, to be made again.
    pub fn judged(
        &self,
        run_id: i64,
        judge_hash: &str,
    ) -> Result<HashSet<(usize, usize, String, usize)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, model, repeat FROM judgements
                 WHERE run_id = ?1 AND judge_hash = ?2 AND status <> 'error'",
            )
            .map_err(self.err())?;
        st.query_map(params![run_id, judge_hash], |r| {
            Ok((
                r.get::<_, i64>(0)? as usize,
                r.get::<_, i64>(1)? as usize,
                r.get(2)?,
                r.get::<_, i64>(3)? as usize,
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Every label of run `run_id` (of its task `task_id` only, when
    /// given), by trace, rater and label.
    pub fn labels(&self, run_id: i64, task_id: Option<&str>) -> Result<Vec<StoredLabel>> {
        // One task's labels are found by its index (`tasks_by_id`), not by
        // reading every label of the run and its task's id.
        let filter = match task_id {
            Some(_) => {
                "run_id = ?1 AND task_index IN (SELECT task_index FROM tasks WHERE run_id = ?1 AND task_id = ?2)"
            }
            None => "run_id = ?1 AND ?2 IS NULL",
        };
        self.labels_where(filter, params![run_id, task_id])
    }

    /// Every label of graph run `attempt` of task `task_index`, by rater and label.
    pub fn trace_labels(
        &self,
        run_id: i64,
        task_index: usize,
        attempt: usize,
    ) -> Result<Vec<StoredLabel>> {
        self.labels_where(
            "run_id = ?1 AND task_index = ?2 AND attempt = ?3",
            params![run_id, task_index as i64, attempt as i64],
        )
    }

    fn labels_where(
        &self,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredLabel>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT trace, task_index, attempt, source_id, mas_name, code, original, rater,
                        present, agent, turn, quote, evidence_verified, rationale
                 FROM label_rows WHERE {filter}
                 ORDER BY task_index, attempt, rater, code, original"
            ))
            .map_err(self.err())?;
        st.query_map(params, |r| {
            Ok(StoredLabel {
                trace: r.get(0)?,
                task_index: r.get::<_, i64>(1)? as usize,
                attempt: r.get::<_, i64>(2)? as usize,
                source_id: r.get(3)?,
                mas_name: r.get(4)?,
                code: r.get(5)?,
                original: r.get(6)?,
                rater: r.get(7)?,
                present: r.get(8)?,
                agent: r.get(9)?,
                turn: r.get::<_, Option<i64>>(10)?.map(|t| t as u64),
                quote: r.get(11)?,
                evidence_verified: r.get(12)?,
                rationale: r.get(13)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Run `run_id`'s labels, compactly: what agreement and rates need,
    /// read straight from `labels` (hundreds of thousands of rows).
    pub fn label_table(&self, run_id: i64) -> Result<LabelTable> {
        let mut table = LabelTable::default();
        let mut interned: HashMap<String, usize> = HashMap::new();
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, rater, code, present FROM labels WHERE run_id = ?1
                 ORDER BY task_index, attempt, rater, original",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let text = |i: usize| -> Result<Option<&str>> {
                let v = r.get_ref(i).map_err(self.err())?;
                v.as_str_or_null().map_err(|e| self.err()(e.into()))
            };
            let rater = text(2)?.unwrap_or_default();
            let rater = match interned.get(rater) {
                Some(&i) => i,
                None => {
                    table.raters.push(rater.to_owned());
                    interned.insert(rater.to_owned(), table.raters.len() - 1);
                    table.raters.len() - 1
                }
            };
            table.rows.push(LabelRow {
                task_index: r.get::<_, i64>(0).map_err(self.err())? as usize,
                attempt: r.get::<_, i64>(1).map_err(self.err())? as usize,
                rater,
                mode: text(3)?.and_then(FailureMode::from_code),
                present: r.get(4).map_err(self.err())?,
            });
        }
        Ok(table)
    }

    /// The agents `rater` most often finds a failure by, with how many
    /// failures, most first.
    pub fn accused(&self, run_id: i64, rater: &str) -> Result<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT agent, count(*) FROM labels
                 WHERE run_id = ?1 AND rater = ?2 AND present = 1 AND agent IS NOT NULL
                 GROUP BY agent ORDER BY count(*) DESC, agent",
            )
            .map_err(self.err())?;
        st.query_map(params![run_id, rater], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Per judge and model: how its readings of run `run_id` went.
    pub fn judgement_counts(&self, run_id: i64) -> Result<Vec<JudgementCounts>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT judge || ' v' || judge_version, model, sum(status = 'parsed'),
                        sum(status = 'unparsed'), sum(status = 'error'), sum(reasked),
                        sum(cut_messages > 0)
                 FROM judgements WHERE run_id = ?1
                 GROUP BY judge, judge_version, judge_hash, model
                 ORDER BY judge, judge_version, model",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| {
            Ok(JudgementCounts {
                judge: r.get(0)?,
                model: r.get(1)?,
                parsed: r.get::<_, i64>(2)? as u64,
                unparsed: r.get::<_, i64>(3)? as u64,
                errors: r.get::<_, i64>(4)? as u64,
                reasked: r.get::<_, i64>(5)? as u64,
                fitted: r.get::<_, i64>(6)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Note in run `run_id`'s events that something happened to it after it
    /// ran (`judged`, `imported`), with `detail`.
    pub fn add_event(&self, run_id: i64, kind: &str, detail: &serde_json::Value) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, now(), kind, detail.to_string()],
            )
            .map_err(self.err())?;
        Ok(())
    }
}
