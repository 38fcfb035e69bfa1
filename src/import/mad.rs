//! MAD, the MAST study's dataset of multi-agent traces (Cemri et al., "Why
//! Do Multi-Agent LLM Systems Fail?", `mcemri/MAST-Data`), read from a
//! JSON array or JSONL of its records.
//!
//! Two record shapes, told apart per record:
//! - the full dataset (`MAD_full_dataset.json`): `{mas_name, llm_name,
//!   benchmark_name, trace_id, trace: {key, index, trajectory},
//!   mast_annotation: {"1.1": 0|1, ...}}`, labelled by o1 (rater
//!   `mad:o1`) with the published fourteen modes' codes;
//! - the human-labelled dataset (`MAD_human_labelled_dataset.json`):
//!   `{round, mas_name, benchmark_name, trace_id, trace, annotations:
//!   [{"failure mode": "<code> <name>\n\n<definition>", annotator_1, ...}]}`,
//!   one label per annotator (rater `mad:annotator_1`). Earlier rounds
//!   used earlier taxonomies whose numbers mean other modes, so these
//!   labels map by the mode's *name*, through the judge file's names.
//!
//! The trace is a raw log ([`raw_log`]) or a list of messages.

use std::path::Path;

use serde_json::{Map, Value};

use crate::import::locate::{self, Errors, Record, Step::Index, Step::Key};
use crate::import::{
    Imported, ImportedLabel, ImportedMessage, ImportedTrace, json_messages, mode_by_name, mode_of,
    raw_log, read_records,
};
use crate::scenario::diagnostic::Diagnostic;
use crate::scenario::judge_file::NameMatch;

/// The fields of a record that say where its trace came from.
const SOURCE_FIELDS: [&str; 5] = [
    "mas_name",
    "llm_name",
    "benchmark_name",
    "round",
    "trace_id",
];

/// The traces of a MAD file; `names` is the judge file's lookup of
/// failure-mode names.
pub fn read(
    path: &Path,
    text: &str,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<Imported, Vec<Diagnostic>> {
    read_records(path, text, "trace_id", |record| trace(record, names))
}

/// Which of MAD's files a record is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    HumanLabelled,
}

fn trace(
    record: &Record,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<ImportedTrace, Vec<Diagnostic>> {
    let object = record.object().map_err(|e| vec![e])?;
    let shape = match (
        object.contains_key("mast_annotation"),
        object.contains_key("annotations"),
    ) {
        (true, _) => Shape::Full,
        (false, true) => Shape::HumanLabelled,
        (false, false) => {
            return Err(vec![record.error(
                &[],
                "has neither `mast_annotation` (the full dataset's labels) nor `annotations` (the human-labelled dataset's); is this a MAD file?",
            )]);
        }
    };
    let mut errors = Errors::default();
    let id_path = [Key("trace_id")];
    let id = errors.one(record.require(&id_path).and_then(|v| {
        locate::scalar_text(v).ok_or_else(|| record.wrong_type(&id_path, "a number or a string", v))
    }));
    let mas_name = errors.one(record.require_str(&[Key("mas_name")]));
    let log_path = match shape {
        Shape::Full => vec![Key("trace"), Key("trajectory")],
        Shape::HumanLabelled => vec![Key("trace")],
    };
    let log = errors.all(log(record, &log_path, mas_name.unwrap_or_default()));
    let labels = errors.all(match shape {
        Shape::Full => code_labels(record, names),
        Shape::HumanLabelled => annotator_labels(record, names),
    });
    let (Some(id), Some((messages, task)), Some(labels)) = (id, log, labels) else {
        return Err(errors.0);
    };
    let mut trace = ImportedTrace::new(id, source(object, shape), task, messages);
    trace.labels = labels;
    errors.or(trace)
}

/// Where the record's trace came from: its system, model, benchmark, round
/// and id, and for the full dataset the trace's `key` and `index`.
fn source(object: &Map<String, Value>, shape: Shape) -> Map<String, Value> {
    let mut source: Map<String, Value> = SOURCE_FIELDS
        .iter()
        .filter_map(|k| Some((k.to_string(), object.get(*k)?.clone())))
        .collect();
    if shape == Shape::Full {
        for key in ["key", "index"] {
            if let Some(v) = object.get("trace").and_then(|t| t.get(key)) {
                source.insert(format!("trace_{key}"), v.clone());
            }
        }
    }
    source
}

/// The messages and task of the trace at `path`: a raw log, or a list of
/// messages.
fn log(
    record: &Record,
    path: &[locate::Step],
    mas_name: &str,
) -> Result<(Vec<ImportedMessage>, String), Vec<Diagnostic>> {
    match record.require(path).map_err(|e| vec![e])? {
        Value::String(log) => Ok((raw_log::split(log, mas_name), raw_log::task(log))),
        Value::Array(list) => json_messages(list)
            .map(|messages| (messages, String::new()))
            .map_err(|problems| problems.iter().map(|p| record.report(path, p)).collect()),
        other => Err(vec![record.wrong_type(
            path,
            "a string (the run's raw log) or a list of messages",
            other,
        )]),
    }
}

/// The full dataset's labels: `mast_annotation`, code → 0 or 1.
fn code_labels(
    record: &Record,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<Vec<ImportedLabel>, Vec<Diagnostic>> {
    let path = [Key("mast_annotation")];
    let codes = match record.require(&path).map_err(|e| vec![e])? {
        Value::Object(codes) => codes,
        other => {
            let expected = "an object of mode codes to 0 or 1";
            return Err(vec![record.wrong_type(&path, expected, other)]);
        }
    };
    let mut labels = Vec::new();
    let mut errors = Errors::default();
    for (code, value) in codes {
        let at = [Key("mast_annotation"), Key(code)];
        let mode = errors.one(mode_of(code, names).map_err(|m| record.error(&at, m)));
        let present = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            other => {
                errors.push(record.wrong_type(&at, "0, 1, true or false", other));
                None
            }
        };
        if let (Some(mode), Some(present)) = (mode, present) {
            labels.push(ImportedLabel {
                rater: "mad:o1".to_owned(),
                mode,
                original: code.clone(),
                present: Some(present),
                agent: None,
                turn: None,
            });
        }
    }
    errors.or(labels)
}

/// The human-labelled dataset's labels: one per annotator per failure mode
/// of `annotations`, the mode found by its name.
fn annotator_labels(
    record: &Record,
    names: &dyn Fn(&str) -> NameMatch,
) -> Result<Vec<ImportedLabel>, Vec<Diagnostic>> {
    let expected = "a list of {\"failure mode\": ..., \"annotator_1\": ...} objects";
    let list = record
        .require_list(&[Key("annotations")], expected)
        .map_err(|e| vec![e])?;
    let mut labels = Vec::new();
    let mut errors = Errors::default();
    for (i, item) in list.iter().enumerate() {
        let at = |key| [Key("annotations"), Index(i), Key(key)];
        let Some(annotation) = item.as_object() else {
            let path = [Key("annotations"), Index(i)];
            errors.push(record.wrong_type(&path, "an object", item));
            continue;
        };
        let Some(field) = errors.one(record.require_str(&at("failure mode"))) else {
            continue;
        };
        let original = field.lines().next().unwrap_or_default().trim();
        let Some(mode) = errors.one(
            mode_by_name(without_code(original), names)
                .map_err(|m| record.error(&at("failure mode"), m)),
        ) else {
            continue;
        };
        let mut raters: Vec<&String> = annotation
            .keys()
            .filter(|k| k.starts_with("annotator"))
            .collect();
        raters.sort();
        for rater in raters {
            let present = match &annotation[rater] {
                Value::Bool(b) => Some(*b),
                Value::Null => None,
                other => {
                    errors.push(record.wrong_type(&at(rater), "true, false or null", other));
                    continue;
                }
            };
            labels.push(ImportedLabel {
                rater: format!("mad:{rater}"),
                mode,
                original: original.to_owned(),
                present,
                agent: None,
                turn: None,
            });
        }
    }
    errors.or(labels)
}

/// A failure mode's name without the code the label starts with
/// ("1.2 Inconsistency between reasoning and action").
fn without_code(label: &str) -> &str {
    match label.split_once(char::is_whitespace) {
        Some((code, name))
            if code.starts_with(|c: char| c.is_ascii_digit())
                && code.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            name.trim()
        }
        _ => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::testing::names;
    use crate::import::testing::{assert_diagnostics, rendered};
    use crate::scenario::failure::FailureMode;
    use crate::scenario::judge_file::JudgeFile;

    const SAMPLE: &str = include_str!("../../tests/data/mad/MAD_human_labelled_sample.json");

    fn sample() -> Imported {
        read(Path::new("MAD_human_labelled_sample.json"), SAMPLE, &names).unwrap()
    }

    /// A label as written, the code it maps to (`None`: unmapped), and the
    /// three annotators' verdicts.
    type Row = (String, Option<&'static str>, [Option<bool>; 3]);

    /// Each failure mode of a trace's annotations, in order, as a [`Row`].
    fn table(trace: &ImportedTrace) -> Vec<Row> {
        trace
            .labels
            .chunks(3)
            .map(|three| {
                let raters: Vec<_> = three.iter().map(|l| l.rater.as_str()).collect();
                assert_eq!(
                    raters,
                    ["mad:annotator_1", "mad:annotator_2", "mad:annotator_3"]
                );
                assert!(three.iter().all(|l| l.original == three[0].original));
                (
                    three[0].original.clone(),
                    three[0].mode.map(FailureMode::code),
                    [three[0].present, three[1].present, three[2].present],
                )
            })
            .collect()
    }

    fn expected(rows: &[(&str, Option<&'static str>, bool)]) -> Vec<Row> {
        rows.iter()
            .map(|(o, c, p)| (o.to_string(), *c, [Some(*p); 3]))
            .collect()
    }

    #[test]
    fn maps_every_label_of_round_2_by_name() {
        let imported = sample();
        let ag2 = &imported.traces[0];
        // Read by hand from the sample: all three annotators agree, and
        // only "3.3 Lack of result verification" is seen.
        let want = expected(&[
            ("1.1 Poor task constraint compliance", Some("FM-1.1"), false),
            (
                "1.2 Inconsistency between reasoning and action",
                Some("FM-2.6"),
                false,
            ),
            ("1.3 Unaware of stopping conditions", Some("FM-1.5"), false),
            ("1.4 Unbatched repetitive execution", None, false),
            ("1.5 Step repetition", Some("FM-1.3"), false),
            ("1.6 Backtracking interruption", Some("FM-1.4"), false),
            ("1.7 Disobey role specification", Some("FM-1.2"), false),
            ("2.1 Conversation reset", Some("FM-2.1"), false),
            ("2.2 Fail to elicit clarification", Some("FM-2.2"), false),
            ("2.3 Derailment from task", Some("FM-2.3"), false),
            (
                "2.4 Undetected conversation ambiguities and contradictions",
                None,
                false,
            ),
            ("2.5 Disagreement induced inaction", None, false),
            (
                "2.6 Withholding relevant information",
                Some("FM-2.4"),
                false,
            ),
            (
                "2.7 Ignoring suggestions from agents",
                Some("FM-2.5"),
                false,
            ),
            (
                "3.1 Ill specified termination condition leading to premature termination",
                Some("FM-3.1"),
                false,
            ),
            ("3.2 Lack of critical verification", Some("FM-3.3"), false),
            ("3.3 Lack of result verification", Some("FM-3.2"), true),
        ]);
        assert_eq!(table(ag2), want);
        assert_eq!(ag2.source_id, "7");
        let source: Vec<_> = ag2.source.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            source,
            [
                "benchmark_name=\"GSM-Plus\"",
                "mas_name=\"AG2\"",
                "round=\"Round 2\"",
                "trace_id=7"
            ]
        );
        assert_eq!(ag2.messages.len(), 4);
        assert!(ag2.task.starts_with("Miss Maria"));
    }

    #[test]
    fn maps_every_label_of_round_1_by_name() {
        let imported = sample();
        let metagpt = &imported.traces[1];
        let want = expected(&[
            ("1.1 Poor task constraint compliance", Some("FM-1.1"), false),
            (
                "1.2 Inconsistency between reasoning and action",
                Some("FM-2.6"),
                true,
            ),
            (
                "1.3 Undetected conversation ambiguities and contradictions",
                None,
                false,
            ),
            ("1.4 Fail to elicit clarification", Some("FM-2.2"), false),
            ("1.5 Unaware of stopping conditions", Some("FM-1.5"), true),
            ("2.1 Unbatched repetitive execution", None, false),
            ("2.2 Step repetition", Some("FM-1.3"), true),
            ("2.3 Backtracking interruption", Some("FM-1.4"), false),
            ("2.4 Conversation reset", Some("FM-2.1"), true),
            ("2.5 Derailment from task", Some("FM-2.3"), true),
            ("2.6 Disobey role specification", Some("FM-1.2"), true),
            ("3.1 Disagreement induced inaction", None, false),
            (
                "3.2 Withholding relevant information",
                Some("FM-2.4"),
                false,
            ),
            (
                "3.3 Ignoring suggestions from agents",
                Some("FM-2.5"),
                false,
            ),
            ("3.4 Waiting for known information", None, true),
            (
                "4.1 Ill specified termination condition leading to premature termination",
                Some("FM-3.1"),
                false,
            ),
            ("4.3 Lack of critical verification", Some("FM-3.3"), true),
            ("4.2 Lack of result verification", Some("FM-3.2"), true),
        ]);
        assert_eq!(table(metagpt), want);
        assert_eq!(metagpt.source_id, "4");
        assert_eq!(metagpt.source["round"], "Round 1");
        assert_eq!(metagpt.messages.len(), 5);
    }

    #[test]
    fn the_mast_judge_file_maps_the_sample_as_the_test_names_do() {
        let yaml = include_str!("../../judges/mast.yaml").to_owned();
        let judge = JudgeFile::from_text(Path::new("judges/mast.yaml"), yaml).unwrap();
        let path = Path::new("MAD_human_labelled_sample.json");
        assert_eq!(
            read(path, SAMPLE, &|n| judge.match_name(n)).unwrap(),
            sample()
        );
    }

    #[test]
    fn gathers_the_unmapped_labels_of_both_rounds() {
        assert_eq!(
            sample().unmapped,
            [
                "1.3 Undetected conversation ambiguities and contradictions",
                "1.4 Unbatched repetitive execution",
                "2.1 Unbatched repetitive execution",
                "2.4 Undetected conversation ambiguities and contradictions",
                "2.5 Disagreement induced inaction",
                "3.1 Disagreement induced inaction",
                "3.4 Waiting for known information",
            ]
        );
    }

    #[test]
    fn content_hashes_differ_and_are_stable() {
        let (a, b) = (sample(), sample());
        let hashes: Vec<_> = a.traces.iter().map(|t| t.content_hash.as_str()).collect();
        assert_ne!(hashes[0], hashes[1]);
        assert_eq!(a, b);
        // Pinned: stored traces are found again by this hash.
        assert_eq!(
            hashes,
            [
                "16ac2553e987226dbb0589d0aa7ce201",
                "50ce03721be3f64e1f825ef6abb92a75"
            ]
        );
    }

    #[test]
    fn reads_full_dataset_records_as_jsonl() {
        let text = concat!(
            r#"{"mas_name": "ChatDev", "llm_name": "GPT-4o", "benchmark_name": "ProgramDev", "trace_id": 3, "trace": {"key": "ChatDev_ProgramDev_GPT4o", "index": 3, "trajectory": "[2025-31-03 20:04:23 INFO] **[Preprocessing]**\n\n**task_prompt**: x"}, "mast_annotation": {"1.1": 0, "2.2": 1, "3.3": true}}"#,
            "\n",
        );
        let imported = read(Path::new("full.jsonl"), text, &names).unwrap();
        let trace = &imported.traces[0];
        let labels: Vec<_> = trace
            .labels
            .iter()
            .map(|l| {
                (
                    l.rater.as_str(),
                    l.mode.map(FailureMode::code),
                    l.original.as_str(),
                    l.present,
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("mad:o1", Some("FM-1.1"), "1.1", Some(false)),
                ("mad:o1", Some("FM-2.2"), "2.2", Some(true)),
                ("mad:o1", Some("FM-3.3"), "3.3", Some(true)),
            ]
        );
        assert_eq!(trace.source["llm_name"], "GPT-4o");
        assert_eq!(trace.source["trace_key"], "ChatDev_ProgramDev_GPT4o");
        assert_eq!(trace.messages.len(), 1);
    }

    fn errors(text: &str) -> Vec<String> {
        rendered(read(Path::new("bad.json"), text, &names))
    }

    #[test]
    fn bad_json_is_reported_where_serde_json_stopped() {
        let e = errors("[\n  {\"trace_id\": 1,, \"trace\": \"x\"}\n]\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("bad.json:2:18: error: not valid JSON: "),
            "{}",
            e[0]
        );
    }

    #[test]
    fn every_bad_record_is_reported_at_its_place() {
        let text = r#"[
  {"mas_name": "AG2", "trace_id": 1, "trace": "a", "annotations": []},
  {"mas_name": "AG2", "trace_id": 17, "annotations": [
    {"failure mode": "9.9 Made-up failure\n\ndefinition", "annotator_1": true}
  ]},
  {"mas_name": "AG2", "trace_id": 18, "trace": {"trajectory": "t"}, "mast_annotation": {"1.1": 0, "4.1": 1, "1.2": 2}}
]
"#;
        let e = errors(text);
        assert_diagnostics(
            &e,
            &[
                "bad.json:3:3: error: record 2 (trace_id 17): missing field `trace`\n 3 |   {\"mas_name\"",
                "bad.json:4:22: error: record 2 (trace_id 17): failure mode `Made-up failure` is not in the judge file's modes, aliases or `unmapped` list; add it there",
                "bad.json:6:106: error: record 3 (trace_id 18): `4.1` is not the code of one of the fourteen MAST modes",
                "bad.json:6:116: error: record 3 (trace_id 18): `mast_annotation.1.2` must be 0, 1, true or false, not a number",
            ],
        );
    }
}
