//! What `crucible theory` prints: each rule's exact accuracy at each n for
//! one or more answer distributions (a scenario's tasks, averaged), the
//! smallest n reaching 1 − δ, and Monte Carlo estimates beside them when
//! asked. The arithmetic is [`crate::stats::theory`]'s and
//! [`crate::stats::monte_carlo`]'s; this file lays it out as the `--json`
//! contract and as text.

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::seed;
use crate::stats::estimator::{Binomials, majority_curve, pass_at_k_curve};
use crate::stats::monte_carlo::{Estimate, estimate};
use crate::stats::separation::{
    Family, Fit, Sweep, SweepPoint, UserFamily, fit, sweep, sweep_user,
};
use crate::stats::theory::{
    AnswerDistribution, Majority, Rule, Verifier, accuracy, limit, reaching,
};
use crate::store::{Store, StoreError};

/// What to compute.
pub struct TheoryAsk {
    /// One distribution, or one per task (their curves are averaged).
    pub distributions: Vec<AnswerDistribution>,
    pub ns: Vec<usize>,
    pub deltas: Vec<f64>,
    pub verifier: Verifier,
    /// The largest n searched for 1 − δ.
    pub max_n: usize,
    /// Monte Carlo trials per rule and n (per distribution); 0: none.
    pub trials: u64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TheoryReport {
    pub distributions: usize,
    pub verifier: Verifier,
    pub curves: Vec<Point>,
    pub n_for: Vec<NFor>,
}

/// One rule's accuracy at one n.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub rule: Rule,
    pub n: usize,
    pub accuracy: f64,
    /// The Monte Carlo estimate, when asked for.
    pub mc: Option<Estimate>,
}

/// The smallest n reaching 1 − δ (for several distributions, the mean
/// accuracy reaching it); `None` when no n up to the search's limit does.
#[derive(Debug, Clone, Serialize)]
pub struct NFor {
    pub rule: Rule,
    pub delta: f64,
    pub n: Option<usize>,
    /// The accuracy as n grows without bound.
    pub limit: f64,
}

/// The report `ask` asks for.
pub fn theory(ask: &TheoryAsk) -> TheoryReport {
    let count = ask.distributions.len() as f64;
    // Majority's solvers keep their binomial windows from one n to the next.
    let mut majorities: Vec<Majority> = ask.distributions.iter().map(Majority::new).collect();
    let mut mean = |rule: Rule, n: usize| {
        ask.distributions
            .iter()
            .zip(&mut majorities)
            .map(|(d, majority)| match rule {
                Rule::Majority => majority.at(n),
                _ => accuracy(rule, d, n, ask.verifier),
            })
            .sum::<f64>()
            / count
    };
    let mut curves = Vec::new();
    for rule in Rule::ALL {
        for &n in &ask.ns {
            let mc = (ask.trials > 0).then(|| {
                let mut rng =
                    seed::rng(ask.seed, &["theory".into(), rule.as_str().into(), n.into()]);
                let parts: Vec<Estimate> = ask
                    .distributions
                    .iter()
                    .map(|d| estimate(rule, d, n, ask.verifier, ask.trials, &mut rng))
                    .collect();
                // The mean of independent estimates, and its error.
                Estimate {
                    accuracy: parts.iter().map(|e| e.accuracy).sum::<f64>() / count,
                    se: parts.iter().map(|e| e.se * e.se).sum::<f64>().sqrt() / count,
                    trials: ask.trials,
                }
            });
            curves.push(Point {
                rule,
                n,
                accuracy: mean(rule, n),
                mc,
            });
        }
    }
    let mut n_for = Vec::new();
    for rule in Rule::ALL {
        let limit = ask
            .distributions
            .iter()
            .map(|d| limit(rule, d, ask.verifier))
            .sum::<f64>()
            / count;
        for &delta in &ask.deltas {
            n_for.push(NFor {
                rule,
                delta,
                // One distribution's mean is its own curve: `n_for`'s search.
                n: reaching(1.0 - delta, limit, ask.max_n, |n| mean(rule, n)),
                limit,
            });
        }
    }
    TheoryReport {
        distributions: ask.distributions.len(),
        verifier: ask.verifier,
        curves,
        n_for,
    }
}

impl TheoryReport {
    /// The report as printed on stdout.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        let mc = self.curves.iter().any(|p| p.mc.is_some());
        let mut header = vec!["n".to_owned()];
        for rule in Rule::ALL {
            header.push(rule.as_str().to_owned());
            if mc {
                header.push(format!("{} (Monte Carlo ± se)", rule.as_str()));
            }
        }
        t.set_header(header);
        let mut ns: Vec<usize> = self.curves.iter().map(|p| p.n).collect();
        ns.sort_unstable();
        ns.dedup();
        for n in ns {
            let mut row = vec![Cell::new(n).set_alignment(CellAlignment::Right)];
            for rule in Rule::ALL {
                let Some(p) = self.curves.iter().find(|p| p.rule == rule && p.n == n) else {
                    continue;
                };
                row.push(
                    Cell::new(format!("{:.6}", p.accuracy)).set_alignment(CellAlignment::Right),
                );
                if let Some(e) = &p.mc {
                    row.push(
                        Cell::new(format!("{:.4} ± {:.4}", e.accuracy, e.se))
                            .set_alignment(CellAlignment::Right),
                    );
                }
            }
            t.add_row(row);
        }
        let mut out = format!("{t}\n");
        if self.distributions > 1 {
            out.push_str(&format!(
                "accuracy averaged over {} tasks' distributions\n",
                self.distributions
            ));
        }
        let v = self.verifier;
        out.push_str(&format!(
            "best_of_n's verifier: false positives {}, false negatives {}\n",
            v.fp, v.fn_
        ));
        for f in &self.n_for {
            let target = 1.0 - f.delta;
            out.push_str(&match f.n {
                Some(n) => format!("{} reaches {target} at n = {n}\n", f.rule.as_str()),
                None => format!(
                    "{} does not reach {target} within the search (its accuracy tends to {:.4})\n",
                    f.rule.as_str(),
                    f.limit
                ),
            });
        }
        out
    }
}

/// What `crucible theory --sweep` prints: each rule's n*(Δ) on each
/// family, and the line through it.
#[derive(Debug, Clone, Serialize)]
pub struct SeparationReport {
    /// Exact: n* from the rules' exact curves.
    pub fits: Vec<Fit>,
    /// Observed in a stored run (`--run`): n* from its pools.
    pub observed: Vec<Fit>,
}

/// Every rule (majority and best-of-n) swept over every named family at
/// the sweep's Δ and every user family at its own, for each target δ.
pub fn separation(
    families: &[Family],
    user: &[UserFamily],
    targets: &[f64],
    s: &Sweep,
) -> SeparationReport {
    let mut fits = Vec::new();
    for &target_delta in targets {
        let s = Sweep {
            target_delta,
            ..s.clone()
        };
        for rule in [Rule::Majority, Rule::BestOfN] {
            fits.extend(families.iter().map(|f| sweep(*f, rule, &s)));
            fits.extend(user.iter().map(|f| sweep_user(f, rule, &s)));
        }
    }
    SeparationReport {
        fits,
        observed: Vec::new(),
    }
}

/// One family's tasks at one Δ in a stored run: their mean accuracy at
/// every n up to the smallest pool.
#[derive(Default)]
struct Observed {
    majority: Vec<f64>,
    best: Vec<f64>,
    tasks: usize,
}

impl Observed {
    /// Add one task's curves; the sums keep the shortest pool's length.
    fn add(&mut self, majority: Vec<f64>, best: Vec<f64>) {
        if self.tasks == 0 {
            (self.majority, self.best) = (majority, best);
        } else {
            for (sums, curve) in [(&mut self.majority, majority), (&mut self.best, best)] {
                sums.truncate(curve.len());
                sums.iter_mut().zip(curve).for_each(|(sum, x)| *sum += x);
            }
        }
        self.tasks += 1;
    }

    /// The first n at which the mean of `curve` reaches `target`.
    fn first(&self, curve: &[f64], target: f64) -> Option<usize> {
        (1..curve.len()).find(|&n| curve[n] / self.tasks as f64 >= target)
    }
}

/// The separation in stored run `run`, whose tasks carry `family` and
/// `delta` fields (as `scenarios/separation-sim.yaml`'s do): per family and
/// Δ, the mean over its tasks of majority's and a perfect verifier's
/// best-of-n (pass@n) accuracy at every n up to the pool's size, exactly
/// over the pool's subsets; n* is the first n reaching 1 − δ, and the
/// slopes are fitted as for the exact sweep, which is beside them at the
/// same Δ for the named families (`spread` with its tasks' `epsilon`).
pub fn observed_separation(
    store: &Store,
    run: i64,
    targets: &[f64],
    s: &Sweep,
) -> Result<SeparationReport, StoreError> {
    let mut of_task: std::collections::HashMap<usize, (String, f64, Option<f64>)> =
        std::collections::HashMap::new();
    for task in store.tasks(run)? {
        let field = |k: &str| task.inputs.get(k);
        if let (Some(family), Some(delta)) = (
            field("family").and_then(|f| f.as_str()),
            field("delta").and_then(|d| d.as_f64()),
        ) {
            let epsilon = field("epsilon").and_then(|e| e.as_f64());
            of_task.insert(task.index, (family.to_owned(), delta, epsilon));
        }
    }
    let mut groups: std::collections::BTreeMap<(String, u64), Observed> = Default::default();
    let mut epsilons: std::collections::BTreeMap<String, f64> = Default::default();
    let (mut binomials, mut covered) = (Binomials::new(0), 0);
    store.for_each_pool(run, |pool| {
        let Some((family, delta, epsilon)) = of_task.get(&pool.task_index) else {
            return;
        };
        let n = pool.samples.len();
        if n > covered {
            (binomials, covered) = (Binomials::new(n), n);
        }
        let classes = pool.answers.len();
        let mut counts = vec![0usize; classes];
        let (mut abstain, mut correct_class, mut correct) = (0, None, 0);
        for &(class, right, _) in &pool.samples {
            match class {
                Some(c) => counts[c as usize] += 1,
                None => abstain += 1,
            }
            if right {
                correct += 1;
                correct_class = class.map(|c| c as usize);
            }
        }
        let majority = majority_curve(&binomials, &counts, correct_class, abstain);
        let best = pass_at_k_curve(&binomials, n, correct);
        if let Some(e) = epsilon {
            epsilons.insert(family.clone(), *e);
        }
        groups
            .entry((family.clone(), delta.to_bits()))
            .or_default()
            .add(majority, best);
    })?;
    let mut families: Vec<String> = groups.keys().map(|(f, _)| f.clone()).collect();
    families.dedup();
    let mut fits = Vec::new();
    let mut observed = Vec::new();
    for &target_delta in targets {
        let s = Sweep {
            target_delta,
            ..s.clone()
        };
        for family in &families {
            let mine: Vec<(f64, &Observed)> = groups
                .iter()
                .filter(|((f, _), _)| f == family)
                .map(|((_, d), o)| (f64::from_bits(*d), o))
                .collect();
            let deltas: Vec<f64> = mine.iter().map(|(d, _)| *d).collect();
            for rule in [Rule::Majority, Rule::BestOfN] {
                let points = mine
                    .iter()
                    .map(|(delta, o)| SweepPoint {
                        delta: *delta,
                        n: o.first(
                            if rule == Rule::Majority {
                                &o.majority
                            } else {
                                &o.best
                            },
                            1.0 - target_delta,
                        ),
                    })
                    .collect();
                observed.push(fit(family, rule, points, &s));
                let named = match family.as_str() {
                    "two_way" => Some(Family::TwoWay),
                    "spread" => Some(Family::Spread {
                        epsilon: epsilons.get(family).copied().unwrap_or(0.001),
                    }),
                    _ => None,
                };
                if let Some(named) = named {
                    let exact = Sweep {
                        deltas: deltas.clone(),
                        ..s.clone()
                    };
                    fits.push(sweep(named, rule, &exact));
                }
            }
        }
    }
    Ok(SeparationReport { fits, observed })
}

impl SeparationReport {
    /// The fits as printed: exact, then observed when there are any.
    pub fn table(&self) -> String {
        let mut out = fits_table(&self.fits);
        if !self.observed.is_empty() {
            out.push_str("observed in the run's pools:\n");
            out.push_str(&fits_table(&self.observed));
        }
        out
    }
}

/// One row per family, rule and target.
fn fits_table(fits: &[Fit]) -> String {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "family",
        "rule",
        "target",
        "slope",
        "interval",
        "c",
        "Δ → n*",
    ]);
    for f in fits {
        let points: Vec<String> = f
            .points
            .iter()
            .map(|p| {
                let n = p.n.map_or("-".to_owned(), |n| n.to_string());
                format!("{:.3}→{n}", p.delta)
            })
            .collect();
        let num = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.3}"));
        t.add_row(vec![
            Cell::new(&f.family),
            Cell::new(f.rule.as_str()),
            Cell::new(format!("{}", 1.0 - f.target_delta)),
            Cell::new(num(f.slope)).set_alignment(CellAlignment::Right),
            Cell::new(
                f.slope_ci
                    .map_or("-".to_owned(), |[lo, hi]| format!("[{lo:.3}, {hi:.3}]")),
            ),
            Cell::new(num(f.c)).set_alignment(CellAlignment::Right),
            Cell::new(points.join(" ")),
        ]);
    }
    format!(
        "{t}\nn* ≈ c·Δ^slope, least squares over (ln Δ, ln n*); intervals: bootstrap over the Δ grid\n"
    )
}
