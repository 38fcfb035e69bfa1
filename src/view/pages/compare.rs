//! Two runs — or two strategies of one run — side by side, task by task
//! (tasks matched by id), the tasks where exactly one side chose right
//! first, with the 2×2 counts over every shared task.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;
use serde_json::json;

use crate::store::Side;

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
            let avoid = (a == b).then_some((side_a.strategy.as_str(), side_a.n));
            let side_b = side(b, sb.as_deref().or(sa.as_deref().filter(|_| a != b)), &choices_b, avoid)?;
            let (rows, counts) = store.compare_page(&side_a, &side_b, only_different, page_request)?;
            let label = |c: &[(String, usize)]| c.iter().map(|(s, n)| format!("{s}@{n}")).collect::<Vec<_>>();
            Ok(json!({
                "a": {"run": run_a, "strategy": side_a.strategy, "n": side_a.n, "choices": label(&choices_a)},
                "b": {"run": run_b, "strategy": side_b.strategy, "n": side_b.n, "choices": label(&choices_b)},
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

/// The side of run `run` that `asked` (STRATEGY@N) names, else the first
/// strategy of its summary at its largest n — other than `avoid`, the
/// other side of a run compared with itself.
fn side(
    run: i64,
    asked: Option<&str>,
    choices: &[(String, usize)],
    avoid: Option<(&str, usize)>,
) -> Result<Side, PageError> {
    if let Some(asked) = asked {
        let found = asked
            .rsplit_once('@')
            .and_then(|(s, n)| Some((s, n.parse::<usize>().ok()?)))
            .filter(|(s, n)| choices.iter().any(|(t, m)| t == s && m == n));
        return match found {
            Some((s, n)) => Ok(Side {
                run_id: run,
                strategy: s.to_owned(),
                n,
            }),
            None => Err(PageError::not_found(format!(
                "run {run} has no strategy outcome `{asked}`; it has: {}",
                choices
                    .iter()
                    .map(|(s, n)| format!("{s}@{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    // Each strategy at its largest n first, then every other n, largest first.
    let mut candidates: Vec<(&str, usize)> =
        choices.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let first_row = |s: &str| choices.iter().position(|(t, _)| t == s);
    let largest = |s: &str| {
        choices
            .iter()
            .filter(|(t, _)| t == s)
            .map(|(_, n)| *n)
            .max()
    };
    candidates.sort_by_key(|&(s, n)| (Some(n) != largest(s), first_row(s), std::cmp::Reverse(n)));
    candidates
        .into_iter()
        .find(|c| Some(*c) != avoid)
        .map(|(s, n)| Side {
            run_id: run,
            strategy: s.to_owned(),
            n,
        })
        .ok_or_else(|| {
            PageError::not_found(format!("run {run} has no strategy outcomes to compare"))
        })
}
