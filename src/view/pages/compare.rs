//! Two runs — or two strategies of one run — side by side, task by task
//! (tasks matched by id), the tasks where exactly one side chose right
//! first, with the 2×2 counts over every shared task.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::json;

use crate::store::{Outcome, Side};

use super::super::server::{App, Visitor};
use super::{PageError, Params, pager, render};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let a: i64 = params.number("a")?.ok_or_else(|| {
        PageError::bad_request(
            "compare needs run `a` (and `b`, or two strategies `sa` and `sb` of run a)".into(),
        )
    })?;
    let b: i64 = params.number("b")?.unwrap_or(a);
    let (sa, sb) = (params.text("sa"), params.text("sb"));
    let only_different = params.flag("differ")?.unwrap_or(false);
    let page_request = params.page()?;
    let context = app
        .read(move |store| {
            let run_a = store.run_head(a)?;
            let run_b = store.run_head(b)?;
            let choices_a = store.outcome_choices(a)?;
            let choices_b = store.outcome_choices(b)?;
            let side_a = side(a, sa.as_deref(), &choices_a, None)?;
            // One run against itself compares two of its strategies.
            let avoid = (a == b).then_some(&side_a.outcome);
            let asked_b = sb.as_deref().or(sa.as_deref().filter(|_| a != b));
            let side_b = side(b, asked_b, &choices_b, avoid)?;
            let (rows, counts) =
                store.compare_page(&side_a, &side_b, only_different, page_request)?;
            Ok(json!({
                "a": {"run": run_a, "outcome": side_a.outcome, "choices": choices_a},
                "b": {"run": run_b, "outcome": side_b.outcome, "choices": choices_b},
                "rows": rows.rows,
                "mcnemar_p": crate::stats::paired::mcnemar_exact(counts.only_a, counts.only_b),
                "counts": counts,
                "pager": pager(&rows, "/compare", &params),
                "query": params.values(),
                "differ": only_different,
            }))
        })
        .await?;
    render(
        "compare.html",
        &visitor,
        &format!("compare runs {a} and {b}"),
        context,
    )
}

/// The side of run `run` that `asked` (STRATEGY@N) names, else its
/// [`Outcome::preferred`] one other than `avoid`.
fn side(
    run: i64,
    asked: Option<&str>,
    choices: &[Outcome],
    avoid: Option<&Outcome>,
) -> Result<Side, PageError> {
    let outcome = match asked {
        Some(asked) => Outcome::parse(asked)
            .filter(|o| choices.contains(o))
            .ok_or_else(|| {
                let known: Vec<String> = choices.iter().map(Outcome::to_string).collect();
                PageError::not_found(format!(
                    "run {run} has no strategy outcome `{asked}`; it has: {}",
                    known.join(", ")
                ))
            })?,
        None => Outcome::preferred(choices, avoid).cloned().ok_or_else(|| {
            PageError::not_found(format!("run {run} has no strategy outcomes to compare"))
        })?,
    };
    Ok(Side {
        run_id: run,
        outcome,
    })
}
