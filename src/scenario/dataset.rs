//! Reading dataset items: inline YAML, JSONL, CSV, or synthetic. Every item
//! keeps the file and line it came from, so later checks can point at it.

use std::path::Path;
use std::sync::Arc;

use rand::RngExt;
use serde_json::{Map, Value};

use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::scenario::json_text::kind;
use crate::scenario::node::Located;
use crate::seed;

/// One dataset item before validation.
#[derive(Debug, Clone)]
pub struct RawItem {
    pub source: Arc<SourceFile>,
    pub span: Span,
    pub fields: Map<String, Value>,
}

impl RawItem {
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        self.source.error(self.span, message)
    }
}

/// Items written inline in the scenario.
pub fn from_values(
    source: &Arc<SourceFile>,
    values: &[Located<Value>],
    diags: &mut Diagnostics,
) -> Vec<RawItem> {
    let mut items = Vec::new();
    for v in values {
        match &v.value {
            Value::Object(fields) => items.push(RawItem {
                source: source.clone(),
                span: v.span,
                fields: fields.clone(),
            }),
            other => diags.push(source.error(
                v.span,
                format!(
                    "a dataset item must be a mapping of fields, found {}",
                    kind(other)
                ),
            )),
        }
    }
    items
}

/// Items from a `.jsonl` or `.csv` file.
pub fn from_file(path: &Path, text: String, diags: &mut Diagnostics) -> Vec<RawItem> {
    let source = Arc::new(SourceFile::new(path, text));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "jsonl" | "ndjson" => from_jsonl(&source, diags),
        "csv" => from_csv(&source, diags),
        _ => {
            diags.push(Diagnostic::file(
                path,
                format!("unsupported dataset file type `.{ext}`; use .jsonl or .csv"),
            ));
            Vec::new()
        }
    }
}

fn from_jsonl(source: &Arc<SourceFile>, diags: &mut Diagnostics) -> Vec<RawItem> {
    let mut items = Vec::new();
    for (i, line) in source.text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => items.push(RawItem {
                source: source.clone(),
                span: Span::new(line_no, 1),
                fields,
            }),
            Ok(other) => diags.push(source.error(
                Span::new(line_no, 1),
                format!("each line must be a JSON object, found {}", kind(&other)),
            )),
            Err(e) => diags.push(source.error(
                Span::new(line_no, e.column().max(1)),
                format!("invalid JSON: {}", strip_serde_position(&e.to_string())),
            )),
        }
    }
    items
}

fn from_csv(source: &Arc<SourceFile>, diags: &mut Diagnostics) -> Vec<RawItem> {
    let mut reader = csv::ReaderBuilder::new().from_reader(source.text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            diags.push(source.error(Span::new(1, 1), format!("invalid CSV header: {e}")));
            return Vec::new();
        }
    };
    let mut items = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(1, |p| p.line() as usize);
                let fields = headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
                    .collect();
                items.push(RawItem {
                    source: source.clone(),
                    span: Span::new(line, 1),
                    fields,
                });
            }
            Err(e) => {
                let line = e.position().map_or(1, |p| p.line() as usize);
                let msg = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("this row has {len} fields but the header has {expected_len}"),
                    _ => format!("invalid CSV: {e}"),
                };
                diags.push(source.error(Span::new(line, 1), msg));
            }
        }
    }
    items
}

/// `count` tasks `{id, question, answer}` with seeded integer answers.
pub fn synthetic(source: &Arc<SourceFile>, span: Span, count: usize, seed: u64) -> Vec<RawItem> {
    (0..count)
        .map(|i| {
            let id = format!("task-{:05}", i + 1);
            let answer: u32 =
                seed::rng(seed, &["synthetic".into(), id.as_str().into()]).random_range(0..1000);
            let mut fields = Map::new();
            fields.insert("id".into(), Value::String(id));
            fields.insert(
                "question".into(),
                Value::String(format!("Synthetic question #{}", i + 1)),
            );
            fields.insert("answer".into(), Value::String(answer.to_string()));
            RawItem {
                source: source.clone(),
                span,
                fields,
            }
        })
        .collect()
}

/// serde_json appends " at line L column C"; we print our own location.
fn strip_serde_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
