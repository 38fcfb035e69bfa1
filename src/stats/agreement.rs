//! Agreement between raters on nominal labels: Cohen's κ for a pair,
//! Fleiss' κ for several, Krippendorff's α (nominal, missing labels
//! allowed), a rater's confusion against a reference, and the Rogan–Gladen
//! correction of a rate measured by an imperfect rater. And on scores:
//! Kendall's W of several raters' rankings of the same items.
//!
//! Labels are small integers (0/1 for a failure mode's absence/presence);
//! `None` is a missing or unknown label, which every statistic here leaves
//! out rather than counting as either answer. A statistic that the data
//! cannot define — κ when every label is the same, a rate with nothing to
//! divide — is `None`, never NaN or 1: "undefined (no variation)" is a
//! finding, and callers say so.

/// Cohen's κ of two raters over the items both labelled.
pub fn cohen_kappa(a: &[Option<u32>], b: &[Option<u32>]) -> Option<f64> {
    let pairs: Vec<(u32, u32)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
        .collect();
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return None;
    }
    let categories = pairs.iter().map(|&(x, y)| x.max(y)).max()? as usize + 1;
    let (mut pa, mut pb) = (vec![0.0; categories], vec![0.0; categories]);
    let mut observed = 0.0;
    for &(x, y) in &pairs {
        pa[x as usize] += 1.0 / n;
        pb[y as usize] += 1.0 / n;
        if x == y {
            observed += 1.0 / n;
        }
    }
    let expected: f64 = pa.iter().zip(&pb).map(|(p, q)| p * q).sum();
    kappa(observed, expected)
}

/// Fleiss' κ over the items every rater labelled: `labels[item][rater]`.
pub fn fleiss_kappa(labels: &[Vec<Option<u32>>]) -> Option<f64> {
    let complete: Vec<Vec<u32>> = labels
        .iter()
        .filter_map(|item| item.iter().copied().collect::<Option<Vec<u32>>>())
        .filter(|item| item.len() >= 2)
        .collect();
    let raters = complete.first()?.len();
    if complete.iter().any(|item| item.len() != raters) {
        return None;
    }
    let categories = complete.iter().flatten().max().copied()? as usize + 1;
    let (items, m) = (complete.len() as f64, raters as f64);
    let mut share = vec![0.0; categories];
    let mut agreement = 0.0;
    for item in &complete {
        let mut counts = vec![0.0; categories];
        for &c in item {
            counts[c as usize] += 1.0;
        }
        agreement += counts.iter().map(|n| n * (n - 1.0)).sum::<f64>() / (m * (m - 1.0));
        for (s, n) in share.iter_mut().zip(&counts) {
            *s += n / (items * m);
        }
    }
    kappa(agreement / items, share.iter().map(|p| p * p).sum())
}

/// Krippendorff's α for nominal labels, `labels[item][rater]`, missing
/// labels allowed: items with fewer than two labels carry no information
/// and are left out.
pub fn krippendorff_alpha(labels: &[Vec<Option<u32>>]) -> Option<f64> {
    let categories = labels.iter().flatten().flatten().max().copied()? as usize + 1;
    // The coincidence matrix: each ordered pair of labels of one item, weighted 1/(m − 1).
    let mut coincidences = vec![vec![0.0; categories]; categories];
    for item in labels {
        let values: Vec<usize> = item.iter().flatten().map(|&c| c as usize).collect();
        let m = values.len();
        if m < 2 {
            continue;
        }
        for (i, &c) in values.iter().enumerate() {
            for (j, &k) in values.iter().enumerate() {
                if i != j {
                    coincidences[c][k] += 1.0 / (m - 1) as f64;
                }
            }
        }
    }
    let totals: Vec<f64> = coincidences.iter().map(|row| row.iter().sum()).collect();
    let n: f64 = totals.iter().sum();
    let mut observed = 0.0;
    let mut expected = 0.0;
    for c in 0..categories {
        for k in 0..categories {
            if c != k {
                observed += coincidences[c][k];
                expected += totals[c] * totals[k];
            }
        }
    }
    (expected > 0.0).then(|| 1.0 - (n - 1.0) * observed / expected)
}

/// (observed − expected) / (1 − expected), undefined when chance agreement
/// is certain (every label the same). Shared with `agreement_report`, which
/// computes κ from tallies rather than label vectors.
pub(super) fn kappa(observed: f64, expected: f64) -> Option<f64> {
    const EPS: f64 = 1e-12;
    (expected < 1.0 - EPS).then(|| (observed - expected) / (1.0 - expected))
}

/// How a binary rater's labels compare with a reference's, over the items
/// both labelled.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Confusion {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

impl Confusion {
    pub fn of(rater: &[Option<bool>], reference: &[Option<bool>]) -> Confusion {
        let mut c = Confusion::default();
        for (r, t) in rater.iter().zip(reference) {
            match (r, t) {
                (Some(true), Some(true)) => c.true_positives += 1,
                (Some(true), Some(false)) => c.false_positives += 1,
                (Some(false), Some(false)) => c.true_negatives += 1,
                (Some(false), Some(true)) => c.false_negatives += 1,
                _ => {}
            }
        }
        c
    }

    /// Share of the rater's positives that are real.
    pub fn precision(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Sensitivity (recall, TPR): share of real positives the rater finds.
    pub fn sensitivity(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// Specificity (TNR): share of real negatives the rater leaves alone.
    pub fn specificity(&self) -> Option<f64> {
        ratio(
            self.true_negatives,
            self.true_negatives + self.false_positives,
        )
    }

    pub fn f1(&self) -> Option<f64> {
        ratio(
            2 * self.true_positives,
            2 * self.true_positives + self.false_positives + self.false_negatives,
        )
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The Rogan–Gladen estimate of a true prevalence from `raw`, the share of
/// items an imperfect rater calls positive, given its sensitivity and
/// specificity: (raw + spec − 1) / (sens + spec − 1), clipped to [0, 1].
/// Undefined for a rater no better than chance (sens + spec ≤ 1).
pub fn rogan_gladen(raw: f64, sensitivity: f64, specificity: f64) -> Option<f64> {
    let youden = sensitivity + specificity - 1.0;
    (youden > 0.0).then(|| ((raw + specificity - 1.0) / youden).clamp(0.0, 1.0))
}

/// Kendall's coefficient of concordance W of `scores[rater][item]`, each
/// rater's scores read as a ranking (ties share their mean rank), with the
/// standard tie correction: W = 12·S / (m²(n³ − n) − m·Σ T), S the squared
/// deviations of the items' rank sums from their mean, T = Σ (t³ − t) over
/// each rater's groups of t tied items. 1 when the raters rank alike, 0
/// when their rankings cancel. `None` with fewer than two raters or items,
/// when the raters score different numbers of items, or when every rater
/// ties every item (nothing is ranked).
pub fn kendall_w(scores: &[Vec<f64>]) -> Option<f64> {
    let (m, n) = (scores.len(), scores.first()?.len());
    if m < 2 || n < 2 || scores.iter().any(|s| s.len() != n) {
        return None;
    }
    let mut rank_sums = vec![0.0; n];
    let mut ties = 0.0;
    for rater in scores {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| rater[a].total_cmp(&rater[b]));
        let mut ranked = 0;
        for tied in order.chunk_by(|&a, &b| rater[a] == rater[b]) {
            // The t items after `ranked` others share the mean of ranks ranked+1..=ranked+t.
            let t = tied.len();
            let rank = ranked as f64 + (t as f64 + 1.0) / 2.0;
            for &item in tied {
                rank_sums[item] += rank;
            }
            ties += (t * t * t - t) as f64;
            ranked += t;
        }
    }
    let mean = rank_sums.iter().sum::<f64>() / n as f64;
    let s: f64 = rank_sums.iter().map(|r| (r - mean).powi(2)).sum();
    let (m, n) = (m as f64, n as f64);
    let denominator = m * m * (n * n * n - n) - m * ties;
    (denominator > 0.0).then(|| 12.0 * s / denominator)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_rater_agrees_with_itself_exactly_when_its_labels_vary(
            labels in prop::collection::vec(0u32..3, 1..40)
        ) {
            let l: Vec<Option<u32>> = labels.iter().copied().map(Some).collect();
            let varied = labels.iter().any(|&x| x != labels[0]);
            let k = cohen_kappa(&l, &l);
            prop_assert_eq!(k.is_some(), varied);
            if let Some(k) = k {
                prop_assert!((k - 1.0).abs() < 1e-12, "{}", k);
            }
        }

        #[test]
        fn the_order_of_raters_changes_no_multi_rater_statistic(
            items in prop::collection::vec(prop::collection::vec(0u32..2, 4), 2..30),
            shift in 1usize..4,
        ) {
            let labels: Vec<Vec<Option<u32>>> = items
                .iter()
                .map(|i| i.iter().copied().map(Some).collect())
                .collect();
            let rotated: Vec<Vec<Option<u32>>> = labels
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    i.rotate_left(shift);
                    i
                })
                .collect();
            let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                (a, b) => a.is_none() && b.is_none(),
            };
            prop_assert!(same(fleiss_kappa(&labels), fleiss_kappa(&rotated)));
            prop_assert!(same(krippendorff_alpha(&labels), krippendorff_alpha(&rotated)));
        }
    }

    fn close(a: Option<f64>, b: f64, eps: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < eps)
    }

    #[test]
    fn cohen_kappa_of_the_textbook_two_by_two() {
        // 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15:
        // p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, n) in [(1, 1, 20), (1, 0, 5), (0, 1, 10), (0, 0, 15)] {
            a.extend(std::iter::repeat_n(Some(x), n));
            b.extend(std::iter::repeat_n(Some(y), n));
        }
        assert!(close(cohen_kappa(&a, &b), 0.4, 1e-12));
        // Unknown labels are left out, not read as either answer.
        a.push(None);
        b.push(Some(1));
        assert!(close(cohen_kappa(&a, &b), 0.4, 1e-12));
    }

    #[test]
    fn kappa_without_variation_is_undefined_not_one() {
        let same = vec![Some(0); 10];
        assert_eq!(cohen_kappa(&same, &same), None);
        assert_eq!(fleiss_kappa(&vec![vec![Some(1); 3]; 5]), None);
        assert_eq!(krippendorff_alpha(&vec![vec![Some(1); 3]; 5]), None);
        assert_eq!(cohen_kappa(&[None], &[Some(1)]), None);
    }

    #[test]
    fn fleiss_kappa_of_the_textbook_table() {
        // Fleiss (1971)'s worked example as usually reproduced: 10 subjects,
        // 14 raters, 5 categories; P̄ = 0.378, P̄e = 0.213, κ = 0.210.
        let counts = [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ];
        let labels: Vec<Vec<Option<u32>>> = counts
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .flat_map(|(c, &n)| std::iter::repeat_n(Some(c as u32), n))
                    .collect()
            })
            .collect();
        assert!(
            close(fleiss_kappa(&labels), 0.2099, 1e-4),
            "{:?}",
            fleiss_kappa(&labels)
        );
    }

    #[test]
    fn krippendorff_alpha_of_the_textbook_reliability_data() {
        // Krippendorff's own example (Computing Krippendorff's Alpha-
        // Reliability, 2011): 4 observers, 12 units, missing values;
        // nominal α = 0.743.
        let observers: [[Option<u32>; 12]; 4] = [
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(1),
                Some(4),
                Some(1),
                Some(2),
                None,
                None,
                None,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(2),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                None,
                Some(3),
            ],
            [
                None,
                Some(3),
                Some(3),
                Some(3),
                Some(2),
                Some(3),
                Some(4),
                Some(2),
                Some(2),
                Some(5),
                Some(1),
                None,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(4),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                Some(1),
                None,
            ],
        ];
        let labels: Vec<Vec<Option<u32>>> = (0..12)
            .map(|u| observers.iter().map(|o| o[u]).collect())
            .collect();
        assert!(
            close(krippendorff_alpha(&labels), 0.743, 5e-4),
            "{:?}",
            krippendorff_alpha(&labels)
        );
    }

    #[test]
    fn two_complete_raters_relate_alpha_to_kappa_as_derived() {
        // Two raters, no missing labels, n = 2N values: α = 1 − (n−1)/n · (1 − π),
        // and Scott's π is Cohen's κ when the raters' marginals are equal.
        let a = [1, 1, 0, 0, 1, 0, 1, 0].map(Some);
        let b = [1, 0, 1, 0, 1, 0, 1, 0].map(Some);
        let kappa = cohen_kappa(&a, &b).unwrap();
        assert!((kappa - 0.5).abs() < 1e-12, "{kappa}");
        let labels: Vec<Vec<Option<u32>>> = a.iter().zip(&b).map(|(x, y)| vec![*x, *y]).collect();
        let alpha = krippendorff_alpha(&labels).unwrap();
        let n = 16.0;
        assert!(
            (alpha - (1.0 - (n - 1.0) / n * (1.0 - kappa))).abs() < 1e-12,
            "{alpha}"
        );
        // Fleiss' κ of two raters is Scott's π.
        assert!((fleiss_kappa(&labels).unwrap() - kappa).abs() < 1e-12);
    }

    #[test]
    fn kendall_w_of_the_textbook_rankings() {
        // Siegel (1956)'s example: three judges rank six items; rank sums
        // 8, 14, 11, 11, 11, 8 about their mean 10.5, S = 25.5,
        // W = 12·25.5 / (9·(216 − 6)) = 0.162.
        let ranks = vec![
            vec![1.0, 6.0, 3.0, 2.0, 5.0, 4.0],
            vec![1.0, 5.0, 6.0, 4.0, 2.0, 3.0],
            vec![6.0, 3.0, 2.0, 5.0, 4.0, 1.0],
        ];
        assert!(close(kendall_w(&ranks), 306.0 / 1890.0, 1e-12));
        // Scores are ranked, so any increasing transform of a rater's scores
        // changes nothing.
        let scores: Vec<Vec<f64>> = ranks
            .iter()
            .map(|r| r.iter().map(|x| x.exp() - 40.0).collect())
            .collect();
        assert!(close(kendall_w(&scores), 306.0 / 1890.0, 1e-12));
        // Raters ranking alike agree perfectly.
        assert!(close(kendall_w(&vec![ranks[0].clone(); 4]), 1.0, 1e-12));
    }

    #[test]
    fn kendall_w_corrects_for_ties() {
        // Ranks (1, 2, 3, 4), (1.5, 1.5, 3, 4) and (2, 2, 2, 4): rank sums
        // 4.5, 5.5, 8, 12 about 7.5, S = 33.5; the ties' Σ(t³ − t) = 6 + 24,
        // W = 12·33.5 / (9·60 − 3·30) = 402 / 450.
        let scores = vec![
            vec![0.1, 0.2, 0.3, 0.4],
            vec![0.1, 0.1, 0.3, 0.4],
            vec![-1.0, -1.0, -1.0, 2.0],
        ];
        assert!(close(kendall_w(&scores), 402.0 / 450.0, 1e-12));
    }

    #[test]
    fn kendall_w_is_undefined_without_two_raters_two_items_or_a_ranking() {
        assert_eq!(kendall_w(&[]), None);
        assert_eq!(kendall_w(&[vec![0.1, 0.5, 0.3]]), None);
        assert_eq!(kendall_w(&[vec![0.1], vec![0.2]]), None);
        assert_eq!(kendall_w(&[vec![0.1, 0.2], vec![0.2]]), None);
        assert_eq!(kendall_w(&[vec![0.5; 3], vec![0.2; 3]]), None);
    }

    #[test]
    fn kendall_w_matches_python() {
        // Scores drawn from a few values, so most rankings carry ties.
        let cases: Vec<Vec<Vec<f64>>> = (0..40u64)
            .map(|case| {
                let (m, n) = (2 + case as usize % 5, 2 + (case as usize / 5) % 7);
                (0..m)
                    .map(|r| {
                        (0..n)
                            .map(|i| ((case * 31 + r as u64 * 17 + i as u64 * 7) % 5) as f64 / 4.0)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        // Ranks from counts (how many score lower, and how many the same),
        // not from sorting: an independent computation of the same statistic.
        let script = r#"
import json, sys
out = []
for scores in json.load(sys.stdin):
    m, n = len(scores), len(scores[0])
    sums = [0.0] * n
    ties = 0
    for row in scores:
        for i, x in enumerate(row):
            below = sum(1 for y in row if y < x)
            same = sum(1 for y in row if y == x)
            sums[i] += below + (same + 1) / 2
        for x in set(row):
            t = row.count(x)
            ties += t ** 3 - t
    mean = sum(sums) / n
    s = sum((r - mean) ** 2 for r in sums)
    den = m * m * (n ** 3 - n) - m * ties
    out.append(12 * s / den if den > 0 else None)
print(json.dumps(out))
"#;
        let python: Vec<Option<f64>> =
            crate::stats::run_python(script, &serde_json::to_string(&cases).unwrap());
        for (scores, want) in cases.iter().zip(python) {
            let got = kendall_w(scores);
            assert_eq!(got.is_some(), want.is_some(), "{scores:?}");
            if let (Some(got), Some(want)) = (got, want) {
                assert!((got - want).abs() < 1e-12, "{scores:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn confusion_rates_and_the_rogan_gladen_correction() {
        let t = |v: &[u8]| v.iter().map(|&x| Some(x == 1)).collect::<Vec<_>>();
        let rater = t(&[1, 1, 1, 0, 0, 0, 0, 1]);
        let truth = t(&[1, 1, 0, 0, 0, 0, 1, 1]);
        let c = Confusion::of(&rater, &truth);
        assert_eq!(
            (
                c.true_positives,
                c.false_positives,
                c.true_negatives,
                c.false_negatives
            ),
            (3, 1, 3, 1)
        );
        assert!(close(c.precision(), 0.75, 1e-12));
        assert!(close(c.sensitivity(), 0.75, 1e-12));
        assert!(close(c.specificity(), 0.75, 1e-12));
        assert!(close(c.f1(), 0.75, 1e-12));
        // True prevalence 0.2, sens 0.9, spec 0.8: raw = 0.2·0.9 + 0.8·0.2 = 0.34.
        assert!(close(rogan_gladen(0.34, 0.9, 0.8), 0.2, 1e-12));
        assert_eq!(rogan_gladen(0.5, 0.5, 0.5), None);
        assert_eq!(rogan_gladen(0.01, 0.9, 0.8), Some(0.0));
    }
}
