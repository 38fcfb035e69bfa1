//! What `crucible run`, `replay` and `resume` print: a run's summary as a
//! table (stdout) and as the `--json` object.

use comfy_table::{Cell, CellAlignment, Table, presets};

use crate::stats::summary::RunSummary;

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
        // Errors get a column only when some call failed.
        let errored = self.errored_tasks > 0;
        if errored {
            header.push("errored tasks");
        }
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
            if errored {
                row.push(Cell::new(self.errored_tasks).set_alignment(CellAlignment::Right));
            }
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
        let errors = if self.errors > 0 {
            format!(" ({} errors)", self.errors)
        } else {
            String::new()
        };
        // A run without strategies (a faithfulness experiment) has no rows.
        let t = match self.results.is_empty() {
            true => String::new(),
            false => format!("\n{t}"),
        };
        format!(
            "run {} · {} · {} · {} samples{errors} · {} requests · {} tokens{verifiers}{cost}{t}",
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
            "errors": self.errors,
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
                "errors": self.errored_tasks,
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
