//! The `crucible` command line: a thin entry over the library. Each command
//! lives in `commands/<command>.rs` with its arguments and its output.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use crucible::Error;

/// Print to standard output. When the reader has gone away (`crucible show 1
/// | head`), crucible ends quietly with status 0, as a Unix tool should,
/// instead of failing to print.
macro_rules! out {
    ($($arg:tt)*) => { $crate::emit(format_args!($($arg)*)) };
}

/// [`out!`] with a line ending.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

mod commands;

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
    command: commands::Command,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match commands::exec(cli.command) {
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
