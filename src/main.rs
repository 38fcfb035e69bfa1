//! The `crucible` command line: parses arguments and calls the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use crucible::executor::Progress;
use crucible::export::{self, Format};
use crucible::store::Store;
use crucible::{Error, RunOptions, Runner};

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

#[derive(Subcommand)]
enum Command {
    /// Validate and run a scenario; print a summary table.
    Run {
        /// Scenario file (YAML).
        file: PathBuf,
        #[command(flatten)]
        db: DbArg,
        /// Most model calls in flight at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: u32,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Check a scenario and report every problem found.
    Validate {
        /// Scenario file (YAML).
        file: PathBuf,
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
            db,
            concurrency,
            json,
        } => run(file, db.db, concurrency as usize, json),
        Command::Validate { file } => {
            let s = Runner::validate(&file)?;
            println!(
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
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crucible::spec::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { db, json } => {
            let store = open_existing(&db.db)?;
            let runs = store.list_runs()?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
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
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { run, db, json } => {
            let store = open_existing(&db.db)?;
            let summary = store.run_summary(run)?;
            if json {
                println!("{}", summary.json(&db.db));
            } else {
                println!("{}", summary.table());
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

fn run(file: PathBuf, db: PathBuf, concurrency: usize, json: bool) -> anyhow::Result<ExitCode> {
    let runner = Runner::new(RunOptions {
        db: db.clone(),
        concurrency,
        handle_ctrl_c: true,
    });
    let progress = runner.progress.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut bar_thread = None;
    let summary = runner.run(&file, |scenario, run_id| {
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
    });
    done.store(true, Ordering::Relaxed);
    if let Some(t) = bar_thread {
        let _ = t.join();
    }
    let summary = summary?;
    if json {
        println!("{}", summary.json(&db));
    } else {
        println!("{}", summary.table());
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
                "run {} stopped at its budget; finished tasks are saved and summarized",
                summary.run_id
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
        bar.set_message(format!(
            "{}/{tasks} tasks",
            progress.tasks.load(Ordering::Relaxed)
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}
