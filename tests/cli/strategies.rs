use crucible::stats::estimator::{self, Binomials, Scored, Weighted};
use proptest::prelude::*;

use crate::util::{
    Crucible, Scratch, num, query, result, run_json, run_shipped, simulated_scenario, table_rows,
};

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
