//! `crucible run`: validate a scenario and run it (or go on with a stopped
//! run of it); print the summary. Also the shared end of `resume` and
//! `replay`, which execute a stored run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crucible::engine::executor::Progress;
use crucible::scenario::budget::Budget;
use crucible::{RunOptions, Runner};

use super::common::{BudgetArgs, DbArg, RunArgs, SetArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML).
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Reuse recorded responses (same model settings, messages and sample
    /// numbers) from any run in the database instead of calling the model.
    #[arg(long)]
    pub cache: bool,
    /// Continue this interrupted run of FILE (the file must not have changed).
    #[arg(long, value_name = "RUN")]
    pub resume: Option<i64>,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        file,
        set,
        run: args,
        budget,
        cache,
        resume,
    } = args;
    let source = match resume {
        Some(run) => Source::Resume {
            run,
            file: Some(file),
        },
        None => Source::File(file),
    };
    run(source, args, budget.into(), cache, set.set)
}

/// What `run` executes: a scenario file, or a stored run from its recordings.
pub enum Source {
    File(PathBuf),
    Replay { run: i64, strict: bool },
    Resume { run: i64, file: Option<PathBuf> },
}

pub fn run(
    source: Source,
    args: RunArgs,
    budget: Budget,
    cache: bool,
    overrides: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let RunArgs {
        db: DbArg { db },
        concurrency,
        json,
        fail_on_error,
    } = args;
    let runner = Runner::new(RunOptions {
        db: db.clone(),
        concurrency: concurrency as usize,
        handle_ctrl_c: true,
        cache,
        budget,
        fail_on_error,
        overrides,
    });
    let progress = runner.progress.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut bar_thread = None;
    let on_start = |scenario: &crucible::scenario::Scenario, run_id: i64| {
        tracing::info!(run_id, "run started");
        if std::io::stderr().is_terminal() {
            let total = scenario.planned_samples();
            let tasks = scenario.tasks.len();
            let done = done.clone();
            let progress = progress.clone();
            bar_thread = Some(std::thread::spawn(move || {
                draw_progress(progress, done, total, tasks)
            }));
        }
    };
    let summary = match source {
        Source::File(file) => runner.run(&file, on_start),
        Source::Replay { run, strict } => runner.replay(run, strict, on_start),
        Source::Resume { run, file } => runner.resume(run, file.as_deref(), on_start),
    };
    done.store(true, Ordering::Relaxed);
    if let Some(t) = bar_thread {
        let _ = t.join();
    }
    let summary = summary?;
    let store = super::common::open_existing(&db)?;
    super::show::print_summary(&store, &summary, json)?;
    Ok(match summary.status.as_str() {
        "completed" => ExitCode::SUCCESS,
        "interrupted" => {
            eprintln!(
                "run {} interrupted; finished samples are saved",
                summary.run_id
            );
            ExitCode::from(130)
        }
        "budget_exhausted" => {
            eprintln!(
                "run {id} stopped at its budget ({}); finished tasks are saved and summarized. \
                 To go on, raise the budget: crucible resume {id} --max-requests/--max-tokens/--max-cost-usd ...",
                summary.error.as_deref().unwrap_or("a cap was reached"),
                id = summary.run_id
            );
            ExitCode::from(1)
        }
        status => {
            let why = summary.error.as_deref().unwrap_or("no reason recorded");
            eprintln!("run {} {status}: {why}", summary.run_id);
            ExitCode::from(1)
        }
    })
}

fn draw_progress(
    progress: Arc<Progress>,
    done: Arc<std::sync::atomic::AtomicBool>,
    total: u64,
    tasks: usize,
) {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} samples · {msg} · {per_sec} · ETA {eta}",
        )
        .expect("valid template"),
    );
    while !done.load(Ordering::Relaxed) {
        bar.set_position(progress.samples.load(Ordering::Relaxed));
        let waiting = progress.waiting.load(Ordering::Relaxed);
        let mut msg = format!("{}/{tasks} tasks", progress.tasks.load(Ordering::Relaxed));
        if waiting > 0 {
            msg.push_str(&format!(" · {waiting} waiting on rate limits/retries"));
        }
        bar.set_message(msg);
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}
