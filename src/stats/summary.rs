//! A run's results: one row per (strategy, n) with accuracy, a bootstrap 95%
//! interval over tasks, abstentions and tokens. `report::run_summary`
//! renders them as the table and the JSON object that `run --json` promises
//! scripts.

use serde::Serialize;

use crate::scenario::budget::Spend;
use crate::seed::{self, Part};
use crate::stats::bootstrap;

/// One summary row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub strategy: String,
    pub kind: String,
    pub agent: String,
    pub verifier: Option<String>,
    pub n: usize,
    /// Mean over tasks with an expected answer; NaN when none has one.
    #[serde(serialize_with = "nan_as_null")]
    pub accuracy: f64,
    #[serde(serialize_with = "nan_as_null")]
    pub ci_low: f64,
    #[serde(serialize_with = "nan_as_null")]
    pub ci_high: f64,
    /// Tasks the row averages over.
    pub tasks: usize,
    /// Expected share of tasks where the strategy gives no answer.
    pub abstain_rate: f64,
    /// Expected tokens per task at this n: the generator's and the verifier's.
    pub mean_tokens: f64,
    /// The verifier's part of `mean_tokens` (its model's calls).
    pub mean_verifier_tokens: f64,
    /// Expected samples drawn per task: `n`, or fewer for adaptive consistency.
    pub mean_samples: f64,
}

fn nan_as_null<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

/// A run's summary, as printed by `run` and `show`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub name: String,
    pub status: String,
    pub scenario_path: String,
    pub samples: u64,
    /// Why the run failed or stopped at its budget, when it did.
    pub error: Option<String>,
    /// Samples whose call failed after its retries: errors, never scored.
    pub errors: u64,
    /// Tasks those errors leave out of every row (until a resume retries them).
    pub errored_tasks: u64,
    /// Calls, tokens and dollars the run spent, over all its sessions.
    pub spent: Spend,
    /// The part of `spent.tokens` that verifiers' models used.
    pub verifier_tokens: u64,
    pub results: Vec<ResultRow>,
}

pub const BOOTSTRAP_REPLICATES: usize = 1000;

/// Per-task values of one summary row, in task order.
pub struct Column {
    pub values: Vec<f64>,
}

/// 95% bootstrap intervals for the mean of each column (equal lengths),
/// resampling tasks.
fn intervals(columns: &[Column], seed: u64) -> Vec<(f64, f64)> {
    let tasks = columns.first().map_or(0, |c| c.values.len());
    let mut table = vec![0f32; tasks * columns.len()];
    for (c, col) in columns.iter().enumerate() {
        for (t, v) in col.values.iter().enumerate() {
            table[t * columns.len() + c] = *v as f32;
        }
    }
    let mut rng = seed::rng(seed, &[Part::Str("bootstrap")]);
    bootstrap::intervals(
        &table,
        tasks,
        columns.len(),
        BOOTSTRAP_REPLICATES,
        0.95,
        &mut rng,
    )
}

/// Summary rows of a run from its per-task outcomes (`None` = task unfinished).
pub fn summarize(
    scenario: &crate::scenario::Scenario,
    outcomes: &[Option<Vec<crate::stats::strategy::TaskOutcome>>],
) -> Vec<ResultRow> {
    let mut rows = Vec::new();
    let mut columns = Vec::new();
    let mut offset = 0;
    for s in &scenario.strategies {
        for (j, &n) in s.ns.iter().enumerate() {
            let (mut acc, mut abstain, mut tokens, mut verifier_tokens, mut samples, mut done) =
                (Vec::new(), 0.0, 0.0, 0.0, 0.0, 0usize);
            for (task, o) in scenario.tasks.iter().zip(outcomes) {
                let Some(o) = o else { continue };
                let o = &o[offset + j];
                done += 1;
                abstain += o.abstain;
                tokens += o.tokens;
                verifier_tokens += o.verifier_tokens;
                samples += o.samples;
                if task.expected.is_some() {
                    acc.push(o.accuracy);
                }
            }
            let mean = |v: f64| if done == 0 { 0.0 } else { v / done as f64 };
            let accuracy = if acc.is_empty() {
                f64::NAN
            } else {
                acc.iter().sum::<f64>() / acc.len() as f64
            };
            rows.push(ResultRow {
                strategy: s.name.clone(),
                kind: s.kind.as_str().into(),
                agent: scenario.agents[s.agent].name.clone(),
                verifier: s.verifier.map(|v| scenario.verifiers[v].name.clone()),
                n,
                accuracy,
                ci_low: f64::NAN,
                ci_high: f64::NAN,
                tasks: acc.len(),
                abstain_rate: mean(abstain),
                mean_tokens: mean(tokens),
                mean_verifier_tokens: mean(verifier_tokens),
                mean_samples: mean(samples),
            });
            columns.push(Column { values: acc });
        }
        offset += s.ns.len();
    }
    for (row, (lo, hi)) in rows.iter_mut().zip(intervals(&columns, scenario.seed)) {
        if row.tasks > 0 {
            row.ci_low = lo;
            row.ci_high = hi;
        }
    }
    rows
}
