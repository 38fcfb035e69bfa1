//! A model call: its request and response JSON, every HTTP attempt with
//! its status and wait, latency, tokens and cost.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use serde_json::json;

use super::super::server::{App, Visitor};
use super::{PageError, render};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path(call): Path<i64>,
) -> Result<Html<String>, PageError> {
    let detail = app
        .read(move |store| {
            store
                .call_detail(call)?
                .ok_or_else(|| PageError::not_found(format!("no call {call} in this database")))
        })
        .await?;
    render(
        "call.html",
        &visitor,
        &format!("call {call}"),
        json!({"call": detail}),
    )
}
