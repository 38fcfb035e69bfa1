//! `crucible theory`: exact accuracy curves of majority, best-of-n and
//! pass@n for an answer distribution — given on the command line or a
//! scenario's simulated model — with the n each needs for 1 − δ, and Monte
//! Carlo estimates beside them when asked. No model is called.

use std::path::PathBuf;
use std::process::ExitCode;

use crucible::Runner;
use crucible::report::plot::{write_separation_plot, write_theory_plot};
use crucible::report::theory::{TheoryAsk, observed_separation, separation, theory};
use crucible::scenario::ModelKind;
use crucible::stats::separation::{Family, Sweep, UserFamily, log_grid};
use crucible::stats::theory::{AnswerDistribution, Verifier};

use super::common::{DbArg, SetArgs, open_existing, verifier};

#[derive(clap::Args)]
pub struct Args {
    /// The answers' probabilities, e.g. 0.4,0.3,0.1,0.1,0.1 (summing to 1).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present_any = ["scenario", "sweep"],
        conflicts_with_all = ["scenario", "sweep"]
    )]
    pub dist: Vec<f64>,
    /// Which answer is correct, counting from 0.
    #[arg(long, default_value_t = 0)]
    pub correct: usize,
    /// A scenario whose simulated model's distribution (on each task,
    /// averaged) to use instead of `--dist`.
    #[arg(long, requires = "model")]
    pub scenario: Option<PathBuf>,
    /// The simulated model of `--scenario`.
    #[arg(long, requires = "scenario")]
    pub model: Option<String>,
    #[command(flatten)]
    pub set: SetArgs,
    /// The sample counts, e.g. 1,2,4,8.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,8,16,32,64,128,256,512,1024"
    )]
    pub n: Vec<usize>,
    /// Best-of-n's verifier: `perfect`, or `fp=RATE,fn=RATE` (false
    /// positives: wrong samples accepted; false negatives: correct ones
    /// rejected).
    #[arg(long, default_value = "perfect", value_parser = verifier)]
    pub verifier: Verifier,
    /// The δ of "the smallest n reaching accuracy 1 − δ".
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.05,0.01")]
    pub delta: Vec<f64>,
    /// The largest n searched for 1 − δ.
    #[arg(long, default_value_t = 100_000)]
    pub max_n: usize,
    /// Monte Carlo trials per rule and n, shown beside the exact values.
    #[arg(long, default_value_t = 0)]
    pub mc: u64,
    /// Seed of the Monte Carlo draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Sweep the gap Δ over the hard families instead: the n each rule
    /// needs for 1 − δ at each Δ, and the log–log slope of n* against Δ.
    #[arg(long, conflicts_with = "scenario")]
    pub sweep: bool,
    /// The families swept: `two_way` (p* = (1 + Δ)/2 against one wrong
    /// answer) and `spread` (p* = Δ + ε against many wrong answers of at
    /// most ε each). Default: both, or none when `--family-file` gives
    /// families. With `--run`, the run's tasks name theirs.
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// A family of your own, point by point: a JSON Lines file with one
    /// distribution per line, `{"family": NAME, "delta": Δ, "p": [p*,
    /// …]}` (the correct answer first, or at `"correct": i`); swept at the
    /// Δ it lists. May be given more than once.
    #[arg(long, value_name = "FILE", requires = "sweep")]
    pub family_file: Vec<PathBuf>,
    /// The spread family's ε.
    #[arg(long, default_value_t = 0.001)]
    pub epsilon: f64,
    /// The sweep's smallest Δ.
    #[arg(long, default_value_t = 0.02)]
    pub from: f64,
    /// The sweep's largest Δ.
    #[arg(long, default_value_t = 0.3)]
    pub to: f64,
    /// How many Δ, evenly spaced in ln Δ.
    #[arg(long, default_value_t = 16)]
    pub points: usize,
    /// Bootstrap replicates over the Δ grid for the slope's interval.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// With `--sweep`: the n*(Δ) observed in this stored run's pools (its
    /// tasks carry `family` and `delta` fields, as
    /// scenarios/separation-sim.yaml's do), beside the exact ones.
    #[arg(long, requires = "sweep")]
    pub run: Option<i64>,
    /// Also write a chart into this directory: the exact curves against n
    /// (with the Monte Carlo estimates as dots and their 95% intervals),
    /// `theory-curves.svg`; with `--sweep`, n*(Δ) on log–log axes with the
    /// fitted lines, `separation.svg`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(d) = args.delta.iter().find(|d| !(**d > 0.0 && **d < 1.0)) {
        return usage(&format!("--delta: {d} is not in (0, 1)"));
    }
    if args.sweep {
        return sweep_families(&args);
    }
    let distributions = match (&args.scenario, &args.model) {
        (Some(file), Some(model)) => scenario_distributions(file, model, &args.set.set)?,
        _ => match AnswerDistribution::new(args.dist.clone(), args.correct, false) {
            Ok(d) => vec![d],
            Err(e) => return usage(&format!("--dist: {e}")),
        },
    };
    if args.n.contains(&0) {
        return usage("--n: every sample count must be at least 1");
    }
    let report = theory(&TheoryAsk {
        distributions,
        ns: args.n,
        deltas: args.delta,
        verifier: args.verifier,
        max_n: args.max_n.max(1),
        trials: args.mc,
        seed: args.seed,
    });
    if let Some(dir) = &args.out {
        for path in write_theory_plot(&report, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    print(&report, args.json, report.table())
}

/// `--sweep`: the families' fits.
fn sweep_families(args: &Args) -> anyhow::Result<ExitCode> {
    if !(args.from > 0.0 && args.from < args.to && args.to < 1.0) {
        return usage("--from and --to: the Δ range must satisfy 0 < from < to < 1");
    }
    if !(args.epsilon > 0.0 && args.epsilon < 1.0) {
        return usage("--epsilon: ε must be in (0, 1)");
    }
    let named: Vec<&str> = match (args.families.is_empty(), args.family_file.is_empty()) {
        (true, true) => vec!["two_way", "spread"],
        (true, false) => Vec::new(),
        (false, _) => args.families.iter().map(String::as_str).collect(),
    };
    let mut families = Vec::new();
    for name in named {
        families.push(match name {
            "two_way" => Family::TwoWay,
            "spread" => Family::Spread {
                epsilon: args.epsilon,
            },
            other => {
                return usage(&format!(
                    "--families: unknown family `{other}`; the families are two_way and spread"
                ));
            }
        });
    }
    let mut user = Vec::new();
    for file in &args.family_file {
        match read_families(file) {
            Ok(families) => user.extend(families),
            Err(message) => return usage(&message),
        }
    }
    let sweep = Sweep {
        deltas: log_grid(args.from, args.to, args.points.max(2)),
        target_delta: args.delta[0],
        max_n: args.max_n.max(1),
        replicates: args.bootstrap,
        seed: args.seed,
        level: 0.95,
    };
    let report = match args.run {
        Some(run) => {
            let store = open_existing(&args.db.db)?;
            let report = observed_separation(&store, run, &args.delta, &sweep)?;
            if report.observed.is_empty() {
                anyhow::bail!(
                    "run {run} in {} has no pools of tasks with `family` and `delta` fields; run scenarios/separation-sim.yaml, or give your tasks those fields",
                    args.db.db.display()
                );
            }
            report
        }
        None => separation(&families, &user, &args.delta, &sweep),
    };
    if let Some(dir) = &args.out {
        let fits: Vec<(&str, &_)> = report
            .fits
            .iter()
            .map(|f| ("exact", f))
            .chain(report.observed.iter().map(|f| ("observed", f)))
            .filter(|(_, f)| f.target_delta == args.delta[0])
            .collect();
        let title = format!("samples needed for accuracy {}", 1.0 - args.delta[0]);
        for path in write_separation_plot(&title, &fits, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    print(&report, args.json, report.table())
}

/// The families of a `--family-file`, in the order they first come; an
/// error names the file and line and says what is wrong.
fn read_families(path: &std::path::Path) -> Result<Vec<UserFamily>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        family: String,
        delta: f64,
        p: Vec<f64>,
        #[serde(default)]
        correct: usize,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--family-file: cannot read {}: {e}", path.display()))?;
    let mut families: Vec<UserFamily> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let line: Line = serde_json::from_str(raw).map_err(|e| {
            format!(
                "{at}:{}: {e}; each line is {{\"family\": NAME, \"delta\": Δ, \"p\": [p*, …]}}",
                e.column()
            )
        })?;
        if !(line.delta > 0.0 && line.delta < 1.0) {
            return Err(format!(
                "{at}: `delta` must be in (0, 1), found {}",
                line.delta
            ));
        }
        let d = AnswerDistribution::new(line.p, line.correct, true)
            .map_err(|e| format!("{at}: {e}"))?;
        match families.iter_mut().find(|f| f.name == line.family) {
            Some(f) => f.points.push((line.delta, d)),
            None => families.push(UserFamily {
                name: line.family,
                points: vec![(line.delta, d)],
            }),
        }
    }
    if families.is_empty() {
        return Err(format!(
            "--family-file: {} holds no distribution; write one JSON object per line",
            path.display()
        ));
    }
    Ok(families)
}

/// `report` as one JSON object, or `table`.
fn print(report: &impl serde::Serialize, json: bool, table: String) -> anyhow::Result<ExitCode> {
    if json {
        outln!("{}", serde_json::to_string(report)?);
    } else {
        out!("{table}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A usage error: said on stderr, exit status 2, as for bad arguments.
fn usage(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// The distribution of `model` (a simulated model of the scenario) on each
/// of the scenario's tasks, its correct answer the task's expected one.
fn scenario_distributions(
    file: &std::path::Path,
    model: &str,
    set: &[String],
) -> anyhow::Result<Vec<AnswerDistribution>> {
    let scenario = Runner::validate(file, set)?;
    let names: Vec<&str> = scenario.models.iter().map(|m| m.name.as_str()).collect();
    let found = scenario
        .models
        .iter()
        .find(|m| m.name == model)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no model `{model}`; its models: {}",
                file.display(),
                names.join(", ")
            )
        })?;
    let ModelKind::Simulated(sim) = &found.kind else {
        anyhow::bail!(
            "model `{model}` of {} is a network model; theory needs a simulated model's known distribution",
            file.display()
        );
    };
    let mut out = Vec::with_capacity(scenario.tasks.len());
    for task in &scenario.tasks {
        let dist = sim.distribution_for(task);
        let expected = task
            .expected
            .as_deref()
            .map(|e| scenario.answer.normalize(e));
        let mut p = Vec::new();
        let mut correct = None;
        for (answer, prob) in dist {
            let Some(answer) = answer else { continue };
            if expected.as_deref() == Some(scenario.answer.normalize(&answer).as_str()) {
                correct = Some(p.len());
            }
            p.push(prob);
        }
        // A task whose right answer the model never gives: add it at 0.
        let correct = correct.unwrap_or_else(|| {
            p.push(0.0);
            p.len() - 1
        });
        out.push(
            AnswerDistribution::new(p, correct, true)
                .map_err(|e| anyhow::anyhow!("model `{model}` on task `{}`: {e}", task.id))?,
        );
    }
    if out.is_empty() {
        anyhow::bail!("{} has no tasks", file.display());
    }
    Ok(out)
}
