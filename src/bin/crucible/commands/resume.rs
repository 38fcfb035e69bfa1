//! `crucible resume`: go on with an interrupted, failed or budget-stopped
//! run from its stored scenario.

use std::process::ExitCode;

use super::common::{BudgetArgs, RunArgs};
use super::run::{Source, run};

#[derive(clap::Args)]
pub struct Args {
    /// Run id (see `crucible runs`).
    #[arg(value_name = "RUN")]
    pub id: i64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    run(
        Source::Resume {
            run: args.id,
            file: None,
        },
        args.run,
        args.budget.into(),
        false,
        Vec::new(),
    )
}
