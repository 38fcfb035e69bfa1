//! The separation between self-consistency and best-of-n, swept: on a
//! family of answer distributions indexed by the gap Δ between the correct
//! answer and the likeliest wrong one, the samples n*(Δ) each rule needs
//! for accuracy 1 − δ, and the log–log slope of n* against Δ.
//!
//! The named hard families:
//! - **two-way**: p* = (1 + Δ)/2 against one wrong answer at (1 − Δ)/2,
//!   where majority needs Θ(1/Δ²) samples;
//! - **spread**: p* = Δ + ε against ⌈(1 − p*)/ε⌉ wrong answers sharing the
//!   rest equally (each at most ε), where best-of-n with a perfect
//!   verifier needs Θ(1/Δ) (it misses with probability (1 − p*)ⁿ).
//!
//! The slope and the constant c (n* ≈ c·Δ^slope) are the least-squares
//! line through (ln Δ, ln n*); the slope's interval is a percentile
//! bootstrap over the Δ grid's points. n* comes from
//! [`super::theory::n_for`]: exact, searched rather than tabulated.

use rand::RngExt;
use serde::Serialize;

use super::bootstrap::percentile_interval;
use super::theory::{AnswerDistribution, Rule, Verifier, n_for};
use crate::seed;

/// A family of distributions indexed by Δ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "family")]
pub enum Family {
    TwoWay,
    Spread { epsilon: f64 },
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::TwoWay => "two_way",
            Family::Spread { .. } => "spread",
        }
    }

    /// The distribution at gap `delta` (the correct answer first).
    pub fn at(&self, delta: f64) -> AnswerDistribution {
        let p = match *self {
            Family::TwoWay => vec![(1.0 + delta) / 2.0, (1.0 - delta) / 2.0],
            Family::Spread { epsilon } => {
                let top = (delta + epsilon).min(1.0);
                let wrong = ((1.0 - top) / epsilon).ceil().max(1.0) as usize;
                let mut p = vec![top];
                p.extend(std::iter::repeat_n((1.0 - top) / wrong as f64, wrong));
                p
            }
        };
        AnswerDistribution::new(p, 0, true).expect("a family's distributions are valid")
    }
}

/// One Δ of a sweep and the n it needs (`None`: not within the search).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    pub delta: f64,
    pub n: Option<usize>,
}

/// A rule's sweep over a family, and the line through it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub family: String,
    pub rule: Rule,
    /// The target is accuracy 1 − this.
    pub target_delta: f64,
    pub slope: Option<f64>,
    pub slope_ci: Option<[f64; 2]>,
    /// n* ≈ c · Δ^slope.
    pub c: Option<f64>,
    pub points: Vec<SweepPoint>,
}

/// How a sweep is drawn.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub deltas: Vec<f64>,
    pub target_delta: f64,
    pub max_n: usize,
    pub replicates: usize,
    pub seed: u64,
    pub level: f64,
}

/// `count` values of Δ from `from` to `to`, evenly spaced in ln Δ.
pub fn log_grid(from: f64, to: f64, count: usize) -> Vec<f64> {
    if count <= 1 {
        return vec![from];
    }
    let (a, b) = (from.ln(), to.ln());
    (0..count)
        .map(|i| (a + (b - a) * i as f64 / (count - 1) as f64).exp())
        .collect()
}

/// A family given point by point (its distributions at the Δ it lists),
/// as a user writes one.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFamily {
    pub name: String,
    pub points: Vec<(f64, AnswerDistribution)>,
}

/// `rule`'s sweep over `family` at the sweep's Δ, fitted.
pub fn sweep(family: Family, rule: Rule, s: &Sweep) -> Fit {
    let points = s.deltas.iter().map(|&delta| (delta, family.at(delta)));
    sweep_over(family.name(), rule, points, s)
}

/// `rule`'s sweep over a user's family at its own Δ, fitted.
pub fn sweep_user(family: &UserFamily, rule: Rule, s: &Sweep) -> Fit {
    sweep_over(&family.name, rule, family.points.iter().cloned(), s)
}

fn sweep_over(
    name: &str,
    rule: Rule,
    points: impl Iterator<Item = (f64, AnswerDistribution)>,
    s: &Sweep,
) -> Fit {
    let points = points
        .map(|(delta, d)| SweepPoint {
            delta,
            n: n_for(rule, &d, s.target_delta, Verifier::PERFECT, s.max_n),
        })
        .collect();
    fit(name, rule, points, s)
}

/// The line through `points` (those with an n), with the slope's
/// bootstrap interval over them.
pub fn fit(family: &str, rule: Rule, points: Vec<SweepPoint>, s: &Sweep) -> Fit {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.n.map(|n| (p.delta.ln(), (n as f64).ln())))
        .collect();
    let line = least_squares(&xy);
    let slope_ci = line.filter(|_| s.replicates > 0).and_then(|_| {
        let mut rng = seed::rng(
            s.seed,
            &["separation".into(), family.into(), rule.as_str().into()],
        );
        let replicates = (0..s.replicates).map(|_| {
            let drawn: Vec<(f64, f64)> = (0..xy.len())
                .map(|_| xy[rng.random_range(0..xy.len())])
                .collect();
            least_squares(&drawn).map(|(slope, _)| slope)
        });
        percentile_interval(replicates, s.level).0
    });
    Fit {
        family: family.to_owned(),
        rule,
        target_delta: s.target_delta,
        slope: line.map(|(slope, _)| slope),
        slope_ci,
        c: line.map(|(_, intercept)| intercept.exp()),
        points,
    }
}

/// The least-squares line (slope, intercept) through `xy`; `None` with
/// fewer than two distinct x.
fn least_squares(xy: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if xy.len() < 2 || sxx < 1e-300 {
        return None;
    }
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Sweep {
        Sweep {
            deltas: log_grid(0.02, 0.3, 16),
            target_delta: 0.1,
            max_n: 100_000,
            replicates: 500,
            seed: 1,
            level: 0.95,
        }
    }

    /// The paper's separation on the exact curves: majority's slope on the
    /// two-way family within 0.1 of −2, best-of-n's on the spread family
    /// within 0.1 of −1.
    #[test]
    fn the_hard_families_separate_the_rules() {
        let s = settings();
        let majority = sweep(Family::TwoWay, Rule::Majority, &s);
        let slope = majority.slope.unwrap();
        assert!((slope + 2.0).abs() < 0.1, "majority, two-way: {slope}");
        let [lo, hi] = majority.slope_ci.unwrap();
        assert!(lo <= slope && slope <= hi);
        let best = sweep(Family::Spread { epsilon: 0.001 }, Rule::BestOfN, &s);
        let slope = best.slope.unwrap();
        assert!((slope + 1.0).abs() < 0.1, "best-of-n, spread: {slope}");
        assert!(best.points.iter().all(|p| p.n.is_some()));
    }

    #[test]
    fn a_line_is_fitted_exactly_through_points_on_it() {
        let xy: Vec<(f64, f64)> = (1..6).map(|i| (i as f64, 3.0 - 2.0 * i as f64)).collect();
        let (slope, intercept) = least_squares(&xy).unwrap();
        assert!((slope + 2.0).abs() < 1e-12 && (intercept - 3.0).abs() < 1e-12);
        assert_eq!(least_squares(&[(1.0, 2.0)]), None);
    }

    #[test]
    fn families_are_distributions_with_the_gap_asked_for() {
        for delta in [0.01, 0.1, 0.5] {
            for family in [Family::TwoWay, Family::Spread { epsilon: 0.01 }] {
                let d = family.at(delta);
                let wrong = d.p[1..].iter().copied().fold(0.0, f64::max);
                assert!(d.p[0] - wrong >= delta - 1e-12, "{family:?} {delta}");
                assert!((d.p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            }
        }
        assert!((Family::TwoWay.at(0.1).p[0] - 0.55).abs() < 1e-15);
    }
}
