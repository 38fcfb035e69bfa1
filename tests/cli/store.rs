use std::path::Path;
use std::process::Command;

use crate::util::{
    BASE, Crucible, Scratch, http_client_scenario, query, replay_strictly, results_without_ids,
    root, run_shipped, sample_content, served, served_client, spawn_run_until_samples, table_rows,
};

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
    let (client, server) = served_client(
        &s,
        "    n_per_request: 4\n    max_retries: 0\n    timeout: 2",
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

#[test]
fn a_response_served_from_the_cache_costs_nothing_and_is_traced_as_cached() {
    let s = Scratch::new();
    let (client, server) = served_client(
        &s,
        "    n_per_request: 4\n    max_retries: 0\n    max_tokens: 64\n    price: {input: 1, output: 2}",
    );
    let db = s.path("c.db");
    let first = Crucible::new(&["run"]).arg(&client).db(&db).json();
    let calls: i64 = query(&db, "SELECT count(*) FROM calls WHERE run_id = 1");
    assert_eq!(first["spent"]["requests"], calls);
    drop(server);
    // A cap of one request cannot stop a run whose every call is recorded.
    let second = Crucible::new(&["run"])
        .arg(&client)
        .db(&db)
        .args(&[
            "--cache",
            "--max-requests",
            "1",
            "--max-cost-usd",
            "0.000001",
        ])
        .json();
    assert_eq!(second["status"], "completed");
    assert_eq!(second["results"], first["results"]);
    assert_eq!(
        second["spent"],
        serde_json::json!({"requests": 0, "tokens": 0, "cost_usd": 0.0})
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls WHERE run_id = 2 AND cached = 1 AND cost_usd = 0"
        ),
        calls
    );
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM calls WHERE run_id = 1 AND cached = 0"
        ),
        calls
    );
    // A replay makes no calls either.
    let replayed = Crucible::new(&["replay", "1", "--strict"]).db(&db).json();
    assert_eq!(replayed["spent"]["requests"], 0);
    assert_eq!(replayed["results"], first["results"]);
}

#[test]
fn a_resume_whose_pool_size_differs_from_its_stored_samples_says_so() {
    let s = Scratch::new();
    let db = s.path("p.db");
    let out = Crucible::new(&["run"])
        .arg(s.write("s.yaml", BASE))
        .db(&db)
        .args(&["--max-requests", "1", "--json"])
        .output();
    assert_eq!(out.status.code(), Some(1));
    // The stored scenario now draws pools of 4 where the run holds 2.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE runs SET scenario_text = replace(scenario_text, 'n: 2', 'n: 4')",
            [],
        )
        .unwrap();
    let out = Crucible::new(&["resume", "1"]).db(&db).output();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        // Of whichever task the one request went to.
        stderr.contains("run 1 already holds sample 0 of agent \"solver\" on task ")
            && stderr.contains("start a new run"),
        "{stderr}"
    );
    assert!(!stderr.contains("UNIQUE"), "{stderr}");
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
