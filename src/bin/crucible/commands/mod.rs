//! One file per command, each owning its arguments and its output.

pub mod agreement;
pub mod analyze;
pub mod blame;
pub mod common;
pub mod export;
pub mod faithfulness;
pub mod graph;
pub mod import;
pub mod judge;
pub mod labels;
pub mod plot;
pub mod replay;
pub mod report;
pub mod resume;
pub mod run;
pub mod runs;
pub mod schema;
pub mod show;
pub mod sim_server;
pub mod theory;
pub mod validate;
pub mod view;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Validate and run a scenario; print a summary table.
    Run(run::Args),
    /// Continue an interrupted, failed or budget-stopped run from its stored scenario.
    Resume(resume::Args),
    /// Re-execute a stored run from its recorded responses; print its summary.
    Replay(replay::Args),
    /// Check a scenario and report every problem found.
    Validate(validate::Args),
    /// Print a scenario's agent graph: its edges, or Graphviz DOT.
    Graph(graph::Args),
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// List the runs in the database.
    Runs(runs::Args),
    /// Print a stored run's summary.
    Show(show::Args),
    /// Serve the scenario's simulated models over an OpenAI-compatible API.
    SimServer(sim_server::Args),
    /// Scaling curves from a stored run's samples, with no model calls:
    /// accuracy at every n for majority, pass@k, best-of-n and weighted
    /// majority, with bootstrap intervals; p̂ and Δ̂ per task.
    Analyze(analyze::Args),
    /// Write SVG charts of a run's curves (accuracy vs n and vs tokens, per
    /// agent, with interval bands) and of its failure judges' mode rates and
    /// category shares into a directory.
    Plot(plot::Args),
    /// Write one record per sample of a run to stdout.
    Export(export::Args),
    /// Judge a stored or imported run's traces with a failure taxonomy
    /// (judges/mast.yaml); print per-mode rates.
    Judge(judge::Args),
    /// Every rater's failure labels of a run: `labels export RUN`; people's
    /// labels stored from a file: `labels import RUN FILE`.
    Labels(labels::Args),
    /// Which agent and which turn made a run's graph runs fail: Shapley
    /// values by counterfactual replay, stored and set against the truth.
    Blame(blame::Args),
    /// Store another tool's traces (MAD, Who&When, chat JSONL) as a run.
    Import(import::Args),
    /// Self-explanation faithfulness of a run's explained models: NSG with
    /// and without explanations, clustered intervals, egregious rate;
    /// `--predictions` writes every prediction as JSONL.
    Faithfulness(faithfulness::Args),
    /// Agreement between a run's raters per failure mode (κ, Fleiss, α,
    /// precision/recall against a reference), and corrected rates.
    Agreement(agreement::Args),
    /// Serve the trace database as a local web app: runs, tasks, samples,
    /// transcripts, calls, comparisons, and annotation of traces.
    View(view::Args),
    /// Write one run as a self-contained HTML file: summary, curves,
    /// failure rates, agreement and its worst transcripts.
    Report(report::Args),
    /// Exact accuracy curves of majority, best-of-n and pass@n for an answer
    /// distribution, the n each needs for 1 − δ, and Monte Carlo checks.
    Theory(theory::Args),
}

pub fn exec(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run::exec(args),
        Command::Resume(args) => resume::exec(args),
        Command::Replay(args) => replay::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Graph(args) => graph::exec(args),
        Command::Schema => schema::exec(),
        Command::Runs(args) => runs::exec(args),
        Command::Show(args) => show::exec(args),
        Command::SimServer(args) => sim_server::exec(args),
        Command::Analyze(args) => analyze::exec(args),
        Command::Plot(args) => plot::exec(args),
        Command::Export(args) => export::exec(args),
        Command::Judge(args) => judge::exec(args),
        Command::Labels(args) => labels::exec(args),
        Command::Blame(args) => blame::exec(args),
        Command::Import(args) => import::exec(args),
        Command::Faithfulness(args) => faithfulness::exec(args),
        Command::Agreement(args) => agreement::exec(args),
        Command::View(args) => view::exec(args),
        Command::Report(args) => report::exec(args),
        Command::Theory(args) => theory::exec(args),
    }
}
