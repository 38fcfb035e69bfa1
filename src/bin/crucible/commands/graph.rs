//! `crucible graph`: print a scenario's agent graph as an outline of its
//! edges, or as Graphviz DOT.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::Runner;

use super::common::SetArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML) with a `graph` section.
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
    /// Print Graphviz DOT (render with `dot -Tsvg`).
    #[arg(long)]
    pub dot: bool,
}

pub fn exec(Args { file, set, dot }: Args) -> anyhow::Result<ExitCode> {
    let s = Runner::validate(&file, &set.set)?;
    let Some(graph) = &s.graph else {
        return Err(crucible::Error::Setup(format!(
            "{}: the scenario has no `graph` section",
            file.display()
        ))
        .into());
    };
    let agents: Vec<&str> = s.agents.iter().map(|a| a.name.as_str()).collect();
    let verifiers: Vec<&str> = s.verifiers.iter().map(|v| v.name.as_str()).collect();
    if dot {
        out!("{}", graph.dot(&s.name, &agents, &verifiers));
    } else {
        out!("{}", graph.outline(&agents, &verifiers));
    }
    Ok(ExitCode::SUCCESS)
}
