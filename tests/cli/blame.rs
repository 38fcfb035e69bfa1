use std::collections::HashMap;
use std::path::Path;

use crate::util::*;

/// A blame's attributions with the replay run they came from left out,
/// to compare two blames made in different replay runs.
fn without_replay_run(v: &serde_json::Value) -> serde_json::Value {
    let mut rows = v["attributions"].clone();
    for r in rows.as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("replay_run");
    }
    rows
}

/// The shipped blame scenario with `count` tasks blamed by repairing its
/// injected failures: the database, and one attribution that names a
/// message.
pub fn repaired_blame(s: &Scratch, count: usize) -> (std::path::PathBuf, serde_json::Value) {
    let db = blame_run(s, count);
    let v = Crucible::new(&["blame", "1", "--intervention", "repair"])
        .db(&db)
        .json();
    let a = v["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| !a["turn"].is_null())
        .expect("a failure found by replay")
        .clone();
    (db, a)
}

/// Run the shipped blame scenario with `count` tasks; its database.
fn blame_run(s: &Scratch, count: usize) -> std::path::PathBuf {
    let db = s.path("blame.db");
    Crucible::new(&["run"])
        .arg(root().join("scenarios/blame-sim.yaml"))
        .args(&["--set", &format!("dataset.synthetic.count={count}")])
        .db(&db)
        .json();
    db
}

/// Each graph run's injected failures: (task, attempt) → [(agent, position)].
fn injected(db: &Path) -> HashMap<(u64, u64), Vec<(String, u64)>> {
    let mut out: HashMap<(u64, u64), Vec<(String, u64)>> = HashMap::new();
    for row in table_rows(
        db,
        "SELECT task_index, attempt, agent, position FROM injected_failures WHERE run_id = 1 ORDER BY position",
    ) {
        let f: Vec<&str> = row.split('|').collect();
        out.entry((f[0].parse().unwrap(), f[1].parse().unwrap()))
            .or_default()
            .push((f[2].to_owned(), f[3].parse().unwrap()));
    }
    out
}

fn trace_of(a: &serde_json::Value) -> (u64, u64) {
    (
        a["task_index"].as_u64().unwrap(),
        a["attempt"].as_u64().unwrap(),
    )
}

/// The origin run's samples, as one string to compare before and after.
fn origin_samples(db: &Path) -> String {
    query(
        db,
        "SELECT count(*) || ':' || sum(length(text)) || ':' || max(id) FROM samples WHERE run_id = 1",
    )
}

/// Repairing a simulated agent's failure: a graph run with one injected
/// failure is blamed on exactly that agent and message whenever repairing
/// it saves the run, and a failed run with nothing injected is blamed on
/// no one.
#[test]
fn counterfactual_repair_finds_the_injected_failure_and_blames_no_one_without_one() {
    let s = Scratch::new();
    let db = blame_run(&s, 100);
    let v = Crucible::new(&["blame", "1", "--intervention", "repair"])
        .db(&db)
        .json();
    let injected = injected(&db);
    let rows = v["attributions"].as_array().unwrap();
    // One graph run per task: its pool is one byte, 0 when it failed.
    let failed: i64 = query(
        &db,
        "SELECT sum(hex(correct) = '00') FROM pools WHERE run_id = 1 AND agent = 'graph'",
    );
    assert!(failed > 20, "{failed}");
    assert_eq!(rows.len() as i64, failed, "one row per failed graph run");
    let (mut single, mut found) = (0, 0);
    for a in rows {
        match injected.get(&trace_of(a)).map(Vec::as_slice) {
            None | Some([]) => {
                assert!(a["agent"].is_null() && a["turn"].is_null(), "{a}");
                assert!(a["truth"].is_null(), "{a}");
            }
            Some([(agent, position)]) => {
                single += 1;
                assert_eq!(a["truth"]["agent"], agent.as_str());
                assert_eq!(a["truth"]["turn"], *position);
                // Only the injected turn can be repaired: never another.
                if !a["agent"].is_null() {
                    assert_eq!(a["agent"], agent.as_str(), "{a}");
                    assert_eq!(a["turn"], *position, "{a}");
                    assert_eq!(a["score"], 1.0, "{a}");
                    found += 1;
                }
            }
            Some(_) => {}
        }
    }
    // A reset is decisive unless the confused model happens to be right
    // (5%): the injection makes about 95% findable.
    assert!(single >= 15, "only {single} graph runs with one failure");
    assert!(
        found as f64 >= 0.85 * single as f64,
        "found {found} of {single}"
    );
    // The evaluation is the exact-match share, recomputed here.
    let with_truth: Vec<&serde_json::Value> =
        rows.iter().filter(|a| !a["truth"].is_null()).collect();
    let agents = with_truth
        .iter()
        .filter(|a| a["agent"] == a["truth"]["agent"])
        .count();
    let steps = with_truth
        .iter()
        .filter(|a| a["turn"] == a["truth"]["turn"])
        .count();
    let e = &v["evaluation"][0];
    assert_eq!(e["method"], "counterfactual");
    assert_eq!(e["traces"], with_truth.len());
    assert!((num(e, "agent_accuracy") - agents as f64 / with_truth.len() as f64).abs() < 1e-12);
    assert!((num(e, "step_accuracy") - steps as f64 / with_truth.len() as f64).abs() < 1e-12);
    let ci = e["step_ci"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= num(e, "step_accuracy"));
    assert!(num(e, "step_accuracy") <= ci[1].as_f64().unwrap());
}

/// Re-sampling turns: credit over all four agents with standard errors,
/// Shapley's efficiency against the stored replays, the injected culprit
/// found on most runs; then a fresh strict replay, from recordings alone,
/// gives the same attributions, and the original run is never touched.
#[test]
fn counterfactual_resample_is_efficient_and_reproduced_by_a_strict_replay() {
    let s = Scratch::new();
    let db = blame_run(&s, 40);
    let before = origin_samples(&db);
    let args = ["blame", "1", "--replays", "4", "--samples", "6"];
    let v = Crucible::new(&args).db(&db).json();
    let replay_run = v["replay_run"].as_i64().unwrap();
    let (kind, origin): (String, i64) = (
        query(
            &db,
            &format!("SELECT kind FROM runs WHERE id = {replay_run}"),
        ),
        query(
            &db,
            &format!("SELECT origin_run FROM runs WHERE id = {replay_run}"),
        ),
    );
    assert_eq!((kind.as_str(), origin), ("replay", 1));
    let rows = v["attributions"].as_array().unwrap();
    assert!(!rows.is_empty());
    let (mut single, mut agents_found) = (0, 0);
    for a in rows {
        let credits = a["credits"].as_array().unwrap();
        let agent_credit: Vec<&serde_json::Value> =
            credits.iter().filter(|c| c["level"] == "agent").collect();
        assert_eq!(agent_credit.len(), 4, "every agent speaks: {a}");
        // Four agents, 4 replays: every coalition replayed (16 ≤ 2·6·5), so
        // the credits add up to the grand coalition's mean worth.
        let all = "[0,1,2,3]";
        let grand: f64 = query(
            &db,
            &format!(
                "SELECT avg(correct) FROM counterfactuals WHERE run_id = {replay_run}
                 AND task_index = {} AND origin_attempt = {} AND level = 'agent' AND coalition = '{all}'",
                a["task_index"], a["attempt"]
            ),
        );
        let total: f64 = agent_credit.iter().map(|c| num(c, "value")).sum();
        assert!((total - grand).abs() < 1e-9, "{total} vs {grand}: {a}");
        assert!(agent_credit.iter().all(|c| c["stderr"].is_number()), "{a}");
        if let Some([(agent, _)]) = injected(&db).get(&trace_of(a)).map(Vec::as_slice) {
            single += 1;
            agents_found += usize::from(a["agent"] == agent.as_str());
        }
    }
    assert!(single >= 5, "{single}");
    assert!(
        agents_found as f64 >= 0.7 * single as f64,
        "{agents_found} of {single}"
    );
    // The same plan again: nothing new to replay, the same answer.
    let again = Crucible::new(&args).db(&db).json();
    assert_eq!(again["replays"]["new"], 0);
    assert_eq!(again["attributions"], v["attributions"]);
    // A new replay run that may call no model: served from the recordings.
    let strict = Crucible::new(&args)
        .args(&["--fresh", "--strict"])
        .db(&db)
        .json();
    assert_ne!(strict["replay_run"], v["replay_run"]);
    assert_eq!(strict["replays"]["new"], v["replays"]["total"]);
    let calls: i64 = query(
        &db,
        &format!(
            "SELECT count(*) FROM calls WHERE run_id = {} AND cached = 0",
            strict["replay_run"]
        ),
    );
    assert_eq!(calls, 0, "a strict replay makes no live call");
    assert_eq!(without_replay_run(&strict), without_replay_run(&v));
    assert_eq!(origin_samples(&db), before, "the original run is untouched");
}

/// A blame cut short by `--max-replays` says so, and the same command
/// finishes it with the attributions a blame made in one go gives.
#[test]
fn an_interrupted_blame_resumes_to_the_same_attributions() {
    let s = Scratch::new();
    let db = blame_run(&s, 30);
    let args = ["blame", "1", "--replays", "2", "--samples", "4"];
    let cut = Crucible::new(&args)
        .args(&["--max-replays", "25", "--json"])
        .db(&db)
        .output();
    assert_eq!(cut.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let partial: serde_json::Value = serde_json::from_slice(&cut.stdout).unwrap();
    assert_eq!(partial["replays"]["new"], 25);
    let resumed = Crucible::new(&args).db(&db).json();
    assert_eq!(resumed["replay_run"], partial["replay_run"]);
    assert_eq!(resumed["replays"]["incomplete_traces"], 0);
    let whole = Crucible::new(&args).arg("--fresh").db(&db).json();
    assert_eq!(
        resumed["attributions"].as_array().unwrap().len(),
        whole["attributions"].as_array().unwrap().len()
    );
    for (a, b) in resumed["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(whole["attributions"].as_array().unwrap())
    {
        for key in ["agent", "turn", "score", "stderr", "credits"] {
            assert_eq!(a[key], b[key], "{key}: {a} vs {b}");
        }
    }
    let dupes: i64 = query(
        &db,
        &format!(
            "SELECT count(*) - count(DISTINCT task_index || '/' || origin_attempt || level || coalition || '/' || replay)
             FROM counterfactuals WHERE run_id = {}",
            resumed["replay_run"]
        ),
    );
    assert_eq!(dupes, 0, "no replay made twice");
}

/// What blame cannot do, it says, naming the run, task or agent.
#[test]
fn blame_refuses_what_it_cannot_replay() {
    let s = Scratch::new();
    let db = blame_run(&s, 5);
    let out = Crucible::new(&["blame", "1", "--task", "no-such-task"])
        .db(&db)
        .output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no graph run of task \"no-such-task\""),
        "{err}"
    );
    // A run without a graph.
    let (plain, _) = run_json(
        &s,
        &simulated_scenario(
            "plain",
            1,
            "{p_correct: 0.5}",
            3,
            "strategies:\n  - {kind: self_consistency, agent: solver, n: [1]}\n",
        ),
    );
    let out = Crucible::new(&["blame", "1"]).db(&plain).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no agent graph"), "{err}");
    // An imported run cannot be re-executed.
    let w = s.path("w.db");
    Crucible::new(&["import", "who-when"])
        .arg(root().join("tests/data/who-when"))
        .db(&w)
        .json();
    let out = Crucible::new(&["blame", "1"]).db(&w).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is imported"), "{err}");
}

/// A models file with a simulated attribution judge, right with
/// probability 0.6 and unreadable at `malformed`.
fn judge_models(s: &Scratch, malformed: f64) -> std::path::PathBuf {
    s.write(
        "judge.yaml",
        &format!(
            "models:\n  judge:\n    provider: simulated\n    judge: {{attribution: 0.6, malformed: {malformed}}}\n"
        ),
    )
}

/// The three judge methods on the Who&When sample: every reply read or
/// counted unparsed, binary search within ⌈log₂ steps⌉ + 1 questions,
/// each trace named by its file's stem with the file's own blame as truth,
/// and the evaluation the exact-match share.
#[test]
fn judge_methods_on_who_when_read_or_count_every_reply() {
    let s = Scratch::new();
    let db = s.path("w.db");
    let dir = root().join("scenarios/data/who-when");
    Crucible::new(&["import", "who-when"])
        .arg(&dir)
        .db(&db)
        .json();
    let models = judge_models(&s, 0.2);
    let v = Crucible::new(&["blame", "1", "--model", "judge"])
        .args(&["--method", "all-at-once", "--method", "step-by-step"])
        .args(&["--method", "binary-search", "--models-file"])
        .arg(&models)
        .db(&db)
        .json();
    let rows = v["attributions"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * 18, "every trace by every method");
    // Every question is a traced judge call with its reply; the unreadable
    // ones are exactly the simulated judge's malformed replies.
    let calls: i64 = query(
        &db,
        "SELECT count(*) FROM calls c JOIN replies r ON r.call_id = c.id WHERE c.run_id = 1 AND c.agent = 'attribution'",
    );
    assert_eq!(v["judge"]["questions"], calls);
    let malformed: i64 = query(
        &db,
        "SELECT count(*) FROM calls c JOIN replies r ON r.call_id = c.id
         WHERE c.run_id = 1 AND c.agent = 'attribution' AND r.text LIKE 'Looking at this conversation%'",
    );
    assert!(malformed > 0);
    assert_eq!(v["judge"]["unparsed"], malformed);
    assert_eq!(v["judge"]["errors"], 0);
    // Binary search's questions per trace: samples (attempt·3 + 2)·2²⁰ + k.
    for row in table_rows(
        &db,
        "SELECT c.task_index, count(*), (SELECT count(*) FROM messages m WHERE m.run_id = 1 AND m.task_index = c.task_index)
         FROM calls c WHERE c.run_id = 1 AND c.agent = 'attribution' AND c.first_sample / 1048576 = 2
         GROUP BY c.task_index",
    ) {
        let f: Vec<u64> = row.split('|').map(|x| x.parse().unwrap()).collect();
        let bound = (f[2] as f64).log2().ceil() as u64 + 1;
        assert!(f[1] <= bound, "task {}: {} questions for {} steps", f[0], f[1], f[2]);
    }
    for file in std::fs::read_dir(dir.join("Hand-Crafted"))
        .unwrap()
        .chain(std::fs::read_dir(dir.join("Algorithm-Generated")).unwrap())
    {
        let path = file.unwrap().path();
        let source: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let step: u64 = source["mistake_step"].as_str().unwrap().parse().unwrap();
        let mine: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| r["source_id"] == stem && r["truth"]["turn"] == step)
            .filter(|r| r["truth"]["agent"] == source["mistake_agent"])
            .collect();
        assert!(!mine.is_empty(), "{path:?}");
    }
    for e in v["evaluation"].as_array().unwrap() {
        let method = e["method"].as_str().unwrap();
        let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["method"] == method).collect();
        let steps = mine
            .iter()
            .filter(|r| r["turn"] == r["truth"]["turn"])
            .count();
        assert_eq!(e["traces"], 18);
        assert!(
            (num(e, "step_accuracy") - steps as f64 / 18.0).abs() < 1e-12,
            "{e}"
        );
    }
}

/// The shipped scenario's point: on simulated runs whose failures are
/// known, counterfactual replay finds the culprit's step more often than
/// any of the judge baselines.
#[test]
fn counterfactual_replay_beats_the_judge_baselines_at_step_level() {
    let s = Scratch::new();
    let db = blame_run(&s, 100);
    Crucible::new(&["blame", "1", "--intervention", "repair"])
        .db(&db)
        .json();
    Crucible::new(&["blame", "1", "--model", "judge"])
        .args(&["--method", "all-at-once", "--method", "step-by-step"])
        .args(&["--method", "binary-search"])
        .db(&db)
        .json();
    let v = Crucible::new(&["blame", "1", "--evaluate"]).db(&db).json();
    let step = |m: &str| {
        let e = v["evaluation"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["method"] == m)
            .unwrap_or_else(|| panic!("{m}: {v}"));
        (num(e, "step_accuracy"), e["step_ci"][0].as_f64().unwrap())
    };
    let (replay, replay_low) = step("counterfactual");
    for m in ["all-at-once", "step-by-step", "binary-search"] {
        let (judge, _) = step(m);
        assert!(
            replay_low > judge,
            "{m}: {judge} vs counterfactual {replay} (lower bound {replay_low})"
        );
    }
}

/// SmolLM2 (llama.cpp) agents, one hinting and one answering, fail some
/// arithmetic; SmolLM2 is asked all at once who failed, and counterfactual
/// replay re-samples the agents' turns (which draws new text). With the
/// server out of reach, a strict fresh replay and the judge asked again
/// give the same attributions.
#[test]
fn llama_cpp_blame_by_judge_and_replay_reproduced_with_the_server_gone() {
    let proxy = Proxy::to(&llama_url());
    let s = Scratch::new();
    s.write(
        "data/arithmetic.jsonl",
        &std::fs::read_to_string(root().join("scenarios/data/arithmetic.jsonl")).unwrap(),
    );
    let scenario = format!(
        r#"name: llama-blame
seed: 5
models:
  llm:
    provider: openai
    base_url: {url}/v1
    model: smollm2-135m-instruct
    temperature: 0.9
    seed: 7
    max_tokens: 48
    max_retries: 2
    timeout: 120
agents:
  hinter: {{model: llm, system: "Give a hint for the question. Do not solve it.", prompt: "{{{{ question }}}}"}}
  solver: {{model: llm, system: "You are a helpful assistant. Answer with the number only.", prompt: "{{{{ question }}}}"}}
dataset:
  file: data/arithmetic.jsonl
  limit: 8
answer:
  extract: last_number
strategies:
  - {{kind: self_consistency, agent: graph, n: [1]}}
graph:
  nodes:
    hint: {{agent: hinter}}
    answer: {{agent: solver, view: {{last: 1}}}}
  edges:
    - {{from: START, to: hint}}
    - {{from: hint, to: answer}}
    - {{from: answer, to: END}}
"#,
        url = proxy.url
    );
    let file = s.write("llama-blame.yaml", &scenario);
    let db = s.path("l.db");
    Crucible::new(&["run"]).arg(&file).db(&db).json();
    let args = ["blame", "1", "--replays", "2", "--samples", "2"];
    let replayed = Crucible::new(&args).db(&db).json();
    let failed = replayed["attributions"].as_array().unwrap().len();
    assert!(failed > 0, "SmolLM2 gets some of these wrong: {replayed}");
    for a in replayed["attributions"].as_array().unwrap() {
        let credits = a["credits"].as_array().unwrap();
        let agents = credits.iter().filter(|c| c["level"] == "agent").count();
        assert_eq!(agents, 2, "{a}");
    }
    // A re-sampled turn is drawn anew: its two replays differ somewhere.
    let differing: i64 = query(
        &db,
        &format!(
            "SELECT count(*) FROM (SELECT c.task_index, c.coalition FROM counterfactuals c
               JOIN messages m ON m.run_id = c.run_id AND m.task_index = c.task_index
                 AND m.attempt = c.attempt AND c.coalition = '[' || m.position || ']'
             WHERE c.run_id = {} AND c.level = 'turn'
             GROUP BY c.task_index, c.coalition HAVING count(DISTINCT m.text) > 1)",
            replayed["replay_run"]
        ),
    );
    assert!(differing > 0, "re-sampling drew the same text every time");
    let judged = Crucible::new(&["blame", "1", "--method", "all-at-once", "--model", "llm"])
        .db(&db)
        .json();
    assert_eq!(judged["attributions"].as_array().unwrap().len(), failed);
    // One question per trace, read or counted unparsed.
    let j = &judged["judge"];
    assert_eq!(j["questions"], failed);
    let read = judged["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["turn"].is_null())
        .count();
    assert_eq!(
        read + j["unparsed"].as_u64().unwrap() as usize,
        failed,
        "{judged}"
    );
    drop(proxy);
    let strict = Crucible::new(&args)
        .args(&["--fresh", "--strict"])
        .db(&db)
        .json();
    let again = Crucible::new(&["blame", "1", "--method", "all-at-once", "--model", "llm"])
        .db(&db)
        .json();
    assert_eq!(without_replay_run(&strict), without_replay_run(&replayed));
    assert_eq!(again["attributions"], judged["attributions"]);
}

/// `crucible validate` checks the attribution prompts like a judge file:
/// a variable the method does not fill in is an error at its line.
#[test]
fn attribution_prompts_validate_with_their_positions() {
    let s = Scratch::new();
    let good = root().join("judges/attribution.yaml");
    let out = Crucible::new(&["validate"]).arg(&good).ok();
    assert!(
        out.contains("ok (attribution prompts `attribution` version 1"),
        "{out}"
    );
    let text = std::fs::read_to_string(&good).unwrap().replace(
        "(steps {{ start }} to {{ mid }})",
        "(steps {{ start }} to {{ mdi }})",
    );
    let bad = s.write("attribution.yaml", &text);
    let out = Crucible::new(&["validate"]).arg(&bad).output();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attribution.yaml:"), "{err}");
    assert!(
        err.contains("`mdi`, which the binary-search prompt does not have")
            && err.contains("did you mean"),
        "{err}"
    );
}

/// `show --transcript` marks each method's blame at the message it names,
/// in text and in JSON.
#[test]
fn show_marks_the_blamed_message() {
    let s = Scratch::new();
    let (db, a) = repaired_blame(&s, 30);
    let task = a["trace"].as_str().unwrap();
    let text = Crucible::new(&["show", "1", "--transcript", task])
        .db(&db)
        .ok();
    let at = text
        .split(&format!("[{}] turn", a["turn"]))
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let block = at.split("\n[").next().unwrap();
    assert!(
        block.contains(&format!(
            "☛ counterfactual blames {}",
            a["agent"].as_str().unwrap()
        )),
        "{block}"
    );
    let json = Crucible::new(&["show", "1", "--transcript", task, "--json"])
        .db(&db)
        .ok();
    let runs: serde_json::Value = serde_json::from_str(&json).unwrap();
    let blamed = &runs[a["attempt"].as_u64().unwrap() as usize]["attributions"][0];
    assert_eq!(blamed["method"], "counterfactual");
    assert_eq!(blamed["turn"], a["turn"]);
    assert_eq!(blamed["agent"], a["agent"]);
}
