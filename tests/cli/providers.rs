use std::path::{Path, PathBuf};

use crate::util::{
    BASE, Crucible, JUDGE_SERVER, Scratch, SimServer, http_client_scenario, llama_scenario,
    llama_url, num, query, replay_strictly, result, results_without_ids, sample_content, served,
    small_sim_scenario, spawn_run_until_samples, table_rows,
};

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

#[test]
fn llama_cpp_end_to_end_with_split_requests() {
    let url = llama_url();
    let s = Scratch::new();
    let db = s.path("llama.db");
    // The shipped scenario finds the server the way the README says: through
    // the variable `scripts/llama-server.sh env` exports.
    let v = Crucible::new(&["run"])
        .arg(llama_scenario(&s))
        .env("CRUCIBLE_LLAMA_URL", &url)
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

/// Self-correction over experts on the real llama.cpp server: two system
/// prompts of SmolLM2 as the experts, taken in turn (round robin). A
/// task's round r goes to expert r mod 2, whose own system prompt leads a
/// request that carries the whole conversation so far, and the stored run
/// reports the policy's regret with μ estimated from its rounds.
#[test]
fn llama_cpp_self_correction_takes_prompts_as_experts() {
    let url = llama_url();
    let s = Scratch::new();
    let text = std::fs::read_to_string(llama_scenario(&s)).unwrap();
    let head = &text[..text.find("strategies:").unwrap()];
    let text = head.replace(
        "agents:\n",
        "agents:\n  stepwise:\n    model: smollm\n    system: Work it out step by step, then end with the number.\n    prompt: \"{{ question }}\"\n",
    ) + "strategies:\n  - {kind: self_correction, name: experts, agent: solver, experts: [stepwise], policy: round_robin, verifier: exact, n: [1, 2, 3]}\n";
    let scenario = s.write("experts.yaml", &text);
    let db = s.path("experts.db");
    let v = Crucible::new(&["run"])
        .arg(&scenario)
        .env("CRUCIBLE_LLAMA_URL", &url)
        .db(&db)
        .args_concurrency(4)
        .json();
    assert_eq!(v["status"], "completed", "{v}");
    let count = |sql: &str| query::<i64>(&db, sql);
    assert!(count("SELECT count(*) FROM samples") >= 20);
    assert!(
        count("SELECT count(*) FROM samples WHERE round = 1") > 0,
        "no task went past its first round"
    );
    // Round r by expert r mod 2, its own system prompt first in the request.
    assert_eq!(
        count(
            "SELECT count(*) FROM samples s JOIN calls c ON c.id = s.call_id
             WHERE s.agent != CASE s.round % 2 WHEN 0 THEN 'solver' ELSE 'stepwise' END
                OR json_extract(c.request, '$.messages[0].content') NOT LIKE
                   CASE s.round % 2 WHEN 0 THEN 'You are a helpful%' ELSE 'Work it out%' END
                OR json_array_length(c.request, '$.messages') != 2 + 2 * s.round"
        ),
        0
    );
    let report = Crucible::new(&["analyze", "1"]).db(&db).json();
    let regret = &report["regret"][0];
    assert_eq!(regret["policy"], "round_robin");
    assert_eq!(regret["truth"], "estimated");
    assert_eq!(regret["rounds"].as_array().unwrap().len(), 3);
}
