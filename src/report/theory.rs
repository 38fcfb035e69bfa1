//! What `crucible theory` prints: each rule's exact accuracy at each n for
//! one or more answer distributions (a scenario's tasks, averaged), the
//! smallest n reaching 1 − δ, and Monte Carlo estimates beside them when
//! asked. The arithmetic is [`crate::stats::theory`]'s and
//! [`crate::stats::monte_carlo`]'s; this file lays it out as the `--json`
//! contract and as text.

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::seed;
use crate::stats::monte_carlo::{Estimate, estimate};
use crate::stats::separation::{Family, Fit, Sweep, sweep};
use crate::stats::theory::{AnswerDistribution, Rule, Verifier, accuracy, limit, n_for, reaching};

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
    let mean = |rule: Rule, n: usize| {
        ask.distributions
            .iter()
            .map(|d| accuracy(rule, d, n, ask.verifier))
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
    let n_for = Rule::ALL
        .iter()
        .flat_map(|&rule| {
            let limit = ask
                .distributions
                .iter()
                .map(|d| limit(rule, d, ask.verifier))
                .sum::<f64>()
                / count;
            ask.deltas.iter().map(move |&delta| NFor {
                rule,
                delta,
                n: match ask.distributions.as_slice() {
                    [one] => n_for(rule, one, delta, ask.verifier, ask.max_n),
                    _ => reaching(1.0 - delta, limit, ask.max_n, |n| mean(rule, n)),
                },
                limit,
            })
        })
        .collect();
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
    pub fits: Vec<Fit>,
}

/// Every rule (majority and best-of-n) swept over every family, for each
/// target δ.
pub fn separation(families: &[Family], targets: &[f64], s: &Sweep) -> SeparationReport {
    let mut fits = Vec::new();
    for &target_delta in targets {
        let s = Sweep {
            target_delta,
            ..s.clone()
        };
        for family in families {
            for rule in [Rule::Majority, Rule::BestOfN] {
                fits.push(sweep(*family, rule, &s));
            }
        }
    }
    SeparationReport { fits }
}

impl SeparationReport {
    /// The fits as printed: one row per family, rule and target.
    pub fn table(&self) -> String {
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
        for f in &self.fits {
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
                Cell::new(f.family),
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
}
