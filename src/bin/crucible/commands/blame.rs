//! `crucible blame`: which agent and which turn made a run's graph runs
//! (or an imported run's traces) fail — by counterfactual replay with
//! Shapley values, or by asking a judge model all at once, step by step or
//! by binary search; the attributions stored with the run and printed
//! beside the ground truth where known, each method scored against it.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::engine::blame::{BlameRequest, COUNTERFACTUAL, RedrawArg};
use crucible::engine::blame_judges::JudgeBlameRequest;
use crucible::engine::executor::Status;
use crucible::judge::attribution::Method as JudgeMethod;
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
    /// How to attribute: `counterfactual` (replay, crucible's own runs),
    /// or a judge model asked `all-at-once`, `step-by-step` or
    /// `binary-search`; give it again for several.
    #[arg(long = "method", value_enum)]
    methods_arg: Vec<Method>,
    /// The model the judge methods ask, by name.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// A YAML file with a `models:` section (a scenario will do) to take
    /// the judge's model from (needed for imported runs).
    #[arg(long, value_name = "FILE")]
    pub models_file: Option<PathBuf>,
    /// The judge methods' prompts, instead of the built-in
    /// judges/attribution.yaml.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Fit each log into about this many tokens, keeping each message's
    /// head and tail (judge methods).
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(64..))]
    pub max_trace_tokens: Option<u64>,
    /// Attribute nothing new: score the attributions already stored
    /// (every method's, or those given by --method) against the truth.
    #[arg(long)]
    pub evaluate: bool,
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

impl Args {
    /// The methods asked for; counterfactual replay when none is.
    fn methods(&self) -> Vec<Method> {
        if self.methods_arg.is_empty() {
            vec![Method::Counterfactual]
        } else {
            self.methods_arg.clone()
        }
    }

    fn methods_given(&self) -> bool {
        !self.methods_arg.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Counterfactual,
    AllAtOnce,
    StepByStep,
    BinarySearch,
}

impl Method {
    fn judge(self) -> Option<JudgeMethod> {
        match self {
            Method::Counterfactual => None,
            Method::AllAtOnce => Some(JudgeMethod::AllAtOnce),
            Method::StepByStep => Some(JudgeMethod::StepByStep),
            Method::BinarySearch => Some(JudgeMethod::BinarySearch),
        }
    }

    fn name(self) -> &'static str {
        self.judge().map_or(COUNTERFACTUAL, JudgeMethod::as_str)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Intervention {
    Resample,
    Repair,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let db = args.db.db.clone();
    open_existing(&db)?;
    let mut methods = args.methods();
    methods.dedup();
    // `--evaluate` alone scores every method stored.
    let every_method = args.evaluate && !args.methods_given();
    let judged: Vec<JudgeMethod> = methods.iter().filter_map(|m| m.judge()).collect();
    if !args.evaluate && !judged.is_empty() && args.model.is_none() {
        anyhow::bail!(
            "the judge methods ({}) ask a model: name it with --model NAME",
            judged
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let runner = Runner::new(RunOptions {
        db: db.clone(),
        concurrency: args.concurrency as usize,
        handle_ctrl_c: true,
        cache: false,
        budget: args.budget.into(),
        fail_on_error: None,
        overrides: Vec::new(),
    });
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    let mut covered: Option<Vec<(usize, usize)>> = None;
    let mut problems: Vec<(String, u8)> = Vec::new();
    let mut summary: Option<serde_json::Value> = None;
    let mut lines: Vec<String> = Vec::new();
    if !args.evaluate && methods.contains(&Method::Counterfactual) {
        let outcome = runner.blame(&BlameRequest {
            run: args.run,
            tasks: args.tasks.clone(),
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
        covered.get_or_insert_with(Vec::new).extend(
            outcome
                .attributions
                .iter()
                .map(|a| (a.record.task_index, a.record.attempt)),
        );
        lines.push(format!(
            "replay run {}: {} replays ({} new)",
            outcome.replay_run, outcome.replays, outcome.new_replays
        ));
        summary = Some(serde_json::json!({
            "replay_run": outcome.replay_run,
            "replays": {"new": outcome.new_replays, "total": outcome.replays, "incomplete_traces": outcome.incomplete},
        }));
        let rest = "; run the same command again to make the rest";
        match outcome.status {
            Status::Interrupted => problems.push((format!("blame interrupted{rest}"), 130)),
            Status::Completed if outcome.incomplete == 0 => {}
            Status::Completed => problems.push((
                format!(
                    "{} failed graph runs still lack replays{rest}",
                    outcome.incomplete
                ),
                1,
            )),
            Status::BudgetExhausted | Status::Failed => problems.push((
                format!("blame stopped: {}{rest}", outcome.error.unwrap_or_default()),
                1,
            )),
        }
    }
    if !args.evaluate && !judged.is_empty() {
        let outcome = runner.blame_by_judge(&JudgeBlameRequest {
            run: args.run,
            tasks: &args.tasks,
            methods: &judged,
            model: args.model.as_deref().unwrap_or_default(),
            models_file: args.models_file.as_deref(),
            prompts: args.prompts.as_deref(),
            max_trace_tokens: args.max_trace_tokens.map(|t| t as usize),
        })?;
        covered
            .get_or_insert_with(Vec::new)
            .extend(outcome.traces.iter().copied());
        let a = outcome.asked;
        lines.push(format!(
            "judge: {} questions, {} unparsed replies, {} failed calls",
            a.questions, a.unparsed, a.errors
        ));
        let asked = serde_json::json!({
            "questions": a.questions, "unparsed": a.unparsed, "errors": a.errors,
        });
        match summary.as_mut() {
            Some(s) => s["judge"] = asked,
            None => summary = Some(serde_json::json!({ "judge": asked })),
        }
        let rest = "; run the same command again to ask the rest";
        if let Some(why) = outcome.stopped {
            let code = if why == "interrupted" { 130 } else { 1 };
            problems.push((format!("blame stopped: {why}{rest}"), code));
        } else if a.errors > 0 {
            problems.push((
                format!("{} judge calls failed after their retries (see `crucible show {} --calls`){rest}", a.errors, args.run),
                1,
            ));
        }
    }
    let store = open_existing(&db)?;
    let mut report =
        AttributionReport::read(&store, args.run, if every_method { &[] } else { &names })?;
    if let Some(covered) = &covered {
        report
            .attributions
            .retain(|a| covered.contains(&(a.task_index, a.attempt)));
        report.evaluation = report.evaluated();
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(serde_json::Value::Object(extra)) = summary {
            for (k, x) in extra {
                v[k] = x;
            }
        }
        outln!("{v}");
    } else {
        out!("{}", report.table());
        for l in lines {
            outln!("{l}");
        }
    }
    let code = problems.iter().map(|(_, c)| *c).max().unwrap_or(0);
    for (why, _) in problems {
        eprintln!("error: {why}");
    }
    Ok(ExitCode::from(code))
}
