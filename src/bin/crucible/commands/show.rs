//! `crucible show`: a stored run's summary, or with `--transcript TASK` the
//! graph runs of one task as chat transcripts (model text shown as it was
//! written, control characters made visible, indented under each message's
//! header), with failure judges' verdicts at the messages they cite and
//! `crucible blame`'s attributions (and an imported trace's own blame) at
//! the messages they blame.

use std::process::ExitCode;

use crucible::Error;
use crucible::store::{AttributionRecord, StoredLabel, TRUTH_RATER, Transcript};

use super::common::{DbArg, StoredRun, open_existing, terminal_safe};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredRun,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print the graph runs of this task (its id) as chat transcripts.
    #[arg(long, value_name = "TASK")]
    pub transcript: Option<String>,
}

pub fn exec(
    Args {
        stored: StoredRun { run, db },
        json,
        transcript,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let Some(task) = transcript else {
        return summary(run, &db, json);
    };
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
                crucible::scenario::diagnostic::did_you_mean(&task, ids.iter().map(String::as_str)),
            )
        };
        return Err(Error::Setup(format!("{}: {why}", db.db.display())).into());
    }
    // Judges' verdicts of a failure; injected truth is shown from its own
    // table. Text shows each model's majority, not every repeat.
    let verdicts: Vec<StoredLabel> = store
        .labels(run, Some(&task))?
        .into_iter()
        .filter(|l| l.rater != TRUTH_RATER && l.present == Some(true))
        .filter(|l| json || !l.rater.contains('#'))
        .collect();
    let index = store
        .tasks(run)?
        .into_iter()
        .find(|t| t.id == task)
        .map(|t| t.index);
    let blamed: Vec<AttributionRecord> = store
        .attributions(run)?
        .into_iter()
        .filter(|a| Some(a.task_index) == index)
        .collect();
    let found = Found {
        verdicts: &verdicts,
        blamed: &blamed,
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string(&transcript_json(&runs, &found))?
        );
    } else {
        out!("{}", transcript_text(run, &task, &runs, &found));
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's summary, as `crucible run` prints it.
fn summary(run: i64, db: &DbArg, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_existing(&db.db)?;
    print_summary(&store, &store.run_summary(run)?, json)?;
    Ok(ExitCode::SUCCESS)
}

/// A run's summary as text or one JSON object; a faithfulness
/// experiment's scores with it, since its results are those, not
/// strategies'.
pub fn print_summary(
    store: &crucible::store::Store,
    summary: &crucible::stats::summary::RunSummary,
    json: bool,
) -> anyhow::Result<()> {
    let faithfulness = match store.is_faithfulness_run(summary.run_id)? {
        true => Some(crucible::report::faithfulness::stored_report(
            store,
            summary.run_id,
            &super::faithfulness::DEFAULT_SETTINGS,
        )?),
        false => None,
    };
    if json {
        let mut value = summary.json(store.path());
        if let Some(f) = &faithfulness {
            value["faithfulness"] = serde_json::to_value(f)?;
        }
        outln!("{value}");
    } else {
        outln!("{}", summary.table());
        if let Some(f) = &faithfulness {
            out!("{}", f.table());
        }
    }
    Ok(())
}

/// What was found of a task's graph runs: judges' verdicts and blame.
struct Found<'a> {
    verdicts: &'a [StoredLabel],
    blamed: &'a [AttributionRecord],
}

/// Graph runs as chat transcripts: each message's turn, node, sender and
/// where it went, then its text indented.
fn transcript_text(run: i64, task: &str, runs: &[Transcript], found: &Found<'_>) -> String {
    let verdicts = found.verdicts;
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
            for v in verdicts
                .iter()
                .filter(|v| v.attempt == r.attempt && v.turn == Some(i as u64))
            {
                out += &verdict_line(v);
            }
            for a in found
                .blamed
                .iter()
                .filter(|a| a.attempt == r.attempt && a.turn == Some(i))
            {
                out += &blame_line(a);
            }
            for line in terminal_safe(&m.text).lines() {
                out += &format!("    {line}\n");
            }
        }
        // Verdicts that cite no message of this run.
        let uncited = verdicts.iter().filter(|v| {
            v.attempt == r.attempt && v.turn.is_none_or(|t| t as usize >= r.messages.len())
        });
        for v in uncited {
            out += &verdict_line(v);
        }
        // Attributions that name no message of this run.
        for a in found
            .blamed
            .iter()
            .filter(|a| a.attempt == r.attempt && a.turn.is_none_or(|t| t >= r.messages.len()))
        {
            out += &blame_line(a);
        }
    }
    out
}

/// An attribution: by which method, of which agent, how strongly.
fn blame_line(a: &AttributionRecord) -> String {
    let who = match (&a.agent, a.turn) {
        (Some(agent), _) => format!("blames {}", terminal_safe(agent)),
        (None, Some(_)) => "blames this message".to_owned(),
        (None, None) => "blames no one clearly".to_owned(),
    };
    let score = match (a.score, a.stderr) {
        (Some(x), Some(se)) => format!(" (credit {x:.3} ± {se:.3})"),
        (Some(x), None) => format!(" (credit {x:.3})"),
        _ => String::new(),
    };
    let why = a
        .reason
        .as_deref()
        .map_or(String::new(), |r| format!(" — {}", terminal_safe(r)));
    format!("    ☛ {} {who}{score}{why}\n", terminal_safe(&a.method))
}

/// A judge's verdict of a failure, with its evidence and whether the quote
/// was found in the message it cites.
fn verdict_line(v: &StoredLabel) -> String {
    let code = v.code.as_deref().unwrap_or(&v.original);
    let agent = v
        .agent
        .as_deref()
        .map_or(String::new(), |a| format!(" by {}", terminal_safe(a)));
    let quote = match (&v.quote, v.evidence_verified) {
        (Some(q), Some(true)) => format!(": \"{}\" (quote found)", terminal_safe(q)),
        (Some(q), _) => format!(
            ": \"{}\" (quote NOT in the cited message)",
            terminal_safe(q)
        ),
        (None, _) => String::new(),
    };
    let at = if v.turn.is_none() {
        " (no message cited)"
    } else {
        ""
    };
    let why = v
        .rationale
        .as_deref()
        .map_or(String::new(), |r| format!(" — {}", terminal_safe(r)));
    format!(
        "    ⚑ {} judged {}{agent}{at}{quote}{why}\n",
        terminal_safe(&v.rater),
        terminal_safe(code)
    )
}

fn transcript_json(runs: &[Transcript], found: &Found<'_>) -> serde_json::Value {
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
                    "verdicts": found.verdicts.iter().filter(|v| v.attempt == r.attempt).collect::<Vec<_>>(),
                    "attributions": found.blamed.iter().filter(|a| a.attempt == r.attempt).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
