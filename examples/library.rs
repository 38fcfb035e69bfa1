//! Driving crucible from Rust: validate a scenario, run it into a database,
//! and read the summary back — what `crucible run` does, without the CLI.
//!
//!     cargo run --example library -- scenarios/quickstart.yaml /tmp/example.db

use crucible::{RunOptions, Runner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .unwrap_or_else(|| "scenarios/quickstart.yaml".into());
    let db = args.next().unwrap_or_else(|| "example.db".into());

    let runner = Runner::new(RunOptions {
        db: db.into(),
        concurrency: 8,
        handle_ctrl_c: false,
        cache: false,
        budget: Default::default(),
        fail_on_error: None,
        overrides: Vec::new(),
    });
    let summary = runner.run(scenario.as_ref(), |s, run_id| {
        eprintln!(
            "run {run_id}: {} tasks, {} samples planned",
            s.tasks.len(),
            s.planned_samples()
        );
    })?;
    // The exact-estimator rows, e.g. to plot accuracy against n.
    for row in &summary.results {
        println!(
            "{:<18} n={:<3} accuracy={:.3} [{:.3}, {:.3}]",
            row.strategy, row.n, row.accuracy, row.ci_low, row.ci_high
        );
    }
    Ok(())
}
