//! `crucible analyze`: scaling curves from a stored run's samples, printed
//! as a table or one JSON object.

use std::process::ExitCode;

use super::common::{AnalysisArgs, StoredRun};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Print one JSON object (every n, every task) instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        json,
        analysis,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let analysis = analysis.analyze(&db.db, run)?;
    if json {
        outln!("{}", serde_json::to_string(&analysis)?);
    } else {
        out!("{}", analysis.table());
    }
    Ok(ExitCode::SUCCESS)
}
