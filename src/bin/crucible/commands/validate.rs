//! `crucible validate`: check a scenario and report every problem found.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::Runner;

use super::common::SetArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML).
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
}

pub fn exec(Args { file, set }: Args) -> anyhow::Result<ExitCode> {
    let s = Runner::validate(&file, &set.set)?;
    outln!(
        "{}: ok ({} models, {} agents, {} tasks, {} strategies, {} samples planned)",
        file.display(),
        s.models.len(),
        s.agents.len(),
        s.tasks.len(),
        s.strategies.len(),
        s.planned_samples()
    );
    Ok(ExitCode::SUCCESS)
}
