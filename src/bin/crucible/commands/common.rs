//! Argument groups and helpers that several commands share.

use anyhow::Context;
use crucible::Error;
use crucible::report::analysis::{Analysis, AnalyzeOptions};
use crucible::report::prediction::{PredictOptions, Prediction, predict};
use crucible::scenario::budget::Budget;
use crucible::scenario::tolerance::ErrorTolerance;
use crucible::stats::theory::Verifier;
use crucible::store::Store;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone)]
pub struct DbArg {
    /// Trace database (SQLite).
    #[arg(long, env = "CRUCIBLE_DB", default_value = "crucible.db")]
    pub db: PathBuf,
}

/// A stored run, as the commands that read one name it.
#[derive(clap::Args, Clone)]
pub struct StoredRun {
    /// Run id (see `crucible runs`).
    pub run: i64,
    #[command(flatten)]
    pub db: DbArg,
}

/// Options of every command that executes a run.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Most model calls in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// How many failed calls to tolerate, instead of the scenario's
    /// `fail_on_error`: true (none), false (any), a fraction of the planned
    /// samples (0.05) or a count (10).
    #[arg(long, value_name = "WHEN", value_parser = ErrorTolerance::parse)]
    pub fail_on_error: Option<ErrorTolerance>,
}

/// How `analyze` and `plot` compute curves.
#[derive(clap::Args)]
pub struct AnalysisArgs {
    /// Bootstrap replicates for the intervals, over tasks (curves) or
    /// traces (failure rates); 0: none.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Coverage of the intervals.
    #[arg(long, default_value_t = 0.95, value_parser = coverage)]
    pub confidence: f64,
    /// Random orders per pool for weighted-majority estimates (pools
    /// larger than 12 samples; smaller ones are enumerated exactly).
    /// Default: enough for a standard error under 0.001 on each mean.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub permutations: Option<u64>,
}

impl AnalysisArgs {
    pub fn analyze(&self, db: &Path, run: i64) -> anyhow::Result<Analysis> {
        let store = open_existing(db)?;
        let options = AnalyzeOptions {
            bootstrap: self.bootstrap,
            permutations: self.permutations.map(|p| p as usize),
            confidence: self.confidence,
        };
        let mut analysis = crucible::report::analysis::analyze(&store, run, &options)?;
        if store.has_rounds(run)? {
            let scenario = crucible::Runner::stored_scenario(db, run)?;
            analysis.regret = crucible::report::regret::regret(&store, run, &scenario)?;
        }
        Ok(analysis)
    }
}

/// How `analyze --theory` and `plot --theory` predict a run's curves.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// Set what theory predicts from each task's pool (plug-in and Dirichlet
    /// posterior fits, exact curves past the pool) against what the run
    /// observed, and list where they part.
    #[arg(long)]
    pub theory: bool,
    /// Posterior draws per task behind the predicted bands.
    #[arg(long, default_value_t = 100, requires = "theory", value_parser = clap::value_parser!(u64).range(1..))]
    pub draws: u64,
    /// The Dirichlet prior's weight on each answer (0.5: Jeffreys).
    #[arg(long, default_value_t = 0.5, requires = "theory", value_parser = positive)]
    pub prior: f64,
    /// The verifier best-of-n is predicted under: `perfect`, or
    /// `fp=RATE,fn=RATE`.
    #[arg(long, default_value = "perfect", requires = "theory", value_parser = verifier)]
    pub assume_verifier: Verifier,
    /// Each task's n for accuracy 1 − δ is reported for this δ.
    #[arg(long, default_value_t = 0.1, requires = "theory", value_parser = coverage)]
    pub target_delta: f64,
    /// Largest n of the predicted curves (default: four times the pool).
    #[arg(long, requires = "theory", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_n: Option<u64>,
}

impl PredictArgs {
    /// `analysis`'s run, predicted with these options, at `confidence`.
    pub fn predict(
        &self,
        db: &Path,
        analysis: &Analysis,
        confidence: f64,
    ) -> anyhow::Result<Prediction> {
        let store = open_existing(db)?;
        let options = PredictOptions {
            draws: self.draws as usize,
            prior: self.prior,
            verifier: self.assume_verifier,
            delta: self.target_delta,
            max_n: self.max_n.map(|n| n as usize),
            confidence,
            ..PredictOptions::default()
        };
        Ok(predict(&store, analysis.run_id, analysis, &options)?)
    }
}

/// A positive finite number.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a positive number; found `{s}`")),
    }
}

/// `perfect`, or `fp=RATE,fn=RATE` with rates in [0, 1].
pub fn verifier(s: &str) -> Result<Verifier, String> {
    if s == "perfect" {
        return Ok(Verifier::PERFECT);
    }
    let mut v = Verifier::PERFECT;
    for part in s.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("expected `perfect` or `fp=RATE,fn=RATE`; found `{s}`"))?;
        let rate: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("`{key}` must be a rate in [0, 1]; found `{value}`"))?;
        match key.trim() {
            "fp" => v.fp = rate,
            "fn" => v.fn_ = rate,
            other => return Err(format!("unknown rate `{other}`; use `fp` and `fn`")),
        }
    }
    Ok(v)
}

/// Caps that replace the scenario's `budget:` for this invocation.
#[derive(clap::Args, Default)]
pub struct BudgetArgs {
    /// Stop before making more than N model calls in all (this run's earlier sessions included).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: Option<u64>,
    /// Stop before spending more than N tokens (input + output) in all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: Option<u64>,
    /// Stop before spending more than USD in all (models need a `price`).
    #[arg(long, value_name = "USD", value_parser = positive_dollars)]
    pub max_cost_usd: Option<f64>,
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

/// An interval's coverage, strictly between 0 and 1.
pub fn coverage(s: &str) -> Result<f64, String> {
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
pub struct SetArgs {
    /// Override one value of the scenario, e.g. `--set
    /// models.solver.provider=openai` or `--set 'strategies.0.n=[1, 4]'`
    /// (VALUE is YAML; list items by index). Validated like the file;
    /// stored with the run.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = crucible::scenario::overrides::parse_argument)]
    pub set: Vec<String>,
}

/// Open a database that must already exist (reading commands never create one).
pub fn open_existing(path: &Path) -> anyhow::Result<Store> {
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

/// `text` safe to print on a terminal: model output and imported traces are
/// untrusted, so control characters (escape sequences above all) are shown
/// as `\u{..}` instead of acting on the terminal; newlines and tabs stay.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}
