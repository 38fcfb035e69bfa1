//! `crucible plot`: SVG charts of a stored run's curves, and of its failure
//! judge's labels when it has some, one file per chart.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::report::failures::{Judged, failure_report};
use crucible::report::plot::{
    default_rater, write_failure_plots, write_faithfulness_plot, write_plots,
    write_prediction_plots,
};
use crucible::scenario::judge_file::JudgeFile;
use crucible::store::TRUTH_RATER;

use super::common::{AnalysisArgs, PredictArgs, StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Directory for the SVG files (created if missing).
    #[arg(long, default_value = "plots")]
    pub out: PathBuf,
    /// Judge file whose modes and categories the failure charts show; read
    /// only when there are failure charts to draw (the run has labels of a
    /// rater other than `injected`, and one is chosen).
    #[arg(long, value_name = "FILE", default_value = "judges/mast.yaml")]
    pub judge: PathBuf,
    /// Rater whose labels the failure charts show. Default: the first, in
    /// sorted order, that is not `injected`, one repeat (`…#N`) or an
    /// import's (`mad:…`, `import…`); with none, no failure charts.
    #[arg(long, value_name = "NAME")]
    pub rater: Option<String>,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub predict: PredictArgs,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        out,
        judge,
        rater,
        analysis,
        predict,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let db = &db.db;
    // A run with no pools (an imported one) has no curves, and no charts of them.
    let analyzed = analysis.analyze(db, run)?;
    let mut written = write_plots(&analyzed, &out)?;
    if predict.theory {
        let prediction = predict.predict(db, &analyzed, analysis.confidence)?;
        written.extend(write_prediction_plots(&prediction, &out)?);
    }
    let store = open_existing(db)?;
    if store.is_faithfulness_run(run)? {
        written.extend(faithfulness_plot(&store, run, &analysis, &out)?);
    }
    let raters = store.label_table(run)?.raters;
    let hint = match chosen_rater(run, &raters, rater.as_deref())? {
        Rater::Chosen(rater) => {
            let report = failure_report(
                &JudgeFile::load(&judge).map_err(crucible::Error::Invalid)?,
                rater,
                Judged::read(&store, run, rater)?,
                (analysis.bootstrap, 0),
            );
            written.extend(write_failure_plots(&report, &out)?);
            String::new()
        }
        Rater::NoLabels => String::new(),
        Rater::NoDefault(raters) => format!(
            "; its labels' raters ({}) are charted only when named: pass --rater NAME",
            raters.join(", ")
        ),
    };
    anyhow::ensure!(
        !written.is_empty(),
        "run {run} in {} has no task with a full pool and an expected answer; nothing to plot{hint}",
        db.display()
    );
    for path in written {
        outln!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The NSG of each explained model of a faithfulness run, against its
/// simulated explainer's faithfulness when every model has one.
fn faithfulness_plot(
    store: &crucible::store::Store,
    run: i64,
    analysis: &AnalysisArgs,
    out: &std::path::Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let report = crucible::report::faithfulness::stored_report(
        store,
        run,
        &crucible::stats::faithfulness::Settings {
            replicates: analysis.bootstrap,
            seed: 0,
            level: analysis.confidence,
        },
    )?;
    let scenario = crucible::Runner::stored_scenario(store.path(), run)?;
    let level_of = |agent: &str| {
        let a = scenario.agents.iter().find(|a| a.name == agent)?;
        match &scenario.models[a.model].kind {
            crucible::scenario::ModelKind::Simulated(m) => {
                m.explainer.as_ref().map(|e| e.faithfulness)
            }
            _ => None,
        }
    };
    let mut points = report.nsg_points(|r| level_of(&r.model));
    points.sort_by(|a, b| {
        a.faithfulness
            .partial_cmp(&b.faithfulness)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let title = format!(
        "run {run} · NSG of each explained model ({} pairs)",
        report.pooled.n_pairs
    );
    Ok(write_faithfulness_plot(&title, &points, out)?)
}

/// Whose labels the failure charts show.
enum Rater<'a> {
    Chosen(&'a str),
    /// No failure charts: the run has no labels, or only the injected truth's.
    NoLabels,
    /// No failure charts: no rater is charted unless named (these, sorted).
    NoDefault(Vec<&'a str>),
}

/// `asked` if the run has labels of it (an error if not), else the default
/// rater of [`default_rater`].
fn chosen_rater<'a>(
    run: i64,
    raters: &'a [String],
    asked: Option<&'a str>,
) -> anyhow::Result<Rater<'a>> {
    let mut raters: Vec<&str> = raters.iter().map(String::as_str).collect();
    raters.sort_unstable();
    if let Some(asked) = asked {
        anyhow::ensure!(
            raters.contains(&asked),
            "run {run} has no labels of rater `{asked}`{}",
            if raters.is_empty() {
                "; it has no labels".to_owned()
            } else {
                format!("; its raters: {}", raters.join(", "))
            }
        );
        return Ok(Rater::Chosen(asked));
    }
    Ok(match default_rater(raters.iter().copied()) {
        Some(r) => Rater::Chosen(r),
        None if raters.iter().all(|&r| r == TRUTH_RATER) => Rater::NoLabels,
        None => Rater::NoDefault(raters),
    })
}
