//! `crucible export`: one record per sample of a run on stdout, as JSONL or
//! CSV.

use std::process::ExitCode;

use clap::ValueEnum;
use crucible::Error;
use crucible::report::export::{self, Format};

use super::common::{DbArg, open_existing};

#[derive(clap::Args)]
pub struct Args {
    /// Run id (see `crucible runs`).
    pub run: i64,
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

pub fn exec(Args { run, db, format }: Args) -> anyhow::Result<ExitCode> {
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
