//! People's labels stored outside the viewer: `labels export`, edited,
//! then `labels import`; corrections kept as history while the latest
//! counts; annotators as people in `agreement`, their κ checked against an
//! independent computation; a bad file's every problem reported, with
//! nothing stored.

use std::path::Path;

use serde_json::Value;

use crate::judges::{agreement, failures_run, kappa_alpha_in_python, value};
use crate::util::{Crucible, Scratch, query, table_rows};

/// The run's labels by `rater` as `labels export` writes them, each line
/// parsed.
fn exported(db: &Path, rater: &str) -> Vec<Value> {
    Crucible::new(&["labels", "export", "1", "--raters", rater])
        .db(db)
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `labels` as JSONL.
fn jsonl(labels: &[Value]) -> String {
    labels.iter().map(|l| format!("{l}\n")).collect()
}

/// The injected labels with every `every`-th one (from `from`) flipped:
/// a person who mostly sees what was injected.
fn flipped(injected: &[Value], every: usize, from: usize) -> Vec<Value> {
    let mut labels = injected.to_vec();
    for l in labels.iter_mut().skip(from).step_by(every) {
        l["present"] = Value::Bool(!l["present"].as_bool().unwrap());
    }
    labels
}

fn relabelled(labels: Vec<Value>, rater: &str) -> Vec<Value> {
    let mut labels = labels;
    for l in &mut labels {
        l["rater"] = rater.into();
    }
    labels
}

/// Exported ground truth, edited into a person's labels (some unsure, some
/// with a rationale) and imported, exports again exactly as edited.
#[test]
fn exported_labels_edited_and_imported_round_trip() {
    let s = Scratch::new();
    let db = failures_run(&s, 5, "");
    let mut labels = relabelled(exported(&db, "injected"), "human:alice");
    assert_eq!(labels.len(), 20 * 14);
    for (i, l) in labels.iter_mut().enumerate() {
        if l["present"] == true {
            l["rationale"] = format!("seen at message {}", l["turn"]).into();
        } else if i % 9 == 0 {
            l["present"] = Value::Null;
        }
    }
    let file = s.write("alice.jsonl", &jsonl(&labels));
    let v = Crucible::new(&["labels", "import", "1"])
        .arg(&file)
        .db(&db)
        .json();
    assert_eq!(v["labels"], 280, "{v}");
    assert_eq!(v["traces"], 20, "{v}");
    assert_eq!(v["annotators"], serde_json::json!(["alice"]), "{v}");
    assert_eq!(exported(&db, "human:alice"), labels);
    // The history says where the labels came from; unsure is kept as such.
    let source = format!("import: {}", file.display());
    assert_eq!(
        table_rows(
            &db,
            "SELECT source, label, count(*) FROM annotations GROUP BY source, label ORDER BY label"
        ),
        [
            format!(
                "{source}|absent|{}",
                labels.iter().filter(|l| l["present"] == false).count()
            ),
            format!(
                "{source}|present|{}",
                labels.iter().filter(|l| l["present"] == true).count()
            ),
            format!(
                "{source}|unsure|{}",
                labels.iter().filter(|l| l["present"].is_null()).count()
            ),
        ]
    );
}

/// Two annotators imported — one from a file of someone else's labels,
/// named with --annotator — are people to `agreement`: both there, with
/// their majority `humans`, and their Cohen's κ per mode that of a few
/// lines of Python.
#[test]
fn two_annotators_agree_as_people_and_their_kappa_matches_python() {
    let s = Scratch::new();
    let db = failures_run(&s, 10, "");
    let injected = exported(&db, "injected");
    let alice = relabelled(flipped(&injected, 7, 3), "human:alice");
    Crucible::new(&["labels", "import", "1"])
        .arg(s.write("alice.jsonl", &jsonl(&alice)))
        .db(&db)
        .ok();
    // Without --annotator, `injected` is no person's name.
    let bob = s.write("bob.jsonl", &jsonl(&flipped(&injected, 5, 1)));
    let refused = Crucible::new(&["labels", "import", "1"])
        .arg(&bob)
        .db(&db)
        .output();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pass --annotator NAME"), "{stderr}");
    Crucible::new(&["labels", "import", "1", "--annotator", "bob"])
        .arg(&bob)
        .db(&db)
        .ok();
    let report = agreement(&db, &["--bootstrap", "0"]);
    for rater in ["human:alice", "human:bob", "humans", "injected"] {
        assert!(
            report["raters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == rater),
            "{rater} missing: {}",
            report["raters"]
        );
    }
    let python = kappa_alpha_in_python(&s, &db, "human:alice", "human:bob");
    let mut defined = 0;
    for m in report["modes"].as_array().unwrap() {
        let code = m["code"].as_str().unwrap();
        let want = &python[code];
        let pair = m["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["a"] == "human:alice" && p["b"] == "human:bob")
            .unwrap_or_else(|| panic!("{code}: no alice–bob pair"));
        assert_eq!(pair["both_labelled"].as_u64(), want["n"].as_u64(), "{code}");
        match (value(&pair["kappa"]), want["kappa"].as_f64()) {
            (Some(x), Some(y)) => {
                assert!((x - y).abs() < 1e-9, "{code}: {x} vs {y}");
                defined += 1;
            }
            (x, y) => assert_eq!(x, y, "{code}: defined in one and not the other"),
        }
    }
    assert!(defined >= 10, "κ defined for only {defined} modes");
}

/// A second import correcting a label replaces it in `labels` (and so in
/// every report), while `annotations` keeps both.
#[test]
fn a_correction_replaces_the_label_and_the_history_keeps_both() {
    let s = Scratch::new();
    let db = failures_run(&s, 2, "");
    let line = |label: &str, rationale: &str| {
        serde_json::json!({
            "trace": "task-00002", "attempt": 1, "code": "FM-2.4", "label": label,
            "rater": "human:alice", "agent": "coder", "rationale": rationale,
        })
    };
    for (name, label, rationale) in [
        ("first.jsonl", "present", "holds back the test results"),
        ("second.jsonl", "absent", "they were shared two turns later"),
    ] {
        Crucible::new(&["labels", "import", "1"])
            .arg(s.write(name, &jsonl(&[line(label, rationale)])))
            .db(&db)
            .ok();
    }
    assert_eq!(
        table_rows(
            &db,
            "SELECT task_index, attempt, code, present, agent, rationale FROM labels
             WHERE rater = 'human:alice'"
        ),
        ["1|1|FM-2.4|0|coder|they were shared two turns later"]
    );
    let dir = s.dir.path().display();
    assert_eq!(
        table_rows(
            &db,
            "SELECT annotator, code, label, rationale, source FROM annotations ORDER BY id"
        ),
        [
            format!("alice|FM-2.4|present|holds back the test results|import: {dir}/first.jsonl"),
            format!(
                "alice|FM-2.4|absent|they were shared two turns later|import: {dir}/second.jsonl"
            ),
        ]
    );
    let exported = exported(&db, "human:alice");
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["present"], false);
}

/// A file with three different bad lines among good ones: each problem at
/// its `FILE:LINE:COL`, exit status 2, and the database as it was.
#[test]
fn a_bad_labels_file_reports_every_problem_and_stores_nothing() {
    let s = Scratch::new();
    let db = failures_run(&s, 2, "");
    let good =
        r#"{"trace": "task-00001", "code": "FM-1.3", "present": true, "rater": "human:alice"}"#;
    let lines = [
        good.to_owned(),
        good.replace("task-00001", "task-0001"),
        good.replace("task-00001", "task-00002")
            .replace("FM-1.3", "FM-1.9"),
        good.trim_end_matches('}').to_owned(),
        good.replace("task-00001", "task-00002"),
    ];
    let text = lines.join("\n");
    // Where each problem is: the value at fault, or a cut line's end.
    let col = |line: usize, value: &str| lines[line - 1].find(value).unwrap() + 1;
    let file = s.write("bad.jsonl", &text);
    let labels = || table_rows(&db, "SELECT * FROM labels ORDER BY 1, 2, 3, 4, 5");
    let before = labels();
    let out = Crucible::new(&["labels", "import", "1"])
        .arg(&file)
        .db(&db)
        .output();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", s.dir.path().display()), "");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let located: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("bad.jsonl:"))
        .collect();
    let want = [
        format!(
            "bad.jsonl:2:{}: error: the run has no trace `task-0001`; did you mean `task-00001`?",
            col(2, "\"task-0001\"")
        ),
        format!(
            "bad.jsonl:3:{}: error: `FM-1.9` is not the code of one of the fourteen MAST modes",
            col(3, "\"FM-1.9\"")
        ),
        format!(
            "bad.jsonl:4:{}: error: not valid JSON: EOF while parsing an object",
            lines[3].len()
        ),
    ];
    assert_eq!(located.len(), want.len(), "{stderr}");
    for (got, want) in located.iter().zip(want) {
        assert!(got.starts_with(&want), "{got}\nshould start with\n{want}");
    }
    assert!(stderr.contains("3 error(s)"), "{stderr}");
    assert_eq!(labels(), before);
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM annotations"), 0);
}
