//! `crucible export`: one record per sample of a run on stdout, as JSONL or
//! CSV.

use std::process::ExitCode;

use clap::ValueEnum;
use crucible::Error;
use crucible::report::export::{self, Format};

use super::common::{StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        format,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let store = open_existing(&db.db)?;
    let format = match format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Csv => Format::Csv,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match export::export(&store, run, format, &mut out) {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(crucible::store::ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => {
            r.map_err(Error::from)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
