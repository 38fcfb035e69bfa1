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

    pub fn max(&self) -> usize {
        self.rows.len() - 1
    }
}

/// Probability that plurality voting over a random size-`k` subset of the pool
/// picks the correct answer.
///
/// `counts[i]` is how many samples gave answer class `i`; `correct` is the
/// class of the expected answer (if any sample gave it); `abstain` counts
/// samples with no answer, which never vote.
pub fn majority(
    b: &Binomials,
    counts: &[usize],
    correct: Option<usize>,
    abstain: usize,
    k: usize,
) -> f64 {
    let Some(c) = correct else { return 0.0 };
    let n: usize = counts.iter().sum::<usize>() + abstain;
    if k == 0 || k > n {
        return 0.0;
    }
    let c0 = counts[c];
    let mut total = 0.0;
    let mut dp: Vec<f64> = Vec::new();
    let mut next: Vec<f64> = Vec::new();
    for v in 1..=c0.min(k) {
        // Classes that can reach v votes compete; the rest (and abstentions)
        // can fill the subset freely without affecting who wins.
        let rivals: Vec<usize> = counts
            .iter()
            .enumerate()
            .filter(|&(i, &ci)| i != c && ci >= v)
            .map(|(_, &ci)| ci)
            .collect();
        let free: usize = abstain
            + counts
                .iter()
                .enumerate()
                .filter(|&(i, &ci)| i != c && ci < v)
                .map(|(_, &ci)| ci)
                .sum::<usize>();
        let room = k - v; // subset slots besides the correct answer's v votes
        let max_ties = rivals.len().min(room / v);
        let width = max_ties + 1;
        // dp[s * width + t]: ways to pick s rival samples with t rivals tied at v.
        dp.clear();
        dp.resize((room + 1) * width, 0.0);
        dp[0] = 1.0;
        for &ci in &rivals {
            next.clear();
            next.resize(dp.len(), 0.0);
            for s in 0..=room {
                for t in 0..width {
                    let w = dp[s * width + t];
                    if w == 0.0 {
                        continue;
                    }
                    for x in 0..=v.min(room - s) {
                        let tied = usize::from(x == v);
                        if t + tied >= width {
                            continue;
                        }
                        next[(s + x) * width + t + tied] += w * b.get(ci, x);
                    }
                }
            }
            std::mem::swap(&mut dp, &mut next);
        }
        let mut ways = 0.0;
        for s in 0..=room {
            let fill = b.get(free, room - s);
            if fill == 0.0 {
                continue;
            }
            for t in 0..width {
                ways += dp[s * width + t] * fill / (1 + t) as f64;
            }
        }
        total += b.get(c0, v) * ways;
    }
    total / b.get(n, k)
}

/// Probability that a random size-`k` subset of an `n`-sample pool holding
/// `abstain` abstentions has no answer at all (so majority voting abstains).
pub fn majority_abstains(b: &Binomials, n: usize, abstain: usize, k: usize) -> f64 {
    if k == 0 || k > n {
        return 0.0;
    }
    b.get(abstain, k) / b.get(n, k)
}

/// One candidate for best-of-n: its verifier score and what picking it yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub correct: bool,
    pub abstained: bool,
}

/// Expected (correct, abstained) of picking the highest-scored sample of a
/// random size-`k` subset, ties broken uniformly at random.
pub fn best_of_n(b: &Binomials, pool: &[Scored], k: usize) -> (f64, f64) {
    let n = pool.len();
    if k == 0 || k > n {
        return (0.0, 0.0);
    }
    let mut sorted: Vec<Scored> = pool.to_vec();
    sorted.sort_by(|x, y| y.score.total_cmp(&x.score));
    let denom = b.get(n, k);
    let (mut correct, mut abstained) = (0.0, 0.0);
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
        // Subsets whose best score is this group's: none higher, at least one of the group.
        let p = (b.get(n - higher, k) - b.get(n - higher - m, k)) / denom;
        correct += p * cc as f64 / m as f64;
        abstained += p * ca as f64 / m as f64;
        higher += m;
        i = j;
    }
    (correct, abstained)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = majority(&b, &[4, 3, 2], Some(0), 1, 1);
        assert!((p - 0.4).abs() < 1e-12);
    }

    #[test]
    fn full_pool_majority_is_the_plurality() {
        let b = Binomials::new(10);
        assert_eq!(majority(&b, &[4, 3, 2], Some(0), 1, 10), 1.0);
        assert_eq!(majority(&b, &[3, 4, 2], Some(0), 1, 10), 0.0);
        assert_eq!(majority(&b, &[3, 3], Some(0), 0, 6), 0.5);
    }
}
