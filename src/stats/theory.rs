//! Exact accuracy of test-time strategies for a known answer distribution,
//! with no sampling: what `crucible theory` prints and the data is held
//! against.
//!
//! A model answers one of K answers with probabilities `p` (and abstains
//! with the rest of the mass, which never votes); answer `correct` is
//! right. With n independent samples:
//!
//! - **Majority** (plurality vote; a tie that includes the correct answer
//!   counts 1/(number tied), as everywhere in crucible; no vote at all is
//!   wrong) is computed exactly over the multinomial, conditioning on the
//!   correct answer's count m: the others then share n − m samples
//!   (multinomial with their renormalized probabilities), and the vote is
//!   won with weight 1/(1 + j) when every other count is ≤ m and j of them
//!   equal m. That probability is a dynamic programme over the other
//!   answers, one at a time, each taking a binomial share of the samples
//!   left (stick-breaking), with state (samples left, answers tied at m).
//!   Binomial terms (Loader's saddle-point form, then ratios from the
//!   mode) below [`TAIL`] of their largest are dropped, states whose weight
//!   times the correct count's probability is below [`TAIL`] are dropped,
//!   and answers that reach m with probability below [`TAIL`] (and
//!   abstention, which never votes) absorb the samples left without being
//!   tracked; the result is within about 1e-14 of exact. Cost: O(Σ_m Σ_a S·W·J) for the m with
//!   non-negligible probability, S the live states of samples left, W the
//!   live width of a binomial and J the live tie counts — O(K·n²) in the
//!   worst case, about √n·√n per answer in practice. Three or more equally
//!   likely others, the worst case, go to `stats::equal_others` instead:
//!   O(n·(J + log g)) per m.
//! - **Best-of-n** with a verifier that accepts a correct sample with
//!   probability 1 − fn and a wrong one with probability fp: the answer is a
//!   uniformly chosen accepted sample, or, when none is accepted, a
//!   uniformly chosen sample. With a = p·(1 − fn), b = (1 − p − abstain)·fp
//!   (abstentions are never accepted) and r = 1 − a − b,
//!   P(correct) = (1 − rⁿ)·a/(a + b) + rⁿ·p·fn/r; with a perfect verifier,
//!   1 − (1 − p)ⁿ.
//! - **pass@n**: 1 − (1 − p)ⁿ, any of n samples correct.
//!
//! [`n_for`] finds the smallest n reaching accuracy 1 − δ.

use serde::Serialize;

use super::equal_others::EqualOthers;

/// Relative weight below which a term of the majority DP is dropped.
pub const TAIL: f64 = 1e-20;

/// An answer distribution, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerDistribution {
    /// Probability of each answer.
    pub p: Vec<f64>,
    /// The right answer's index.
    pub correct: usize,
    /// Probability of no answer (1 − Σp).
    pub abstain: f64,
}

impl AnswerDistribution {
    /// `p` with its `correct` answer: non-empty, finite, non-negative, and
    /// summing to 1 within 1e-9 (or to less, the rest being abstention, when
    /// `abstain_allowed`). The error says what is wrong.
    pub fn new(p: Vec<f64>, correct: usize, abstain_allowed: bool) -> Result<Self, String> {
        if p.is_empty() {
            return Err(
                "the distribution is empty: give each answer's probability, e.g. 0.4,0.3,0.3"
                    .into(),
            );
        }
        if let Some((i, x)) = p
            .iter()
            .enumerate()
            .find(|(_, x)| !x.is_finite() || **x < 0.0)
        {
            return Err(format!(
                "the probability of answer {i} (counting from 0) is {x}: probabilities must be finite and non-negative"
            ));
        }
        let sum: f64 = p.iter().sum();
        let abstain = 1.0 - sum;
        if abstain < -1e-9 || (!abstain_allowed && abstain > 1e-9) {
            return Err(format!(
                "the probabilities sum to {sum}, not 1 (within 1e-9); fix them so that they do"
            ));
        }
        if correct >= p.len() {
            return Err(format!(
                "the correct answer is number {correct} (counting from 0), but there are only {} answers",
                p.len()
            ));
        }
        Ok(AnswerDistribution {
            p,
            correct,
            abstain: abstain.max(0.0),
        })
    }

    /// The correct answer's probability.
    pub fn p_correct(&self) -> f64 {
        self.p[self.correct]
    }
}

/// A binary verifier's error rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verifier {
    /// P(accepts a wrong sample).
    pub fp: f64,
    /// P(rejects a correct sample).
    #[serde(rename = "fn")]
    pub fn_: f64,
}

impl Verifier {
    pub const PERFECT: Verifier = Verifier { fp: 0.0, fn_: 0.0 };
}

/// A rule whose accuracy is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Majority,
    BestOfN,
    PassAtN,
}

impl Rule {
    pub const ALL: [Rule; 3] = [Rule::Majority, Rule::BestOfN, Rule::PassAtN];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Majority => "majority",
            Rule::BestOfN => "best_of_n",
            Rule::PassAtN => "pass_at_n",
        }
    }
}

/// `rule`'s exact accuracy with `n` samples.
pub fn accuracy(rule: Rule, d: &AnswerDistribution, n: usize, verifier: Verifier) -> f64 {
    match rule {
        Rule::Majority => majority(d, n),
        Rule::BestOfN => best_of_n(d, n, verifier),
        Rule::PassAtN => 1.0 - (1.0 - d.p_correct()).powi(n.min(i32::MAX as usize) as i32),
    }
}

/// `rule`'s accuracy at each of `ns`, majority's dropping terms below
/// `tail` (see [`Majority::with_tail`]) and sharing its binomial windows
/// between the n.
pub fn curve(
    rule: Rule,
    d: &AnswerDistribution,
    ns: &[usize],
    verifier: Verifier,
    tail: f64,
) -> Vec<f64> {
    match rule {
        Rule::Majority => {
            let mut majority = Majority::with_tail(d, tail);
            ns.iter().map(|&n| majority.at(n)).collect()
        }
        _ => ns.iter().map(|&n| accuracy(rule, d, n, verifier)).collect(),
    }
}

/// Best-of-n's accuracy, in closed form (see the module's doc).
pub fn best_of_n(d: &AnswerDistribution, n: usize, v: Verifier) -> f64 {
    let p = d.p_correct();
    let wrong = (1.0 - p - d.abstain).max(0.0);
    let a = p * (1.0 - v.fn_);
    let b = wrong * v.fp;
    let r = (1.0 - a - b).max(0.0);
    let rn = r.powi(n.min(i32::MAX as usize) as i32);
    let accepted = if a + b > 0.0 { a / (a + b) } else { 0.0 };
    let rejected = if r > 0.0 { p * v.fn_ / r } else { 0.0 };
    if n == 0 {
        return 0.0;
    }
    (1.0 - rn) * accepted + rn * rejected
}

/// ln n! − ((n + ½) ln n − n + ln √(2π)): Stirling's error, from the sum
/// of logarithms for small n and its asymptotic series beyond, accurate to
/// about 1e-16 either way (Loader's binomial algorithm).
fn stirling_error(n: f64) -> f64 {
    const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
    if n <= 15.0 {
        let ln_factorial: f64 = (2..=n as u64).map(|k| (k as f64).ln()).sum();
        return ln_factorial - (n + 0.5) * n.ln() + n - LN_SQRT_2PI;
    }
    let n2 = n * n;
    (1.0 / 12.0
        - (1.0 / 360.0 - (1.0 / 1260.0 - (1.0 / 1680.0 - 1.0 / (1188.0 * n2)) / n2) / n2) / n2)
        / n
}

/// x ln(x/m) + m − x without cancellation (the deviance term).
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        let v2 = v * v;
        for j in 1..1000 {
            ej *= v2;
            let next = s + ej / (2 * j + 1) as f64;
            if next == s {
                break;
            }
            s = next;
        }
        return s;
    }
    x * (x / m).ln() + m - x
}

/// ln of the binomial probability of k successes in n trials at rate θ
/// (0 < θ < 1), accurate to about 1e-15 relative however large n is.
fn ln_binomial(n: usize, k: usize, theta: f64) -> f64 {
    let (nf, kf) = (n as f64, k as f64);
    if k == 0 {
        return nf * (-theta).ln_1p();
    }
    if k == n {
        return nf * theta.ln();
    }
    let m = nf - kf;
    stirling_error(nf)
        - stirling_error(kf)
        - stirling_error(m)
        - deviance(kf, nf * theta)
        - deviance(m, nf * (1.0 - theta))
        - 0.5 * (2.0 * std::f64::consts::PI * kf * m / nf).ln()
}

/// ln of the Poisson(λ) probability of k, accurate to about 1e-15
/// relative however large λ and k are (Loader's form, as for the
/// binomial).
pub(super) fn ln_poisson(lambda: f64, k: usize) -> f64 {
    if lambda <= 0.0 {
        return if k == 0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if k == 0 {
        return -lambda;
    }
    let kf = k as f64;
    -stirling_error(kf) - deviance(kf, lambda) - 0.5 * (std::f64::consts::TAU * kf).ln()
}

/// The binomial probabilities of k ≤ `to` successes in `n` trials at rate
/// `theta`, where they are not negligible: (first k, values). From the
/// mode (or `to`, below it) outwards by the ratio of neighbouring terms.
fn binomial_window(n: usize, theta: f64, to: usize, tail: f64) -> BinomialWindow {
    let to = to.min(n);
    if theta <= 0.0 {
        return (0, vec![1.0]);
    }
    if theta >= 1.0 {
        return if n <= to {
            (n, vec![1.0])
        } else {
            (0, Vec::new())
        };
    }
    let mode = (((n as f64 + 1.0) * theta).floor() as usize).min(n);
    let peak = mode.min(to);
    let top = ln_binomial(n, peak, theta);
    let floor = if peak == mode {
        top
    } else {
        ln_binomial(n, mode, theta)
    } + tail.ln();
    if top <= floor {
        return (0, Vec::new());
    }
    let odds = theta / (1.0 - theta);
    let cut = floor.exp();
    let mut down = Vec::new();
    let (mut k, mut w) = (peak, top.exp());
    while k > 0 {
        w *= k as f64 / ((n - k + 1) as f64 * odds);
        if w <= cut {
            break;
        }
        k -= 1;
        down.push(w);
    }
    let lo = peak - down.len();
    let mut out: Vec<f64> = down.into_iter().rev().collect();
    out.push(top.exp());
    let (mut k, mut w) = (peak, top.exp());
    while k < to {
        w *= (n - k) as f64 / (k + 1) as f64 * odds;
        if w <= cut {
            break;
        }
        k += 1;
        out.push(w);
    }
    (lo, out)
}

/// Majority's exact accuracy with `n` samples (see the module's doc).
pub fn majority(d: &AnswerDistribution, n: usize) -> f64 {
    Majority::new(d).at(n)
}

/// Majority's exact accuracy at any n for one distribution. The others'
/// binomial shares depend on (answer, samples left) only, so they are
/// computed once for every m and every n asked.
pub struct Majority<'a> {
    d: &'a AnswerDistribution,
    /// The others, likeliest first.
    others: Vec<f64>,
    /// Their total mass with abstention: 1 − p*.
    rest: f64,
    /// Stick-breaking shares, and each answer's share of all the others'
    /// samples (whether it can reach m at all).
    shares: Shares,
    reach: Shares,
    /// Relative weight below which a term is dropped.
    tail: f64,
    /// The likeliest others when there are three or more of them at the
    /// same probability: computed at once while they are all that can
    /// reach m (see `stats::equal_others`).
    equal: Option<EqualOthers>,
}

impl<'a> Majority<'a> {
    pub fn new(d: &'a AnswerDistribution) -> Self {
        Majority::with_tail(d, TAIL)
    }

    /// Dropping terms below `tail` instead of [`TAIL`]: the result is
    /// within about `tail`·n of exact, for uses (posterior bands) that need
    /// less than every digit.
    pub fn with_tail(d: &'a AnswerDistribution, tail: f64) -> Self {
        let mut others: Vec<f64> =
            d.p.iter()
                .enumerate()
                .filter(|&(i, &x)| i != d.correct && x > 0.0)
                .map(|(_, &x)| x)
                .collect();
        others.sort_by(|a, b| b.total_cmp(a));
        let rest = 1.0 - d.p_correct();
        let reach = Shares::new(others.iter().map(|&x| x / rest).collect(), tail);
        // Stick-breaking: answer i's share of what the likelier ones left.
        let mut remaining = rest;
        let thetas = others
            .iter()
            .map(|&x| {
                let theta = (x / remaining).min(1.0);
                remaining -= x;
                theta
            })
            .collect();
        let tied = others.iter().take_while(|&&x| x == others[0]).count();
        let equal = (tied >= 3).then(|| EqualOthers::new(tied, others[0] / rest, d.p_correct()));
        Majority {
            d,
            others,
            rest,
            shares: Shares::new(thetas, tail),
            reach,
            tail,
            equal,
        }
    }

    pub fn at(&mut self, n: usize) -> f64 {
        let pc = self.d.p_correct();
        if n == 0 || pc <= 0.0 {
            return 0.0;
        }
        let (start, weights) = binomial_window(n, pc, n, self.tail);
        let mut total = 0.0;
        for (i, w) in weights.iter().enumerate() {
            let m = start + i;
            if m == 0 {
                continue;
            }
            total += w * self.others_at_most(n - m, m, self.tail / w);
        }
        total.min(1.0)
    }

    /// E[1{every other count ≤ m} / (1 + #{others = m})] when the others
    /// share `left` samples. States weighing `floor` or less are dropped:
    /// the caller scales the result by a weight no greater than tail /
    /// `floor`, so what is dropped is below the tail apiece.
    fn others_at_most(&mut self, left: usize, m: usize, floor: f64) -> f64 {
        let (q, mass) = (&self.others, self.rest);
        if mass <= 0.0 {
            return if left == 0 { 1.0 } else { 0.0 };
        }
        // Answers that can reach m are tracked; the rest (and abstention)
        // absorb what is left. The likeliest first, so the tracked are a
        // prefix (equal probabilities are checked once).
        let mut tracked = 0;
        let mut last: Option<f64> = None;
        self.reach.trim();
        for (a, &x) in q.iter().enumerate() {
            if last != Some(x) {
                self.reach.ensure(a, left);
                let (start, pmf) = self.reach.get(a, left);
                let tail: f64 = pmf.iter().skip(m.saturating_sub(*start)).sum();
                if tail < self.tail {
                    break;
                }
                last = Some(x);
            }
            tracked += 1;
        }
        if let Some(equal) = &mut self.equal
            && equal.len() == tracked
        {
            return equal.at_most(left + m, m);
        }
        // rows[j]: the weights of j answers tied at m, over a window of the
        // samples left (r = row.lo + i).
        let mut rows: Vec<Window> = vec![Window {
            lo: left,
            w: vec![1.0],
        }];
        let mut remaining = mass;
        for (a, &x) in q[..tracked].iter().enumerate() {
            // The binomial share of each live count of samples left, then
            // the window the states reach.
            self.shares.trim();
            for row in &rows {
                for r in row.live(floor) {
                    self.shares.ensure(a, r);
                }
            }
            let (mut lo, mut hi) = (usize::MAX, 0);
            for row in &rows {
                for r in row.live(floor) {
                    let (start, pmf) = self.shares.get(a, r);
                    let end = (start + pmf.len()).min(m + 1);
                    if end > *start {
                        lo = lo.min(r - (end - 1));
                        hi = hi.max(r - start);
                    }
                }
            }
            if lo > hi {
                return 0.0;
            }
            let mut next: Vec<Window> = (0..=rows.len())
                .map(|_| Window {
                    lo,
                    w: vec![0.0; hi - lo + 1],
                })
                .collect();
            for (j, row) in rows.iter().enumerate() {
                for (i, &w) in row.w.iter().enumerate() {
                    if w <= floor {
                        continue;
                    }
                    let r = row.lo + i;
                    let (start, pmf) = self.shares.get(a, r);
                    let end = (start + pmf.len()).min(m + 1);
                    for k in *start..end {
                        next[j + usize::from(k == m)].w[r - k - lo] += w * pmf[k - start];
                    }
                }
            }
            while next.len() > 1
                && next
                    .last()
                    .is_some_and(|row| row.w.iter().all(|&w| w == 0.0))
            {
                next.pop();
            }
            rows = next;
            remaining -= x;
        }
        // Whatever is left goes to untracked answers or abstention; with
        // none, nothing may be left.
        let untracked = remaining > 1e-12 * mass;
        rows.iter()
            .enumerate()
            .map(|(j, row)| {
                let w: f64 = if untracked {
                    row.w.iter().sum()
                } else if row.lo == 0 {
                    row.w[0]
                } else {
                    0.0
                };
                w / (1 + j) as f64
            })
            .sum()
    }
}

/// Binomial windows of the others' stick-breaking shares by (answer,
/// samples left), kept while they fit in [`SHARES_CACHED`] values.
struct Shares {
    thetas: Vec<f64>,
    tail: f64,
    /// windows[a][r]: Binomial(r, thetas[a]).
    windows: Vec<Vec<Option<BinomialWindow>>>,
    cached: usize,
}

/// A binomial's non-negligible probabilities: (first k, values from it).
type BinomialWindow = (usize, Vec<f64>);

/// Most binomial values [`Majority`] keeps (256 MiB).
const SHARES_CACHED: usize = 1 << 25;

impl Shares {
    fn new(thetas: Vec<f64>, tail: f64) -> Shares {
        Shares {
            thetas,
            tail,
            windows: Vec::new(),
            cached: 0,
        }
    }

    fn ensure(&mut self, a: usize, r: usize) {
        if self.windows.len() <= a {
            self.windows.resize_with(a + 1, Vec::new);
        }
        if self.windows[a].len() <= r {
            self.windows[a].resize_with(r + 1, || None);
        }
        if self.windows[a][r].is_some() {
            return;
        }
        let window = binomial_window(r, self.thetas[a], r, self.tail);
        self.cached += window.1.len();
        self.windows[a][r] = Some(window);
    }

    /// Start over once past the cap rather than grow without bound; called
    /// between steps, so no window in use is dropped.
    fn trim(&mut self) {
        if self.cached > SHARES_CACHED {
            self.windows.clear();
            self.cached = 0;
        }
    }

    fn get(&self, a: usize, r: usize) -> &BinomialWindow {
        self.windows[a][r].as_ref().expect("ensured before use")
    }
}

/// Weights over a window of the samples left.
struct Window {
    lo: usize,
    w: Vec<f64>,
}

impl Window {
    /// The samples left whose weight is above `floor`.
    fn live(&self, floor: f64) -> impl Iterator<Item = usize> + '_ {
        self.w
            .iter()
            .enumerate()
            .filter(move |&(_, &w)| w > floor)
            .map(|(i, _)| self.lo + i)
    }
}

/// The smallest n ≤ `max_n` at which `rule` reaches accuracy `1 − delta`:
/// doubling until it does, then bisecting (the smallest such n where
/// accuracy does not fall as n grows, as for these rules past the first
/// few n); `None` when `max_n` does not reach it, or when majority's limit
/// is below the target and its accuracy stops rising first.
pub fn n_for(
    rule: Rule,
    d: &AnswerDistribution,
    delta: f64,
    verifier: Verifier,
    max_n: usize,
) -> Option<usize> {
    let mut majority = Majority::new(d);
    reaching(
        1.0 - delta,
        limit(rule, d, verifier),
        max_n,
        |n| match rule {
            Rule::Majority => majority.at(n),
            _ => accuracy(rule, d, n, verifier),
        },
    )
}

/// The smallest n ≤ `max_n` at which the curve `at` reaches `target`, for
/// a curve tending to `limit`. When the limit is below the target, only an
/// early peak can reach it, so n is doubled only while the curve rises.
pub fn reaching(
    target: f64,
    limit: f64,
    max_n: usize,
    mut at: impl FnMut(usize) -> f64,
) -> Option<usize> {
    if target <= limit {
        return first_reaching(max_n, |n| at(n) >= target);
    }
    let (mut n, mut last) = (1, at(1));
    while last < target {
        let next = (n * 2).min(max_n);
        let now = at(next);
        if next == n || now <= last {
            return None;
        }
        (n, last) = (next, now);
    }
    first_reaching(n, |k| at(k) >= target)
}

/// `rule`'s accuracy as n grows without bound.
pub fn limit(rule: Rule, d: &AnswerDistribution, verifier: Verifier) -> f64 {
    match rule {
        Rule::Majority => majority_limit(d),
        Rule::PassAtN => f64::from(u8::from(d.p_correct() > 0.0)),
        Rule::BestOfN => {
            let p = d.p_correct();
            let (a, b) = (
                p * (1.0 - verifier.fn_),
                (1.0 - p - d.abstain).max(0.0) * verifier.fp,
            );
            if a + b > 0.0 {
                a / (a + b)
            } else {
                // Nothing is ever accepted: a random sample.
                p
            }
        }
    }
}

/// Majority's accuracy as n grows without bound: 1 when the correct answer
/// is the likeliest alone, 1/t when it ties with t − 1 others, else 0.
pub fn majority_limit(d: &AnswerDistribution) -> f64 {
    let pc = d.p_correct();
    let top = d.p.iter().copied().fold(0.0, f64::max);
    if pc <= 0.0 || pc < top {
        return 0.0;
    }
    1.0 / d.p.iter().filter(|&&x| x == top).count() as f64
}

/// The smallest n ≤ `max_n` for which `reaches` holds, by doubling then
/// bisecting, assuming it keeps holding once it does.
pub fn first_reaching(max_n: usize, mut reaches: impl FnMut(usize) -> bool) -> Option<usize> {
    let mut hi = 1;
    while !reaches(hi) {
        if hi >= max_n {
            return None;
        }
        hi = (hi * 2).min(max_n);
    }
    let mut lo = hi / 2; // does not reach (or 0)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dist(p: &[f64], correct: usize) -> AnswerDistribution {
        AnswerDistribution::new(p.to_vec(), correct, true).unwrap()
    }

    /// Majority by enumerating every sequence of n answers (K + 1 outcomes
    /// with abstention).
    fn brute_majority(d: &AnswerDistribution, n: usize) -> f64 {
        let k = d.p.len();
        let outcomes = k + 1;
        let mut total = 0.0;
        for code in 0..outcomes.pow(n as u32) {
            let (mut counts, mut prob, mut c) = (vec![0usize; k], 1.0, code);
            for _ in 0..n {
                let o = c % outcomes;
                c /= outcomes;
                if o == k {
                    prob *= d.abstain;
                } else {
                    counts[o] += 1;
                    prob *= d.p[o];
                }
            }
            let top = *counts.iter().max().unwrap();
            if top > 0 && counts[d.correct] == top {
                let tied = counts.iter().filter(|&&x| x == top).count();
                total += prob / tied as f64;
            }
        }
        total
    }

    #[test]
    fn two_way_textbook_values() {
        // p = 0.6 against 0.4: n = 1 → 0.6; n = 2 → 0.36 + ½·0.48 = 0.6;
        // n = 3 → 0.6³ + 3·0.6²·0.4 = 0.648.
        let d = dist(&[0.6, 0.4], 0);
        assert!((majority(&d, 1) - 0.6).abs() < 1e-15);
        assert!((majority(&d, 2) - 0.6).abs() < 1e-15);
        assert!((majority(&d, 3) - 0.648).abs() < 1e-15);
        assert_eq!(majority(&d, 0), 0.0);
        assert_eq!(majority(&dist(&[1.0], 0), 5), 1.0);
    }

    /// Two answers at large n: the binomial tail above n/2 (and half the
    /// tie), computed exactly in rational arithmetic by Python (`fractions`
    /// and `math.comb` over every term), then rounded.
    #[test]
    fn two_way_large_n_equals_the_exact_binomial_tail() {
        for (p, n, exact) in [
            (0.52, 4096usize, 0.994_779_458_107_548_4),
            (0.505, 2001, 0.672_704_141_171_417_1),
        ] {
            let got = majority(&dist(&[p, 1.0 - p], 0), n);
            assert!(
                (got - exact).abs() < 1e-14,
                "p {p}, n {n}: {got} vs {exact}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Exact majority equals enumeration of every outcome sequence.
        #[test]
        fn majority_equals_enumeration(
            raw in proptest::collection::vec(0.0f64..1.0, 1..4),
            abstain in prop_oneof![Just(0.0), 0.0f64..0.3],
            n in 1usize..8,
            correct in 0usize..4,
        ) {
            let sum: f64 = raw.iter().sum::<f64>().max(1e-9);
            let p: Vec<f64> = raw.iter().map(|x| x / sum * (1.0 - abstain)).collect();
            let d = dist(&p, correct % p.len());
            let exact = majority(&d, n);
            let brute = brute_majority(&d, n);
            prop_assert!((exact - brute).abs() < 1e-12, "{exact} vs {brute} for {d:?}, n {n}");
        }

        /// With three or more equally likely others (the transform's case),
        /// beside a less likely answer and abstention, still enumeration.
        #[test]
        fn majority_over_equal_others_equals_enumeration(
            top in 0.05f64..0.6,
            tied in 3usize..5,
            lesser in prop_oneof![Just(0.0), 0.0f64..1.0],
            abstain in prop_oneof![Just(0.0), 0.0f64..1.0],
            n in 1usize..6,
        ) {
            // Split 1 − top among the tied, the lesser (below each tied) and abstention.
            let rest = 1.0 - top;
            let x = rest / (tied as f64 + 0.9 * lesser + abstain);
            let mut p = vec![top];
            p.extend(std::iter::repeat_n(x, tied));
            if lesser > 0.0 {
                p.push(0.9 * lesser * x);
            }
            let d = dist(&p, 0);
            prop_assert!(Majority::new(&d).equal.is_some());
            let exact = majority(&d, n);
            let brute = brute_majority(&d, n);
            prop_assert!((exact - brute).abs() < 1e-12, "{exact} vs {brute} for {d:?}, n {n}");
        }

        /// Best-of-n's closed form equals enumeration over the samples'
        /// (correct, accepted) outcomes.
        #[test]
        fn best_of_n_equals_enumeration(
            p in 0.0f64..1.0,
            abstain in 0.0f64..0.5,
            fp in 0.0f64..1.0,
            fn_ in 0.0f64..1.0,
            n in 1usize..7,
        ) {
            let p = p * (1.0 - abstain);
            let d = dist(&[p, 1.0 - abstain - p], 0);
            let v = Verifier { fp, fn_ };
            // Each sample: correct accepted, correct rejected, wrong
            // accepted, wrong rejected, abstained (never accepted).
            let probs = [p * (1.0 - fn_), p * fn_, (1.0 - abstain - p) * fp, (1.0 - abstain - p) * (1.0 - fp), abstain];
            let mut brute = 0.0;
            for code in 0..5usize.pow(n as u32) {
                let (mut c, mut prob, mut tally) = (code, 1.0, [0usize; 5]);
                for _ in 0..n {
                    tally[c % 5] += 1;
                    prob *= probs[c % 5];
                    c /= 5;
                }
                let accepted = tally[0] + tally[2];
                brute += prob * if accepted > 0 {
                    tally[0] as f64 / accepted as f64
                } else {
                    (tally[0] + tally[1]) as f64 / n as f64
                };
            }
            let exact = best_of_n(&d, n, v);
            prop_assert!((exact - brute).abs() < 1e-12, "{exact} vs {brute}");
        }
    }

    /// At n far beyond enumeration, the transform over equally likely
    /// others equals the answer-by-answer programme it stands in for.
    #[test]
    fn equal_others_agree_with_the_programme_at_large_n() {
        let cases: [(f64, usize, f64, f64); 4] = [
            (0.12, 10, 0.08, 0.0),  // p* just above each of ten others
            (0.08, 10, 0.08, 0.0),  // p* level with them: ties all the way
            (0.3, 6, 0.1, 0.05),    // a clear winner, one lesser answer and abstention
            (0.05, 12, 0.06, 0.04), // p* below them, a lesser answer, abstention
        ];
        for (top, tied, x, lesser) in cases {
            let mut p = vec![top];
            p.extend(std::iter::repeat_n(x, tied));
            if lesser > 0.0 {
                p.push(lesser);
            }
            let d = dist(&p, 0);
            let mut fast = Majority::new(&d);
            let mut programme = Majority::new(&d);
            assert!(fast.equal.is_some());
            programme.equal = None;
            for n in [1, 2, 9, 33, 100, 257, 600] {
                let (a, b) = (fast.at(n), programme.at(n));
                assert!((a - b).abs() < 1e-12, "{p:?}, n {n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn n_for_delta_is_the_first_n_reaching_it() {
        let d = dist(&[0.55, 0.45], 0);
        for delta in [0.2, 0.1, 0.05] {
            let n = n_for(Rule::Majority, &d, delta, Verifier::PERFECT, 100_000).unwrap();
            assert!(majority(&d, n) >= 1.0 - delta);
            assert!(majority(&d, n - 1) < 1.0 - delta, "{n}");
        }
        // Perfect best-of-n: 1 − 0.45ⁿ ≥ 0.99 first at n = ⌈ln 0.01 / ln 0.45⌉ = 6.
        assert_eq!(
            n_for(Rule::BestOfN, &d, 0.01, Verifier::PERFECT, 1000),
            Some(6)
        );
        // A wrong answer ahead: majority never gets there.
        let behind = dist(&[0.4, 0.6], 0);
        assert_eq!(
            n_for(Rule::Majority, &behind, 0.1, Verifier::PERFECT, 4096),
            None
        );
    }

    #[test]
    fn invalid_distributions_say_what_is_wrong() {
        let err = |p: &[f64], abstain| AnswerDistribution::new(p.to_vec(), 0, abstain).unwrap_err();
        assert!(err(&[], false).contains("empty"));
        assert!(err(&[0.5, -0.1, 0.6], false).contains("non-negative"));
        assert!(err(&[0.5, 0.4], false).contains("sum to 0.9"));
        assert!(err(&[0.7, 0.4], true).contains("sum to 1.1"));
        assert!(
            AnswerDistribution::new(vec![0.5, 0.5], 2, false)
                .unwrap_err()
                .contains("only 2")
        );
        assert!(AnswerDistribution::new(vec![0.5, 0.4], 0, true).is_ok());
    }
}
