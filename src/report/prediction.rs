//! `crucible analyze RUN --theory`: what the theory predicts for a stored
//! run, set against what the run observed.
//!
//! Each task's pool is fitted as an answer distribution twice: the plug-in
//! (each answer's share of the pool) and a Dirichlet posterior (a Jeffreys
//! prior, ½ per answer the pool shows, plus the correct answer when the
//! pool lacks it, plus abstention when the pool has some). The exact curves
//! of [`crate::stats::theory`] turn each into majority, best-of-n (under an
//! assumed verifier, perfect unless told) and pass@n accuracy at every n of
//! a grid that goes past the pool, and into the n each rule needs to reach
//! 1 − δ. The posterior's draws give the bands.
//!
//! A fit of the pool's answer counts reproduces any statistic of those
//! counts (the multinomial is saturated), so departures are sought where
//! the run holds more than counts:
//! - **order**: consecutive samples of a task agree more often than the
//!   pool's shares allow (a permutation test of adjacent agreements) —
//!   correlated samples;
//! - **verifier**: a task's observed best-of-n curve (from the verifier's
//!   scores) is lower than pools replicated from the posterior under the
//!   assumed verifier give (a posterior predictive check of the curve's
//!   area) — a verifier worse than assumed;
//! - **realized**: what majority returned on each pool's *first* n samples,
//!   which is what a strategy run at n returns, against its expectation
//!   when the samples are exchangeable (the pool's subset estimate) — an
//!   exact conditional test at each n, over the agent's tasks.
//!
//! Task-level tests are corrected by Benjamini–Hochberg over the agent's
//! tasks. Reads pools through [`super::analysis`]; touches neither SQLite
//! nor the network itself.

use comfy_table::{Cell, CellAlignment, Table, presets};
use rand::RngExt;
use rand_distr::{Distribution as _, Gamma};
use serde::Serialize;

use super::analysis::{Analysis, Pool, read_pools};
use crate::seed::{self, Part};
use crate::stats::bootstrap::percentile_interval;
use crate::stats::estimator::{self, Binomials, Scored};
use crate::stats::theory::{self, AnswerDistribution, Rule, Verifier};
use crate::store::{Store, StoreError};

/// What the prediction assumes and how it is computed.
#[derive(Debug, Clone, Serialize)]
pub struct PredictOptions {
    /// Posterior draws per task behind the intervals.
    pub draws: usize,
    /// The Dirichlet prior's weight on each answer.
    pub prior: f64,
    /// The verifier best-of-n is predicted under.
    pub verifier: Verifier,
    /// n-for-δ: the smallest n reaching accuracy 1 − δ.
    pub delta: f64,
    /// Largest n of the predicted curves (`None`: four times the pool).
    pub max_n: Option<usize>,
    /// Largest n searched for n-for-δ.
    pub search_n: usize,
    /// Coverage of the intervals.
    pub confidence: f64,
    /// False discovery rate of the order test over an agent's tasks.
    pub fdr: f64,
    /// Random orders of each pool behind the order test.
    pub permutations: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            draws: 100,
            prior: 0.5,
            verifier: Verifier::PERFECT,
            delta: 0.1,
            max_n: None,
            search_n: 100_000,
            confidence: 0.95,
            fdr: 0.05,
            permutations: 999,
        }
    }
}

/// Prediction against observation for one run.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub run_id: i64,
    pub name: String,
    pub assumptions: PredictOptions,
    pub curves: Vec<PredictedPoint>,
    pub tasks: Vec<TaskFit>,
    /// Every departure found, tasks first.
    pub departures: Vec<Departure>,
}

/// One rule at one n for one agent: predicted, observed and realized means
/// over the agent's tasks.
#[derive(Debug, Clone, Serialize)]
pub struct PredictedPoint {
    pub agent: String,
    /// `majority`, `best_of_n` or `pass_at_n`.
    pub rule: &'static str,
    /// For best-of-n: the verifier whose observed curve this is (the
    /// prediction is under the assumed one).
    pub verifier: Option<String>,
    pub n: usize,
    /// Expected tokens for n samples of a task (the generator's).
    pub tokens: f64,
    /// Mean over tasks of the posterior expected accuracy.
    pub predicted: f64,
    /// The posterior interval of that mean.
    pub predicted_ci: [f64; 2],
    /// Mean over tasks of the plug-in fit's exact accuracy.
    pub plug_in: f64,
    /// `analyze`'s curve at n (n ≤ the pool).
    pub observed: Option<f64>,
    pub observed_ci: Option<[f64; 2]>,
    /// Majority on each pool's first n samples, averaged (n ≤ the pool).
    pub realized: Option<f64>,
    /// z of the realized mean against the observed one (what exchangeable
    /// samples give), when both are there.
    pub realized_z: Option<f64>,
    /// Whether |z| > 3.
    pub departs: bool,
}

/// One task's fit.
#[derive(Debug, Clone, Serialize)]
pub struct TaskFit {
    pub agent: String,
    pub task_id: String,
    pub samples: usize,
    /// Plug-in p̂ of the correct answer and its posterior interval.
    pub p_correct: f64,
    pub p_correct_ci: [f64; 2],
    /// Plug-in Δ̂ (correct minus likeliest wrong) and its posterior interval.
    pub delta: f64,
    pub delta_ci: [f64; 2],
    /// Per rule: the n reaching 1 − δ.
    pub n_for: Vec<TaskNFor>,
    pub order: Check,
    /// Per verifier that scored the pool: its best-of-n against the assumed one.
    pub verifiers: Vec<VerifierCheck>,
}

/// The n a rule needs on one task under the plug-in fit (`None`: not
/// within the search, e.g. majority where Δ̂ ≤ 0), and how sure that is.
#[derive(Debug, Clone, Serialize)]
pub struct TaskNFor {
    pub rule: &'static str,
    pub n: Option<usize>,
    /// Share of posterior draws whose limit reaches 1 − δ at all.
    pub reachable: f64,
}

/// One test of a task: its statistic, what the null expects, a one-sided
/// p-value, and whether Benjamini–Hochberg rejects it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub statistic: f64,
    pub expected: f64,
    pub p_value: f64,
    pub flagged: bool,
}

/// A verifier's best-of-n on one task against the assumed verifier.
#[derive(Debug, Clone, Serialize)]
pub struct VerifierCheck {
    pub verifier: String,
    /// Statistic: the observed curve's mean over n = 1…N; expected: the
    /// replicated pools' mean of it.
    pub check: Check,
}

/// Where the run leaves the prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Departure {
    pub agent: String,
    /// The task, or `None` for the agent's mean curve.
    pub task_id: Option<String>,
    /// `order`, `verifier` or `realized`.
    pub kind: &'static str,
    pub verifier: Option<String>,
    pub n: Option<usize>,
    pub p_value: Option<f64>,
    /// What it says, for the table.
    pub reason: String,
}

/// What the posterior draws' majority curves may drop: they make bands,
/// which need no more digits than this.
const BAND_TAIL: f64 = 1e-10;

/// The rules predicted, in output order.
const RULES: [Rule; 3] = [Rule::Majority, Rule::BestOfN, Rule::PassAtN];

/// One task's fit and curves, before they are averaged.
struct Fitted {
    fit: TaskFit,
    /// Per rule and grid n: the plug-in's accuracy.
    plug_in: Vec<Vec<f64>>,
    /// Per rule, draw and grid n: a posterior draw's accuracy.
    draws: Vec<Vec<Vec<f64>>>,
    /// Per grid n within the pool: majority on the first n samples, and its
    /// expectation over the pool's orders (the subset estimate).
    realized: Vec<(f64, f64)>,
}

/// Fit every full pool of `run_id` with an expected answer and set the
/// predictions against `analysis` (the same run's `analyze`).
pub fn predict(
    store: &Store,
    run_id: i64,
    analysis: &Analysis,
    options: &PredictOptions,
) -> Result<Prediction, StoreError> {
    let run = store.run_tasks(run_id)?;
    let pools = read_pools(store, run_id, run.tasks.len())?;
    let mut prediction = Prediction {
        run_id,
        name: run.name.clone(),
        assumptions: options.clone(),
        curves: Vec::new(),
        tasks: Vec::new(),
        departures: Vec::new(),
    };
    for (ai, agent) in pools.agents.iter().enumerate() {
        let Some(analyzed) = analysis.agents.iter().find(|a| &a.agent == agent) else {
            continue;
        };
        let size = analyzed.pool_size;
        let mine: Vec<&Pool> = pools
            .pools
            .iter()
            .filter(|p| {
                p.agent == ai
                    && !p.errored
                    && p.samples.len() == size
                    && run.tasks[p.task].1.is_some()
            })
            .collect();
        if mine.is_empty() || size == 0 {
            continue;
        }
        let grid = grid(size, options.max_n.unwrap_or(4 * size));
        let context = FitContext {
            options,
            grid: &grid,
            size,
            seed: run.seed,
            agent,
            verifiers: &pools.verifiers,
            binomials: Binomials::new(size),
        };
        let mut fitted = context.fit_all(&mine, &run.tasks);
        context.flag(&mut fitted, &mut prediction.departures);
        let tokens_per_sample = analysis
            .curves
            .iter()
            .find(|c| &c.agent == agent && c.rule == "majority" && c.n == 1)
            .map_or(0.0, |c| c.mean_tokens);
        context.mean_curves(&fitted, analysis, tokens_per_sample, &mut prediction);
        prediction.tasks.extend(fitted.into_iter().map(|f| f.fit));
    }
    Ok(prediction)
}

/// n = 1, 2, 4, … up to `max_n`, with the pool's size and `max_n` itself.
fn grid(size: usize, max_n: usize) -> Vec<usize> {
    let max_n = max_n.max(size);
    let mut ns: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n <= max_n)
        .collect();
    ns.extend([size, max_n]);
    ns.sort_unstable();
    ns.dedup();
    ns
}

struct FitContext<'a> {
    options: &'a PredictOptions,
    grid: &'a [usize],
    size: usize,
    seed: u64,
    agent: &'a str,
    verifiers: &'a [String],
    binomials: Binomials,
}

impl FitContext<'_> {
    /// Every pool's fit, split across threads; the result does not depend
    /// on how many (each task's draws are seeded by the task).
    fn fit_all(&self, pools: &[&Pool], tasks: &[(String, Option<String>)]) -> Vec<Fitted> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = pools.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = pools
                .chunks(chunk)
                .map(|mine| {
                    s.spawn(move || {
                        mine.iter()
                            .map(|p| self.fit(p, &tasks[p.task].0))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("fit thread"))
                .collect()
        })
    }

    fn fit(&self, pool: &Pool, task_id: &str) -> Fitted {
        let o = self.options;
        let (counts, correct, abstained) = shares(pool);
        let total = pool.samples.len() as f64;
        let plug = distribution(
            counts.iter().map(|&c| c as f64 / total).collect(),
            correct,
            abstained as f64 / total,
        );
        let mut rng = seed::rng(
            self.seed,
            &[
                Part::Str("theory"),
                Part::Str(self.agent),
                Part::Str(task_id),
            ],
        );
        let posterior: Vec<AnswerDistribution> = (0..o.draws)
            .map(|_| dirichlet_draw(&counts, correct, abstained, o.prior, &mut rng))
            .collect();
        let curve = |d: &AnswerDistribution, rule: Rule, tail: f64| {
            theory::curve(rule, d, self.grid, o.verifier, tail)
        };
        let plug_in: Vec<Vec<f64>> = RULES
            .iter()
            .map(|&r| curve(&plug, r, theory::TAIL))
            .collect();
        let draws: Vec<Vec<Vec<f64>>> = RULES
            .iter()
            .map(|&r| posterior.iter().map(|d| curve(d, r, BAND_TAIL)).collect())
            .collect();
        let target = 1.0 - o.delta;
        let n_for = RULES
            .iter()
            .map(|&rule| TaskNFor {
                rule: rule.as_str(),
                n: theory::n_for(rule, &plug, o.delta, o.verifier, o.search_n),
                reachable: posterior
                    .iter()
                    .filter(|d| theory::limit(rule, d, o.verifier) >= target)
                    .count() as f64
                    / posterior.len().max(1) as f64,
            })
            .collect();
        let interval = |f: &dyn Fn(&AnswerDistribution) -> f64| {
            percentile_interval(posterior.iter().map(|d| Some(f(d))), o.confidence)
                .0
                .unwrap_or([f64::NAN; 2])
        };
        let order = order_test(pool, o.permutations, &mut rng);
        let verifiers = self.verifier_checks(pool, &posterior, &mut rng);
        let subsets = estimator::majority_curve(
            &self.binomials,
            &pool.class_counts(),
            pool.correct_class(),
            abstained,
        );
        let realized = self
            .grid
            .iter()
            .filter(|&&n| n <= self.size)
            .map(|&n| (prefix_majority(pool, n), subsets[n]))
            .collect();
        Fitted {
            fit: TaskFit {
                agent: self.agent.to_owned(),
                task_id: task_id.to_owned(),
                samples: pool.samples.len(),
                p_correct: plug.p_correct(),
                p_correct_ci: interval(&|d| d.p_correct()),
                delta: gap(&plug),
                delta_ci: interval(&gap),
                n_for,
                order,
                verifiers,
            },
            plug_in,
            draws,
            realized,
        }
    }

    /// For each verifier that scored every sample: the mean of the pool's
    /// best-of-n curve over n = 1…N, against the same of pools replicated
    /// from the posterior draws with the assumed verifier's verdicts; the
    /// p-value is the share of replicates at or below the observed mean.
    fn verifier_checks(
        &self,
        pool: &Pool,
        posterior: &[AnswerDistribution],
        rng: &mut impl rand::Rng,
    ) -> Vec<VerifierCheck> {
        let b = &self.binomials;
        let area = |scored: &[Scored]| {
            let curve = estimator::best_of_n_curve(b, scored).0;
            curve[1..].iter().sum::<f64>() / (curve.len() - 1).max(1) as f64
        };
        let scored_pools: Vec<(usize, Vec<Scored>)> = pool
            .scores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len() == pool.samples.len() && s.iter().all(|x| !x.is_nan()))
            .map(|(v, scores)| {
                let scored = pool
                    .samples
                    .iter()
                    .zip(scores)
                    .map(|(s, &score)| Scored {
                        score,
                        correct: s.1,
                        abstained: s.0.is_none(),
                    })
                    .collect();
                (v, scored)
            })
            .collect();
        if scored_pools.is_empty() {
            return Vec::new();
        }
        let replicated: Vec<f64> = posterior
            .iter()
            .map(|d| area(&replicate(d, self.size, self.options.verifier, rng)))
            .collect();
        let expected = replicated.iter().sum::<f64>() / replicated.len().max(1) as f64;
        scored_pools
            .into_iter()
            .map(|(v, scored)| {
                let observed = area(&scored);
                // Exact values on both sides: allow for rounding.
                let below = replicated
                    .iter()
                    .filter(|&&r| r <= observed + 1e-12)
                    .count();
                VerifierCheck {
                    verifier: self.verifiers[v].clone(),
                    check: Check {
                        statistic: observed,
                        expected,
                        p_value: (1 + below) as f64 / (1 + replicated.len()) as f64,
                        flagged: false,
                    },
                }
            })
            .collect()
    }

    /// Flag the tasks Benjamini–Hochberg rejects, per test, and list them.
    fn flag(&self, fitted: &mut [Fitted], out: &mut Vec<Departure>) {
        let fdr = self.options.fdr;
        let orders: Vec<f64> = fitted.iter().map(|f| f.fit.order.p_value).collect();
        for (f, rejected) in fitted.iter_mut().zip(benjamini_hochberg(&orders, fdr)) {
            f.fit.order.flagged = rejected;
            if rejected {
                let o = &f.fit.order;
                out.push(Departure {
                    agent: self.agent.to_owned(),
                    task_id: Some(f.fit.task_id.clone()),
                    kind: "order",
                    verifier: None,
                    n: None,
                    p_value: Some(o.p_value),
                    reason: format!(
                        "consecutive samples agree {} times where {:.1} are expected: the samples depend on each other",
                        o.statistic, o.expected
                    ),
                });
            }
        }
        for verifier in self.verifiers {
            let at: Vec<(usize, usize)> = fitted
                .iter()
                .enumerate()
                .filter_map(|(t, f)| {
                    let v = f
                        .fit
                        .verifiers
                        .iter()
                        .position(|c| &c.verifier == verifier)?;
                    Some((t, v))
                })
                .collect();
            let ps: Vec<f64> = at
                .iter()
                .map(|&(t, v)| fitted[t].fit.verifiers[v].check.p_value)
                .collect();
            for (&(t, v), rejected) in at.iter().zip(benjamini_hochberg(&ps, fdr)) {
                let f = &mut fitted[t];
                let c = &mut f.fit.verifiers[v].check;
                c.flagged = rejected;
                if rejected {
                    out.push(Departure {
                        agent: self.agent.to_owned(),
                        task_id: Some(f.fit.task_id.clone()),
                        kind: "verifier",
                        verifier: Some(verifier.clone()),
                        n: None,
                        p_value: Some(c.p_value),
                        reason: format!(
                            "best-of-n with {verifier} averages {:.1}% over n ≤ {}, where {} gives {:.1}%: the verifier is worse than assumed",
                            c.statistic * 100.0,
                            self.size,
                            verifier_text(self.options.verifier),
                            c.expected * 100.0
                        ),
                    });
                }
            }
        }
    }

    /// The agent's curves: mean predictions with their posterior band,
    /// `analyze`'s observed curves and the realized majority, and where the
    /// realized leaves what exchangeable samples give.
    fn mean_curves(
        &self,
        fitted: &[Fitted],
        analysis: &Analysis,
        tokens_per_sample: f64,
        out: &mut Prediction,
    ) {
        let tasks = fitted.len() as f64;
        for (r, rule) in RULES.iter().enumerate() {
            let observed_rule = match rule {
                Rule::Majority => "majority",
                Rule::BestOfN => "best_of_n",
                Rule::PassAtN => "pass@k",
            };
            // Best-of-n has one observed curve per verifier, or none.
            let mut verifiers: Vec<Option<String>> = analysis
                .curves
                .iter()
                .filter(|c| c.agent == self.agent && c.rule == observed_rule && c.n == 1)
                .map(|c| c.verifier.clone())
                .collect();
            if verifiers.is_empty() {
                verifiers.push(None);
            }
            for (g, &n) in self.grid.iter().enumerate() {
                let plug_in = fitted.iter().map(|f| f.plug_in[r][g]).sum::<f64>() / tasks;
                let means: Vec<f64> = (0..self.options.draws)
                    .map(|d| fitted.iter().map(|f| f.draws[r][d][g]).sum::<f64>() / tasks)
                    .collect();
                let predicted = means.iter().sum::<f64>() / means.len().max(1) as f64;
                let band =
                    percentile_interval(means.iter().map(|&m| Some(m)), self.options.confidence)
                        .0
                        .unwrap_or([predicted; 2]);
                let realized = (*rule == Rule::Majority && n <= self.size).then(|| {
                    let pairs = fitted.iter().map(|f| f.realized[g]);
                    exchangeability_z(pairs)
                });
                let departs = realized.is_some_and(|(_, z)| z.abs() > 3.0);
                if departs {
                    let (x, z) = realized.expect("departs only when realized");
                    let expected = fitted.iter().map(|f| f.realized[g].1).sum::<f64>() / tasks;
                    out.departures.push(Departure {
                        agent: self.agent.to_owned(),
                        task_id: None,
                        kind: "realized",
                        verifier: None,
                        n: Some(n),
                        p_value: None,
                        reason: format!(
                            "majority on the first {n} samples was right {:.1}% of the time where the same pools in any order give {:.1}% (z = {z:.1}): the samples depend on their order",
                            x * 100.0,
                            expected * 100.0
                        ),
                    });
                }
                for verifier in &verifiers {
                    let seen = analysis.curves.iter().find(|c| {
                        c.agent == self.agent
                            && c.rule == observed_rule
                            && c.n == n
                            && &c.verifier == verifier
                    });
                    out.curves.push(PredictedPoint {
                        agent: self.agent.to_owned(),
                        rule: rule.as_str(),
                        verifier: verifier.clone(),
                        n,
                        tokens: tokens_per_sample * n as f64,
                        predicted,
                        predicted_ci: band,
                        plug_in,
                        observed: seen.map(|c| c.accuracy),
                        observed_ci: seen.and_then(|c| Some([c.ci_low?, c.ci_high?])),
                        realized: realized.map(|(x, _)| x),
                        realized_z: realized.map(|(_, z)| z),
                        departs,
                    });
                }
            }
        }
    }
}

/// The mean realized value over tasks and its z against the mean of its
/// expectations. Given a pool's answers, exchangeable samples put a
/// uniformly random subset first, so the realized value has the subset
/// estimate e as its mean and, being in [0, 1], a variance of at most
/// e(1 − e); tasks are independent.
fn exchangeability_z(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut realized, mut difference, mut variance, mut tasks) = (0.0, 0.0, 0.0, 0f64);
    for (x, e) in pairs {
        realized += x;
        difference += x - e;
        variance += e * (1.0 - e);
        tasks += 1.0;
    }
    let z = if variance > 0.0 {
        difference / variance.sqrt()
    } else if difference.abs() > 1e-9 {
        // Every task certain, and still a difference.
        difference.signum() * f64::INFINITY
    } else {
        0.0
    };
    (realized / tasks.max(1.0), z)
}

/// A pool of `size` samples drawn from `d`, each scored 1 or 0 by a
/// verifier with the given error rates (abstentions are never accepted).
fn replicate(
    d: &AnswerDistribution,
    size: usize,
    verifier: Verifier,
    rng: &mut impl rand::Rng,
) -> Vec<Scored> {
    (0..size)
        .map(|_| {
            let mut u: f64 = rng.random();
            let class = d.p.iter().position(|&p| {
                u -= p;
                u < 0.0
            });
            let correct = class == Some(d.correct);
            let accepted = match class {
                None => false,
                Some(_) if correct => rng.random::<f64>() >= verifier.fn_,
                Some(_) => rng.random::<f64>() < verifier.fp,
            };
            Scored {
                score: f64::from(u8::from(accepted)),
                correct,
                abstained: class.is_none(),
            }
        })
        .collect()
}

/// A pool's answer counts, its correct answer's index (appended with count
/// 0 when no sample gave it) and its abstentions.
fn shares(pool: &Pool) -> (Vec<usize>, usize, usize) {
    let mut counts = pool.class_counts();
    let correct = pool.correct_class().unwrap_or_else(|| {
        counts.push(0);
        counts.len() - 1
    });
    let abstained = pool.samples.iter().filter(|s| s.0.is_none()).count();
    (counts, correct, abstained)
}

/// A fitted distribution: answer probabilities (which sum with `abstain`
/// to 1 by construction) and the correct one.
fn distribution(p: Vec<f64>, correct: usize, abstain: f64) -> AnswerDistribution {
    // Rounding can make the sum exceed 1 by an ulp; renormalize first.
    let sum: f64 = p.iter().sum::<f64>() + abstain;
    let p: Vec<f64> = p.into_iter().map(|x| x / sum).collect();
    AnswerDistribution::new(p, correct, true).expect("shares of a pool form a distribution")
}

/// One draw of the Dirichlet posterior over the pool's answers (and
/// abstention when the pool has some), by normalized Gamma draws.
fn dirichlet_draw(
    counts: &[usize],
    correct: usize,
    abstained: usize,
    prior: f64,
    rng: &mut impl rand::Rng,
) -> AnswerDistribution {
    let mut gamma = |count: usize| {
        Gamma::new(count as f64 + prior, 1.0)
            .expect("positive shape")
            .sample(rng)
    };
    let p: Vec<f64> = counts.iter().map(|&c| gamma(c)).collect();
    let abstain = if abstained > 0 { gamma(abstained) } else { 0.0 };
    let total = p.iter().sum::<f64>() + abstain;
    if total <= 0.0 || !total.is_finite() {
        // Every Gamma draw underflowed (a tiny prior): fall back to the shares.
        let n = (counts.iter().sum::<usize>() + abstained).max(1) as f64;
        return distribution(
            counts.iter().map(|&c| c as f64 / n).collect(),
            correct,
            abstained as f64 / n,
        );
    }
    distribution(
        p.into_iter().map(|x| x / total).collect(),
        correct,
        abstain / total,
    )
}

/// The correct answer's probability minus the likeliest wrong one's.
fn gap(d: &AnswerDistribution) -> f64 {
    let wrong =
        d.p.iter()
            .enumerate()
            .filter(|&(i, _)| i != d.correct)
            .map(|(_, &x)| x)
            .fold(0.0, f64::max);
    d.p_correct() - wrong
}

/// Majority of the pool's first `n` samples: 1 when the correct answer leads
/// alone, 1/t when it ties with t − 1 others, else 0.
fn prefix_majority(pool: &Pool, n: usize) -> f64 {
    let Some(correct) = pool.correct_class() else {
        return 0.0;
    };
    let mut counts = vec![0usize; pool.answers.len()];
    for c in pool.samples[..n].iter().filter_map(|s| s.0) {
        counts[c] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0);
    if top == 0 || counts[correct] < top {
        return 0.0;
    }
    1.0 / counts.iter().filter(|&&c| c == top).count() as f64
}

/// Consecutive samples with the same answer (abstentions count as one
/// answer), against random orders of the same pool.
fn order_test(pool: &Pool, permutations: usize, rng: &mut impl rand::Rng) -> Check {
    let mut classes: Vec<usize> = pool
        .samples
        .iter()
        .map(|s| s.0.map_or(0, |c| c + 1))
        .collect();
    let agreements = |xs: &[usize]| xs.windows(2).filter(|w| w[0] == w[1]).count();
    let observed = agreements(&classes);
    let n = classes.len();
    let mut counts = vec![0usize; pool.answers.len() + 1];
    for &c in &classes {
        counts[c] += 1;
    }
    let expected = if n > 0 {
        counts
            .iter()
            .map(|&c| (c * c.saturating_sub(1)) as f64)
            .sum::<f64>()
            / n as f64
    } else {
        0.0
    };
    let mut as_extreme = 0;
    for _ in 0..permutations {
        // Fisher–Yates.
        for i in (1..n).rev() {
            classes.swap(i, rng.random_range(0..=i));
        }
        as_extreme += usize::from(agreements(&classes) >= observed);
    }
    Check {
        statistic: observed as f64,
        expected,
        p_value: (1 + as_extreme) as f64 / (1 + permutations) as f64,
        flagged: false,
    }
}

/// Which of `p_values` Benjamini–Hochberg rejects at false discovery rate `fdr`.
fn benjamini_hochberg(p_values: &[f64], fdr: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let m = p_values.len() as f64;
    let passed = order
        .iter()
        .enumerate()
        .rev()
        .find(|&(k, &i)| p_values[i] <= fdr * (k + 1) as f64 / m)
        .map_or(0, |(k, _)| k + 1);
    let mut rejected = vec![false; p_values.len()];
    for &i in &order[..passed] {
        rejected[i] = true;
    }
    rejected
}

impl Prediction {
    /// Per agent: each rule at n = 1, 2, 4, … (predicted with its band,
    /// observed and realized), then the departures.
    pub fn table(&self) -> String {
        let mut out = format!(
            "run {} · {} · predicted from each task's pool (posterior mean and {:.0}% band over {} draws, and the plug-in; best-of-n under {})\n",
            self.run_id,
            self.name,
            self.assumptions.confidence * 100.0,
            self.assumptions.draws,
            verifier_text(self.assumptions.verifier),
        );
        let agents = super::first_seen(self.curves.iter().map(|x| x.agent.as_str()));
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        for agent in agents {
            let mut t = Table::new();
            t.load_style(presets::UTF8_FULL_CONDENSED);
            t.set_header([
                "rule",
                "n",
                "predicted",
                "band",
                "plug-in",
                "observed",
                "realized",
                "",
            ]);
            let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
            for c in self.curves.iter().filter(|c| c.agent == agent) {
                let rule = match &c.verifier {
                    Some(v) => format!("{} [{v}]", c.rule),
                    None => c.rule.to_owned(),
                };
                t.add_row([
                    Cell::new(rule),
                    right(c.n.to_string()),
                    right(pct(c.predicted)),
                    Cell::new(format!(
                        "[{}, {}]",
                        pct(c.predicted_ci[0]),
                        pct(c.predicted_ci[1])
                    )),
                    right(pct(c.plug_in)),
                    right(c.observed.map_or("-".into(), pct)),
                    right(c.realized.map_or("-".into(), pct)),
                    Cell::new(if c.departs { "departs" } else { "" }),
                ]);
            }
            let fits: Vec<&TaskFit> = self.tasks.iter().filter(|f| f.agent == agent).collect();
            out.push_str(&format!("agent {agent} · {} tasks\n{t}\n", fits.len()));
            let majority_n: Vec<Option<usize>> = fits
                .iter()
                .map(|f| {
                    f.n_for
                        .iter()
                        .find(|x| x.rule == "majority")
                        .and_then(|x| x.n)
                })
                .collect();
            let mut reached: Vec<usize> = majority_n.iter().flatten().copied().collect();
            reached.sort_unstable();
            if let Some(&median) = reached.get(reached.len() / 2) {
                out.push_str(&format!(
                    "majority reaches {} on {} of {} tasks within n ≤ {} (median n {median}); the rest need Δ > 0\n",
                    pct(1.0 - self.assumptions.delta),
                    reached.len(),
                    fits.len(),
                    self.assumptions.search_n,
                ));
            }
        }
        if self.departures.is_empty() {
            out.push_str("no departure from the prediction\n");
        }
        let mut groups: Vec<(&str, &str, Vec<&Departure>)> = Vec::new();
        for d in &self.departures {
            match groups
                .iter_mut()
                .find(|(agent, kind, _)| *agent == d.agent && *kind == d.kind)
            {
                Some((_, _, found)) => found.push(d),
                None => groups.push((&d.agent, d.kind, vec![d])),
            }
        }
        for (agent, kind, found) in groups {
            if kind == "realized" {
                for d in &found {
                    out.push_str(&format!("departs · {agent} · {}\n", d.reason));
                }
                continue;
            }
            // Task-level departures often come by the hundred: one line each
            // kind, a few named, the rest in the JSON.
            let named: Vec<&str> = found
                .iter()
                .filter_map(|d| d.task_id.as_deref())
                .take(3)
                .collect();
            out.push_str(&format!(
                "departs · {agent} · {} tasks ({}{}) · e.g. {}: {}\n",
                found.len(),
                named.join(", "),
                if found.len() > named.len() {
                    ", …"
                } else {
                    ""
                },
                named[0],
                found[0].reason
            ));
        }
        out
    }
}

fn verifier_text(v: Verifier) -> String {
    if v == Verifier::PERFECT {
        "a perfect verifier".into()
    } else {
        format!("a verifier with fp = {}, fn = {}", v.fp, v.fn_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(classes: &[Option<usize>], answers: usize, correct: usize) -> Pool {
        Pool {
            agent: 0,
            task: 0,
            answers: (0..answers).map(|i| i.to_string()).collect(),
            samples: classes
                .iter()
                .map(|&c| (c, c == Some(correct), 10))
                .collect(),
            scores: Vec::new(),
            errored: false,
            verifier_tokens: Vec::new(),
        }
    }

    #[test]
    fn prefix_majority_splits_ties_like_the_strategies() {
        let p = pool(&[Some(0), Some(1), Some(1), Some(0), None], 2, 0);
        assert_eq!(prefix_majority(&p, 1), 1.0);
        assert_eq!(prefix_majority(&p, 2), 0.5);
        assert_eq!(prefix_majority(&p, 3), 0.0);
        assert_eq!(prefix_majority(&p, 5), 0.5);
    }

    #[test]
    fn order_test_expectation_is_the_mean_over_all_orders() {
        // Brute force over every order of a small pool.
        let classes = [Some(0), Some(0), Some(1), Some(1), Some(1), None];
        let p = pool(&classes, 2, 0);
        let mut rng = seed::rng(1, &[]);
        let test = order_test(&p, 10, &mut rng);
        let mut total = 0usize;
        let mut orders = 0usize;
        let mut idx: Vec<usize> = (0..classes.len()).collect();
        permute(&mut idx, 0, &mut |o| {
            total += o
                .windows(2)
                .filter(|w| classes[w[0]] == classes[w[1]])
                .count();
            orders += 1;
        });
        assert!((test.expected - total as f64 / orders as f64).abs() < 1e-12);
        assert_eq!(test.statistic, 3.0);
    }

    fn permute(xs: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == xs.len() {
            return f(xs);
        }
        for i in k..xs.len() {
            xs.swap(k, i);
            permute(xs, k + 1, f);
            xs.swap(k, i);
        }
    }

    #[test]
    fn blocks_of_one_answer_fail_the_order_test_and_shuffled_ones_pass() {
        let blocked: Vec<Option<usize>> = (0..64).map(|i| Some((i / 8) % 3)).collect();
        let mut rng = seed::rng(2, &[]);
        assert!(order_test(&pool(&blocked, 3, 0), 999, &mut rng).p_value < 0.01);
        let mixed: Vec<Option<usize>> = (0..64).map(|i| Some(i % 3)).collect();
        assert!(order_test(&pool(&mixed, 3, 0), 999, &mut rng).p_value > 0.5);
    }

    #[test]
    fn benjamini_hochberg_matches_a_hand_computation() {
        // p-values 0.001, 0.02, 0.03, 0.5 sorted against k/m·rate: at 0.1
        // the thresholds are 0.025, 0.05, 0.075, 0.1 (three pass); at 0.05,
        // 0.0125, 0.025, 0.0375, 0.05 (still three: 0.03 ≤ 0.0375); at
        // 0.01, 0.0025, … (only the first).
        let ps = [0.03, 0.5, 0.001, 0.02];
        assert_eq!(benjamini_hochberg(&ps, 0.1), [true, false, true, true]);
        assert_eq!(benjamini_hochberg(&ps, 0.05), [true, false, true, true]);
        assert_eq!(benjamini_hochberg(&ps, 0.01), [false, false, true, false]);
        // A later p under its threshold rejects every smaller one too.
        assert_eq!(benjamini_hochberg(&[0.04, 0.045], 0.05), [true, true]);
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
    }

    #[test]
    fn exchangeability_z_is_zero_at_the_expectation_and_signed() {
        assert_eq!(
            exchangeability_z([(1.0, 1.0), (0.0, 0.0)].into_iter()),
            (0.5, 0.0)
        );
        let (mean, z) = exchangeability_z([(0.0, 0.5), (0.0, 0.5)].into_iter());
        assert_eq!(mean, 0.0);
        // Σ(x − e) = −1 over √(Σ e(1 − e)) = √0.5.
        assert!((z + 1.0 / 0.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn replicated_pools_follow_the_distribution_and_the_verifier() {
        let d = AnswerDistribution::new(vec![0.5, 0.3], 0, true).unwrap();
        let v = Verifier { fp: 0.2, fn_: 0.1 };
        let mut rng = seed::rng(4, &[]);
        let pool = replicate(&d, 100_000, v, &mut rng);
        let share = |f: &dyn Fn(&Scored) -> bool| {
            pool.iter().filter(|s| f(s)).count() as f64 / pool.len() as f64
        };
        // P(correct and accepted) = 0.5·0.9, P(wrong and accepted) = 0.3·0.2.
        for (got, want) in [
            (share(&|s| s.correct), 0.5),
            (share(&|s| s.abstained), 0.2),
            (share(&|s| s.correct && s.score == 1.0), 0.45),
            (
                share(&|s| !s.correct && !s.abstained && s.score == 1.0),
                0.06,
            ),
            (share(&|s| s.abstained && s.score == 1.0), 0.0),
        ] {
            assert!((got - want).abs() < 0.006, "{got} vs {want}");
        }
    }

    #[test]
    fn dirichlet_draws_have_the_posterior_mean() {
        // Dirichlet(c + α): E[p_i] = (c_i + α) / Σ(c + α).
        let counts = [6, 3, 0];
        let mut rng = seed::rng(3, &[]);
        let draws = 20_000;
        let mut sums = [0.0; 4];
        for _ in 0..draws {
            let d = dirichlet_draw(&counts, 0, 1, 0.5, &mut rng);
            for (s, x) in sums.iter_mut().zip(d.p.iter().chain([&d.abstain])) {
                *s += x;
            }
        }
        let total = 6.0 + 3.0 + 0.0 + 1.0 + 4.0 * 0.5;
        for (s, c) in sums.iter().zip([6.0, 3.0, 0.0, 1.0]) {
            let mean = (c + 0.5) / total;
            assert!((s / draws as f64 - mean).abs() < 0.005, "{s} vs {mean}");
        }
    }
}
