//! Failure judges: the MAST judge inline and post hoc on simulated and
//! real (llama.cpp) models, budgets and resumption, imported traces, and
//! agreement statistics checked against an independent computation.

use std::path::{Path, PathBuf};

use crate::util::{Case, Crucible, Scratch, check_cases, llama_url, query, root};

/// A simulated judge model's lines, for `models:`.
const SIM_JUDGE: &str = "  judge:
    provider: simulated
    judge:
      sensitivity: 0.8
      specificity: 0.9
      modes: {FM-1.3: {sensitivity: 0.6}}
";

/// `scenarios/failures.yaml` with `count` tasks, the simulated judge
/// model, and `judges` (a YAML list, or "" for none), written into `s`.
fn failures(s: &Scratch, count: usize, judges: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("scenarios/failures.yaml")).unwrap();
    let text = text
        .replace("\nagents:", &format!("{SIM_JUDGE}\nagents:"))
        .replace(
            "synthetic: {count: 100}",
            &format!("synthetic: {{count: {count}}}"),
        );
    let text = if judges.is_empty() {
        text
    } else {
        text.replace(
            "\nstrategies:",
            &format!("\njudges: {judges}\n\nstrategies:"),
        )
    };
    s.write("judges/mast.yaml", &mast());
    s.write("failures.yaml", &text)
}

/// [`failures`] run into a fresh database; the database.
pub(crate) fn failures_run(s: &Scratch, count: usize, judges: &str) -> PathBuf {
    let db = s.path("run.db");
    let v = Crucible::new(&["run"])
        .arg(failures(s, count, judges))
        .db(&db)
        .json();
    assert_eq!(v["status"], "completed", "{v}");
    db
}

fn mast() -> String {
    std::fs::read_to_string(root().join("judges/mast.yaml")).unwrap()
}

/// `crucible agreement RUN --json` with `args`.
pub(crate) fn agreement(db: &Path, args: &[&str]) -> serde_json::Value {
    Crucible::new(&["agreement", "1"]).db(db).args(args).json()
}

/// A statistic's value in an agreement report.
pub(crate) fn value(v: &serde_json::Value) -> Option<f64> {
    v["value"].as_f64()
}

/// Cohen's κ and Krippendorff's α (nominal, two raters, no missing
/// labels) per mode code, computed from `labels export` by a few lines of
/// Python that share nothing with crucible.
pub(crate) fn kappa_alpha_in_python(s: &Scratch, db: &Path, a: &str, b: &str) -> serde_json::Value {
    let export = Crucible::new(&["labels", "export", "1"]).db(db).ok();
    let labels = s.write("labels.jsonl", &export);
    let script = s.write(
        "agree.py",
        r#"
import json, sys
from collections import defaultdict
a, b = sys.argv[2], sys.argv[3]
pairs = defaultdict(dict)
for line in open(sys.argv[1]):
    l = json.loads(line)
    if l["rater"] in (a, b) and l["present"] is not None and l["code"]:
        pairs[(l["code"], l["trace"], l["attempt"])][l["rater"]] = int(l["present"])
out = {}
for code in sorted({k[0] for k in pairs}):
    xs = [(v[a], v[b]) for k, v in pairs.items() if k[0] == code and a in v and b in v]
    n = len(xs)
    po = sum(x == y for x, y in xs) / n
    pa, pb = sum(x for x, _ in xs) / n, sum(y for _, y in xs) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = None if pe == 1 else (po - pe) / (1 - pe)
    # Krippendorff: observed vs expected disagreement over the 2n pairable values.
    values = [x for p in xs for x in p]
    n1 = sum(values); n0 = len(values) - n1
    do = sum(x != y for x, y in xs) * 2 / len(values)
    de = 2 * n0 * n1 / (len(values) * (len(values) - 1))
    alpha = None if de == 0 else 1 - do / de
    out[code] = {"kappa": kappa, "alpha": alpha, "n": n}
print(json.dumps(out))
"#,
    );
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&labels)
        .args([a, b])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Hundreds of graph runs with injected failures, each judged inline by a
/// simulated judge of known sensitivity and specificity: what crucible
/// measures against the injected truth is within sampling error of what
/// was configured, and its κ and α equal an independent computation.
#[test]
fn a_simulated_judge_measures_as_configured_and_agreement_matches_python() {
    let s = Scratch::new();
    let file = failures(&s, 100, "[{file: judges/mast.yaml, model: judge}]");
    let db = s.path("j.db");
    let v = Crucible::new(&["run"]).arg(&file).db(&db).json();
    assert_eq!(v["status"], "completed", "{v}");
    let traces: i64 = query(&db, "SELECT count(*) FROM graph_runs");
    assert_eq!(traces, 400);
    // Every trace judged once, its judge's call traced with role `judge`.
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM judgements WHERE status = 'parsed'"
        ),
        traces
    );
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM calls WHERE role = 'judge'"),
        traces
    );
    let report = agreement(
        &db,
        &["--raters", "injected,mast:judge", "--bootstrap", "0"],
    );
    // Within 4 standard errors of the configured rate, per mode and pooled
    // over the modes that share one.
    let near = |(hit, n): (f64, f64), want: f64| {
        let se = (want * (1.0 - want) / n).sqrt();
        (hit / n - want).abs() <= 4.0 * se
    };
    let (mut recall, mut tnr, mut checked) = ((0.0, 0.0), (0.0, 0.0), 0);
    for m in report["modes"].as_array().unwrap() {
        let code = m["code"].as_str().unwrap();
        let vs = &m["vs_reference"][0];
        assert_eq!(vs["rater"], "mast:judge");
        let count = |k: &str| vs["counts"][k].as_f64().unwrap();
        let (tp, fn_) = (count("true_positives"), count("false_negatives"));
        let (tn, fp) = (count("true_negatives"), count("false_positives"));
        let sensitivity = if code == "FM-1.3" { 0.6 } else { 0.8 };
        if tp + fn_ >= 30.0 {
            assert!(near((tp, tp + fn_), sensitivity), "{code}: {vs}");
            checked += 1;
        }
        if code != "FM-1.3" {
            recall = (recall.0 + tp, recall.1 + tp + fn_);
        }
        assert!(near((tn, tn + fp), 0.9), "{code}: {vs}");
        tnr = (tnr.0 + tn, tnr.1 + tn + fp);
    }
    assert!(
        checked >= 4,
        "too few injected modes to check recall: {checked}"
    );
    assert!(near(recall, 0.8), "pooled recall {recall:?}");
    assert!(near(tnr, 0.9), "pooled specificity {tnr:?}");
    let python = kappa_alpha_in_python(&s, &db, "injected", "mast:judge");
    for m in report["modes"].as_array().unwrap() {
        let code = m["code"].as_str().unwrap();
        let want = &python[code];
        let pair = &m["pairs"][0];
        assert_eq!(pair["both_labelled"].as_u64(), want["n"].as_u64(), "{code}");
        for (ours, theirs) in [
            (value(&pair["kappa"]), want["kappa"].as_f64()),
            (value(&m["alpha"]), want["alpha"].as_f64()),
        ] {
            match (ours, theirs) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{code}: {x} vs {y}"),
                (x, y) => assert_eq!(x, y, "{code}: defined in one and not the other"),
            }
        }
    }
}

/// A simulated judge with known error rates (sensitivity 0.8, specificity
/// 0.9) on simulated runs whose injected failures are the truth: over
/// seeds, the judge's rate corrected on the traces outside a 30%
/// calibration subset covers the true prevalence about as often as its
/// interval says, and its raw rate — biased by false alarms — almost never.
/// The truth is each run's injected rate over all its traces, which the
/// unlabelled ones estimate.
#[test]
fn corrected_rates_cover_the_true_prevalence_and_raw_rates_do_not() {
    let s = Scratch::new();
    let file = failures(&s, 60, "[{file: judges/mast.yaml, model: judge}]");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("      modes: {FM-1.3: {sensitivity: 0.6}}\n", "");
    let file = s.write("failures.yaml", &text);
    let seeds = 12;
    let (mut corrected, mut raw) = (0, 0);
    for seed in 0..seeds {
        let db = s.path(&format!("c{seed}.db"));
        Crucible::new(&["run"])
            .arg(&file)
            .args(&["--set", &format!("seed={seed}")])
            .db(&db)
            .json();
        let truth: f64 = query(
            &db,
            "SELECT avg(present) FROM labels WHERE rater = 'injected'",
        );
        let report = agreement(
            &db,
            &[
                "--raters",
                "injected,mast:judge",
                "--calibrate",
                "0.3",
                "--seed",
                &seed.to_string(),
            ],
        );
        let c = &report["pooled"]["corrected_prevalence"][0];
        let covers = |e: &serde_json::Value| {
            let ci = e["ci"].as_array().unwrap();
            ci[0].as_f64().unwrap() <= truth && truth <= ci[1].as_f64().unwrap()
        };
        corrected += usize::from(covers(&c["corrected"]));
        raw += usize::from(covers(&c["raw"]));
    }
    assert!(
        corrected >= 10,
        "corrected covered the truth {corrected}/{seeds} times"
    );
    assert!(raw <= 2, "raw covered the truth {raw}/{seeds} times");
}

/// A judge's own seed (or temperature) makes a copy of its model with that
/// setting, judging as a rater of its own beside the model's defaults.
#[test]
fn a_judges_own_seed_makes_a_rater_of_its_own() {
    let s = Scratch::new();
    let db = failures_run(
        &s,
        5,
        "[{file: judges/mast.yaml, model: judge}, {file: judges/mast.yaml, model: judge, seed: 9}]",
    );
    let labels = |rater: &str| {
        crate::util::table_rows(
            &db,
            &format!(
                "SELECT task_index, attempt, code, present FROM labels WHERE rater = '{rater}' ORDER BY 1, 2, 3"
            ),
        )
    };
    let (default, seeded) = (labels("mast:judge"), labels("mast:judge[seed=9]"));
    assert_eq!(default.len(), 20 * 14);
    assert_eq!(seeded.len(), 20 * 14);
    assert_ne!(default, seeded, "another seed drew the same verdicts");
    // A simulated judge has no temperature to set.
    let out = Crucible::new(&["judge", "1", "--model", "judge", "--temperature", "0.5"])
        .arg("--judge")
        .arg(s.path("judges/mast.yaml"))
        .db(&db)
        .output();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no temperature"));
}

/// Post-hoc judging under a budget stops, says how to go on, and when run
/// again judges only what is left; judging once more makes no call.
#[test]
fn a_budget_stopped_judgement_resumes_and_judging_again_costs_nothing() {
    let s = Scratch::new();
    let db = failures_run(&s, 10, "");
    let judge = |extra: &[&str]| {
        Crucible::new(&["judge", "1", "--model", "judge"])
            .arg("--judge")
            .arg(s.path("judges/mast.yaml"))
            .db(&db)
            .args(extra)
            .output()
    };
    let calls = || query::<i64>(&db, "SELECT count(*) FROM calls WHERE role = 'judge'");
    let twice = judge(&["--model", "judge"]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("named twice"));
    let stopped = judge(&["--max-requests", "15", "--concurrency", "4"]);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("larger budget"), "{stderr}");
    assert_eq!(calls(), 15);
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM judgements"), 15);
    let rest = judge(&["--json"]);
    assert!(
        rest.status.success(),
        "{}",
        String::from_utf8_lossy(&rest.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(v["judged"]["skipped"], 15, "{v}");
    assert_eq!(v["judged"]["traces"], 25, "{v}");
    assert_eq!(calls(), 40);
    assert_eq!(v["traces"], 40);
    let again = judge(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["judged"]["skipped"], 40, "{v}");
    assert_eq!(calls(), 40, "judging again made calls");
    // Every judgement names the judge file it used.
    let hash = blake3::hash(mast().as_bytes()).to_hex().to_string();
    assert_eq!(
        query::<i64>(
            &db,
            &format!(
                "SELECT count(*) FROM judgements WHERE judge_hash = '{hash}' AND judge_version = '1'"
            )
        ),
        40
    );
}

/// Inline judges' calls count against the run's budget like every other
/// call; a budget-stopped run resumes, judging each graph run once.
#[test]
fn inline_judge_calls_count_against_the_budget_and_resume() {
    let s = Scratch::new();
    let file = failures(&s, 3, "[{file: judges/mast.yaml, model: judge}]");
    let db = s.path("b.db");
    let out = Crucible::new(&["run", "--max-requests", "60", "--json"])
        .arg(&file)
        .db(&db)
        .output();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = |sql: &str| query::<i64>(&db, &format!("SELECT count(*) FROM calls {sql}"));
    // Agents' and judges' calls together make up the 60.
    assert_eq!(calls(""), 60);
    assert!(
        calls("WHERE role = 'judge'") > 0,
        "no graph run was judged before the stop"
    );
    Crucible::new(&["resume", "1", "--max-requests", "1000"])
        .db(&db)
        .ok();
    assert_eq!(query::<String>(&db, "SELECT status FROM runs"), "completed");
    let runs: i64 = query(&db, "SELECT count(*) FROM graph_runs");
    assert_eq!(runs, 12);
    assert_eq!(calls("WHERE role = 'judge'"), runs);
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM judgements"), runs);
}

/// Judging again with more repeats keeps the earlier judgements (their
/// labels refer to them) and adds the new repeats' — the same when a budget
/// or a failed call left a trace partly judged.
#[test]
fn judging_again_with_more_repeats_keeps_the_earlier_judgements() {
    let s = Scratch::new();
    let file = failures(
        &s,
        3,
        "[{file: judges/mast.yaml, model: judge, repeats: 2}]",
    );
    let db = s.path("j.db");
    Crucible::new(&["run"]).arg(&file).db(&db).json();
    let ids = || {
        crate::util::table_rows(
            &db,
            "SELECT id, task_index, attempt, repeat FROM judgements ORDER BY id",
        )
    };
    let before = ids();
    assert_eq!(before.len(), 12 * 2);
    Crucible::new(&["judge", "1", "--model", "judge", "--repeats", "3"])
        .arg("--judge")
        .arg(s.path("judges/mast.yaml"))
        .db(&db)
        .ok();
    let after = ids();
    assert_eq!(after.len(), 12 * 3);
    assert_eq!(after[..before.len()], before[..]);
    // Only the new repeats were asked for.
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM calls WHERE role = 'judge'"),
        12 * 3
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM labels WHERE rater = 'mast:judge#3'"
        ),
        12 * 14
    );
}

/// A judge over real HTTP (the sim-server) that cites one message and
/// quotes it, half the time with words that message never had: each quote
/// is checked against the message it cites, and `show --transcript` says
/// which ones are not there.
#[test]
fn hallucinated_evidence_is_marked_as_not_in_the_cited_message() {
    let s = Scratch::new();
    let served = s.write(
        "judge-server.yaml",
        r#"name: judge-server
models:
  judge:
    provider: simulated
    distribution: {answers: {"Plan: restate the question": 0.5, "nothing like this was said": 0.5}}
    format: '{"failures": [{"code": "1.2", "present": true, "evidence": {"turn": 0, "agent": "planner", "quote": "{answer}"}}]}'
agents:
  judge: {model: judge, prompt: "{{ q }}"}
answer:
  extract: {regex: '"quote": "([^"]*)"'}
dataset:
  items: [{q: x}]
strategies: [{kind: self_consistency, agent: judge, n: 1}]
"#,
    );
    let server = crate::util::SimServer::start(&served, &[]);
    let file = failures(&s, 10, "[{file: judges/mast.yaml, model: http}]");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "\nagents:",
        &format!(
            "  http:\n    provider: openai\n    base_url: {}\n    model: judge\n\nagents:",
            server.url
        ),
    );
    let file = s.write("failures.yaml", &text);
    let db = s.path("h.db");
    let v = Crucible::new(&["run"]).arg(&file).db(&db).json();
    assert_eq!(v["status"], "completed", "{v}");
    let count = |verified: i64| {
        query::<i64>(
            &db,
            &format!(
                "SELECT count(*) FROM labels WHERE rater = 'mast:http' AND code = 'FM-1.2' AND evidence_verified = {verified}"
            ),
        )
    };
    // Every one of the 40 traces judged, its quote checked: both kinds occur.
    assert_eq!(count(0) + count(1), 40);
    assert!(count(0) > 5 && count(1) > 5, "{} {}", count(0), count(1));
    // Other modes were not answered: unknown, not absent.
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM labels WHERE rater = 'mast:http' AND code <> 'FM-1.2' AND present IS NOT NULL"
        ),
        0
    );
    let task: String = query(
        &db,
        "SELECT t.task_id FROM labels l JOIN tasks t ON t.run_id = l.run_id AND t.task_index = l.task_index
         WHERE l.rater = 'mast:http' AND l.evidence_verified = 0 LIMIT 1",
    );
    let shown = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    assert!(
        shown.contains("⚑ mast:http judged FM-1.2 by planner: \"nothing like this was said\" (quote NOT in the cited message)"),
        "{shown}"
    );
}

/// Imported chat logs are untrusted text: shown on a terminal, their
/// control characters (an escape sequence that would clear the screen)
/// are made visible instead of acting; their labels keep rater and turn.
#[test]
fn imported_messages_are_shown_with_control_characters_made_visible() {
    let s = Scratch::new();
    let line = serde_json::json!({
        "id": "chat-1",
        "task": "Add the numbers.",
        "messages": [
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "name": "solver", "content": "4\u{1b}[2J\u{1b}[31m gotcha"},
        ],
        "labels": [{"code": "1.3", "present": true, "rater": "alice", "agent": "solver", "turn": 1}],
    });
    let file = s.write("chats.jsonl", &format!("{line}\n"));
    let db = s.path("c.db");
    let v = Crucible::new(&["import", "messages"])
        .arg(&file)
        .arg("--judge")
        .arg(root().join("judges/mast.yaml"))
        .db(&db)
        .json();
    assert_eq!(v["traces"], 1, "{v}");
    assert_eq!(
        query::<String>(
            &db,
            "SELECT rater || ' ' || code || ' ' || agent || ' ' || turn FROM labels"
        ),
        "alice FM-1.3 solver 1"
    );
    let task: String = query(&db, "SELECT task_id FROM tasks");
    let shown = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    assert!(
        !shown.contains('\u{1b}'),
        "a raw escape reached the terminal: {shown:?}"
    );
    assert!(shown.contains("4\\u{1b}[2J\\u{1b}[31m gotcha"), "{shown}");
}

/// `plot` draws a judged run's mode rates and category shares beside its
/// curves.
#[test]
fn plot_draws_the_failure_rates_of_a_judged_run() {
    let s = Scratch::new();
    let db = failures_run(&s, 5, "[{file: judges/mast.yaml, model: judge}]");
    let out = s.path("plots");
    let written = Crucible::new(&["plot", "1", "--bootstrap", "50"])
        .arg("--out")
        .arg(&out)
        .arg("--judge")
        .arg(s.path("judges/mast.yaml"))
        .db(&db)
        .ok();
    for chart in [
        "failure-rates.svg",
        "failure-categories.svg",
        "graph-accuracy-vs-n.svg",
    ] {
        assert!(written.contains(chart), "{written}");
    }
    let rates = std::fs::read_to_string(out.join("failure-rates.svg")).unwrap();
    assert!(
        rates.contains("FM-3.2") && rates.contains("rater mast:judge"),
        "{rates}"
    );
}

/// The shared MAD sample: two traces from taxonomy versions with 17 and 18
/// modes, each annotator's labels mapped by name, unmappable ones kept
/// under their own label; the human majority is a rater of its own.
#[test]
fn mad_labels_are_imported_by_name_and_compared_to_their_majority() {
    let s = Scratch::new();
    let db = s.path("m.db");
    let v = Crucible::new(&["import", "mad"])
        .arg(root().join("tests/data/mad/MAD_human_labelled_sample.json"))
        .arg("--judge")
        .arg(root().join("judges/mast.yaml"))
        .db(&db)
        .json();
    assert_eq!(v["traces"], 2, "{v}");
    assert_eq!(
        query::<String>(&db, "SELECT kind FROM runs WHERE id = 1"),
        "imported"
    );
    // 17 + 18 labels per annotator, three annotators.
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM labels"), 3 * 35);
    let mapped = |original: &str| {
        query::<Option<String>>(
            &db,
            &format!("SELECT DISTINCT code FROM labels WHERE original = '{original}'"),
        )
    };
    assert_eq!(
        mapped("4.2 Lack of result verification").as_deref(),
        Some("FM-3.2")
    );
    assert_eq!(
        mapped("4.3 Lack of critical verification").as_deref(),
        Some("FM-3.3")
    );
    assert_eq!(
        mapped("3.3 Lack of result verification").as_deref(),
        Some("FM-3.2")
    );
    assert_eq!(mapped("2.2 Step repetition").as_deref(), Some("FM-1.3"));
    assert_eq!(mapped("1.5 Step repetition").as_deref(), Some("FM-1.3"));
    assert_eq!(mapped("3.4 Waiting for known information"), None);
    let unmapped: Vec<&str> = v["unmapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(unmapped.len(), 7, "{unmapped:?}");
    let export = Crucible::new(&["labels", "export", "1"]).db(&db).ok();
    let first: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    for key in [
        "trace",
        "source_id",
        "mas_name",
        "code",
        "original",
        "rater",
        "present",
    ] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }
    let report = agreement(&db, &["--bootstrap", "0"]);
    assert_eq!(report["reference"], "humans");
    // Round 1's annotators agree on every mode: each matches the majority.
    let tnr: Vec<f64> = report["pooled"]["vs_reference"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| value(&r["f1"]))
        .collect();
    assert_eq!(tnr, vec![1.0, 1.0, 1.0]);
}

/// Who&When traces keep their blamed agent and step as ground truth, and
/// are judged like crucible's own runs with models from another scenario.
#[test]
fn who_when_traces_keep_their_blame_and_can_be_judged() {
    let s = Scratch::new();
    let db = s.path("w.db");
    let dir = root().join("tests/data/who-when");
    let v = Crucible::new(&["import", "who-when"])
        .arg(&dir)
        .db(&db)
        .json();
    assert_eq!(v["traces"], 3, "{v}");
    for (file, task) in [
        ("Algorithm-Generated/1.json", 0),
        ("Algorithm-Generated/12.json", 1),
        ("Hand-Crafted/6.json", 2),
    ] {
        let source: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let step: i64 = source["mistake_step"].as_str().map_or_else(
            || source["mistake_step"].as_i64().unwrap(),
            |s| s.parse().unwrap(),
        );
        let stored: String = query(
            &db,
            &format!(
                "SELECT agent || ' ' || turn FROM attributions WHERE task_index = {task} AND method = 'ground_truth'"
            ),
        );
        assert_eq!(
            stored,
            format!("{} {step}", source["mistake_agent"].as_str().unwrap())
        );
        let messages: i64 = query(
            &db,
            &format!("SELECT count(*) FROM messages WHERE task_index = {task}"),
        );
        assert_eq!(
            messages as usize,
            source["history"].as_array().unwrap().len()
        );
    }
    // A models file needs nothing but `models:`.
    let models = s.write("models.yaml", &format!("models:\n{SIM_JUDGE}"));
    Crucible::new(&["judge", "1", "--model", "judge", "--json"])
        .arg("--models-file")
        .arg(&models)
        .arg("--judge")
        .arg(root().join("judges/mast.yaml"))
        .db(&db)
        .ok();
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM judgements WHERE status = 'parsed'"
        ),
        3
    );
    // Without a scenario of its own, an imported run needs one for its models.
    let out = Crucible::new(&["judge", "1", "--model", "judge"])
        .arg("--judge")
        .arg(root().join("judges/mast.yaml"))
        .db(&db)
        .output();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--models-file FILE"));
}

/// Malformed trace files: each problem at its file, line and column, exit
/// status 2, and no database written.
#[test]
fn malformed_trace_files_point_at_the_problem_and_write_nothing() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "mad",
            "bad.json",
            "[\n  {\"trace_id\": 1,\n   \"trace\": \"x\" \"annotations\": []}\n]",
            "bad.json:3:",
        ),
        (
            "mad",
            "missing.json",
            "[{\"round\": \"Round 1\", \"mas_name\": \"AG2\", \"benchmark_name\": \"b\", \"trace_id\": 1,\n  \"annotations\": []}]",
            "missing.json:1:",
        ),
        (
            "mad",
            "unknown.json",
            "[{\"round\": \"Round 1\", \"mas_name\": \"AG2\", \"benchmark_name\": \"b\", \"trace_id\": 1, \"trace\": \"hi\",\n  \"annotations\": [{\"failure mode\": \"9.9 Sudden silence\\n\\nIt stops.\", \"annotator_1\": true}]}]",
            "unknown.json:2:",
        ),
        (
            "messages",
            "m.jsonl",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n{\"id\": 2}\n",
            "m.jsonl:2:",
        ),
        (
            "who-when",
            "w.json",
            "{\"history\": [], \"mistake_agent\": \"A\"}",
            "w.json:1:",
        ),
    ];
    for (format, name, text, at) in cases {
        let s = Scratch::new();
        let file = s.write(name, text);
        let db = s.path("t.db");
        let out = Crucible::new(&["import", format])
            .arg(&file)
            .arg("--judge")
            .arg(root().join("judges/mast.yaml"))
            .db(&db)
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&format!("{}/", s.dir.path().display()), "");
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(at) && l.contains(": error: ")),
            "{name}: wanted a diagnostic at {at}, got:\n{stderr}"
        );
        assert!(!db.exists(), "{name}: a database was written");
    }
}

/// `text` kept for the whole test run: a [`Case`] holds static strings.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// One file for a [`Case`]: `name` holding `text`.
fn file(name: &'static str, text: String) -> &'static [(&'static str, &'static str)] {
    Box::leak(vec![(name, leak(text))].into_boxed_slice())
}

/// `file:line:col` of `value` on the first line of `text` holding `line`.
fn at(file: &str, text: &str, line: &str, value: &str) -> &'static str {
    let (n, l) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(line))
        .unwrap();
    leak(format!("{file}:{}:{}", n + 1, l.find(value).unwrap() + 1))
}

/// Judges in a scenario are checked like every other section.
#[test]
fn malformed_judges_point_at_the_problem() {
    let base = std::fs::read_to_string(root().join("scenarios/failures.yaml"))
        .unwrap()
        .replace("\nagents:", &format!("{SIM_JUDGE}\nagents:"))
        .replace(
            "\nstrategies:",
            "\njudges: [{file: mast.yaml, model: judge}]\n\nstrategies:",
        );
    let bad_judge = mast().replacen("code: FM-2.1", "code: FM-2.9", 1);
    let judges_line = "judges: [{file: mast.yaml, model: judge}]";
    let model_at = at("s.yaml", &base, judges_line, "judge}");
    let file_at = at("s.yaml", &base, judges_line, "mast.yaml");
    let mast_file = file("mast.yaml", mast());
    let bad_file = file("mast.yaml", bad_judge.clone());
    let cases = [
        Case {
            name: "undefined judge model",
            edit: ("model: judge}", "model: jugde}"),
            files: mast_file,
            at: model_at,
            message: "did you mean `judge`",
        },
        Case {
            name: "simulated model without a judge section",
            edit: ("model: judge}", "model: sim}"),
            files: mast_file,
            at: model_at,
            message: "has no `judge` section",
        },
        Case {
            name: "judge file with an unknown code",
            edit: ("judges:", "judges:"),
            files: bad_file,
            at: at("mast.yaml", &bad_judge, "code: FM-2.9", "FM-2.9"),
            message: "`FM-2.9` is not a MAST mode code",
        },
        Case {
            name: "an agent on a judge-only model",
            edit: (
                "    model: sim\n    system: Plan the solution.",
                "    model: judge\n    system: Plan the solution.",
            ),
            files: mast_file,
            at: leak(format!(
                "s.yaml:{}:12",
                base[..base.find("    model: sim\n    system: Plan").unwrap()]
                    .lines()
                    .count()
                    + 1
            )),
            message: "a simulated judge with no `distribution`",
        },
        Case {
            name: "two judges of one name on one model",
            edit: (
                judges_line,
                "judges: [{file: mast.yaml, model: judge}, {file: mast.yaml, model: judge, repeats: 2}]",
            ),
            files: mast_file,
            at: leak(format!(
                "s.yaml:{}:{}",
                base.lines().position(|l| l.contains(judges_line)).unwrap() + 1,
                "judges: [{file: mast.yaml, model: judge}, {file: ".len() + 1
            )),
            message: "another judge named `mast` runs on the same model",
        },
        Case {
            name: "judges without a graph",
            edit: ("\ngraph:", "\nunused_graph:"),
            files: mast_file,
            at: file_at,
            message: "has no `graph`",
        },
    ];
    check_cases(&base, &cases);
}

/// A real llama.cpp judge (SmolLM2) on a small debate: every reply stored,
/// read or counted as unreadable, nothing crashes; strict replay, which
/// calls no model, reproduces every judgement.
#[test]
fn llama_cpp_judges_a_debate_and_strict_replay_reproduces_it() {
    let url = llama_url();
    let s = Scratch::new();
    s.write("judges/mast.yaml", &mast());
    let text = std::fs::read_to_string(root().join("scenarios/debate.yaml"))
        .unwrap()
        .replace("synthetic: {count: 100}", "synthetic: {count: 2}")
        .replace(
            "\nagents:",
            &format!(
                "  llm:\n    provider: openai\n    base_url: \"{url}/v1\"\n    model: smollm2-135m-instruct\n    \
                 temperature: 0.7\n    seed: 3\n    max_tokens: 200\n    max_retries: 3\n    timeout: 120\n\nagents:"
            ),
        )
        .replace(
            "\nstrategies:",
            "\njudges: [{file: judges/mast.yaml, model: llm, max_trace_tokens: 3000}]\n\nstrategies:",
        );
    let text = text.split("\nstrategies:").next().unwrap().to_owned()
        + "\nstrategies:\n  - {kind: self_consistency, agent: graph, n: 1}\n\ngraph:"
        + text.split("\ngraph:").nth(1).unwrap();
    let file = s.write("debate.yaml", &text);
    let db = s.path("d.db");
    let recorded = Crucible::new(&["run"])
        .arg(&file)
        .db(&db)
        .arg("--json")
        .ok();
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let judged = |run: i64| {
        crate::util::table_rows(
            &db,
            &format!(
                "SELECT task_index, attempt, status, format, error, reasked FROM judgements
                 WHERE run_id = {run} ORDER BY task_index, attempt"
            ),
        )
    };
    let first = judged(1);
    assert_eq!(first.len(), 2, "{first:?}");
    // Every judge call's reply is stored, read or not.
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls c JOIN replies r ON r.call_id = c.id WHERE c.role = 'judge' AND c.run_id = 1"
        ),
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls WHERE role = 'judge' AND run_id = 1"
        ),
    );
    Crucible::new(&["replay", "1", "--strict", "--json"])
        .db(&db)
        .ok();
    assert_eq!(judged(2), first);
    let labels = |run: i64| {
        crate::util::table_rows(
            &db,
            &format!(
                "SELECT task_index, attempt, rater, code, present, turn, quote, evidence_verified
                 FROM labels WHERE run_id = {run} ORDER BY 1, 2, 3, 4"
            ),
        )
    };
    assert_eq!(labels(2), labels(1));
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls WHERE run_id = 2 AND role = 'judge' AND cached = 0"
        ),
        0
    );
}
