//! `crucible schema`: the JSON Schema of the scenario format.

use std::process::ExitCode;

pub fn exec() -> anyhow::Result<ExitCode> {
    outln!(
        "{}",
        serde_json::to_string_pretty(&crucible::scenario::spec::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}
