//! `crucible judge`: judge a stored or imported run's traces with a failure
//! taxonomy after the fact, and print how often each mode was found.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::engine::judge_run::JudgeRequest;
use crucible::engine::judging::model_rater;
use crucible::report::failures::{Judged, failure_report};
use crucible::{RunOptions, Runner};

use super::common::{BudgetArgs, DbArg, SetArgs, open_existing};

#[derive(clap::Args)]
pub struct Args {
    /// Run id (see `crucible runs`).
    pub run: i64,
    /// Judge file: the taxonomy and the prompt.
    #[arg(long, default_value = "judges/mast.yaml")]
    pub judge: PathBuf,
    /// Model that judges, by name; give it again for an ensemble.
    #[arg(long = "model", value_name = "NAME", required = true)]
    pub models: Vec<String>,
    /// A YAML file with a `models:` section (a scenario will do) to take the
    /// judge's models from, instead of the run's own scenario (needed for
    /// imported runs).
    #[arg(long, value_name = "FILE")]
    pub models_file: Option<PathBuf>,
    /// Judgements per model and trace (at most 1024); the label is their majority.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub repeats: u32,
    /// Fit each transcript into about this many tokens, keeping each
    /// message's head and tail.
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(64..))]
    pub max_trace_tokens: Option<u64>,
    /// Do not ask again, with the parse error, when a reply cannot be read.
    #[arg(long)]
    pub no_reask: bool,
    /// The judge's sampling temperature, instead of its model's (network models).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// The judge's request seed, instead of its model's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most judge calls in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Bootstrap replicates over traces for the rates' intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub budget: BudgetArgs,
    #[command(flatten)]
    pub set: SetArgs,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let db = args.db.db.clone();
    open_existing(&db)?;
    let runner = Runner::new(RunOptions {
        db: db.clone(),
        concurrency: args.concurrency as usize,
        handle_ctrl_c: true,
        cache: false,
        budget: args.budget.into(),
        fail_on_error: None,
        overrides: args.set.set,
    });
    let outcome = runner.judge(&JudgeRequest {
        run_id: args.run,
        judge: &args.judge,
        models: &args.models,
        models_file: args.models_file.as_deref(),
        repeats: args.repeats as usize,
        max_trace_tokens: args.max_trace_tokens.map(|t| t as usize),
        reask: !args.no_reask,
        temperature: args.temperature,
        seed: args.seed,
    })?;
    let store = open_existing(&db)?;
    let file = &outcome.judge;
    // An ensemble's label is the judge's own; one model's, its majority.
    let rater = match outcome.models.as_slice() {
        [one] => model_rater(&file.name, one),
        _ => file.name.clone(),
    };
    let report = failure_report(
        file,
        &rater,
        Judged::read(&store, args.run, &rater)?,
        (args.bootstrap, 0),
    );
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["run_id"] = args.run.into();
        v["judged"] = serde_json::json!({
            "traces": outcome.tally.traces, "judgements": outcome.tally.judgements,
            "unparsed": outcome.tally.unparsed, "errors": outcome.tally.errors,
            "skipped": outcome.skipped, "stopped": outcome.stopped,
        });
        outln!("{v}");
    } else {
        out!("{}", report.table());
    }
    let t = outcome.tally;
    tracing::info!(
        traces = t.traces,
        judgements = t.judgements,
        unparsed = t.unparsed,
        skipped = outcome.skipped,
        "judged run {}",
        args.run
    );
    if let Some(why) = &outcome.stopped {
        let what = if outcome.budget_exhausted {
            "; run the same command with a larger budget to judge the rest"
        } else {
            "; run the same command again to judge the rest"
        };
        eprintln!("error: judging stopped: {why}{what}");
        return Ok(ExitCode::from(if why == "interrupted" { 130 } else { 1 }));
    }
    if t.errors > 0 {
        eprintln!(
            "error: {} judge calls failed after their retries (see `crucible show {} --calls`); run the same command again to retry them",
            t.errors, args.run
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
