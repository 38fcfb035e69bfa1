//! `crucible export`: one record per sample of a run, as JSON Lines or CSV.

use std::io::Write;

use crate::store::{ExportError, ExportRow, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

/// CSV columns, in order; verifier scores follow as `score_<verifier>`.
const CSV_COLUMNS: &[&str] = &[
    "run_id",
    "task_id",
    "task_index",
    "agent",
    "model",
    "sample_index",
    "extracted",
    "answer",
    "expected",
    "correct",
    "abstained",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "error",
    "strategy",
    "round",
    "text",
];

/// Write every sample of `run_id` to `out`.
pub fn export(
    store: &Store,
    run_id: i64,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut count = 0u64;
    match format {
        Format::Jsonl => store.for_each_sample(run_id, |row| {
            serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            count += 1;
            Ok(())
        })?,
        Format::Csv => {
            let verifiers = verifier_names(store, run_id)?;
            let mut w = csv::Writer::from_writer(&mut *out);
            let header: Vec<String> = CSV_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .chain(verifiers.iter().map(|v| format!("score_{v}")))
                .collect();
            w.write_record(&header).map_err(csv_io)?;
            store.for_each_sample(run_id, |row| {
                w.write_record(csv_record(&row, &verifiers))
                    .map_err(csv_io)?;
                count += 1;
                Ok(())
            })?;
            w.flush()?;
        }
    }
    out.flush()?;
    Ok(count)
}

fn csv_io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

fn csv_record(r: &ExportRow, verifiers: &[String]) -> Vec<String> {
    let mut rec = vec![
        r.run_id.to_string(),
        r.task_id.clone(),
        r.task_index.to_string(),
        r.agent.clone(),
        r.model.clone(),
        r.sample_index.to_string(),
        opt(&r.extracted),
        opt(&r.answer),
        opt(&r.expected),
        opt(&r.correct),
        r.abstained.to_string(),
        r.input_tokens.to_string(),
        r.output_tokens.to_string(),
        r.latency_ms.to_string(),
        opt(&r.error),
        opt(&r.strategy),
        opt(&r.round),
        r.text.clone(),
    ];
    rec.extend(
        verifiers
            .iter()
            .map(|v| opt(&r.scores.get(v).copied().flatten())),
    );
    rec
}

fn verifier_names(store: &Store, run_id: i64) -> Result<Vec<String>, ExportError> {
    store.verifier_names(run_id).map_err(ExportError::from)
}
