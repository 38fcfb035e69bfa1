//! Two strategies (or runs) on the same tasks: McNemar's exact test of
//! whether one is right more often where they disagree — the binomial
//! test on the discordant tasks, computed in log space so it holds for
//! tens of thousands of them.

/// Two-sided exact McNemar p-value for `only_a` tasks only side A got
/// right and `only_b` only side B did: P(X ≤ min) doubled, capped at 1,
/// X ~ Binomial(only_a + only_b, ½). 1 when they never disagree.
pub fn mcnemar_exact(only_a: u64, only_b: u64) -> f64 {
    let n = only_a + only_b;
    let k = only_a.min(only_b);
    if n == 0 {
        return 1.0;
    }
    // ln C(n, i) − n ln 2 for i = 0..=k, summed with log-sum-exp.
    let ln2 = std::f64::consts::LN_2;
    let mut ln_term = -(n as f64) * ln2;
    let mut terms = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        terms.push(ln_term);
        ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln();
    (2.0 * tail.exp()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::mcnemar_exact;

    #[test]
    fn textbook_cases() {
        // 10 discordant pairs split 9:1: 2·(1 + 10)/1024.
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // 0:4 → 2·(1/16).
        assert!((mcnemar_exact(0, 4) - 0.125).abs() < 1e-12);
    }
}
