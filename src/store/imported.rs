//! Storing imported traces as a run of kind `imported`: one task per trace
//! (its id the trace's content hash), the trace as that task's graph run 0
//! with its messages, the source's labels in `labels`, and a blamed agent
//! and step in `attributions` — so that judging, agreement and the viewer
//! read imported traces exactly as they read crucible's own.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::{Result, Store, now, sqlite_err};
use crate::import::ImportedTrace;

/// The `attributions.method` of a source's own blame (Who&When's mistake).
pub const GROUND_TRUTH: &str = "ground_truth";

/// What an import was.
#[derive(Debug, Clone)]
pub struct NewImport<'a> {
    /// `mad`, `who-when` or `messages`.
    pub format: &'a str,
    /// The files read, as given, with their text (for the hash).
    pub files: &'a [(String, String)],
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRun {
    pub run_id: i64,
    /// Distinct traces stored.
    pub traces: usize,
    /// Traces whose content repeated an earlier one: their labels were
    /// added to it.
    pub duplicates: usize,
}

impl Store {
    /// Store `traces` as a new imported run, all in one transaction:
    /// nothing is written if anything fails.
    pub fn import_run(
        &mut self,
        import: &NewImport<'_>,
        traces: &[ImportedTrace],
        unmapped: &[String],
    ) -> Result<ImportedRun> {
        let err = sqlite_err(&self.path);
        let mut h = blake3::Hasher::new();
        for (path, text) in import.files {
            for part in [path, text] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        let paths: Vec<&str> = import.files.iter().map(|(p, _)| p.as_str()).collect();
        let name = match paths.as_slice() {
            [one] => format!("import {}: {one}", import.format),
            many => format!("import {}: {} files", import.format, many.len()),
        };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO runs (name, scenario_path, scenario_text, scenario_hash, seed,
                crucible_version, status, concurrency, planned_samples, started_at, finished_at, kind)
             VALUES (?1, ?2, '', ?3, 0, ?4, 'completed', 0, 0, ?5, ?5, 'imported')",
            params![
                name,
                paths.join(" "),
                h.finalize().to_hex().as_str(),
                env!("CARGO_PKG_VERSION"),
                now()
            ],
        )
        .map_err(err)?;
        let run_id = tx.last_insert_rowid();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut duplicates = 0;
        {
            let mut task = tx
                .prepare(
                    "INSERT INTO tasks (run_id, task_index, task_id, inputs, expected)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            let mut graph_run = tx
                .prepare(
                    "INSERT INTO graph_runs (run_id, task_index, attempt, ending, turns, final)
                     VALUES (?1, ?2, 0, 'imported', ?3, NULL)",
                )
                .map_err(err)?;
            let mut message = tx
                .prepare(
                    "INSERT INTO messages (run_id, task_index, attempt, position, turn, node,
                        sender, reply_to, receivers, summary, text)
                     VALUES (?1, ?2, 0, ?3, ?3, ?4, ?5, NULL, '[]', 0, ?6)",
                )
                .map_err(err)?;
            let mut label = tx
                .prepare(
                    "INSERT OR IGNORE INTO labels (run_id, task_index, attempt, rater, code,
                        original, present, agent, turn)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            let mut blame = tx
                .prepare(
                    "INSERT OR IGNORE INTO attributions (run_id, task_index, attempt, method,
                        agent, turn, reason)
                     VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for t in traces {
                let index = match seen.get(t.content_hash.as_str()) {
                    Some(&i) => {
                        duplicates += 1;
                        i
                    }
                    None => {
                        let i = seen.len();
                        seen.insert(&t.content_hash, i);
                        let mut inputs = t.source.clone();
                        inputs.insert("source_id".into(), t.source_id.clone().into());
                        inputs.insert("task".into(), t.task.clone().into());
                        task.execute(params![
                            run_id,
                            i as i64,
                            t.content_hash,
                            serde_json::Value::Object(inputs).to_string(),
                            t.expected
                        ])
                        .map_err(err)?;
                        graph_run
                            .execute(params![run_id, i as i64, t.messages.len() as i64])
                            .map_err(err)?;
                        for (p, m) in t.messages.iter().enumerate() {
                            message
                                .execute(params![
                                    run_id,
                                    i as i64,
                                    p as i64,
                                    m.role.as_deref().unwrap_or(""),
                                    m.sender,
                                    m.text
                                ])
                                .map_err(err)?;
                        }
                        i
                    }
                };
                for l in &t.labels {
                    label
                        .execute(params![
                            run_id,
                            index as i64,
                            l.rater,
                            l.mode.map(|m| m.code()),
                            l.original,
                            l.present,
                            l.agent,
                            l.turn.map(|t| t as i64)
                        ])
                        .map_err(err)?;
                }
                if let Some(m) = &t.mistake {
                    blame
                        .execute(params![
                            run_id,
                            index as i64,
                            GROUND_TRUTH,
                            m.agent,
                            m.step as i64,
                            m.reason
                        ])
                        .map_err(err)?;
                }
            }
        }
        let raters: HashSet<&str> = traces
            .iter()
            .flat_map(|t| t.labels.iter().map(|l| l.rater.as_str()))
            .collect();
        let mut raters: Vec<&str> = raters.into_iter().collect();
        raters.sort_unstable();
        let detail = serde_json::json!({
            "format": import.format, "files": paths, "traces": seen.len(),
            "duplicates": duplicates, "raters": raters, "unmapped": unmapped,
        });
        tx.execute(
            "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'imported', ?3)",
            params![run_id, now(), detail.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(ImportedRun {
            run_id,
            traces: seen.len(),
            duplicates,
        })
    }
}
