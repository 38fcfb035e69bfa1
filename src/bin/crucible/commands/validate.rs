//! `crucible validate`: check a scenario, a judge file or an attribution
//! prompts file and report every problem found.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::Runner;
use crucible::scenario::attribution_file::AttributionFile;
use crucible::scenario::faithfulness::CounterfactualSource;

use super::common::SetArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file, judge file or attribution prompts file (YAML; the
    /// last two have a top-level `judge:` key, the prompts file also
    /// `all_at_once:`).
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
}

pub fn exec(Args { file, set }: Args) -> anyhow::Result<ExitCode> {
    if has_key(&file, "judge") && has_key(&file, "all_at_once") {
        let f = AttributionFile::load(&file).map_err(crucible::Error::Invalid)?;
        outln!(
            "{}: ok (attribution prompts `{}` version {}: all at once, step by step, binary search)",
            file.display(),
            f.name,
            f.version
        );
        return Ok(ExitCode::SUCCESS);
    }
    if has_key(&file, "judge") {
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

/// Whether `file` has the top-level `key` (a scenario never has `judge:`).
/// Unreadable files are left to the scenario loader, which reports them.
fn has_key(file: &std::path::Path, key: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| {
        t.lines()
            .any(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
    })
}
