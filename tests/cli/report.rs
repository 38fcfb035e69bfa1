use std::path::Path;
use std::process::Command;

use crate::util::{BASE, Crucible, Scratch, chart_lines, query, root, run_json, run_shipped};

#[test]
fn plot_writes_svg_charts_whose_lines_follow_the_curves() {
    let s = Scratch::new();
    let (db, _) = run_shipped(&s, "noisy-verifier.yaml");
    let out = s.path("charts");
    let listed = Crucible::new(&["plot", "1", "--out"])
        .arg(&out)
        .db(&db)
        .ok();
    let analysis: serde_json::Value =
        serde_json::from_str(&Crucible::new(&["analyze", "1", "--json"]).db(&db).ok()).unwrap();
    let rules = 6; // majority, pass@k, best-of-n and weighted majority × 2 verifiers
    for name in ["solver-accuracy-vs-n.svg", "solver-accuracy-vs-tokens.svg"] {
        let path = out.join(name);
        assert!(listed.contains(path.to_str().unwrap()), "{listed}");
        let svg = std::fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let root_el = doc.root_element();
        assert_eq!(root_el.tag_name().name(), "svg");
        let (width, height): (f64, f64) = (
            root_el.attribute("width").unwrap().parse().unwrap(),
            root_el.attribute("height").unwrap().parse().unwrap(),
        );
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .collect();
        for label in [
            "accuracy",
            "majority",
            "pass@k",
            "best_of_n [lenient]",
            "weighted_majority [noisy]",
        ] {
            assert!(
                texts.iter().any(|t| t == label),
                "{name}: no text {label:?} in {texts:?}"
            );
        }
        // One interval band and one line per rule, every point on the canvas.
        let bands = doc
            .descendants()
            .filter(|n| n.has_tag_name("polygon"))
            .count();
        assert_eq!(bands, rules, "{name}");
        let lines = chart_lines(&svg);
        assert_eq!(lines.len(), rules, "{name}");
        for (_, points) in &lines {
            assert_eq!(points.len(), 16, "{name}: one point per n");
            assert!(
                points
                    .iter()
                    .all(|&(x, y)| (0.0..=width).contains(&x) && (0.0..=height).contains(&y))
            );
            assert!(
                points.windows(2).all(|w| w[0].0 < w[1].0),
                "{name}: x increases with n"
            );
        }
        // Lines are drawn in the order of the analysis, and their heights at
        // n = 16 rank as the accuracies do (SVG y grows downwards).
        let at_16: Vec<f64> = analysis["curves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["n"] == 16)
            .map(|c| c["accuracy"].as_f64().unwrap())
            .collect();
        for i in 0..rules {
            for j in 0..rules {
                if at_16[i] > at_16[j] + 0.02 {
                    assert!(
                        lines[i].1[15].1 < lines[j].1[15].1,
                        "{name}: line {i} vs {j}"
                    );
                }
            }
        }
    }
}

#[test]
fn quickstart_table_snapshot() {
    let s = Scratch::new();
    let db = s.path("q.db");
    let out = Crucible::new(&["run"])
        .arg(root().join("scenarios/quickstart.yaml"))
        .db(&db)
        .ok();
    insta::assert_snapshot!("quickstart_table", out);
    // `show` prints the same table from the database alone.
    let shown = Crucible::new(&["show", "1"]).db(&db).ok();
    assert_eq!(shown, out);
}

/// Two agents scored by different verifiers (one real-valued, one
/// pass/fail, one command that cannot score sample 3), with abstentions.
const POOLED: &str = r#"name: pooled
seed: 9
models:
  sim: {provider: simulated, distribution: {p_correct: 0.4, delta: 0.1, wrong_answers: 3, abstain: 0.1}}
agents:
  solver: {model: sim, prompt: "Q: {{ question }}"}
  second: {model: sim, prompt: "Again: {{ question }}"}
dataset:
  synthetic: {count: 30}
verifiers:
  zeta: {kind: noisy, sd: 0.5}
  lenient: {kind: oracle, false_positive_rate: 0.2}
  flaky: {kind: programmatic, check: command, command: [sh, -c, 'if grep -q "\"sample_index\":3,"; then exit 1; else echo 0.5; fi']}
strategies:
  - {kind: weighted_majority, agent: solver, verifier: zeta, n: 16}
  - {kind: best_of_n, agent: solver, verifier: flaky, n: 16}
  - {kind: best_of_n, name: second_bon, agent: second, verifier: lenient, n: 8}
"#;

#[test]
fn analyze_reads_stored_pools_exactly_as_samples_and_scores_hold_them() {
    let s = Scratch::new();
    let (db, _) = run_json(&s, POOLED);
    let analyze = |db: &Path| Crucible::new(&["analyze", "1"]).db(db).json();
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM pools"), 60);
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM scores WHERE score IS NULL"),
        30
    );
    let from_pools = analyze(&db);
    let rules = |agent: &str| -> Vec<(String, String)> {
        let mut r: Vec<(String, String)> = from_pools["curves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["agent"] == agent && c["n"] == 1)
            .map(|c| (c["rule"].to_string(), c["verifier"].to_string()))
            .collect();
        r.sort();
        r
    };
    assert_eq!(rules("second").len(), 4, "{:?}", rules("second"));
    assert_eq!(rules("solver").len(), 6, "{:?}", rules("solver"));
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM pools", [])
        .unwrap();
    assert_eq!(analyze(&db), from_pools);

    // Stopped part-way: tasks without a pool row are read from the samples;
    // resumed to the end, every task has its row and the analysis is the
    // uninterrupted run's.
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "21"])
        .arg(s.path("scenario.yaml"))
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let finished: i64 = query(&stopped, "SELECT count(DISTINCT task_index) FROM pools");
    assert!((1..30).contains(&finished), "{finished}");
    let full: i64 = query(
        &stopped,
        "SELECT count(*) FROM (SELECT 1 FROM samples WHERE agent = 'solver'
           GROUP BY task_index HAVING count(*) = 16)",
    );
    let partial = analyze(&stopped);
    let solver = partial["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "solver")
        .unwrap();
    assert_eq!(solver["tasks"], full);
    Crucible::new(&["resume", "1"]).db(&stopped).ok();
    assert_eq!(query::<i64>(&stopped, "SELECT count(*) FROM pools"), 60);
    assert_eq!(analyze(&stopped), from_pools);
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    let s = Scratch::new();
    let (db, _) = run_json(&s, BASE);
    // The reader is gone before crucible has opened the database; printing
    // then ends crucible quietly.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' show 1 --db '{}' | true; exit ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_crucible"),
            db.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
