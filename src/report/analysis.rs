//! `crucible analyze`: scaling curves from a stored run's sample pools, with
//! no new model calls.
//!
//! For each agent's pool of N samples per task, every aggregation rule
//! (majority, pass@k, and best-of-n and weighted majority for each verifier
//! that scored the pool) gets its expected accuracy at every n ≤ N from the
//! estimators in [`crate::stats::estimator`]: exact expectations over all size-n
//! subsets of the pool, averaged over tasks, with percentile-bootstrap
//! intervals over tasks. Each task also gets its estimated answer
//! distribution, p̂ of the correct answer and Δ̂. Reads go through
//! [`crate::store`]; this module touches neither SQLite nor the network.

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use super::regret::{self, PolicyRegret};
use crate::seed::{self, Part};
use crate::stats::bootstrap;
use crate::stats::estimator::{self, Binomials, Scored, Weighted};
use crate::stats::strategy::UNSCORED;
use crate::store::{Store, StoreError};

/// How `analyze` computes its intervals and estimates.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Bootstrap replicates over tasks (0: no intervals).
    pub bootstrap: usize,
    /// Random orders of each pool behind a weighted-majority estimate, for
    /// pools too large to enumerate; `None`: enough for the curve's Monte
    /// Carlo standard error to stay under [`TARGET_MC_SE`].
    pub permutations: Option<usize>,
    /// Coverage of the intervals, e.g. 0.95.
    pub confidence: f64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            bootstrap: 1000,
            permutations: None,
            confidence: 0.95,
        }
    }
}

/// Everything `analyze` reports about one run.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub run_id: i64,
    pub name: String,
    pub agents: Vec<AgentPools>,
    pub curves: Vec<CurvePoint>,
    pub tasks: Vec<TaskEstimate>,
    /// Self-correction over experts: each strategy's regret by round
    /// ([`super::regret`], which needs the run's scenario; filled by the caller).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regret: Vec<PolicyRegret>,
}

/// What was analyzed of one agent's pools.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPools {
    pub agent: String,
    /// Samples per task (the largest pool).
    pub pool_size: usize,
    /// Tasks in the curves: a full pool and an expected answer.
    pub tasks: usize,
    /// Tasks left out of the curves because their pool is smaller (an
    /// interrupted run) or they have no expected answer.
    pub skipped: usize,
    /// Tasks left out because a call of their pool failed (errors, which
    /// `crucible resume` retries).
    pub errors: usize,
    /// Verifiers that scored every sample of the pools, so they have curves.
    pub verifiers: Vec<String>,
}

/// One point of one curve: a rule's mean accuracy over tasks at `n` samples.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub agent: String,
    /// `majority`, `pass@k`, `best_of_n` or `weighted_majority`.
    pub rule: &'static str,
    /// The verifier behind `best_of_n` and `weighted_majority`.
    pub verifier: Option<String>,
    pub n: usize,
    pub accuracy: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Expected tokens spent on `n` samples of a task: the generator's, and
    /// for a rule with a verifier that calls a model, the verifier's.
    pub mean_tokens: f64,
    /// The verifier's part of `mean_tokens`.
    pub mean_verifier_tokens: f64,
    /// Probability the rule answers nothing (`None` for pass@k).
    pub abstain: Option<f64>,
    /// Whether `accuracy` is an exact expectation (else a Monte Carlo estimate).
    pub exact: bool,
    /// Monte Carlo standard error of `accuracy`, when estimated.
    pub mc_se: Option<f64>,
}

/// One task's pool, summarized.
#[derive(Debug, Clone, Serialize)]
pub struct TaskEstimate {
    pub task_id: String,
    pub agent: String,
    pub samples: usize,
    pub abstained: usize,
    /// Share of the pool giving the expected answer (`None` without one).
    pub p_correct: Option<f64>,
    /// p̂ of the correct answer minus p̂ of the most frequent wrong one.
    pub delta: Option<f64>,
    /// Every distinct answer with its share of the pool, most frequent first.
    pub answers: Vec<AnswerShare>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerShare {
    pub answer: String,
    pub share: f64,
    pub correct: bool,
}

/// One (agent, task) pool as read from the store, its samples in order.
pub(super) struct Pool {
    pub(super) agent: usize,
    pub(super) task: usize,
    pub(super) answers: Vec<String>,
    /// Per sample: answer class (None: abstention), correct, tokens.
    pub(super) samples: Vec<(Option<usize>, bool, u64)>,
    /// Per verifier (by interned index): the score of each sample (NaN: none).
    pub(super) scores: Vec<Vec<f64>>,
    /// Whether a call of the pool failed: the pool is not one to estimate from.
    pub(super) errored: bool,
    /// Tokens each verifier's model spent on the whole pool, by verifier
    /// name, when the stored pool row says (graph runs need it: their
    /// judges' calls have no sample rows to join to).
    pub(super) verifier_tokens: Vec<(String, u64)>,
}

impl Pool {
    pub(super) fn correct_class(&self) -> Option<usize> {
        self.samples.iter().find(|s| s.1).and_then(|s| s.0)
    }

    pub(super) fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.answers.len()];
        for c in self.samples.iter().filter_map(|s| s.0) {
            counts[c] += 1;
        }
        counts
    }
}

/// Read `run_id`'s pools and compute its curves and per-task estimates.
pub fn analyze(
    store: &Store,
    run_id: i64,
    options: &AnalyzeOptions,
) -> Result<Analysis, StoreError> {
    let run = store.run_tasks(run_id)?;
    let verifier_tokens = store.verifier_tokens_per_sample(run_id)?;
    let Pools {
        agents,
        verifiers,
        pools,
    } = read_pools(store, run_id, run.tasks.len())?;
    let mut analysis = Analysis {
        run_id,
        name: run.name.clone(),
        agents: Vec::new(),
        curves: Vec::new(),
        tasks: pools
            .iter()
            .filter(|p| !p.errored)
            .map(|p| task_estimate(p, &run.tasks[p.task], &agents[p.agent]))
            .collect(),
        regret: Vec::new(),
    };
    for (ai, agent) in agents.iter().enumerate() {
        let errors = pools.iter().filter(|p| p.agent == ai && p.errored).count();
        let mine: Vec<&Pool> = pools
            .iter()
            .filter(|p| p.agent == ai && !p.errored)
            .collect();
        let size = mine.iter().map(|p| p.samples.len()).max().unwrap_or(0);
        let full: Vec<&Pool> = mine
            .iter()
            .copied()
            .filter(|p| p.samples.len() == size && run.tasks[p.task].1.is_some())
            .collect();
        let scored: Vec<usize> = (0..verifiers.len())
            .filter(|&v| {
                !full.is_empty()
                    && full.iter().all(|p| {
                        let s = &p.scores[v];
                        s.len() == p.samples.len() && s.iter().all(|x| !x.is_nan())
                    })
            })
            .collect();
        analysis.agents.push(AgentPools {
            agent: agent.clone(),
            pool_size: size,
            tasks: full.len(),
            skipped: mine.len() - full.len(),
            errors,
            verifiers: scored.iter().map(|&v| verifiers[v].clone()).collect(),
        });
        if full.is_empty() {
            continue;
        }
        let rules = rules_for(&scored);
        let context = CurveContext {
            binomials: Binomials::new(size),
            rules: &rules,
            size,
            seed: run.seed,
            agent,
            task_ids: &run.tasks,
            permutations: options
                .permutations
                .unwrap_or_else(|| auto_permutations(full.len())),
        };
        let table = context.evaluate(&full);
        let mut rng = seed::rng(run.seed, &[Part::Str("bootstrap"), Part::Str(agent)]);
        let intervals = bootstrap::intervals(
            &table.accuracy,
            full.len(),
            rules.len() * size,
            options.bootstrap,
            options.confidence,
            &mut rng,
        );
        let tasks = full.len() as f64;
        let tokens_per_sample = table.tokens / tasks;
        for (r, rule) in rules.iter().enumerate() {
            let verifier_per_sample = rule.verifier().map_or(0.0, |v| {
                pooled_verifier_tokens(&full, &verifiers[v], size).unwrap_or_else(|| {
                    verifier_tokens
                        .iter()
                        .find(|(a, name, _)| a == agent && *name == verifiers[v])
                        .map_or(0.0, |t| t.2)
                })
            });
            for n in 1..=size {
                let col = r * size + n - 1;
                let (ci_low, ci_high) = intervals.get(col).copied().unzip();
                analysis.curves.push(CurvePoint {
                    agent: agent.clone(),
                    rule: rule.name(),
                    verifier: rule.verifier().map(|v| verifiers[v].clone()),
                    n,
                    accuracy: table.sums[col] / tasks,
                    ci_low,
                    ci_high,
                    mean_tokens: (tokens_per_sample + verifier_per_sample) * n as f64,
                    mean_verifier_tokens: verifier_per_sample * n as f64,
                    abstain: (!matches!(rule, Rule::PassAtK)).then(|| table.abstain[col] / tasks),
                    exact: !table.estimated[r],
                    mc_se: table.estimated[r].then(|| table.variance[col].sqrt() / tasks),
                });
            }
        }
    }
    Ok(analysis)
}

/// Mean tokens `verifier`'s model spent per sample of `pools` (each of
/// `size` samples), when their stored rows say; `None` when none does.
fn pooled_verifier_tokens(pools: &[&Pool], verifier: &str, size: usize) -> Option<f64> {
    let totals: Vec<u64> = pools
        .iter()
        .filter_map(|p| p.verifier_tokens.iter().find(|(v, _)| v == verifier))
        .map(|(_, t)| *t)
        .collect();
    (totals.len() == pools.len() && !totals.is_empty())
        .then(|| totals.iter().sum::<u64>() as f64 / (pools.len() * size) as f64)
}

/// A run's pools in (agent, task) order, with the names their indices refer to.
#[derive(Default)]
pub(super) struct Pools {
    pub(super) agents: Vec<String>,
    pub(super) verifiers: Vec<String>,
    pub(super) pools: Vec<Pool>,
}

impl Pools {
    /// Verifiers in name order (interned in reading order, which depends on
    /// the order samples were written), each pool's scores with them.
    fn in_verifier_order(mut self) -> Pools {
        let mut order: Vec<usize> = (0..self.verifiers.len()).collect();
        order.sort_by(|&a, &b| self.verifiers[a].cmp(&self.verifiers[b]));
        self.verifiers = order.iter().map(|&v| self.verifiers[v].clone()).collect();
        for pool in &mut self.pools {
            let mut scores = std::mem::take(&mut pool.scores);
            scores.resize(order.len(), Vec::new());
            pool.scores = order
                .iter()
                .map(|&v| std::mem::take(&mut scores[v]))
                .collect();
        }
        self
    }

    /// These pools and `stored`'s of agents these have none of, in
    /// (agent, task) order.
    fn with_missing_agents(self, stored: Pools) -> Pools {
        let mut tagged: Vec<(String, &[String], Pool)> = Vec::new();
        for p in self.pools {
            tagged.push((self.agents[p.agent].clone(), &self.verifiers, p));
        }
        for p in stored.pools {
            let name = &stored.agents[p.agent];
            if !self.agents.contains(name) {
                tagged.push((name.clone(), &stored.verifiers, p));
            }
        }
        tagged.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.task.cmp(&b.2.task)));
        let mut out = Pools::default();
        for (name, verifiers, mut pool) in tagged {
            pool.agent = out.agent(&name);
            for (v, values) in std::mem::take(&mut pool.scores).into_iter().enumerate() {
                if values.is_empty() {
                    continue;
                }
                let at = out.verifier(&verifiers[v]);
                if pool.scores.len() <= at {
                    pool.scores.resize(at + 1, Vec::new());
                }
                pool.scores[at] = values;
            }
            out.pools.push(pool);
        }
        out
    }

    fn agent(&mut self, name: &str) -> usize {
        if self.agents.last().is_none_or(|a| a != name) {
            self.agents.push(name.to_owned());
        }
        self.agents.len() - 1
    }

    fn verifier(&mut self, name: &str) -> usize {
        self.verifiers
            .iter()
            .position(|x| x == name)
            .unwrap_or_else(|| {
                self.verifiers.push(name.to_owned());
                self.verifiers.len() - 1
            })
    }
}

/// `run_id`'s pools: from the stored pool rows when every one of its `tasks`
/// has them (a finished run), else from its samples and scores.
pub(super) fn read_pools(store: &Store, run_id: i64, tasks: usize) -> Result<Pools, StoreError> {
    let with_pools = store.tasks_with_pools(run_id)?;
    let pools = if tasks > 0 && with_pools == tasks {
        read_stored_pools(store, run_id)?
    } else {
        // Scores come from their own table: read them beside the samples, on
        // a second connection.
        let path = store.path().to_path_buf();
        let from_samples = std::thread::scope(|s| {
            let scores = s.spawn(move || read_scores(&path, run_id));
            read_samples_then_merge(store, run_id, scores)
        })?;
        // Graph runs have no sample rows: their finished tasks' pools are
        // only stored.
        if with_pools > 0 {
            from_samples.with_missing_agents(read_stored_pools(store, run_id)?)
        } else {
            from_samples
        }
    };
    Ok(pools.in_verifier_order())
}

fn read_stored_pools(store: &Store, run_id: i64) -> Result<Pools, StoreError> {
    let mut read = Pools::default();
    store.for_each_pool(run_id, |stored| {
        let agent = read.agent(&stored.agent);
        let verifier_tokens = stored
            .scores
            .iter()
            .zip(&stored.verifier_tokens)
            .map(|((name, _), tokens)| (name.clone(), tokens.iter().sum()))
            .collect();
        let mut scores = Vec::new();
        for (name, values) in stored.scores {
            let v = read.verifier(&name);
            if scores.len() <= v {
                scores.resize(v + 1, Vec::new());
            }
            scores[v] = values;
        }
        read.pools.push(Pool {
            agent,
            task: stored.task_index,
            answers: stored.answers,
            samples: stored
                .samples
                .into_iter()
                .map(|(class, correct, tokens)| (class.map(|c| c as usize), correct, tokens))
                .collect(),
            scores,
            // Only finished tasks leave a pool row, and a finished task has no errors.
            errored: false,
            verifier_tokens,
        });
    })?;
    Ok(read)
}

/// Verifier names, and every score of `run_id` as (sample id, verifier, score).
type Scores = (Vec<String>, Vec<(i64, u32, f64)>);

fn read_scores(path: &std::path::Path, run_id: i64) -> Result<Scores, StoreError> {
    let store = Store::open(path)?;
    let mut names = Pools::default();
    let mut rows = Vec::new();
    let Some(ids) = store.sample_id_range(run_id)? else {
        return Ok((names.verifiers, rows));
    };
    let mut last: Option<u32> = None;
    store.for_each_score(ids, |id, verifier, score| {
        let v = match last {
            Some(v) if names.verifiers[v as usize] == verifier => v,
            _ => names.verifier(verifier) as u32,
        };
        last = Some(v);
        rows.push((id, v, score.unwrap_or(UNSCORED)));
    })?;
    Ok((names.verifiers, rows))
}

fn read_samples_then_merge(
    store: &Store,
    run_id: i64,
    scores: std::thread::ScopedJoinHandle<'_, Result<Scores, StoreError>>,
) -> Result<Pools, StoreError> {
    let mut read = Pools::default();
    // (sample id, pool, position), in the store's (agent, task, sample) order.
    let mut ids: Vec<(i64, u32, u32)> = Vec::new();
    store.for_each_pool_sample(run_id, |row| {
        let same = read
            .pools
            .last()
            .is_some_and(|p| p.task == row.task_index && read.agents[p.agent] == row.agent);
        if !same {
            let agent = read.agent(row.agent);
            read.pools.push(Pool {
                agent,
                task: row.task_index,
                answers: Vec::new(),
                samples: Vec::new(),
                scores: Vec::new(),
                errored: false,
                verifier_tokens: Vec::new(),
            });
        }
        let index = (read.pools.len() - 1) as u32;
        let pool = read.pools.last_mut().expect("pushed above");
        let class = row.normalized.map(|a| {
            pool.answers.iter().position(|x| x == a).unwrap_or_else(|| {
                pool.answers.push(a.to_owned());
                pool.answers.len() - 1
            })
        });
        pool.errored |= row.errored;
        ids.push((row.sample_id, index, pool.samples.len() as u32));
        pool.samples
            .push((class, row.correct == Some(true), row.tokens));
    })?;
    let (verifiers, scores) = scores.join().expect("score reader")?;
    read.verifiers = verifiers;
    if let (Some(lo), Some(hi)) = (ids.iter().map(|i| i.0).min(), ids.iter().map(|i| i.0).max()) {
        // Dense map from sample id to (pool, position): ids of one run are
        // nearly contiguous.
        let mut slot = vec![(u32::MAX, 0u32); (hi - lo + 1) as usize];
        for &(id, p, pos) in &ids {
            slot[(id - lo) as usize] = (p, pos);
        }
        for (id, v, score) in scores {
            let Some(&(p, pos)) = usize::try_from(id - lo).ok().and_then(|i| slot.get(i)) else {
                continue;
            };
            if p == u32::MAX {
                continue;
            }
            let (v, pool) = (v as usize, &mut read.pools[p as usize]);
            if pool.scores.len() <= v {
                pool.scores.resize(v + 1, Vec::new());
            }
            if pool.scores[v].is_empty() {
                pool.scores[v] = vec![f64::NAN; pool.samples.len()];
            }
            pool.scores[v][pos as usize] = score;
        }
    }
    Ok(read)
}

fn task_estimate(
    pool: &Pool,
    (task_id, expected): &(String, Option<String>),
    agent: &str,
) -> TaskEstimate {
    let total = pool.samples.len().max(1) as f64;
    let counts = pool.class_counts();
    let correct = pool.correct_class();
    let mut answers: Vec<AnswerShare> = pool
        .answers
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(i, (a, &c))| AnswerShare {
            answer: a.clone(),
            share: c as f64 / total,
            correct: Some(i) == correct,
        })
        .collect();
    answers.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.answer.cmp(&b.answer)));
    let p = correct.map_or(0.0, |c| counts[c] as f64 / total);
    let top_wrong = answers.iter().find(|a| !a.correct).map_or(0.0, |a| a.share);
    TaskEstimate {
        task_id: task_id.clone(),
        agent: agent.to_owned(),
        samples: pool.samples.len(),
        abstained: pool.samples.iter().filter(|s| s.0.is_none()).count(),
        p_correct: expected.is_some().then_some(p),
        delta: expected.is_some().then_some(p - top_wrong),
        answers,
    }
}

/// Standard error that automatic permutation counts aim at for a curve's
/// weighted-majority mean (0.1 percentage points).
pub const TARGET_MC_SE: f64 = 0.001;

/// Permutations per pool so that the mean over `tasks` pools has a Monte
/// Carlo standard error of at most [`TARGET_MC_SE`]: each pool's estimate
/// has variance at most 1/(4P), so the mean's is at most 1/(4PT).
fn auto_permutations(tasks: usize) -> usize {
    let needed = 1.0 / (4.0 * tasks.max(1) as f64 * TARGET_MC_SE * TARGET_MC_SE);
    (needed.ceil() as usize).clamp(20, 5000)
}

/// An aggregation rule with a curve.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Majority,
    PassAtK,
    BestOfN(usize),
    Weighted(usize),
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Majority => "majority",
            Rule::PassAtK => "pass@k",
            Rule::BestOfN(_) => "best_of_n",
            Rule::Weighted(_) => "weighted_majority",
        }
    }

    fn verifier(self) -> Option<usize> {
        match self {
            Rule::BestOfN(v) | Rule::Weighted(v) => Some(v),
            Rule::Majority | Rule::PassAtK => None,
        }
    }
}

fn rules_for(verifiers: &[usize]) -> Vec<Rule> {
    let mut rules = vec![Rule::Majority, Rule::PassAtK];
    rules.extend(verifiers.iter().map(|&v| Rule::BestOfN(v)));
    rules.extend(verifiers.iter().map(|&v| Rule::Weighted(v)));
    rules
}

/// Per-task curves of every rule, as a tasks × (rules × n) table, with the
/// column sums the means come from.
struct CurveTable {
    /// Row-major, one row per task: accuracy of rule r at n in column r·N + n − 1.
    accuracy: Vec<f32>,
    sums: Vec<f64>,
    abstain: Vec<f64>,
    /// Summed Monte Carlo variances (0 where every pool's value is exact).
    variance: Vec<f64>,
    /// Per rule: whether any pool's value is a Monte Carlo estimate.
    estimated: Vec<bool>,
    /// Mean tokens per sample, summed over tasks.
    tokens: f64,
}

struct CurveContext<'a> {
    binomials: Binomials,
    rules: &'a [Rule],
    size: usize,
    seed: u64,
    agent: &'a str,
    task_ids: &'a [(String, Option<String>)],
    permutations: usize,
}

impl CurveContext<'_> {
    /// Every rule's curve on every pool, split across threads; the result
    /// does not depend on how many.
    fn evaluate(&self, pools: &[&Pool]) -> CurveTable {
        let cols = self.rules.len() * self.size;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = pools.len().div_ceil(threads).max(1);
        let mut accuracy = vec![0f32; pools.len() * cols];
        let parts: Vec<CurveTable> = std::thread::scope(|s| {
            let handles: Vec<_> = pools
                .chunks(chunk)
                .zip(accuracy.chunks_mut(chunk * cols))
                .map(|(mine, rows)| s.spawn(move || self.evaluate_chunk(mine, rows)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("curve thread"))
                .collect()
        });
        let mut total = CurveTable {
            accuracy,
            sums: vec![0.0; cols],
            abstain: vec![0.0; cols],
            variance: vec![0.0; cols],
            estimated: vec![false; self.rules.len()],
            tokens: 0.0,
        };
        for part in parts {
            add(&mut total.sums, &part.sums);
            add(&mut total.abstain, &part.abstain);
            add(&mut total.variance, &part.variance);
            for (all, one) in total.estimated.iter_mut().zip(&part.estimated) {
                *all |= one;
            }
            total.tokens += part.tokens;
        }
        total
    }

    fn evaluate_chunk(&self, pools: &[&Pool], rows: &mut [f32]) -> CurveTable {
        let (size, cols) = (self.size, self.rules.len() * self.size);
        let mut part = CurveTable {
            accuracy: Vec::new(),
            sums: vec![0.0; cols],
            abstain: vec![0.0; cols],
            variance: vec![0.0; cols],
            estimated: vec![false; self.rules.len()],
            tokens: 0.0,
        };
        let b = &self.binomials;
        for (pool, row) in pools.iter().zip(rows.chunks_mut(cols)) {
            let counts = pool.class_counts();
            let correct = pool.correct_class();
            let abstained = pool.samples.iter().filter(|s| s.0.is_none()).count();
            let right = pool.samples.iter().filter(|s| s.1).count();
            let none = estimator::abstain_curve(b, size, abstained);
            part.tokens += pool.samples.iter().map(|s| s.2 as f64).sum::<f64>() / size as f64;
            for (r, rule) in self.rules.iter().enumerate() {
                let (accuracy, abstain, variance) = match *rule {
                    Rule::Majority => (
                        estimator::majority_curve(b, &counts, correct, abstained),
                        none.clone(),
                        None,
                    ),
                    Rule::PassAtK => (
                        estimator::pass_at_k_curve(b, size, right),
                        vec![0.0; size + 1],
                        None,
                    ),
                    Rule::BestOfN(v) => {
                        let scored: Vec<Scored> = pool
                            .samples
                            .iter()
                            .zip(&pool.scores[v])
                            .map(|(s, &score)| Scored {
                                score,
                                correct: s.1,
                                abstained: s.0.is_none(),
                            })
                            .collect();
                        let (a, ab) = estimator::best_of_n_curve(b, &scored);
                        (a, ab, None)
                    }
                    Rule::Weighted(v) => {
                        let weighted: Vec<Weighted> = pool
                            .samples
                            .iter()
                            .zip(&pool.scores[v])
                            .map(|(s, &score)| Weighted::new(s.0, score))
                            .collect();
                        let mut rng = seed::rng(
                            self.seed,
                            &[
                                Part::Str("analyze"),
                                Part::Str(self.agent),
                                Part::Str(&self.task_ids[pool.task].0),
                                Part::Int(v as u64),
                            ],
                        );
                        let curve = estimator::weighted_majority_curve(
                            b,
                            &weighted,
                            correct,
                            pool.answers.len(),
                            self.permutations,
                            &mut rng,
                        );
                        let variance = (!curve.exact).then_some(curve.variance);
                        (curve.accuracy, none.clone(), variance)
                    }
                };
                let at = r * size;
                for n in 1..=size {
                    row[at + n - 1] = accuracy[n] as f32;
                    part.sums[at + n - 1] += accuracy[n];
                    part.abstain[at + n - 1] += abstain[n];
                }
                if let Some(var) = variance {
                    part.estimated[r] = true;
                    add(&mut part.variance[at..at + size], &var[1..]);
                }
            }
        }
        part
    }
}

fn add(into: &mut [f64], from: &[f64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

impl Analysis {
    /// The curves at n = 1, 2, 4, … and the full pool, one row per rule and
    /// n, then what the pools say about each agent's tasks.
    pub fn table(&self) -> String {
        let mut out = format!("run {} · {}\n", self.run_id, self.name);
        for a in &self.agents {
            let mut t = Table::new();
            t.load_style(presets::UTF8_FULL_CONDENSED);
            t.set_header([
                "rule",
                "n",
                "accuracy",
                "interval",
                "abstain",
                "tokens/task",
            ]);
            let shown = |n: usize| n.is_power_of_two() || n == a.pool_size;
            for c in self
                .curves
                .iter()
                .filter(|c| c.agent == a.agent && shown(c.n))
            {
                let rule = match &c.verifier {
                    Some(v) => format!("{} [{v}]", c.rule),
                    None => c.rule.to_owned(),
                };
                let interval = match (c.ci_low, c.ci_high) {
                    (Some(lo), Some(hi)) => format!("[{}, {}]", pct(lo), pct(hi)),
                    _ => "-".into(),
                };
                let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
                t.add_row([
                    Cell::new(rule),
                    right(c.n.to_string()),
                    right(pct(c.accuracy)),
                    Cell::new(interval),
                    right(c.abstain.map_or("-".into(), pct)),
                    right(format!("{:.0}", c.mean_tokens)),
                ]);
            }
            let deltas: Vec<f64> = self
                .tasks
                .iter()
                .filter(|t| t.agent == a.agent)
                .filter_map(|t| t.delta)
                .collect();
            let p: Vec<f64> = self
                .tasks
                .iter()
                .filter(|t| t.agent == a.agent)
                .filter_map(|t| t.p_correct)
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            out.push_str(&format!(
                "agent {} · {} tasks × {} samples{}\n{t}\n",
                a.agent,
                a.tasks,
                a.pool_size,
                if a.skipped > 0 {
                    format!(
                        " · {} tasks left out (smaller pool or no expected answer)",
                        a.skipped
                    )
                } else {
                    String::new()
                },
            ));
            if a.errors > 0 {
                out.push_str(&format!(
                    "{} tasks left out: a call of their pool failed (errors; `crucible resume {}` retries them)\n",
                    a.errors, self.run_id
                ));
            }
            if !deltas.is_empty() {
                out.push_str(&format!(
                    "p̂ of the correct answer: mean {:.3} · Δ̂: mean {:.3}, ≤ 0 on {} of {} tasks (majority cannot converge there)\n",
                    mean(&p),
                    mean(&deltas),
                    deltas.iter().filter(|&&d| d <= 0.0).count(),
                    deltas.len()
                ));
            }
        }
        out.push_str(&regret::table(&self.regret));
        out
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}
