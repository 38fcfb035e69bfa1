use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::util::{
    Crucible, Scratch, SimServer, http_client_scenario, llama_scenario, query, result,
    small_sim_scenario, table_rows,
};

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn distinct_errored_tasks(db: &Path) -> i64 {
    query(
        db,
        "SELECT count(DISTINCT task_index) FROM samples WHERE error IS NOT NULL",
    )
}

#[test]
fn a_model_nobody_serves_fails_the_run_at_once_saying_what_to_do() {
    let port = dead_port();
    let s = Scratch::new();
    let file = llama_scenario(&s);
    let db = s.path("dead.db");
    // Even a run that tolerates every error stops: nothing listens there.
    let out = Crucible::new(&["run"])
        .arg(&file)
        .env("CRUCIBLE_LLAMA_URL", format!("http://127.0.0.1:{port}"))
        .db(&db)
        .args(&["--json", "--concurrency", "4", "--fail-on-error", "false"])
        .output();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    assert!(
        stderr.contains(&format!("model \"smollm\": cannot connect to {url}"))
            && stderr.contains("is the server running?")
            && stderr.contains("--set models.smollm.base_url=URL"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    // Fast: only the calls already in flight went out, each with its retries.
    let calls: i64 = query(&db, "SELECT count(*) FROM calls");
    assert!((1..=4).contains(&calls), "{calls} calls");
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM calls WHERE status = 'error'"),
        calls
    );
    assert_eq!(
        query::<i64>(&db, "SELECT count(*) FROM attempts WHERE status IS NULL"),
        calls * 4,
        "max_retries: 3 is 4 attempts a call, none of them answered"
    );
    // Every sample is an error: not an abstention, not wrong, never scored.
    let samples: i64 = query(&db, "SELECT count(*) FROM samples");
    assert!(samples > 0);
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples WHERE error LIKE 'model \"smollm\": cannot connect%'
                AND abstained = 0 AND correct IS NULL AND normalized IS NULL"
        ),
        samples
    );
    assert_eq!(query::<i64>(&db, "SELECT count(*) FROM scores"), 0);
    assert_eq!(v["errors"], samples);
    let errored = distinct_errored_tasks(&db);
    for row in v["results"].as_array().unwrap() {
        assert_eq!(row["tasks"], 0, "{row}");
        assert_eq!(row["errors"], errored, "{row}");
        assert_eq!(row["accuracy"], serde_json::Value::Null, "{row}");
    }
    // The value the run read its server's address from is stored with it.
    let stored: String = query(&db, "SELECT scenario_text FROM runs");
    assert!(
        stored.ends_with(&format!(
            "# crucible: --env CRUCIBLE_LLAMA_URL=http://127.0.0.1:{port}\n"
        )),
        "{stored}"
    );
    // analyze and export show the errors as errors.
    let analysis = Crucible::new(&["analyze", "1"]).db(&db).json();
    assert_eq!(analysis["agents"][0]["errors"], errored);
    assert_eq!(analysis["agents"][0]["tasks"], 0);
    let table = Crucible::new(&["analyze", "1"]).db(&db).ok();
    assert!(
        table.contains(&format!(
            "{errored} tasks left out: a call of their pool failed (errors; `crucible resume 1` retries them)"
        )),
        "{table}"
    );
    let export = Crucible::new(&["export", "1"]).db(&db).ok();
    let rows: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as i64, samples);
    assert!(rows.iter().all(|r| r["error"].is_string()
        && r["correct"].is_null()
        && r["abstained"] == false
        && r["scores"] == serde_json::json!({})));
}

/// Per (strategy, n): the mean of `db`'s per-task accuracies over `tasks`.
fn mean_accuracy(db: &Path, tasks: &BTreeSet<i64>) -> BTreeMap<(String, i64), f64> {
    let mut sums: BTreeMap<(String, i64), (f64, usize)> = BTreeMap::new();
    for row in table_rows(
        db,
        "SELECT strategy, n, task_index, accuracy FROM task_results",
    ) {
        let f: Vec<&str> = row.split('|').collect();
        if tasks.contains(&f[2].parse().unwrap()) {
            let e = sums
                .entry((f[0].into(), f[1].parse().unwrap()))
                .or_default();
            e.0 += f[3].parse::<f64>().unwrap();
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (sum, count))| (k, sum / count as f64))
        .collect()
}

#[test]
fn errors_are_left_out_tolerated_as_told_and_retried_by_resume() {
    let s = Scratch::new();
    let sim = small_sim_scenario();
    let server_file = s.write("server.yaml", &sim);
    let client = s.write(
        "client.yaml",
        &http_client_scenario(
            &sim,
            "${SIM_URL}",
            "    n_per_request: 2\n    max_retries: 0",
        ),
    );
    let run = |server: &SimServer, db: &Path, extra: &[&str]| {
        Crucible::new(&["run"])
            .arg(&client)
            .env("SIM_URL", &server.url)
            .db(db)
            .arg("--json")
            .args(extra)
            .output()
    };
    // The run without faults: errors may only leave tasks out of it.
    let clean_db = s.path("clean.db");
    let out = run(&SimServer::start(&server_file, &[]), &clean_db, &[]);
    assert_eq!(out.status.code(), Some(0));
    let clean: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // One request in five fails, and the client does not retry: errors.
    let server = SimServer::start(&server_file, &["--fail-500", "0.2", "--fault-seed", "3"]);

    // By default the first error fails the run.
    let strict = s.path("strict.db");
    let out = run(&server, &strict, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "a failed call fails the run; `fail_on_error` or --fail-on-error tolerates some"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("500"), "{stderr}");

    // A fraction tolerates that share of the 240 planned samples: 12.
    let fraction = s.path("fraction.db");
    let out = run(&server, &fraction, &["--fail-on-error", "0.05"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("samples failed, more than 12 of the 240 planned samples (fail_on_error: 0.05) tolerates; the first: model \"sim\":"),
        "{stderr}"
    );

    // Tolerated, errors are counted and their tasks left out of every row,
    // whose accuracy is that of the other tasks, exactly.
    let tolerant = s.path("tolerant.db");
    let out = run(&server, &tolerant, &["--fail-on-error", "false"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed");
    let errors: i64 = query(
        &tolerant,
        "SELECT count(*) FROM samples WHERE error IS NOT NULL",
    );
    let errored = distinct_errored_tasks(&tolerant);
    assert!(
        errors >= 10 && errored >= 5,
        "{errors} errors over {errored} tasks"
    );
    assert_eq!(v["errors"], errors);
    assert_eq!(
        query::<i64>(
            &tolerant,
            "SELECT count(*) FROM scores JOIN samples s ON s.id = sample_id WHERE s.error IS NOT NULL"
        ),
        0
    );
    let finished: BTreeSet<i64> =
        table_rows(&tolerant, "SELECT DISTINCT task_index FROM task_results")
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
    assert_eq!(finished.len() as i64, 30 - errored);
    let expected = mean_accuracy(&clean_db, &finished);
    for ((strategy, n), accuracy) in &expected {
        let row = result(&v, strategy, *n as u64);
        assert_eq!(row["tasks"], finished.len(), "{row}");
        assert_eq!(row["errors"], errored, "{row}");
        let got = row["accuracy"].as_f64().unwrap();
        assert!(
            (got - accuracy).abs() < 1e-12,
            "{strategy} n={n}: {got} vs {accuracy}"
        );
    }
    let table = Crucible::new(&["show", "1"]).db(&tolerant).ok();
    assert!(
        table.contains(&format!("({errors} errors)")) && table.contains("errored tasks"),
        "{table}"
    );

    // Each resume retries the errors left (the server still fails some);
    // the run converges to the one without faults, keeping every failed call.
    let failed_calls: i64 = query(
        &tolerant,
        "SELECT count(*) FROM calls WHERE status = 'error'",
    );
    let mut resumed = v;
    for _ in 0..20 {
        if resumed["errors"] == 0 {
            break;
        }
        resumed = Crucible::new(&["resume", "1", "--fail-on-error", "false"])
            .env("SIM_URL", "http://127.0.0.1:9/elsewhere")
            .db(&tolerant)
            .json();
    }
    assert_eq!(resumed["errors"], 0, "{resumed}");
    assert_eq!(resumed["status"], "completed");
    assert_eq!(resumed["results"], clean["results"]);
    assert!(
        query::<i64>(
            &tolerant,
            "SELECT count(*) FROM calls WHERE status = 'error'"
        ) >= failed_calls
    );
    // With no error left, a completed run has nothing to resume.
    let again = Crucible::new(&["resume", "1"]).db(&tolerant).output();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already completed"));
}
