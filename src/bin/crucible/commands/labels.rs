//! `crucible labels export`: every rater's label of every trace of a run,
//! one JSON object per (trace, mode, rater) on stdout; `crucible labels
//! import`: people's labels read back from such lines (edited, or written
//! by hand) and stored as their annotations, whole or not at all.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crucible::Error;
use crucible::import::labels::{self, LabelLine, RunTraces};
use crucible::scenario::diagnostic::Diagnostic;
use crucible::store::{HUMAN_RATER_PREFIX, ModeAnnotation, TraceAnnotation, valid_annotator};

use super::common::{StoredRun, open_existing};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Write the run's labels as JSONL: trace, source_id, mas_name, code,
    /// original, rater, present (true, false or null), agent, turn, quote,
    /// evidence_verified, rationale (a person's).
    Export {
        #[command(flatten)]
        stored: StoredRun,
        /// Only these raters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        raters: Vec<String>,
    },
    /// Store people's labels from a JSONL file shaped as `labels export`
    /// writes it.
    ///
    /// One label a line: `trace` (or `task_index`), `attempt`
    /// (default 0), `code`, `present` (true, false or null: unsure) or
    /// `label` ("present", "absent", "unsure"), `rater` ("human:NAME"),
    /// and optionally `agent`, `turn`, `rationale`. A label corrected is
    /// stored anew: the latest counts, and the earlier ones are kept.
    /// Nothing is stored if any line has a problem.
    Import {
        #[command(flatten)]
        stored: StoredRun,
        /// The labels file.
        file: PathBuf,
        /// Every line's annotator, whatever its `rater` says (needed for
        /// labels whose rater is not a person's `human:NAME`).
        #[arg(long, value_name = "NAME", value_parser = annotator_name)]
        annotator: Option<String>,
        /// Print `{run_id, labels, traces, annotators, source}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A person's name, with or without its `human:` prefix.
pub fn annotator_name(s: &str) -> Result<String, String> {
    let name = s.strip_prefix(HUMAN_RATER_PREFIX).unwrap_or(s);
    valid_annotator(name)?;
    Ok(name.to_owned())
}

pub fn exec(Args { action }: Args) -> anyhow::Result<ExitCode> {
    match action {
        Action::Export {
            stored: StoredRun { run, db },
            raters,
        } => export(run, &db.db, &raters),
        Action::Import {
            stored: StoredRun { run, db },
            file,
            annotator,
            json,
        } => import(run, &db.db, &file, annotator.as_deref(), json),
    }
}

fn export(run: i64, db: &Path, raters: &[String]) -> anyhow::Result<ExitCode> {
    let store = open_existing(db)?;
    let labels = store.labels(run, None)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for l in labels
        .iter()
        .filter(|l| raters.is_empty() || raters.contains(&l.rater))
    {
        let line = serde_json::to_string(l).expect("labels serialize");
        match writeln!(out, "{line}") {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            r => r?,
        }
    }
    out.flush().or_else(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn import(
    run: i64,
    db: &Path,
    file: &Path,
    annotator: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::Invalid(vec![Diagnostic::file(
            file,
            format!("cannot read labels file: {e}"),
        )])
    })?;
    let mut store = open_existing(db)?;
    let task_ids: Vec<String> = (store.run_tasks(run)?.tasks.into_iter())
        .map(|(id, _)| id)
        .collect();
    let traces: BTreeSet<(usize, usize)> = store.trace_keys(run)?.into_iter().collect();
    let run_traces = RunTraces {
        task_ids: &task_ids,
        traces: &traces,
    };
    let lines = labels::read(file, &text, &run_traces, annotator).map_err(Error::Invalid)?;
    let source = format!("import: {}", file.display());
    let annotations = by_trace(run, &source, lines);
    let annotators: BTreeSet<&str> = annotations.iter().map(|a| a.annotator.as_str()).collect();
    let traces: BTreeSet<(usize, usize)> = annotations
        .iter()
        .map(|a| (a.task_index, a.attempt))
        .collect();
    let stored = store.annotate(&annotations)?;
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "run_id": run,
                "labels": stored,
                "traces": traces.len(),
                "annotators": annotators,
                "source": source,
            })
        );
    } else {
        let names: Vec<&str> = annotators.into_iter().collect();
        outln!(
            "stored {stored} labels of {} traces by {} into run {run} of {}",
            traces.len(),
            names.join(", "),
            db.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `lines` as one annotation per trace and annotator, in the order each
/// first appears.
fn by_trace(run: i64, source: &str, lines: Vec<LabelLine>) -> Vec<TraceAnnotation> {
    let mut out: Vec<TraceAnnotation> = Vec::new();
    let mut at: HashMap<(usize, usize, String), usize> = HashMap::new();
    for l in lines {
        let key = (l.task_index, l.attempt, l.annotator);
        let i = *at.entry(key.clone()).or_insert_with(|| {
            out.push(TraceAnnotation {
                run_id: run,
                task_index: key.0,
                attempt: key.1,
                annotator: key.2,
                source: source.to_owned(),
                modes: Vec::new(),
            });
            out.len() - 1
        });
        out[i].modes.push(ModeAnnotation {
            mode: l.mode,
            label: l.label,
            agent: l.agent,
            turn: l.turn,
            rationale: l.rationale,
        });
    }
    out
}
