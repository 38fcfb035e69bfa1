//! A run: its summary table and curves (or a faithfulness experiment's
//! scores and NSG chart), its failure judges' rates and category shares, agreement between its raters, what it spent, its
//! scenario, and its tasks (filtered by correctness, agent, failure mode
//! and text). A running run's page polls [`progress`] and updates itself.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::report::agreement::{AgreementRequest, agreement};
use crate::report::failures::{Judged, failure_report};
use crate::report::faithfulness::stored_report;
use crate::report::plot::{default_rater, failure_charts, faithfulness_chart, summary_charts};
use crate::scenario::judge_file::JudgeFile;
use crate::stats::faithfulness::Settings;
use crate::store::{Outcome, Progress, Store, TaskQuery};

use super::super::error::RenderError;
use super::super::server::{App, Visitor};
use super::{PageError, Params, mode_choices, pager, render};

/// Bootstrap replicates behind the page's intervals: enough for a page
/// that opens at once; `crucible judge` and `agreement` default to more.
const REPLICATES: usize = 200;

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path(run): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let tasks = task_query(&params, &app.judge, visitor.blind)?;
    let page_request = params.page()?;
    let rater = params.text("rater");
    let reader = app.clone();
    let annotator = visitor.annotator.clone();
    let blind = visitor.blind;
    let (context, title) = app
        .read(move |store| {
            let head = store.run_row(run)?;
            let summary = store.run_summary(run)?;
            let charts = summary_charts(&summary)?;
            let outcomes = store.outcome_choices(run)?;
            let mut tasks = tasks;
            // Each task shows the choice of the chosen strategy, by default
            // the summary's first row at its largest n.
            if tasks.outcome.is_none() {
                tasks.outcome = Outcome::preferred(&outcomes, None).cloned();
            }
            if tasks.correct.is_some() && tasks.outcome.is_none() {
                return Err(PageError::bad_request(format!(
                    "`correct` filters tasks by a strategy's choice, and run {run} has no strategy outcomes"
                )));
            }
            let task_page = store.task_page(run, &tasks, page_request)?;
            let source = store.run_source(run)?;
            // A blind viewer shows no judge's or person's findings.
            let failures = if blind {
                Value::Null
            } else {
                failures(store, &reader.judge, run, rater.as_deref())?
            };
            let progress = annotator
                .as_deref()
                .map(|a| store.annotation_progress(run, a))
                .transpose()?;
            let title = format!("run {run} · {}", head.name);
            let context = json!({
                "run": head,
                "summary": summary,
                "charts": charts,
                "outcomes": outcomes,
                "outcome": tasks.outcome,
                "tasks": task_page.rows,
                "pager": pager(&task_page, &format!("/runs/{run}"), &params),
                "query": params.values(),
                "agents": store.run_agents(run)?,
                "modes": mode_choices(&reader.judge),
                "failures": failures,
                "faithfulness": faithfulness(store, run)?,
                "scenario": {"path": source.path, "text": source.text, "files": source.files.iter().map(|(p, _)| p).collect::<Vec<_>>()},
                "traces": store.trace_count(run)?,
                "annotation_progress": progress,
                "live": head.status == "running",
            });
            Ok((context, title))
        })
        .await?;
    render("run.html", &visitor, &title, context)
}

/// The task list's filters from the query.
fn task_query(params: &Params, judge: &JudgeFile, blind: bool) -> Result<TaskQuery, PageError> {
    let outcome = params
        .text("outcome")
        .map(|o| {
            Outcome::parse(&o).ok_or_else(|| {
                PageError::bad_request(format!("`outcome` must be STRATEGY@N, not `{o}`"))
            })
        })
        .transpose()?;
    Ok(TaskQuery {
        search: params.text("q"),
        correct: params.flag("correct")?,
        outcome,
        agent: params.text("agent"),
        mode: params.mode_filter(judge, blind)?,
    })
}

/// A faithfulness experiment's report (as `crucible faithfulness` prints
/// it, with the page's replicates) and its NSG chart; null for other runs.
fn faithfulness(store: &Store, run: i64) -> Result<Value, RenderError> {
    if !store.is_faithfulness_run(run)? {
        return Ok(Value::Null);
    }
    let report = stored_report(
        store,
        run,
        &Settings {
            replicates: REPLICATES,
            seed: 0,
            level: 0.95,
        },
    )?;
    let points = report.nsg_points(|_| None);
    let chart = faithfulness_chart(&format!("run {run} · NSG of each explained model"), &points)?;
    let rows: Vec<Value> = report
        .models
        .iter()
        .chain(std::iter::once(&report.pooled))
        .map(|r| json!({"label": r.label(), "row": r}))
        .collect();
    let curves: Vec<Value> = [
        ("early answering", &report.early_answering),
        ("adding a mistake", &report.adding_mistake),
    ]
    .into_iter()
    .flat_map(|(measure, rows)| {
        rows.iter()
            .map(move |r| json!({"measure": measure, "label": r.label(), "row": r}))
    })
    .collect();
    let biasing: Vec<Value> = report
        .biasing
        .iter()
        .map(|r| json!({"label": r.label(), "row": r}))
        .collect();
    Ok(json!({"report": report, "rows": rows, "charts": [chart],
        "curves": curves, "biasing": biasing}))
}

/// The failure report of `asked` (default: the first judge-like rater),
/// its charts, and agreement between every rater, when the run has labels.
pub(crate) fn failures(
    store: &Store,
    judge: &JudgeFile,
    run: i64,
    asked: Option<&str>,
) -> Result<Value, RenderError> {
    let table = store.label_table(run)?;
    if table.raters.is_empty() {
        return Ok(Value::Null);
    }
    let mut raters: Vec<String> = table.raters.clone();
    raters.sort_unstable();
    let rater = match asked {
        Some(r) if raters.iter().any(|x| x == r) => Some(r.to_owned()),
        Some(r) => {
            return Err(RenderError::NotFound(format!(
                "run {run} has no labels of rater `{r}`; its raters: {}",
                raters.join(", ")
            )));
        }
        None => default_rater(raters.iter().map(String::as_str)).map(str::to_owned),
    };
    let report = match &rater {
        Some(r) => {
            // The table read above, not read again: on a run of 40,000
            // judged traces (1.1 M labels) reading it takes ~0.4 s.
            let judged = Judged {
                labels: table.clone(),
                accused: store.accused(run, r)?,
                judgements: store.judgement_counts(run)?,
            };
            let report = failure_report(judge, r, judged, (REPLICATES, 0));
            let charts = failure_charts(&report)?;
            json!({
                "report": report,
                "charts": charts,
            })
        }
        None => Value::Null,
    };
    let agreement = if raters.len() >= 2 {
        let request = AgreementRequest {
            raters: Vec::new(),
            reference: None,
            correct: None,
            calibrate: None,
            replicates: REPLICATES,
            seed: 0,
            level: 0.95,
        };
        match agreement(table, &request) {
            Ok(report) => json!(report),
            Err(why) => json!({"error": why}),
        }
    } else {
        Value::Null
    };
    Ok(json!({
        "rater": rater,
        "raters": raters,
        "judged": report,
        "agreement": agreement,
    }))
}

/// How far the run has got, for a live page to poll.
pub async fn progress(
    State(app): State<Arc<App>>,
    Path(run): Path<i64>,
) -> Result<Json<Progress>, PageError> {
    Ok(Json(app.read(move |store| Ok(store.progress(run)?)).await?))
}
