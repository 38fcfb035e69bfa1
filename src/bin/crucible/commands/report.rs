//! `crucible report`: one run as a single self-contained HTML file (inline
//! styles and charts, no script, no request) to attach or send.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use crucible::scenario::judge_file::JudgeFile;

use super::common::{StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// The HTML file to write; `-` for stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
    /// Failed transcripts to include, the most failure modes found first.
    #[arg(long, default_value_t = 3)]
    pub worst: usize,
    /// Judge file whose modes the failure tables show (default: the
    /// built-in judges/mast.yaml).
    #[arg(long, value_name = "FILE")]
    pub judge: Option<PathBuf>,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        out,
        worst,
        judge,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let judge = match &judge {
        Some(path) => JudgeFile::load(path).map_err(crucible::Error::Invalid)?,
        None => JudgeFile::mast(),
    };
    let store = open_existing(&db.db)?;
    let html = crucible::view::report::html_report(&store, &judge, run, worst)
        .map_err(|why| anyhow::anyhow!("{}: run {run}: {why}", db.db.display()))?;
    if out.as_os_str() == "-" {
        out!("{html}");
    } else {
        std::fs::write(&out, html).with_context(|| format!("cannot write {}", out.display()))?;
        outln!("{}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
