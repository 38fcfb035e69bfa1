//! Exact, unbiased estimates of a strategy's accuracy at every `k ≤ N` from
//! one pool of `N` samples per task.
//!
//! Drawing a fresh pool for each `k` would waste samples and add noise;
//! instead, the accuracy at `k` is the expectation over all size-`k` subsets of
//! the pool, computed in closed form over answer counts (never by enumerating
//! subsets). Ties that include the correct answer count 1/(number tied).

/// Binomial coefficients C(n, k) as f64 for n ≤ max.
#[derive(Debug, Clone)]
pub struct Binomials {
    rows: Vec<Vec<f64>>,
}

impl Binomials {
    pub fn new(max: usize) -> Self {
        let mut rows: Vec<Vec<f64>> = Vec::with_capacity(max + 1);
        for n in 0..=max {
            let mut row = vec![1.0; n + 1];
            for k in 1..n {
                row[k] = rows[n - 1][k - 1] + rows[n - 1][k];
            }
            rows.push(row);
        }
        Binomials { rows }
    }

    /// C(n, k); zero when k > n.
    pub fn get(&self, n: usize, k: usize) -> f64 {
        if k > n {
            return 0.0;
        }
        self.rows[n][k]
    }

    /// C(n, k) for k = 0..=n.
    pub fn row(&self, n: usize) -> &[f64] {
        &self.rows[n]
    }
}

/// Probability that plurality voting over a random size-`k` subset of the
/// pool picks the correct answer, for every `k` from 0 to the pool's size.
///
/// `counts[i]` is how many samples gave answer class `i`; `correct` is the
/// class of the expected answer (if any sample gave it); `abstain` counts
/// samples with no answer, which never vote.
///
/// Conditioning on `v`, the correct class's votes in the subset, the other
/// classes split into rivals (at least `v` samples in the pool, so they can
/// tie or win) and free classes (fewer than `v`, so they never matter). The
/// ways to pick the rivals' votes, each below `v` or tied at `v` with the
/// tie weight 1/(1 + ties), form a polynomial in the subset size; summing
/// those over the `v` that share one set of free classes and multiplying once
/// by the free classes' binomial gives every `k` at once.
pub fn majority_curve(
    b: &Binomials,
    counts: &[usize],
    correct: Option<usize>,
    abstain: usize,
) -> Vec<f64> {
    let n: usize = counts.iter().sum::<usize>() + abstain;
    let mut ways = vec![0.0; n + 1];
    let Some(c) = correct else { return ways };
    let c0 = counts[c];
    let others: Vec<usize> = counts
        .iter()
        .enumerate()
        .filter(|&(i, &ci)| i != c && ci > 0)
        .map(|(_, &ci)| ci)
        .collect();
    // Σ over v in the current group of C(c0, v) z^v × rivals' polynomial.
    let mut group = vec![0.0; n + 1];
    let mut group_free = None;
    let mut dp: Vec<f64> = Vec::new();
    let mut next: Vec<f64> = Vec::new();
    for v in 1..=c0 {
        let free = abstain + others.iter().filter(|&&ci| ci < v).sum::<usize>();
        if group_free != Some(free) {
            if let Some(f) = group_free {
                spread_free(b, &mut group, f, &mut ways);
            }
            group_free = Some(free);
        }
        let rivals: Vec<usize> = others.iter().copied().filter(|&ci| ci >= v).collect();
        // dp[t * len + u]: ways for the rivals so far to give u votes below
        // v in all, with t of them tied at v. Rows by t keep the inner loop
        // over a rival's vote counts contiguous.
        let below = v - 1;
        let len = rivals.len() * below + 1;
        dp.clear();
        dp.resize((rivals.len() + 1) * len, 0.0);
        dp[0] = 1.0;
        for (j, &ci) in rivals.iter().enumerate() {
            next.clear();
            next.resize(dp.len(), 0.0);
            // A rival has ci ≥ v samples, so C(ci, x) for x ≤ below is its row.
            let under = &b.row(ci)[..=below];
            let tie = b.get(ci, v);
            for t in 0..=j {
                let (row, rest) = next[t * len..].split_at_mut(len);
                let tied = &mut rest[..len];
                for u in 0..=j * below {
                    let w = dp[t * len + u];
                    if w == 0.0 {
                        continue;
                    }
                    for (n, c) in row[u..=u + below].iter_mut().zip(under) {
                        *n += w * c;
                    }
                    tied[u] += w * tie;
                }
            }
            std::mem::swap(&mut dp, &mut next);
        }
        let pick_correct = b.get(c0, v);
        for t in 0..=rivals.len() {
            let share = pick_correct / (1 + t) as f64;
            for (u, &w) in dp[t * len..(t + 1) * len].iter().enumerate() {
                if w != 0.0 {
                    group[v + u + t * v] += share * w;
                }
            }
        }
    }
    if let Some(f) = group_free {
        spread_free(b, &mut group, f, &mut ways);
    }
    for (k, w) in ways.iter_mut().enumerate().skip(1) {
        *w /= b.get(n, k);
    }
    ways[0] = 0.0;
    ways
}

/// Multiply `group` by (1 + z)^free into `ways`, and clear `group`.
fn spread_free(b: &Binomials, group: &mut [f64], free: usize, ways: &mut [f64]) {
    let row = b.row(free);
    for i in 0..group.len() {
        let g = std::mem::take(&mut group[i]);
        if g == 0.0 {
            continue;
        }
        let end = (i + row.len()).min(ways.len());
        for (w, r) in ways[i..end].iter_mut().zip(row) {
            *w += g * r;
        }
    }
}

/// Probability that a random size-`k` subset of an `n`-sample pool holding
/// `abstain` abstentions has no answer at all, for every `k` from 0 to `n`
/// (the probability that a voting rule abstains).
pub fn abstain_curve(b: &Binomials, n: usize, abstain: usize) -> Vec<f64> {
    (0..=n)
        .map(|k| {
            if k == 0 {
                0.0
            } else {
                b.get(abstain, k) / b.get(n, k)
            }
        })
        .collect()
}

/// pass@k: the probability that a random size-`k` subset of an `n`-sample
/// pool with `correct` correct samples holds at least one, for every `k` from
/// 0 to `n` (the unbiased estimator 1 − C(n−c, k) / C(n, k)).
pub fn pass_at_k_curve(b: &Binomials, n: usize, correct: usize) -> Vec<f64> {
    (0..=n)
        .map(|k| {
            if k == 0 {
                0.0
            } else {
                1.0 - b.get(n - correct, k) / b.get(n, k)
            }
        })
        .collect()
}

/// One candidate for best-of-n: its verifier score and what picking it yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub correct: bool,
    pub abstained: bool,
}

/// Expected (correct, abstained) of picking the highest-scored sample of a
/// random size-`k` subset, ties broken uniformly at random, for every `k`
/// from 0 to the pool's size.
pub fn best_of_n_curve(b: &Binomials, pool: &[Scored]) -> (Vec<f64>, Vec<f64>) {
    let n = pool.len();
    let mut sorted: Vec<Scored> = pool.to_vec();
    sorted.sort_by(|x, y| y.score.total_cmp(&x.score));
    let (mut correct, mut abstained) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let mut higher = 0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        let (mut cc, mut ca) = (0usize, 0usize);
        while j < n && sorted[j].score == sorted[i].score {
            cc += usize::from(sorted[j].correct);
            ca += usize::from(sorted[j].abstained);
            j += 1;
        }
        let m = j - i;
        // Subsets whose best score is this group's: none higher, at least one
        // of the group: C(n − higher, k) − C(n − higher − m, k) of them. A
        // group of wrong answers adds nothing to either curve.
        let (with, without) = (b.row(n - higher), b.row(n - higher - m));
        for (count, curve) in [(cc, &mut correct), (ca, &mut abstained)] {
            if count == 0 {
                continue;
            }
            let share = count as f64 / m as f64;
            for k in 1..with.len() {
                curve[k] += (with[k] - without.get(k).copied().unwrap_or(0.0)) * share;
            }
        }
        higher += m;
        i = j;
    }
    for k in 1..=n {
        let all = b.get(n, k);
        correct[k] /= all;
        abstained[k] /= all;
    }
    (correct, abstained)
}

/// One candidate for weighted majority: its answer class (`None` for an
/// abstention) and its verifier score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted {
    pub class: Option<usize>,
    pub score: f64,
}

impl Weighted {
    /// A candidate with no score (a verifier that failed) casts no vote.
    pub fn new(class: Option<usize>, score: f64) -> Weighted {
        Weighted {
            class: class.filter(|_| score.is_finite()),
            score,
        }
    }
}

/// Weighted majority at every `k`: an estimate and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCurve {
    /// Probability of picking the correct class at each `k` (0..=n).
    pub accuracy: Vec<f64>,
    /// Monte Carlo variance of each `accuracy` entry; zeros when exact.
    pub variance: Vec<f64>,
    pub exact: bool,
}

/// Pools at most this large are enumerated subset by subset (2^n subsets).
pub const WEIGHTED_EXACT_MAX: usize = 12;

/// Classes beyond which two-level pools are estimated rather than summed
/// exactly (the exact sum costs classes² × pool size).
pub const TWO_LEVEL_MAX_CLASSES: usize = 64;

/// The probability that summing verifier scores per answer class over a
/// random size-`k` subset puts the correct class on top (ties credited
/// 1/(number tied)), for every `k` from 0 to the pool's size.
///
/// Two-level scores (every vote 0 or one positive value, as from an oracle
/// or a pass/fail check) have an exact form (`two_level_curve`). No closed
/// form exists for sums of real scores, so pools of up to
/// [`WEIGHTED_EXACT_MAX`] samples are enumerated exactly and larger ones are
/// estimated from `permutations` seeded random orders of the pool: the first
/// `k` of a uniform random order is a uniform random size-`k` subset, so one
/// walk through an order serves every `k`.
pub fn weighted_majority_curve(
    b: &Binomials,
    pool: &[Weighted],
    correct: Option<usize>,
    classes: usize,
    permutations: usize,
    rng: &mut impl rand::RngExt,
) -> WeightedCurve {
    let n = pool.len();
    let exact = |accuracy| WeightedCurve {
        accuracy,
        variance: vec![0.0; n + 1],
        exact: true,
    };
    let Some(correct) = correct else {
        return exact(vec![0.0; n + 1]);
    };
    if let Some(accuracy) = two_level_curve(b, pool, correct, classes) {
        return exact(accuracy);
    }
    let mut tally = Tally::new(classes, correct);
    if n <= WEIGHTED_EXACT_MAX {
        let mut sum = vec![0.0; n + 1];
        let mut subsets = vec![0.0; n + 1];
        for mask in 1u32..(1 << n) {
            tally.clear();
            for (i, s) in pool.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    tally.add(s);
                }
            }
            let k = mask.count_ones() as usize;
            sum[k] += tally.credit();
            subsets[k] += 1.0;
        }
        return exact(
            (0..=n)
                .map(|k| if k == 0 { 0.0 } else { sum[k] / subsets[k] })
                .collect(),
        );
    }
    let (mut sum, mut squares) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..permutations {
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        tally.clear();
        for (k, &i) in order.iter().enumerate() {
            tally.add(&pool[i]);
            let credit = tally.credit();
            sum[k + 1] += credit;
            squares[k + 1] += credit * credit;
        }
    }
    let runs = permutations.max(1) as f64;
    let mut accuracy: Vec<f64> = sum.iter().map(|s| s / runs).collect();
    let mut variance: Vec<f64> = accuracy
        .iter()
        .zip(&squares)
        .map(|(m, sq)| (sq / runs - m * m).max(0.0) / runs)
        .collect();
    // One sample wins alone: the exact value is the correct share of the pool.
    accuracy[1] = pool.iter().filter(|s| s.class == Some(correct)).count() as f64 / n as f64;
    variance[1] = 0.0;
    WeightedCurve {
        accuracy,
        variance,
        exact: false,
    }
}

/// Weighted majority, exactly, when every vote's score is 0 or one value
/// h > 0 (`None` otherwise, or with more than [`TWO_LEVEL_MAX_CLASSES`]
/// classes): a class's sum is h × its accepted votes.
///
/// A subset holding an accepted vote is won by plurality among its accepted
/// votes, which is [`majority_curve`] with every other sample as a
/// non-voter. A subset with none has every present class tied at 0, so the
/// correct class gets 1/J when it is among the J present. 1/J is the chance
/// that the correct class comes first in a uniform random order of the
/// classes, so that term sums, over the set B of classes ahead of it (|B| = m
/// with probability 1/C', then uniform among the C(C' − 1, m) sets), the
/// subsets of rejected votes and non-voters that avoid B and hold the
/// correct class: C(R − r_B, k) − C(R − r_B − r_c, k), where R counts the
/// non-accepted samples and r the rejected votes per class. Only r_B
/// matters, so a DP over (|B|, r_B) counts the sets.
fn two_level_curve(
    b: &Binomials,
    pool: &[Weighted],
    correct: usize,
    classes: usize,
) -> Option<Vec<f64>> {
    let n = pool.len();
    let high = pool
        .iter()
        .filter(|s| s.class.is_some())
        .map(|s| s.score)
        .fold(0.0, f64::max);
    let votes = || pool.iter().filter_map(|s| s.class.map(|c| (c, s.score)));
    if votes().any(|(_, score)| score != 0.0 && score != high) {
        return None;
    }
    let (mut accepted, mut rejected) = (vec![0; classes], vec![0; classes]);
    for (c, score) in votes() {
        if score == high && high > 0.0 {
            accepted[c] += 1;
        } else {
            rejected[c] += 1;
        }
    }
    let present: Vec<usize> = (0..classes).filter(|&c| rejected[c] > 0).collect();
    if present.len() > TWO_LEVEL_MAX_CLASSES {
        return None;
    }
    let voted: usize = accepted.iter().sum();
    let mut ways = majority_curve(b, &accepted, Some(correct), n - voted);
    let r_c = rejected[correct];
    if r_c == 0 {
        return Some(ways);
    }
    for (k, w) in ways.iter_mut().enumerate().skip(1) {
        *w *= b.get(n, k);
    }
    // sets[m][s]: sets of m other classes with s rejected votes in all.
    let rest = n - voted;
    let others: Vec<usize> = present
        .iter()
        .filter(|&&c| c != correct)
        .map(|&c| rejected[c])
        .collect();
    let width = others.iter().sum::<usize>() + 1;
    let mut sets = vec![0.0; (others.len() + 1) * width];
    sets[0] = 1.0;
    for (j, &r) in others.iter().enumerate() {
        for m in (0..=j).rev() {
            for s in (0..width - r).rev() {
                let w = sets[m * width + s];
                if w != 0.0 {
                    sets[(m + 1) * width + s + r] += w;
                }
            }
        }
    }
    let orders = present.len() as f64;
    for s in 0..width {
        let weight: f64 = (0..=others.len())
            .map(|m| sets[m * width + s] / (orders * b.get(others.len(), m)))
            .sum();
        if weight == 0.0 {
            continue;
        }
        let (with, without) = (b.row(rest - s), b.row(rest - s - r_c));
        for k in 1..with.len() {
            ways[k] += weight * (with[k] - without.get(k).copied().unwrap_or(0.0));
        }
    }
    for (k, w) in ways.iter_mut().enumerate().skip(1) {
        *w /= b.get(n, k);
    }
    Some(ways)
}

/// Per-class score sums of a growing subset, and the highest of the wrong
/// classes' (the rival), kept up to date so that most steps of a walk cost
/// one comparison.
struct Tally {
    correct: usize,
    /// Every class's sum, the correct one's included.
    sums: Vec<f64>,
    present: Vec<bool>,
    /// Wrong classes present so far (for recounting the rival after a
    /// negative score, and for counting ties).
    seen: Vec<usize>,
    /// The highest sum of a present wrong class (−∞ when none is present).
    rival: f64,
    /// 1/i for i tied classes: the credit of a tie, without a division.
    shares: Vec<f64>,
}

impl Tally {
    fn new(classes: usize, correct: usize) -> Tally {
        Tally {
            correct,
            sums: vec![0.0; classes],
            present: vec![false; classes],
            seen: Vec::with_capacity(classes),
            rival: f64::NEG_INFINITY,
            shares: (0..=classes).map(|i| 1.0 / i.max(1) as f64).collect(),
        }
    }

    fn clear(&mut self) {
        for &c in self.seen.iter().chain([&self.correct]) {
            self.sums[c] = 0.0;
            self.present[c] = false;
        }
        self.seen.clear();
        self.rival = f64::NEG_INFINITY;
    }

    #[inline]
    fn add(&mut self, s: &Weighted) {
        let Some(c) = s.class else { return };
        let wrong = c != self.correct;
        if !self.present[c] {
            self.present[c] = true;
            if wrong {
                self.seen.push(c);
            }
        }
        let old = self.sums[c];
        let sum = old + s.score;
        self.sums[c] = sum;
        if wrong && sum < old && old == self.rival {
            // The rival fell (or a class tied with it did): recount over the
            // wrong classes present.
            self.rival = self
                .seen
                .iter()
                .map(|&c| self.sums[c])
                .fold(f64::NEG_INFINITY, f64::max);
        } else {
            // No branch on the class: the correct class offers −∞.
            let offer = if wrong { sum } else { f64::NEG_INFINITY };
            self.rival = self.rival.max(offer);
        }
    }

    /// 1/(number tied) if the correct class leads, else 0 (also when no class
    /// is present: the subset abstains).
    #[inline]
    fn credit(&self) -> f64 {
        let correct = self.sums[self.correct];
        if !self.present[self.correct] || correct < self.rival {
            0.0
        } else if correct > self.rival {
            1.0
        } else {
            let tied = self
                .seen
                .iter()
                .filter(|&&c| self.sums[c] == self.rival)
                .count();
            self.shares[1 + tied]
        }
    }
}

/// A strategy's expected outcome on one task: accuracy, the probability of
/// no answer, and the samples it draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequential {
    pub accuracy: f64,
    pub abstain: f64,
    pub samples: f64,
}

/// Adaptive consistency on a pool: samples are drawn one at a time, in a
/// uniformly random order of the pool, until `decisive(leader votes,
/// runner-up votes)` holds or `cap` are drawn; the answer is the plurality of
/// those drawn (ties shared). Averaged over `permutations` seeded orders (a
/// random order of an i.i.d. pool is distributed like fresh draws).
///
/// `classes[i]` is sample i's answer class (`None`: abstention).
pub fn adaptive_consistency(
    classes: &[Option<usize>],
    correct: Option<usize>,
    n_classes: usize,
    cap: usize,
    decisive: impl Fn(usize, usize) -> bool,
    permutations: usize,
    rng: &mut impl rand::RngExt,
) -> Sequential {
    let cap = cap.min(classes.len());
    let mut order: Vec<usize> = (0..classes.len()).collect();
    let mut counts = vec![0usize; n_classes];
    let (mut correct_sum, mut abstain_sum, mut drawn_sum) = (0.0, 0.0, 0.0);
    for _ in 0..permutations.max(1) {
        counts.iter_mut().for_each(|c| *c = 0);
        let mut drawn = 0;
        for (t, i) in shuffled_prefix(&mut order, cap, rng).iter().enumerate() {
            drawn = t + 1;
            if let Some(c) = classes[*i] {
                counts[c] += 1;
                let (v1, v2) = top_two(&counts);
                if decisive(v1, v2) {
                    break;
                }
            }
        }
        drawn_sum += drawn as f64;
        let best = counts.iter().copied().max().unwrap_or(0);
        if best == 0 {
            abstain_sum += 1.0;
        } else if let Some(c) = correct
            && counts[c] == best
        {
            correct_sum += 1.0 / counts.iter().filter(|&&x| x == best).count() as f64;
        }
    }
    let runs = permutations.max(1) as f64;
    Sequential {
        accuracy: correct_sum / runs,
        abstain: abstain_sum / runs,
        samples: drawn_sum / runs,
    }
}

/// Shuffle the first `k` places of `order` uniformly (a partial Fisher–Yates)
/// and return them.
fn shuffled_prefix<'a>(
    order: &'a mut [usize],
    k: usize,
    rng: &mut impl rand::RngExt,
) -> &'a [usize] {
    let n = order.len();
    for i in 0..k.min(n) {
        order.swap(i, rng.random_range(i..n));
    }
    &order[..k.min(n)]
}

/// The largest and second-largest of `counts` (0 where missing).
pub fn top_two(counts: &[usize]) -> (usize, usize) {
    counts.iter().fold((0, 0), |(a, b), &c| {
        if c > a {
            (c, a)
        } else if c > b {
            (a, c)
        } else {
            (a, b)
        }
    })
}

/// Posterior probability that the leading answer (`v1` votes) is more likely
/// than the runner-up (`v2`), with a uniform prior on their split: for
/// X ~ Beta(v1 + 1, v2 + 1), P(X > 1/2) = P(Binomial(v1 + v2 + 1, 1/2) ≤ v1).
pub fn leader_probability(v1: usize, v2: usize) -> f64 {
    let m = v1 + v2 + 1;
    // Sum the binomial's pmf in log space: m can run to thousands.
    let ln_half = -(m as f64) * std::f64::consts::LN_2;
    let mut ln_c = 0.0; // ln C(m, 0)
    let mut total = 0.0;
    for j in 0..=v1 {
        if j > 0 {
            ln_c += ((m - j + 1) as f64).ln() - (j as f64).ln();
        }
        total += (ln_c + ln_half).exp();
    }
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_probability_matches_the_beta_distribution() {
        // Beta(1, 1) is uniform: P(X > 1/2) = 1/2.
        assert!((leader_probability(0, 0) - 0.5).abs() < 1e-12);
        // Beta(2, 1) has density 2x: P(X > 1/2) = 3/4.
        assert!((leader_probability(1, 0) - 0.75).abs() < 1e-12);
        // Beta(4, 2): P(X > 1/2) = 1 − I_{1/2}(4, 2) = 13/16.
        assert!((leader_probability(3, 1) - 13.0 / 16.0).abs() < 1e-12);
        assert!(leader_probability(600, 500) > 0.99 && leader_probability(500, 500) < 0.51);
    }

    #[test]
    fn top_two_ignores_order() {
        assert_eq!(top_two(&[3, 7, 5]), (7, 5));
        assert_eq!(top_two(&[4, 4]), (4, 4));
        assert_eq!(top_two(&[2]), (2, 0));
    }

    #[test]
    fn binomials_match_known_values() {
        let b = Binomials::new(64);
        assert_eq!(b.get(5, 2), 10.0);
        assert_eq!(b.get(64, 32), 1_832_624_140_942_590_534.0);
        assert_eq!(b.get(3, 4), 0.0);
    }

    #[test]
    fn single_sample_majority_is_the_correct_share() {
        let b = Binomials::new(10);
        // 4 correct, 3 + 2 wrong, 1 abstention: at k = 1 accuracy is 4/10.
        let p = majority_curve(&b, &[4, 3, 2], Some(0), 1)[1];
        assert!((p - 0.4).abs() < 1e-12);
    }

    #[test]
    fn full_pool_majority_is_the_plurality() {
        let b = Binomials::new(10);
        assert_eq!(majority_curve(&b, &[4, 3, 2], Some(0), 1)[10], 1.0);
        assert_eq!(majority_curve(&b, &[3, 4, 2], Some(0), 1)[10], 0.0);
        assert_eq!(majority_curve(&b, &[3, 3], Some(0), 0)[6], 0.5);
    }
}
