//! `crucible labels export`: every rater's label of every trace of a run,
//! one JSON object per (trace, mode, rater) on stdout.

use std::io::Write;
use std::process::ExitCode;

use super::common::{StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Write the run's labels as JSONL: trace, source_id, mas_name, code,
    /// original, rater, present (true, false or null), agent, turn, quote,
    /// evidence_verified.
    Export {
        #[command(flatten)]
        stored: StoredRun,
        /// Only these raters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        raters: Vec<String>,
    },
}

pub fn exec(Args { action }: Args) -> anyhow::Result<ExitCode> {
    let Action::Export {
        stored: StoredRun { run, db },
        raters,
    } = action;
    let store = open_existing(&db.db)?;
    let labels = store.labels(run, None)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for l in labels
        .iter()
        .filter(|l| raters.is_empty() || raters.contains(&l.rater))
    {
        let line = serde_json::to_string(l).expect("labels serialize");
        match writeln!(out, "{line}") {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            r => r?,
        }
    }
    out.flush().or_else(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    })?;
    Ok(ExitCode::SUCCESS)
}
