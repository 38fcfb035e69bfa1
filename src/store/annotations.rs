//! People's annotations of traces: every submission kept in `annotations`
//! (a correction is a new row, never an update), and the latest of each
//! trace, mode and annotator mirrored into `labels` as rater `human:NAME`
//! in the transaction that writes it — so that agreement, `label_rows`,
//! `labels export` and `show` read people's labels as they read every
//! other rater's. Also what going through a run needs: its traces, the
//! next one a person has not labelled, and how far they are.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

pub use crate::import::labels::{HUMAN_RATER_PREFIX, HumanLabel, valid_annotator};

use super::{Result, Store, StoreError, now, sqlite_err};
use crate::scenario::failure::FailureMode;

/// One person's label of one failure mode of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeAnnotation {
    pub mode: FailureMode,
    pub label: HumanLabel,
    /// The agent the failure is by, when the person says.
    pub agent: Option<String>,
    /// The message it shows in, by its 0-based position in the trace.
    pub turn: Option<u64>,
    pub rationale: Option<String>,
}

/// One person's labels of one trace, as submitted together.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceAnnotation {
    pub run_id: i64,
    pub task_index: usize,
    pub attempt: usize,
    /// The person's name, without [`HUMAN_RATER_PREFIX`].
    pub annotator: String,
    /// Where the labels come from: `viewer`, or `import: FILE`.
    pub source: String,
    pub modes: Vec<ModeAnnotation>,
}

/// One row of a trace's annotation history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredAnnotation {
    /// Increasing with every submission: of a (mode, annotator), the
    /// highest is the label that counts.
    pub id: i64,
    pub annotator: String,
    /// The mode's MAST code.
    pub code: String,
    pub label: HumanLabel,
    pub agent: Option<String>,
    pub turn: Option<u64>,
    pub rationale: Option<String>,
    pub source: String,
    /// Unix seconds.
    pub created_at: f64,
}

/// The rater `annotator`'s labels are in `labels` as: `human:NAME`.
pub fn human_rater(annotator: &str) -> String {
    format!("{HUMAN_RATER_PREFIX}{annotator}")
}

impl ToSql for HumanLabel {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for HumanLabel {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        HumanLabel::from_name(name).ok_or_else(|| FromSqlError::Other(name.into()))
    }
}

impl Store {
    /// Store `traces`' annotations, all in one transaction: each mode's
    /// label as a new row of `annotations`, and — being the latest — as
    /// its annotator's row of `labels`. A trace the run does not have, or
    /// an empty annotator name, fails the whole call and writes nothing.
    /// Returns how many annotations were written.
    pub fn annotate(&mut self, traces: &[TraceAnnotation]) -> Result<usize> {
        let err = sqlite_err(&self.path);
        let created_at = now();
        let tx = self.conn.transaction().map_err(err)?;
        let mut written = 0;
        {
            let mut run = tx
                .prepare("SELECT 1 FROM runs WHERE id = ?1")
                .map_err(err)?;
            let mut trace = tx
                .prepare(
                    "SELECT 1 FROM graph_runs WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3",
                )
                .map_err(err)?;
            let mut history = tx
                .prepare(
                    "INSERT INTO annotations (run_id, task_index, attempt, annotator, code, label,
                        agent, turn, rationale, source, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(err)?;
            let mut label = tx
                .prepare(
                    "INSERT OR REPLACE INTO labels (run_id, task_index, attempt, rater, code,
                        original, present, agent, turn, rationale)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(err)?;
            for t in traces {
                if t.annotator.trim().is_empty() {
                    return Err(StoreError::EmptyAnnotator {
                        path: self.path.clone(),
                        run: t.run_id,
                    });
                }
                let (task_index, attempt) = (t.task_index as i64, t.attempt as i64);
                if !trace
                    .exists(params![t.run_id, task_index, attempt])
                    .map_err(err)?
                {
                    let path = self.path.clone();
                    return Err(match run.exists([t.run_id]).map_err(err)? {
                        false => StoreError::NoSuchRun {
                            path,
                            run: t.run_id,
                        },
                        true => StoreError::NoSuchTrace {
                            path,
                            run: t.run_id,
                            task_index: t.task_index,
                            attempt: t.attempt,
                        },
                    });
                }
                let rater = human_rater(&t.annotator);
                for m in &t.modes {
                    let turn = m.turn.map(|t| t as i64);
                    history
                        .execute(params![
                            t.run_id,
                            task_index,
                            attempt,
                            t.annotator,
                            m.mode.code(),
                            m.label,
                            m.agent,
                            turn,
                            m.rationale,
                            t.source,
                            created_at
                        ])
                        .map_err(err)?;
                    // The row just written has the highest id: it is the
                    // latest, the one `labels` holds.
                    label
                        .execute(params![
                            t.run_id,
                            task_index,
                            attempt,
                            rater,
                            m.mode.code(),
                            m.label.present(),
                            m.agent,
                            turn,
                            m.rationale
                        ])
                        .map_err(err)?;
                    written += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(written)
    }

    /// The annotation history of one trace, every annotator's, newest first.
    pub fn annotations(
        &self,
        run_id: i64,
        task_index: usize,
        attempt: usize,
    ) -> Result<Vec<StoredAnnotation>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, annotator, code, label, agent, turn, rationale, source, created_at
                 FROM annotations WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3
                 ORDER BY id DESC",
            )
            .map_err(self.err())?;
        st.query_map(params![run_id, task_index as i64, attempt as i64], |r| {
            Ok(StoredAnnotation {
                id: r.get(0)?,
                annotator: r.get(1)?,
                code: r.get(2)?,
                label: r.get(3)?,
                agent: r.get(4)?,
                turn: r.get::<_, Option<i64>>(5)?.map(|t| t as u64),
                rationale: r.get(6)?,
                source: r.get(7)?,
                created_at: r.get(8)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// (task index, attempt) of every trace of run `run_id` — its graph
    /// runs; an imported trace is its task's graph run 0 — in that order.
    pub fn trace_keys(&self, run_id: i64) -> Result<Vec<(usize, usize)>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt FROM graph_runs WHERE run_id = ?1
                 ORDER BY task_index, attempt",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| {
            Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize))
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// The first trace of run `run_id` in (task index, attempt) order after
    /// `after` — wrapping around to the start, and reaching `after` itself
    /// last — that `annotator` has not labelled any mode of; `None` when
    /// they have labelled every trace.
    pub fn next_unannotated(
        &self,
        run_id: i64,
        annotator: &str,
        after: Option<(usize, usize)>,
    ) -> Result<Option<(usize, usize)>> {
        self.require_run(run_id)?;
        let (task_index, attempt) =
            after.map_or((None, None), |(t, a)| (Some(t as i64), Some(a as i64)));
        self.conn
            .query_row(
                "SELECT g.task_index, g.attempt FROM graph_runs g
                 WHERE g.run_id = ?1 AND NOT EXISTS (
                     SELECT 1 FROM annotations a
                     WHERE a.run_id = ?1 AND a.annotator = ?2
                       AND a.task_index = g.task_index AND a.attempt = g.attempt)
                 ORDER BY ?3 IS NOT NULL AND (g.task_index, g.attempt) <= (?3, ?4),
                          g.task_index, g.attempt
                 LIMIT 1",
                params![run_id, annotator, task_index, attempt],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
            .optional()
            .map_err(self.err())
    }

    /// How many of run `run_id`'s traces `annotator` has labelled (any
    /// mode of), and how many traces it has.
    pub fn annotation_progress(&self, run_id: i64, annotator: &str) -> Result<(u64, u64)> {
        self.require_run(run_id)?;
        self.conn
            .query_row(
                "SELECT coalesce(sum(EXISTS (
                            SELECT 1 FROM annotations a
                            WHERE a.run_id = ?1 AND a.annotator = ?2
                              AND a.task_index = g.task_index AND a.attempt = g.attempt)), 0),
                        count(*)
                 FROM graph_runs g WHERE g.run_id = ?1",
                params![run_id, annotator],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{ImportedMessage, ImportedTrace};
    use crate::store::NewImport;

    /// A store holding one imported run of `traces` traces (task i's graph
    /// run 0), plus a second graph run of task 0.
    fn store_with_traces(dir: &tempfile::TempDir, traces: usize) -> Store {
        let mut store = Store::open(&dir.path().join("a.db")).unwrap();
        let traces: Vec<ImportedTrace> = (0..traces)
            .map(|i| {
                let message = ImportedMessage {
                    sender: Some("solver".into()),
                    role: None,
                    text: format!("message {i}"),
                };
                ImportedTrace::new(
                    i.to_string(),
                    Default::default(),
                    String::new(),
                    vec![message],
                )
            })
            .collect();
        let import = NewImport {
            format: "messages",
            files: &[("t.jsonl".into(), String::new())],
        };
        let run = store.import_run(&import, &traces, &[]).unwrap();
        assert_eq!(run.run_id, 1);
        store
            .connection()
            .execute(
                "INSERT INTO graph_runs (run_id, task_index, attempt, ending, turns)
                 VALUES (1, 0, 1, 'end', 1)",
                [],
            )
            .unwrap();
        store
    }

    fn mode(mode: FailureMode, label: HumanLabel) -> ModeAnnotation {
        ModeAnnotation {
            mode,
            label,
            agent: None,
            turn: None,
            rationale: None,
        }
    }

    fn trace(annotator: &str, at: (usize, usize), modes: Vec<ModeAnnotation>) -> TraceAnnotation {
        TraceAnnotation {
            run_id: 1,
            task_index: at.0,
            attempt: at.1,
            annotator: annotator.into(),
            source: "viewer".into(),
            modes,
        }
    }

    /// `labels` rows of rater `rater` on trace (0, 0): code, present,
    /// agent, turn, rationale.
    #[allow(clippy::type_complexity)]
    fn labels_of(
        store: &Store,
        rater: &str,
    ) -> Vec<(
        String,
        Option<bool>,
        Option<String>,
        Option<i64>,
        Option<String>,
    )> {
        let mut st = store
            .connection()
            .prepare(
                "SELECT code, present, agent, turn, rationale FROM labels
                 WHERE rater = ?1 AND task_index = 0 AND attempt = 0 ORDER BY code",
            )
            .unwrap();
        st.query_map([rater], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    #[test]
    fn history_is_kept_and_the_latest_label_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_traces(&dir, 3);
        let first = ModeAnnotation {
            agent: Some("solver".into()),
            turn: Some(0),
            rationale: Some("it repeats itself".into()),
            ..mode(FailureMode::StepRepetition, HumanLabel::Present)
        };
        let written = store
            .annotate(&[trace(
                "ann",
                (0, 0),
                vec![first, mode(FailureMode::NoVerification, HumanLabel::Unsure)],
            )])
            .unwrap();
        assert_eq!(written, 2);
        assert_eq!(
            labels_of(&store, "human:ann"),
            [
                (
                    "FM-1.3".to_owned(),
                    Some(true),
                    Some("solver".to_owned()),
                    Some(0),
                    Some("it repeats itself".to_owned())
                ),
                // Unsure is unknown, never absent.
                ("FM-3.2".to_owned(), None, None, None, None),
            ]
        );
        // A correction, and another annotator's label of the same mode.
        let correction = trace(
            "ann",
            (0, 0),
            vec![mode(FailureMode::StepRepetition, HumanLabel::Absent)],
        );
        let other = trace(
            "bo",
            (0, 0),
            vec![mode(FailureMode::StepRepetition, HumanLabel::Present)],
        );
        store.annotate(&[correction, other]).unwrap();
        assert_eq!(
            labels_of(&store, "human:ann")[0],
            ("FM-1.3".to_owned(), Some(false), None, None, None)
        );
        assert_eq!(labels_of(&store, "human:bo").len(), 1);
        let history = store.annotations(1, 0, 0).unwrap();
        let rows: Vec<(&str, &str, HumanLabel)> = history
            .iter()
            .map(|a| (a.annotator.as_str(), a.code.as_str(), a.label))
            .collect();
        assert_eq!(
            rows,
            [
                ("bo", "FM-1.3", HumanLabel::Present),
                ("ann", "FM-1.3", HumanLabel::Absent),
                ("ann", "FM-3.2", HumanLabel::Unsure),
                ("ann", "FM-1.3", HumanLabel::Present),
            ]
        );
        assert!(history.windows(2).all(|w| w[0].id > w[1].id));
        assert_eq!(history[3].rationale.as_deref(), Some("it repeats itself"));
        assert_eq!(history[0].source, "viewer");
        // Another trace's history is its own.
        assert!(store.annotations(1, 1, 0).unwrap().is_empty());
    }

    #[test]
    fn a_missing_trace_or_nameless_annotator_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_traces(&dir, 2);
        let good = trace(
            "ann",
            (0, 0),
            vec![mode(FailureMode::DisobeyTask, HumanLabel::Present)],
        );
        let missing = trace(
            "ann",
            (1, 3),
            vec![mode(FailureMode::DisobeyTask, HumanLabel::Present)],
        );
        let e = store.annotate(&[good.clone(), missing]).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::NoSuchTrace {
                    run: 1,
                    task_index: 1,
                    attempt: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("run 1 has no trace"), "{e}");
        let nameless = trace(" ", (1, 0), good.modes.clone());
        let e = store.annotate(&[good.clone(), nameless]).unwrap_err();
        assert!(matches!(e, StoreError::EmptyAnnotator { .. }), "{e}");
        let other_run = TraceAnnotation {
            run_id: 9,
            ..good.clone()
        };
        let e = store.annotate(&[good, other_run]).unwrap_err();
        assert!(matches!(e, StoreError::NoSuchRun { run: 9, .. }), "{e}");
        let count =
            |sql: &str| -> i64 { store.connection().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM annotations"), 0);
        assert_eq!(
            count("SELECT count(*) FROM labels WHERE rater LIKE 'human:%'"),
            0
        );
    }

    #[test]
    fn the_next_unannotated_trace_follows_and_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_with_traces(&dir, 3);
        // Traces: (0, 0), (0, 1), (1, 0), (2, 0).
        assert_eq!(
            store.trace_keys(1).unwrap(),
            [(0, 0), (0, 1), (1, 0), (2, 0)]
        );
        let next = |store: &Store, after| store.next_unannotated(1, "ann", after).unwrap();
        assert_eq!(next(&store, None), Some((0, 0)));
        assert_eq!(next(&store, Some((0, 0))), Some((0, 1)));
        assert_eq!(next(&store, Some((2, 0))), Some((0, 0)));
        let done = |at| {
            trace(
                "ann",
                at,
                vec![mode(FailureMode::TaskDerailment, HumanLabel::Absent)],
            )
        };
        store.annotate(&[done((0, 1)), done((1, 0))]).unwrap();
        assert_eq!(next(&store, Some((0, 0))), Some((2, 0)));
        assert_eq!(next(&store, Some((2, 0))), Some((0, 0)));
        assert_eq!(store.annotation_progress(1, "ann").unwrap(), (2, 4));
        // Someone else's labels do not count as this annotator's.
        assert_eq!(store.next_unannotated(1, "bo", None).unwrap(), Some((0, 0)));
        assert_eq!(store.annotation_progress(1, "bo").unwrap(), (0, 4));
        store.annotate(&[done((0, 0))]).unwrap();
        // The trace it started from, when nothing else is left.
        assert_eq!(next(&store, Some((2, 0))), Some((2, 0)));
        store.annotate(&[done((2, 0))]).unwrap();
        assert_eq!(next(&store, Some((1, 0))), None);
        assert_eq!(next(&store, None), None);
        assert_eq!(store.annotation_progress(1, "ann").unwrap(), (4, 4));
        let e = store.next_unannotated(2, "ann", None).unwrap_err();
        assert!(matches!(e, StoreError::NoSuchRun { run: 2, .. }), "{e}");
    }
}
