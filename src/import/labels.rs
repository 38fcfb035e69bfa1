//! Labels JSONL read back as people's annotations of a stored run: the
//! lines `crucible labels export` writes, edited or written by hand, one
//! label a line — so that exported labels round-trip. Also what a person's
//! label is ([`HumanLabel`]) and how a person is named as a rater
//! ([`HUMAN_RATER_PREFIX`]).
//!
//! A line: `trace` (the task id) or `task_index`; `attempt` (0 when
//! absent); `code` (a MAST code, `FM-1.3` or `1.3`); `present` (true, false,
//! or null for unsure) or `label` (`"present"`, `"absent"`, `"unsure"`);
//! `rater` (`human:NAME`) unless one annotator is named for every line;
//! optionally `agent`, `turn` (a 0-based message position) and `rationale`.
//! The export's other fields are accepted and ignored; any other field is
//! an error, so that a misspelt one is not silently dropped. Every line is
//! checked against the run — its trace ids and its graph runs — and every
//! problem of every line is reported.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::import::locate::{self, Errors, Record, Step::Key};
use crate::import::mode_by_code;
use crate::scenario::diagnostic::{Diagnostic, did_you_mean};
use crate::scenario::failure::FailureMode;

/// What a person's rater name starts with: `human:alice`. Agreement counts
/// these raters as people.
pub const HUMAN_RATER_PREFIX: &str = "human:";

/// Longest annotator name, in characters.
const NAME_CHARS: usize = 64;

/// Whether `name` (without [`HUMAN_RATER_PREFIX`]) can name an annotator:
/// 1–64 characters, no control characters, no `#` (which marks a judge's
/// repeat among raters), no leading or trailing spaces. The one rule for
/// the viewer, `--annotator` and imported files.
pub fn valid_annotator(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > NAME_CHARS {
        return Err(format!(
            "an annotator's name has 1 to {NAME_CHARS} characters"
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '#') || name.trim() != name {
        return Err(
            "an annotator's name has no control characters, no `#` and no leading or trailing spaces"
                .into(),
        );
    }
    Ok(())
}

/// A person's label of a trace for one failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HumanLabel {
    Present,
    Absent,
    /// The person looked and could not tell: unknown, never absent.
    Unsure,
}

impl HumanLabel {
    const ALL: [HumanLabel; 3] = [HumanLabel::Present, HumanLabel::Absent, HumanLabel::Unsure];

    /// As stored and written: `present`, `absent`, `unsure`.
    pub fn as_str(self) -> &'static str {
        match self {
            HumanLabel::Present => "present",
            HumanLabel::Absent => "absent",
            HumanLabel::Unsure => "unsure",
        }
    }

    pub fn from_name(name: &str) -> Option<HumanLabel> {
        HumanLabel::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// As `labels.present` holds it: unsure is unknown.
    pub fn present(self) -> Option<bool> {
        match self {
            HumanLabel::Present => Some(true),
            HumanLabel::Absent => Some(false),
            HumanLabel::Unsure => None,
        }
    }

    pub fn from_present(present: Option<bool>) -> HumanLabel {
        match present {
            Some(true) => HumanLabel::Present,
            Some(false) => HumanLabel::Absent,
            None => HumanLabel::Unsure,
        }
    }
}

/// The run the labels are about, as far as checking them needs.
pub struct RunTraces<'a> {
    /// Its tasks' ids, by task index.
    pub task_ids: &'a [String],
    /// (task index, attempt) of each of its traces (graph runs).
    pub traces: &'a BTreeSet<(usize, usize)>,
}

/// One line's label.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelLine {
    pub task_index: usize,
    pub attempt: usize,
    /// The person's name, without [`HUMAN_RATER_PREFIX`].
    pub annotator: String,
    pub mode: FailureMode,
    pub label: HumanLabel,
    pub agent: Option<String>,
    pub turn: Option<u64>,
    pub rationale: Option<String>,
}

/// The fields a line may have: its own, then the rest of what `labels
/// export` writes, which say nothing a person's label keeps.
const FIELDS: [&str; 15] = [
    "trace",
    "task_index",
    "attempt",
    "code",
    "present",
    "label",
    "rater",
    "agent",
    "turn",
    "rationale",
    "original",
    "source_id",
    "mas_name",
    "quote",
    "evidence_verified",
];

/// The labels of the labels JSONL file at `path` with `text`, about `run`;
/// `annotator` (a name, without the prefix), when given, is every line's
/// annotator, whatever its `rater`. Every problem of every line is
/// reported, and then no label is returned.
pub fn read(
    path: &Path,
    text: &str,
    run: &RunTraces<'_>,
    annotator: Option<&str>,
) -> Result<Vec<LabelLine>, Vec<Diagnostic>> {
    let text = locate::Text::new(path, text);
    let (records, unparsed) = locate::readable_records(&text);
    if records.is_empty() && unparsed.is_empty() {
        return Err(vec![Diagnostic::file(path, "the file holds no labels")]);
    }
    let mut errors = Errors(unparsed);
    let index: HashMap<&str, usize> = (run.task_ids.iter().enumerate())
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut seen: HashMap<(usize, usize, String, FailureMode), usize> = HashMap::new();
    let mut not_people = NotPeople::new();
    let mut lines = Vec::new();
    for record in &records {
        let read = label_line(record, run, &index, annotator, &mut not_people);
        let Some(line) = errors.all(read) else {
            continue;
        };
        let key = (
            line.task_index,
            line.attempt,
            line.annotator.clone(),
            line.mode,
        );
        match seen.get(&key) {
            Some(first) => errors.push(record.error(
                &[Key("code")],
                format!(
                    "{} of this trace by {} is labelled on line {first} already; keep one of the two",
                    line.mode.code(),
                    line.annotator
                ),
            )),
            None => {
                seen.insert(key, record.line());
                lines.push(line);
            }
        }
    }
    for (rater, (mut diagnostic, more)) in not_people {
        if more > 0 {
            let lines = if more == 1 { "line has" } else { "lines have" };
            diagnostic.message += &format!(" ({more} more {lines} rater `{rater}`)");
        }
        errors.push(diagnostic);
    }
    errors.or(lines)
}

/// Raters that are not people, each with the diagnostic of its first line
/// and how many more lines it rates: an export of a judge's labels is
/// one problem, said once, not one per line.
type NotPeople = HashMap<String, (Diagnostic, usize)>;

/// The label of one line, or every problem it has.
fn label_line(
    record: &Record<'_>,
    run: &RunTraces<'_>,
    index: &HashMap<&str, usize>,
    annotator: Option<&str>,
    not_people: &mut NotPeople,
) -> Result<LabelLine, Vec<Diagnostic>> {
    let object = record.object().map_err(|e| vec![e])?;
    let mut errors = Errors::default();
    for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(record.error(
            &[Key(key.as_str())],
            format!("unknown field `{key}`{}", did_you_mean(key, FIELDS)),
        ));
    }
    let task_index = errors.one(task_index(record, run, index));
    let attempt = errors.one(whole_number(record, "attempt", "the trace's graph run"));
    let trace = match (task_index, attempt) {
        (Some(t), Some(a)) => errors.one(known_trace(record, run, t, a.unwrap_or(0) as usize)),
        _ => None,
    };
    let mode = errors.one(mode(record));
    let label = errors.one(label(record));
    let annotator = match annotator {
        Some(name) => Some(name.to_owned()),
        None => person(record, &mut errors, not_people),
    };
    let agent = errors.one(record.optional_str(&[Key("agent")]));
    let turn = errors.one(whole_number(record, "turn", "the 0-based message position"));
    let rationale = errors.one(record.optional_str(&[Key("rationale")]));
    match (trace, mode, label, annotator, agent, turn, rationale) {
        (
            Some((task_index, attempt)),
            Some(mode),
            Some(label),
            Some(annotator),
            Some(agent),
            Some(turn),
            Some(rationale),
        ) if errors.0.is_empty() => Ok(LabelLine {
            task_index,
            attempt,
            annotator,
            mode,
            label,
            agent: agent.map(str::to_owned),
            turn,
            rationale: rationale.map(str::to_owned),
        }),
        _ => Err(errors.0),
    }
}

/// The task the line's `trace` (its id) or `task_index` names.
fn task_index(
    record: &Record<'_>,
    run: &RunTraces<'_>,
    index: &HashMap<&str, usize>,
) -> Result<usize, Diagnostic> {
    let by_index = whole_number(record, "task_index", "a task's 0-based index")?;
    let by_id = match record.get(&[Key("trace")]) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(index.get(id.as_str()).copied().ok_or_else(|| {
            record.error(
                &[Key("trace")],
                format!(
                    "the run has no trace `{id}`{}",
                    did_you_mean(id, run.task_ids.iter().map(String::as_str))
                ),
            )
        })?),
        Some(other) => {
            let expected = "a string (the task id, as `labels export` writes it)";
            return Err(record.wrong_type(&[Key("trace")], expected, other));
        }
    };
    match (by_id, by_index.map(|i| i as usize)) {
        (Some(t), Some(i)) if t != i => Err(record.error(
            &[Key("task_index")],
            format!("`task_index` {i} is not this trace's: its task index is {t}; give one of the two, or make them agree"),
        )),
        (Some(t), _) => Ok(t),
        (None, Some(i)) if i < run.task_ids.len() => Ok(i),
        (None, Some(i)) => Err(record.error(
            &[Key("task_index")],
            format!(
                "the run has no task index {i}: it has {} task(s)",
                run.task_ids.len()
            ),
        )),
        (None, None) => Err(record.error(
            &[],
            "the line names no trace: give `trace` (the task id, as `labels export` writes it) or `task_index`",
        )),
    }
}

/// The trace (task index, attempt), which must be one of the run's.
fn known_trace(
    record: &Record<'_>,
    run: &RunTraces<'_>,
    task_index: usize,
    attempt: usize,
) -> Result<(usize, usize), Diagnostic> {
    if run.traces.contains(&(task_index, attempt)) {
        return Ok((task_index, attempt));
    }
    let attempts: Vec<String> = (run.traces.range((task_index, 0)..(task_index + 1, 0)))
        .map(|(_, a)| a.to_string())
        .collect();
    let at = match record.get(&[Key("attempt")]) {
        Some(_) => Key("attempt"),
        None if record.get(&[Key("trace")]).is_some() => Key("trace"),
        None => Key("task_index"),
    };
    let task = &run.task_ids[task_index];
    let message = match attempts.as_slice() {
        [] => format!(
            "task `{task}` has no trace: it has no graph run (the scenario has no `graph`, or the run stopped before one of this task's finished)"
        ),
        some => format!(
            "task `{task}` has no graph run {attempt}; its attempts are {}",
            some.join(", ")
        ),
    };
    Err(record.error(&[at], message))
}

/// The optional whole number at `key`; `what` says what it counts.
fn whole_number(record: &Record<'_>, key: &str, what: &str) -> Result<Option<u64>, Diagnostic> {
    match record.get(&[Key(key)]) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if v.is_u64() => Ok(v.as_u64()),
        Some(other) => {
            let expected = format!("a whole number ({what})");
            Err(record.wrong_type(&[Key(key)], &expected, other))
        }
    }
}

/// The mode the line's `code` names.
fn mode(record: &Record<'_>) -> Result<FailureMode, Diagnostic> {
    let code = match record.get(&[Key("code")]) {
        Some(Value::String(code)) => code,
        None | Some(Value::Null) => {
            let message = match record.get(&[Key("original")]).and_then(Value::as_str) {
                Some(original) => format!(
                    "the label has no `code`: `original` (`{original}`) alone is not enough, since people label the fourteen MAST modes; give `code`, e.g. \"FM-1.3\", or leave the line out"
                ),
                None => "missing field `code` (a MAST mode code, e.g. \"FM-1.3\")".to_owned(),
            };
            return Err(record.error(&[Key("code")], message));
        }
        Some(other) => return Err(record.wrong_type(&[Key("code")], "a string", other)),
    };
    match mode_by_code(code) {
        Some(Ok(mode)) => Ok(mode),
        _ => Err(record.error(
            &[Key("code")],
            format!(
                "`{code}` is not the code of one of the fourteen MAST modes (FM-1.1 to FM-1.5, FM-2.1 to FM-2.6, FM-3.1 to FM-3.3){}",
                did_you_mean(code, FailureMode::all().map(FailureMode::code))
            ),
        )),
    }
}

/// The label the line's `label` or `present` gives.
fn label(record: &Record<'_>) -> Result<HumanLabel, Diagnostic> {
    let named = match record.get(&[Key("label")]) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(HumanLabel::from_name).ok_or_else(|| {
            record.wrong_type(&[Key("label")], "\"present\", \"absent\" or \"unsure\"", v)
        })?),
    };
    let present = match record.get(&[Key("present")]) {
        None => None,
        Some(Value::Null) => Some(HumanLabel::Unsure),
        Some(Value::Bool(b)) => Some(HumanLabel::from_present(Some(*b))),
        Some(other) => {
            let expected = "true, false or null (unsure)";
            return Err(record.wrong_type(&[Key("present")], expected, other));
        }
    };
    match (named, present) {
        (Some(l), Some(p)) if l != p => Err(record.error(
            &[Key("label")],
            format!(
                "`label` \"{}\" and `present` ({}) disagree; give one of the two",
                l.as_str(),
                p.as_str()
            ),
        )),
        (Some(l), _) | (None, Some(l)) => Ok(l),
        (None, None) => Err(record.error(
            &[],
            "the line gives no label: give `present` (true, false, or null for unsure) or `label` (\"present\", \"absent\" or \"unsure\")",
        )),
    }
}

/// The person the line's `rater` names; a rater that is not a person is
/// kept in `not_people`.
fn person(record: &Record<'_>, errors: &mut Errors, not_people: &mut NotPeople) -> Option<String> {
    let Some(rater) = errors.one(record.optional_str(&[Key("rater")]))? else {
        errors.push(record.error(
            &[Key("rater")],
            "the line names no rater: give `rater` (\"human:NAME\"), or pass --annotator NAME to label every line as NAME's",
        ));
        return None;
    };
    match rater.strip_prefix(HUMAN_RATER_PREFIX) {
        Some(name) => match valid_annotator(name) {
            Ok(()) => return Some(name.to_owned()),
            Err(why) => {
                errors.push(record.error(&[Key("rater")], format!("rater `{rater}`: {why}")))
            }
        },
        None => {
            not_people
                .entry(rater.to_owned())
                .and_modify(|(_, more)| *more += 1)
                .or_insert_with(|| {
                    let message = format!(
                        "rater `{rater}` is not a person (people rate as `{HUMAN_RATER_PREFIX}NAME`); pass --annotator NAME to import these labels as NAME's"
                    );
                    (record.error(&[Key("rater")], message), 0)
                });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotator_names_follow_one_rule() {
        assert!(valid_annotator("ana").is_ok());
        assert!(valid_annotator("Zoë O'Neil").is_ok());
        assert!(valid_annotator("").is_err());
        assert!(valid_annotator(" ana").is_err());
        assert!(valid_annotator("a#2").is_err());
        assert!(valid_annotator("a\u{1b}[31m").is_err());
        assert!(valid_annotator(&"x".repeat(65)).is_err());
    }

    fn run() -> (Vec<String>, BTreeSet<(usize, usize)>) {
        let ids = vec!["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()];
        let traces = [(0, 0), (0, 1), (1, 0)].into_iter().collect();
        (ids, traces)
    }

    fn read_text(text: &str, annotator: Option<&str>) -> Result<Vec<LabelLine>, Vec<String>> {
        let (task_ids, traces) = run();
        let run = RunTraces {
            task_ids: &task_ids,
            traces: &traces,
        };
        read(Path::new("l.jsonl"), text, &run, annotator)
            .map_err(|d| d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn reads_exported_lines_and_hand_written_ones() {
        let text = concat!(
            r#"{"trace": "alpha", "task_index": 0, "attempt": 1, "source_id": null, "mas_name": null, "code": "FM-1.3", "original": "FM-1.3", "rater": "human:ann", "present": true, "agent": "coder", "turn": 4, "quote": null, "evidence_verified": null, "rationale": "says it twice"}"#,
            "\n\n",
            r#"{"task_index": 1, "code": "2.4", "label": "unsure", "rater": "human:bo"}"#,
            "\n",
            r#"{"trace": "alpha", "code": "FM-3.2", "present": null, "rater": "human:ann"}"#,
            "\n",
        );
        let lines = read_text(text, None).unwrap();
        assert_eq!(
            lines[0],
            LabelLine {
                task_index: 0,
                attempt: 1,
                annotator: "ann".into(),
                mode: FailureMode::StepRepetition,
                label: HumanLabel::Present,
                agent: Some("coder".into()),
                turn: Some(4),
                rationale: Some("says it twice".into()),
            }
        );
        assert_eq!(
            (lines[1].task_index, lines[1].attempt, lines[1].mode),
            (1, 0, FailureMode::InformationWithholding)
        );
        assert_eq!(lines[1].label, HumanLabel::Unsure);
        assert_eq!(lines[2].label, HumanLabel::Unsure);
        // One annotator named for the file outranks every line's rater.
        let judged =
            r#"{"trace": "beta", "code": "FM-1.1", "present": false, "rater": "mast:judge"}"#;
        let lines = read_text(judged, Some("cy")).unwrap();
        assert_eq!(lines[0].annotator, "cy");
        assert_eq!(lines[0].label, HumanLabel::Absent);
    }

    #[test]
    fn every_problem_of_every_line_is_reported_where_it_is() {
        let text = [
            r#"{"trace": "alpah", "code": "FM-1.3", "present": true, "rater": "human:a"}"#,
            r#"{"trace": "alpha", "code": "FM-1.9", "present": "yes", "rater": "injected"}"#,
            r#"{"trace": "alpha", "attempt": 2, "code": "FM-1.3", "present": true, "rater": "human:a"}"#,
            r#"{"trace": "gamma", "original": "Waiting", "present": true, "rater": "human:a"}"#,
            r#"{"trace": "beta", "code": "FM-1.1", "label": "present", "present": false, "rater": "human:a", "rationel": "x"}"#,
            r#"{"trace": "beta", "code": "FM-1.1", "present": true, "rater": "human:a"}"#,
            r#"{"trace": "beta", "code": "FM-1.1", "present": false, "rater": "human:a"}"#,
            r#"{"trace": "beta", "code": "#,
            r#"{"task_index": 7, "code": "FM-1.1", "present": true}"#,
            r#"{"trace": "beta", "code": "FM-2.1", "present": true, "rater": "injected"}"#,
        ]
        .join("\n");
        let got = read_text(&text, None).unwrap_err();
        let want = [
            "l.jsonl:1:11: error: the run has no trace `alpah`; did you mean `alpha`?",
            "l.jsonl:2:28: error: `FM-1.9` is not the code of one of the fourteen MAST modes",
            "l.jsonl:2:49: error: `present` must be true, false or null (unsure), not a string",
            "l.jsonl:2:65: error: rater `injected` is not a person (people rate as `human:NAME`); pass --annotator NAME to import these labels as NAME's (1 more line has rater `injected`)",
            "l.jsonl:3:31: error: task `alpha` has no graph run 2; its attempts are 0, 1",
            // A missing field is reported at the line's start.
            "l.jsonl:4:1: error: the label has no `code`: `original` (`Waiting`) alone is not enough",
            "l.jsonl:4:11: error: task `gamma` has no trace: it has no graph run",
            "l.jsonl:5:46: error: `label` \"present\" and `present` (absent) disagree",
            "l.jsonl:5:107: error: unknown field `rationel`; did you mean `rationale`?",
            "l.jsonl:7:27: error: FM-1.1 of this trace by a is labelled on line 6 already",
            "l.jsonl:8:26: error: not valid JSON",
            "l.jsonl:9:1: error: the line names no rater",
            "l.jsonl:9:16: error: the run has no task index 7: it has 3 task(s)",
        ];
        let firsts: Vec<&str> = got.iter().map(|g| g.lines().next().unwrap()).collect();
        assert_eq!(got.len(), want.len(), "{firsts:#?}");
        for (g, w) in firsts.iter().zip(want) {
            assert!(g.starts_with(w), "{g}\nshould start with\n{w}");
        }
    }

    #[test]
    fn labels_read_back_from_their_names_and_presence() {
        for l in HumanLabel::ALL {
            assert_eq!(HumanLabel::from_name(l.as_str()), Some(l));
            assert_eq!(HumanLabel::from_present(l.present()), l);
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.as_str())
            );
        }
        assert_eq!(HumanLabel::from_name("maybe"), None);
    }

    #[test]
    fn a_file_without_labels_is_refused() {
        let got = read_text("\n  \n", None).unwrap_err();
        assert_eq!(got, ["l.jsonl:1:1: error: the file holds no labels"]);
    }
}
