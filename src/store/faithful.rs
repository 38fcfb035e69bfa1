//! A faithfulness experiment's stored predictions and answers, as
//! `crucible faithfulness` and the run summary read them.

use super::{Result, Store};
use crate::scenario::faithfulness::REPEAT_STRIDE;

/// One stored prediction with its cases' ids and the explained agent's
/// reference answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaithPredictionRow {
    pub dataset: String,
    /// The reference case's task index and id.
    pub reference_index: usize,
    pub reference: String,
    pub counterfactual_index: usize,
    pub counterfactual: String,
    /// The explained agent.
    pub model: String,
    pub layout: String,
    pub predictor: String,
    pub repeat: usize,
    pub condition: String,
    pub explanation_from: Option<String>,
    /// `parsed`, `hedge`, `unparsed` or `error`.
    pub status: String,
    pub prediction: Option<String>,
    /// The explained agent's own answer on the counterfactual.
    pub actual: String,
    /// Its answer on the reference case.
    pub reference_answer: Option<String>,
    pub correct: Option<bool>,
}

/// How an explained agent's replies were read, per data set and layout.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaithAnswerCount {
    pub dataset: String,
    pub agent: String,
    pub layout: String,
    pub status: String,
    pub count: u64,
}

/// One early answer or answer after a mistake (`faith_reasoning`), with
/// its reference's data set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaithReasoningRow {
    pub dataset: String,
    pub agent: String,
    pub layout: String,
    pub measure: String,
    pub task_index: usize,
    pub step: usize,
    pub steps: usize,
    pub status: String,
    pub unchanged: Option<bool>,
}

/// One answer under a suggestion (`faith_biased`), with its data set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaithBiasedRow {
    pub dataset: String,
    pub agent: String,
    pub layout: String,
    pub task_index: usize,
    pub status: String,
    pub followed: Option<bool>,
    pub mentions: Option<bool>,
}

/// How a data set's generated counterfactuals checked out.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaithGeneratedCount {
    pub dataset: String,
    pub status: String,
    pub count: u64,
}

/// The scenario's order of a faithfulness run's data sets, explained
/// variants and predictors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaithOrder {
    pub datasets: Vec<String>,
    /// (agent, layout).
    pub variants: Vec<(String, String)>,
    pub predictors: Vec<String>,
}

impl Store {
    /// Every prediction of run `run_id`, in (data set, reference,
    /// counterfactual, model, layout, predictor, repeat, condition) order.
    pub fn faith_predictions(&self, run_id: i64) -> Result<Vec<FaithPredictionRow>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT p.dataset, p.reference, r.task_id, p.counterfactual, c.task_id, p.model,
                    p.layout, p.predictor, p.repeat, p.condition, p.explanation_from, p.status,
                    p.prediction, p.actual, a.answer, p.correct
                 FROM faith_predictions p
                 JOIN tasks r ON r.run_id = p.run_id AND r.task_index = p.reference
                 JOIN tasks c ON c.run_id = p.run_id AND c.task_index = p.counterfactual
                 LEFT JOIN faith_answers a ON a.run_id = p.run_id AND a.task_index = p.reference
                    AND a.agent = p.model AND a.layout = p.layout
                 WHERE p.run_id = ?1
                 ORDER BY p.dataset, p.reference, p.counterfactual, p.model, p.layout,
                    p.predictor, p.repeat, p.condition",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([run_id], |r| {
                Ok(FaithPredictionRow {
                    dataset: r.get(0)?,
                    reference_index: r.get::<_, i64>(1)? as usize,
                    reference: r.get(2)?,
                    counterfactual_index: r.get::<_, i64>(3)? as usize,
                    counterfactual: r.get(4)?,
                    model: r.get(5)?,
                    layout: r.get(6)?,
                    predictor: r.get(7)?,
                    repeat: r.get::<_, i64>(8)? as usize,
                    condition: r.get(9)?,
                    explanation_from: r.get(10)?,
                    status: r.get(11)?,
                    prediction: r.get(12)?,
                    actual: r.get(13)?,
                    reference_answer: r.get(14)?,
                    correct: r.get(15)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// How run `run_id`'s explained agents' replies were read, counted per
    /// data set, agent, layout and status.
    pub fn faith_answer_counts(&self, run_id: i64) -> Result<Vec<FaithAnswerCount>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                // A case's data set: that of any pair it is in.
                "WITH cases AS (
                    SELECT reference AS task_index, dataset FROM faith_pairs WHERE run_id = ?1
                    UNION SELECT counterfactual, dataset FROM faith_pairs WHERE run_id = ?1)
                 SELECT c.dataset, a.agent, a.layout, a.status, COUNT(*)
                 FROM faith_answers a JOIN cases c ON c.task_index = a.task_index
                 WHERE a.run_id = ?1
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([run_id], |r| {
                Ok(FaithAnswerCount {
                    dataset: r.get(0)?,
                    agent: r.get(1)?,
                    layout: r.get(2)?,
                    status: r.get(3)?,
                    count: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// The order the scenario lists run `run_id`'s data sets, explained
    /// variants (agent, layout) and predictors in: data sets by their first
    /// case, variants by their answers' sample index (which is the
    /// variant's), predictors by the position their predictions' sample
    /// indices encode.
    pub fn faith_order(&self, run_id: i64) -> Result<FaithOrder> {
        self.require_run(run_id)?;
        let strings = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<Vec<String>> {
            let mut st = self.conn.prepare(sql).map_err(self.err())?;
            let rows = st.query_map(params, |r| r.get(0)).map_err(self.err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(self.err())
        };
        let datasets = strings(
            "SELECT dataset FROM faith_pairs WHERE run_id = ?1 GROUP BY dataset ORDER BY MIN(reference)",
            &[&run_id],
        )?;
        let variants = strings(
            "SELECT json_array(a.agent, a.layout) FROM faith_answers a
             JOIN calls c ON c.id = a.call_id WHERE a.run_id = ?1
             GROUP BY a.agent, a.layout ORDER BY MIN(c.first_sample)",
            &[&run_id],
        )?
        .into_iter()
        .filter_map(|pair| serde_json::from_str::<(String, String)>(&pair).ok())
        .collect();
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(DISTINCT predictor) FROM faith_predictions WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        let predictors = strings(
            "SELECT p.predictor FROM faith_predictions p JOIN calls c ON c.id = p.call_id
             WHERE p.run_id = ?1 GROUP BY p.predictor ORDER BY MIN((c.first_sample / ?3) % ?2)",
            &[&run_id, &count.max(1), &(REPEAT_STRIDE as i64)],
        )?;
        Ok(FaithOrder {
            datasets,
            variants,
            predictors,
        })
    }

    /// Run `run_id`'s early answers and answers after mistakes, in (data
    /// set, case, agent, layout, measure, step) order.
    pub fn faith_reasoning(&self, run_id: i64) -> Result<Vec<FaithReasoningRow>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "WITH sets AS (SELECT DISTINCT reference, dataset FROM faith_pairs WHERE run_id = ?1)
                 SELECT s.dataset, r.agent, r.layout, r.measure, r.task_index, r.step, r.steps,
                    r.status, r.unchanged
                 FROM faith_reasoning r JOIN sets s ON s.reference = r.task_index
                 WHERE r.run_id = ?1
                 ORDER BY s.dataset, r.task_index, r.agent, r.layout, r.measure, r.step",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([run_id], |r| {
                Ok(FaithReasoningRow {
                    dataset: r.get(0)?,
                    agent: r.get(1)?,
                    layout: r.get(2)?,
                    measure: r.get(3)?,
                    task_index: r.get::<_, i64>(4)? as usize,
                    step: r.get::<_, i64>(5)? as usize,
                    steps: r.get::<_, i64>(6)? as usize,
                    status: r.get(7)?,
                    unchanged: r.get(8)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Run `run_id`'s answers under a suggestion, in (data set, case,
    /// agent, layout) order.
    pub fn faith_biased(&self, run_id: i64) -> Result<Vec<FaithBiasedRow>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "WITH sets AS (SELECT DISTINCT reference, dataset FROM faith_pairs WHERE run_id = ?1)
                 SELECT s.dataset, b.agent, b.layout, b.task_index, b.status, b.followed, b.mentions
                 FROM faith_biased b JOIN sets s ON s.reference = b.task_index
                 WHERE b.run_id = ?1
                 ORDER BY s.dataset, b.task_index, b.agent, b.layout",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([run_id], |r| {
                Ok(FaithBiasedRow {
                    dataset: r.get(0)?,
                    agent: r.get(1)?,
                    layout: r.get(2)?,
                    task_index: r.get::<_, i64>(3)? as usize,
                    status: r.get(4)?,
                    followed: r.get(5)?,
                    mentions: r.get(6)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// How run `run_id`'s generated counterfactuals checked out, counted
    /// per data set and status.
    pub fn faith_generated_counts(&self, run_id: i64) -> Result<Vec<FaithGeneratedCount>> {
        self.require_run(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT dataset, status, COUNT(*) FROM faith_generated WHERE run_id = ?1
                 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([run_id], |r| {
                Ok(FaithGeneratedCount {
                    dataset: r.get(0)?,
                    status: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Whether run `run_id` is a faithfulness experiment.
    pub fn is_faithfulness_run(&self, run_id: i64) -> Result<bool> {
        self.require_run(run_id)?;
        self.conn
            .prepare_cached("SELECT 1 FROM faith_pairs WHERE run_id = ?1 LIMIT 1")
            .and_then(|mut st| st.exists([run_id]))
            .map_err(self.err())
    }
}
