//! Test-time strategies evaluated on one task's sample pool.
//!
//! For every strategy and every `n` it reports two things: the exact expected
//! accuracy over all size-`n` subsets of the pool (what summaries average), and
//! the realized choice on the first `n` samples, ties broken by a seeded draw
//! (what a deployed strategy with `n` samples would have answered).

use rand::RngExt;

use crate::scenario::{StopRule, Strategy, StrategyKind, Task};
use crate::seed::{self, Part};
use crate::stats::estimator::{self, Binomials, Scored, Sequential, Weighted};

/// What a strategy needs to know about one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSample {
    /// Normalized answer; `None` for an abstention.
    pub answer: Option<String>,
    pub correct: bool,
    /// The generator's tokens for this sample.
    pub tokens: u64,
    /// One score per verifier of the scenario (NaN where not scored).
    pub scores: Vec<f64>,
    /// Tokens each verifier's model spent on this sample, per verifier of
    /// the scenario (0 for verifiers that call no model).
    pub verifier_tokens: Vec<u64>,
}

impl PoolSample {
    /// Mean generator tokens of `pool`, and mean tokens verifier `v` spent
    /// on its samples (0 without a verifier).
    pub fn mean_tokens(pool: &[PoolSample], v: Option<usize>) -> (f64, f64) {
        if pool.is_empty() {
            return (0.0, 0.0);
        }
        let size = pool.len() as f64;
        let generator = pool.iter().map(|s| s.tokens as f64).sum::<f64>() / size;
        let verifier = v.map_or(0.0, |v| {
            pool.iter()
                .map(|s| s.verifier_tokens[v] as f64)
                .sum::<f64>()
                / size
        });
        (generator, verifier)
    }
}

/// A strategy's result on one task at one `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    pub strategy: usize,
    pub n: usize,
    /// Exact expectation over size-`n` subsets of the pool.
    pub accuracy: f64,
    /// Probability the strategy answers nothing.
    pub abstain: f64,
    /// Expected tokens spent, the generator's and the verifier's.
    pub tokens: f64,
    /// The verifier's part of `tokens`.
    pub verifier_tokens: f64,
    /// Expected samples drawn: `n`, or fewer for adaptive consistency.
    pub samples: f64,
    /// The answer chosen from the first `n` samples.
    pub selected: Option<String>,
    pub selected_correct: bool,
}

/// Evaluate `strategy` (index `si`) at each of its `n` on `pool`.
pub fn evaluate(
    b: &Binomials,
    seed: u64,
    si: usize,
    strategy: &Strategy,
    task: &Task,
    pool: &[PoolSample],
) -> Vec<TaskOutcome> {
    let (generator_tokens, verifier_tokens) = PoolSample::mean_tokens(pool, strategy.verifier);
    let has_expected = task.expected.is_some();
    let rng = |what: &str, n: usize| {
        seed::rng(
            seed,
            &[
                Part::Str(what),
                Part::Str(&strategy.name),
                Part::Str(&task.id),
                Part::Int(n as u64),
            ],
        )
    };
    let expected: Vec<Sequential> = match strategy.stop {
        Some(stop) => {
            let (classes, class_of, correct) = answer_classes(pool);
            let mut rng = rng("estimate", 0);
            strategy
                .ns
                .iter()
                .map(|&n| {
                    estimator::adaptive_consistency(
                        &class_of,
                        correct,
                        classes,
                        n,
                        |v1, v2| stop.satisfied(v1, v2),
                        ESTIMATE_PERMUTATIONS,
                        &mut rng,
                    )
                })
                .collect()
        }
        None => {
            let (accuracy, abstain) = curves(b, strategy, pool, &mut rng("estimate", 0));
            strategy
                .ns
                .iter()
                .map(|&n| {
                    let at = n.min(pool.len());
                    Sequential {
                        accuracy: accuracy[at],
                        abstain: abstain[at],
                        samples: n as f64,
                    }
                })
                .collect()
        }
    };
    strategy
        .ns
        .iter()
        .zip(expected)
        .map(|(&n, expected)| {
            let mut prefix = &pool[..n.min(pool.len())];
            if let Some(stop) = strategy.stop {
                prefix = &prefix[..stopping_point(prefix, stop)];
            }
            let mut tie = rng("tie", n);
            let picked = match (strategy.kind, strategy.verifier) {
                (StrategyKind::SelfConsistency | StrategyKind::AdaptiveConsistency, _) => {
                    plurality(prefix, |_| 1.0, &mut tie)
                }
                (StrategyKind::WeightedMajority, Some(v)) => {
                    plurality(prefix, |s| s.scores[v], &mut tie)
                }
                (_, v) => highest(prefix, v.unwrap_or(0), &mut tie),
            };
            let (selected, selected_correct) = match picked {
                Some(i) => (prefix[i].answer.clone(), prefix[i].correct),
                None => (None, false),
            };
            TaskOutcome {
                strategy: si,
                n,
                accuracy: if has_expected {
                    expected.accuracy
                } else {
                    f64::NAN
                },
                abstain: expected.abstain,
                tokens: (generator_tokens + verifier_tokens) * expected.samples,
                verifier_tokens: verifier_tokens * expected.samples,
                samples: expected.samples,
                selected,
                selected_correct,
            }
        })
        .collect()
}

/// How many samples of `prefix`, taken in order, adaptive consistency draws
/// before `stop` holds (all of them if it never does).
fn stopping_point(prefix: &[PoolSample], stop: StopRule) -> usize {
    let mut votes: Vec<(&str, usize)> = Vec::new();
    for (i, s) in prefix.iter().enumerate() {
        if let Some(a) = &s.answer {
            match votes.iter_mut().find(|(c, _)| c == a) {
                Some(e) => e.1 += 1,
                None => votes.push((a, 1)),
            }
            let counts: Vec<usize> = votes.iter().map(|v| v.1).collect();
            let (v1, v2) = estimator::top_two(&counts);
            if stop.satisfied(v1, v2) {
                return i + 1;
            }
        }
    }
    prefix.len()
}

impl StopRule {
    /// Whether votes `v1` for the leading answer and `v2` for the runner-up
    /// are decisive.
    pub fn satisfied(self, v1: usize, v2: usize) -> bool {
        match self {
            StopRule::Beta(p) => estimator::leader_probability(v1, v2) >= p,
            StopRule::Margin(m) => v1 >= v2 + m,
        }
    }
}

/// A score the verifier could not give, as the rules see it: below every
/// real score in best-of-n, and no vote in weighted majority.
pub const UNSCORED: f64 = f64::NEG_INFINITY;

/// Random orders of the pool behind Monte Carlo estimates (weighted majority
/// beyond enumerable pools, adaptive consistency); a per-task standard error
/// of at most 0.5/√this.
pub const ESTIMATE_PERMUTATIONS: usize = 1000;

/// Expected accuracy and abstention of `strategy` at every `k` up to the pool's size.
fn curves(
    b: &Binomials,
    strategy: &Strategy,
    pool: &[PoolSample],
    rng: &mut impl rand::RngExt,
) -> (Vec<f64>, Vec<f64>) {
    let (classes, class_of, correct) = answer_classes(pool);
    let abstained = pool.iter().filter(|s| s.answer.is_none()).count();
    match (strategy.kind, strategy.verifier) {
        (StrategyKind::SelfConsistency, _) => {
            let mut counts = vec![0; classes];
            for c in class_of.iter().flatten() {
                counts[*c] += 1;
            }
            (
                estimator::majority_curve(b, &counts, correct, abstained),
                estimator::abstain_curve(b, pool.len(), abstained),
            )
        }
        (StrategyKind::WeightedMajority, Some(v)) => {
            let weighted: Vec<Weighted> = pool
                .iter()
                .zip(&class_of)
                .map(|(s, &class)| Weighted::new(class, s.scores[v]))
                .collect();
            let curve = estimator::weighted_majority_curve(
                b,
                &weighted,
                correct,
                classes,
                ESTIMATE_PERMUTATIONS,
                rng,
            );
            (
                curve.accuracy,
                estimator::abstain_curve(b, pool.len(), abstained),
            )
        }
        (_, v) => {
            let v = v.expect("validated: verifier strategies have a verifier");
            let scored: Vec<Scored> = pool
                .iter()
                .map(|s| Scored {
                    score: s.scores[v],
                    correct: s.correct,
                    abstained: s.answer.is_none(),
                })
                .collect();
            estimator::best_of_n_curve(b, &scored)
        }
    }
}

/// Answer classes of a pool: how many, each sample's class (`None` for an
/// abstention, classes numbered in first-seen order), and the correct class.
pub fn answer_classes(pool: &[PoolSample]) -> (usize, Vec<Option<usize>>, Option<usize>) {
    let mut seen: Vec<&str> = Vec::new();
    let mut correct = None;
    let class_of = pool
        .iter()
        .map(|s| {
            let a = s.answer.as_deref()?;
            let c = seen.iter().position(|x| *x == a).unwrap_or_else(|| {
                seen.push(a);
                seen.len() - 1
            });
            if s.correct {
                correct = Some(c);
            }
            Some(c)
        })
        .collect();
    (seen.len(), class_of, correct)
}

/// Index of a sample carrying the answer with the most weight (each sample
/// adding `weight` to its answer); ties by seeded draw.
fn plurality(
    prefix: &[PoolSample],
    weight: impl Fn(&PoolSample) -> f64,
    rng: &mut impl RngExt,
) -> Option<usize> {
    let mut totals: Vec<(&str, f64, usize)> = Vec::new(); // answer, weight, first index
    for (i, s) in prefix.iter().enumerate() {
        if let Some(a) = &s.answer
            && weight(s).is_finite()
        {
            match totals.iter_mut().find(|(c, _, _)| c == a) {
                Some(e) => e.1 += weight(s),
                None => totals.push((a, weight(s), i)),
            }
        }
    }
    let best = totals.iter().map(|c| c.1).max_by(f64::total_cmp)?;
    let tied: Vec<usize> = totals.iter().filter(|c| c.1 == best).map(|c| c.2).collect();
    Some(tied[rng.random_range(0..tied.len())])
}

/// Index of the highest-scored sample; ties by seeded draw.
fn highest(prefix: &[PoolSample], verifier: usize, rng: &mut impl RngExt) -> Option<usize> {
    let best = prefix
        .iter()
        .map(|s| s.scores[verifier])
        .max_by(f64::total_cmp)?;
    let tied: Vec<usize> = (0..prefix.len())
        .filter(|&i| prefix[i].scores[verifier] == best)
        .collect();
    Some(tied[rng.random_range(0..tied.len())])
}
