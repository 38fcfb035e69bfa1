//! Integration tests: the `crucible` binary driven on real scenario files and
//! real SQLite databases in temporary directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crucible::stats::estimator::{self, Binomials, Scored, Weighted};
use proptest::prelude::*;

/// Builds and runs one `crucible` invocation.
struct Crucible {
    cmd: Command,
}

impl Crucible {
    fn new(args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crucible"));
        cmd.args(args)
            .env_remove("CRUCIBLE_DB")
            .env_remove("CRUCIBLE_LOG");
        Crucible { cmd }
    }

    fn db(mut self, db: &Path) -> Self {
        self.cmd.arg("--db").arg(db);
        self
    }

    fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    fn args(mut self, a: &[&str]) -> Self {
        self.cmd.args(a);
        self
    }

    fn output(mut self) -> Output {
        self.cmd.output().expect("run crucible")
    }

    /// Run with `--json`, require exit status 0, and parse what it prints.
    #[track_caller]
    fn json(self) -> serde_json::Value {
        let out = self.arg("--json").ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Run and require exit status 0; returns stdout.
    #[track_caller]
    fn ok(self) -> String {
        let out = self.output();
        assert!(
            out.status.success(),
            "crucible failed: {}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The summary row of `strategy` at `n` in a `run --json` object.
fn result<'v>(run: &'v serde_json::Value, strategy: &str, n: u64) -> &'v serde_json::Value {
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy && r["n"] == n)
        .unwrap_or_else(|| panic!("no {strategy} at n={n}"))
}

/// A number field of a JSON object.
fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory holding scenario files.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

const BASE: &str = r#"name: t
seed: 1
models:
  sim:
    provider: simulated
    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}
agents:
  solver:
    model: sim
    prompt: "Q: {{ question }}"
dataset:
  items:
    - {id: a, question: "1+1", answer: 2}
    - {id: b, question: "2+2", answer: 4}
verifiers:
  oracle: {kind: oracle}
strategies:
  - kind: self_consistency
    agent: solver
    n: [1, 2]
  - kind: best_of_n
    agent: solver
    verifier: oracle
    n: 2
"#;

#[test]
fn base_scenario_is_valid_and_runs() {
    let s = Scratch::new();
    let file = s.write("s.yaml", BASE);
    Crucible::new(&["validate"]).arg(&file).ok();
    let db = s.path("t.db");
    let v = Crucible::new(&["run"]).arg(&file).db(&db).json();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["samples"], 4);
}

#[test]
fn json_answers_are_read_from_their_field() {
    let s = Scratch::new();
    let text = BASE.replace(
        "verifiers:",
        "answer:\n  extract: {json: result.value}\nverifiers:",
    );
    let db = s.path("j.db");
    let v = Crucible::new(&["run"])
        .arg(s.write("s.yaml", &text))
        .db(&db)
        .json();
    assert_eq!(v["status"], "completed");
    // The simulated model writes its answer where the rule reads it.
    assert_eq!(
        query::<i64>(
            &db,
            r#"SELECT count(*) FROM samples WHERE text LIKE '%{"result": {"value": "%'
                 AND normalized IS NOT NULL"#
        ),
        4
    );
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM samples WHERE correct = 1"),
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples s JOIN tasks t
               ON t.run_id = s.run_id AND t.task_index = s.task_index
             WHERE s.normalized = t.expected"
        )
    );
}

/// One malformed scenario: `BASE` with `from` replaced by `to` (or a whole
/// text), plus extra files; the diagnostic expected at `file:line:col`.
struct Case {
    name: &'static str,
    edit: (&'static str, &'static str),
    files: &'static [(&'static str, &'static str)],
    at: &'static str,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "yaml syntax",
        edit: ("n: [1, 2]", "n: [1, 2"),
        files: &[],
        at: "s.yaml:21:9",
        message: "invalid YAML",
    },
    Case {
        name: "unknown top-level key",
        edit: ("verifiers:", "verifier:"),
        files: &[],
        at: "s.yaml:15:1",
        message: "did you mean `verifiers`",
    },
    Case {
        name: "unknown model key",
        edit: ("provider: simulated", "provder: simulated"),
        files: &[],
        at: "s.yaml:5:5",
        message: "unknown key `provder`",
    },
    Case {
        name: "wrong type for seed",
        edit: ("seed: 1", "seed: [1]"),
        files: &[],
        at: "s.yaml:2:7",
        message: "expected",
    },
    Case {
        name: "undefined model",
        edit: ("model: sim", "model: sym"),
        files: &[],
        at: "s.yaml:9:12",
        message: "undefined model `sym`",
    },
    Case {
        name: "undefined agent",
        edit: (
            "  - kind: best_of_n\n    agent: solver",
            "  - kind: best_of_n\n    agent: solvr",
        ),
        files: &[],
        at: "s.yaml:22:12",
        message: "undefined agent `solvr`",
    },
    Case {
        name: "undefined verifier",
        edit: ("verifier: oracle", "verifier: orcale"),
        files: &[],
        at: "s.yaml:23:15",
        message: "did you mean `oracle`",
    },
    Case {
        name: "invalid regex",
        edit: (
            "verifiers:",
            "answer:\n  extract: {regex: \"Answer: (\"}\nverifiers:",
        ),
        files: &[],
        at: "s.yaml:16:12",
        message: "invalid regex",
    },
    Case {
        name: "template syntax",
        edit: ("\"Q: {{ question }}\"", "\"Q: {{ question \""),
        files: &[],
        at: "s.yaml:10:13",
        message: "template syntax error",
    },
    Case {
        name: "template variable no item has",
        edit: ("{{ question }}", "{{ qestion }}"),
        files: &[],
        at: "s.yaml:10:13",
        message: "did you mean `question`",
    },
    Case {
        name: "zero n",
        edit: ("n: 2\n", "n: 0\n"),
        files: &[],
        at: "s.yaml:24:8",
        message: "between 1 and 1000",
    },
    Case {
        name: "negative n in list",
        edit: ("n: [1, 2]", "n: [1, -4]"),
        files: &[],
        at: "s.yaml:20:8",
        message: "found -4",
    },
    Case {
        name: "missing dataset file",
        edit: (
            "  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}",
            "  file: nowhere.jsonl",
        ),
        files: &[],
        at: "s.yaml:12:9",
        message: "cannot read `nowhere.jsonl`",
    },
    Case {
        name: "bad jsonl line",
        edit: (
            "  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}",
            "  file: d.jsonl",
        ),
        files: &[(
            "d.jsonl",
            "{\"id\": \"a\", \"question\": \"q\", \"answer\": 1}\n{\"id\": \"b\", \"question\": q}\n",
        )],
        at: "d.jsonl:2:25",
        message: "invalid JSON",
    },
    Case {
        name: "jsonl line not an object",
        edit: (
            "  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}",
            "  file: d.jsonl",
        ),
        files: &[(
            "d.jsonl",
            "{\"id\": \"a\", \"question\": \"q\", \"answer\": 1}\n\n[1, 2]\n",
        )],
        at: "d.jsonl:3:1",
        message: "must be a JSON object",
    },
    Case {
        name: "csv row with wrong field count",
        edit: (
            "  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}",
            "  file: d.csv",
        ),
        files: &[("d.csv", "id,question,answer\na,q1,1\nb,q2\n")],
        at: "d.csv:3:1",
        message: "has 2 fields but the header has 3",
    },
    Case {
        name: "best_of_n without verifier",
        edit: ("    verifier: oracle\n", ""),
        files: &[],
        at: "s.yaml:21:11",
        message: "needs a `verifier`",
    },
    Case {
        name: "reserved key",
        edit: ("strategies:", "judges: {}\nstrategies:"),
        files: &[],
        at: "s.yaml:17:1",
        message: "not supported yet",
    },
    Case {
        name: "unknown provider",
        edit: ("provider: simulated", "provider: simulatd"),
        files: &[],
        at: "s.yaml:5:15",
        message: "did you mean `simulated`",
    },
    Case {
        name: "probability above one",
        edit: ("p_correct: 0.6", "p_correct: 1.6"),
        files: &[],
        at: "s.yaml:6:31",
        message: "must be a probability",
    },
    Case {
        name: "delta above p_correct",
        edit: ("delta: 0.3", "delta: 0.7"),
        files: &[],
        at: "s.yaml:6:43",
        message: "`delta` must be between 0 and p_correct",
    },
    Case {
        name: "duplicate task id",
        edit: ("{id: b,", "{id: a,"),
        files: &[],
        at: "s.yaml:14:7",
        message: "duplicate task id `a`",
    },
    Case {
        name: "missing agent file",
        edit: (
            "    model: sim\n    prompt: \"Q: {{ question }}\"",
            "    file: agents/nope.yaml",
        ),
        files: &[],
        at: "s.yaml:9:11",
        message: "cannot read `agents/nope.yaml`",
    },
    Case {
        name: "error inside agent file",
        edit: (
            "    model: sim\n    prompt: \"Q: {{ question }}\"",
            "    file: agents/solver.yaml",
        ),
        files: &[(
            "agents/solver.yaml",
            "model: sim\npromt: \"Q: {{ question }}\"\n",
        )],
        at: "agents/solver.yaml:2:1",
        message: "did you mean `prompt`",
    },
    Case {
        name: "unknown strategy kind",
        edit: ("kind: self_consistency", "kind: majority"),
        files: &[],
        at: "s.yaml:18:11",
        message: "unknown value `majority`",
    },
    Case {
        name: "unknown extract rule",
        edit: ("verifiers:", "answer:\n  extract: lastnumber\nverifiers:"),
        files: &[],
        at: "s.yaml:16:12",
        message: "did you mean `last_number`",
    },
    Case {
        name: "item lacks a template field",
        edit: ("{id: b, question: \"2+2\",", "{id: b, query: \"2+2\","),
        files: &[],
        at: "s.yaml:14:7",
        message: "no field `question`",
    },
    Case {
        name: "missing required key",
        edit: ("name: t\n", ""),
        files: &[],
        at: "s.yaml:1:1",
        message: "missing required key `name`",
    },
    Case {
        name: "self_consistency with a verifier",
        edit: (
            "    agent: solver\n    n: [1, 2]",
            "    agent: solver\n    verifier: oracle\n    n: [1, 2]",
        ),
        files: &[],
        at: "s.yaml:20:15",
        message: "takes no `verifier`",
    },
    Case {
        name: "simulated format the extractor cannot read",
        edit: (
            "    distribution:",
            "    format: \"Answer: {answer}, then 7 more\"\n    distribution:",
        ),
        files: &[],
        at: "s.yaml:6:13",
        message: "does not read back",
    },
    Case {
        name: "token budget over a model with no max_tokens",
        edit: (
            "models:\n  sim:\n    provider: simulated\n    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}",
            "budget:\n  max_tokens: 1000\nmodels:\n  sim:\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m",
        ),
        files: &[],
        at: "s.yaml:4:15",
        message: "needs `max_tokens` on model `sim`",
    },
    Case {
        name: "token budget over a judge's model with no max_tokens",
        edit: (
            "models:\n  sim:\n    provider: simulated\n    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}\nagents:\n  solver:\n    model: sim\n    prompt: \"Q: {{ question }}\"\ndataset:\n  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}\nverifiers:\n  oracle: {kind: oracle}",
            "budget:\n  max_tokens: 1000\nmodels:\n  sim:\n    provider: simulated\n    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}\n  j: {provider: openai, base_url: \"http://127.0.0.1:9/v1\", model: m}\nagents:\n  solver:\n    model: sim\n    prompt: \"Q: {{ question }}\"\ndataset:\n  items:\n    - {id: a, question: \"1+1\", answer: 2}\n    - {id: b, question: \"2+2\", answer: 4}\nverifiers:\n  oracle: {kind: llm, model: j}",
        ),
        files: &[],
        at: "s.yaml:4:15",
        message: "needs `max_tokens` on model `j`",
    },
    Case {
        name: "cost budget over a model with no price",
        edit: (
            "models:\n  sim:",
            "budget:\n  max_cost_usd: 0.5\nmodels:\n  sim:",
        ),
        files: &[],
        at: "s.yaml:4:17",
        message: "needs a `price` on model `sim`",
    },
    Case {
        name: "negative price",
        edit: (
            "    provider: simulated\n",
            "    provider: simulated\n    price: {input: -1, output: 2}\n",
        ),
        files: &[],
        at: "s.yaml:6:20",
        message: "must be 0 or more",
    },
    Case {
        name: "misspelled price field",
        edit: (
            "    provider: simulated\n",
            "    provider: simulated\n    price: {input: 1, outptu: 2}\n",
        ),
        files: &[],
        at: "s.yaml:6:23",
        message: "outptu",
    },
    Case {
        name: "rate limit on a simulated model",
        edit: (
            "    provider: simulated\n",
            "    provider: simulated\n    rpm: 60\n",
        ),
        files: &[],
        at: "s.yaml:5:15",
        message: "`rpm` applies only to network models",
    },
    Case {
        name: "significant digits out of range",
        edit: (
            "verifiers:",
            "answer:\n  normalize: [trim, fraction, {digits: 0}, set]\nverifiers:",
        ),
        files: &[],
        at: "s.yaml:16:31",
        message: "`digits` must be between 1 and 15, found 0",
    },
    Case {
        name: "stop rule on a strategy that does not stop early",
        edit: ("    n: [1, 2]", "    n: [1, 2]\n    stop: {margin: 2}"),
        files: &[],
        at: "s.yaml:21:11",
        message: "`stop` belongs to `adaptive_consistency`, not `self_consistency`",
    },
    Case {
        name: "beta stop rule out of range",
        edit: (
            "  - kind: self_consistency\n    agent: solver\n    n: [1, 2]",
            "  - kind: adaptive_consistency\n    agent: solver\n    n: [1, 2]\n    stop: {beta: 1.5}",
        ),
        files: &[],
        at: "s.yaml:21:11",
        message: "`beta` must be a probability between 0.5 and 1",
    },
    Case {
        name: "programmatic verifier without a check",
        edit: ("oracle: {kind: oracle}", "oracle: {kind: programmatic}"),
        files: &[],
        at: "s.yaml:16:18",
        message: "needs a `check`: exact, numeric, regex or command",
    },
    Case {
        name: "invalid verifier pattern",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: programmatic, check: regex, pattern: \"a(\"}",
        ),
        files: &[],
        at: "s.yaml:16:55",
        message: "invalid regular expression",
    },
    Case {
        name: "command check without a command",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: programmatic, check: command}",
        ),
        files: &[],
        at: "s.yaml:16:39",
        message: "`check: command` needs a `command`",
    },
    Case {
        name: "self-correction feedback naming an unknown field",
        edit: (
            "  - kind: best_of_n\n    agent: solver\n    verifier: oracle\n    n: 2",
            "  - kind: self_correction\n    agent: solver\n    verifier: oracle\n    n: 2\n    feedback: \"{{ answr }} is wrong\"",
        ),
        files: &[],
        at: "s.yaml:25:15",
        message: "`feedback` uses `answr`, which is neither",
    },
    Case {
        name: "choice options field without options",
        edit: (
            "verifiers:",
            "answer:\n  extract: choice\n  options: question\nverifiers:",
        ),
        files: &[],
        at: "s.yaml:14:7",
        message: "`question` of this item lists fewer than two options",
    },
    Case {
        name: "llm verifier without a model",
        edit: ("oracle: {kind: oracle}", "oracle: {kind: llm}"),
        files: &[],
        at: "s.yaml:16:18",
        message: "the llm verifier `oracle` needs a `model` to call",
    },
    Case {
        name: "llm verifier on a simulated model",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: llm, model: sim, prompt: \"{{ anser }}\"}",
        ),
        files: &[],
        at: "s.yaml:16:30",
        message: "cannot call model `sim`: a simulated model writes answers, not verdicts",
    },
    Case {
        name: "judge prompt with an unknown variable",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: llm, model: sim, prompt: \"{{ anser }}\"}",
        ),
        files: &[],
        at: "s.yaml:16:43",
        message: "uses `anser`, which is neither a candidate field (`prompt`, `text`, `extracted`, `answer`, `expected`) nor a dataset field; did you mean `answer`?",
    },
    Case {
        name: "reward model verifier on a simulated model",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: reward_model, model: sim, aggregate: mean}",
        ),
        files: &[],
        at: "s.yaml:16:39",
        message: "needs a model with `provider: reward_model`",
    },
    Case {
        name: "step aggregation without process rewards",
        edit: (
            "oracle: {kind: oracle}",
            "oracle: {kind: reward_model, model: sim, aggregate: mean}",
        ),
        files: &[],
        at: "s.yaml:16:55",
        message: "`aggregate` applies to process rewards; add `process: true`",
    },
    Case {
        name: "agent on a reward model",
        edit: (
            "agents:\n  solver:\n    model: sim",
            "  prm: {provider: reward_model, base_url: \"http://127.0.0.1:9/reward\", model: m}\nagents:\n  solver:\n    model: prm",
        ),
        files: &[],
        at: "s.yaml:10:12",
        message: "uses model `prm`, a reward model, which scores text and writes none",
    },
    Case {
        name: "answer command that fails",
        edit: (
            "verifiers:",
            "answer:\n  normalize: [trim, {command: [\"false\"]}]\nverifiers:",
        ),
        files: &[],
        at: "s.yaml:13:7",
        message: "the expected answer \"2\" cannot be normalized: answer command `false`: ",
    },
];

#[test]
fn malformed_scenarios_point_at_the_problem_and_write_nothing() {
    check_cases(BASE, CASES);
    assert!(CASES.len() >= 20);
}

/// Run every case (`base` edited) and check its diagnostic; report every
/// case that fails.
fn check_cases(base: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let s = Scratch::new();
        assert!(
            base.contains(case.edit.0),
            "case {}: edit not found",
            case.name
        );
        let file = s.write("s.yaml", &base.replacen(case.edit.0, case.edit.1, 1));
        for (name, text) in case.files {
            s.write(name, text);
        }
        let db = s.path("t.db");
        let out = Crucible::new(&["run"]).arg(&file).db(&db).output();
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&format!("{}/", s.dir.path().display()), "");
        let expected = format!("{}: error: ", case.at);
        let line = stderr.lines().find(|l| l.starts_with(&expected));
        let ok = out.status.code() == Some(2)
            && line.is_some_and(|l| l.contains(case.message))
            && !db.exists();
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, db written: {}, wanted `{expected}…{}`, got:\n{stderr}",
                case.name,
                out.status.code(),
                db.exists(),
                case.message
            ));
        }
        // `validate` reports the same diagnostic with the same exit status.
        let v = Crucible::new(&["validate"]).arg(&file).output();
        if v.status.code() != Some(2) {
            failures.push(format!(
                "{}: validate exit {:?}",
                case.name,
                v.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn set_overrides_are_validated_stored_resumed_and_replayed() {
    let s = Scratch::new();
    let file = s.write(
        "s.yaml",
        &simulated_scenario(
            "overridden",
            4,
            "{p_correct: 0.5, delta: 0.2, wrong_answers: 2}",
            300,
            "strategies:\n  - {kind: self_consistency, agent: solver, n: 4}\n",
        ),
    );
    let sets = [
        "--set",
        "models.sim.distribution={p_correct: 0.9, delta: 0.8, wrong_answers: 2}",
        "--set",
        "strategies.0.n=[1, 8]",
    ];
    let db = s.path("o.db");
    let recorded = Crucible::new(&["run", "--json"])
        .arg(&file)
        .args(&sets)
        .db(&db)
        .ok();
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    // p = 0.9 (not 0.5) at n = 1, and the list of n replaced.
    let single = num(result(&v, "self_consistency", 1), "accuracy");
    assert!((single - 0.9).abs() < 0.05, "{single}");
    assert!(num(result(&v, "self_consistency", 8), "accuracy") > 0.99);
    let stored: String = query(&db, "SELECT scenario_text FROM runs WHERE id = 1");
    assert!(stored.ends_with(
        "# crucible: --set models.sim.distribution={p_correct: 0.9, delta: 0.8, wrong_answers: 2}\n\
         # crucible: --set strategies.0.n=[1, 8]\n"
    ), "{stored}");
    // The stored scenario carries its overrides: a strict replay needs no model.
    replay_strictly(&db, &recorded);

    // Stopped and resumed from the stored scenario: the same results; the
    // file without the overrides is not the scenario the run was made from.
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "100"])
        .arg(&file)
        .args(&sets)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let out = Crucible::new(&["run", "--resume", "1"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has changed since run 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );

    // A bad value is reported at its override line; nothing is written.
    let bad = s.path("bad.db");
    let out = Crucible::new(&["run"])
        .arg(&file)
        .args(&["--set", "models.sim.provider=simulatd"])
        .db(&bad)
        .output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s.yaml:15:39: error: unknown provider `simulatd`")
            && stderr.contains("# crucible: --set models.sim.provider=simulatd"),
        "{stderr}"
    );
    assert!(!bad.exists());
}

/// A valid plan → code ⇄ review graph behind a router; the graph cases edit it.
const GRAPH_BASE: &str = r#"name: g
models:
  sim: {provider: simulated, distribution: {p_correct: 0.6, delta: 0.3}}
agents:
  planner: {model: sim, prompt: "Plan {{ question }}"}
  coder: {model: sim, prompt: "Code {{ question }}"}
  reviewer: {model: sim, prompt: "Review {{ question }}"}
dataset:
  synthetic: {count: 2}
verifiers:
  oracle: {kind: oracle}
strategies:
  - {kind: self_consistency, agent: planner, n: 1}
graph:
  nodes:
    plan: {agent: planner}
    code: {agent: coder}
    review: {agent: reviewer}
    gate:
      router: {by: contains, options: [APPROVED, REVISE], default: REVISE}
  edges:
    - {from: START, to: plan}
    - {from: plan, to: code}
    - {from: code, to: review}
    - {from: review, to: gate}
    - {from: gate, option: APPROVED, to: END}
    - {from: gate, option: REVISE, to: code, max_visits: 3}
"#;

const GRAPH_CASES: &[Case] = &[
    Case {
        name: "edge to an unknown node",
        edit: ("{from: plan, to: code}", "{from: plan, to: coder}"),
        files: &[],
        at: "s.yaml:23:24",
        message: "unknown node `coder`; did you mean `code`?",
    },
    Case {
        name: "edge from an unknown node",
        edit: ("{from: code, to: review}", "{from: cod, to: review}"),
        files: &[],
        at: "s.yaml:24:14",
        message: "unknown node `cod`",
    },
    Case {
        name: "node with an unknown agent",
        edit: ("review: {agent: reviewer}", "review: {agent: reviwer}"),
        files: &[],
        at: "s.yaml:18:21",
        message: "unknown agent `reviwer`; did you mean `reviewer`?",
    },
    Case {
        name: "node of two kinds",
        edit: (
            "plan: {agent: planner}",
            "plan: {agent: planner, join: vote}",
        ),
        files: &[],
        at: "s.yaml:16:34",
        message: "exactly one of `agent`, `router`, `join` or `chat`",
    },
    Case {
        name: "unreachable node",
        edit: ("    gate:\n", "    lonely: {agent: coder}\n    gate:\n"),
        files: &[],
        at: "s.yaml:19:5",
        message: "node `lonely` cannot be reached from `START`",
    },
    Case {
        name: "no path to END",
        edit: (
            "  edges:\n    - {from: START, to: plan}",
            "    stuck: {agent: coder}\n  edges:\n    - {from: START, to: plan}\n    - {from: START, to: stuck}\n    - {from: stuck, to: stuck, max_visits: 2}",
        ),
        files: &[],
        at: "s.yaml:21:5",
        message: "no path leads from `stuck` to `END`",
    },
    Case {
        name: "cycle without a limit",
        edit: ("to: code, max_visits: 3}", "to: code}"),
        files: &[],
        at: "s.yaml:27:14",
        message: "the cycle gate → code → review → gate has no limit",
    },
    Case {
        name: "self-loop without a limit",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code}\n    - {from: plan, to: plan, when: {contains: AGAIN}}",
        ),
        files: &[],
        at: "s.yaml:24:14",
        message: "the cycle plan → plan has no limit",
    },
    Case {
        name: "router option without an edge",
        edit: (
            "options: [APPROVED, REVISE]",
            "options: [APPROVED, REVISE, ABANDON]",
        ),
        files: &[],
        at: "s.yaml:20:58",
        message: "option `ABANDON` of router `gate` has no edge",
    },
    Case {
        name: "edge naming no router option",
        edit: ("option: REVISE", "option: REVIS"),
        files: &[],
        at: "s.yaml:27:28",
        message: "router `gate` has no option `REVIS` (options: APPROVED, REVISE); did you mean `REVISE`?",
    },
    Case {
        name: "router edge without an option",
        edit: (
            "{from: gate, option: APPROVED, to: END}",
            "{from: gate, to: END}",
        ),
        files: &[],
        at: "s.yaml:26:14",
        message: "an edge from router `gate` needs `option`",
    },
    Case {
        name: "option on an edge from an agent",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, option: APPROVED}",
        ),
        files: &[],
        at: "s.yaml:23:38",
        message: "`option` is for edges from a router",
    },
    Case {
        name: "router default that is no option",
        edit: ("default: REVISE", "default: RETRY"),
        files: &[],
        at: "s.yaml:20:68",
        message: "unknown option `RETRY`",
    },
    Case {
        name: "json router without a field",
        edit: ("by: contains", "by: json"),
        files: &[],
        at: "s.yaml:20:20",
        message: "`by: json` needs `field`",
    },
    Case {
        name: "regex router with a bad pattern",
        edit: (
            "by: contains, options: [APPROVED, REVISE]",
            "by: regex, options: [APPROVED, REVISE], match: {REVISE: \"(\"}",
        ),
        files: &[],
        at: "s.yaml:20:72",
        message: "invalid regex `(`",
    },
    Case {
        name: "conditional edges without a fallback",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, when: {contains: GO}}",
        ),
        files: &[],
        at: "s.yaml:16:5",
        message: "every edge from `plan` has `when`",
    },
    Case {
        name: "condition with two tests",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: code, when: {contains: GO, regex: go}}\n    - {from: plan, to: END}",
        ),
        files: &[],
        at: "s.yaml:23:36",
        message: "`when` needs exactly one of `contains` or `regex`",
    },
    Case {
        name: "join with one incoming edge",
        edit: (
            "  edges:",
            "    merge: {join: vote}\n  edges:\n    - {from: plan, to: merge}\n    - {from: merge, to: END}",
        ),
        files: &[],
        at: "s.yaml:21:5",
        message: "join `merge` has 1 incoming edge(s)",
    },
    Case {
        name: "join verifier that does not exist",
        edit: (
            "    gate:\n",
            "    merge: {join: verifier, verifier: oracel}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:39",
        message: "unknown verifier `oracel`; did you mean `oracle`?",
    },
    Case {
        name: "node named START",
        edit: (
            "    plan: {agent: planner}",
            "    plan: {agent: planner}\n    START: {agent: coder}",
        ),
        files: &[],
        at: "s.yaml:17:5",
        message: "`START` is implicit in every graph",
    },
    Case {
        name: "edge into START",
        edit: (
            "{from: plan, to: code}",
            "{from: plan, to: START}\n    - {from: plan, to: code}",
        ),
        files: &[],
        at: "s.yaml:23:24",
        message: "no edge may enter `START`",
    },
    Case {
        name: "zero max_visits",
        edit: ("max_visits: 3", "max_visits: 0"),
        files: &[],
        at: "s.yaml:27:58",
        message: "`max_visits` must be at least 1",
    },
    Case {
        name: "unknown graph key",
        edit: ("  edges:", "  max_turn: 5\n  edges:"),
        files: &[],
        at: "s.yaml:21:3",
        message: "unknown key `max_turn` in `graph` (expected one of: nodes, edges, max_turns); did you mean `max_turns`?",
    },
    Case {
        name: "chat with one participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder], until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:18",
        message: "chat `room` needs at least two `participants`",
    },
    Case {
        name: "chat with an unknown participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, revewer], until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:41",
        message: "unknown agent `revewer`; did you mean `reviewer`?",
    },
    Case {
        name: "chat that might never end",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], until: {mentions: DONE}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:59",
        message: "chat `room` might never end",
    },
    Case {
        name: "chat with a manager but no manager agent",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: manager, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:62",
        message: "`speakers: manager` needs `manager`",
    },
    Case {
        name: "chat speaker router option that is not a participant",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: router, router: {by: contains, options: [coder, reviwer]}, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:110",
        message: "option `reviwer` is not a participant of chat `room`; did you mean `reviewer`?",
    },
    Case {
        name: "chat with router speakers but no router",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], speakers: router, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:62",
        message: "`speakers: router` needs `router`: what picks the next speaker from the last message",
    },
    Case {
        name: "chat router without router speakers",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], router: {by: contains, options: [coder]}, until: {max_messages: 3}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:60",
        message: "`router` applies to `speakers: router`",
    },
    Case {
        name: "chat ending on an unknown verifier",
        edit: (
            "    gate:\n",
            "    room: {chat: {participants: [coder, reviewer], until: {any: [{verifier: oracel}, {max_messages: 3}]}}}\n    gate:\n",
        ),
        files: &[],
        at: "s.yaml:19:59",
        message: "unknown verifier `oracel`; did you mean `oracle`?",
    },
    Case {
        name: "view on a router",
        edit: (
            "router: {by: contains, options: [APPROVED, REVISE], default: REVISE}",
            "router: {by: contains, options: [APPROVED, REVISE], default: REVISE}\n      view: all",
        ),
        files: &[],
        at: "s.yaml:21:13",
        message: "`view` applies to agent and chat nodes",
    },
    Case {
        name: "summary by an unknown agent",
        edit: (
            "plan: {agent: planner}",
            "plan: {agent: planner, view: {summary: writer}}",
        ),
        files: &[],
        at: "s.yaml:16:34",
        message: "unknown agent `writer`",
    },
    Case {
        name: "self-correction over the graph",
        edit: (
            "  - {kind: self_consistency, agent: planner, n: 1}",
            "  - {kind: self_correction, agent: graph, verifier: oracle, n: 2}",
        ),
        files: &[],
        at: "s.yaml:13:12",
        message: "`self_correction` revises one agent's answers; it cannot wrap the graph",
    },
    Case {
        name: "an agent named like the graph",
        edit: (
            "  coder: {model: sim",
            "  graph: {model: sim, prompt: x}\n  coder: {model: sim",
        ),
        files: &[],
        at: "s.yaml:6:3",
        message: "`graph` names the scenario's graph in strategies; rename this agent",
    },
    Case {
        name: "node running the graph pseudo-agent",
        edit: ("plan: {agent: planner}", "plan: {agent: graph}"),
        files: &[],
        at: "s.yaml:16:19",
        message: "unknown agent `graph`",
    },
    Case {
        name: "graph over an agent whose definition failed",
        edit: ("coder: {model: sim", "coder: {model: nosuch"),
        files: &[],
        at: "s.yaml:6:18",
        message: "agent `coder` uses undefined model `nosuch` (defined: sim)",
    },
    Case {
        name: "unknown edge key",
        edit: ("{from: plan, to: code}", "{from: plan, to: code, limit: 2}"),
        files: &[],
        at: "s.yaml:23:30",
        message: "unknown key `limit` (expected one of: from, to, option, when, max_visits)",
    },
];

#[test]
fn malformed_graphs_point_at_the_problem_and_write_nothing() {
    check_cases(GRAPH_BASE, GRAPH_CASES);
}

/// Edits of GRAPH_BASE's simulated agents (`simulate`) that are invalid.
const SIMULATE_CASES: &[Case] = &[
    Case {
        name: "unknown failure code",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, failures: {FM-32: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:7:104",
        message: "unknown failure mode `FM-32`; MAST codes are FM-1.1 to FM-3.3; did you mean `FM-3.2`?",
    },
    Case {
        name: "failure mode that cannot be simulated",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.1: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-1.1 (disobey task specification) cannot be simulated; simulated agents can act out FM-1.2, FM-1.3, FM-1.5, FM-2.1, FM-2.4, FM-2.5, FM-3.1, FM-3.2",
    },
    Case {
        name: "skipped verification by an agent that does not verify",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.2: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-3.2 (no or incomplete verification) needs an agent that verifies: give it `role: reviewer` or `role: judge`",
    },
    Case {
        name: "failure rates adding up to more than one",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.2: 0.6, FM-2.4: 0.6}}}",
        ),
        files: &[],
        at: "s.yaml:6:75",
        message: "failure rates add up to 1.2, more than 1: at most one failure is injected per turn",
    },
    Case {
        name: "failure rate below zero",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-1.3: -0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "`FM-1.3` must be a probability in [0, 1], found -0.1",
    },
    Case {
        name: "agreement above one",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {agree: 1.5}}",
        ),
        files: &[],
        at: "s.yaml:6:72",
        message: "`agree` must be a probability in [0, 1], found 1.5",
    },
    Case {
        name: "approve and revise words containing each other",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, approve: OK, revise: NOT OK}}",
        ),
        files: &[],
        at: "s.yaml:7:95",
        message: "`approve` and `revise` must not contain each other, or a router could not tell them apart",
    },
    Case {
        name: "blank approve word",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: reviewer, approve: \" \"}}",
        ),
        files: &[],
        at: "s.yaml:7:95",
        message: "`approve` needs a word, e.g. APPROVED",
    },
    Case {
        name: "unknown role",
        edit: (
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\"}",
            "  reviewer: {model: sim, prompt: \"Review {{ question }}\", simulate: {role: critic}}",
        ),
        files: &[],
        at: "s.yaml:7:76",
        message: "unknown value `critic` (expected one of: solver, debater, planner, reviewer, judge)",
    },
    Case {
        name: "misspelled simulate key in an agent the graph uses",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {agre: 0.5}}",
        ),
        files: &[],
        at: "s.yaml:6:65",
        message: "unknown key `agre` (expected one of: role, agree, approve_correct, approve_wrong, approve, revise, failures); did you mean `agree`?",
    },
    Case {
        name: "premature termination by an agent that cannot end the run",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.1: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:84",
        message: "FM-3.1 (premature termination) never happens for `coder`: only a reviewer (`role: reviewer`) or a speaker in a chat that ends on `mentions` can end the conversation",
    },
    Case {
        name: "ignored termination by an agent that cannot end the run",
        edit: (
            "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
            "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {role: planner, failures: {FM-1.5: 0.1}}}",
        ),
        files: &[],
        at: "s.yaml:6:99",
        message: "FM-1.5 (unaware of termination conditions) never happens for `coder`",
    },
];

#[test]
fn malformed_simulated_agents_point_at_the_problem_and_write_nothing() {
    check_cases(GRAPH_BASE, SIMULATE_CASES);
    // Without a graph no turn acts a failure out.
    let s = Scratch::new();
    let file = s.write(
        "nog.yaml",
        &BASE.replacen(
            "    model: sim\n",
            "    model: sim\n    simulate: {failures: {FM-1.2: 0.1}}\n",
            1,
        ),
    );
    let out = Crucible::new(&["validate"]).arg(&file).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nog.yaml:10:26: error: failures are acted out only in the turns of a graph, and this scenario has no `graph`"),
        "{stderr}"
    );
    // In a chat that ends on a mention, any participant can end it early.
    let chat = chat_scenario(
        "speakers: round_robin",
        "{any: [{mentions: DONE}, {max_messages: 6}]}",
    ).replacen(
        "  coder: {model: sim, prompt: \"Code {{ question }}\"}",
        "  coder: {model: sim, prompt: \"Code {{ question }}\", simulate: {failures: {FM-3.1: 0.2, FM-1.5: 0.2}}}",
        1,
    );
    assert!(chat.contains("FM-3.1"));
    Crucible::new(&["validate"])
        .arg(s.write("chat.yaml", &chat))
        .ok();
}

#[test]
fn graph_validation_reports_every_problem() {
    let s = Scratch::new();
    let text = GRAPH_BASE
        .replace("review: {agent: reviewer}", "review: {agent: reviwer}")
        .replace("{from: plan, to: code}", "{from: plan, to: cod}")
        .replace("max_visits: 3", "max_visits: 0");
    let out = Crucible::new(&["graph"])
        .arg(s.write("s.yaml", &text))
        .output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for wanted in [
        "s.yaml:18:21: error: unknown agent `reviwer`",
        "s.yaml:23:24: error: unknown node `cod`",
        "s.yaml:27:58: error: `max_visits` must be at least 1",
        "3 error(s)",
    ] {
        assert!(stderr.contains(wanted), "{wanted} in:\n{stderr}");
    }
}

#[test]
fn graph_prints_its_edges_and_dot() {
    let s = Scratch::new();
    // A fan-out from `plan` gathered by a vote, and a conditional edge.
    let file = s.write(
        "s.yaml",
        &GRAPH_BASE
            .replace("    gate:\n", "    second: {agent: coder}\n    merge: {join: vote, max_visits: 2}\n    gate:\n")
            .replace(
                "    - {from: plan, to: code}\n",
                "    - {from: plan, to: code}\n    - {from: plan, to: second}\n    - {from: second, to: merge}\n    - {from: code, to: merge, when: {regex: \"^DONE\"}}\n    - {from: merge, to: END}\n",
            ),
    );
    let outline = Crucible::new(&["graph"]).arg(&file).ok();
    for line in [
        "gate: router by contains",
        "merge: join vote, max visits 2",
        "code -> merge  [regex /^DONE/]",
        "gate -> code  [option REVISE, max visits 3]",
    ] {
        assert!(outline.lines().any(|l| l == line), "{line} in:\n{outline}");
    }
    let dot = Crucible::new(&["graph", "--dot"]).arg(&file).ok();
    insta::assert_snapshot!("graph_dot", dot);

    // A scenario without a graph has nothing to draw.
    let plain = s.write("plain.yaml", BASE);
    let out = Crucible::new(&["graph"]).arg(&plain).output();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `graph` section"));
}

#[test]
fn validation_reports_every_problem_not_just_the_first() {
    let s = Scratch::new();
    let text = BASE
        .replace("model: sim", "model: sym")
        .replace("verifier: oracle", "verifier: nope")
        .replace("n: [1, 2]", "n: [0]")
        .replace("seed: 1", "seed: x\nextra: 1");
    let file = s.write("s.yaml", &text);
    let out = Crucible::new(&["validate"]).arg(&file).output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr.lines().filter(|l| l.contains(": error: ")).count();
    assert_eq!(errors, 5, "{stderr}");
    assert!(stderr.contains("5 error(s)"), "{stderr}");
}

#[test]
fn a_broken_agent_file_is_reported_once_not_at_every_use() {
    let s = Scratch::new();
    s.write("agents/solver.yaml", "model: sim\npromt: x\n");
    let text = BASE.replace(
        "    model: sim\n    prompt: \"Q: {{ question }}\"",
        "    file: agents/solver.yaml",
    );
    let out = Crucible::new(&["validate"])
        .arg(s.write("s.yaml", &text))
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains(": error: ")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn diagnostics_show_the_source_line_with_a_caret() {
    let s = Scratch::new();
    let file = s.write("s.yaml", &BASE.replace("model: sim", "model: sym"));
    let out = Crucible::new(&["validate"]).arg(&file).output();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", s.dir.path().display()), "");
    insta::assert_snapshot!(stderr.trim_end(), @r"
    s.yaml:9:12: error: agent `solver` uses undefined model `sym` (defined: sim); did you mean `sim`?
     9 |     model: sym
       |            ^
    1 error(s); nothing was run
    ");
}

#[test]
fn quickstart_shows_best_of_n_climbing_faster_than_self_consistency() {
    let s = Scratch::new();
    let (_, v) = run_shipped(&s, "quickstart.yaml");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["samples"], 200 * 64);
    let acc = |strategy: &str, n: u64| num(result(&v, strategy, n), "accuracy");
    // At n = 1 both are one sample: accuracy ≈ p_correct = 0.4.
    assert!((acc("self_consistency", 1) - 0.4).abs() < 0.03);
    assert_eq!(acc("self_consistency", 1), acc("best_of_n", 1));
    // With a perfect verifier, best-of-n fails only if all n samples are wrong.
    for n in [2u64, 4, 8] {
        let theory = 1.0 - 0.6f64.powi(n as i32);
        assert!((acc("best_of_n", n) - theory).abs() < 0.03, "n={n}");
        assert!(
            acc("best_of_n", n) > acc("self_consistency", n) + 0.1,
            "n={n}"
        );
    }
    // Self-consistency climbs slowly with a gap of 0.1, still short of 1 at 16.
    assert!(acc("self_consistency", 16) < 0.8);
    assert!(acc("self_consistency", 64) > acc("self_consistency", 8));
    for r in v["results"].as_array().unwrap() {
        let (lo, hi, a) = (
            r["ci_low"].as_f64().unwrap(),
            r["ci_high"].as_f64().unwrap(),
            r["accuracy"].as_f64().unwrap(),
        );
        assert!(lo <= a && a <= hi, "{r}");
        assert_eq!(r["tasks"], 200);
    }
}

#[test]
fn weighted_majority_beats_best_of_n_under_a_lenient_verifier() {
    // The shipped example: an oracle that accepts 20% of wrong answers.
    let s = Scratch::new();
    let (_, v) = run_shipped(&s, "noisy-verifier.yaml");
    let row = |strategy: &str, n: u64| -> (f64, f64, f64) {
        let r = result(&v, strategy, n);
        (num(r, "accuracy"), num(r, "ci_low"), num(r, "ci_high"))
    };
    // One sample: every rule answers with it.
    let single = row("self_consistency", 1).0;
    for s in ["best_of_n_lenient", "weighted_lenient", "weighted_noisy"] {
        assert!((row(s, 1).0 - single).abs() < 1e-12, "{s}");
    }
    let (best, _, best_high) = row("best_of_n_lenient", 16);
    let (weighted, weighted_low, _) = row("weighted_lenient", 16);
    assert!(
        weighted_low > best_high,
        "weighted {weighted} vs best-of-n {best}"
    );
    assert!(row("weighted_noisy", 16).0 > row("best_of_n_noisy", 16).0);
}

/// The data lines of a chart: (stroke colour, points) of every polyline in a
/// series colour with more than two points (axes and legend marks have two).
fn chart_lines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| {
            let points: Vec<(f64, f64)> = n
                .attribute("points")?
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            (points.len() > 2).then(|| (n.attribute("stroke").unwrap().to_owned(), points))
        })
        .collect()
}

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

fn sample_rows(db: &Path) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare(
            "SELECT s.task_index, s.agent, s.model, s.sample_index, s.text, s.answer, s.normalized,
                s.correct, s.abstained, s.input_tokens, s.output_tokens, s.latency_ms, s.error,
                (SELECT group_concat(verifier || '=' || score || '/' || ifnull(accepted, ''), ',')
                 FROM scores WHERE sample_id = s.id)
             FROM samples s ORDER BY s.agent, s.task_index, s.sample_index",
        )
        .unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The rows `sql` selects, each as its values joined by `|` (NULL as nothing).
fn table_rows(db: &Path, sql: &str) -> Vec<String> {
    use rusqlite::types::Value;
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get::<_, Value>(i).unwrap() {
                Value::Null => String::new(),
                Value::Integer(v) => v.to_string(),
                Value::Real(v) => format!("{v:?}"),
                Value::Text(v) => v,
                Value::Blob(v) => format!("{v:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn results_do_not_depend_on_concurrency() {
    let s = Scratch::new();
    let scenario = root().join("scenarios/noisy-verifier.yaml");
    let (a, b) = (s.path("c1.db"), s.path("c64.db"));
    let ja = Crucible::new(&["run"])
        .arg(&scenario)
        .db(&a)
        .args_concurrency(1)
        .arg("--json")
        .ok();
    let jb = Crucible::new(&["run"])
        .arg(&scenario)
        .db(&b)
        .args_concurrency(64)
        .arg("--json")
        .ok();
    let rows_a = sample_rows(&a);
    assert!(rows_a.len() > 1000);
    assert_eq!(
        rows_a,
        sample_rows(&b),
        "sample rows differ between concurrency 1 and 64"
    );
    for sql in [
        "SELECT * FROM task_results ORDER BY strategy, n, task_index",
        "SELECT strategy, kind, agent, verifier, n, accuracy, ci_low, ci_high, tasks, abstain_rate, mean_tokens FROM results ORDER BY strategy, n",
        "SELECT run_id, task_index, agent, first_sample, system_hash, prompt_hash, request, response_hash, status FROM calls ORDER BY agent, task_index, first_sample",
    ] {
        assert_eq!(table_rows(&a, sql), table_rows(&b, sql), "{sql}");
    }
    let strip = |j: &str| {
        let mut v: serde_json::Value = serde_json::from_str(j).unwrap();
        v.as_object_mut().unwrap().remove("db");
        v
    };
    assert_eq!(strip(&ja), strip(&jb));
}

impl Crucible {
    fn args_concurrency(self, n: usize) -> Self {
        self.arg("--concurrency").arg(n.to_string())
    }
}

#[test]
fn export_writes_one_record_per_sample() {
    let s = Scratch::new();
    let (db, _) = run_shipped(&s, "noisy-verifier.yaml");
    let samples = query::<i64>(&db, "SELECT count(*) FROM samples");
    let jsonl = Crucible::new(&["export", "1", "--format", "jsonl"])
        .db(&db)
        .ok();
    let records: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as i64, samples);
    for key in [
        "task_id",
        "sample_index",
        "answer",
        "correct",
        "text",
        "scores",
    ] {
        assert!(
            records[0].get(key).is_some(),
            "missing {key}: {}",
            records[0]
        );
    }
    assert!(records[0]["scores"]["noisy"].is_number());
    let csv = Crucible::new(&["export", "1", "--format", "csv"])
        .db(&db)
        .ok();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert!(header.iter().any(|h| h == "score_noisy"), "{header:?}");
    assert_eq!(reader.records().count() as i64, samples);
}

#[test]
fn runs_lists_every_run_and_env_selects_the_database() {
    let s = Scratch::new();
    let db = s.path("r.db");
    let file = s.write("s.yaml", BASE);
    Crucible::new(&["run"]).arg(&file).db(&db).ok();
    let mut second = Crucible::new(&["run"]).arg(&file);
    second.cmd.env("CRUCIBLE_DB", &db);
    second.ok();
    let listed = Crucible::new(&["runs", "--json"]).db(&db).ok();
    let runs: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[1]["status"], "completed");
    assert_eq!(runs[1]["samples"], 4);
}

#[test]
fn budget_stops_the_run_at_its_cap_without_exceeding_it() {
    let s = Scratch::new();
    let text = BASE.replace("strategies:", "budget:\n  max_requests: 1\nstrategies:");
    let db = s.path("b.db");
    let out = Crucible::new(&["run"])
        .arg(s.write("s.yaml", &text))
        .db(&db)
        .arg("--json")
        .output();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "budget_exhausted");
    // One request draws one task's whole pool of 2 samples; the second task never starts.
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM calls"), 1);
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM samples"), 2);
    assert_eq!(v["results"][0]["tasks"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget"));
}

#[test]
fn reading_an_unknown_run_fails_with_exit_1() {
    let s = Scratch::new();
    let db = s.path("r.db");
    Crucible::new(&["run"])
        .arg(s.write("s.yaml", BASE))
        .db(&db)
        .ok();
    for command in ["show", "analyze", "plot"] {
        let out = Crucible::new(&[command, "99"]).db(&db).output();
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no run 99") && err.contains("r.db"),
            "{command}: {err}"
        );
    }
    let table = Crucible::new(&["analyze", "1"]).db(&db).ok();
    assert!(
        table.contains("majority") && table.contains("best_of_n [oracle]"),
        "{table}"
    );
    let missing = Crucible::new(&["runs"]).db(&s.path("none.db")).output();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        !s.path("none.db").exists(),
        "reading commands must not create a database"
    );
}

#[test]
fn system_prompts_are_stored_once() {
    let s = Scratch::new();
    let (db, _) = run_shipped(&s, "quickstart.yaml");
    // The simulated server takes a whole pool of 64 samples in one request.
    let calls = query::<i64>(&db, "SELECT count(*) FROM calls");
    assert_eq!(calls, 200);
    assert_eq!(query::<i64>(&db, "SELECT sum(n) FROM calls"), 200 * 64);
    assert_eq!(
        query::<i64>(&db, "SELECT count(DISTINCT system_hash) FROM calls"),
        1
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM blobs WHERE text LIKE 'You are a careful%'"
        ),
        1
    );
    // Every call's messages resolve through the view.
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM call_view WHERE system IS NOT NULL AND prompt LIKE 'Solve%'"
        ),
        calls
    );
    assert_eq!(
        query::<i64>(&db, "PRAGMA user_version"),
        crucible::store::SCHEMA_VERSION
    );
}

/// Start `crucible run FILE --db DB` and return once it has stored samples.
fn spawn_run_until_samples(
    file: &Path,
    db: &Path,
    stdio: std::process::Stdio,
) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_crucible"))
        .arg("run")
        .arg(file)
        .arg("--db")
        .arg(db)
        .stdout(stdio)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Opening a missing file would create it: wait for the run to.
        if !db.exists() {
            continue;
        }
        let stored = rusqlite::Connection::open(db)
            .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get::<_, i64>(0)));
        if stored.is_ok_and(|n| n > 0) {
            break;
        }
    }
    child
}

#[cfg(unix)]
#[test]
fn ctrl_c_commits_finished_samples_and_marks_the_run_interrupted() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(root().join("scenarios/quickstart.yaml"))
        .unwrap()
        .replace("count: 200", "count: 100000");
    let file = s.write("big.yaml", &text);
    let db = s.path("i.db");
    let child = spawn_run_until_samples(&file, &db, std::process::Stdio::piped());
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let run_status: String = conn
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(run_status, "interrupted");
    let samples = query::<i64>(&db, "SELECT count(*) FROM samples");
    assert!(samples > 0 && samples < 100_000 * 64, "{samples}");
    // Every sample's call is there too, and every finished task has all 64 samples.
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples s LEFT JOIN calls c ON c.id = s.call_id WHERE c.id IS NULL"
        ),
        0
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM (SELECT DISTINCT task_index FROM task_results) t JOIN (SELECT task_index, count(*) AS k FROM samples GROUP BY task_index) s USING (task_index) WHERE s.k <> 64"
        ),
        0
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted"), "{stdout}");
}

#[test]
fn schema_command_prints_a_json_schema() {
    let out = Crucible::new(&["schema"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["title"], "ScenarioSchema");
    for key in ["models", "agents", "dataset", "strategies"] {
        assert!(v["properties"][key].is_object(), "{key}");
    }
    // The committed copy that scenarios point editors at is up to date.
    let committed = std::fs::read_to_string(root().join("crucible.schema.json")).unwrap();
    assert!(
        committed.trim() == out.trim(),
        "crucible.schema.json is stale: run `crucible schema > crucible.schema.json`"
    );
}

#[test]
fn every_shipped_scenario_validates() {
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Crucible::new(&["validate"]).arg(&path).ok();
        }
    }
}

/// Run `scenario`, written into `s`, with `--json`: the database and the summary.
fn run_json(s: &Scratch, scenario: &str) -> (PathBuf, serde_json::Value) {
    let db = s.path("run.db");
    let summary = Crucible::new(&["run"])
        .arg(s.write("scenario.yaml", scenario))
        .db(&db)
        .json();
    (db, summary)
}

/// `run --json` of the shipped `scenarios/{name}` into a fresh database.
fn run_shipped(s: &Scratch, name: &str) -> (PathBuf, serde_json::Value) {
    let db = s.path("run.db");
    let summary = Crucible::new(&["run"])
        .arg(root().join("scenarios").join(name))
        .db(&db)
        .json();
    (db, summary)
}

/// A scenario: one simulated model `sim` with `distribution` behind agent
/// `solver`, `count` synthetic tasks, then `rest` (verifiers, strategies).
fn simulated_scenario(
    name: &str,
    seed: u64,
    distribution: &str,
    count: usize,
    rest: &str,
) -> String {
    format!(
        "name: {name}\nseed: {seed}\nmodels:\n  sim:\n    provider: simulated\n    distribution: {distribution}\n\
         agents:\n  solver:\n    model: sim\n    prompt: \"Q: {{{{ question }}}}\"\n\
         dataset:\n  synthetic: {{count: {count}}}\n{rest}"
    )
}

/// Exact probability that plurality over `n` fresh samples picks class 0
/// (ties shared), when class i comes up with probability `probs[i]` and what
/// is left is abstention: a sum over every way to split `n` among the classes.
fn analytic_majority(probs: &[f64], n: usize) -> f64 {
    fn split(
        probs: &[f64],
        n: usize,
        counts: &mut Vec<usize>,
        weight: f64,
        ln_fact: &[f64],
    ) -> f64 {
        if counts.len() == probs.len() {
            let rest = n - counts.iter().sum::<usize>();
            let abstain = 1.0 - probs.iter().sum::<f64>();
            let best = *counts.iter().max().unwrap();
            if best == 0 || counts[0] < best {
                return 0.0;
            }
            let tied = counts.iter().filter(|&&c| c == best).count();
            let p = (ln_fact[n] - ln_fact[rest] + weight).exp() * abstain.powi(rest as i32);
            return p / tied as f64;
        }
        let i = counts.len();
        let used: usize = counts.iter().sum();
        (0..=n - used)
            .map(|c| {
                counts.push(c);
                let w = weight + c as f64 * probs[i].ln() - ln_fact[c];
                let p = split(probs, n, counts, w, ln_fact);
                counts.pop();
                p
            })
            .sum()
    }
    let ln_fact: Vec<f64> = (0..=n)
        .scan(0.0, |acc, k| {
            if k > 0 {
                *acc += (k as f64).ln();
            }
            Some(*acc)
        })
        .collect();
    split(probs, n, &mut Vec::new(), 0.0, &ln_fact)
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
fn analyze_curves_match_the_analytic_ones_on_a_simulated_model() {
    // p = 0.5, Δ = 0.2: answers come up 0.5 (correct), 0.3, 0.1, 0.1.
    let scenario = simulated_scenario(
        "analytic",
        5,
        "{p_correct: 0.5, delta: 0.2, wrong_answers: 3}",
        300,
        r#"verifiers:
  oracle: {kind: oracle}
strategies:
  - kind: self_consistency
    agent: solver
    n: [1, 5, 24]
  - kind: best_of_n
    agent: solver
    verifier: oracle
    n: [1, 5, 24]
  - kind: weighted_majority
    agent: solver
    verifier: oracle
    n: 24
"#,
    );
    let s = Scratch::new();
    let (db, run) = run_json(&s, &scenario);
    let out = Crucible::new(&["analyze", "1", "--json", "--confidence", "0.999"])
        .db(&db)
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let curve = |rule: &str, n: usize| -> &serde_json::Value {
        v["curves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule"] == rule && c["n"] == n)
            .unwrap_or_else(|| panic!("no {rule} at n={n}"))
    };
    for n in 1..=24 {
        // With a perfect verifier, best-of-n, weighted majority and pass@k
        // fail only when every sample is wrong.
        let any_right = 1.0 - 0.5f64.powi(n as i32);
        for (rule, theory) in [
            ("majority", analytic_majority(&[0.5, 0.3, 0.1, 0.1], n)),
            ("best_of_n", any_right),
            ("weighted_majority", any_right),
            ("pass@k", any_right),
        ] {
            let c = curve(rule, n);
            let get = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} in {c}"));
            // Within 1% of certainty the mean over tasks hangs on the one or
            // two tasks whose pools are unluckily poor, and a percentile
            // bootstrap over 300 tasks cannot see that tail: there the
            // curves must agree to 1e-3 instead.
            let (lo, hi) = if theory < 0.99 {
                (get("ci_low") - 1e-9, get("ci_high") + 1e-9)
            } else {
                (get("accuracy") - 1e-3, get("accuracy") + 1e-3)
            };
            assert!(
                lo <= theory && theory <= hi,
                "{rule} at n={n}: analytic {theory} outside [{lo}, {hi}]: {c}"
            );
            assert!(
                get("ci_low") <= get("accuracy") && get("accuracy") <= get("ci_high"),
                "{c}"
            );
            assert!(get("mean_tokens") > 0.0);
        }
    }
    // The run's own summary used the same exact estimators.
    for r in run["results"].as_array().unwrap() {
        let rule = match r["kind"].as_str().unwrap() {
            "self_consistency" => "majority",
            "best_of_n" => "best_of_n",
            _ => continue,
        };
        let n = r["n"].as_u64().unwrap() as usize;
        let a = curve(rule, n)["accuracy"].as_f64().unwrap();
        assert!(
            (a - r["accuracy"].as_f64().unwrap()).abs() < 1e-9,
            "{rule} n={n}"
        );
    }
    // p̂ and Δ̂ of a task are the shares of its stored answers.
    let task = &v["tasks"][7];
    let id = task["task_id"].as_str().unwrap();
    let share = |sql: &str| query::<f64>(&db, &sql.replace("ID", id)) / 24.0;
    let p = share("SELECT count(*) FROM sample_view WHERE task_id = 'ID' AND correct = 1");
    let top_wrong = share(
        "SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM sample_view
         WHERE task_id = 'ID' AND correct = 0 AND normalized IS NOT NULL GROUP BY normalized)",
    );
    assert!(
        (task["p_correct"].as_f64().unwrap() - p).abs() < 1e-12,
        "{task}"
    );
    assert!(
        (task["delta"].as_f64().unwrap() - (p - top_wrong)).abs() < 1e-12,
        "{task}"
    );
    assert_eq!(v["tasks"].as_array().unwrap().len(), 300);
    assert_eq!(v["agents"][0]["tasks"], 300);
}

/// Adaptive consistency with a margin rule on two answers is a random walk
/// on the vote difference, absorbed at ±`margin`, cut off at `cap` (then the
/// plurality wins, a tie is shared): exact accuracy and expected samples.
fn analytic_margin_race(p: f64, margin: i64, cap: usize) -> (f64, f64) {
    let mut alive: std::collections::BTreeMap<i64, f64> = [(0, 1.0)].into();
    let (mut accuracy, mut samples) = (0.0, 0.0);
    for t in 1..=cap {
        let mut next = std::collections::BTreeMap::new();
        for (d, w) in alive {
            for (step, q) in [(1, p), (-1, 1.0 - p)] {
                let (d, w) = (d + step, w * q);
                if d.abs() >= margin {
                    samples += w * t as f64;
                    accuracy += if d > 0 { w } else { 0.0 };
                } else {
                    *next.entry(d).or_insert(0.0) += w;
                }
            }
        }
        alive = next;
    }
    for (d, w) in alive {
        samples += w * cap as f64;
        accuracy += w * if d > 0 {
            1.0
        } else if d == 0 {
            0.5
        } else {
            0.0
        };
    }
    (accuracy, samples)
}

#[test]
fn adaptive_consistency_matches_the_random_walk_it_is() {
    // Two answers, 0.6 and 0.4; stop at a lead of 4 votes or after 40 samples.
    let scenario = simulated_scenario(
        "race",
        9,
        "{p_correct: 0.6, delta: 0.2, wrong_answers: 1}",
        400,
        r#"strategies:
  - kind: adaptive_consistency
    agent: solver
    stop: {margin: 4}
    n: 40
  - kind: adaptive_consistency
    name: never_stops
    agent: solver
    stop: {margin: 1000}
    n: [7, 40]
  - kind: self_consistency
    agent: solver
    n: [7, 40]
"#,
    );
    let s = Scratch::new();
    let (db, v) = run_json(&s, &scenario);
    let row = |strategy: &str, n: u64| result(&v, strategy, n);
    let get = num;
    let (accuracy, samples) = analytic_margin_race(0.6, 4, 40);
    let race = row("adaptive_consistency", 40);
    assert!(
        get(race, "ci_low") <= accuracy && accuracy <= get(race, "ci_high"),
        "analytic {accuracy} outside {race}"
    );
    // Samples spent: the pools' own p̂ varies around 0.6, so allow 5%.
    assert!(
        (get(race, "mean_samples") / samples - 1.0).abs() < 0.05,
        "analytic {samples}: {race}"
    );
    assert!(get(race, "mean_samples") < 20.0);
    // A rule that never holds draws every sample and is plain majority voting
    // (up to the Monte Carlo error of 1000 orders per task, over 400 tasks).
    for n in [7u64, 40] {
        let (never, sc) = (row("never_stops", n), row("self_consistency", n));
        assert_eq!(get(never, "mean_samples"), n as f64);
        assert!(
            (get(never, "accuracy") - get(sc, "accuracy")).abs() < 0.005,
            "{never} {sc}"
        );
    }
    // Every task records what it stopped at and chose.
    let stopped: f64 = query(
        &db,
        "SELECT avg(samples) FROM task_results WHERE strategy = 'adaptive_consistency'",
    );
    assert!((stopped - get(race, "mean_samples")).abs() < 1e-9);
}

#[test]
fn programmatic_verifiers_score_every_sample_and_record_failures() {
    let s = Scratch::new();
    // Scores 1 for the expected answer, 0 otherwise; fails on sample 3 and
    // prints no number on sample 5.
    s.write(
        "check.py",
        r#"import json, sys
c = json.load(sys.stdin)
if c["sample_index"] == 3:
    sys.exit("boom")
if c["sample_index"] == 5:
    print("maybe")
else:
    print(1.0 if c["answer"] == c["expected"] else 0.0)
"#,
    );
    let scenario = simulated_scenario(
        "programmatic",
        4,
        "{p_correct: 0.4, delta: 0.1, wrong_answers: 4, abstain: 0.1}",
        12,
        r#"verifiers:
  exact: {kind: programmatic, check: exact}
  near: {kind: programmatic, check: numeric, tolerance: 1.5}
  formatted: {kind: programmatic, check: regex, pattern: "answer is -?[0-9]+"}
  script: {kind: programmatic, check: command, command: [python3, check.py], timeout: 20}
strategies:
  - {kind: best_of_n, name: bon_exact, agent: solver, verifier: exact, n: 8}
  - {kind: best_of_n, name: bon_near, agent: solver, verifier: near, n: 8}
  - {kind: best_of_n, name: bon_formatted, agent: solver, verifier: formatted, n: 8}
  - {kind: weighted_majority, name: wm_script, agent: solver, verifier: script, n: 8}
"#,
    );
    let db = s.path("p.db");
    Crucible::new(&["run"])
        .arg(s.write("p.yaml", &scenario))
        .db(&db)
        .ok();
    let count = |sql: &str| query::<i64>(&db, sql);
    assert_eq!(count("SELECT count(*) FROM scores"), 4 * 12 * 8);
    // exact is the answer's correctness; abstentions score 0.
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view WHERE verifier = 'exact' AND score IS NOT coalesce(correct, 0)"
        ),
        0
    );
    // numeric accepts answers within 1.5 of the expected number.
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view s JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index
             WHERE verifier = 'near'
               AND score IS NOT (CASE WHEN s.normalized IS NOT NULL
                   AND abs(CAST(s.normalized AS REAL) - CAST(t.expected AS REAL)) <= 1.5 THEN 1.0 ELSE 0.0 END)"
        ),
        0
    );
    assert!(
        count(
            "SELECT count(*) FROM score_view WHERE verifier = 'near' AND score = 1 AND correct = 0"
        ) > 0
    );
    // regex looks at the text.
    assert_eq!(
        count(
            "SELECT count(*) FROM scores sc JOIN samples s ON s.id = sc.sample_id
             WHERE verifier = 'formatted' AND score IS NOT (CASE WHEN s.text LIKE '%answer is %' THEN 1.0 ELSE 0.0 END)"
        ),
        0
    );
    // The command scored every other sample like `exact`, and its failures
    // are recorded as no score with the reason, never as 0.
    assert_eq!(
        count("SELECT count(*) FROM score_view a JOIN score_view b USING (run_id, task_index, sample_index)
               WHERE a.verifier = 'script' AND b.verifier = 'exact' AND a.sample_index NOT IN (3, 5)
                 AND a.score IS NOT b.score"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM score_view WHERE verifier = 'script' AND score IS NULL"),
        24
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view WHERE verifier = 'script' AND sample_index = 3 AND detail LIKE '%exited with%boom%'"
        ),
        12
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view WHERE verifier = 'script' AND sample_index = 5 AND detail LIKE '%printed no number%maybe%'"
        ),
        12
    );
    // Exported records say "no score" as null, never 0.
    let exported: Vec<serde_json::Value> = Crucible::new(&["export", "1"])
        .db(&db)
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &exported {
        let unscored = matches!(r["sample_index"].as_i64(), Some(3 | 5));
        assert_eq!(r["scores"]["script"].is_null(), unscored, "{r}");
        assert!(r["scores"]["exact"].is_number());
    }
    // An unscored sample casts no vote: analysis still has the verifier's curves.
    let a: serde_json::Value =
        serde_json::from_str(&Crucible::new(&["analyze", "1", "--json"]).db(&db).ok()).unwrap();
    assert!(
        a["agents"][0]["verifiers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "script")
    );
}

#[test]
fn self_correction_succeeds_as_one_minus_one_minus_p_to_the_r() {
    // Right with probability 0.3 per attempt, a perfect verifier: after R
    // rounds the answer is right with probability 1 − 0.7^R.
    let scenario = simulated_scenario(
        "correction",
        13,
        "{p_correct: 0.3, delta: 0.05, wrong_answers: 4}",
        400,
        r#"verifiers:
  oracle: {kind: oracle}
strategies:
  - kind: self_consistency
    agent: solver
    n: 4
  - kind: self_correction
    agent: solver
    verifier: oracle
    n: [1, 2, 4, 8]
    feedback: "{{ answer }} is wrong (score {{ score }}). Try again: {{ question }}"
"#,
    );
    let s = Scratch::new();
    let (db, v) = run_json(&s, &scenario);
    let tasks = 400.0;
    for r in v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "self_correction")
    {
        let rounds = r["n"].as_i64().unwrap() as i32;
        let theory = 1.0 - 0.7f64.powi(rounds);
        let sigma = (theory * (1.0 - theory) / tasks).sqrt();
        let observed = r["accuracy"].as_f64().unwrap();
        assert!(
            (observed - theory).abs() <= 3.5 * sigma,
            "R={rounds}: observed {observed}, theory {theory}"
        );
        // Expected rounds spent: 1 + 0.7 + … + 0.7^(R−1).
        let spent: f64 = (0..rounds).map(|i| 0.7f64.powi(i)).sum();
        let mean = r["mean_samples"].as_f64().unwrap();
        assert!(
            (mean - spent).abs() < 0.1 * spent,
            "R={rounds}: {mean} rounds, theory {spent}"
        );
    }
    // Every round is in the trace, numbered after the pool of 4, each with
    // the conversation so far; a task stops at its first accepted answer.
    let count = |sql: &str| query::<i64>(&db, sql);
    let rounds = count("SELECT count(*) FROM samples WHERE strategy = 'self_correction'");
    let mean_8 = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "self_correction" && r["n"] == 8)
        .unwrap()["mean_samples"]
        .as_f64()
        .unwrap();
    assert_eq!(rounds as f64, (mean_8 * tasks).round());
    assert_eq!(
        count(
            "SELECT count(*) FROM samples WHERE strategy = 'self_correction' AND sample_index != 4 + round"
        ),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE round IS NULL"),
        400 * 4
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM samples s JOIN calls c ON c.id = s.call_id
               WHERE s.round > 0 AND json_array_length(c.request, '$.history') != s.round"
        ),
        0
    );
    assert!(count("SELECT count(*) FROM samples s JOIN calls c ON c.id = s.call_id
                   WHERE s.round = 1 AND json_extract(c.request, '$.history[0].feedback') LIKE '% is wrong (score 0.0). Try again: Synthetic question #%'") > 0);
    // Accepted rounds end their task; rejected ones are followed by another
    // unless the rounds ran out.
    assert_eq!(
        count("SELECT count(*) FROM samples a JOIN samples b ON b.run_id = a.run_id
                 AND b.task_index = a.task_index AND b.strategy = a.strategy AND b.round = a.round + 1
               WHERE a.strategy = 'self_correction' AND a.correct = 1"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM samples a WHERE a.strategy = 'self_correction' AND a.correct = 0 AND a.round < 7
                 AND NOT EXISTS (SELECT 1 FROM samples b WHERE b.run_id = a.run_id AND b.task_index = a.task_index
                                 AND b.strategy = a.strategy AND b.round = a.round + 1)"),
        0
    );
    // Export marks the rounds.
    let exported: Vec<serde_json::Value> = Crucible::new(&["export", "1"])
        .db(&db)
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let marked: Vec<&serde_json::Value> = exported
        .iter()
        .filter(|r| r["strategy"] == "self_correction")
        .collect();
    assert_eq!(marked.len() as i64, rounds);
    assert!(
        marked
            .iter()
            .all(|r| r["round"].as_i64().unwrap() + 4 == r["sample_index"].as_i64().unwrap())
    );
    // Analysis sees only the pool.
    let a: serde_json::Value = serde_json::from_str(
        &Crucible::new(&["analyze", "1", "--json", "--bootstrap", "0"])
            .db(&db)
            .ok(),
    )
    .unwrap();
    assert_eq!(a["agents"][0]["pool_size"], 4);
    assert_eq!(a["agents"][0]["tasks"], 400);
}

/// One sample of a small pool for brute-force checks: its answer class
/// (`None` for an abstention; class 0 is the correct one) and a verifier score.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    class: Option<usize>,
    score: f64,
}

/// Brute force: the mean of `credit` over every size-`k` subset of `pool`.
fn brute(pool: &[Candidate], k: usize, credit: impl Fn(&[Candidate]) -> f64) -> f64 {
    let (mut total, mut subsets) = (0.0, 0u64);
    let mut chosen = Vec::new();
    for mask in 0u32..(1 << pool.len()) {
        if mask.count_ones() as usize != k {
            continue;
        }
        subsets += 1;
        chosen.clear();
        chosen.extend(
            (0..pool.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| pool[i]),
        );
        total += credit(&chosen);
    }
    total / subsets as f64
}

/// Share of the win for class 0 when each candidate adds `weight` to its
/// class and the heaviest class wins, ties shared.
fn class_zero_wins(chosen: &[Candidate], weight: impl Fn(&Candidate) -> f64) -> f64 {
    let mut totals: std::collections::BTreeMap<usize, f64> = Default::default();
    for c in chosen {
        if let Some(class) = c.class {
            *totals.entry(class).or_insert(0.0) += weight(c);
        }
    }
    let Some(best) = totals.values().copied().reduce(f64::max) else {
        return 0.0;
    };
    let tied = totals.values().filter(|&&t| t == best).count();
    if totals.get(&0) == Some(&best) {
        1.0 / tied as f64
    } else {
        0.0
    }
}

/// Every estimator's curve against brute-force enumeration of `pool`;
/// weighted majority, when estimated, within `sigmas` of its worst-case
/// standard error.
fn check_estimators(pool: &[Candidate], sigmas: f64) -> Result<(), TestCaseError> {
    const PERMUTATIONS: usize = 4000;
    let n = pool.len();
    let b = Binomials::new(n);
    let classes = pool
        .iter()
        .filter_map(|c| c.class)
        .max()
        .map_or(0, |m| m + 1);
    let mut counts = vec![0; classes];
    for c in pool.iter().filter_map(|c| c.class) {
        counts[c] += 1;
    }
    let abstained = pool.iter().filter(|c| c.class.is_none()).count();
    let correct = (classes > 0 && counts[0] > 0).then_some(0);
    let right = pool.iter().filter(|c| c.class == Some(0)).count();
    let majority = estimator::majority_curve(&b, &counts, correct, abstained);
    let abstain = estimator::abstain_curve(&b, n, abstained);
    let pass = estimator::pass_at_k_curve(&b, n, right);
    let scored: Vec<Scored> = pool
        .iter()
        .map(|c| Scored {
            score: c.score,
            correct: c.class == Some(0),
            abstained: c.class.is_none(),
        })
        .collect();
    let (best, best_abstain) = estimator::best_of_n_curve(&b, &scored);
    let weighted_pool: Vec<Weighted> = pool
        .iter()
        .map(|c| Weighted {
            class: c.class,
            score: c.score,
        })
        .collect();
    let mut rng = crucible::seed::rng(7, &[]);
    let weighted = estimator::weighted_majority_curve(
        &b,
        &weighted_pool,
        correct,
        classes,
        PERMUTATIONS,
        &mut rng,
    );
    // Without a correct answer in the pool there is nothing to estimate;
    // votes scored 0 or one positive value have an exact form.
    let votes: Vec<f64> = pool
        .iter()
        .filter(|c| c.class.is_some())
        .map(|c| c.score)
        .collect();
    let high = votes.iter().copied().fold(0.0, f64::max);
    let two_level = votes.iter().all(|&s| s == 0.0 || s == high);
    prop_assert_eq!(
        weighted.exact,
        correct.is_none() || n <= estimator::WEIGHTED_EXACT_MAX || two_level
    );
    for k in 1..=n {
        let top = |chosen: &[Candidate]| {
            chosen
                .iter()
                .map(|c| c.score)
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let expected = [
            (
                "majority",
                majority[k],
                brute(pool, k, |s| class_zero_wins(s, |_| 1.0)),
            ),
            (
                "abstain",
                abstain[k],
                brute(pool, k, |s| f64::from(s.iter().all(|c| c.class.is_none()))),
            ),
            (
                "pass@k",
                pass[k],
                brute(pool, k, |s| f64::from(s.iter().any(|c| c.class == Some(0)))),
            ),
            (
                "best_of_n",
                best[k],
                brute(pool, k, |s| {
                    let tied: Vec<_> = s.iter().filter(|c| c.score == top(s)).collect();
                    tied.iter().filter(|c| c.class == Some(0)).count() as f64 / tied.len() as f64
                }),
            ),
            (
                "best_of_n abstain",
                best_abstain[k],
                brute(pool, k, |s| {
                    let tied: Vec<_> = s.iter().filter(|c| c.score == top(s)).collect();
                    tied.iter().filter(|c| c.class.is_none()).count() as f64 / tied.len() as f64
                }),
            ),
        ];
        for (rule, got, want) in expected {
            prop_assert!(
                (got - want).abs() < 1e-9,
                "{} at k={}: estimator {} brute force {}",
                rule,
                k,
                got,
                want
            );
        }
        let want = brute(pool, k, |s| class_zero_wins(s, |c| c.score));
        // A credit lies in [0, 1], so one permutation's variance is at most
        // want·(1 − want); rare events get slack of a few whole permutations,
        // where the normal approximation fails.
        let runs = PERMUTATIONS as f64;
        let allowed = 1e-9 + sigmas * ((want * (1.0 - want) / runs).sqrt() + 2.0 / runs);
        if !weighted.exact {
            prop_assert!(weighted.variance[k] <= want.max(weighted.accuracy[k]) / runs + 1e-12);
        }
        prop_assert!(
            (weighted.accuracy[k] - want).abs() <= allowed,
            "weighted majority at k={}: estimate {} brute force {} (allowed {})",
            k,
            weighted.accuracy[k],
            want,
            allowed
        );
    }
    Ok(())
}

/// Small pools: classes 0–3 or abstention, scores in halves (ties happen).
fn candidates(
    sizes: std::ops::Range<usize>,
    min_score: i8,
) -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (prop::option::weighted(0.85, 0usize..4), min_score..5i8),
        sizes,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(class, s)| Candidate {
                class,
                score: f64::from(s) / 2.0,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn exact_estimators_equal_brute_force(pool in candidates(1..13, 0)) {
        check_estimators(&pool, 0.0)?;
    }

    #[test]
    fn exact_estimators_equal_brute_force_with_negative_scores(pool in candidates(1..13, -4)) {
        check_estimators(&pool, 0.0)?;
    }
}

/// Pools scored by a pass/fail verifier: every score 0 or `high`, classes
/// 0–4 or abstention, up to 15 samples (beyond enumeration's 12).
fn two_level_candidates(high: f64) -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (prop::option::weighted(0.85, 0usize..5), prop::bool::ANY),
        1..16,
    )
    .prop_map(move |v| {
        v.into_iter()
            .map(|(class, accepted)| Candidate {
                class,
                score: if accepted { high } else { 0.0 },
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Weighted majority under 0/1 (or 0/h) scores is summed exactly, at
    /// every size: it must equal brute force with no Monte Carlo slack.
    #[test]
    fn two_level_weighted_majority_equals_brute_force(
        pool in two_level_candidates(1.0),
        other in two_level_candidates(2.5),
    ) {
        check_estimators(&pool, 0.0)?;
        check_estimators(&other, 0.0)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Beyond the exact size, weighted majority is a seeded Monte Carlo
    /// estimate; it must land within its own stated standard error (5σ).
    #[test]
    fn weighted_majority_estimate_is_within_its_standard_error(pool in candidates(13..16, -2)) {
        check_estimators(&pool, 5.0)?;
    }
}

/// A running `crucible sim-server`, killed on drop.
struct SimServer {
    child: std::process::Child,
    url: String,
}

impl SimServer {
    fn start(scenario: &Path, args: &[&str]) -> SimServer {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_crucible"))
            .arg("sim-server")
            .arg(scenario)
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("address line")
            .to_owned();
        SimServer { child, url }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small simulated scenario: 30 tasks, pools of 8.
fn small_sim_scenario() -> String {
    std::fs::read_to_string(root().join("scenarios/quickstart.yaml"))
        .unwrap()
        .replace("count: 200", "count: 30")
        .replace("n: [1, 2, 4, 8, 16, 32, 64]", "n: [1, 2, 4, 8]")
}

/// The small simulated scenario run in-process into `local.db` (what HTTP
/// runs must reproduce), and a sim-server for it started with `server_args`.
fn served_with_reference(s: &Scratch, server_args: &[&str]) -> (String, PathBuf, SimServer) {
    let local = s.path("local.db");
    Crucible::new(&["run"])
        .arg(s.write("server.yaml", &small_sim_scenario()))
        .db(&local)
        .ok();
    let (sim, server) = served(s, server_args);
    (sim, local, server)
}

/// The small simulated scenario, and a sim-server for it started with `server_args`.
fn served(s: &Scratch, server_args: &[&str]) -> (String, SimServer) {
    let sim = small_sim_scenario();
    let server = SimServer::start(&s.write("server.yaml", &sim), server_args);
    (sim, server)
}

/// The same scenario with its model served over HTTP at `url`.
fn http_client_scenario(sim: &str, url: &str, model_lines: &str) -> String {
    let start = sim.find("    provider: simulated").unwrap();
    let end = sim.find("\nagents:").unwrap();
    format!(
        "{}    provider: openai\n    base_url: {url}\n    model: sim\n    seed: 0\n{model_lines}\n{}",
        &sim[..start],
        &sim[end..]
    )
}

/// What must not change between serving a model in-process and over HTTP.
fn sample_content(db: &Path) -> Vec<String> {
    table_rows(
        db,
        "SELECT s.task_index, s.sample_index, s.text, s.normalized, s.correct, s.abstained,
            (SELECT group_concat(score) FROM scores WHERE sample_id = s.id)
         FROM samples s ORDER BY s.task_index, s.sample_index",
    )
}

#[test]
fn http_faults_lose_and_duplicate_no_sample() {
    let s = Scratch::new();
    let sim = small_sim_scenario();
    let server_file = s.write("server.yaml", &sim);
    let local_db = s.path("local.db");
    Crucible::new(&["run"]).arg(&server_file).db(&local_db).ok();
    let expected = sample_content(&local_db);
    assert_eq!(expected.len(), 30 * 8);
    let faults: &[(&str, &[&str], &str)] = &[
        (
            "429",
            &["--fail-429", "0.3", "--retry-after", "0.01"],
            "status = 429",
        ),
        ("500", &["--fail-500", "0.3"], "status = 500"),
        ("503", &["--fail-503", "0.3"], "status = 503"),
        (
            "reset",
            &["--reset", "0.3"],
            "status IS NULL AND error IS NOT NULL",
        ),
        (
            "stall",
            &["--stall", "0.3", "--stall-ms", "3000"],
            "status IS NULL AND error LIKE '%timed out%'",
        ),
        (
            "malformed",
            &["--malformed", "0.3"],
            "error LIKE 'unreadable response%'",
        ),
        (
            "truncated",
            &["--truncated", "0.3"],
            "error LIKE 'unreadable response%'",
        ),
    ];
    for (name, args, failed_attempt) in faults {
        let server = SimServer::start(&server_file, args);
        let client = http_client_scenario(
            &sim,
            &server.url,
            "    n_per_request: 2\n    max_retries: 30\n    timeout: 0.5",
        );
        let db = s.path(&format!("{name}.db"));
        let v = Crucible::new(&["run"])
            .arg(s.write(&format!("{name}.yaml"), &client))
            .db(&db)
            .json();
        assert_eq!(v["status"], "completed", "{name}");
        assert_eq!(
            sample_content(&db),
            expected,
            "{name}: samples differ from the in-process model"
        );
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM calls"),
            30 * 4,
            "{name}"
        );
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM calls WHERE status <> 'ok'"),
            0,
            "{name}"
        );
        let failed = query::<i64>(
            &db,
            &format!("SELECT count(*) FROM attempts WHERE {failed_attempt}"),
        );
        assert!(failed >= 10, "{name}: only {failed} failed attempts traced");
        // Every call ends in exactly one successful attempt; the failures before it are all there.
        assert_eq!(
            query::<i64>(
                &db,
                "SELECT count(*) FROM attempts WHERE status = 200 AND error IS NULL"
            ),
            30 * 4,
            "{name}"
        );
        assert!(
            query::<i64>(
                &db,
                "SELECT count(*) FROM attempts a JOIN attempts b ON a.call_id = b.call_id AND b.attempt = a.attempt + 1 WHERE a.error IS NULL"
            ) == 0,
            "{name}: an attempt followed a success"
        );
    }
}

#[test]
fn a_server_capping_n_gets_split_requests() {
    let s = Scratch::new();
    let (sim, local_db, server) = served_with_reference(&s, &["--max-n", "3"]);
    let db = s.path("http.db");
    let client = http_client_scenario(&sim, &server.url, "    max_retries: 2");
    Crucible::new(&["run"])
        .arg(s.write("client.yaml", &client))
        .db(&db)
        .ok();
    assert_eq!(sample_content(&db), sample_content(&local_db));
    // The first request asks for 8 and is refused; every later one asks for at most 3.
    assert!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM attempts WHERE status = 400 AND n = 8"
        ) >= 1
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM attempts WHERE status = 200 AND n > 3"
        ),
        0
    );
    assert_eq!(
        query::<i64>(&db, "SELECT sum(n) FROM attempts WHERE status = 200"),
        30 * 8
    );
    // Each call records the bodies of the requests it was split into.
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM calls WHERE request LIKE '[%'"),
        30
    );
}

#[test]
fn budgets_stop_below_their_caps_and_resume_with_higher_ones() {
    let s = Scratch::new();
    let (sim, server) = served(&s, &[]);
    let client = http_client_scenario(
        &sim,
        &server.url,
        "    n_per_request: 4\n    max_tokens: 60\n    price: {input: 3, output: 15}",
    );
    let file = s.write("client.yaml", &client);
    let whole = s.path("whole.db");
    let expected = Crucible::new(&["run"])
        .arg(&file)
        .db(&whole)
        .arg("--json")
        .ok();
    let total: f64 = query(&whole, "SELECT sum(cost_usd) FROM calls");
    let v: serde_json::Value = serde_json::from_str(&expected).unwrap();
    assert!((v["spent"]["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9);
    assert_eq!(v["spent"]["requests"], 60);

    // A third of the money: the run stops before spending more.
    let db = s.path("b.db");
    let cap = total / 3.0;
    let out = Crucible::new(&["run"])
        .arg(&file)
        .db(&db)
        .arg("--json")
        .arg("--max-cost-usd")
        .arg(cap.to_string())
        .output();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "budget_exhausted");
    assert!(v["error"].as_str().unwrap().contains("max_cost_usd"), "{v}");
    let spent: f64 = query(&db, "SELECT sum(cost_usd) FROM calls");
    assert!(spent <= cap && spent > cap / 2.0, "spent {spent} of {cap}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("crucible resume 1"));

    // Resumed with a token cap that the spending so far nearly fills.
    let tokens = query::<i64>(&db, "SELECT sum(input_tokens + output_tokens) FROM calls");
    let token_cap = tokens + 2000;
    let out = Crucible::new(&["resume", "1", "--json", "--max-tokens"])
        .arg(token_cap.to_string())
        .db(&db)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let after = query::<i64>(&db, "SELECT sum(input_tokens + output_tokens) FROM calls");
    assert!(
        after > tokens && after <= token_cap,
        "{tokens} -> {after} of {token_cap}"
    );

    // Raising the budget in the file is the one change a resume accepts.
    let raised = s.write(
        "raised.yaml",
        &client.replace("strategies:", "budget:\n  max_cost_usd: 1000\nstrategies:"),
    );
    let v = Crucible::new(&["run"])
        .arg(&raised)
        .db(&db)
        .arg("--resume")
        .arg("1")
        .json();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["results"], results_without_ids(&expected));
    assert_eq!(sample_content(&db), sample_content(&whole));
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM calls"), 60);
    let spent: f64 = query(&db, "SELECT sum(cost_usd) FROM calls");
    assert!((v["spent"]["cost_usd"].as_f64().unwrap() - spent).abs() < 1e-9);
    assert!(
        (spent - total).abs() < 1e-9,
        "resumed run cost {spent}, whole run {total}"
    );
    // The run now carries the raised budget, and each resume is on record.
    let text: String = query(&db, "SELECT scenario_text FROM runs WHERE id = 1");
    assert!(text.contains("max_cost_usd: 1000"));
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM events WHERE kind = 'run_resumed'"
        ),
        2
    );
}

/// Rate limits are about time, so this test measures it, but only as a lower
/// bound: a slow machine makes the run longer, never shorter.
#[test]
fn rpm_and_tpm_limits_hold_the_request_rate_down() {
    let s = Scratch::new();
    let (sim, local, server) = served_with_reference(&s, &[]);
    // 60 requests at 1200 a minute: 20 at once, then one every 50 ms.
    let db = s.path("rpm.db");
    let client = http_client_scenario(&sim, &server.url, "    n_per_request: 4\n    rpm: 1200");
    let started = std::time::Instant::now();
    Crucible::new(&["run"])
        .arg(s.write("rpm.yaml", &client))
        .db(&db)
        .ok();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        elapsed >= 40.0 / 20.0 * 0.95,
        "60 requests in {elapsed:.2} s"
    );
    assert_eq!(sample_content(&db), sample_content(&local));
    // The waits are in the trace, apart from latency.
    let waited: f64 = query(&db, "SELECT sum(wait_ms) FROM attempts");
    assert!(waited > 1000.0, "waited {waited} ms in all");

    // At 120000 tokens a minute (2000 a second, 2000 at once), the run takes
    // at least as long as its tokens beyond the first second's worth allow.
    let db = s.path("tpm.db");
    let client = http_client_scenario(
        &sim,
        &server.url,
        "    n_per_request: 4\n    max_tokens: 60\n    tpm: 120000",
    );
    let started = std::time::Instant::now();
    Crucible::new(&["run"])
        .arg(s.write("tpm.yaml", &client))
        .db(&db)
        .ok();
    let elapsed = started.elapsed().as_secs_f64();
    let tokens = query::<i64>(&db, "SELECT sum(input_tokens + output_tokens) FROM calls") as f64;
    let largest = query::<i64>(&db, "SELECT max(input_tokens + output_tokens) FROM calls") as f64;
    let floor = (tokens - 2000.0 - largest) / 2000.0;
    assert!(floor > 1.0, "the limit must bind: {tokens} tokens");
    assert!(elapsed >= floor, "{tokens} tokens in {elapsed:.2} s");
    assert_eq!(sample_content(&db), sample_content(&local));
}

#[test]
fn resume_over_http_after_kill_9_at_a_random_point() {
    let s = Scratch::new();
    let (sim, local, server) = served_with_reference(&s, &["--latency-ms", "100"]);
    // 240 requests, 4 at a time, 100 ms each: about 6 s.
    let client = http_client_scenario(
        &sim,
        &server.url,
        "    n_per_request: 1\n    concurrency: 4",
    );
    let file = s.write("client.yaml", &client);
    let db = s.path("killed.db");
    let mut child = spawn_run_until_samples(&file, &db, std::process::Stdio::null());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = std::time::Duration::from_millis(u64::from(nanos % 3000));
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    let before = query::<i64>(&db, "SELECT count(*) FROM samples");
    assert!(
        before > 0 && before < 240,
        "killed after {delay:?}, too late: {before}"
    );

    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&db).ok();
    let v: serde_json::Value = serde_json::from_str(&resumed).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(sample_content(&db), sample_content(&local));
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM calls"), 240);
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(DISTINCT task_index || '/' || sample_index) FROM samples"
        ),
        240
    );
}

#[test]
fn api_keys_never_reach_the_database_or_any_output() {
    let key = "sk-crucible-test-7f3a9c2e5b1d";
    let s = Scratch::new();
    let sim = small_sim_scenario();
    let server_file = s.write("server.yaml", &sim);
    let server = SimServer::start(
        &server_file,
        &[
            "--api-key",
            key,
            "--fail-429",
            "0.2",
            "--retry-after",
            "0.01",
        ],
    );
    let client = http_client_scenario(
        &sim,
        &server.url,
        "    api_key_env: CRUCIBLE_TEST_KEY\n    max_retries: 20",
    );
    let file = s.write("client.yaml", &client);
    let db = s.path("k.db");
    let mut outputs = Vec::new();
    let mut run = Crucible::new(&["run"]).arg(&file).db(&db).arg("--json");
    run.cmd.env("CRUCIBLE_TEST_KEY", key);
    let out = run.output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    outputs.push(out.stdout);
    outputs.push(out.stderr);
    for args in [
        &["export", "1", "--format", "jsonl"][..],
        &["export", "1", "--format", "csv"],
        &["show", "1"],
        &["runs"],
    ] {
        let o = Crucible::new(args).db(&db).output();
        outputs.push(o.stdout);
        outputs.push(o.stderr);
    }
    // A wrong key fails the run with a message naming the variable, not the key.
    let mut bad = Crucible::new(&["run"]).arg(&file).db(&db);
    bad.cmd.env("CRUCIBLE_TEST_KEY", "sk-wrong-key-0000");
    let o = bad.output();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("401 Unauthorized") && stderr.contains("CRUCIBLE_TEST_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-wrong-key-0000"), "{stderr}");
    outputs.push(o.stdout);
    outputs.push(o.stderr);
    // A missing key is refused before anything is written.
    let fresh = s.path("fresh.db");
    let o = Crucible::new(&["run"]).arg(&file).db(&fresh).output();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("CRUCIBLE_TEST_KEY is not set"));
    assert!(!fresh.exists());
    let needle = key.as_bytes();
    for (i, o) in outputs.iter().enumerate() {
        assert!(
            !o.windows(needle.len()).any(|w| w == needle),
            "output {i} contains the key"
        );
    }
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("k.db") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains the key",
                p.display()
            );
        }
    }
    let runs: i64 = query::<i64>(
        &db,
        "SELECT count(*) FROM runs WHERE status = 'failed' AND error LIKE '%CRUCIBLE_TEST_KEY%'",
    );
    assert_eq!(runs, 1);
}

/// The base URL of a real llama.cpp server: `$CRUCIBLE_LLAMA_URL`, or one that
/// `scripts/llama-server.sh` installs (cached) and starts.
fn llama_url() -> String {
    if let Ok(url) = std::env::var("CRUCIBLE_LLAMA_URL") {
        return url;
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/llama-server.sh"))
        .arg("url")
        .output()
        .expect("run scripts/llama-server.sh");
    assert!(
        out.status.success(),
        "llama-server setup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn llama_cpp_end_to_end_with_split_requests() {
    let url = llama_url();
    let s = Scratch::new();
    s.write(
        "data/arithmetic.jsonl",
        &std::fs::read_to_string(root().join("scenarios/data/arithmetic.jsonl")).unwrap(),
    );
    let text = std::fs::read_to_string(root().join("scenarios/llama-arithmetic.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:8080/v1", &format!("{url}/v1"));
    let db = s.path("llama.db");
    let v = Crucible::new(&["run"])
        .arg(s.write("llama.yaml", &text))
        .db(&db)
        .args_concurrency(4)
        .json();
    assert_eq!(v["status"], "completed");
    let count = |sql: &str| query::<i64>(&db, sql);
    let rounds = count("SELECT count(*) FROM samples WHERE strategy = 'self_correction'");
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE round IS NULL"),
        20 * 8
    );
    assert_eq!(v["samples"], 20 * 8 + rounds);
    // Real responses: llama.cpp's own fields (`timings`) are kept in the stored body.
    assert_eq!(
        count("SELECT count(*) FROM call_view WHERE response LIKE '%\"timings\"%'"),
        count("SELECT count(*) FROM calls")
    );
    assert!(count("SELECT count(*) FROM samples WHERE length(text) > 0") >= 150);
    // Real token usage, from the server's `usage`.
    assert!(count("SELECT min(input_tokens) FROM calls") > 10);
    assert!(count("SELECT sum(output_tokens) FROM calls") > 20 * 8);
    // The server caps n at its 4 slots: a pool of 8 was refused once, then split.
    assert!(count("SELECT count(*) FROM attempts WHERE status = 400 AND n = 8") >= 1);
    assert_eq!(
        count("SELECT count(*) FROM attempts WHERE status = 200 AND n > 4"),
        0
    );
    assert_eq!(
        count(
            "SELECT sum(a.n) FROM attempts a JOIN calls c ON c.id = a.call_id
             WHERE a.status = 200 AND c.role = 'generator'"
        ),
        20 * 8 + rounds
    );
    // Self-correction: one call per round, each sending the whole conversation
    // (system, question, then every rejected reply and its feedback) to the
    // real server; a task stops at its first accepted answer.
    assert!(rounds >= 20, "every task has a first round");
    assert_eq!(
        count(
            "SELECT count(*) FROM samples s JOIN calls c ON c.id = s.call_id
             WHERE s.strategy = 'self_correction'
               AND json_array_length(c.request, '$.messages') != 2 + 2 * s.round"
        ),
        0
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM samples s JOIN calls c ON c.id = s.call_id
             JOIN samples prev ON prev.run_id = s.run_id AND prev.task_index = s.task_index
               AND prev.strategy = s.strategy AND prev.round = s.round - 1
             WHERE s.round > 0
               AND json_extract(c.request, '$.messages[' || (2 * s.round) || '].content') != prev.text"
        ),
        0
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view sv JOIN samples s ON s.run_id = sv.run_id
               AND s.task_index = sv.task_index AND s.sample_index = sv.sample_index
             WHERE s.strategy = 'self_correction' AND sv.score = 1
               AND EXISTS (SELECT 1 FROM samples nxt WHERE nxt.run_id = s.run_id
                           AND nxt.task_index = s.task_index AND nxt.strategy = s.strategy
                           AND nxt.round = s.round + 1)"
        ),
        0
    );
    // The same model judges every pool sample once, with log-probabilities:
    // a score is P(yes) at the verdict's token, or NULL with the reply quoted.
    let pool = 20 * 8;
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE role = 'verifier' AND agent = 'judge'"),
        pool
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM call_view WHERE role = 'verifier' AND status = 'ok'
               AND response LIKE '%\"top_logprobs\"%' AND reply IS NOT NULL"
        ),
        pool
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view WHERE verifier = 'judge'
               AND ((score BETWEEN 0 AND 1 AND detail IS NOT NULL)
                    OR (score IS NULL AND detail LIKE '%the judge wrote:%'))"
        ),
        pool
    );
    // How many verdicts a 135M judge writes readably is the model's business
    // (about half, measured); that the readable ones are weighted is ours.
    assert!(
        count("SELECT count(*) FROM scores WHERE verifier = 'judge' AND score > 0 AND score < 1")
            > 0,
        "no verdict was weighted by log-probabilities"
    );
    // Only the self-correction's own verifier scores its rounds.
    assert_eq!(
        count(
            "SELECT count(*) FROM score_view sv JOIN samples s ON s.run_id = sv.run_id
               AND s.task_index = sv.task_index AND s.sample_index = sv.sample_index
             WHERE s.strategy = 'self_correction' AND sv.verifier <> 'exact'"
        ),
        0
    );
    let row = |strategy: &str, n: u64| result(&v, strategy, n);
    let acc = |strategy: &str, n: u64| num(row(strategy, n), "accuracy");
    // With an exact check, best-of-8 is at least as good as one sample, and
    // so is weighted majority (it votes only with accepted samples).
    assert!(acc("best_of_n", 8) >= acc("best_of_n", 1));
    assert!(acc("weighted_majority", 8) >= acc("weighted_majority", 1) - 1e-9);
    assert!((acc("weighted_majority", 8) - acc("best_of_n", 8)).abs() < 1e-9);
    // More rounds never lose an accepted answer.
    assert!(acc("self_correction", 4) >= acc("self_correction", 1));
    assert!(row("self_correction", 4)["mean_samples"].as_f64().unwrap() <= 4.0);
    assert!(
        row("adaptive_consistency", 8)["mean_samples"]
            .as_f64()
            .unwrap()
            <= 8.0
    );
}

fn results_without_ids(json: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["results"].clone()
}

/// `crucible replay 1 --strict` on `db`, which must reproduce the results of
/// the recorded run's `run --json` output; the replay's own output.
fn replay_strictly(db: &Path, recorded: &str) -> serde_json::Value {
    let replayed = Crucible::new(&["replay", "1", "--strict", "--json"])
        .db(db)
        .ok();
    assert_eq!(
        results_without_ids(&replayed),
        results_without_ids(recorded)
    );
    serde_json::from_str(&replayed).unwrap()
}

#[test]
fn strict_replay_needs_no_model_and_reproduces_the_summary() {
    let s = Scratch::new();
    let (sim, server) = served(&s, &["--fail-503", "0.2"]);
    let client = http_client_scenario(
        &sim,
        &server.url,
        "    n_per_request: 4\n    max_retries: 20",
    );
    let db = s.path("r.db");
    let recorded = Crucible::new(&["run"])
        .arg(s.write("client.yaml", &client))
        .db(&db)
        .arg("--json")
        .ok();
    drop(server); // nothing answers at that address any more
    let v = replay_strictly(&db, &recorded);
    assert_eq!(v["run_id"], 2);
    assert_eq!(v["samples"], 30 * 8);
    // The replay made no HTTP request, and its samples are the recorded ones.
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM attempt_view WHERE run_id = 2"),
        0
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples a JOIN samples b ON a.task_index = b.task_index
               AND a.sample_index = b.sample_index AND a.text = b.text
             WHERE a.run_id = 1 AND b.run_id = 2"
        ),
        30 * 8
    );
    // The table form prints the same rows as the recorded run's.
    let shown = Crucible::new(&["show", "1"]).db(&db).ok();
    let table = Crucible::new(&["replay", "1", "--strict"]).db(&db).ok();
    assert_eq!(
        shown.lines().skip(1).collect::<Vec<_>>(),
        table.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn strict_replay_names_a_missing_call_instead_of_calling_the_model() {
    let s = Scratch::new();
    let (sim, server) = served(&s, &[]);
    let client = http_client_scenario(&sim, &server.url, "    n_per_request: 4");
    let db = s.path("m.db");
    Crucible::new(&["run"])
        .arg(s.write("client.yaml", &client))
        .db(&db)
        .ok();
    // Forget one recorded response.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE calls SET cache_key = NULL WHERE id = (SELECT max(id) FROM calls)",
            [],
        )
        .unwrap();
    let out = Crucible::new(&["replay", "1", "--strict"]).db(&db).output();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strict replay: no recorded response for agent \"solver\", task \"task-"),
        "{stderr}"
    );
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM attempt_view WHERE run_id = 2"),
        0,
        "no live call"
    );
    // Without --strict the missing call goes to the model, which still answers.
    Crucible::new(&["replay", "1"]).db(&db).ok();
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM attempt_view WHERE run_id = 3"),
        1
    );
}

#[test]
fn run_with_cache_reuses_recorded_responses() {
    let s = Scratch::new();
    let (sim, server) = served(&s, &[]);
    let client = s.write(
        "client.yaml",
        &http_client_scenario(
            &sim,
            &server.url,
            "    n_per_request: 4\n    max_retries: 0\n    timeout: 2",
        ),
    );
    let db = s.path("c.db");
    let first = Crucible::new(&["run"])
        .arg(&client)
        .db(&db)
        .arg("--cache")
        .arg("--json")
        .ok();
    drop(server);
    let second = Crucible::new(&["run"])
        .arg(&client)
        .db(&db)
        .arg("--cache")
        .arg("--json")
        .ok();
    assert_eq!(results_without_ids(&first), results_without_ids(&second));
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM attempt_view WHERE run_id = 2"),
        0
    );
}

#[cfg(unix)]
#[test]
fn resume_after_kill_9_matches_an_uninterrupted_run() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(root().join("scenarios/quickstart.yaml"))
        .unwrap()
        .replace("count: 200", "count: 3000")
        .replace(
            "      spread: uniform",
            "      spread: uniform\n    n_per_request: 8",
        );
    let file = s.write("big.yaml", &text);
    let whole = s.path("whole.db");
    let expected = Crucible::new(&["run"])
        .arg(&file)
        .db(&whole)
        .arg("--json")
        .ok();

    let db = s.path("killed.db");
    let mut child = spawn_run_until_samples(&file, &db, std::process::Stdio::null());
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = query::<i64>(&db, "SELECT count(*) FROM samples");
    assert!(
        before > 0 && before < 3000 * 64,
        "killed too late or too early: {before}"
    );
    let status: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "running", "a killed run is left as running");

    // A changed scenario is refused.
    let changed = s.write("changed.yaml", &text.replace("seed: 7", "seed: 8"));
    let out = Crucible::new(&["run"])
        .arg(&changed)
        .db(&db)
        .arg("--resume")
        .arg("1")
        .output();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has changed since run 1"));

    let v = Crucible::new(&["run"])
        .arg(&file)
        .db(&db)
        .arg("--resume")
        .arg("1")
        .json();
    assert_eq!(v["results"], results_without_ids(&expected));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["run_id"], 1);
    // Nothing lost, nothing duplicated, nothing drawn twice.
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM samples"), 3000 * 64);
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(DISTINCT task_index || '/' || sample_index) FROM samples"
        ),
        3000 * 64
    );
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM calls"), 3000 * 8);
    assert_eq!(sample_content(&db), sample_content(&whole));
    // A completed run has nothing to resume.
    let again = Crucible::new(&["resume", "1"]).db(&db).output();
    assert_eq!(again.status.code(), Some(1));
}

/// A sim-server whose model answers any judge prompt "Verdict: yes" (p 0.5),
/// "Verdict: no" (0.3) or "Verdict: perhaps" (0.2, which no judge can read).
const JUDGE_SERVER: &str = r#"name: judge-server
models:
  judge:
    provider: simulated
    distribution: {answers: {"yes": 0.5, "no": 0.3, "perhaps": 0.2}}
    format: "Verdict: {answer}"
agents:
  judge: {model: judge, prompt: "{{ q }}"}
answer:
  extract: {regex: 'Verdict: (\w+)'}
  normalize: [trim, casefold]
dataset:
  items: [{q: x}]
strategies: [{kind: self_consistency, agent: judge, n: 1}]
"#;

/// 40 tasks, pools of 4, judged by two `llm` verifiers on the judge server at
/// `url`: one whose model returns log-probabilities, one plain.
fn judged_scenario(url: &str) -> String {
    format!(
        r#"name: judged
seed: 7
models:
  sim: {{provider: simulated, distribution: {{p_correct: 0.6, delta: 0.3}}}}
  judge_lp: {{provider: openai, base_url: "{url}", model: judge, seed: 0, logprobs: 3}}
  judge_plain: {{provider: openai, base_url: "{url}", model: judge, seed: 0}}
agents:
  solver: {{model: sim, prompt: "Q: {{{{ question }}}}"}}
dataset:
  synthetic: {{count: 40}}
verifiers:
  weighed: {{kind: llm, model: judge_lp}}
  plain:
    kind: llm
    model: judge_plain
    system: You are a strict grader.
    prompt: "Q: {{{{ question }}}} A: {{{{ answer }}}} Expected: {{{{ expected }}}}\n{{{{ text }}}}"
strategies:
  - {{kind: best_of_n, agent: solver, n: [1, 4], verifier: weighed}}
  - {{kind: weighted_majority, agent: solver, n: [4], verifier: plain}}
"#
    )
}

/// Every sample's scores, as (task, sample, verifier, score, accepted, detail).
fn score_content(db: &Path) -> Vec<String> {
    table_rows(
        db,
        "SELECT s.task_index, s.sample_index, sc.verifier, sc.score, sc.accepted, sc.detail
         FROM scores sc JOIN samples s ON s.id = sc.sample_id
         ORDER BY s.task_index, s.sample_index, sc.verifier",
    )
}

#[test]
fn llm_judges_are_traced_weighted_by_logprobs_and_never_read_garbage_as_zero() {
    let s = Scratch::new();
    let server = SimServer::start(&s.write("judge-server.yaml", JUDGE_SERVER), &[]);
    let file = s.write("judged.yaml", &judged_scenario(&server.url));
    let db = s.path("whole.db");
    let recorded = Crucible::new(&["run"])
        .arg(&file)
        .db(&db)
        .arg("--json")
        .ok();

    // One call per sample and judge, traced as the verifier's, about that sample.
    assert_eq!(
        table_rows(
            &db,
            "SELECT role, agent, subject, n, count(*) FROM calls GROUP BY role, agent ORDER BY role, agent"
        ),
        vec![
            "generator|solver||4|40",
            "verifier|plain|solver|1|160",
            "verifier|weighed|solver|1|160"
        ]
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls c JOIN samples s ON s.task_index = c.task_index
               AND s.sample_index = c.first_sample AND s.agent = c.subject
             JOIN replies r ON r.call_id = c.id
             WHERE c.role = 'verifier'"
        ),
        320
    );
    // The plain judge's prompt is its template over the candidate.
    let (prompt, system): (String, String) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT p.text, sy.text FROM calls c JOIN blobs p ON p.hash = c.prompt_hash
               JOIN blobs sy ON sy.hash = c.system_hash
             WHERE c.agent = 'plain' AND c.task_index = 0 AND c.first_sample = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (answer, expected, sample_text): (Option<String>, String, String) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT s.normalized, t.expected, s.text FROM samples s
               JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index
             WHERE s.task_index = 0 AND s.sample_index = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(
        prompt,
        format!(
            "Q: Synthetic question #1 A: {} Expected: {expected}\n{sample_text}",
            answer.unwrap_or_else(|| "none".into())
        )
    );
    assert_eq!(system, "You are a strict grader.");

    // Each verdict as the judge wrote it (after some reasoning): "perhaps" is unscored with the
    // reason, never 0; yes/no are 1/0 from the plain judge, and P(yes) /
    // (P(yes) + P(no)) = 0.625 from the judge with log-probabilities.
    let verdicts = table_rows(
        &db,
        "SELECT sc.verifier, substr(r.text, instr(r.text, 'Verdict:')), sc.score, sc.accepted,
                sc.detail = r.text,
                sc.detail LIKE 'no yes/no verdict in the reply; the judge wrote: %', count(*)
         FROM calls c JOIN replies r ON r.call_id = c.id
         JOIN samples s ON s.task_index = c.task_index AND s.sample_index = c.first_sample
         JOIN scores sc ON sc.sample_id = s.id AND sc.verifier = c.agent
         GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2",
    );
    let counts: Vec<(String, i64)> = verdicts
        .iter()
        .map(|row| {
            let (key, count) = row.rsplit_once('|').unwrap();
            (key.to_owned(), count.parse().unwrap())
        })
        .collect();
    let keys: Vec<&str> = counts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "plain|Verdict: no|0.0|0|1|0",
            "plain|Verdict: perhaps|||0|1",
            "plain|Verdict: yes|1.0|1|1|0",
            "weighed|Verdict: no|0.625|0|1|0",
            "weighed|Verdict: perhaps|||0|1",
            "weighed|Verdict: yes|0.625|1|1|0",
        ],
        "{verdicts:?}"
    );
    // The verdicts' shares are the judge's distribution (5 standard errors).
    for (verifier, rows) in [("plain", &counts[..3]), ("weighed", &counts[3..])] {
        for ((_, count), p) in rows.iter().zip([0.3, 0.2, 0.5]) {
            let share = *count as f64 / 160.0;
            let se = (p * (1.0 - p) / 160.0_f64).sqrt();
            assert!(
                (share - p).abs() < 5.0 * se,
                "{verifier}: share {share} for p {p}"
            );
        }
    }
    // Tokens of the judges' calls count in the run's spending.
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(v["spent"]["requests"], 40 + 320);
    assert_eq!(
        v["verifier_tokens"].as_i64().unwrap(),
        query::<i64>(
            &db,
            "SELECT sum(input_tokens + output_tokens) FROM calls WHERE role = 'verifier'"
        )
    );
    // Equal compute: a strategy's tokens are its samples' and its verifier's
    // calls on them, in the run's summary and in the offline curves alike.
    let per_sample = |sql: &str| query::<f64>(&db, sql);
    let generator =
        per_sample("SELECT avg(input_tokens + output_tokens) FROM samples WHERE round IS NULL");
    let analysis: serde_json::Value = serde_json::from_str(
        &Crucible::new(&["analyze", "1", "--json", "--bootstrap", "10"])
            .db(&db)
            .ok(),
    )
    .unwrap();
    for (strategy, verifier, rule, n) in [
        ("best_of_n", "weighed", "best_of_n", 4),
        ("best_of_n", "weighed", "best_of_n", 1),
        ("weighted_majority", "plain", "weighted_majority", 4),
    ] {
        let judge = per_sample(&format!(
            "SELECT avg(input_tokens + output_tokens) FROM calls WHERE agent = '{verifier}'"
        ));
        assert!(judge > 0.0);
        let row = result(&v, strategy, n);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.max(1.0);
        assert!(
            close(num(row, "mean_verifier_tokens"), judge * n as f64),
            "{strategy}: {row}"
        );
        assert!(
            close(num(row, "mean_tokens"), (generator + judge) * n as f64),
            "{strategy}: {row}"
        );
        let curve = analysis["curves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule"] == rule && c["verifier"] == verifier && c["n"] == n)
            .unwrap();
        assert!(
            close(num(curve, "mean_verifier_tokens"), judge * n as f64),
            "{curve}"
        );
        assert!(
            close(num(curve, "mean_tokens"), num(row, "mean_tokens")),
            "{curve}"
        );
    }
    let majority = analysis["curves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "majority" && c["n"] == 4)
        .unwrap();
    assert_eq!(num(majority, "mean_verifier_tokens"), 0.0);

    // Stopped by the budget in the middle of judging, then resumed: the same
    // scores, and no call made twice.
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "150"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(query::<i64>(&stopped, "SELECT count(*) FROM calls"), 150);
    Crucible::new(&["resume", "1", "--max-requests", "1000"])
        .db(&stopped)
        .ok();
    assert_eq!(score_content(&stopped), score_content(&db));
    assert_eq!(query::<i64>(&stopped, "SELECT count(*) FROM calls"), 360);

    // A strict replay needs no judge: every verdict is in the trace.
    drop(server);
    replay_strictly(&db, &recorded);
}

/// 20 tasks with pools of 4, scored by the sim-server's stand-in reward
/// model at `url`: as a whole, and step by step (lines) under each
/// aggregation. `None`: the same scenario without the reward model, for the
/// server itself (its prompts name the tasks).
fn rewarded_scenario(url: Option<&str>) -> String {
    let common = "name: rewarded\nseed: 3\nmodels:\n  sim: {provider: simulated, distribution: {p_correct: 0.5, delta: 0.2}}\n";
    let rest = "agents:\n  solver: {model: sim, prompt: \"Q: {{ question }}\"}\ndataset:\n  synthetic: {count: 20}\n";
    let Some(url) = url else {
        return format!(
            "{common}{rest}strategies: [{{kind: self_consistency, agent: solver, n: 4}}]\n"
        );
    };
    let mut text = format!(
        "{common}  prm: {{provider: reward_model, base_url: \"{url}/reward\", model: stand-in}}\n{rest}\
         verifiers:\n  orm: {{kind: reward_model, model: prm}}\n"
    );
    for aggregate in ["min", "last", "mean", "product"] {
        text += &format!(
            "  prm_{aggregate}: {{kind: reward_model, model: prm, process: true, steps: lines, aggregate: {aggregate}}}\n"
        );
    }
    text += "strategies:\n  - {kind: weighted_majority, agent: solver, n: [1, 4], verifier: orm}\n";
    for aggregate in ["min", "last", "mean", "product"] {
        text += &format!(
            "  - {{kind: best_of_n, name: best_{aggregate}, agent: solver, n: [1, 4], verifier: prm_{aggregate}}}\n"
        );
    }
    text
}

#[test]
fn reward_models_score_solutions_and_every_step() {
    use crucible::model::sim_server::stand_in_reward;
    let s = Scratch::new();
    let server = SimServer::start(&s.write("server.yaml", &rewarded_scenario(None)), &[]);
    let db = s.path("r.db");
    let recorded = Crucible::new(&["run"])
        .arg(s.write("rewarded.yaml", &rewarded_scenario(Some(&server.url))))
        .db(&db)
        .arg("--json")
        .ok();
    assert_eq!(
        table_rows(
            &db,
            "SELECT role, provider, count(*) FROM calls GROUP BY 1, 2 ORDER BY 1"
        ),
        vec!["generator|simulated|20", "verifier|reward_model|400"]
    );
    // A process request carries the steps it wants scored.
    let (request, text): (String, String) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT c.request, s.text FROM calls c JOIN samples s ON s.task_index = c.task_index
               AND s.sample_index = c.first_sample
             WHERE c.agent = 'prm_min' AND c.task_index = 3 AND c.first_sample = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let request: serde_json::Value = serde_json::from_str(&request).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(request["steps"], serde_json::json!(lines));
    assert_eq!(request["model"], "stand-in");
    assert_eq!(request["prompt"], "Q: Synthetic question #4");

    // Every step and every solution score, recomputed from the texts.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut st = conn
        .prepare(
            "SELECT s.id, s.text, t.expected FROM samples s
             JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index",
        )
        .unwrap();
    let samples: Vec<(i64, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(samples.len(), 80);
    let score = |id: i64, verifier: &str| -> f64 {
        conn.query_row(
            "SELECT score FROM scores WHERE sample_id = ?1 AND verifier = ?2",
            rusqlite::params![id, verifier],
            |r| r.get(0),
        )
        .unwrap()
    };
    let mut correct_and_wrong = [false; 2];
    for (id, text, expected) in &samples {
        assert_eq!(score(*id, "orm"), stand_in_reward(text, Some(expected)));
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let expected_steps: Vec<f64> = lines
            .iter()
            .map(|l| stand_in_reward(l, Some(expected)))
            .collect();
        correct_and_wrong[usize::from(expected_steps.contains(&0.9))] = true;
        for (aggregate, of) in [
            (
                "min",
                expected_steps.iter().copied().fold(f64::INFINITY, f64::min),
            ),
            ("last", *expected_steps.last().unwrap()),
            (
                "mean",
                expected_steps.iter().sum::<f64>() / expected_steps.len() as f64,
            ),
            ("product", expected_steps.iter().product()),
        ] {
            let verifier = format!("prm_{aggregate}");
            let mut st = conn
                .prepare(
                    "SELECT text, score FROM step_scores WHERE sample_id = ?1 AND verifier = ?2
                     ORDER BY step",
                )
                .unwrap();
            let steps: Vec<(String, f64)> = st
                .query_map(rusqlite::params![id, verifier], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let want: Vec<(String, f64)> = lines
                .iter()
                .map(|l| (*l).to_owned())
                .zip(expected_steps.iter().copied())
                .collect();
            assert_eq!(steps, want, "sample {id}, {verifier}");
            assert!(
                (score(*id, &verifier) - of).abs() < 1e-12,
                "sample {id}: {verifier} {} != {of}",
                score(*id, &verifier)
            );
        }
    }
    assert_eq!(correct_and_wrong, [true, true], "both kinds of samples");

    // A strict replay needs no reward model.
    drop(server);
    replay_strictly(&db, &recorded);
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM step_scores sc JOIN samples s ON s.id = sc.sample_id WHERE s.run_id = 2"
        ),
        query::<i64>(
            &db,
            "SELECT count(*) FROM step_scores sc JOIN samples s ON s.id = sc.sample_id WHERE s.run_id = 1"
        ),
    );
}

#[test]
fn an_answer_command_canonicalizes_each_answer_once() {
    let s = Scratch::new();
    s.write(
        "canon.py",
        r#"import json, sys
words = {"four": "4", "iv": "4", "five": "5"}
with open("canon.log", "a") as log:
    log.write("start\n")
    log.flush()
    for line in sys.stdin:
        a = json.loads(line)
        log.write(a + "\n")
        log.flush()
        print(json.dumps(words.get(a, a)), flush=True)
"#,
    );
    let file = s.write(
        "canon.yaml",
        r#"name: canon
seed: 2
models:
  sim: {provider: simulated, distribution: {answers: {"4": 0.6, "5": 0.3}}, format: "Answer: {answer}"}
agents:
  solver: {model: sim, prompt: "Q: {{ question }}"}
answer:
  extract: {regex: 'Answer: (\w+)'}
  normalize: [trim, casefold, {command: [python3, canon.py]}]
dataset:
  items:
    - {id: a, question: "2+2 in words", answer: four}
    - {id: b, question: "4 in Roman numerals", answer: IV}
    - {id: c, question: "2+3 in words", answer: Five}
strategies: [{kind: self_consistency, agent: solver, n: [1, 32]}]
"#,
    );
    let db = s.path("c.db");
    Crucible::new(&["run"]).arg(&file).db(&db).ok();
    // Expected answers in words are canonical numbers, so samples match them.
    assert_eq!(
        table_rows(&db, "SELECT expected FROM tasks ORDER BY task_index"),
        vec!["4", "4", "5"]
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples s JOIN tasks t ON t.task_index = s.task_index
             WHERE s.correct = 1 AND s.normalized = t.expected"
        ),
        query::<i64>(&db, "SELECT count(*) FROM samples WHERE correct = 1")
    );
    assert!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples WHERE correct = 1 AND task_index = 2"
        ) > 0
    );
    // One process for the whole run, asked about each distinct answer once
    // (after the steps before it: "Five" arrives case-folded).
    let log = std::fs::read_to_string(s.path("canon.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.iter().filter(|l| **l == "start").count(), 1, "{log}");
    let mut asked: Vec<&str> = lines.iter().copied().filter(|l| *l != "start").collect();
    let total = asked.len();
    asked.sort_unstable();
    asked.dedup();
    assert_eq!(asked.len(), total, "asked twice: {log}");
    for a in ["four", "iv", "five", "4", "5"] {
        assert!(asked.contains(&a), "{a} not asked: {log}");
    }
}

/// Walk `scenario`'s graph, answering every agent turn with `say(agent
/// name, messages so far)` (a token per byte, a second per message), every
/// join with its branches joined by `|`, every verdict with whether the
/// message says OK, and every summary with the messages it covers; the
/// walker after the run.
fn walk_graph(
    scenario: &crucible::scenario::Scenario,
    mut say: impl FnMut(&str, usize) -> String,
) -> (
    crucible::engine::walker::Walker<'_>,
    crucible::engine::walker::Termination,
) {
    use crucible::engine::walker::{Step, Walker};
    let graph = scenario.graph.as_ref().expect("a graph");
    let mut walker = Walker::new(graph, scenario.seed);
    for _ in 0..100_000 {
        match walker.step() {
            Step::Speak { agent, .. } | Step::Choose { agent, .. } => {
                let text = say(&scenario.agents[agent].name, walker.messages().len());
                // A token per byte; a second per message so far.
                let tokens = text.len() as u64;
                walker.set_clock(walker.messages().len() as f64);
                walker.deliver(text, tokens);
            }
            Step::Verify { message, .. } => {
                let accepted = walker.messages()[message].text.contains("OK");
                walker.accept(accepted);
            }
            Step::Summarize { messages, .. } => {
                let text = format!("summary of {messages:?}");
                walker.deliver(text, 0);
            }
            Step::Join { branches, .. } => {
                let text = branches
                    .iter()
                    .map(|&b| walker.messages()[b].text.clone())
                    .collect::<Vec<_>>()
                    .join("|");
                walker.deliver(text, 0);
            }
            Step::Done(why) => return (walker, why),
        }
    }
    panic!("the walk did not end");
}

#[test]
fn plan_code_review_walks_until_approved_or_its_revisions_run_out() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("g.yaml", GRAPH_BASE), &[]).unwrap();
    // Approved at the second review: plan, code, review, code, review.
    let mut reviews = 0;
    let (walker, why) = walk_graph(&scenario, |agent, n| match agent {
        "reviewer" => {
            reviews += 1;
            if reviews == 2 {
                "APPROVED".into()
            } else {
                "REVISE please".into()
            }
        }
        other => format!("{other} #{n}"),
    });
    assert_eq!(why, Termination::End);
    let senders: Vec<&str> = walker
        .messages()
        .iter()
        .map(|m| scenario.agents[m.sender.unwrap()].name.as_str())
        .collect();
    assert_eq!(
        senders,
        ["planner", "coder", "reviewer", "coder", "reviewer"]
    );
    assert_eq!(walker.final_message().unwrap().text, "APPROVED");
    // Each message answers the one before it; a review reaches the gate and
    // the node the gate routes it to.
    let graph = scenario.graph.as_ref().unwrap();
    let receivers: Vec<Vec<&str>> = walker
        .messages()
        .iter()
        .map(|m| {
            m.receivers
                .iter()
                .map(|&r| graph.graph[r].name.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        receivers,
        [
            vec!["code"],
            vec!["review"],
            vec!["gate", "code"],
            vec!["review"],
            vec!["gate", "END"]
        ]
    );
    for (i, m) in walker.messages().iter().enumerate() {
        assert_eq!(m.reply_to, i.checked_sub(1));
    }
    // Never approved: the REVISE edge allows three rounds, then the run ends.
    let (walker, why) = walk_graph(&scenario, |agent, _| format!("{agent}: REVISE"));
    assert_eq!(why, Termination::MaxVisits);
    assert_eq!(walker.messages().len(), 3 + 3 * 2);
    assert_eq!(walker.turns(), 3 + 4 + 3 * 2);
}

/// A random valid graph: a chain START → n0 → … → END of agent nodes (every
/// third a group chat), plus
/// forward edges (plain or conditional), back edges limited by
/// `max_visits` (or by `max_turns` alone), and node limits.
#[derive(Debug, Clone)]
struct RandomGraph {
    nodes: usize,
    /// (from, to, kind): 0 plain forward, 1 conditional forward, else a
    /// back edge limited to kind − 1 visits (or unlimited under max_turns).
    extra: Vec<(usize, usize, u8)>,
    node_limits: Vec<Option<u8>>,
    max_turns: Option<u8>,
}

impl RandomGraph {
    fn yaml(&self) -> String {
        let mut text = String::from(
            "name: random\nmodels:\n  sim: {provider: simulated, distribution: {p_correct: 0.5, delta: 0.2}}\n\
             agents:\n  a: {model: sim, prompt: \"{{ question }}\"}\n  b: {model: sim, prompt: \"{{ question }}\"}\n\
             dataset:\n  synthetic: {count: 1}\nstrategies:\n  - {kind: self_consistency, agent: a, n: 1}\ngraph:\n",
        );
        if let Some(m) = self.max_turns {
            text += &format!("  max_turns: {m}\n");
        }
        text += "  nodes:\n";
        for i in 0..self.nodes {
            let limit = self.node_limits[i].map_or(String::new(), |m| format!(", max_visits: {m}"));
            let kind = match i % 3 {
                0 => "agent: a",
                1 => "agent: b",
                _ => {
                    "chat: {participants: [a, b], speakers: random, until: {any: [{mentions: x}, {max_messages: 3}]}}"
                }
            };
            text += &format!("    n{i}: {{{kind}{limit}}}\n");
        }
        text += "  edges:\n    - {from: START, to: n0}\n";
        for i in 0..self.nodes {
            let next = if i + 1 == self.nodes {
                "END".to_owned()
            } else {
                format!("n{}", i + 1)
            };
            text += &format!("    - {{from: n{i}, to: {next}}}\n");
        }
        for &(a, b, kind) in &self.extra {
            let (lo, hi) = (a.min(b) % self.nodes, a.max(b) % self.nodes);
            text += &match kind {
                0 if lo < hi => format!("    - {{from: n{lo}, to: n{hi}}}\n"),
                1 => format!("    - {{from: n{lo}, to: n{hi}, when: {{contains: x}}}}\n"),
                0 => continue,
                k if self.max_turns.is_some() && k % 2 == 0 => {
                    format!("    - {{from: n{hi}, to: n{lo}}}\n")
                }
                k => format!("    - {{from: n{hi}, to: n{lo}, max_visits: {}}}\n", k - 1),
            };
        }
        text
    }
}

fn random_graphs() -> impl Strategy<Value = RandomGraph> {
    (1usize..6).prop_flat_map(|nodes| {
        (
            prop::collection::vec((0..nodes, 0..nodes, 0u8..5), 0..6),
            prop::collection::vec(prop::option::of(1u8..4), nodes),
            prop::option::of(1u8..40),
        )
            .prop_map(move |(extra, node_limits, max_turns)| RandomGraph {
                nodes,
                extra,
                node_limits,
                max_turns,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every run of a valid graph ends, within its turn, node and edge
    /// limits, whatever the agents say.
    #[test]
    fn every_graph_run_ends_within_its_limits(
        g in random_graphs(),
        texts in prop::collection::vec(prop::bool::ANY, 64),
    ) {
        let s = Scratch::new();
        let file = s.write("g.yaml", &g.yaml());
        let scenario = match crucible::scenario::validator::load_scenario(&file, &[]) {
            Ok(s) => s,
            // A node limit can leave a join-free graph valid but a
            // conditional self-loop is still a cycle: only valid graphs count.
            Err(d) => return Err(TestCaseError::reject(format!("{d:?}"))),
        };
        let graph = scenario.graph.as_ref().unwrap();
        let (walker, _) = walk_graph(&scenario, |_, n| {
            if texts[n % texts.len()] { "x".into() } else { "y".into() }
        });
        let limit = graph.max_turns.unwrap_or(crucible::engine::walker::HARD_TURN_LIMIT);
        prop_assert!(walker.turns() <= limit, "{} turns", walker.turns());
        for i in graph.graph.node_indices() {
            if let Some(m) = graph.graph[i].max_visits {
                prop_assert!(walker.node_visits(i) <= m);
            }
        }
        for e in graph.graph.edge_indices() {
            if let Some(m) = graph.graph[e].max_visits {
                prop_assert!(walker.edge_visits(e) <= m);
            }
        }
        for (i, m) in walker.messages().iter().enumerate() {
            prop_assert!(m.reply_to.is_none_or(|r| r < i));
        }
    }
}

#[test]
fn a_fan_out_is_joined_once_every_branch_arrives() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let text = GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    left: {agent: planner}\n    right: {agent: coder}\n    both: {join: concatenate}\n    pick: {join: vote}\n  \
           edges:\n    - {from: START, to: left}\n    - {from: START, to: right}\n    - {from: left, to: both}\n    - {from: right, to: both}\n    \
           - {from: both, to: pick}\n    - {from: left, to: pick}\n    - {from: pick, to: END}\n";
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("j.yaml", &text), &[]).unwrap();
    let (walker, why) = walk_graph(&scenario, |agent, _| agent.to_uppercase());
    assert_eq!(why, Termination::End);
    let texts: Vec<&str> = walker.messages().iter().map(|m| m.text.as_str()).collect();
    // Both branches speak; `both` concatenates them; `pick` gets `left`'s
    // message and `both`'s and is handed them to combine (here joined by |).
    assert_eq!(
        texts,
        [
            "PLANNER",
            "CODER",
            "PLANNER\n\nCODER",
            "PLANNER|PLANNER\n\nCODER"
        ]
    );
    assert_eq!(
        walker.final_message().unwrap().text,
        "PLANNER|PLANNER\n\nCODER"
    );
    assert_eq!(walker.messages()[2].sender, None);
}

/// A chat of the three agents, its `speakers` and `until` filled in by
/// each test.
fn chat_scenario(speakers: &str, until: &str) -> String {
    // With a manager, the reviewer manages the other two.
    let participants = if speakers.contains("manager") {
        "[planner, coder]"
    } else {
        "[planner, coder, reviewer]"
    };
    GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + &format!(
            "graph:\n  nodes:\n    room:\n      chat:\n        participants: {participants}\n        {speakers}\n        until: {until}\n  \
             edges:\n    - {{from: START, to: room}}\n    - {{from: room, to: END}}\n"
        )
}

#[test]
fn group_chats_pick_speakers_and_end_as_their_conditions_say() {
    use crucible::engine::walker::Termination;
    let s = Scratch::new();
    let load = |name: &str, speakers: &str, until: &str| {
        crucible::scenario::validator::load_scenario(
            &s.write(name, &chat_scenario(speakers, until)),
            &[],
        )
        .unwrap()
    };
    let senders = |sc: &crucible::scenario::Scenario,
                   w: &crucible::engine::walker::Walker<'_>|
     -> Vec<String> {
        w.messages()
            .iter()
            .map(|m| sc.agents[m.sender.unwrap()].name.clone())
            .collect()
    };
    // Round robin until a mention, or six messages.
    let sc = load(
        "rr.yaml",
        "speakers: round_robin",
        "{any: [{mentions: TERMINATE}, {max_messages: 6}]}",
    );
    let (w, why) = walk_graph(&sc, |agent, _| agent.into());
    assert_eq!(why, Termination::End);
    assert_eq!(
        senders(&sc, &w),
        [
            "planner", "coder", "reviewer", "planner", "coder", "reviewer"
        ]
    );
    assert_eq!(w.turns(), 6);
    let (w, _) = walk_graph(&sc, |agent, n| {
        if n == 3 {
            "TERMINATE".into()
        } else {
            agent.into()
        }
    });
    assert_eq!(w.messages().len(), 4);
    assert_eq!(w.final_message().unwrap().text, "TERMINATE");
    // Each message answers the one before; the last is passed on to END.
    assert!(
        w.messages()
            .iter()
            .enumerate()
            .all(|(i, m)| m.reply_to == i.checked_sub(1))
    );
    let graph = sc.graph.as_ref().unwrap();
    let last: Vec<&str> = w.messages()[3]
        .receivers
        .iter()
        .map(|&r| graph.graph[r].name.as_str())
        .collect();
    assert_eq!(last, ["room", "END"]);

    // A manager naming the next speaker; a reply naming nobody falls back
    // to the participant after the last speaker.
    let sc = load(
        "m.yaml",
        "speakers: manager\n        manager: reviewer",
        "{max_messages: 5}",
    );
    let mut picks = ["coder", "nobody at all", "I pick the CODER", "coder", "hm"].into_iter();
    let (w, _) = walk_graph(&sc, |agent, _| {
        if agent == "reviewer" {
            picks.next().unwrap().into()
        } else {
            format!("{agent} speaks")
        }
    });
    assert_eq!(
        senders(&sc, &w),
        ["coder", "planner", "coder", "coder", "planner"]
    );

    // A router picking the next speaker from the last message (the chat's
    // first reads the message that reached it); one matching nobody falls
    // back like a manager, and the trace has each pick.
    let sc = load(
        "rt.yaml",
        "speakers: router\n        router: {by: contains, options: [coder, reviewer], match: {coder: to coder, reviewer: to reviewer}}",
        "{max_messages: 5}",
    );
    let script = [
        "to reviewer",
        "nothing",
        "to coder",
        "to coder again",
        "done",
    ];
    let (w, _) = walk_graph(&sc, |_, n| script[n].into());
    assert_eq!(
        senders(&sc, &w),
        ["planner", "reviewer", "planner", "coder", "coder"]
    );
    let routed: Vec<Option<usize>> = w
        .events()
        .iter()
        .filter_map(|e| match e {
            crucible::engine::walker::Event::Routed { option, .. } => Some(*option),
            _ => None,
        })
        .collect();
    assert_eq!(routed, [None, Some(1), None, Some(0), Some(0)]);

    // Random speakers: seeded, never the same one twice in a row.
    let sc = load("r.yaml", "speakers: random", "{max_messages: 40}");
    let (w, _) = walk_graph(&sc, |agent, _| agent.into());
    let order = senders(&sc, &w);
    assert!(order.windows(2).all(|p| p[0] != p[1]), "{order:?}");
    assert!(
        ["planner", "coder", "reviewer"]
            .iter()
            .all(|a| order.iter().any(|o| o == a))
    );
    assert_eq!(
        walk_graph(&sc, |agent, _| agent.into()).0.messages(),
        w.messages()
    );

    // Tokens (a token per byte), the clock (a second a message) and a
    // verifier's verdict, composed.
    let sc = load("t.yaml", "speakers: round_robin", "{max_tokens: 30}");
    let (w, _) = walk_graph(&sc, |_, _| "1234567890".into());
    assert_eq!(w.messages().len(), 3);
    let sc = load("c.yaml", "speakers: round_robin", "{timeout: 4.5}");
    let (w, _) = walk_graph(&sc, |_, _| "tick".into());
    assert_eq!(w.messages().len(), 6);
    let sc = load(
        "v.yaml",
        "speakers: round_robin",
        "{any: [{all: [{verifier: oracle}, {max_messages: 2}]}, {max_messages: 9}]}",
    );
    let (w, _) = walk_graph(&sc, |_, n| {
        if n == 0 {
            "OK".into()
        } else if n == 4 {
            "OK again".into()
        } else {
            "no".into()
        }
    });
    assert_eq!(w.messages().len(), 5);
}

#[test]
fn each_speaker_sees_the_messages_its_view_allows() {
    use crucible::engine::walker::{Step, Walker};
    let s = Scratch::new();
    let text = GRAPH_BASE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    first: {agent: planner}\n    second: {agent: coder, view: {last: 1}}\n    \
           third: {agent: reviewer, view: addressed}\n    fourth: {agent: coder, view: {summary: planner}}\n    \
           room: {chat: {participants: [planner, coder], until: {max_messages: 3}}, view: addressed}\n  \
           edges:\n    - {from: START, to: first}\n    - {from: first, to: second}\n    - {from: second, to: third}\n    \
           - {from: third, to: fourth}\n    - {from: fourth, to: room}\n    - {from: room, to: END}\n";
    let scenario =
        crucible::scenario::validator::load_scenario(&s.write("v.yaml", &text), &[]).unwrap();
    let graph = scenario.graph.as_ref().unwrap();
    let mut walker = Walker::new(graph, 0);
    let mut seen: Vec<(String, Vec<usize>)> = Vec::new();
    let mut summaries = Vec::new();
    loop {
        match walker.step() {
            Step::Speak { node, agent } => {
                let name = graph.graph[node].name.clone();
                seen.push((name.clone(), walker.view(node, agent)));
                let text = if name == "room" {
                    "over to Planner".into()
                } else {
                    name
                };
                walker.deliver(text, 0);
            }
            Step::Summarize {
                agent,
                messages,
                previous,
                ..
            } => {
                assert_eq!(scenario.agents[agent].name, "planner");
                summaries.push((messages, previous));
                walker.deliver("the story so far".into(), 0);
            }
            Step::Done(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Messages: 0 first, 1 second, 2 third, 3 the summary, 4 fourth, 5-7 the chat.
    assert_eq!(summaries, [(vec![0, 1, 2], None)]);
    assert!(walker.messages()[3].summary);
    assert_eq!(
        seen,
        [
            ("first".to_owned(), vec![]),
            ("second".to_owned(), vec![0]),
            ("third".to_owned(), vec![1]),
            ("fourth".to_owned(), vec![3]),
            // In the chat: what was passed in, then what names the speaker.
            ("room".to_owned(), vec![4]),
            ("room".to_owned(), vec![4]),
            ("room".to_owned(), vec![4, 5, 6]),
        ]
    );
}

/// A debate: `pro` opens, `con` answers, `judge` decides; strategies wrap
/// whole runs of it (`agent: graph`), and the judge alone for comparison.
const DEBATE: &str = r#"name: debate
seed: 3
models:
  sim: {provider: simulated, distribution: {p_correct: 0.5, delta: 0.2, wrong_answers: 3}}
agents:
  pro: {model: sim, prompt: "Argue for an answer: {{ question }}"}
  con: {model: sim, prompt: "Argue against: {{ question }}"}
  judge: {model: sim, prompt: "Decide: {{ question }}"}
dataset:
  synthetic: {count: 60}
verifiers:
  oracle: {kind: oracle}
strategies:
  - {kind: self_consistency, agent: graph, n: [1, 4]}
  - {kind: best_of_n, agent: graph, verifier: oracle, n: 4}
  - {kind: self_consistency, name: judge_alone, agent: judge, n: 4}
graph:
  nodes:
    opening: {agent: pro}
    rebuttal: {agent: con, view: {last: 1}}
    verdict: {agent: judge}
  edges:
    - {from: START, to: opening}
    - {from: opening, to: rebuttal}
    - {from: rebuttal, to: verdict}
    - {from: verdict, to: END}
"#;

#[test]
fn strategies_wrap_whole_graph_runs_traced_turn_by_turn() {
    let s = Scratch::new();
    let file = s.write("debate.yaml", DEBATE);
    let run = |db: &Path, concurrency: &str| {
        Crucible::new(&["run", "--json", "--concurrency", concurrency])
            .arg(&file)
            .db(db)
            .ok()
    };
    let db = s.path("d.db");
    let recorded = run(&db, "16");
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    let count = |sql: &str| query::<i64>(&db, sql);
    // Every turn of every run is a traced call: 60 tasks × 4 runs × 3 turns.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph'"),
        720
    );
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph' GROUP BY agent LIMIT 1"),
        240
    );
    // The rebuttal sees the opening in its prompt; the verdict sees both.
    assert_eq!(
        count(
            "SELECT count(*) FROM call_view c JOIN samples s ON s.call_id = c.call_id
             WHERE s.strategy = 'graph' AND c.agent = 'judge'
               AND c.prompt LIKE '%The conversation so far:%pro: %con: %'"
        ),
        240
    );
    // A run's answer is its verdict: at n = 1 the graph's accuracy is the
    // share of correct verdicts.
    let verdicts: f64 = query(
        &db,
        "SELECT avg(correct) FROM samples WHERE strategy = 'graph' AND agent = 'judge'",
    );
    let single = num(result(&v, "self_consistency", 1), "accuracy");
    assert!((single - verdicts).abs() < 1e-9, "{single} {verdicts}");
    assert!(num(result(&v, "best_of_n", 4), "accuracy") > single);
    assert_eq!(
        count("SELECT count(*) FROM pools WHERE agent = 'graph'"),
        60
    );
    // Each run's messages and events, and its end.
    assert_eq!(
        count("SELECT count(*) FROM graph_runs WHERE ending = 'end' AND turns = 3 AND final = 2"),
        240
    );
    assert_eq!(count("SELECT count(*) FROM messages"), 720);
    assert_eq!(
        count(
            "SELECT count(*) FROM messages m WHERE m.node = 'verdict' AND m.receivers = '[\"END\"]'
               AND m.reply_to = 1 AND EXISTS (SELECT 1 FROM samples s WHERE s.run_id = m.run_id
                 AND s.task_index = m.task_index AND s.strategy = 'graph' AND s.agent = m.sender
                 AND s.text = m.text)"
        ),
        240
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_events WHERE kind = 'edge'"),
        240 * 4
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_events WHERE kind = 'terminated' AND detail = 'end'"),
        240
    );
    let task: String = query(&db, "SELECT task_id FROM tasks WHERE task_index = 0");
    let transcript = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    assert!(
        transcript.contains("── graph run 3 · end · 3 turns"),
        "{transcript}"
    );
    assert!(
        transcript.contains("[1] turn 1 · rebuttal · con → verdict"),
        "{transcript}"
    );
    assert!(
        transcript.contains("[2] turn 2 · verdict · judge → END  ◀ answer"),
        "{transcript}"
    );
    let out = Crucible::new(&["show", "1", "--transcript", &format!("{task}x")])
        .db(&db)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "run 1 has no task `{task}x` (its 60 task(s) run from `{task}` to "
        )) && stderr.contains(&format!("did you mean `{task}`?")),
        "{stderr}"
    );
    let analysis = Crucible::new(&["analyze", "1", "--bootstrap", "0"])
        .db(&db)
        .json();
    let graph_pools = analysis["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "graph")
        .unwrap();
    assert_eq!(graph_pools["pool_size"], 4);

    // The same results at any concurrency, and after a stop and a resume.
    assert_eq!(
        results_without_ids(&run(&s.path("one.db"), "1")),
        results_without_ids(&recorded)
    );
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "300"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    // Analyzed while stopped: the graph's finished tasks (stored pools, no
    // sample rows) beside the other agents' samples so far.
    let partial = Crucible::new(&["analyze", "1", "--bootstrap", "0"])
        .db(&stopped)
        .json();
    let tasks_of = |agent: &str| {
        partial["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .map(|a| a["tasks"].as_i64().unwrap())
    };
    let finished = query::<i64>(&stopped, "SELECT count(*) FROM pools WHERE agent = 'graph'");
    assert!(finished > 0 && finished < 60, "{finished}");
    assert_eq!(tasks_of("graph"), Some(finished));
    assert!(tasks_of("judge").is_some_and(|t| t >= finished));
    let unstarted: String = query(
        &stopped,
        "SELECT task_id FROM tasks WHERE task_index NOT IN (SELECT task_index FROM graph_runs)
         ORDER BY task_index LIMIT 1",
    );
    let out = Crucible::new(&["show", "1", "--transcript", &unstarted])
        .db(&stopped)
        .output();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "task `{unstarted}` of run 1 has no graph runs: the scenario has no `graph`, or the run stopped"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    assert_eq!(
        query::<i64>(
            &stopped,
            "SELECT count(*) FROM samples WHERE strategy = 'graph'"
        ),
        720
    );
    assert_eq!(
        query::<i64>(&stopped, "SELECT count(*) FROM graph_runs"),
        240
    );
}

#[test]
fn shipped_graph_scenarios_run_on_simulated_agents() {
    // (scenario, tasks, runs per task, calls per message, SQL true of every run)
    for (name, tasks, runs, per_message, every_run) in [
        // pro, con, pro, con, judge; the judge sides with an answer it heard.
        (
            "debate.yaml",
            100,
            8,
            1,
            "turns = 5 AND (SELECT m.text FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt AND m.position = 4)
               LIKE 'Having weighed the arguments, I side with %'",
        ),
        // Until APPROVED, or the three revisions are spent.
        (
            "plan-code-review.yaml",
            100,
            4,
            1,
            "(ending = 'end') = ((SELECT m.text FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt
               AND m.position = g.final) LIKE 'APPROVED.%')",
        ),
        // A lead's pick before each message; ten messages, or fewer when two
        // in a row agree and the second says TERMINATE.
        (
            "groupchat.yaml",
            50,
            4,
            2,
            "(SELECT count(*) FROM messages m WHERE m.run_id = g.run_id
               AND m.task_index = g.task_index AND m.attempt = g.attempt) BETWEEN 2 AND 10",
        ),
    ] {
        let s = Scratch::new();
        let (db, v) = run_shipped(&s, name);
        assert_eq!(v["status"], "completed", "{name}");
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM samples WHERE strategy = 'graph'"),
            per_message * query::<i64>(&db, "SELECT count(*) FROM messages"),
            "{name}"
        );
        assert_eq!(
            query::<i64>(
                &db,
                &format!("SELECT count(*) FROM graph_runs g WHERE {every_run}")
            ),
            tasks * runs,
            "{name}"
        );
        assert_eq!(
            query::<i64>(&db, "SELECT count(*) FROM pools WHERE agent = 'graph'"),
            tasks,
            "{name}"
        );
    }
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

/// The shipped debate, moved onto the real llama.cpp server and its
/// arithmetic questions with `--set`: every turn a real completion, each
/// agent prompted with the messages before it.
#[test]
fn llama_cpp_runs_a_debate_graph() {
    let url = llama_url();
    let s = Scratch::new();
    let db = s.path("debate.db");
    let model = format!(
        "models.sim={{provider: openai, base_url: \"{url}/v1\", model: smollm2-135m-instruct, \
         temperature: 0.8, max_tokens: 32, max_retries: 3, timeout: 60}}"
    );
    let v = Crucible::new(&["run"])
        .arg(root().join("scenarios/debate.yaml"))
        .args(&[
            "--set",
            &model,
            "--set",
            "dataset={file: data/arithmetic.jsonl, limit: 3}",
            "--set",
            "answer={extract: last_number}",
            "--set",
            "strategies=[{kind: self_consistency, agent: graph, n: 2}]",
        ])
        .db(&db)
        .args_concurrency(4)
        .json();
    assert_eq!(v["status"], "completed", "{v}");
    let count = |sql: &str| query::<i64>(&db, sql);
    // 3 tasks × 2 debates × 5 turns, each a real call.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE strategy = 'graph'"),
        30
    );
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE provider = 'openai'"),
        30
    );
    assert_eq!(
        count("SELECT count(*) FROM graph_runs WHERE ending = 'end' AND turns = 5"),
        6
    );
    // The judge's prompt holds the four real arguments before it.
    assert_eq!(
        count(
            "SELECT count(*) FROM messages m JOIN messages a ON a.run_id = m.run_id
               AND a.task_index = m.task_index AND a.attempt = m.attempt AND a.position < m.position
             WHERE m.node = 'verdict' AND EXISTS (
               SELECT 1 FROM samples s JOIN call_view c ON c.call_id = s.call_id
               WHERE s.run_id = m.run_id AND s.task_index = m.task_index AND s.strategy = 'graph'
                 AND s.agent = 'judge' AND s.text = m.text
                 AND instr(c.prompt, a.sender || ': ' || a.text) > 0)"
        ),
        6 * 4
    );
    let transcript = Crucible::new(&["show", "1", "--transcript", "add-01"])
        .db(&db)
        .ok();
    assert!(
        transcript.contains("[4] turn 4 · verdict · judge → END  ◀ answer"),
        "{transcript}"
    );
}

#[test]
fn a_verifier_join_keeps_the_branch_its_verifier_scores_highest() {
    // Two solvers in parallel; the oracle join keeps a correct branch when
    // either has one, so one run is right exactly when a branch is.
    let s = Scratch::new();
    let text = DEBATE.split("graph:\n").next().unwrap().to_owned()
        + "graph:\n  nodes:\n    left: {agent: pro}\n    right: {agent: con}\n    \
           pick: {join: verifier, verifier: oracle}\n  edges:\n    - {from: START, to: left}\n    \
           - {from: START, to: right}\n    - {from: left, to: pick}\n    - {from: right, to: pick}\n    \
           - {from: pick, to: END}\n";
    let text = text
        .replace("n: [1, 4]}", "n: 1}")
        .replace(", n: 4}", ", n: 1}");
    let (db, v) = run_json(&s, &text);
    let either: f64 = query(
        &db,
        "SELECT avg(c) FROM (SELECT max(correct) AS c FROM samples
           WHERE strategy = 'graph' GROUP BY task_index)",
    );
    let single = num(result(&v, "self_consistency", 1), "accuracy");
    assert!((single - either).abs() < 1e-9, "{single} {either}");
    // Not merely the first branch.
    let left: f64 = query(
        &db,
        "SELECT avg(correct) FROM samples WHERE strategy = 'graph' AND agent = 'pro'",
    );
    assert!(single > left + 0.1, "{single} {left}");
}

/// For each mode of scenarios/failures.yaml: the agent acting it out, its
/// configured rate, the messages where it can happen (a WHERE clause over
/// `messages m`), and the mark an injected message carries (one over
/// `messages m` as well).
const INJECTED_MODES: &[(&str, &str, f64, &str, &str)] = &[
    // The planner can disobey its role or withhold in every turn.
    (
        "FM-1.2",
        "planner",
        0.1,
        "1",
        "instr(m.text, :rule_myself) > 0",
    ),
    ("FM-2.4", "planner", 0.1, "1", "m.text = :withheld"),
    // Repeating a step needs a step of one's own before.
    (
        "FM-1.3",
        "coder",
        0.15,
        "EXISTS (SELECT 1 FROM messages p WHERE p.run_id = m.run_id AND p.task_index = m.task_index
           AND p.attempt = m.attempt AND p.sender = m.sender AND p.position < m.position)",
        "m.text = (SELECT p.text FROM messages p WHERE p.run_id = m.run_id
           AND p.task_index = m.task_index AND p.attempt = m.attempt AND p.sender = m.sender
           AND p.position < m.position ORDER BY p.position DESC LIMIT 1)",
    ),
    // The coder always sees the plan, so it can always start over.
    ("FM-2.1", "coder", 0.1, "1", "instr(m.text, :reset) > 0"),
    // Ignoring input needs an answer from another agent in its view (the
    // last two messages): a review, or a plan that states one.
    (
        "FM-2.5",
        "coder",
        0.15,
        "EXISTS (SELECT 1 FROM messages p WHERE p.run_id = m.run_id AND p.task_index = m.task_index
           AND p.attempt = m.attempt AND p.position >= m.position - 2 AND p.position < m.position
           AND p.sender <> m.sender AND instr(p.text, 'the answer is') > 0)",
        "instr(m.text, :stands) > 0",
    ),
    // A reviewer can always stop, go on, or wave the answer through.
    (
        "FM-1.5",
        "reviewer",
        0.1,
        "1",
        "instr(m.text, :continue) > 0",
    ),
    (
        "FM-3.1",
        "reviewer",
        0.1,
        "1",
        "instr(m.text, :stop_now) > 0",
    ),
    (
        "FM-3.2",
        "reviewer",
        0.15,
        "1",
        "m.text LIKE 'APPROVED.' || char(10) || '%'",
    ),
];

/// Every injected failure of run 1, in order, without the run id.
fn injected_rows(db: &Path) -> Vec<String> {
    table_rows(
        db,
        "SELECT task_index, attempt, position, turn, agent, node, mode FROM injected_failures
         ORDER BY task_index, attempt, position",
    )
}

#[test]
fn injected_failures_happen_at_their_rates_and_are_traced_as_ground_truth() {
    use crucible::model::actor::{CONTINUE, RESET, RULE_MYSELF, STANDS, STOP_NOW, WITHHELD};
    let s = Scratch::new();
    let file = root().join("scenarios/failures.yaml");
    let many = ["--set", "dataset.synthetic.count=300"];
    let db = s.path("one.db");
    let recorded = Crucible::new(&["run", "--json"])
        .arg(&file)
        .args(&many)
        .db(&db)
        .args_concurrency(1)
        .ok();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marks: [(&str, &str); 6] = [
        (":rule_myself", RULE_MYSELF),
        (":withheld", WITHHELD),
        (":reset", RESET),
        (":stands", STANDS),
        (":continue", CONTINUE),
        (":stop_now", STOP_NOW),
    ];
    let mut off = Vec::new();
    for &(mode, agent, rate, eligible, mark) in INJECTED_MODES {
        let injected = |mode: &str| {
            format!(
                "EXISTS (SELECT 1 FROM injected_failures f WHERE f.run_id = m.run_id
                   AND f.task_index = m.task_index AND f.attempt = m.attempt
                   AND f.position = m.position AND f.mode = '{mode}')"
            )
        };
        let (repeated, injected) = (injected("FM-1.3"), injected(mode));
        // Counts over the agent's messages: eligible, injected, injected
        // where ineligible, injected without the mark, and marked without
        // being injected (unless it repeats a message that was).
        let sql = format!(
            "SELECT sum({eligible}), sum({injected}), sum({injected} AND NOT ({eligible})),
                    sum({injected} AND NOT ({mark})), sum(({mark}) AND NOT {injected} AND NOT {repeated})
             FROM messages m WHERE m.sender = '{agent}' AND m.summary = 0"
        );
        let mut st = conn.prepare(&sql).unwrap();
        let params: Vec<(&str, &dyn rusqlite::ToSql)> = marks
            .iter()
            .filter(|(name, _)| sql.contains(name))
            .map(|(name, text)| (*name, text as &dyn rusqlite::ToSql))
            .collect();
        let (n, k, ineligible, unmarked, unrecorded): (i64, i64, i64, i64, i64) = st
            .query_row(params.as_slice(), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        // An honest revision can come out word for word as the message
        // before; only injected repetitions must.
        let unrecorded = if mode == "FM-1.3" { 0 } else { unrecorded };
        let observed = k as f64 / n as f64;
        let se = (rate * (1.0 - rate) / n as f64).sqrt();
        if n < 300 || (observed - rate).abs() > 5.0 * se || ineligible + unmarked + unrecorded > 0 {
            off.push(format!(
                "{mode}: {k} of {n} eligible ({observed:.3}, rate {rate}, se {se:.3}); \
                 {ineligible} ineligible, {unmarked} without their mark, {unrecorded} marked but not recorded"
            ));
        }
    }
    assert!(off.is_empty(), "{}", off.join("\n"));
    // Nothing is recorded for a mode the scenario does not configure, nor
    // against the wrong agent.
    let stray: i64 = query(
        &db,
        "SELECT count(*) FROM injected_failures f JOIN messages m USING (run_id, task_index, attempt, position)
          WHERE f.agent <> m.sender OR f.turn <> m.turn OR f.node <> m.node
             OR f.mode NOT IN ('FM-1.2','FM-2.4','FM-1.3','FM-2.1','FM-2.5','FM-1.5','FM-3.1','FM-3.2')",
    );
    assert_eq!(stray, 0);

    // The transcript marks an injected message above its text.
    let (task, position, mode): (String, i64, String) = conn
        .query_row(
            "SELECT t.task_id, f.position, f.mode FROM injected_failures f
               JOIN tasks t USING (run_id, task_index) WHERE f.mode = 'FM-2.1' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let transcript = Crucible::new(&["show", "1", "--transcript", &task])
        .db(&db)
        .ok();
    let marked = format!("    ⚠ injected {mode} conversation reset\n    {RESET}");
    assert!(
        transcript.contains(&marked) && transcript.contains(&format!("[{position}] turn ")),
        "{transcript}"
    );

    // The same failures at any concurrency, and after a stop and resume.
    let truth = injected_rows(&db);
    let wide = s.path("wide.db");
    let concurrent = Crucible::new(&["run", "--json"])
        .arg(&file)
        .args(&many)
        .db(&wide)
        .args_concurrency(16)
        .ok();
    assert_eq!(
        results_without_ids(&concurrent),
        results_without_ids(&recorded)
    );
    assert_eq!(injected_rows(&wide), truth);
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "1500"])
        .arg(&file)
        .args(&many)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let partial = injected_rows(&stopped);
    assert!(!partial.is_empty() && partial.len() < truth.len());
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    assert_eq!(injected_rows(&stopped), truth);
}

#[test]
fn commands_and_judges_score_graph_runs_traced_under_the_graph() {
    // Two solvers in parallel, joined by a command that checks the answer;
    // whole runs ranked by an `llm` judge on a sim-server.
    let s = Scratch::new();
    let server = SimServer::start(&s.write("judge-server.yaml", JUDGE_SERVER), &[]);
    // Shell builtins only: one process per scored text.
    s.write(
        "check.sh",
        "read -r c\na=${c#*\\\"answer\\\":\\\"}; a=${a%%\\\"*}\n\
         e=${c#*\\\"expected\\\":\\\"}; e=${e%%\\\"*}\n\
         if [ \"$a\" = \"$e\" ]; then echo 1; else echo 0; fi\n",
    );
    let text = format!(
        r#"name: graded
seed: 3
models:
  sim: {{provider: simulated, distribution: {{p_correct: 0.5, delta: 0.2, wrong_answers: 3}}}}
  judge_model: {{provider: openai, base_url: "{}", model: judge, seed: 0}}
agents:
  pro: {{model: sim, prompt: "Solve: {{{{ question }}}}"}}
  con: {{model: sim, prompt: "Solve too: {{{{ question }}}}"}}
dataset:
  synthetic: {{count: 30}}
verifiers:
  check: {{kind: programmatic, check: command, command: [sh, check.sh]}}
  judge: {{kind: llm, model: judge_model}}
strategies:
  - {{kind: best_of_n, agent: graph, verifier: judge, n: [1, 4]}}
  - {{kind: best_of_n, name: checked, agent: graph, verifier: check, n: [1, 4]}}
graph:
  nodes:
    left: {{agent: pro}}
    right: {{agent: con}}
    pick: {{join: verifier, verifier: check}}
  edges:
    - {{from: START, to: left}}
    - {{from: START, to: right}}
    - {{from: left, to: pick}}
    - {{from: right, to: pick}}
    - {{from: pick, to: END}}
"#,
        server.url
    );
    let file = s.write("graded.yaml", &text);
    let db = s.path("g.db");
    let recorded = Crucible::new(&["run", "--json"]).arg(&file).db(&db).ok();
    let v: serde_json::Value = serde_json::from_str(&recorded).unwrap();

    // The command join keeps a correct branch whenever there is one, the
    // right one included.
    let correct = |m: &str| {
        format!(
            "(SELECT max(s.correct) FROM samples s WHERE s.run_id = {m}.run_id
               AND s.task_index = {m}.task_index AND s.strategy = 'graph' AND s.text = {m}.text)"
        )
    };
    let branch = |pos: i64, m: &str| {
        format!(
            "(SELECT {} FROM messages b WHERE b.run_id = {m}.run_id AND b.task_index = {m}.task_index
               AND b.attempt = {m}.attempt AND b.position = {pos})",
            correct("b")
        )
    };
    let count = |sql: &str| query::<i64>(&db, sql);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM messages j WHERE j.position = 2
               AND ({} OR {}) AND NOT {}",
            branch(0, "j"),
            branch(1, "j"),
            correct("j")
        )),
        0
    );
    assert!(
        count(&format!(
            "SELECT count(*) FROM messages j WHERE j.position = 2 AND NOT {} AND {} AND {}",
            branch(0, "j"),
            branch(1, "j"),
            correct("j")
        )) > 0
    );
    // Each branch's verdict is a graph event of the join.
    assert_eq!(
        count(
            "SELECT count(*) FROM graph_events WHERE kind = 'verified' AND node = 'pick'
               AND detail IN ('check on [0]: score 0', 'check on [0]: score 1', 'check on [1]: score 0', 'check on [1]: score 1')"
        ),
        30 * 4 * 2
    );
    // So the checked runs are right exactly when a branch is: 1 - 0.5^2 at
    // n = 1; and ranked by the same command, four runs are right when any is.
    let single = num(result(&v, "checked", 1), "accuracy");
    assert!((single - 0.75).abs() < 0.2, "{single}");
    assert!(num(result(&v, "checked", 4), "accuracy") > single);

    // One judge call per graph run, traced as the verifier's about the
    // graph, its prompt holding the run's final message.
    assert_eq!(
        count("SELECT count(*) FROM calls WHERE role = 'verifier' AND subject = 'graph'"),
        30 * 4
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM calls c JOIN blobs p ON p.hash = c.prompt_hash
               JOIN messages m ON m.task_index = c.task_index AND m.attempt = c.first_sample
                 AND m.position = 2
             WHERE c.role = 'verifier' AND instr(p.text, m.text) > 0"
        ),
        30 * 4
    );
    let judged = result(&v, "best_of_n", 4);
    assert!(num(judged, "mean_verifier_tokens") > 0.0, "{judged}");

    // Judging at the join too: each branch is judged, with the prompt of
    // the agent that wrote it, and the pick is not asked about again as the
    // run's answer.
    let joined = s.write(
        "joined.yaml",
        &text.replace(
            "pick: {join: verifier, verifier: check}",
            "pick: {join: verifier, verifier: judge}",
        ),
    );
    let jdb = s.path("joined.db");
    Crucible::new(&["run"]).arg(&joined).db(&jdb).ok();
    let (asked, keys, shown): (i64, i64, i64) = rusqlite::Connection::open(&jdb)
        .unwrap()
        .query_row(
            "SELECT count(*), count(DISTINCT cache_key),
                    sum(instr(p.text, 'Solve: Synthetic question') > 0)
             FROM calls c JOIN blobs p ON p.hash = c.prompt_hash WHERE c.role = 'verifier'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((asked, keys, shown), (30 * 4 * 2, 30 * 4 * 2, 30 * 4));

    // A stopped run resumes to the same results; without the judge's
    // server, its verdicts replay from the trace.
    let stopped = s.path("stopped.db");
    let out = Crucible::new(&["run", "--max-requests", "200"])
        .arg(&file)
        .db(&stopped)
        .output();
    assert_eq!(out.status.code(), Some(1));
    let resumed = Crucible::new(&["resume", "1", "--json"]).db(&stopped).ok();
    assert_eq!(
        results_without_ids(&resumed),
        results_without_ids(&recorded)
    );
    drop(server);
    replay_strictly(&db, &recorded);
}

#[test]
fn progress_counts_graph_runs_as_the_samples_planned() {
    // A graph run is one sample of the plan however many turns it takes;
    // plain pools count their samples.
    use std::sync::atomic::Ordering;
    let s = Scratch::new();
    for name in ["plan-code-review.yaml", "quickstart.yaml"] {
        let file = root().join("scenarios").join(name);
        let runner = crucible::engine::runner::Runner::new(crucible::engine::runner::RunOptions {
            db: s.path(&format!("{name}.db")),
            concurrency: 4,
            handle_ctrl_c: false,
            cache: false,
            budget: Default::default(),
            overrides: Vec::new(),
        });
        let mut planned = 0;
        runner
            .run(&file, |sc, _| planned = sc.planned_samples())
            .unwrap();
        assert!(planned > 0);
        assert_eq!(
            runner.progress.samples.load(Ordering::Relaxed),
            planned,
            "{name}"
        );
    }
}

#[test]
fn chats_led_by_an_agent_whose_definition_failed_report_it() {
    // The manager (or the llm speaker router's agent) is declared but its
    // definition failed: that is the one diagnostic, not a panic.
    let s = Scratch::new();
    for (name, speakers) in [
        ("m.yaml", "speakers: manager\n        manager: reviewer"),
        (
            "r.yaml",
            "speakers: router\n        router: {by: llm, agent: reviewer, options: [planner, coder]}",
        ),
    ] {
        let text = chat_scenario(speakers, "{max_messages: 4}").replacen(
            "reviewer: {model: sim",
            "reviewer: {model: nosuch",
            1,
        );
        let out = Crucible::new(&["validate"])
            .arg(s.write(name, &text))
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("error: agent `reviewer` uses undefined model `nosuch`")
                && stderr.contains("1 error(s)"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn commands_run_where_the_scenario_is_from_any_directory() {
    // A relative scenario path with a relative program, then a resume from
    // another directory: every sample is scored by the script beside the
    // scenario.
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let script = s.write("proj/check.sh", "#!/bin/sh\ncat > /dev/null\necho 1\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write(
        "proj/s.yaml",
        &simulated_scenario(
            "scripted",
            5,
            "{p_correct: 0.6, delta: 0.3, wrong_answers: 2}",
            40,
            "verifiers:\n  script: {kind: programmatic, check: command, command: [./check.sh]}\n\
             strategies:\n  - {kind: best_of_n, agent: solver, verifier: script, n: 4}\n",
        ),
    );
    let db = s.path("r.db");
    let mut first = Crucible::new(&["run", "proj/s.yaml", "--max-requests", "20"]).db(&db);
    first.cmd.current_dir(s.dir.path());
    assert_eq!(first.output().status.code(), Some(1));
    std::fs::create_dir_all(s.path("elsewhere")).unwrap();
    let mut resumed = Crucible::new(&["run", "../proj/s.yaml", "--resume", "1"]).db(&db);
    resumed.cmd.current_dir(s.path("elsewhere"));
    resumed.ok();
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM scores"), 40 * 4);
    let unscored: Vec<String> =
        table_rows(&db, "SELECT detail FROM scores WHERE score IS NULL LIMIT 3");
    assert!(unscored.is_empty(), "{unscored:?}");
}

#[test]
fn simulated_verifiers_err_independently_on_the_branches_of_a_run() {
    // An oracle that errs 30% of the time either way, at a join of two
    // branches: on two branches alike in correctness, its verdicts differ
    // about 2 · 0.3 · 0.7 = 42% of the time (never, were one draw shared).
    let s = Scratch::new();
    let text = DEBATE.split("verifiers:\n").next().unwrap().to_owned()
        + "verifiers:\n  shaky: {kind: oracle, false_positive_rate: 0.3, false_negative_rate: 0.3}\n\
           strategies:\n  - {kind: self_consistency, agent: graph, n: 4}\n\
           graph:\n  nodes:\n    left: {agent: pro}\n    right: {agent: con}\n    \
           pick: {join: verifier, verifier: shaky}\n  edges:\n    - {from: START, to: left}\n    \
           - {from: START, to: right}\n    - {from: left, to: pick}\n    - {from: right, to: pick}\n    \
           - {from: pick, to: END}\n";
    let (db, _) = run_json(&s, &text);
    let verdict = |pos: i64| {
        format!(
            "(SELECT e.detail LIKE '%accepted' FROM graph_events e WHERE e.run_id = m.run_id
               AND e.task_index = m.task_index AND e.attempt = m.attempt AND e.kind = 'verified'
               AND e.detail LIKE 'shaky on [{pos}]%')"
        )
    };
    let correct = |pos: i64| {
        format!(
            "(SELECT max(s.correct) FROM samples s JOIN messages b ON b.run_id = s.run_id
               AND b.task_index = s.task_index AND s.text = b.text
             WHERE s.strategy = 'graph' AND b.run_id = m.run_id AND b.task_index = m.task_index
               AND b.attempt = m.attempt AND b.position = {pos})"
        )
    };
    let (alike, differing): (i64, i64) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            &format!(
                "SELECT count(*), sum({} <> {}) FROM graph_runs m WHERE {} = {}",
                verdict(0),
                verdict(1),
                correct(0),
                correct(1)
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let share = differing as f64 / alike as f64;
    assert!(
        alike > 50 && (share - 0.42).abs() < 0.15,
        "{differing} of {alike}"
    );
}
