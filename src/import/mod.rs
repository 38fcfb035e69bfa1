//! Importing other tools' traces: parsing their files into crucible's
//! in-memory form ([`Imported`]), so that judges can be scored against
//! labels others gave.
//!
//! Owns the readers — MAD, the MAST study's dataset ([`mad`]); Who&When's
//! failure-attribution files ([`who_when`]); crucible's own messages JSONL
//! ([`messages`]); the labels JSONL `crucible labels export` writes, read
//! back as people's annotations of a stored run ([`labels`]) — the
//! splitting of one-string raw logs into messages ([`raw_log`]), and the
//! mapping of the sources' failure-mode labels onto
//! the fourteen MAST modes, by code or through a judge file's names. It
//! reads no files and stores nothing: callers pass the text in, and another
//! layer stores what comes out. Every reader reports every problem it
//! finds, each at its line and column, and returns nothing when there is
//! one.
//!
//! May use: `scenario`, `seed`.

pub mod labels;
mod locate;
pub mod mad;
pub mod messages;
pub mod raw_log;
pub mod trace;
pub mod who_when;

pub use trace::*;

use serde_json::Value;

use crate::scenario::failure::FailureMode;
use crate::scenario::judge_file::NameMatch;
use locate::Problem;
use locate::Step::{Index, Key};

/// The mode a label names by its code, written `1.3` or `FM-1.3`: `None`
/// when `label` is not written as a code, `Some(Err)` when it is one but
/// not one of the fourteen.
fn mode_by_code(label: &str) -> Option<Result<FailureMode, String>> {
    let bare = label.strip_prefix("FM-").unwrap_or(label);
    let (major, minor) = bare.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some(FailureMode::from_code(&format!("FM-{bare}")).ok_or_else(|| {
        format!(
            "`{label}` is not the code of one of the fourteen MAST modes (1.1-1.5, 2.1-2.6, 3.1-3.3); correct the code, or name the mode instead"
        )
    }))
}

/// The mode a failure-mode name means in the judge file `names` looks it
/// up in: `Ok(None)` when the judge file lists it as having no counterpart.
fn mode_by_name(
    name: &str,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<Option<FailureMode>, String> {
    match names(name) {
        NameMatch::Mode(mode) => Ok(Some(mode)),
        NameMatch::Unmapped => Ok(None),
        NameMatch::Unknown => Err(format!(
            "failure mode `{name}` is not in the judge file's modes, aliases or `unmapped` list; add it there, as an alias of the mode it means or under `unmapped`"
        )),
    }
}

/// The mode a label means, whether written as a code or as a name.
fn mode_of(label: &str, names: &dyn Fn(&str) -> NameMatch) -> Result<Option<FailureMode>, String> {
    match mode_by_code(label) {
        Some(by_code) => by_code.map(Some),
        None => mode_by_name(label, names),
    }
}

/// The traces of a file of records (a JSON array, or JSONL), each named in
/// diagnostics by its `id_key` and read by `trace`; every record's
/// problems are reported.
fn read_records(
    path: &std::path::Path,
    text: &str,
    id_key: &str,
    trace: impl Fn(
        &locate::Record<'_>,
    ) -> Result<ImportedTrace, Vec<crate::scenario::diagnostic::Diagnostic>>,
) -> Result<Imported, Vec<crate::scenario::diagnostic::Diagnostic>> {
    let text = locate::Text::new(path, text);
    let mut traces = Vec::new();
    let mut errors = locate::Errors::default();
    for mut record in locate::records(&text)? {
        record.name_by(id_key);
        if let Some(trace) = errors.all(trace(&record)) {
            traces.push(trace);
        }
    }
    errors.or(traces).map(Imported::new)
}

/// The list of messages at `record`'s `key`, each problem reported where
/// it is.
fn messages_at(
    record: &locate::Record<'_>,
    key: &'static str,
    errors: &mut locate::Errors,
) -> Option<Vec<ImportedMessage>> {
    let list = errors.one(record.require_list(&[Key(key)], "a list of messages"))?;
    errors.all(json_messages(list).map_err(|problems| {
        let at = [Key(key)];
        problems.iter().map(|p| record.report(&at, p)).collect()
    }))
}

/// The messages of a JSON list of them, each as chat logs write it: an
/// object with `content` (a string, a list of lines, or null), `role` and
/// optionally `name` — the sender is `name`, else `role` — or a bare string.
fn json_messages(list: &[Value]) -> Result<Vec<ImportedMessage>, Vec<Problem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let object = match item {
            Value::String(text) => {
                out.push(ImportedMessage {
                    sender: None,
                    role: None,
                    text: text.clone(),
                });
                continue;
            }
            Value::Object(object) => object,
            other => {
                let expected = "an object with `content` and `role`, or a string";
                problems.push(Problem::wrong_type(vec![Index(i)], expected, other));
                continue;
            }
        };
        let mut field = |key: &'static str| match object.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(other) => {
                problems.push(Problem::wrong_type(
                    vec![Index(i), Key(key)],
                    "a string",
                    other,
                ));
                None
            }
        };
        let (role, name) = (field("role"), field("name"));
        let text = match object.get("content") {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(lines)) if lines.iter().all(Value::is_string) => Some(
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Some(other) => {
                let expected = "a string, a list of lines or null";
                problems.push(Problem::wrong_type(
                    vec![Index(i), Key("content")],
                    expected,
                    other,
                ));
                None
            }
        };
        if let (Some(role), Some(name), Some(text)) = (role, name, text) {
            out.push(ImportedMessage {
                sender: name.or_else(|| role.clone()),
                role,
                text,
            });
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(problems),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A judge file's name lookup for tests: the MAST judge's aliases for
    //! the names of earlier taxonomy versions, as in `judges/mast.yaml`.

    use crate::scenario::failure::FailureMode;
    use crate::scenario::judge_file::{NameMatch, normalized_name};

    const ALIASES: &[(&str, &str)] = &[
        ("Poor task constraint compliance", "FM-1.1"),
        ("Backtracking interruption", "FM-1.4"),
        ("Unaware of stopping conditions", "FM-1.5"),
        ("Fail to elicit clarification", "FM-2.2"),
        ("Derailment from task", "FM-2.3"),
        ("Withholding relevant information", "FM-2.4"),
        ("Ignoring suggestions from agents", "FM-2.5"),
        ("Inconsistency between reasoning and action", "FM-2.6"),
        (
            "Ill specified termination condition leading to premature termination",
            "FM-3.1",
        ),
        ("Lack of result verification", "FM-3.2"),
        ("Lack of critical verification", "FM-3.3"),
    ];

    /// The diagnostics of a reader that must fail, as printed.
    #[track_caller]
    pub fn rendered(
        read: Result<super::Imported, Vec<crate::scenario::diagnostic::Diagnostic>>,
    ) -> Vec<String> {
        read.expect_err("the reader accepted a bad file")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Check that the rendered diagnostics `got` are exactly as many as
    /// `want` and that each starts with its expected text.
    #[track_caller]
    pub fn assert_diagnostics(got: &[String], want: &[&str]) {
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g}\nshould start with\n{w}");
        }
    }

    const UNMAPPED: &[&str] = &[
        "Unbatched repetitive execution",
        "Waiting for known information",
        "Disagreement induced inaction",
        "Undetected conversation ambiguities and contradictions",
    ];

    pub fn names(name: &str) -> NameMatch {
        let name = normalized_name(name);
        let alias = ALIASES
            .iter()
            .find(|(a, _)| normalized_name(a) == name)
            .and_then(|(_, code)| FailureMode::from_code(code));
        let own = FailureMode::all().find(|m| normalized_name(m.name()) == name);
        match alias.or(own) {
            Some(mode) => NameMatch::Mode(mode),
            None if UNMAPPED.iter().any(|u| normalized_name(u) == name) => NameMatch::Unmapped,
            None => NameMatch::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_by_code_or_by_name() {
        let names = testing::names;
        let step = Ok(Some(FailureMode::StepRepetition));
        assert_eq!(mode_of("1.3", &names), step);
        assert_eq!(mode_of("FM-1.3", &names), step);
        assert_eq!(mode_of("step repetition", &names), step);
        assert_eq!(mode_of("Waiting for known information", &names), Ok(None));
        assert!(mode_of("4.1", &names).unwrap_err().contains("not the code"));
        assert!(
            mode_of("Made up", &names)
                .unwrap_err()
                .contains("`unmapped` list")
        );
    }

    #[test]
    fn json_messages_take_name_else_role_as_sender() {
        let list: Vec<Value> = serde_json::from_str(
            r#"[{"content": ["a", "b"], "role": "user", "name": "x"}, {"content": "c", "role": "WebSurfer"}, "d", {"role": "tool", "content": null}]"#,
        )
        .unwrap();
        let m = json_messages(&list).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.sender.as_deref(), m.role.as_deref(), m.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("x"), Some("user"), "a\nb"),
                (Some("WebSurfer"), Some("WebSurfer"), "c"),
                (None, None, "d"),
                (Some("tool"), Some("tool"), ""),
            ]
        );
        let bad: Vec<Value> = serde_json::from_str(r#"[{"content": 3, "role": 1}, 5]"#).unwrap();
        let problems = json_messages(&bad).unwrap_err();
        let paths: Vec<_> = problems
            .iter()
            .map(|p| locate::PathName(&p.path).to_string())
            .collect();
        assert_eq!(paths, ["[0].role", "[0].content", "[1]"]);
    }
}
