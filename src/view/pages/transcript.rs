//! A transcript: one graph run (or imported trace) message by message —
//! sender, receivers, turn and node — with the graph's events, the failures
//! injected into it, every rater's verdicts with their evidence highlighted
//! in the message they cite, the calls behind it, and the annotation form.
//!
//! Blind mode: until the visitor has labelled this trace, the page holds no
//! judge's verdict, no injected truth and no other person's label — they
//! are left out of the HTML, not hidden by style.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde_json::{Value, json};

use crate::judge::evidence::quoted_spans;
use crate::scenario::judge_file::JudgeFile;
use crate::store::{HUMAN_RATER_PREFIX, Store, StoredLabel, TRUTH_RATER};

use super::super::error::RenderError;
use super::super::server::{App, Visitor};
use super::{PageError, Params, render, visible_calls};

pub async fn page(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path((run, task, attempt)): Path<(i64, usize, usize)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let params = Params(query);
    let reader = app.clone();
    let me = visitor.annotator.clone();
    let queue = params.flag("queue")?.unwrap_or(false);
    let saved = params.number::<usize>("saved")?;
    let context = app
        .read(move |store| {
            let mut context = trace_context(
                store,
                &reader.judge,
                run,
                (task, attempt),
                me.as_deref(),
                reader.blind,
            )?;
            context["queue"] = json!(queue);
            context["saved"] = json!(saved);
            context["writable"] = json!(reader.writer.is_some());
            Ok(context)
        })
        .await?;
    render(
        "transcript.html",
        &visitor,
        &format!("run {run} · task {task} · graph run {attempt}"),
        context,
    )
}

/// Everything a transcript shows of graph run `attempt` of task `task`, as
/// `me` may see it: with `blind`, only `me`'s labels until `me` has
/// labelled the trace. Shared by the page and the report.
pub(crate) fn trace_context(
    store: &Store,
    judge: &JudgeFile,
    run: i64,
    (task, attempt): (usize, usize),
    me: Option<&str>,
    blind: bool,
) -> Result<Value, RenderError> {
    let head = store.run_head(run)?;
    let detail = store
        .task_detail(run, task)?
        .ok_or_else(|| RenderError::NotFound(format!("run {run} has no task at index {task}")))?;
    let trace = store.trace(run, task, attempt)?.ok_or_else(|| {
        RenderError::NotFound(format!(
            "task {task} of run {run} has no graph run {attempt}"
        ))
    })?;
    let history = store.annotations(run, task, attempt)?;
    let mine: Vec<_> = history
        .iter()
        .filter(|a| Some(a.annotator.as_str()) == me)
        .collect();
    let blind = blind && mine.is_empty();
    let my_rater = me.map(|m| format!("{HUMAN_RATER_PREFIX}{m}"));
    let labels: Vec<StoredLabel> = store
        .trace_labels(run, task, attempt)?
        .into_iter()
        .filter(|l| !l.rater.contains('#'))
        .filter(|l| !blind || Some(&l.rater) == my_rater.as_ref())
        .collect();
    // The visitor's latest label of each mode fills the form.
    let mut latest: HashMap<String, Value> = HashMap::new();
    for a in mine.iter().rev() {
        latest.insert(a.code.clone(), json!(a));
    }
    let verdicts: Vec<&StoredLabel> = labels
        .iter()
        .filter(|l| l.present == Some(true) && l.rater != TRUTH_RATER)
        .collect();
    // Who and when the failure is blamed on: a finding like a verdict.
    let blamed = match blind {
        true => Vec::new(),
        false => store.trace_attributions(run, (task, attempt))?,
    };
    let messages: Vec<Value> = trace
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let cited: Vec<&&StoredLabel> = verdicts.iter().filter(|v| v.turn == Some(i as u64)).collect();
            let marks: Vec<Range<usize>> = cited
                .iter()
                .filter_map(|v| quoted_spans(v.quote.as_deref()?, &m.text))
                .flatten()
                .collect();
            json!({
                "position": i,
                "turn": m.turn,
                "node": m.node,
                "sender": m.sender.as_deref(),
                "receivers": m.receivers,
                "summary": m.summary,
                "reply_to": m.reply_to,
                "answer": trace.final_message == Some(i),
                "segments": segments(&m.text, marks),
                "verdicts": cited,
                "blamed": blamed.iter().filter(|a| a.turn == Some(i)).collect::<Vec<_>>(),
                "injected": if blind { Vec::new() } else {
                    trace.injected.iter().filter(|f| f.0 == i).map(|f| json!({"code": f.1, "name": f.2})).collect()
                },
            })
        })
        .collect();
    let uncited: Vec<&&StoredLabel> = verdicts
        .iter()
        .filter(|v| v.turn.is_none_or(|t| t as usize >= trace.messages.len()))
        .collect();
    let mut raters: Vec<&str> = labels.iter().map(|l| l.rater.as_str()).collect();
    raters.sort_unstable();
    raters.dedup();
    let matrix: Vec<Value> = judge
        .modes
        .iter()
        .map(|m| {
            let cells: Vec<Value> = raters
                .iter()
                .map(|r| {
                    let l = labels
                        .iter()
                        .find(|l| l.rater == *r && l.code.as_deref() == Some(m.code.as_str()));
                    json!(l.map(|l| l.present))
                })
                .collect();
            json!({"code": m.code, "name": m.name, "cells": cells})
        })
        .collect();
    let mut agents: Vec<&str> = trace
        .messages
        .iter()
        .filter_map(|m| m.sender.as_deref())
        .collect();
    agents.sort_unstable();
    agents.dedup();
    Ok(json!({
        "run": head,
        "task": {"index": detail.task_index, "id": detail.task_id, "inputs": detail.inputs, "expected": detail.expected},
        "trace": {"attempt": trace.attempt, "ending": trace.ending, "turns": trace.turns},
        "correct": detail.graph_runs.iter().find(|g| g.attempt == attempt as i64).and_then(|g| g.correct),
        "messages": messages,
        "uncited": uncited,
        "events": store.graph_events(run, task, attempt)?,
        "raters": raters,
        "matrix": matrix,
        "attributions": blamed,
        "blind": blind,
        "history": if blind { mine.into_iter().cloned().collect() } else { history },
        "latest": latest,
        "modes": judge.modes.iter().map(|m| json!({"code": m.code, "name": m.name, "definition": m.definition})).collect::<Vec<_>>(),
        "agents": agents,
        "calls": visible_calls(store.task_calls(run, task, Some(attempt))?, blind),
    }))
}

/// `text` cut into pieces, each marked when it lies in one of `marks`
/// (overlapping ranges merged): what the page shows, every piece escaped.
fn segments(text: &str, mut marks: Vec<Range<usize>>) -> Vec<Value> {
    marks.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in marks {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    for r in merged {
        if r.start > at {
            out.push(json!({"text": &text[at..r.start], "mark": false}));
        }
        out.push(json!({"text": &text[r.clone()], "mark": true}));
        at = r.end;
    }
    if at < text.len() || out.is_empty() {
        out.push(json!({"text": &text[at..], "mark": false}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn overlapping_marks_merge_and_the_text_is_kept_whole() {
        let text = "abcdefghij";
        let s = segments(text, vec![5..8, 1..3, 2..4]);
        let pieces: Vec<(String, bool)> = s
            .iter()
            .map(|v| {
                (
                    v["text"].as_str().unwrap().to_owned(),
                    v["mark"].as_bool().unwrap(),
                )
            })
            .collect();
        let expect = [
            ("a", false),
            ("bcd", true),
            ("e", false),
            ("fgh", true),
            ("ij", false),
        ];
        assert_eq!(pieces, expect.map(|(t, m)| (t.to_owned(), m)));
        assert_eq!(segments("", vec![]).len(), 1);
    }
}
