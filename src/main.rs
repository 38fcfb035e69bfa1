//! The `crucible` command line: parses arguments and calls the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use crucible::engine::executor::Progress;
use crucible::report::export::{self, Format};
use crucible::scenario::budget::Budget;
use crucible::store::Store;
use crucible::{Error, RunOptions, Runner};

/// Print to standard output. When the reader has gone away (`crucible show 1
/// | head`), crucible ends quietly with status 0, as a Unix tool should,
/// instead of failing to print.
macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

/// [`out!`] with a line ending.
macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

fn emit(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "crucible",
    version,
    about = "Experiments on LLM agents and test-time scaling, traced to SQLite"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DbArg {
    /// Trace database (SQLite).
    #[arg(long, env = "CRUCIBLE_DB", default_value = "crucible.db")]
    db: PathBuf,
}

/// Options of every command that executes a run.
#[derive(clap::Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    db: DbArg,
    /// Most model calls in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// How `analyze` and `plot` compute curves.
#[derive(clap::Args)]
struct AnalysisArgs {
    /// Bootstrap replicates over tasks for the intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Coverage of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = coverage)]
    confidence: f64,
    /// Random orders per pool for weighted-majority estimates (pools
    /// larger than 12 samples; smaller ones are enumerated exactly).
    /// Default: enough for a standard error under 0.001 on each mean.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    permutations: Option<u64>,
}

impl AnalysisArgs {
    fn analyze(
        &self,
        db: &std::path::Path,
        run: i64,
    ) -> anyhow::Result<crucible::report::analysis::Analysis> {
        let store = open_existing(db)?;
        let options = crucible::report::analysis::AnalyzeOptions {
            bootstrap: self.bootstrap,
            permutations: self.permutations.map(|p| p as usize),
            confidence: self.confidence,
        };
        Ok(crucible::report::analysis::analyze(&store, run, &options)?)
    }
}

/// Caps that replace the scenario's `budget:` for this invocation.
#[derive(clap::Args, Default)]
struct BudgetArgs {
    /// Stop before making more than N model calls in all (this run's earlier sessions included).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: Option<u64>,
    /// Stop before spending more than N tokens (input + output) in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_tokens: Option<u64>,
    /// Stop before spending more than USD in all (models need a `price`).
    #[arg(long, value_name = "USD", value_parser = positive_dollars)]
    max_cost_usd: Option<f64>,
}

impl From<BudgetArgs> for Budget {
    fn from(a: BudgetArgs) -> Budget {
        Budget {
            max_requests: a.max_requests,
            max_tokens: a.max_tokens,
            max_cost_usd: a.max_cost_usd,
        }
    }
}

fn coverage(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "expected a coverage between 0 and 1, such as 0.95; found `{s}`"
        )),
    }
}

fn positive_dollars(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!(
            "expected a positive number of dollars, found `{s}`"
        )),
    }
}

/// `--set PATH=VALUE`, repeatable.
#[derive(clap::Args)]
struct SetArgs {
    /// Override one value of the scenario, e.g. `--set
    /// models.solver.provider=openai` or `--set 'strategies.0.n=[1, 4]'`
    /// (VALUE is YAML; list items by index). Validated like the file;
    /// stored with the run.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = crucible::scenario::overrides::parse_argument)]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and run a scenario; print a summary table.
    Run {
        /// Scenario file (YAML).
        file: PathBuf,
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        budget: BudgetArgs,
        /// Reuse recorded responses (same model settings, messages and sample
        /// numbers) from any run in the database instead of calling the model.
        #[arg(long)]
        cache: bool,
        /// Continue this interrupted run of FILE (the file must not have changed).
        #[arg(long, value_name = "RUN")]
        resume: Option<i64>,
    },
    /// Continue an interrupted, failed or budget-stopped run from its stored scenario.
    Resume {
        /// Run id (see `crucible runs`).
        #[arg(value_name = "RUN")]
        id: i64,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Re-execute a stored run from its recorded responses; print its summary.
    Replay {
        /// Run id (see `crucible runs`).
        #[arg(value_name = "RUN")]
        id: i64,
        #[command(flatten)]
        run: RunArgs,
        /// A response that was not recorded is an error, never a live call.
        #[arg(long)]
        strict: bool,
    },
    /// Check a scenario and report every problem found.
    Validate {
        /// Scenario file (YAML).
        file: PathBuf,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Print a scenario's agent graph: its edges, or Graphviz DOT.
    Graph {
        /// Scenario file (YAML) with a `graph` section.
        file: PathBuf,
        #[command(flatten)]
        set: SetArgs,
        /// Print Graphviz DOT (render with `dot -Tsvg`).
        #[arg(long)]
        dot: bool,
    },
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// List the runs in the database.
    Runs {
        #[command(flatten)]
        db: DbArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a stored run's summary.
    Show {
        /// Run id (see `crucible runs`).
        run: i64,
        #[command(flatten)]
        db: DbArg,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Print the graph runs of this task (its id) as chat transcripts.
        #[arg(long, value_name = "TASK")]
        transcript: Option<String>,
    },
    /// Serve the scenario's simulated models over an OpenAI-compatible API.
    SimServer {
        /// Scenario file (YAML) defining simulated models, agents and tasks.
        file: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on (0 picks a free one; the address is printed).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Latency per request in ms: MEAN or MEAN,SD (default: the models' own).
        #[arg(long, value_parser = parse_latency)]
        latency_ms: Option<(f64, f64)>,
        /// Share of requests answered 429 with Retry-After.
        #[arg(long, default_value_t = 0.0)]
        fail_429: f64,
        /// Retry-After seconds sent with 429.
        #[arg(long, default_value_t = 1.0)]
        retry_after: f64,
        /// Share of requests answered 500.
        #[arg(long, default_value_t = 0.0)]
        fail_500: f64,
        /// Share of requests answered 503.
        #[arg(long, default_value_t = 0.0)]
        fail_503: f64,
        /// Share of requests whose connection is cut after the headers.
        #[arg(long, default_value_t = 0.0)]
        reset: f64,
        /// Share of requests that stall for --stall-ms before answering.
        #[arg(long, default_value_t = 0.0)]
        stall: f64,
        #[arg(long, default_value_t = 30_000)]
        stall_ms: u64,
        /// Share of requests answered with malformed JSON.
        #[arg(long, default_value_t = 0.0)]
        malformed: f64,
        /// Share of requests answered with truncated JSON.
        #[arg(long, default_value_t = 0.0)]
        truncated: f64,
        /// Reject `n` above this (llama.cpp rejects n above its slot count).
        #[arg(long)]
        max_n: Option<usize>,
        /// Seed for fault draws.
        #[arg(long, default_value_t = 0)]
        fault_seed: u64,
        /// Require clients to send this key (`Authorization: Bearer KEY`).
        #[arg(long, env = "CRUCIBLE_SIM_SERVER_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Scaling curves from a stored run's samples, with no model calls:
    /// accuracy at every n for majority, pass@k, best-of-n and weighted
    /// majority, with bootstrap intervals; p̂ and Δ̂ per task.
    Analyze {
        /// Run id (see `crucible runs`).
        run: i64,
        #[command(flatten)]
        db: DbArg,
        /// Print one JSON object (every n, every task) instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// Write SVG charts of a run's curves (accuracy vs n and vs tokens, per
    /// agent, with interval bands) into a directory.
    Plot {
        /// Run id (see `crucible runs`).
        run: i64,
        #[command(flatten)]
        db: DbArg,
        /// Directory for the SVG files (created if missing).
        #[arg(long, default_value = "plots")]
        out: PathBuf,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// Write one record per sample of a run to stdout.
    Export {
        /// Run id (see `crucible runs`).
        run: i64,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let code = match e.downcast_ref::<Error>() {
                Some(Error::Invalid(diags)) => {
                    let mut err = std::io::stderr().lock();
                    for d in diags {
                        let _ = writeln!(err, "{d}");
                    }
                    let _ = writeln!(err, "{} error(s); nothing was run", diags.len());
                    return ExitCode::from(2);
                }
                Some(e) => e.exit_code() as u8,
                None => 1,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let indicatif = tracing_indicatif::IndicatifLayer::new();
    let filter = EnvFilter::try_from_env("CRUCIBLE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .without_time()
                .with_writer(indicatif.get_stderr_writer()),
        )
        .with(indicatif)
        .try_init();
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            file,
            set,
            run: args,
            budget,
            cache,
            resume,
        } => {
            let source = match resume {
                Some(run) => Source::Resume {
                    run,
                    file: Some(file),
                },
                None => Source::File(file),
            };
            run(source, args, budget.into(), cache, set.set)
        }
        Command::Resume {
            id,
            run: args,
            budget,
        } => run(
            Source::Resume {
                run: id,
                file: None,
            },
            args,
            budget.into(),
            false,
            Vec::new(),
        ),
        Command::Replay {
            id,
            run: args,
            strict,
        } => run(
            Source::Replay { run: id, strict },
            args,
            Budget::default(),
            false,
            Vec::new(),
        ),
        Command::Validate { file, set } => {
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { file, set, dot } => {
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
        Command::SimServer {
            file,
            host,
            port,
            latency_ms,
            fail_429,
            retry_after,
            fail_500,
            fail_503,
            reset,
            stall,
            stall_ms,
            malformed,
            truncated,
            max_n,
            fault_seed,
            api_key,
        } => {
            let scenario = Arc::new(Runner::validate(&file, &[])?);
            let faults = crucible::model::sim_server::Faults {
                latency_ms,
                rate_429: fail_429,
                retry_after,
                rate_500: fail_500,
                rate_503: fail_503,
                rate_reset: reset,
                rate_stall: stall,
                stall_ms,
                rate_malformed: malformed,
                rate_truncated: truncated,
                max_n,
                seed: fault_seed,
                api_key,
            };
            let total = fail_429 + fail_500 + fail_503 + reset + stall + malformed + truncated;
            anyhow::ensure!(
                (0.0..=1.0).contains(&total),
                "fault rates add up to {total}; they must add up to at most 1"
            );
            let server = Arc::new(crucible::model::sim_server::SimServer::new(
                scenario, faults,
            ));
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                let addr = listener.local_addr()?;
                outln!("listening on http://{addr}/v1");
                std::io::stdout().flush()?;
                tokio::select! {
                    r = crucible::model::sim_server::serve(listener, server) => r.context("serving")?,
                    _ = tokio::signal::ctrl_c() => {}
                }
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&crucible::scenario::spec::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { db, json } => {
            let store = open_existing(&db.db)?;
            let runs = store.list_runs()?;
            if json {
                outln!("{}", serde_json::to_string(&runs)?);
            } else {
                let mut t = comfy_table::Table::new();
                t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
                t.set_header(["id", "name", "status", "tasks", "samples", "seconds"]);
                for r in runs {
                    let secs = r
                        .finished_at
                        .map(|f| format!("{:.1}", f - r.started_at))
                        .unwrap_or_else(|| "-".into());
                    t.add_row([
                        r.id.to_string(),
                        r.name,
                        r.status,
                        r.tasks.to_string(),
                        r.samples.to_string(),
                        secs,
                    ]);
                }
                outln!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            run,
            db,
            json,
            transcript: Some(task),
        } => {
            let store = open_existing(&db.db)?;
            let runs = store.transcript(run, &task)?;
            if runs.is_empty() {
                let ids: Vec<String> = store
                    .run_tasks(run)?
                    .tasks
                    .into_iter()
                    .map(|t| t.0)
                    .collect();
                let why = if ids.contains(&task) {
                    format!(
                        "task `{task}` of run {run} has no graph runs: the scenario has no `graph`, or the run stopped before one of this task's finished"
                    )
                } else {
                    format!(
                        "run {run} has no task `{task}` (its {} task(s) run from `{}` to `{}`){}",
                        ids.len(),
                        ids.first().map_or("", String::as_str),
                        ids.last().map_or("", String::as_str),
                        crucible::scenario::diagnostic::did_you_mean(
                            &task,
                            ids.iter().map(String::as_str)
                        ),
                    )
                };
                return Err(Error::Setup(format!("{}: {why}", db.db.display())).into());
            }
            if json {
                outln!("{}", serde_json::to_string(&transcript_json(&runs))?);
            } else {
                out!("{}", transcript_text(run, &task, &runs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { run, db, json, .. } => {
            let store = open_existing(&db.db)?;
            let summary = store.run_summary(run)?;
            if json {
                outln!("{}", summary.json(&db.db));
            } else {
                outln!("{}", summary.table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze {
            run,
            db,
            json,
            analysis,
        } => {
            let analysis = analysis.analyze(&db.db, run)?;
            if json {
                outln!("{}", serde_json::to_string(&analysis)?);
            } else {
                out!("{}", analysis.table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot {
            run,
            db,
            out,
            analysis,
        } => {
            let analysis = analysis.analyze(&db.db, run)?;
            let written = crucible::report::plot::write_plots(&analysis, &out)?;
            anyhow::ensure!(
                !written.is_empty(),
                "run {run} in {} has no task with a full pool and an expected answer; nothing to plot",
                db.db.display()
            );
            for path in written {
                outln!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { run, db, format } => {
            let store = open_existing(&db.db)?;
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match export::export(&store, run, format, &mut out) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(crucible::store::ExportError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => {
                    r.map_err(Error::from)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_latency(s: &str) -> Result<(f64, f64), String> {
    let mut parts = s.split(',').map(|p| p.trim().parse::<f64>());
    let mean = parts
        .next()
        .and_then(Result::ok)
        .ok_or("expected MEAN or MEAN,SD in ms")?;
    let sd = parts
        .next()
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(0.0);
    if mean < 0.0 || sd < 0.0 {
        return Err("latency must not be negative".into());
    }
    Ok((mean, sd))
}

/// Open a database that must already exist (reading commands never create one).
fn open_existing(path: &std::path::Path) -> anyhow::Result<Store> {
    if !path.exists() {
        anyhow::bail!(
            "no database at {}; run a scenario first or pass --db (or set CRUCIBLE_DB)",
            path.display()
        );
    }
    Store::open(path)
        .map_err(Error::from)
        .context("opening the trace database")
}

/// What `run` executes: a scenario file, or a stored run from its recordings.
enum Source {
    File(PathBuf),
    Replay { run: i64, strict: bool },
    Resume { run: i64, file: Option<PathBuf> },
}

fn run(
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
    } = args;
    let runner = Runner::new(RunOptions {
        db: db.clone(),
        concurrency: concurrency as usize,
        handle_ctrl_c: true,
        cache,
        budget,
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
    if json {
        outln!("{}", summary.json(&db));
    } else {
        outln!("{}", summary.table());
    }
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

/// Graph runs as chat transcripts: each message's turn, node, sender and
/// where it went, then its text indented.
fn transcript_text(run: i64, task: &str, runs: &[crucible::store::Transcript]) -> String {
    let mut out = format!("run {run} · task {task} · {} graph run(s)\n", runs.len());
    for r in runs {
        out += &format!(
            "\n── graph run {} · {} · {} turns\n",
            r.attempt, r.ending, r.turns
        );
        for (i, m) in r.messages.iter().enumerate() {
            let who = match (&m.sender, m.summary) {
                (Some(s), true) => format!("{s} (summary)"),
                (Some(s), false) => s.to_string(),
                (None, _) => "(joined)".into(),
            };
            let to = if m.receivers.is_empty() {
                String::new()
            } else {
                format!(" → {}", m.receivers.join(", "))
            };
            let answer = if r.final_message == Some(i) {
                "  ◀ answer"
            } else {
                ""
            };
            out += &format!("[{i}] turn {} · {} · {who}{to}{answer}\n", m.turn, m.node);
            for (_, code, name) in r.injected.iter().filter(|f| f.0 == i) {
                out += &format!("    ⚠ injected {code} {name}\n");
            }
            for line in m.text.lines() {
                out += &format!("    {line}\n");
            }
        }
    }
    out
}

fn transcript_json(runs: &[crucible::store::Transcript]) -> serde_json::Value {
    serde_json::Value::Array(
        runs.iter()
            .map(|r| {
                serde_json::json!({
                    "attempt": r.attempt,
                    "ending": r.ending,
                    "turns": r.turns,
                    "final_message": r.final_message,
                    "messages": r.messages.iter().map(|m| serde_json::json!({
                        "turn": m.turn,
                        "node": m.node,
                        "sender": m.sender.as_deref(),
                        "reply_to": m.reply_to,
                        "receivers": m.receivers,
                        "summary": m.summary,
                        "text": m.text,
                    })).collect::<Vec<_>>(),
                    "injected": r.injected.iter().map(|(position, code, name)| serde_json::json!({
                        "message": position,
                        "mode": code,
                        "name": name,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
