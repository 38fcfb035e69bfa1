//! Messages JSONL: the plain import format for traces from any tool, one
//! trace per line —
//! `{"id"?, "messages": [{"role", "name"?, "content"}], "task"?,
//! "labels"?: [{"code" | "mode", "present"?, "rater"?, "agent"?, "turn"?}],
//! ...}`.
//!
//! A label names its mode by code (`FM-1.3` or `1.3`) or by name, looked up
//! in the judge file; its rater is `import` unless it says, and its `turn`
//! is a 0-based index into `messages`. Any other
//! fields of a line are kept as the trace's source. Blank lines are
//! skipped.

use std::path::Path;

use serde_json::{Map, Value};

use crate::import::locate::{self, Errors, Record, Step::Index, Step::Key};
use crate::import::{Imported, ImportedLabel, ImportedTrace, messages_at, mode_of, read_records};
use crate::scenario::diagnostic::Diagnostic;
use crate::scenario::judge_file::NameMatch;

/// The fields with a meaning of their own; the rest are the source.
const FIELDS: [&str; 4] = ["id", "messages", "task", "labels"];

/// The traces of a messages JSONL file; `names` is the judge file's lookup
/// of failure-mode names.
pub fn read(
    path: &Path,
    text: &str,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<Imported, Vec<Diagnostic>> {
    read_records(path, text, "id", |record| trace(record, names))
}

fn trace(
    record: &Record,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<ImportedTrace, Vec<Diagnostic>> {
    let object = record.object().map_err(|e| vec![e])?;
    let mut errors = Errors::default();
    let id = match object.get("id") {
        None | Some(Value::Null) => Some(record.line().to_string()),
        Some(v) => errors.one(
            locate::scalar_text(v)
                .ok_or_else(|| record.wrong_type(&[Key("id")], "a string or a number", v)),
        ),
    };
    let messages = messages_at(record, "messages", &mut errors);
    let task = errors.one(record.optional_str(&[Key("task")]));
    let labels = match object.get("labels") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(list)) => {
            // Every label read before any is dropped, so each problem shows.
            let labels: Vec<_> = (list.iter().enumerate())
                .map(|(i, item)| errors.all(label(record, i, item, names)))
                .collect();
            labels.into_iter().collect()
        }
        Some(other) => {
            errors.push(record.wrong_type(&[Key("labels")], "a list of labels", other));
            None
        }
    };
    let (Some(id), Some(messages), Some(task), Some(labels)) = (id, messages, task, labels) else {
        return Err(errors.0);
    };
    let source: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut trace = ImportedTrace::new(id, source, task.unwrap_or_default().to_owned(), messages);
    trace.labels = labels;
    errors.or(trace)
}

/// The label `item`, which is `labels[i]`.
fn label(
    record: &Record,
    i: usize,
    item: &Value,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<ImportedLabel, Vec<Diagnostic>> {
    let at = |key| [Key("labels"), Index(i), Key(key)];
    if !item.is_object() {
        let expected = "an object with `code` or `mode`";
        return Err(vec![record.wrong_type(
            &[Key("labels"), Index(i)],
            expected,
            item,
        )]);
    }
    let Some(key) = ["code", "mode"].into_iter().find(|k| item.get(k).is_some()) else {
        return Err(vec![record.error(
            &[Key("labels"), Index(i)],
            format!("`labels[{i}]` names no mode; give `code` (e.g. \"FM-1.3\") or `mode` (a mode's name)"),
        )]);
    };
    let mut errors = Errors::default();
    let original = errors.one(record.require_str(&at(key)));
    let mode = original.and_then(|original| {
        errors.one(mode_of(original, names).map_err(|m| record.error(&at(key), m)))
    });
    let present = match item.get("present") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Bool(b)) => Some(Some(*b)),
        Some(other) => {
            errors.push(record.wrong_type(&at("present"), "true, false or null", other));
            None
        }
    };
    let rater = errors.one(record.optional_str(&at("rater")));
    let agent = errors.one(record.optional_str(&at("agent")));
    let turn = match item.get("turn") {
        None | Some(Value::Null) => Some(None),
        Some(v) if v.is_u64() => Some(v.as_u64()),
        Some(other) => {
            let expected = "a whole number (the 0-based message index)";
            errors.push(record.wrong_type(&at("turn"), expected, other));
            None
        }
    };
    match (original, mode, present, rater, agent, turn) {
        (Some(original), Some(mode), Some(present), Some(rater), Some(agent), Some(turn)) => {
            Ok(ImportedLabel {
                rater: rater.unwrap_or("import").to_owned(),
                mode,
                original: original.to_owned(),
                present,
                agent: agent.map(str::to_owned),
                turn,
            })
        }
        _ => Err(errors.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::testing::names;
    use crate::import::testing::{assert_diagnostics, rendered};
    use crate::scenario::failure::FailureMode;

    #[test]
    fn reads_messages_labels_and_source() {
        let text = concat!(
            r#"{"id": "t1", "task": "add", "model": "m", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "name": "solver", "content": "4"}], "labels": [{"code": "FM-1.3", "present": true}, {"mode": "1.5", "present": false, "rater": "me", "agent": "solver", "turn": 1}, {"mode": "Waiting for known information", "present": null}]}"#,
            "\n\n",
            r#"{"messages": []}"#,
            "\n",
        );
        let imported = read(Path::new("m.jsonl"), text, &names).unwrap();
        let [first, second] = &imported.traces[..] else {
            panic!("{imported:#?}")
        };
        assert_eq!(first.source_id, "t1");
        assert_eq!(first.task, "add");
        assert_eq!(first.source.keys().collect::<Vec<_>>(), ["model"]);
        assert_eq!(first.messages[1].sender.as_deref(), Some("solver"));
        let labels: Vec<_> = first
            .labels
            .iter()
            .map(|l| {
                (
                    l.rater.as_str(),
                    l.mode.map(FailureMode::code),
                    l.original.as_str(),
                    l.present,
                    l.agent.as_deref(),
                    l.turn,
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("import", Some("FM-1.3"), "FM-1.3", Some(true), None, None),
                (
                    "me",
                    Some("FM-1.5"),
                    "1.5",
                    Some(false),
                    Some("solver"),
                    Some(1)
                ),
                (
                    "import",
                    None,
                    "Waiting for known information",
                    None,
                    None,
                    None
                ),
            ]
        );
        assert_eq!(imported.unmapped, ["Waiting for known information"]);
        // Without an `id`, the line number (blank lines count).
        assert_eq!(second.source_id, "3");
    }

    #[test]
    fn each_bad_line_is_reported_at_its_line() {
        let text = concat!(
            "{\"id\": 1, \"content\": \"no messages\"}\n",
            "{\"messages\": [], \"labels\": [{\"code\": \"9.1\"}, {\"mode\": \"Made up\"}, {\"present\": true}]}\n",
            "{\"messages\": [} \n",
        );
        let e: Vec<String> = rendered(read(Path::new("m.jsonl"), text, &names));
        assert_diagnostics(&e, &["m.jsonl:3:15: error: not valid JSON: "]);

        let e: Vec<String> = rendered(read(
            Path::new("m.jsonl"),
            &text[..text.rfind("{\"messages\": [}").unwrap()],
            &names,
        ));
        assert_diagnostics(
            &e,
            &[
                "m.jsonl:1:1: error: record 1 (id 1): missing field `messages`",
                "m.jsonl:2:38: error: record 2: `9.1` is not the code",
                "m.jsonl:2:55: error: record 2: failure mode `Made up` is not in the judge file's",
                "m.jsonl:2:67: error: record 2: `labels[2]` names no mode",
            ],
        );
    }
}
