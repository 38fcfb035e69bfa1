//! A model call: its request and response JSON, every HTTP attempt with
//! its status and wait, latency, tokens and cost.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use serde_json::json;

use crate::scenario::validator::MAX_REPEATS;

use super::super::server::{App, Visitor};
use super::{PageError, render};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path(call): Path<i64>,
) -> Result<Html<String>, PageError> {
    let me = visitor.annotator.clone();
    let blind = visitor.blind;
    let detail = app
        .read(move |store| {
            let detail = store
                .call_detail(call)?
                .ok_or_else(|| PageError::not_found(format!("no call {call} in this database")))?;
            // A judge's call holds its verdict: a blind viewer shows it once
            // the visitor has labelled the trace it judged.
            if blind && detail.role == "judge" {
                let attempt = detail.first_sample as usize / MAX_REPEATS;
                let labelled = match &me {
                    Some(me) => store
                        .annotations(detail.run_id, detail.task_index as usize, attempt)?
                        .iter()
                        .any(|a| &a.annotator == me),
                    None => false,
                };
                if !labelled {
                    return Err(PageError::forbidden(format!(
                        "this viewer is blind (--blind): call {call} is a failure judge's reading of graph run {attempt} of task {}; label that trace first",
                        detail.task_index
                    )));
                }
            }
            Ok(detail)
        })
        .await?;
    render(
        "call.html",
        &visitor,
        &format!("call {call}"),
        json!({"call": detail}),
    )
}
