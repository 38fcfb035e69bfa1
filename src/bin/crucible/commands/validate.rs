//! `crucible validate`: check a scenario or a judge file and report every
//! problem found.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::Runner;
use crucible::scenario::faithfulness::CounterfactualSource;

use super::common::SetArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file or judge file (YAML; a judge file has a top-level `judge:` key).
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
}

pub fn exec(Args { file, set }: Args) -> anyhow::Result<ExitCode> {
    if is_judge_file(&file) {
        let j = Runner::validate_judge(&file)?;
        outln!(
            "{}: ok (judge `{}` version {}, {} modes)",
            file.display(),
            j.name,
            j.version,
            j.modes.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let s = Runner::validate(&file, &set.set)?;
    outln!(
        "{}: ok ({} models, {} agents, {} tasks, {} strategies, {} samples planned)",
        file.display(),
        s.models.len(),
        s.agents.len(),
        s.tasks.len(),
        s.strategies.len(),
        s.planned_samples()
    );
    // How far each data set's table went: references are drawn from the
    // eligible rows only, so fewer may be used than `references` asks.
    for d in s.faithfulness.iter().flat_map(|f| &f.datasets) {
        let c = &d.counterfactuals;
        let pairs: usize = c.groups.iter().map(|g| g.members.len()).sum();
        // A generated data set's rows lack no neighbours but known features.
        let too_few = match d.source {
            CounterfactualSource::Generated => "with fewer than two known features",
            _ => "with too few neighbours",
        };
        outln!(
            "  data set {}: {} references with {pairs} {} counterfactuals, {} cases; {} rows eligible as references, {} {too_few}, {} duplicates dropped",
            d.name,
            c.groups.len(),
            d.source.as_str(),
            c.cases.len(),
            c.eligible,
            c.too_few,
            c.duplicates
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `file` is a judge file: one with a top-level `judge:` key (a
/// scenario never has one). Unreadable files are left to the scenario
/// loader, which reports them.
fn is_judge_file(file: &std::path::Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.lines().any(|l| l.starts_with("judge:")))
}
