//! What `crucible blame` prints: each failed trace's attribution by each
//! method, beside the ground truth where one is known — a simulated run's
//! first injected failure (its agent and message position), an imported
//! trace's blame (Who&When's `mistake_agent` and `mistake_step`) — and
//! each method's accuracy against it, matched exactly: agent names equal,
//! step indices equal (never a substring). As the `--json` contract and
//! as text.

use std::collections::HashMap;

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::scenario::attribution_file::agent_of;
use crate::stats::paired::wilson;
use crate::store::{AttributionRecord, CreditRecord, GROUND_TRUTH, Store, StoreError};

/// Where a failure really was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub agent: String,
    pub turn: usize,
}

/// One attribution, as scripts read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionRow {
    /// The trace's task id (an imported trace's content hash).
    pub trace: String,
    /// The imported file's own id (Who&When's file name stem).
    pub source_id: Option<String>,
    pub task_index: usize,
    pub attempt: usize,
    pub method: String,
    pub agent: Option<String>,
    pub turn: Option<usize>,
    pub score: Option<f64>,
    pub stderr: Option<f64>,
    pub replays: Option<u64>,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub truth: Option<Truth>,
    pub credits: Vec<CreditRecord>,
}

/// One method scored against the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub method: String,
    /// Traces with a truth that the method attributed (or declined to).
    pub traces: u64,
    pub agent_accuracy: Option<f64>,
    pub step_accuracy: Option<f64>,
    pub agent_ci: Option<[f64; 2]>,
    pub step_ci: Option<[f64; 2]>,
    pub calls: u64,
    pub tokens: u64,
}

/// The `--json` contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionReport {
    pub attributions: Vec<AttributionRow>,
    pub evaluation: Vec<Evaluation>,
}

impl AttributionReport {
    /// Run `run_id`'s attributions by `methods` (every method's when
    /// empty), with their truth and evaluation.
    pub fn read(
        store: &Store,
        run_id: i64,
        methods: &[&str],
    ) -> Result<AttributionReport, StoreError> {
        let tasks = store.tasks(run_id)?;
        let all = store.attributions(run_id)?;
        let truth: HashMap<(usize, usize), Truth> = store
            .culprits(run_id)?
            .into_iter()
            .map(|(trace, (agent, turn))| (trace, Truth { agent, turn }))
            .collect();
        let attributions: Vec<AttributionRow> = all
            .into_iter()
            .filter(|a| a.method != GROUND_TRUTH)
            .filter(|a| methods.is_empty() || methods.contains(&a.method.as_str()))
            .map(|a| {
                let task = tasks.iter().find(|t| t.index == a.task_index);
                row(
                    a.clone(),
                    task.map_or_else(String::new, |t| t.id.clone()),
                    task.and_then(source_id),
                    truth.get(&(a.task_index, a.attempt)).cloned(),
                )
            })
            .collect();
        let evaluation = evaluate(&attributions);
        Ok(AttributionReport {
            attributions,
            evaluation,
        })
    }

    /// The evaluation of the attributions as they are now (after some
    /// were left out).
    pub fn evaluated(&self) -> Vec<Evaluation> {
        evaluate(&self.attributions)
    }

    /// The attributions as a table, then each method's evaluation.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "trace", "attempt", "method", "agent", "turn", "score", "replays", "truth",
        ]);
        let value = |x: Option<f64>, se: Option<f64>| match (x, se) {
            (Some(x), Some(se)) => format!("{x:.3} ± {se:.3}"),
            (Some(x), None) => format!("{x:.3}"),
            _ => "—".to_owned(),
        };
        for a in &self.attributions {
            t.add_row(vec![
                Cell::new(a.source_id.as_deref().unwrap_or(&a.trace)),
                Cell::new(a.attempt).set_alignment(CellAlignment::Right),
                Cell::new(&a.method),
                Cell::new(a.agent.as_deref().unwrap_or("(none clear)")),
                Cell::new(a.turn.map_or("—".to_owned(), |t| t.to_string()))
                    .set_alignment(CellAlignment::Right),
                Cell::new(value(a.score, a.stderr)).set_alignment(CellAlignment::Right),
                Cell::new(a.replays.map_or("—".to_owned(), |r| r.to_string()))
                    .set_alignment(CellAlignment::Right),
                Cell::new(
                    a.truth
                        .as_ref()
                        .map_or("—".to_owned(), |t| format!("{} @ {}", t.agent, t.turn)),
                ),
            ]);
        }
        let mut out = format!("{t}\n");
        for e in &self.evaluation {
            let pct = |x: Option<f64>, ci: Option<[f64; 2]>| match (x, ci) {
                (Some(x), Some([lo, hi])) => {
                    format!("{:.1}% [{:.1}, {:.1}]", 100.0 * x, 100.0 * lo, 100.0 * hi)
                }
                _ => "—".to_owned(),
            };
            out.push_str(&format!(
                "{}: {} traces with a known culprit; agent {}, step {} (exact match); {} calls, {} tokens\n",
                e.method,
                e.traces,
                pct(e.agent_accuracy, e.agent_ci),
                pct(e.step_accuracy, e.step_ci),
                e.calls,
                e.tokens
            ));
        }
        out
    }
}

/// An imported trace's own id: its file's stem when it came from a file of
/// its own (Who&When's `12` of `12.json`), else the id the file gave it.
fn source_id(task: &crate::scenario::Task) -> Option<String> {
    let text = |k: &str| task.inputs.get(k).and_then(|v| v.as_str());
    match text("file") {
        Some(file) => std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned()),
        None => text("source_id").map(str::to_owned),
    }
}

fn row(
    a: AttributionRecord,
    trace: String,
    source_id: Option<String>,
    truth: Option<Truth>,
) -> AttributionRow {
    AttributionRow {
        trace,
        source_id,
        task_index: a.task_index,
        attempt: a.attempt,
        method: a.method,
        agent: a.agent,
        turn: a.turn,
        score: a.score,
        stderr: a.stderr,
        replays: a.replays,
        calls: a.calls,
        tokens: a.tokens,
        cost_usd: a.cost_usd,
        truth,
        credits: a.credits,
    }
}

/// Each method's exact-match accuracy over the traces with a truth (agent
/// names equal, steps equal as numbers); an attribution that names no one
/// counts as a miss.
fn evaluate(rows: &[AttributionRow]) -> Vec<Evaluation> {
    super::first_seen(rows.iter().map(|r| r.method.as_str()))
        .into_iter()
        .map(|m| {
            let mine: Vec<&AttributionRow> = rows.iter().filter(|r| r.method == m).collect();
            let judged: Vec<(&AttributionRow, &Truth)> = mine
                .iter()
                .filter_map(|r| Some((*r, r.truth.as_ref()?)))
                .collect();
            let n = judged.len() as u64;
            let agents = judged
                .iter()
                .filter(|(r, t)| r.agent.as_deref().map(agent_of) == Some(agent_of(&t.agent)))
                .count() as u64;
            let steps = judged
                .iter()
                .filter(|(r, t)| r.turn == Some(t.turn))
                .count() as u64;
            let share = |k: u64| (n > 0).then(|| k as f64 / n as f64);
            Evaluation {
                method: m.to_owned(),
                traces: n,
                agent_accuracy: share(agents),
                step_accuracy: share(steps),
                agent_ci: wilson(agents, n),
                step_ci: wilson(steps, n),
                calls: mine.iter().map(|r| r.calls).sum(),
                tokens: mine.iter().map(|r| r.tokens).sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        method: &str,
        agent: Option<&str>,
        turn: Option<usize>,
        truth: (&str, usize),
    ) -> AttributionRow {
        AttributionRow {
            trace: "t".into(),
            source_id: None,
            task_index: 0,
            attempt: 0,
            method: method.into(),
            agent: agent.map(str::to_owned),
            turn,
            score: None,
            stderr: None,
            replays: None,
            calls: 1,
            tokens: 10,
            cost_usd: 0.0,
            truth: Some(Truth {
                agent: truth.0.into(),
                turn: truth.1,
            }),
            credits: Vec::new(),
        }
    }

    /// Steps match as numbers, never as substrings: "12" is not "1";
    /// agents match by name, an action in parentheses aside.
    #[test]
    fn evaluation_matches_exactly() {
        let rows = [
            row("m", Some("WebSurfer"), Some(12), ("WebSurfer", 1)),
            row(
                "m",
                Some("Orchestrator (thought)"),
                Some(5),
                ("Orchestrator", 5),
            ),
            row("m", Some("Orchestrator"), Some(3), ("WebSurfer", 3)),
            row("m", None, None, ("WebSurfer", 2)),
        ];
        let e = &evaluate(&rows)[0];
        assert_eq!(e.traces, 4);
        assert_eq!(e.agent_accuracy, Some(0.5));
        assert_eq!(e.step_accuracy, Some(0.5));
        assert_eq!((e.calls, e.tokens), (4, 40));
        assert_eq!(agent_of("Orchestrator (-> WebSurfer)"), "Orchestrator");
        assert_eq!(agent_of("Data (raw"), "Data (raw");
    }
}
