//! `crucible blame`: which agent and which turn made a run's graph runs
//! fail, by counterfactual replay with Shapley values; the attributions
//! stored with the run and printed beside the ground truth where known.

use std::process::ExitCode;

use crucible::engine::blame::{BlameRequest, COUNTERFACTUAL, RedrawArg};
use crucible::engine::executor::Status;
use crucible::report::attribution::AttributionReport;
use crucible::{RunOptions, Runner};

use super::common::{BudgetArgs, DbArg, open_existing};

#[derive(clap::Args)]
pub struct Args {
    /// Run id (see `crucible runs`).
    pub run: i64,
    /// Only this task's graph runs (its id); give it again for more.
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<String>,
    /// How an intervened turn is replayed: `resample` draws it afresh (a
    /// new seed); `repair` draws it as before without the failure a
    /// simulated agent was picked to act out.
    #[arg(long, value_enum, default_value_t = Intervention::Resample)]
    pub intervention: Intervention,
    /// Replays of each coalition when every coalition is replayed (few
    /// players); `repair` needs one.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub replays: u32,
    /// Random orders of the players, each walked both ways (paired), when
    /// there are too many players to replay every coalition.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub samples: u32,
    /// Make at most this many replays now; the same command goes on later.
    #[arg(long, value_name = "N")]
    pub max_replays: Option<usize>,
    /// Call no model: every replayed call must be in the recordings of the
    /// run or of earlier replays of it.
    #[arg(long)]
    pub strict: bool,
    /// Start a new replay run even when one for the same plan exists (by
    /// default it is resumed and its replays reused).
    #[arg(long)]
    pub fresh: bool,
    /// Most model calls in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Print one JSON object: `{attributions: [...], evaluation: [...]}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Intervention {
    Resample,
    Repair,
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
        overrides: Vec::new(),
    });
    let outcome = runner.blame(&BlameRequest {
        run: args.run,
        tasks: args.tasks,
        redraw: match args.intervention {
            Intervention::Resample => RedrawArg::Resample,
            Intervention::Repair => RedrawArg::Repair,
        },
        replays: args.replays,
        samples: args.samples,
        max_replays: args.max_replays,
        strict: args.strict,
        fresh: args.fresh,
    })?;
    let store = open_existing(&db)?;
    let mut report = AttributionReport::read(&store, args.run, &[COUNTERFACTUAL])?;
    // Only the graph runs this plan covers.
    report.attributions.retain(|a| {
        outcome
            .attributions
            .iter()
            .any(|b| (b.record.task_index, b.record.attempt) == (a.task_index, a.attempt))
    });
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["replay_run"] = outcome.replay_run.into();
        v["replays"] = serde_json::json!({
            "new": outcome.new_replays, "total": outcome.replays, "incomplete_traces": outcome.incomplete,
        });
        outln!("{v}");
    } else {
        out!("{}", report.table());
        outln!(
            "replay run {}: {} replays ({} new)",
            outcome.replay_run,
            outcome.replays,
            outcome.new_replays
        );
    }
    let rest = "; run the same command again to make the rest";
    match outcome.status {
        Status::Interrupted => {
            eprintln!("error: blame interrupted{rest}");
            Ok(ExitCode::from(130))
        }
        Status::Completed if outcome.incomplete == 0 => Ok(ExitCode::SUCCESS),
        Status::Completed => {
            eprintln!(
                "error: {} failed graph runs still lack replays{rest}",
                outcome.incomplete
            );
            Ok(ExitCode::from(1))
        }
        Status::BudgetExhausted | Status::Failed => {
            let why = outcome.error.unwrap_or_default();
            eprintln!("error: blame stopped: {why}{rest}");
            Ok(ExitCode::from(1))
        }
    }
}
