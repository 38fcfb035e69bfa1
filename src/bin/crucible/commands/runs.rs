//! `crucible runs`: the runs a database holds, as a table or JSON.

use std::process::ExitCode;

use super::common::{DbArg, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(Args { db, json }: Args) -> anyhow::Result<ExitCode> {
    let store = open_existing(&db.db)?;
    let runs = store.list_runs()?;
    if json {
        outln!("{}", serde_json::to_string(&runs)?);
    } else {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(["id", "name", "status", "tasks", "samples", "seconds"]);
        for r in runs {
            let secs = r
                .finished_at
                .map(|f| format!("{:.1}", f - r.started_at))
                .unwrap_or_else(|| "-".into());
            t.add_row([
                r.id.to_string(),
                r.name,
                r.status,
                r.tasks.to_string(),
                r.samples.to_string(),
                secs,
            ]);
        }
        outln!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
