//! `crucible plot`: SVG charts of a stored run's curves, one file per chart.

use std::path::PathBuf;
use std::process::ExitCode;

use super::common::{AnalysisArgs, StoredRun};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Directory for the SVG files (created if missing).
    #[arg(long, default_value = "plots")]
    pub out: PathBuf,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        out,
        analysis,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let analysis = analysis.analyze(&db.db, run)?;
    let written = crucible::report::plot::write_plots(&analysis, &out)?;
    anyhow::ensure!(
        !written.is_empty(),
        "run {run} in {} has no task with a full pool and an expected answer; nothing to plot",
        db.db.display()
    );
    for path in written {
        outln!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
