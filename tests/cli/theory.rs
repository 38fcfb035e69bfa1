//! `crucible theory`: exact curves against an independent enumeration in
//! Python and against Monte Carlo, a scenario's simulated model as the
//! distribution, and bad distributions refused with exit status 2.

use crate::util::{
    Crucible, Scratch, chart_lines, num, python, replay_strictly, results_without_ids,
};

/// Majority, best-of-n (noisy verifier) and pass@n by summing over every
/// vector of answer counts (multinomial probabilities), in Python.
const ENUMERATE: &str = r#"
import json, sys
from math import factorial, prod
d = json.load(sys.stdin)
p, c, ns = d["p"], d["correct"], d["n"]
fp, fn = d["fp"], d["fn"]
def compositions(n, k):
    if k == 1:
        yield (n,); return
    for i in range(n + 1):
        for rest in compositions(n - i, k - 1):
            yield (i,) + rest
out = {}
for n in ns:
    acc = 0.0
    for counts in compositions(n, len(p)):
        pr = factorial(n) / prod(factorial(x) for x in counts) * prod(q ** x for q, x in zip(p, counts))
        top = max(counts)
        if top > 0 and counts[c] == top:
            acc += pr / sum(1 for x in counts if x == top)
    a, b = p[c] * (1 - fn), (1 - p[c]) * fp
    r = 1 - a - b
    bon = (1 - r ** n) * a / (a + b) + (r ** n) * p[c] * fn / r
    out[str(n)] = {"majority": acc, "best_of_n": bon, "pass_at_n": 1 - (1 - p[c]) ** n}
print(json.dumps(out))
"#;

#[test]
fn exact_curves_equal_an_enumeration_in_python_and_monte_carlo() {
    let p = [0.35, 0.3, 0.2, 0.15];
    let ns = [1, 2, 3, 5, 8, 13, 21, 30];
    let dist = p.map(|x| x.to_string()).join(",");
    let n_list = ns.map(|x| x.to_string()).join(",");
    let report = Crucible::new(&[
        "theory",
        "--dist",
        &dist,
        "--correct",
        "1",
        "--n",
        &n_list,
        "--verifier",
        "fp=0.1,fn=0.2",
        "--mc",
        "4000",
        "--seed",
        "3",
    ])
    .json();
    let input = serde_json::json!({"p": p, "correct": 1, "n": ns, "fp": 0.1, "fn": 0.2});
    let want = python(ENUMERATE, &input.to_string());
    let curves = report["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 3 * ns.len());
    for point in curves {
        let (rule, n) = (
            point["rule"].as_str().unwrap(),
            point["n"].as_u64().unwrap(),
        );
        let exact = point["accuracy"].as_f64().unwrap();
        let python = want[n.to_string()][rule].as_f64().unwrap();
        assert!(
            (exact - python).abs() < 1e-12,
            "{rule} at n {n}: {exact} vs {python}"
        );
        let mc = &point["mc"];
        let (estimate, se) = (mc["accuracy"].as_f64().unwrap(), mc["se"].as_f64().unwrap());
        // An estimate of a share near 1 may have seen no failure (se 0):
        // the binomial error at the exact value bounds a trial's variance.
        let se = se.max((exact * (1.0 - exact) / 4000.0).sqrt());
        assert!(
            (estimate - exact).abs() <= 4.0 * se + 1e-9,
            "{rule} at n {n}: MC {estimate} ± {se} vs {exact}"
        );
    }
    // The correct answer is not the likeliest: majority tends to 0 and
    // this verifier's best-of-n to 0.24/0.31, so neither reaches 0.9; pass@n
    // does, first at the n the Python curve says.
    for f in report["n_for"].as_array().unwrap() {
        let rule = f["rule"].as_str().unwrap();
        let delta = f["delta"].as_f64().unwrap();
        if rule != "pass_at_n" {
            assert!(f["n"].is_null(), "{f}");
            continue;
        }
        let n = f["n"].as_u64().unwrap() as usize;
        let at = |n: usize| {
            let input = serde_json::json!({"p": p, "correct": 1, "n": [n], "fp": 0.1, "fn": 0.2});
            python(ENUMERATE, &input.to_string())[n.to_string()][rule]
                .as_f64()
                .unwrap()
        };
        assert!(
            at(n) >= 1.0 - delta && at(n - 1) < 1.0 - delta,
            "δ {delta}: n {n}"
        );
    }
}

/// A scenario's simulated model is the distribution, on each task (the
/// task's expected answer correct; abstention never votes), averaged.
#[test]
fn a_scenarios_simulated_model_is_its_distribution_averaged_over_the_tasks() {
    let s = Scratch::new();
    let file = s.write(
        "sim.yaml",
        r#"name: t
seed: 1
models:
  m:
    provider: simulated
    distribution: {answers: {"7": 0.5, "3": 0.3, "1": 0.1}}
agents:
  a: {model: m, prompt: "{{ question }}"}
dataset:
  items:
    - {id: q1, question: "3 + 4?", answer: "7"}
    - {id: q2, question: "1 + 2?", answer: "3"}
strategies: [{kind: self_consistency, agent: a, n: 1}]
"#,
    );
    let from_scenario = Crucible::new(&["theory", "--model", "m", "--n", "1,4,16"])
        .arg("--scenario")
        .arg(&file)
        .json();
    assert_eq!(from_scenario["distributions"], 2);
    // Task q1: "7" right (0.5); q2: "3" right (0.3); 0.1 abstains.
    let curves = from_scenario["curves"].as_array().unwrap();
    let first = curves
        .iter()
        .find(|p| p["rule"] == "pass_at_n" && p["n"] == 4)
        .unwrap();
    let want = ((1.0 - 0.5f64.powi(4)) + (1.0 - 0.7f64.powi(4))) / 2.0;
    assert!(
        (first["accuracy"].as_f64().unwrap() - want).abs() < 1e-12,
        "{first}"
    );
    let majority1 = curves
        .iter()
        .find(|p| p["rule"] == "majority" && p["n"] == 1)
        .unwrap();
    assert!(
        (majority1["accuracy"].as_f64().unwrap() - 0.4).abs() < 1e-12,
        "{majority1}"
    );
}

#[test]
fn bad_distributions_are_refused_with_exit_status_2() {
    for (dist, message) in [
        ("0.5,0.4", "sum to 0.9"),
        ("0.5,-0.1,0.6", "non-negative"),
        ("0.5,0.5,0.1", "sum to 1.1"),
    ] {
        let out = Crucible::new(&["theory", "--dist", dist]).output();
        assert_eq!(out.status.code(), Some(2), "{dist}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{dist}: {err}");
    }
    let out = Crucible::new(&["theory", "--dist", "0.5,0.5", "--correct", "2"]).output();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only 2 answers"));
    let out = Crucible::new(&["theory"]).output();
    assert_eq!(out.status.code(), Some(2));
}

/// A perfect verifier's best-of-n observed in a run's pools, recomputed in
/// Python from the stored samples: per family and Δ, the mean over tasks of
/// 1 − C(N − c, k)/C(N, k) (c correct of N), and the first k reaching 0.9.
const OBSERVED_BEST: &str = r#"
import json, sqlite3, sys
from math import comb
d = json.load(sys.stdin)
db = sqlite3.connect(d["db"])
groups = {}
for inputs, correct, total in db.execute(
        "SELECT t.inputs, sum(s.correct), count(*) FROM samples s JOIN tasks t "
        "ON t.run_id = s.run_id AND t.task_index = s.task_index WHERE s.run_id = 1 "
        "GROUP BY s.task_index"):
    i = json.loads(inputs)
    groups.setdefault(i["family"], {}).setdefault(i["delta"], []).append((correct, total))
out = {}
for family, by_delta in groups.items():
    out[family] = {}
    for delta, tasks in by_delta.items():
        n = tasks[0][1]
        first = None
        for k in range(1, n + 1):
            mean = sum(1 - comb(n - c, k) / comb(n, k) for c, _ in tasks) / len(tasks)
            if mean >= 0.9:
                first = k
                break
        out[family][str(delta)] = first
print(json.dumps(out))
"#;

/// The shipped separation scenario: its simulated runs' n*(Δ) give
/// majority's slope on the two-way family and best-of-n's on the spread
/// family with intervals that hold −2 and −1, the exact sweep at the same
/// Δ within 0.1 of them; the observed best-of-n points equal Python's
/// recomputation from the stored samples.
#[test]
fn the_separation_scenario_shows_the_slopes_exact_and_observed() {
    let s = Scratch::new();
    let db = s.path("sep.db");
    let run = Crucible::new(&["run"])
        .arg(crate::util::root().join("scenarios/separation-sim.yaml"))
        .db(&db)
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    let charts = s.path("charts");
    let report = Crucible::new(&["theory", "--sweep", "--run", "1", "--delta", "0.1"])
        .arg("--out")
        .arg(&charts)
        .db(&db)
        .json();
    let find = |key: &str, family: &str, rule: &str| -> serde_json::Value {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["family"] == family && f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {key} fit of {rule} on {family}: {report}"))
            .clone()
    };
    for (family, rule, slope) in [("two_way", "majority", -2.0), ("spread", "best_of_n", -1.0)] {
        let exact = find("fits", family, rule);
        let got = exact["slope"].as_f64().unwrap();
        assert!((got - slope).abs() < 0.1, "exact {rule} on {family}: {got}");
        let observed = find("observed", family, rule);
        let ci = &observed["slope_ci"];
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(
            lo <= slope && slope <= hi,
            "observed {rule} on {family}: [{lo}, {hi}]"
        );
    }
    // The chart: a dot or ring per point that reached the target, and each
    // fit's slope in its legend.
    let svg = std::fs::read_to_string(charts.join("separation.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    let reached: usize = ["fits", "observed"]
        .iter()
        .flat_map(|k| report[*k].as_array().unwrap())
        .flat_map(|f| f["points"].as_array().unwrap())
        .filter(|p| !p["n"].is_null())
        .count();
    assert_eq!(circles, reached);
    let two_way = find("observed", "two_way", "majority")["slope"]
        .as_f64()
        .unwrap();
    assert!(
        svg.contains(&format!(
            "observed: majority on two_way, slope {two_way:.2}"
        )),
        "{svg}"
    );
    let python = python(OBSERVED_BEST, &serde_json::json!({"db": db}).to_string());
    for family in ["two_way", "spread"] {
        for point in find("observed", family, "best_of_n")["points"]
            .as_array()
            .unwrap()
        {
            let delta = point["delta"].as_f64().unwrap();
            let want = python[family]
                .as_object()
                .unwrap()
                .iter()
                .find(|(d, _)| (d.parse::<f64>().unwrap() - delta).abs() < 1e-12)
                .map(|(_, n)| n.clone())
                .unwrap();
            assert_eq!(point["n"], want, "{family} Δ {delta}");
        }
    }
}

/// From the SQLite rows alone: each (agent, task) pool's p̂ of the correct
/// answer, its adjacent agreements, and the plug-in majority accuracy at
/// n = 4 by enumerating every sequence of 4 answers.
const POOL_FITS: &str = r#"
import json, sqlite3, sys
from itertools import product
d = json.load(sys.stdin)
db = sqlite3.connect(d["db"])
pools = {}
for agent, task, answer, correct in db.execute(
        "SELECT agent, task_index, normalized, correct FROM samples "
        "WHERE run_id = 1 AND strategy IS NULL ORDER BY agent, task_index, sample_index"):
    pools.setdefault(agent, {}).setdefault(task, []).append((answer, correct))
out = {}
for agent, tasks in pools.items():
    fits = []
    for task, samples in sorted(tasks.items()):
        n = len(samples)
        answers = sorted({a for a, _ in samples if a is not None})
        right = next((a for a, c in samples if c), None)
        shares = [sum(1 for a, _ in samples if a == x) / n for x in answers]
        abstain = sum(1 for a, _ in samples if a is None) / n
        agree = sum(1 for i in range(n - 1) if samples[i][0] == samples[i + 1][0])
        # Majority of 4 draws from the shares (abstention never votes; a
        # tie with the correct answer counts 1/ties).
        k = len(answers)
        acc = 0.0
        if right is not None:
            c = answers.index(right)
            probs = shares + [abstain]
            for seq in product(range(k + 1), repeat=4):
                w = 1.0
                for s in seq:
                    w *= probs[s]
                if w == 0.0:
                    continue
                votes = [seq.count(a) for a in range(k)]
                top = max(votes)
                if top > 0 and votes[c] == top:
                    acc += w / votes.count(top)
        fits.append({"p": shares[answers.index(right)] if right is not None else 0.0,
                     "agree": agree, "majority4": acc})
    out[agent] = fits
print(json.dumps(out))
"#;

/// `analyze --theory` on the shipped theory-check scenario: the fits hold
/// the true distribution, agree with Python's recomputation from the rows,
/// predict past the pool, and list exactly the departures the scenario
/// builds in — the batched agent's order and realized majority, and the
/// lenient verifier — and none of the independent agent's.
#[test]
fn analyze_theory_recovers_the_distribution_and_flags_correlation_and_a_lenient_verifier() {
    let s = Scratch::new();
    let db = s.path("theory.db");
    let run = Crucible::new(&["run"])
        .arg(crate::util::root().join("scenarios/theory-check-sim.yaml"))
        .db(&db)
        .json();
    assert_eq!(run["status"], "completed", "{run}");
    let report = Crucible::new(&["analyze", "1", "--theory", "--max-n", "128"])
        .db(&db)
        .json();
    let tasks = report["tasks"].as_array().unwrap();
    let of = |agent: &str| -> Vec<&serde_json::Value> {
        tasks.iter().filter(|t| t["agent"] == agent).collect()
    };
    let python = python(POOL_FITS, &serde_json::json!({"db": db}).to_string());
    for agent in ["solver", "batched"] {
        let fits = of(agent);
        assert_eq!(fits.len(), 200, "{agent}");
        // The posterior intervals hold the truth (p* = 0.45, Δ = 0.15) on
        // about 95% of tasks; the batched pools hold fewer independent
        // draws, so only the independent agent's coverage is held to it.
        let covers = |key: &str, truth: f64| {
            fits.iter()
                .filter(|t| {
                    let ci = &t[key];
                    ci[0].as_f64().unwrap() <= truth && truth <= ci[1].as_f64().unwrap()
                })
                .count() as f64
                / fits.len() as f64
        };
        if agent == "solver" {
            assert!(
                covers("p_correct_ci", 0.45) >= 0.9,
                "{}",
                covers("p_correct_ci", 0.45)
            );
            assert!(
                covers("delta_ci", 0.15) >= 0.9,
                "{}",
                covers("delta_ci", 0.15)
            );
        }
        let rows = python[agent].as_array().unwrap();
        for (fit, row) in fits.iter().zip(rows) {
            assert!((num(fit, "p_correct") - num(row, "p")).abs() < 1e-12);
            assert_eq!(fit["order"]["statistic"].as_f64(), row["agree"].as_f64());
        }
        // The mean plug-in majority at n = 4, against the enumeration.
        let point = report["curves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["agent"] == agent && c["rule"] == "majority" && c["n"] == 4)
            .unwrap();
        let want = rows.iter().map(|r| num(r, "majority4")).sum::<f64>() / rows.len() as f64;
        assert!(
            (num(point, "plug_in") - want).abs() < 1e-9,
            "{agent}: {point} vs {want}"
        );
    }
    // Predicted past the pool of 64: n = 128 with a band around the mean.
    let far = report["curves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["agent"] == "solver" && c["rule"] == "majority" && c["n"] == 128)
        .expect("a prediction at n = 128");
    let band = &far["predicted_ci"];
    assert!(band[0].as_f64().unwrap() <= num(far, "predicted"));
    assert!(num(far, "predicted") <= band[1].as_f64().unwrap());
    assert!(far["observed"].is_null() && far["realized"].is_null());
    assert!(
        of("solver")
            .iter()
            .all(|t| t["n_for"][0]["rule"] == "majority")
    );
    // Departures: by kind and agent.
    let departures = report["departures"].as_array().unwrap();
    let count = |agent: &str, kind: &str, verifier: Option<&str>| {
        departures
            .iter()
            .filter(|d| {
                d["agent"] == agent
                    && d["kind"] == kind
                    && verifier.is_none_or(|v| d["verifier"] == v)
            })
            .count()
    };
    assert!(
        count("batched", "order", None) >= 180,
        "{}",
        count("batched", "order", None)
    );
    assert!(count("solver", "order", None) <= 10);
    assert!(count("batched", "realized", None) >= 1, "{departures:?}");
    assert_eq!(count("solver", "realized", None), 0);
    assert!(count("solver", "verifier", Some("lenient")) >= 180);
    assert!(count("solver", "verifier", Some("exact")) <= 10);
    // The table says the same.
    let table = Crucible::new(&["analyze", "1", "--theory", "--draws", "20", "--max-n", "64"])
        .db(&db)
        .ok();
    assert!(table.contains("departs · batched · "), "{table}");
    assert!(
        table.contains("the verifier is worse than assumed"),
        "{table}"
    );
}

/// From the SQLite rows alone: each self-correction strategy's accuracy by
/// task kind after all its rounds, and its mean cumulative regret after
/// each round, with μ from the scenario's `skills` (the best expert of a
/// kind at 0.7, a second-best at 0.1 where the scenario says, 0.05 else).
const EXPERT_ROUNDS: &str = r#"
import json, sqlite3, sys
d = json.load(sys.stdin)
db = sqlite3.connect(d["db"])
mu = {"algebraist": {"algebra": 0.7, "counting": 0.1},
      "geometer": {"geometry": 0.7, "counting": 0.1},
      "counter": {"counting": 0.7, "algebra": 0.1}}
rounds = {}
for strategy, kind, task, agent, correct in db.execute(
        "SELECT s.strategy, json_extract(t.inputs, '$.type'), s.task_index, s.agent, s.correct "
        "FROM samples s JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index "
        "WHERE s.run_id = 1 AND s.strategy IS NOT NULL ORDER BY s.task_index, s.sample_index"):
    rounds.setdefault(strategy, {}).setdefault(task, (kind, []))[1].append((agent, correct))
out = {}
for strategy, tasks in rounds.items():
    by_kind = {}
    for kind, played in tasks.values():
        by_kind.setdefault(kind, []).append(played[-1][1])
    cumulative = []
    for r in range(1, 33):
        total = 0.0
        for kind, played in tasks.values():
            m = lambda a: mu.get(a, {}).get(kind, 0.05)
            best = max(m(a) for a in ["algebraist", "geometer", "counter", "novice_a"])
            total += sum(best - m(a) for a, _ in played[:r])
        cumulative.append(total / len(tasks))
    out[strategy] = {"accuracy": {k: sum(v) / len(v) for k, v in by_kind.items()},
                     "cumulative": cumulative}
print(json.dumps(out))
"#;

/// The shipped experts scenario: self-correction whose policy picks among
/// experts each good at one task kind reaches, on every kind, within 0.15
/// of what the kind's best expert reaches alone, where a fixed wrong expert
/// stays at least 0.15 below; `analyze` reports each policy's regret by
/// round, equal to Python's recomputation, non-decreasing, sublinear, and
/// within the theory's bounds.
#[test]
fn expert_policies_approach_the_best_expert_of_every_kind_with_sublinear_regret() {
    let s = Scratch::new();
    let db = s.path("experts.db");
    let scenario = crate::util::root().join("scenarios/experts-sim.yaml");
    let recorded = Crucible::new(&["run", "--json"])
        .arg(&scenario)
        .db(&db)
        .ok();
    // The policies' draws are keyed by task and round: one call at a time
    // gives the same run, and a strict replay reproduces it.
    let serial = Crucible::new(&["run", "--json", "--concurrency", "1"])
        .arg(&scenario)
        .db(&s.path("serial.db"))
        .ok();
    assert_eq!(results_without_ids(&serial), results_without_ids(&recorded));
    replay_strictly(&db, &recorded);
    let python = python(EXPERT_ROUNDS, &serde_json::json!({"db": db}).to_string());
    let accuracy = |strategy: &str, kind: &str| num(&python[strategy]["accuracy"], kind);
    let specialist = [
        ("algebra", "fixed_algebraist"),
        ("geometry", "fixed_geometer"),
        ("counting", "fixed_counter"),
    ];
    for (kind, best) in specialist {
        let alone = accuracy(best, kind);
        for policy in ["hedge", "ucb", "thompson", "round_robin"] {
            let got = accuracy(policy, kind);
            assert!(got >= alone - 0.15, "{policy} on {kind}: {got} vs {alone}");
        }
        let worst = specialist
            .iter()
            .filter(|(k, _)| *k != kind)
            .map(|(_, fixed)| accuracy(fixed, kind))
            .fold(1.0, f64::min);
        assert!(
            worst <= alone - 0.15,
            "a wrong expert on {kind}: {worst} vs {alone}"
        );
    }
    let report = Crucible::new(&["analyze", "1"]).db(&db).json();
    let regret = report["regret"].as_array().expect("regret curves");
    assert_eq!(regret.len(), 7);
    for r in regret {
        let name = r["strategy"].as_str().unwrap();
        assert_eq!(r["truth"], "simulated");
        let rounds = r["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 32);
        let cumulative: Vec<f64> = rounds.iter().map(|p| num(p, "cumulative")).collect();
        for (got, want) in cumulative
            .iter()
            .zip(python[name]["cumulative"].as_array().unwrap())
        {
            assert!(
                (got - want.as_f64().unwrap()).abs() < 1e-9,
                "{name}: {got} vs {want}"
            );
        }
        assert!(
            cumulative.windows(2).all(|w| w[1] >= w[0] - 1e-12),
            "{name}"
        );
        assert!(
            cumulative[31] / 32.0 < cumulative[7] / 8.0,
            "{name}: not sublinear"
        );
        for p in rounds {
            if let Some(bound) = p["bound"].as_f64() {
                assert!(num(p, "cumulative") <= bound + 1e-9, "{name}: {p}");
            }
        }
        let policy = r["policy"].as_str().unwrap();
        assert_eq!(
            rounds[31]["bound"].is_null(),
            policy == "thompson",
            "{name}"
        );
    }
}

/// Majority's exact accuracy on a distribution, by summing the multinomial
/// over every split of n samples among three answers (ties with the correct
/// answer count 1/ties).
const THREE_WAY_MAJORITY: &str = r#"
import json, sys
from math import lgamma, exp, log
d = json.load(sys.stdin)
p = d["p"]
def acc(n):
    total = 0.0
    for a in range(n + 1):
        for b in range(n - a + 1):
            c = n - a - b
            top = max(a, b, c)
            if a < top:
                continue
            ties = [a, b, c].count(top)
            lw = lgamma(n + 1) - lgamma(a + 1) - lgamma(b + 1) - lgamma(c + 1)
            lw += sum(k * log(q) for k, q in zip((a, b, c), p) if k)
            total += exp(lw) / ties
    return total
print(json.dumps({str(n): acc(n) for n in d["ns"]}))
"#;

/// A family of the user's own, point by point: swept at its Δ, each n* the
/// first n at which Python's multinomial sum reaches 1 − δ; a line that is
/// not a distribution is refused with its file and line, exit status 2.
#[test]
fn a_user_family_from_a_file_is_swept_exactly() {
    let s = Scratch::new();
    let lines: Vec<String> = [0.16, 0.3, 0.5]
        .iter()
        .map(|d| {
            serde_json::json!({"family": "three_way", "delta": d,
                "p": [(1.0 + 2.0 * d) / 3.0, (1.0 - d) / 3.0, (1.0 - d) / 3.0]})
            .to_string()
        })
        .collect();
    let file = s.write("three.jsonl", &(lines.join("\n") + "\n"));
    let report = Crucible::new(&["theory", "--sweep", "--delta", "0.1"])
        .arg("--family-file")
        .arg(&file)
        .json();
    let fits = report["fits"].as_array().unwrap();
    assert!(fits.iter().all(|f| f["family"] == "three_way"), "{report}");
    let majority = fits.iter().find(|f| f["rule"] == "majority").unwrap();
    let points = majority["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for point in points {
        let d = num(point, "delta");
        let n = point["n"].as_u64().expect("reached") as usize;
        let p = [(1.0 + 2.0 * d) / 3.0, (1.0 - d) / 3.0, (1.0 - d) / 3.0];
        let input = serde_json::json!({"p": p, "ns": [n - 1, n]});
        let acc = python(THREE_WAY_MAJORITY, &input.to_string());
        assert!(num(&acc, &n.to_string()) >= 0.9, "Δ {d}: n {n}");
        assert!(num(&acc, &(n - 1).to_string()) < 0.9, "Δ {d}: n {n}");
    }
    let bad = s.write(
        "bad.jsonl",
        &format!(
            "{}\n{{\"family\": \"x\", \"delta\": 0.1, \"p\": [0.5, 0.6]}}\n",
            lines[0]
        ),
    );
    let out = Crucible::new(&["theory", "--sweep", "--family-file"])
        .arg(&bad)
        .output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:2: the probabilities sum to 1.1"),
        "{stderr}"
    );
}

/// `theory --out`: one line per rule through its exact values at every n
/// asked — best-of-n under a perfect verifier on pass@n's — with majority
/// rising from p* at n = 1.
#[test]
fn theory_out_charts_the_exact_curves() {
    let s = Scratch::new();
    let out = s.path("charts");
    let report = Crucible::new(&[
        "theory",
        "--dist",
        "0.4,0.3,0.3",
        "--n",
        "1,2,4,8,16,32",
        "--mc",
        "500",
    ])
    .arg("--out")
    .arg(&out)
    .json();
    let svg = std::fs::read_to_string(out.join("theory-curves.svg")).unwrap();
    let lines = chart_lines(&svg);
    assert_eq!(lines.len(), 3, "{svg}");
    assert!(lines.iter().all(|(_, points)| points.len() == 6));
    for rule in ["majority", "best_of_n", "pass_at_n"] {
        assert!(svg.contains(&format!(">\n{rule}\n<")), "{rule}");
    }
    // Screen y grows downwards: a line's height is proportional to its accuracy.
    let accuracy = |rule: &str, n: u64| {
        report["curves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["rule"] == rule && p["n"] == n)
            .map(|p| num(p, "accuracy"))
            .unwrap()
    };
    let (_, majority) = &lines[0];
    let rise = (majority[0].1 - majority[5].1) / (majority[0].1 - lines[1].1[5].1);
    let want = (accuracy("majority", 32) - accuracy("majority", 1))
        / (accuracy("best_of_n", 32) - accuracy("majority", 1));
    assert!((rise - want).abs() < 0.01, "{rise} vs {want}");
    assert_eq!(
        lines[1].1, lines[2].1,
        "best-of-n under a perfect verifier is pass@n"
    );
}
