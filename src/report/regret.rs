//! Regret of self-correction's expert policies, read from a stored run:
//! for each self-correction strategy, round by round, the accuracy of the
//! answer that stands, the cumulative regret of the experts it asked and
//! the simple regret of the one whose answer stands, against the best
//! expert of the run's self-correction strategies on each task, beside the
//! bound the theory gives ([`crate::stats::online::bound`]).
//!
//! An expert's success probability μ on a task is its simulated model's
//! probability of the expected answer there (its `distribution` and
//! `skills`); for other models it is estimated, per agent, as the share of
//! its rounds that were right over the run. Rounds after the verifier
//! accepted are not played and add no regret. Reads rounds through
//! [`crate::store`] and the scenario the run was made from.

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::scenario::{ModelKind, Scenario, Task};
use crate::stats::online;
use crate::store::{Store, StoreError};

/// One self-correction strategy's curves.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRegret {
    pub strategy: String,
    /// `round_robin`, `hedge`, `ucb`, `thompson` or `fixed`.
    pub policy: &'static str,
    /// Its agent, then its experts.
    pub experts: Vec<String>,
    /// `simulated` (every expert's μ known) or `estimated`.
    pub truth: &'static str,
    pub tasks: usize,
    pub rounds: Vec<RegretPoint>,
}

/// Means over tasks after `round` rounds.
#[derive(Debug, Clone, Serialize)]
pub struct RegretPoint {
    pub round: usize,
    /// Share of tasks whose standing answer is right.
    pub accuracy: f64,
    /// Mean tokens per task of the rounds played (the generator's calls).
    pub tokens: f64,
    /// Σ over the rounds played of (μ* − μ of the expert asked).
    pub cumulative: f64,
    /// Its standard error over tasks.
    pub cumulative_se: f64,
    /// μ* − μ of the expert whose answer stands.
    pub simple: f64,
    /// The theory's bound on the expected cumulative regret, where one is
    /// known: the policy's own over its experts, plus the gap between the
    /// best of all experts and the best of its own for every round.
    pub bound: Option<f64>,
}

/// Every self-correction strategy of `run_id` (made from `scenario`), when
/// at least one of them has experts; else nothing.
pub fn regret(
    store: &Store,
    run_id: i64,
    scenario: &Scenario,
) -> Result<Vec<PolicyRegret>, StoreError> {
    let corrections: Vec<usize> = (0..scenario.strategies.len())
        .filter(|&i| scenario.strategies[i].correction.is_some())
        .collect();
    let with_experts = corrections.iter().any(|&i| {
        scenario.strategies[i]
            .correction
            .as_ref()
            .is_some_and(|c| !c.experts.is_empty())
    });
    if !with_experts {
        return Ok(Vec::new());
    }
    // The pool every strategy is measured against: all their agents.
    let mut pool: Vec<usize> = Vec::new();
    for &i in &corrections {
        for a in scenario.strategies[i].callers() {
            if !pool.contains(&a) {
                pool.push(a);
            }
        }
    }
    // Rounds per strategy and task.
    let mut played: Vec<Vec<Vec<Round>>> = Vec::new();
    for &i in &corrections {
        let mut tasks = vec![Vec::new(); scenario.tasks.len()];
        store.for_each_round(
            run_id,
            &scenario.strategies[i].name,
            |t, agent, right, tokens| {
                if let (Some(rounds), Some(agent)) = (
                    tasks.get_mut(t),
                    scenario.agents.iter().position(|x| x.name == agent),
                ) {
                    rounds.push(Round {
                        agent,
                        right: right.unwrap_or(false),
                        tokens,
                    });
                }
            },
        )?;
        played.push(tasks);
    }
    let mu = Truth::new(scenario, &pool, &played);
    Ok(corrections
        .iter()
        .zip(&played)
        .map(|(&i, tasks)| curves(scenario, i, tasks, &mu))
        .collect())
}

/// One round as stored: who answered, whether rightly, at what cost.
#[derive(Clone, Copy)]
struct Round {
    agent: usize,
    right: bool,
    tokens: u64,
}

/// Each expert's μ on each task.
struct Truth {
    /// mu[task][agent], for the agents of the pool (NaN elsewhere).
    mu: Vec<Vec<f64>>,
    pool: Vec<usize>,
    simulated: bool,
}

impl Truth {
    fn new(scenario: &Scenario, pool: &[usize], played: &[Vec<Vec<Round>>]) -> Truth {
        let agents = scenario.agents.len();
        let simulated = |a: usize| match &scenario.models[scenario.agents[a].model].kind {
            ModelKind::Simulated(m) => Some(m),
            ModelKind::Network(_) => None,
        };
        // Estimated μ: the agent's share of right rounds over the run.
        let mut right = vec![(0usize, 0usize); agents];
        for tasks in played {
            for rounds in tasks {
                for r in rounds {
                    right[r.agent].0 += usize::from(r.right);
                    right[r.agent].1 += 1;
                }
            }
        }
        let mu = scenario
            .tasks
            .iter()
            .map(|task| {
                let mut row = vec![f64::NAN; agents];
                for &a in pool {
                    row[a] = match simulated(a) {
                        Some(m) => p_expected(&m.distribution_for(task), task),
                        None => right[a].0 as f64 / right[a].1.max(1) as f64,
                    };
                }
                row
            })
            .collect();
        Truth {
            mu,
            pool: pool.to_vec(),
            simulated: pool.iter().all(|&a| simulated(a).is_some()),
        }
    }

    fn best(&self, task: usize) -> f64 {
        self.pool
            .iter()
            .map(|&a| self.mu[task][a])
            .fold(0.0, f64::max)
    }
}

/// The probability a distribution gives the task's expected answer.
fn p_expected(dist: &[(Option<String>, f64)], task: &Task) -> f64 {
    dist.iter()
        .filter(|(a, _)| a.is_some() && a.as_deref() == task.expected.as_deref())
        .map(|(_, p)| p)
        .sum()
}

fn curves(scenario: &Scenario, si: usize, tasks: &[Vec<Round>], truth: &Truth) -> PolicyRegret {
    let strategy = &scenario.strategies[si];
    let correction = strategy
        .correction
        .as_ref()
        .expect("a self-correction strategy");
    let callers = strategy.callers();
    let horizon = strategy.most_rounds();
    let policy = online::Policy::from(correction.policy);
    let measured: Vec<usize> = (0..tasks.len()).filter(|&t| !tasks[t].is_empty()).collect();
    let count = measured.len().max(1) as f64;
    let rounds = (1..=horizon)
        .map(|round| {
            let (mut accuracy, mut simple, mut tokens, mut bound) = (0.0, 0.0, 0.0, Some(0.0));
            let mut cumulative = Vec::with_capacity(measured.len());
            for &t in &measured {
                let best = truth.best(t);
                let taken = &tasks[t][..round.min(tasks[t].len())];
                let standing = taken.last().expect("a played task");
                accuracy += f64::from(u8::from(standing.right));
                simple += best - truth.mu[t][standing.agent];
                tokens += taken.iter().map(|r| r.tokens as f64).sum::<f64>();
                cumulative.push(
                    taken
                        .iter()
                        .map(|r| best - truth.mu[t][r.agent])
                        .sum::<f64>(),
                );
                let own: Vec<f64> = callers.iter().map(|&a| truth.mu[t][a]).collect();
                let own_best = own.iter().copied().fold(0.0, f64::max);
                bound = bound.and_then(|b| {
                    Some(
                        b + online::bound(policy, &own, round, horizon)?
                            + round as f64 * (best - own_best),
                    )
                });
            }
            let mean = cumulative.iter().sum::<f64>() / count;
            let variance =
                cumulative.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
            RegretPoint {
                round,
                accuracy: accuracy / count,
                tokens: tokens / count,
                cumulative: mean,
                cumulative_se: (variance / count).sqrt(),
                simple: simple / count,
                bound: bound.map(|b| b / count),
            }
        })
        .collect();
    PolicyRegret {
        strategy: strategy.name.clone(),
        policy: policy.name(),
        experts: callers
            .iter()
            .map(|&a| scenario.agents[a].name.clone())
            .collect(),
        truth: if truth.simulated {
            "simulated"
        } else {
            "estimated"
        },
        tasks: measured.len(),
        rounds,
    }
}

/// The curves at rounds 1, 2, 4, … and the last, one table per strategy.
pub fn table(regrets: &[PolicyRegret]) -> String {
    let mut out = String::new();
    for r in regrets {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        t.set_header([
            "round",
            "accuracy",
            "tokens/task",
            "cumulative regret",
            "bound",
            "simple regret",
        ]);
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let last = r.rounds.len();
        for p in r
            .rounds
            .iter()
            .filter(|p| p.round.is_power_of_two() || p.round == last)
        {
            t.add_row([
                right(p.round.to_string()),
                right(format!("{:.1}%", p.accuracy * 100.0)),
                right(format!("{:.0}", p.tokens)),
                right(format!("{:.3} ± {:.3}", p.cumulative, p.cumulative_se)),
                right(p.bound.map_or("-".into(), |b| format!("{b:.2}"))),
                right(format!("{:.3}", p.simple)),
            ]);
        }
        out.push_str(&format!(
            "self-correction {} · policy {} over {} · {} tasks · μ {}\n{t}\n",
            r.strategy,
            r.policy,
            r.experts.join(", "),
            r.tasks,
            r.truth
        ));
    }
    out
}
