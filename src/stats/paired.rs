//! Two strategies (or runs) on the same tasks: McNemar's exact test of
//! whether one is right more often where they disagree — the binomial
//! test on the discordant tasks, computed in log space so it holds for
//! tens of thousands of them. Also the Wilson interval of one
//! proportion (a method's share of traces attributed right).

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

/// The Wilson score interval of a proportion, `hits` of `n`, at 95%:
/// well-behaved at 0 and n, where the normal interval collapses.
pub fn wilson(hits: u64, n: u64) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (hits as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

#[cfg(test)]
mod wilson_tests {
    use super::wilson;

    /// Against Python's own computation of the textbook formula.
    #[test]
    fn wilson_matches_an_independent_computation() {
        let cases = [(8u64, 10u64), (0, 7), (7, 7), (54, 126)];
        let script = "import json, math, sys\nz = 1.959963984540054\nout = []\nfor k, n in json.load(sys.stdin):\n    p = k / n\n    c = (p + z*z/(2*n)) / (1 + z*z/n)\n    h = z / (1 + z*z/n) * math.sqrt(p*(1-p)/n + z*z/(4*n*n))\n    out.append([max(0, c - h), min(1, c + h)])\nprint(json.dumps(out))";
        let want: Vec<[f64; 2]> =
            super::super::run_python(script, &serde_json::to_string(&cases).unwrap());
        for ((k, n), w) in cases.iter().zip(want) {
            let got = wilson(*k, *n).unwrap();
            assert!(
                (got[0] - w[0]).abs() < 1e-12 && (got[1] - w[1]).abs() < 1e-12,
                "{k}/{n}: {got:?} vs {w:?}"
            );
        }
        // The textbook case: 8 of 10 gives about [0.490, 0.943].
        let [lo, hi] = wilson(8, 10).unwrap();
        assert!((lo - 0.490).abs() < 1e-3 && (hi - 0.943).abs() < 1e-3);
        assert_eq!(wilson(0, 0), None);
    }
}
