//! A task: its inputs and expected answer, each strategy's choice at each
//! n, the votes of each agent's pool, its graph runs, and its samples.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde_json::json;

use super::super::server::{App, Visitor};
use super::{PageError, Params, pager, render, visible_calls};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path((run, task)): Path<(i64, usize)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let q = params.sample_query(Some(task), &app.judge, visitor.blind)?;
    let page_request = params.page()?;
    let blind = visitor.blind;
    let context = app
        .read(move |store| {
            let head = store.run_head(run)?;
            let detail = store.task_detail(run, task)?.ok_or_else(|| {
                PageError::not_found(format!("run {run} has no task at index {task}"))
            })?;
            let samples = store.sample_page(run, &q, page_request)?;
            Ok(json!({
                "run": head,
                "task": detail,
                "samples": samples.rows,
                "pager": pager(&samples, &format!("/runs/{run}/tasks/{task}"), &params),
                "query": params.values(),
                "agents": store.run_agents(run)?,
                "calls": visible_calls(store.task_calls(run, task, None)?, blind),
            }))
        })
        .await?;
    render(
        "task.html",
        &visitor,
        &format!("run {run} · task {task}"),
        context,
    )
}
