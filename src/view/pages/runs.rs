//! The run list: every run with its scenario, status, samples, time and
//! cost, filtered by name and status, sorted by any column.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::json;

use crate::store::{RunQuery, RunSort, STATUSES};

use super::super::server::{App, Visitor};
use super::{PageError, Params, pager, render};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let sort = match params.text("sort") {
        None => RunSort::Id,
        Some(s) => RunSort::parse(&s).ok_or_else(|| {
            PageError::bad_request(format!(
                "cannot sort runs by `{s}`: use id, name, started, samples or cost"
            ))
        })?,
    };
    let status = params.text("status");
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(PageError::bad_request(format!(
            "no run status `{s}`: use one of {}",
            STATUSES.join(", ")
        )));
    }
    let q = RunQuery {
        search: params.text("q"),
        status,
        sort,
        // Newest first unless asked otherwise.
        descending: params.text("order").as_deref() != Some("asc"),
        ..RunQuery::default()
    };
    let page_request = params.page()?;
    let runs = app
        .read(move |store| Ok(store.run_page(&q, page_request)?))
        .await?;
    let sort_links: HashMap<&str, String> = ["id", "name", "started", "samples", "cost"]
        .into_iter()
        .map(|col| {
            // The column sorted by now (id by default, newest first) flips.
            let flip = params.text("sort").as_deref().unwrap_or("id") == col
                && params.text("order").as_deref() != Some("asc");
            let with_sort = Params(
                params
                    .0
                    .iter()
                    .filter(|(k, _)| k.as_str() != "page")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .chain([("sort".to_owned(), col.to_owned())])
                    .collect(),
            );
            (col, with_sort.link("/", "order", flip.then_some("asc")))
        })
        .collect();
    render(
        "runs.html",
        &visitor,
        "runs",
        json!({
            "runs": runs.rows,
            "pager": pager(&runs, "/", &params),
            "query": params.values(),
            "statuses": STATUSES,
            "sort_links": sort_links,
        }),
    )
}
