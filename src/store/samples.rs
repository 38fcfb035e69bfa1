//! Samples as `crucible export` reads them, one row each.

use super::{Store, StoreError};

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

impl Store {
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
}
