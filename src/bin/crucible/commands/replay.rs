//! `crucible replay`: re-execute a stored run from its recorded responses.

use std::process::ExitCode;

use crucible::scenario::budget::Budget;

use super::common::RunArgs;
use super::run::{Source, run};

#[derive(clap::Args)]
pub struct Args {
    /// Run id (see `crucible runs`).
    #[arg(value_name = "RUN")]
    pub id: i64,
    #[command(flatten)]
    pub run: RunArgs,
    /// A response that was not recorded is an error, never a live call.
    #[arg(long)]
    pub strict: bool,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    run(
        Source::Replay {
            run: args.id,
            strict: args.strict,
        },
        args.run,
        Budget::default(),
        false,
        Vec::new(),
    )
}
