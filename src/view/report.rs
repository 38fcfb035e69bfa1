//! `crucible report`: one run as a single HTML file — its summary, curves,
//! failure rates, agreement and its worst transcripts — with the styles
//! and charts inline and a policy that forbids every script and every
//! request, so it opens anywhere, offline, as it was written.

use serde_json::json;

use crate::report::plot::summary_charts;
use crate::scenario::judge_file::JudgeFile;
use crate::store::Store;

use super::error::RenderError;
use super::html;
use super::pages::run::failures;
use super::pages::transcript::trace_context;

/// The report of run `run_id`, with up to `worst` transcripts: failed
/// graph runs, the most failure modes found first.
pub fn html_report(
    store: &Store,
    judge: &JudgeFile,
    run_id: i64,
    worst: usize,
) -> Result<String, RenderError> {
    let head = store.run_row(run_id)?;
    let summary = store.run_summary(run_id)?;
    let charts = summary_charts(&summary)?;
    let source = store.run_source(run_id)?;
    let transcripts = store
        .worst_traces(run_id, worst)?
        .into_iter()
        .map(|trace| trace_context(store, judge, run_id, trace, None, false))
        .collect::<Result<Vec<_>, _>>()?;
    let context = json!({
        "title": format!("run {run_id} · {}", head.name),
        "run": head,
        "summary": summary,
        "charts": charts,
        "failures": failures(store, judge, run_id, None)?,
        "scenario": {"path": source.path, "text": source.text},
        "transcripts": transcripts,
        "css": html::CSS,
        "standalone": true,
        "generated": crate::store::now(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    Ok(html::render("report.html", context)?)
}
