//! Test-time strategies evaluated on one task's sample pool.
//!
//! For every strategy and every `n` it reports two things: the exact expected
//! accuracy over all size-`n` subsets of the pool (what summaries average), and
//! the realized choice on the first `n` samples, ties broken by a seeded draw
//! (what a deployed strategy with `n` samples would have answered).

use rand::RngExt;

use crate::estimator::{self, Binomials, Scored};
use crate::scenario::{Strategy, StrategyKind, Task};
use crate::seed::{self, Part};

/// What a strategy needs to know about one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSample {
    /// Normalized answer; `None` for an abstention.
    pub answer: Option<String>,
    pub correct: bool,
    pub tokens: u64,
    /// One score per verifier of the scenario (NaN where not scored).
    pub scores: Vec<f64>,
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
    /// Expected tokens spent on `n` samples.
    pub tokens: f64,
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
    let mean_tokens = if pool.is_empty() {
        0.0
    } else {
        pool.iter().map(|s| s.tokens as f64).sum::<f64>() / pool.len() as f64
    };
    let has_expected = task.expected.is_some();
    strategy
        .ns
        .iter()
        .map(|&n| {
            let (accuracy, abstain) = match strategy.kind {
                StrategyKind::SelfConsistency => {
                    let (counts, correct, abstain) = answer_counts(pool);
                    (
                        estimator::majority(b, &counts, correct, abstain, n),
                        estimator::majority_abstains(b, pool.len(), abstain, n),
                    )
                }
                StrategyKind::BestOfN => {
                    let v = strategy
                        .verifier
                        .expect("validated: best_of_n has a verifier");
                    let scored: Vec<Scored> = pool
                        .iter()
                        .map(|s| Scored {
                            score: s.scores[v],
                            correct: s.correct,
                            abstained: s.answer.is_none(),
                        })
                        .collect();
                    estimator::best_of_n(b, &scored, n)
                }
            };
            let prefix = &pool[..n.min(pool.len())];
            let mut rng = seed::rng(
                seed,
                &[
                    Part::Str("tie"),
                    Part::Str(&strategy.name),
                    Part::Str(&task.id),
                    Part::Int(n as u64),
                ],
            );
            let picked = match strategy.kind {
                StrategyKind::SelfConsistency => plurality(prefix, &mut rng),
                StrategyKind::BestOfN => highest(prefix, strategy.verifier.unwrap_or(0), &mut rng),
            };
            let (selected, selected_correct) = match picked {
                Some(i) => (prefix[i].answer.clone(), prefix[i].correct),
                None => (None, false),
            };
            TaskOutcome {
                strategy: si,
                n,
                accuracy: if has_expected { accuracy } else { f64::NAN },
                abstain,
                tokens: mean_tokens * n as f64,
                selected,
                selected_correct,
            }
        })
        .collect()
}

/// Counts per distinct answer (first-seen order), the correct class, abstentions.
fn answer_counts(pool: &[PoolSample]) -> (Vec<usize>, Option<usize>, usize) {
    let mut classes: Vec<(&str, usize, bool)> = Vec::new();
    let mut abstain = 0;
    for s in pool {
        match &s.answer {
            None => abstain += 1,
            Some(a) => match classes.iter_mut().find(|(c, _, _)| c == a) {
                Some(entry) => entry.1 += 1,
                None => classes.push((a, 1, s.correct)),
            },
        }
    }
    let correct = classes.iter().position(|c| c.2);
    (classes.iter().map(|c| c.1).collect(), correct, abstain)
}

/// Index of a sample carrying the most frequent answer; ties by seeded draw.
fn plurality(prefix: &[PoolSample], rng: &mut impl RngExt) -> Option<usize> {
    let mut counts: Vec<(&str, usize, usize)> = Vec::new(); // answer, count, first index
    for (i, s) in prefix.iter().enumerate() {
        if let Some(a) = &s.answer {
            match counts.iter_mut().find(|(c, _, _)| c == a) {
                Some(e) => e.1 += 1,
                None => counts.push((a, 1, i)),
            }
        }
    }
    let best = counts.iter().map(|c| c.1).max()?;
    let tied: Vec<usize> = counts.iter().filter(|c| c.1 == best).map(|c| c.2).collect();
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
