//! `crucible import`: other tools' traces stored as a run of kind
//! `imported`, ready for `judge`, `agreement`, `labels export` and `show`.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::engine::import_run::ImportFormat;
use crucible::{RunOptions, Runner};

use super::common::DbArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub format: Format,
}

/// Where the traces come from, and what they share.
#[derive(clap::Args)]
pub struct Files {
    /// The files to import.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Judge file whose mode names and aliases map the files' labels onto
    /// the fourteen MAST modes.
    #[arg(long, default_value = "judges/mast.yaml")]
    pub judge: PathBuf,
    /// Print `{run_id, traces, duplicates, unmapped}` as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(clap::Subcommand)]
pub enum Format {
    /// MAD, the MAST study's traces: MAD_full_dataset.json (the o1 judge's
    /// labels) or MAD_human_labelled_dataset.json (three annotators).
    Mad(Files),
    /// Who&When failure-attribution traces: JSON files, or folders of them.
    WhoWhen(Files),
    /// JSONL, one trace a line: {"messages": [{role, name?, content}],
    /// "labels"?: [{code, present, rater?, agent?, turn?}], "task"?, "id"?}.
    Messages(Files),
}

pub fn exec(Args { format }: Args) -> anyhow::Result<ExitCode> {
    let (format, files) = match format {
        Format::Mad(f) => (ImportFormat::Mad, f),
        Format::WhoWhen(f) => (ImportFormat::WhoWhen, f),
        Format::Messages(f) => (ImportFormat::Messages, f),
    };
    let runner = Runner::new(RunOptions {
        db: files.db.db.clone(),
        concurrency: 1,
        handle_ctrl_c: false,
        cache: false,
        budget: Default::default(),
        fail_on_error: None,
        overrides: Vec::new(),
    });
    let outcome = runner.import(format, &files.files, &files.judge)?;
    let run = &outcome.run;
    if files.json {
        outln!(
            "{}",
            serde_json::json!({
                "run_id": run.run_id,
                "traces": run.traces,
                "duplicates": run.duplicates,
                "unmapped": outcome.unmapped,
            })
        );
    } else {
        outln!(
            "imported {} traces ({} repeated an earlier one) as run {} into {}",
            run.traces,
            run.duplicates,
            run.run_id,
            files.db.db.display()
        );
        if !outcome.unmapped.is_empty() {
            outln!(
                "labels with no MAST counterpart, kept under their own name: {}",
                outcome.unmapped.join("; ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
