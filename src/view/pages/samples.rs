//! A run's samples, one page at a time, filtered by agent, correctness,
//! strategy, task and text: the list that must stay fast on the largest runs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde_json::json;

use super::super::server::{App, Visitor};
use super::{PageError, Params, mode_choices, pager, render};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path(run): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let q = params.sample_query(None, &app.judge, visitor.blind)?;
    let page_request = params.page()?;
    let reader = app.clone();
    let context = app
        .read(move |store| {
            let head = store.run_head(run)?;
            let samples = store.sample_page(run, &q, page_request)?;
            Ok(json!({
                "run": head,
                "samples": samples.rows,
                "pager": pager(&samples, &format!("/runs/{run}/samples"), &params),
                "query": params.values(),
                "agents": store.run_agents(run)?,
                "strategies": store.sample_strategies(run)?,
                "modes": mode_choices(&reader.judge),
            }))
        })
        .await?;
    render(
        "samples.html",
        &visitor,
        &format!("run {run} · samples"),
        context,
    )
}
