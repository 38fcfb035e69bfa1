use crate::util::{
    BASE, Case, Crucible, Scratch, check_cases, num, query, replay_strictly, result,
    results_without_ids, root, simulated_scenario, table_rows,
};

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
        edit: ("strategies:", "sweep: {}\nstrategies:"),
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
    Case {
        name: "fail_on_error neither a flag, a fraction nor a count",
        edit: ("strategies:", "fail_on_error: 2.5\nstrategies:"),
        files: &[],
        at: "s.yaml:17:16",
        message: "`fail_on_error` must be true (the first error fails the run), false",
    },
    Case {
        name: "fail_on_error negative",
        edit: ("strategies:", "fail_on_error: -1\nstrategies:"),
        files: &[],
        at: "s.yaml:17:16",
        message: "found -1",
    },
    Case {
        name: "fail_on_error as a string",
        edit: ("strategies:", "fail_on_error: yes\nstrategies:"),
        files: &[],
        at: "s.yaml:17:16",
        message: "true, false, a fraction below 1 or a whole number of errors",
    },
    Case {
        name: "unset environment variable without a default",
        edit: ("name: t", "name: ${CRUCIBLE_TEST_NEVER_SET}"),
        files: &[],
        at: "s.yaml:1:7",
        message: "environment variable CRUCIBLE_TEST_NEVER_SET is not set; export it, or give a default: ${CRUCIBLE_TEST_NEVER_SET:-VALUE}",
    },
    Case {
        name: "environment variable holding a secret",
        edit: ("name: t", "name: ${CRUCIBLE_TEST_API_KEY:-x}"),
        files: &[],
        at: "s.yaml:1:7",
        message: "would store a secret with the run's scenario; name the variable in the model's `api_key_env` instead",
    },
    Case {
        name: "correlation rho outside [0, 1]",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    correlation: {rho: 1.5}",
        ),
        files: &[],
        at: "s.yaml:7:24",
        message: "`correlation.rho` must be a probability in [0, 1], found 1.5",
    },
    Case {
        name: "correlation block of one sample",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    correlation: {rho: 0.5, block: 1}",
        ),
        files: &[],
        at: "s.yaml:7:36",
        message: "`correlation.block` must be at least 2 samples, found 1",
    },
    Case {
        name: "experts on a voting strategy",
        edit: ("n: [1, 2]", "n: [1, 2]\n    experts: [solver]"),
        files: &[],
        at: "s.yaml:21:15",
        message: "`experts` belongs to `self_correction`, not `self_consistency`",
    },
    Case {
        name: "undefined expert",
        edit: (
            "  - kind: best_of_n\n    agent: solver\n    verifier: oracle\n    n: 2",
            "  - kind: self_correction\n    agent: solver\n    verifier: oracle\n    n: 2\n    experts: [solvr]",
        ),
        files: &[],
        at: "s.yaml:25:15",
        message: "undefined agent `solvr` in `experts` (defined: solver); did you mean `solver`?",
    },
    Case {
        name: "the agent named again as an expert",
        edit: (
            "  - kind: best_of_n\n    agent: solver\n    verifier: oracle\n    n: 2",
            "  - kind: self_correction\n    agent: solver\n    verifier: oracle\n    n: 2\n    experts: [solver]",
        ),
        files: &[],
        at: "s.yaml:25:15",
        message: "`solver` is already an expert",
    },
    Case {
        name: "a policy with no experts",
        edit: (
            "  - kind: best_of_n\n    agent: solver\n    verifier: oracle\n    n: 2",
            "  - kind: self_correction\n    agent: solver\n    verifier: oracle\n    n: 2\n    policy: hedge",
        ),
        files: &[],
        at: "s.yaml:25:13",
        message: "`policy` chooses among `experts`",
    },
];

#[test]
fn malformed_scenarios_point_at_the_problem_and_write_nothing() {
    check_cases(BASE, CASES);
    assert!(CASES.len() >= 20);
}

/// BASE's simulated model given an `explainer` or `predictor` section
/// (line 7) with a bad value.
const FAITHFULNESS_ROLE_CASES: &[Case] = &[
    Case {
        name: "explainer faithfulness above one",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    explainer: {weights: {age: 1}, faithfulness: 1.5}",
        ),
        files: &[],
        at: "s.yaml:7:50",
        message: "`faithfulness` must be a probability in [0, 1], found 1.5",
    },
    Case {
        name: "explainer without weights",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    explainer: {weights: {}}",
        ),
        files: &[],
        at: "s.yaml:7:26",
        message: "`weights` needs at least one feature and its weight",
    },
    Case {
        name: "explainer with an infinite weight",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    explainer: {weights: {age: .inf, sex: 1}}",
        ),
        files: &[],
        at: "s.yaml:7:32",
        message: "non-finite float `.inf` rejected",
    },
    Case {
        name: "predictor guessing no feature",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    predictor: {guess: 0}",
        ),
        files: &[],
        at: "s.yaml:7:24",
        message: "`guess` must be at least 1 feature, found 0",
    },
    Case {
        name: "predictor rates adding up to more than one",
        edit: (
            "wrong_answers: 2}",
            "wrong_answers: 2}\n    predictor: {hedge: 0.6, malformed: 0.6}",
        ),
        files: &[],
        at: "s.yaml:7:24",
        message: "`hedge` and `malformed` add up to 1.2, more than 1",
    },
    Case {
        name: "explainer-only model with a bad rate",
        edit: (
            "    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}",
            "    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}\n  \
             explained:\n    provider: simulated\n    explainer: {weights: {age: 1}, malformed: -0.5}",
        ),
        files: &[],
        at: "s.yaml:9:47",
        message: "`malformed` must be a probability in [0, 1], found -0.5",
    },
];

#[test]
fn malformed_explainers_and_predictors_point_at_the_problem() {
    check_cases(BASE, FAITHFULNESS_ROLE_CASES);
}

/// A simulated model that only explains or predicts needs no
/// `distribution`, like a judge-only one.
#[test]
fn explainer_and_predictor_models_need_no_distribution() {
    let s = Scratch::new();
    let text = BASE.replace(
        "agents:",
        "  explained:\n    provider: simulated\n    explainer: {weights: {age: 1, chol: -0.5}, threshold: 2, faithfulness: 0.7}\n  \
         predicting:\n    provider: simulated\n    predictor: {guess: 3, hedge: 0.1, malformed: 0.05}\nagents:",
    );
    Crucible::new(&["validate"])
        .arg(s.write("s.yaml", &text))
        .ok();
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
