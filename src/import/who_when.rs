//! Who&When, the failure-attribution benchmark (Zhang et al., "Which Agent
//! Causes Task Failures and When?", `mingyin1/Agents_Failure_Attribution`):
//! one JSON file per failed run, naming the agent and the step to blame.
//!
//! Each file holds `history` (the messages, `{content, role, name?}`;
//! Hand-Crafted files put the agent's name in `role`), `question`,
//! `ground_truth`, `mistake_agent`, `mistake_step` (a string or a number:
//! the 0-based index into `history` of the decisive mistake — the dataset's
//! own account, and in every sampled file `history[mistake_step]` is the
//! blamed agent's), `mistake_reason`, and metadata. The subset
//! (`Algorithm-Generated` or `Hand-Crafted`) is the file's folder. There
//! are no MAST labels.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::import::locate::{self, Errors, Record, Step::Key, Text};
use crate::import::{Imported, ImportedTrace, Mistake, messages_at};
use crate::scenario::diagnostic::Diagnostic;

/// The metadata fields kept as the trace's source (Algorithm-Generated
/// files say `is_correct`, Hand-Crafted ones `is_corrected`).
const SOURCE_FIELDS: [&str; 4] = ["question_ID", "is_correct", "is_corrected", "level"];

/// The traces of Who&When files, given as (path, text).
pub fn read(files: &[(PathBuf, String)]) -> Result<Imported, Vec<Diagnostic>> {
    let mut traces = Vec::new();
    let mut errors = Errors::default();
    for (path, text) in files {
        let text = Text::new(path, text);
        let trace = errors
            .one(locate::document(&text))
            .and_then(|record| errors.all(trace(&record, path)));
        traces.extend(trace);
    }
    errors.or(traces).map(Imported::new)
}

fn trace(record: &Record, path: &Path) -> Result<ImportedTrace, Vec<Diagnostic>> {
    let object = record.object().map_err(|e| vec![e])?;
    let mut errors = Errors::default();
    let history = messages_at(record, "history", &mut errors);
    let task = errors.one(record.optional_str(&[Key("question")]));
    let expected =
        match object.get("ground_truth") {
            None | Some(Value::Null) => Some(None),
            Some(v) => errors.one(locate::scalar_text(v).map(Some).ok_or_else(|| {
                record.wrong_type(&[Key("ground_truth")], "a string or a number", v)
            })),
        };
    let mistake = history
        .as_ref()
        .and_then(|history| errors.all(mistake(record, history.len())));
    let (Some(history), Some(task), Some(expected), Some(mistake)) =
        (history, task, expected, mistake)
    else {
        return Err(errors.0);
    };
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let id = object
        .get("question_ID")
        .and_then(locate::scalar_text)
        .unwrap_or_else(|| stem.into_owned());
    let mut trace = ImportedTrace::new(
        id,
        source(object, path),
        task.unwrap_or_default().to_owned(),
        history,
    );
    trace.mistake = mistake;
    trace.expected = expected;
    errors.or(trace)
}

/// The subset (the file's folder), the file's name, and its metadata.
fn source(object: &Map<String, Value>, path: &Path) -> Map<String, Value> {
    let name = |p: &Path| p.file_name().map(|n| Value::from(n.to_string_lossy()));
    let mut source = Map::new();
    if let Some(subset) = path.parent().and_then(name) {
        source.insert("subset".to_owned(), subset);
    }
    if let Some(file) = name(path) {
        source.insert("file".to_owned(), file);
    }
    for key in SOURCE_FIELDS {
        if let Some(v) = object.get(key) {
            source.insert(key.to_owned(), v.clone());
        }
    }
    source
}

/// The blamed agent and step, which come together.
fn mistake(record: &Record, messages: usize) -> Result<Option<Mistake>, Vec<Diagnostic>> {
    let mut errors = Errors::default();
    let agent = errors.one(record.optional_str(&[Key("mistake_agent")]));
    let reason = errors.one(record.optional_str(&[Key("mistake_reason")]));
    let step = errors.one(step(record, messages));
    let (Some(agent), Some(step), Some(reason)) = (agent, step, reason) else {
        return Err(errors.0);
    };
    let missing = |key, needed_by| {
        let message = format!("missing field `{key}`, which `{needed_by}` needs");
        Err(vec![record.error(&[Key(key)], message)])
    };
    match (agent, step) {
        (Some(agent), Some(step)) => Ok(Some(Mistake {
            agent: agent.to_owned(),
            step,
            reason: reason.map(str::to_owned),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => missing("mistake_step", "mistake_agent"),
        (None, Some(_)) => missing("mistake_agent", "mistake_step"),
    }
}

/// `mistake_step`: an index into the `messages` messages of `history`,
/// counted from 0.
fn step(record: &Record, messages: usize) -> Result<Option<u64>, Diagnostic> {
    let at = [Key("mistake_step")];
    let Some(value) = record.get(&at).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let step = match value {
        Value::String(s) => s.trim().parse::<u64>().ok(),
        other => other.as_u64(),
    };
    match step {
        Some(step) if step < messages as u64 => Ok(Some(step)),
        Some(step) => Err(record.error(
            &at,
            format!(
                "`mistake_step` {step} is past the end of `history`, whose {messages} messages count from 0"
            ),
        )),
        None => Err(record.wrong_type(
            &at,
            "a 0-based index into `history` (a whole number, or a string holding one)",
            value,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::testing::{assert_diagnostics, rendered};

    fn file(path: &str, text: &str) -> (PathBuf, String) {
        (PathBuf::from(path), text.to_owned())
    }

    fn samples() -> Vec<(PathBuf, String)> {
        vec![
            file(
                "who-when/Algorithm-Generated/1.json",
                include_str!("../../tests/data/who-when/Algorithm-Generated/1.json"),
            ),
            file(
                "who-when/Algorithm-Generated/12.json",
                include_str!("../../tests/data/who-when/Algorithm-Generated/12.json"),
            ),
            file(
                "who-when/Hand-Crafted/6.json",
                include_str!("../../tests/data/who-when/Hand-Crafted/6.json"),
            ),
        ]
    }

    #[test]
    fn keeps_the_blamed_agent_and_step() {
        let imported = read(&samples()).unwrap();
        let blamed: Vec<_> = imported
            .traces
            .iter()
            .map(|t| {
                let m = t.mistake.as_ref().unwrap();
                (
                    m.agent.as_str(),
                    m.step,
                    t.messages[m.step as usize].sender.as_deref(),
                )
            })
            .collect();
        // Read by hand from the files.
        assert_eq!(
            blamed,
            [
                ("Excel_Expert", 0, Some("Excel_Expert")),
                ("Verification_Expert", 1, Some("Verification_Expert")),
                ("Orchestrator", 5, Some("Orchestrator (thought)")),
            ]
        );
        let first = &imported.traces[0];
        assert_eq!(first.source_id, "4d51c4bf-4b0e-4f3d-897b-3f6687a7d9f2");
        assert_eq!(first.expected.as_deref(), Some("8"));
        assert!(
            first
                .task
                .starts_with("This spreadsheet contains a list of clients")
        );
        assert!(
            first
                .mistake
                .as_ref()
                .unwrap()
                .reason
                .as_deref()
                .unwrap()
                .starts_with("The code failed")
        );
        assert_eq!(first.messages.len(), 6);
        assert_eq!(first.messages[1].role.as_deref(), Some("user"));
        assert_eq!(first.source["subset"], "Algorithm-Generated");
        assert_eq!(first.source["file"], "1.json");
        assert_eq!(first.source["is_correct"], false);
        assert!(first.labels.is_empty() && imported.unmapped.is_empty());

        let hand = &imported.traces[2];
        assert_eq!(hand.source["subset"], "Hand-Crafted");
        assert_eq!(hand.source["is_corrected"], false);
        assert_eq!(hand.messages.len(), 8);
        assert_eq!(hand.messages[0].sender.as_deref(), Some("human"));
    }

    #[test]
    fn without_question_id_the_file_stem_is_the_id() {
        let f = file(
            "x/run-3.json",
            r#"{"history": [{"content": "hi", "role": "user"}]}"#,
        );
        let imported = read(&[f]).unwrap();
        assert_eq!(imported.traces[0].source_id, "run-3");
        assert_eq!(imported.traces[0].mistake, None);
    }

    #[test]
    fn problems_in_several_files_are_all_reported() {
        // Named so that their order is the order diagnostics are sorted in.
        let files = [
            file("a/1-bad.json", "{\n  \"history\": [\n"),
            file(
                "a/2-step.json",
                "{\n  \"history\": [{\"content\": \"x\", \"role\": \"user\"}],\n  \"mistake_agent\": \"user\",\n  \"mistake_step\": \"3\"\n}\n",
            ),
            file(
                "a/4-half.json",
                "{\"history\": [{\"content\": \"x\", \"role\": \"user\"}], \"mistake_agent\": \"user\"}",
            ),
            file(
                "a/3-kind.json",
                "{\"history\": [{\"content\": 5, \"role\": \"user\"}]}",
            ),
        ];
        let e: Vec<String> = rendered(read(&files));
        assert_diagnostics(
            &e,
            &[
                "a/1-bad.json:3:1: error: not valid JSON: EOF",
                "a/2-step.json:4:19: error: `mistake_step` 3 is past the end of `history`",
                "a/3-kind.json:1:26: error: `history[0].content` must be a string, a list of lines or null, not a number",
                "a/4-half.json:1:1: error: missing field `mistake_step`, which `mistake_agent` needs",
            ],
        );
    }
}
