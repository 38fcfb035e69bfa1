//! `crucible analyze`: scaling curves from a stored run's samples, printed
//! as a table or one JSON object; with `--theory`, what the theory predicts
//! from each task's pool set against them.

use std::process::ExitCode;

use super::common::{AnalysisArgs, PredictArgs, StoredRun};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Print one JSON object (every n, every task) instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub predict: PredictArgs,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        json,
        analysis,
        predict,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let confidence = analysis.confidence;
    let analysis = analysis.analyze(&db.db, run)?;
    if predict.theory {
        let prediction = predict.predict(&db.db, &analysis, confidence)?;
        if json {
            outln!("{}", serde_json::to_string(&prediction)?);
        } else {
            out!("{}", prediction.table());
        }
    } else if json {
        outln!("{}", serde_json::to_string(&analysis)?);
    } else {
        out!("{}", analysis.table());
    }
    Ok(ExitCode::SUCCESS)
}
