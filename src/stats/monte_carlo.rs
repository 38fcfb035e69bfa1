//! Monte Carlo estimates of the rules [`super::theory`] computes exactly:
//! to check the exact values, and for distributions too large for them.
//!
//! Samples are drawn by Walker's alias method (one table built per
//! distribution, then one 64-bit draw per sample: its high bits pick a
//! column, its low bits the coin), counted per trial, and scored as the
//! exact rules score them (majority's ties weighted 1/(number tied)), so an
//! estimate's mean is the exact value and its standard error is reported.

use rand::{Rng, RngExt};
use serde::Serialize;

use super::theory::{AnswerDistribution, Rule, Verifier};

/// A categorical distribution over K answers and abstention (index K),
/// ready for O(1) draws.
pub struct AliasTable {
    /// Per column, the threshold below which the column's own outcome is
    /// drawn (scaled to 2³²), and its alias.
    cut: Vec<u64>,
    alias: Vec<u32>,
}

impl AliasTable {
    pub fn new(weights: &[f64]) -> AliasTable {
        let k = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w / total * k as f64).collect();
        let mut alias: Vec<u32> = (0..k as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..k).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Left over by rounding: their own outcome always.
        for i in small.into_iter().chain(large) {
            scaled[i] = 1.0;
        }
        let cut = scaled
            .iter()
            .map(|&s| (s.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64)
            .collect();
        AliasTable { cut, alias }
    }

    /// One outcome from one 64-bit draw.
    #[inline]
    pub fn draw(&self, bits: u64) -> usize {
        let column = (((bits >> 32) * self.cut.len() as u64) >> 32) as usize;
        if (bits & 0xffff_ffff) < self.cut[column] {
            column
        } else {
            self.alias[column] as usize
        }
    }
}

/// An estimate and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub accuracy: f64,
    pub se: f64,
    pub trials: u64,
}

/// `rule`'s accuracy with `n` samples over `trials` simulated trials.
pub fn estimate(
    rule: Rule,
    d: &AnswerDistribution,
    n: usize,
    verifier: Verifier,
    trials: u64,
    rng: &mut impl Rng,
) -> Estimate {
    let mut weights = d.p.clone();
    weights.push(d.abstain);
    let table = AliasTable::new(&weights);
    let k = d.p.len();
    let mut counts = vec![0u32; k + 1];
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for _ in 0..trials {
        let score = match rule {
            Rule::Majority => {
                counts.iter_mut().for_each(|c| *c = 0);
                for _ in 0..n {
                    counts[table.draw(rng.next_u64())] += 1;
                }
                let votes = &counts[..k];
                let top = votes.iter().copied().max().unwrap_or(0);
                if top > 0 && votes[d.correct] == top {
                    1.0 / votes.iter().filter(|&&c| c == top).count() as f64
                } else {
                    0.0
                }
            }
            Rule::BestOfN | Rule::PassAtN => {
                // Correct and accepted, correct, accepted.
                let (mut good, mut right, mut accepted) = (0u32, 0u32, 0u32);
                for _ in 0..n {
                    let o = table.draw(rng.next_u64());
                    let correct = o == d.correct;
                    let accept = match (o == k, correct) {
                        (true, _) => false,
                        (false, true) => rng.random::<f64>() >= verifier.fn_,
                        (false, false) => rng.random::<f64>() < verifier.fp,
                    };
                    right += u32::from(correct);
                    good += u32::from(correct && accept);
                    accepted += u32::from(accept);
                }
                match rule {
                    Rule::PassAtN => f64::from(u8::from(right > 0)),
                    _ if accepted > 0 => f64::from(good) / f64::from(accepted),
                    _ if n > 0 => f64::from(right) / n as f64,
                    _ => 0.0,
                }
            }
        };
        sum += score;
        sum_sq += score * score;
    }
    let t = trials.max(1) as f64;
    let mean = sum / t;
    let var = (sum_sq / t - mean * mean).max(0.0);
    Estimate {
        accuracy: mean,
        se: (var / t).sqrt(),
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;
    use crate::stats::theory::{accuracy, best_of_n, majority};

    /// The alias table's frequencies match its weights (4 standard errors).
    #[test]
    fn alias_draws_follow_the_weights() {
        let weights = [0.5, 0.2, 0.0, 0.25, 0.05];
        let table = AliasTable::new(&weights);
        let mut rng = seed::rng(1, &["alias".into()]);
        let n = 400_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[table.draw(rng.next_u64())] += 1;
        }
        for (c, w) in counts.iter().zip(weights) {
            let f = *c as f64 / n as f64;
            let se = (w * (1.0 - w) / n as f64).sqrt();
            assert!((f - w).abs() <= 4.0 * se + 1e-12, "{f} vs {w}");
        }
        assert_eq!(counts[2], 0);
    }

    /// Monte Carlo agrees with the exact values within 4 standard errors,
    /// at n large enough that enumeration is out of reach.
    #[test]
    fn estimates_agree_with_the_exact_values() {
        let d = AnswerDistribution::new(vec![0.35, 0.3, 0.2, 0.1], 0, true).unwrap();
        let v = Verifier { fp: 0.1, fn_: 0.2 };
        let mut rng = seed::rng(2, &["mc".into()]);
        for n in [1, 7, 64, 301] {
            for rule in Rule::ALL {
                let e = estimate(rule, &d, n, v, 8_000, &mut rng);
                let exact = accuracy(rule, &d, n, v);
                assert!(
                    (e.accuracy - exact).abs() <= 4.0 * e.se + 1e-9,
                    "{rule:?} n {n}: {} ± {} vs {exact}",
                    e.accuracy,
                    e.se
                );
            }
        }
        // By n = 301 majority (about 0.85) has overtaken this noisy verifier, whose
        // best-of-n tends to a/(a + b) = 0.28/0.34.
        assert!(majority(&d, 301) > 0.8);
        assert!((best_of_n(&d, 301, v) - 0.28 / 0.34).abs() < 1e-12);
    }
}
