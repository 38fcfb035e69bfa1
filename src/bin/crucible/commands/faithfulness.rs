//! `crucible faithfulness`: a faithfulness experiment's scores — NSG with
//! clustered bootstrap intervals, the egregious rate, hedged and unreadable
//! replies, the gain split by whether the answer changed, self against
//! external explanations, predictors' agreement — or, with
//! `--predictions`, one JSON object per prediction for recomputing them.

use std::process::ExitCode;

use crucible::Error;
use crucible::report::faithfulness::stored_report;
use crucible::stats::faithfulness::Settings;

use super::common::{StoredRun, coverage, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Bootstrap replicates over reference cases (0: no intervals).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Coverage of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = coverage)]
    pub confidence: f64,
    /// Print one JSON object instead of text.
    #[arg(long, conflicts_with = "predictions")]
    pub json: bool,
    /// Print one JSON object per prediction (JSONL) instead: dataset,
    /// reference and counterfactual (case ids, and `_index`: task indices),
    /// model, layout, predictor, repeat, condition, explanation_from,
    /// status, prediction, actual, reference_answer, correct.
    #[arg(long)]
    pub predictions: bool,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let StoredRun { run, db } = &args.stored;
    let store = open_existing(&db.db)?;
    if !store.is_faithfulness_run(*run)? {
        return Err(Error::Setup(format!(
            "run {run} in {} is not a faithfulness experiment: run a scenario with a `faithfulness:` section (e.g. scenarios/faithfulness-sim.yaml)",
            db.db.display()
        ))
        .into());
    }
    if args.predictions {
        for row in store.faith_predictions(*run)? {
            outln!("{}", serde_json::to_string(&row)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = stored_report(
        &store,
        *run,
        &Settings {
            replicates: args.bootstrap,
            seed: args.seed,
            level: args.confidence,
        },
    )?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        out!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}

/// What `crucible run` and `crucible plot` report a faithfulness run with:
/// the command's defaults.
pub const DEFAULT_SETTINGS: Settings = Settings {
    replicates: 1000,
    seed: 0,
    level: 0.95,
};
