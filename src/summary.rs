//! A run's results: one row per (strategy, n) with accuracy, a bootstrap 95%
//! interval over tasks, abstentions and tokens; rendered as a table or as the
//! JSON object that `run --json` promises scripts.

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::bootstrap;
use crate::budget::Spend;
use crate::seed::{self, Part};

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

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        "-".into()
    }
}

impl RunSummary {
    /// The summary table, as printed on stdout.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        // Samples drawn get a column only when a strategy stops early.
        let early = self.results.iter().any(|r| r.mean_samples != r.n as f64);
        let mut header = vec!["strategy", "n", "accuracy", "95% CI", "abstain"];
        if early {
            header.push("samples/task");
        }
        header.push("tokens/task");
        // Verifier tokens get a column only when a verifier calls a model.
        let judged = self.results.iter().any(|r| r.mean_verifier_tokens > 0.0);
        if judged {
            header.push("of which verifier");
        }
        t.set_header(header);
        for r in &self.results {
            let mut row = vec![
                Cell::new(&r.strategy),
                Cell::new(r.n).set_alignment(CellAlignment::Right),
                Cell::new(pct(r.accuracy)).set_alignment(CellAlignment::Right),
                Cell::new(if r.ci_low.is_finite() {
                    format!("[{}, {}]", pct(r.ci_low), pct(r.ci_high))
                } else {
                    "-".into()
                }),
                Cell::new(pct(r.abstain_rate)).set_alignment(CellAlignment::Right),
            ];
            if early {
                row.push(
                    Cell::new(format!("{:.1}", r.mean_samples)).set_alignment(CellAlignment::Right),
                );
            }
            row.push(
                Cell::new(format!("{:.0}", r.mean_tokens)).set_alignment(CellAlignment::Right),
            );
            if judged {
                row.push(
                    Cell::new(format!("{:.0}", r.mean_verifier_tokens))
                        .set_alignment(CellAlignment::Right),
                );
            }
            t.add_row(row);
        }
        let cost = if self.spent.cost_usd > 0.0 {
            format!(" · ${:.4}", self.spent.cost_usd)
        } else {
            String::new()
        };
        let verifiers = if self.verifier_tokens > 0 {
            format!(" ({} by verifiers)", self.verifier_tokens)
        } else {
            String::new()
        };
        format!(
            "run {} · {} · {} · {} samples · {} requests · {} tokens{verifiers}{cost}\n{t}",
            self.run_id,
            self.name,
            self.status,
            self.samples,
            self.spent.requests,
            self.spent.tokens
        )
    }

    /// The `run --json` object.
    pub fn json(&self, db: &std::path::Path) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "samples": self.samples,
            "error": self.error,
            "spent": self.spent,
            "verifier_tokens": self.verifier_tokens,
            "db": db.display().to_string(),
            "results": self.results.iter().map(|r| serde_json::json!({
                "strategy": r.strategy,
                "kind": r.kind,
                "agent": r.agent,
                "verifier": r.verifier,
                "n": r.n,
                "accuracy": finite(r.accuracy),
                "ci_low": finite(r.ci_low),
                "ci_high": finite(r.ci_high),
                "tasks": r.tasks,
                "abstain_rate": r.abstain_rate,
                "mean_tokens": r.mean_tokens,
                "mean_verifier_tokens": r.mean_verifier_tokens,
                "mean_samples": r.mean_samples,
            })).collect::<Vec<_>>(),
        })
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Summary rows of a run from its per-task outcomes (`None` = task unfinished).
pub fn summarize(
    scenario: &crate::scenario::Scenario,
    outcomes: &[Option<Vec<crate::strategy::TaskOutcome>>],
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
