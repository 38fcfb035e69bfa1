//! `crucible agreement`: how far a run's raters — judges (each model, each
//! repeat, their majorities), human annotators, injected ground truth —
//! agree, per failure mode and pooled, with bootstrap intervals; and each
//! judge's rates corrected for its measured error rates.

use std::process::ExitCode;

use crucible::Error;
use crucible::report::agreement::{AgreementRequest, agreement, agreement_text};

use super::common::{StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Raters to compare (comma-separated); default: every rater of the run,
    /// and `humans`, the human annotators' majority, when there are two or more.
    #[arg(long, value_delimiter = ',')]
    pub raters: Vec<String>,
    /// The rater the others are scored against; default: `injected` (ground
    /// truth) when the run has it, else `humans`.
    #[arg(long)]
    pub reference: Option<String>,
    /// Raters whose rates to correct (Rogan–Gladen) by their sensitivity and
    /// specificity against the reference (comma-separated); default: every
    /// other rater, when the reference labels only some traces.
    #[arg(long, value_delimiter = ',')]
    pub correct: Option<Vec<String>>,
    /// Keep the reference's labels on this share of the traces only (drawn
    /// from the seed), as a calibration subset; the rest are corrected.
    #[arg(long, value_name = "SHARE", value_parser = share)]
    pub calibrate: Option<f64>,
    /// Bootstrap replicates over traces (0: no intervals).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap and of the calibration subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Coverage of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = share)]
    pub confidence: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "expected a number between 0 and 1, such as 0.2; found `{s}`"
        )),
    }
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let StoredRun { run, db } = &args.stored;
    let store = open_existing(&db.db)?;
    let labels = store.label_table(*run)?;
    if labels.rows.is_empty() {
        return Err(Error::Setup(format!(
            "run {run} in {} has no labels: judge it (`crucible judge {run}`), import labelled traces, or run a scenario whose agents inject failures",
            db.db.display()
        ))
        .into());
    }
    let report = agreement(
        labels,
        &AgreementRequest {
            raters: args.raters,
            reference: args.reference,
            correct: args.correct,
            calibrate: args.calibrate,
            replicates: args.bootstrap,
            seed: args.seed,
            level: args.confidence,
        },
    )
    .map_err(|e| Error::Setup(format!("run {run}: {e}")))?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        out!("{}", agreement_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}
