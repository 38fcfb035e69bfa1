//! Self-correction as online learning over experts (Huang et al., arXiv
//! 2506.05295): a loop of up to R rounds on one task, where each round a
//! policy picks one of K experts (agents or system prompts) and the
//! verifier's verdict is the reward in [0, 1].
//!
//! Owns the policies and a task's learner state, per-round regret against
//! known success probabilities, the theory's regret bounds, and a simulator
//! of episodes with Bernoulli rewards. The engine's self-correction loop
//! drives one [`Learner`] per task; the analysis uses [`regret`], [`bound`]
//! and [`simulate`]. Pure: no I/O, no engine types.

use rand::{Rng, RngExt};
use rand_distr::{Beta, Distribution};
use serde::Serialize;

/// How the next expert is chosen from the verifier's feedback so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Round t plays expert t mod K.
    RoundRobin,
    /// Exp3 with loss-based importance-weighted estimates.
    Hedge,
    /// UCB1.
    Ucb,
    /// Thompson sampling with Beta posteriors.
    Thompson,
    /// Always the given expert.
    Fixed(usize),
}

impl From<crate::scenario::Policy> for Policy {
    /// A scenario's policy over its strategy's experts (expert 0 is the
    /// strategy's agent, which `fixed` keeps).
    fn from(p: crate::scenario::Policy) -> Policy {
        use crate::scenario::Policy as Scenario;
        match p {
            Scenario::RoundRobin => Policy::RoundRobin,
            Scenario::Hedge => Policy::Hedge,
            Scenario::Ucb => Policy::Ucb,
            Scenario::Thompson => Policy::Thompson,
            Scenario::Fixed => Policy::Fixed(0),
        }
    }
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::Hedge => "hedge",
            Policy::Ucb => "ucb",
            Policy::Thompson => "thompson",
            Policy::Fixed(_) => "fixed",
        }
    }
}

/// One task's learner: state after the rounds so far. State changes only
/// with feedback, so choosing again before an update gives the same
/// deterministic choice (and the same distribution for random ones).
#[derive(Debug, Clone)]
pub struct Learner {
    policy: Policy,
    /// Hedge's learning rate.
    eta: f64,
    /// Rounds with feedback.
    rounds: usize,
    pulls: Vec<usize>,
    /// Σ r per expert.
    wins: Vec<f64>,
    /// Σ (1 − r) per expert, kept apart from `wins` so that rounding never
    /// makes a Beta parameter fall below 1.
    fails: Vec<f64>,
    /// Hedge's importance-weighted cumulative loss estimates L̂.
    loss_estimate: Vec<f64>,
}

impl Learner {
    /// A learner over `experts` experts for `horizon` rounds (R, which tunes
    /// Hedge's rate η = √(2 ln K / (R K))). The engine validates K ≥ 1 and a
    /// fixed expert below K; otherwise K = 0 is treated as one expert,
    /// `Fixed(e)` with e ≥ K as the last expert, and horizon 0 as 1.
    pub fn new(policy: Policy, experts: usize, horizon: usize) -> Learner {
        debug_assert!(experts >= 1, "a learner needs an expert");
        let k = experts.max(1);
        let policy = match policy {
            Policy::Fixed(e) => {
                debug_assert!(e < k, "fixed expert {e} of {k}");
                Policy::Fixed(e.min(k - 1))
            }
            p => p,
        };
        let kf = k as f64;
        Learner {
            policy,
            eta: (2.0 * kf.ln() / (horizon.max(1) as f64 * kf)).sqrt(),
            rounds: 0,
            pulls: vec![0; k],
            wins: vec![0.0; k],
            fails: vec![0.0; k],
            loss_estimate: vec![0.0; k],
        }
    }

    /// The expert for the next round. All randomness comes from `rng` (the
    /// engine passes a generator seeded per (task, round) so results do not
    /// depend on concurrency).
    pub fn choose(&self, rng: &mut impl Rng) -> usize {
        let k = self.pulls.len();
        match self.policy {
            Policy::RoundRobin => self.rounds % k,
            Policy::Fixed(e) => e,
            Policy::Hedge => {
                let p = self.probabilities();
                let u: f64 = rng.random();
                let mut acc = 0.0;
                for (i, pi) in p.iter().enumerate() {
                    acc += pi;
                    if u < acc {
                        return i;
                    }
                }
                // Rounding left the total just below u.
                p.iter().rposition(|&pi| pi > 0.0).unwrap_or(0)
            }
            Policy::Ucb => {
                if let Some(i) = self.pulls.iter().position(|&n| n == 0) {
                    return i;
                }
                let ln_t = (self.rounds as f64).ln();
                argmax((0..k).map(|i| {
                    let n = self.pulls[i] as f64;
                    self.wins[i] / n + (2.0 * ln_t / n).sqrt()
                }))
            }
            Policy::Thompson => {
                let mut draws = Vec::with_capacity(k);
                for i in 0..k {
                    let posterior = Beta::new(1.0 + self.wins[i], 1.0 + self.fails[i])
                        .expect("Beta parameters are at least 1");
                    draws.push(posterior.sample(rng));
                }
                argmax(draws)
            }
        }
    }

    /// Feedback for the expert just chosen (`expert` < K): the reward is
    /// clamped into [0, 1], NaN counting as 0 (rejected).
    pub fn update(&mut self, expert: usize, reward: f64) {
        let r = if reward.is_nan() {
            0.0
        } else {
            reward.clamp(0.0, 1.0)
        };
        if self.policy == Policy::Hedge && r < 1.0 {
            // p_t is a function of L̂ alone, which only feedback changes, so
            // it is the distribution `choose` drew this expert from. The
            // floor keeps an expert whose weight underflowed finite.
            let p = self.probabilities()[expert].max(f64::MIN_POSITIVE);
            self.loss_estimate[expert] += (1.0 - r) / p;
        }
        self.rounds += 1;
        self.pulls[expert] += 1;
        self.wins[expert] += r;
        self.fails[expert] += 1.0 - r;
    }

    /// The expert the learner would bet on now, ties to the lowest index:
    /// Hedge's highest weight, Thompson's highest posterior mean, the
    /// highest empirical mean among the experts played for the others, and
    /// `Fixed(e)`'s e. Before any feedback that is expert 0 (or e).
    pub fn recommend(&self) -> usize {
        let k = self.pulls.len();
        match self.policy {
            Policy::Fixed(e) => e,
            Policy::Hedge => argmax(self.loss_estimate.iter().map(|l| -l)),
            Policy::Thompson => {
                argmax((0..k).map(|i| (1.0 + self.wins[i]) / (2.0 + self.pulls[i] as f64)))
            }
            Policy::RoundRobin | Policy::Ucb => argmax((0..k).map(|i| match self.pulls[i] {
                0 => f64::NEG_INFINITY,
                n => self.wins[i] / n as f64,
            })),
        }
    }

    /// Hedge's p_t(i) ∝ exp(−η L̂_i), with the smallest L̂ subtracted so the
    /// largest weight is 1 and none overflows.
    fn probabilities(&self) -> Vec<f64> {
        let min = self
            .loss_estimate
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let w: Vec<f64> = self
            .loss_estimate
            .iter()
            .map(|l| (-self.eta * (l - min)).exp())
            .collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }
}

/// The index of the largest value, ties to the lowest; 0 when empty.
fn argmax(values: impl IntoIterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.into_iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Per-round regret of one episode against known expert success
/// probabilities: `cumulative[t] = Σ_{s ≤ t} (μ* − μ_{played[s]})` (the
/// pseudo-regret), `simple[t] = μ* − μ_{recommended[t]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regret {
    pub cumulative: Vec<f64>,
    pub simple: Vec<f64>,
}

/// The regret curves, of length `rounds`, of an episode against `mu` (one
/// success probability per expert). `played[t]` is the expert played in
/// round t and `recommended[t]` the learner's recommendation after round
/// t's feedback. An episode that stopped early (the verifier accepted)
/// adds no cumulative regret after its last round, and its simple regret
/// stays at its last value; with no recommendation at all it is expert 0's.
pub fn regret(mu: &[f64], played: &[usize], recommended: &[usize], rounds: usize) -> Regret {
    let best = mu.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let gap = |e: usize| best - mu[e];
    let mut total = 0.0;
    let mut last = if mu.is_empty() { 0.0 } else { gap(0) };
    let mut out = Regret {
        cumulative: Vec::with_capacity(rounds),
        simple: Vec::with_capacity(rounds),
    };
    for t in 0..rounds {
        if let Some(&e) = played.get(t) {
            total += gap(e);
        }
        if let Some(&e) = recommended.get(t) {
            last = gap(e);
        }
        out.cumulative.push(total);
        out.simple.push(last);
    }
    out
}

/// The theory's upper bound on the expected cumulative (pseudo-)regret
/// after `t` rounds of a learner built for `horizon` rounds, with gaps
/// Δ_i = μ* − μ_i, where one is stated:
///
/// - Hedge: the proof of Bubeck & Cesa-Bianchi (2012), Thm 3.1, gives
///   ln K / η + η K t / 2 for any t with a fixed η; with η = √(2 ln K /
///   (R K)) that is √(2 R K ln K) at t = R. For t < R it is returned as is,
///   not √(2 t K ln K), which holds only for η tuned to t.
/// - UCB1 (Auer, Cesa-Bianchi & Fischer 2002, Thm 1, any t):
///   Σ_{Δ_i > 0} 8 ln t / Δ_i + (1 + π²/3) Σ_i Δ_i.
/// - RoundRobin: the exact expectation Σ_{s < t} Δ_{s mod K}.
/// - `Fixed(e)`: the exact t Δ_e (e ≥ K as the last expert, as in
///   [`Learner::new`]).
/// - Thompson: `None`; its known bounds (Agrawal & Goyal 2012; Kaufmann et
///   al. 2012) are asymptotic or have unspecified constants.
///
/// Stopping at the first success only shortens an episode, and regret per
/// round is non-negative, so these bound stopped episodes too (the exact
/// values become upper bounds). With t = 0 or no experts, regret is 0.
pub fn bound(policy: Policy, mu: &[f64], t: usize, horizon: usize) -> Option<f64> {
    let k = mu.len();
    let best = mu.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let gaps: Vec<f64> = mu.iter().map(|m| best - m).collect();
    let (tf, kf) = (t as f64, k as f64);
    match policy {
        Policy::Thompson => None,
        _ if t == 0 || k == 0 => Some(0.0),
        Policy::Hedge if k == 1 => Some(0.0),
        Policy::Hedge => {
            let eta = (2.0 * kf.ln() / (horizon.max(1) as f64 * kf)).sqrt();
            Some(kf.ln() / eta + eta * kf * tf / 2.0)
        }
        Policy::Ucb => {
            let harmonic: f64 = gaps
                .iter()
                .filter(|&&d| d > 0.0)
                .map(|d| 8.0 * tf.ln() / d)
                .sum();
            Some(harmonic + (1.0 + std::f64::consts::PI.powi(2) / 3.0) * gaps.iter().sum::<f64>())
        }
        Policy::RoundRobin => {
            Some((t / k) as f64 * gaps.iter().sum::<f64>() + gaps[..t % k].iter().sum::<f64>())
        }
        Policy::Fixed(e) => Some(tf * gaps[e.min(k - 1)]),
    }
}

/// One simulated episode: per round, the expert played, its reward, and
/// the learner's recommendation after the feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub played: Vec<usize>,
    pub rewards: Vec<f64>,
    pub recommended: Vec<usize>,
}

/// One episode of `rounds` rounds with `Bernoulli(mu[e])` rewards, stopping
/// after the first reward 1 when `stop_on_success`. With no experts the
/// episode is empty.
pub fn simulate(
    policy: Policy,
    mu: &[f64],
    rounds: usize,
    stop_on_success: bool,
    rng: &mut impl Rng,
) -> Episode {
    let mut ep = Episode {
        played: Vec::with_capacity(rounds),
        rewards: Vec::with_capacity(rounds),
        recommended: Vec::with_capacity(rounds),
    };
    if mu.is_empty() {
        return ep;
    }
    let mut learner = Learner::new(policy, mu.len(), rounds);
    for _ in 0..rounds {
        let e = learner.choose(rng);
        // A comparison rather than `random_bool`, which panics outside [0, 1].
        let r = if rng.random::<f64>() < mu[e] {
            1.0
        } else {
            0.0
        };
        learner.update(e, r);
        ep.played.push(e);
        ep.rewards.push(r);
        ep.recommended.push(learner.recommend());
        if stop_on_success && r == 1.0 {
            break;
        }
    }
    ep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{self, Part};

    const MU: [f64; 3] = [0.2, 0.5, 0.8];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    /// Mean and standard error.
    fn mean_se(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    }

    fn episodes(policy: Policy, mu: &[f64], rounds: usize, stop: bool, n: u64) -> Vec<Episode> {
        (0..n)
            .map(|i| {
                let mut rng = seed::rng(
                    11,
                    &[Part::Str("online"), Part::Str(policy.name()), Part::Int(i)],
                );
                simulate(policy, mu, rounds, stop, &mut rng)
            })
            .collect()
    }

    /// Frequency of each choice over `n` draws from one learner state.
    fn frequencies(learner: &Learner, n: usize) -> Vec<f64> {
        let mut rng = seed::rng(5, &[Part::Str("frequencies")]);
        let mut counts = vec![0usize; learner.pulls.len()];
        for _ in 0..n {
            counts[learner.choose(&mut rng)] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn round_robin_and_fixed_choose_as_specified() {
        let mut rng = seed::rng(1, &[Part::Str("rr")]);
        let mut rr = Learner::new(Policy::RoundRobin, 3, 7);
        let mut fixed = Learner::new(Policy::Fixed(2), 3, 7);
        let mut rr_played = vec![];
        let mut fixed_played = vec![];
        for t in 0..7 {
            let (a, b) = (rr.choose(&mut rng), fixed.choose(&mut rng));
            rr.update(a, if t == 1 { 1.0 } else { 0.0 });
            fixed.update(b, 0.0);
            rr_played.push(a);
            fixed_played.push(b);
        }
        assert_eq!(rr_played, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(fixed_played, [2; 7]);
        // Expert 1 is the only one rewarded; Fixed ignores feedback.
        assert_eq!(rr.recommend(), 1);
        assert_eq!(fixed.recommend(), 2);
        assert_eq!(Learner::new(Policy::Ucb, 3, 7).recommend(), 0);
    }

    #[test]
    fn ucb_plays_each_expert_once_then_the_highest_index() {
        let mut rng = seed::rng(1, &[Part::Str("ucb")]);
        let mut l = Learner::new(Policy::Ucb, 4, 10);
        let mut played = vec![];
        for _ in 0..4 {
            let e = l.choose(&mut rng);
            // Expert 0 wins at once, which must not stop the first pass.
            l.update(e, if e == 0 { 1.0 } else { 0.0 });
            played.push(e);
        }
        assert_eq!(played, [0, 1, 2, 3]);
        // Means [1, 0, 0, 0], n = 1 each, t = 4.
        assert_eq!(l.choose(&mut rng), 0);

        // n = (9, 1), means (0.9, 0.5), t = 10: indices
        // 0.9 + √(2 ln 10 / 9) ≈ 1.615 < 0.5 + √(2 ln 10) ≈ 2.646.
        let mut l = Learner::new(Policy::Ucb, 2, 10);
        for _ in 0..9 {
            l.update(0, 0.9);
        }
        l.update(1, 0.5);
        assert_eq!(l.choose(&mut rng), 1);
        assert_eq!(l.recommend(), 0);
        // n = (60, 20), means (0.9, 0.5), t = 80: indices
        // 0.9 + √(2 ln 80 / 60) ≈ 1.283 > 0.5 + √(2 ln 80 / 20) ≈ 1.162.
        let mut l = Learner::new(Policy::Ucb, 2, 80);
        for _ in 0..60 {
            l.update(0, 0.9);
        }
        for _ in 0..20 {
            l.update(1, 0.5);
        }
        assert_eq!(l.choose(&mut rng), 0);
    }

    #[test]
    fn hedge_probabilities_are_the_softmax_of_the_loss_estimates() {
        let mut l = Learner::new(Policy::Hedge, 3, 10);
        let eta = (2.0 * 3f64.ln() / 30.0).sqrt();
        assert!(l.probabilities().iter().all(|&p| close(p, 1.0 / 3.0)));

        // Uniform p = 1/3, loss 1: L̂_0 = 3.
        l.update(0, 0.0);
        // p_1 = 1 / (e^{−3η} + 2), loss 1/2: L̂_1 = (e^{−3η} + 2) / 2.
        l.update(1, 0.5);
        // No loss: nothing changes.
        l.update(2, 1.0);
        let l0 = 3.0;
        let l1 = ((-3.0 * eta).exp() + 2.0) / 2.0;
        let z = (-eta * l0).exp() + (-eta * l1).exp() + 1.0;
        let want = [(-eta * l0).exp() / z, (-eta * l1).exp() / z, 1.0 / z];
        let got = l.probabilities();
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w), "{got:?} vs {want:?}");
        }
        // L̂ ≈ (3, 1.22, 0): weight is highest for expert 2.
        assert_eq!(l.recommend(), 2);

        // p_2 = 1/z, loss 3/4: L̂_2 = 0.75 z ≈ 1.62 > L̂_1.
        l.update(2, 0.25);
        let l2 = 0.75 * z;
        let z = (-eta * l0).exp() + (-eta * l1).exp() + (-eta * l2).exp();
        let want = [
            (-eta * l0).exp() / z,
            (-eta * l1).exp() / z,
            (-eta * l2).exp() / z,
        ];
        let got = l.probabilities();
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w), "{got:?} vs {want:?}");
        }
        assert_eq!(l.recommend(), 1);

        // `choose` draws from these probabilities (4 standard errors).
        let n = 40_000;
        for (f, w) in frequencies(&l, n).iter().zip(want) {
            let se = (w * (1.0 - w) / n as f64).sqrt();
            assert!((f - w).abs() <= 4.0 * se, "{f} vs {w}");
        }
    }

    #[test]
    fn hedge_stays_finite_when_weights_underflow() {
        // Alternating losses: the expert behind gets ever larger estimates
        // (1/p with p ≈ e^{−η gap}), until its weight underflows.
        let mut l = Learner::new(Policy::Hedge, 2, 1);
        for t in 0..200 {
            l.update(t % 2, 0.0);
        }
        let p = l.probabilities();
        assert!(
            p.iter().all(|x| x.is_finite()) && close(p.iter().sum(), 1.0),
            "{p:?}"
        );

        // Losses to the leader only (p ≥ 1/2, so estimates grow by at most
        // 2): both L̂ pass 1000 and, with η ≈ 0.83, exp(−η L̂) alone is 0.
        let mut l = Learner::new(Policy::Hedge, 2, 1);
        for _ in 0..4000 {
            l.update(l.recommend(), 0.0);
        }
        assert!(
            l.loss_estimate.iter().all(|&x| x > 1000.0),
            "{:?}",
            l.loss_estimate
        );
        let p = l.probabilities();
        assert!(
            p.iter().all(|x| x.is_finite()) && close(p.iter().sum(), 1.0),
            "{p:?}"
        );
        assert!(p.iter().all(|&x| x > 0.1), "{p:?}");
    }

    #[test]
    fn thompson_draws_from_the_beta_posteriors() {
        let n = 40_000;
        // Beta(2, 1) against Beta(1, 1) = U(0, 1): P(θ_0 > θ_1) = E[θ_0] =
        // 2/3. The reward 7 is clamped to 1.
        let mut l = Learner::new(Policy::Thompson, 2, 10);
        l.update(0, 7.0);
        // Fractional: Beta(1.8, 1.2) against U(0, 1): P = E[θ_0] = 0.6.
        let mut m = Learner::new(Policy::Thompson, 2, 10);
        m.update(0, 0.8);
        for (learner, w) in [(&l, 2.0 / 3.0), (&m, 0.6)] {
            let f = frequencies(learner, n)[0];
            let se = (w * (1.0 - w) / n as f64).sqrt();
            assert!((f - w).abs() <= 4.0 * se, "{f} vs {w}");
        }
        // Posterior means (2/3, 1/2).
        assert_eq!(l.recommend(), 0);
    }

    #[test]
    fn regret_pads_after_an_early_stop() {
        // Gaps (0.6, 0.3, 0).
        let r = regret(&MU, &[0, 2], &[0, 2], 5);
        for (g, w) in r.cumulative.iter().zip([0.6; 5]) {
            assert!(close(*g, w), "{:?}", r.cumulative);
        }
        for (g, w) in r.simple.iter().zip([0.6, 0.0, 0.0, 0.0, 0.0]) {
            assert!(close(*g, w), "{:?}", r.simple);
        }
        let r = regret(&MU, &[1, 0, 1], &[1, 1, 1], 4);
        for (g, w) in r.cumulative.iter().zip([0.3, 0.9, 1.2, 1.2]) {
            assert!(close(*g, w), "{:?}", r.cumulative);
        }
        assert!(r.simple.iter().all(|&s| close(s, 0.3)));
        assert_eq!(regret(&MU, &[], &[], 0).cumulative.len(), 0);
    }

    #[test]
    fn bounds_match_hand_computations() {
        let ln = f64::ln;
        let pi2 = std::f64::consts::PI.powi(2);
        assert!(close(
            bound(Policy::Hedge, &MU, 200, 200).unwrap(),
            (2.0 * 200.0 * 3.0 * ln(3.0)).sqrt()
        ));
        // η tuned to R = 200, at t = 50: ln 3 / η + 75 η > √(300 ln 3).
        let eta = (2.0 * ln(3.0) / 600.0).sqrt();
        let at_50 = bound(Policy::Hedge, &MU, 50, 200).unwrap();
        assert!(close(at_50, ln(3.0) / eta + 75.0 * eta));
        assert!(at_50 > (300.0 * ln(3.0)).sqrt());
        assert!(close(
            bound(Policy::Ucb, &MU, 100, 100).unwrap(),
            8.0 * ln(100.0) * (1.0 / 0.6 + 1.0 / 0.3) + (1.0 + pi2 / 3.0) * 0.9
        ));
        // 0.6 + 0.3 + 0 + 0.6 + 0.3.
        assert!(close(bound(Policy::RoundRobin, &MU, 5, 9).unwrap(), 1.8));
        assert!(close(bound(Policy::Fixed(1), &MU, 7, 9).unwrap(), 2.1));
        assert_eq!(bound(Policy::Thompson, &MU, 7, 9), None);
        assert_eq!(bound(Policy::Ucb, &[], 7, 9), Some(0.0));
        assert_eq!(bound(Policy::Hedge, &[0.5], 7, 9), Some(0.0));
    }

    #[test]
    fn learners_have_sublinear_regret_below_their_bounds() {
        let (rounds, n) = (200, 2000);
        let quarter = rounds / 4;
        for policy in [Policy::Ucb, Policy::Hedge, Policy::Thompson] {
            let mut mean = vec![0.0; rounds];
            for ep in episodes(policy, &MU, rounds, false, n) {
                assert_eq!(ep.played.len(), rounds);
                let r = regret(&MU, &ep.played, &ep.recommended, rounds);
                for (m, c) in mean.iter_mut().zip(r.cumulative) {
                    *m += c / n as f64;
                }
            }
            let name = policy.name();
            assert!(mean.windows(2).all(|w| w[1] >= w[0]), "{name}");
            let (at_r, at_q) = (mean[rounds - 1], mean[quarter - 1]);
            assert!(
                at_r / rounds as f64 <= 0.8 * at_q / quarter as f64,
                "{name}: {at_r} at {rounds}, {at_q} at {quarter}"
            );
            if let Some(b) = bound(policy, &MU, rounds, rounds) {
                assert!(at_r < b, "{name}: {at_r} vs bound {b}");
            }
        }
    }

    /// Realized regret t μ* − Σ rewards has the exact expectation: 0.6 t for
    /// expert 0 alone, Σ_{s<t} Δ_{s mod 3} for round robin.
    #[test]
    fn round_robin_and_fixed_realize_their_exact_regret() {
        let (rounds, n) = (200, 2000);
        let gaps = [0.6, 0.3, 0.0];
        for policy in [Policy::Fixed(0), Policy::RoundRobin] {
            let eps = episodes(policy, &MU, rounds, false, n);
            for t in [rounds / 4, rounds] {
                let exact = match policy {
                    Policy::Fixed(_) => 0.6 * t as f64,
                    _ => (0..t).map(|s| gaps[s % 3]).sum(),
                };
                assert!(close(bound(policy, &MU, t, rounds).unwrap(), exact));
                let realized: Vec<f64> = eps
                    .iter()
                    .map(|ep| 0.8 * t as f64 - ep.rewards[..t].iter().sum::<f64>())
                    .collect();
                let (m, se) = mean_se(&realized);
                assert!(
                    (m - exact).abs() <= 4.0 * se,
                    "{} t {t}: {m} ± {se} vs {exact}",
                    policy.name()
                );
                // The pseudo-regret is exact on every episode.
                let pseudo = regret(&MU, &eps[0].played, &eps[0].recommended, t);
                assert!(close(pseudo.cumulative[t - 1], exact));
            }
        }
    }

    /// With stopping at the first success and the best expert depending on
    /// the task's type, the learners come within 0.1 of the best expert
    /// used alone on both types; a fixed expert does not.
    #[test]
    fn learners_find_the_best_expert_per_task_type() {
        let (rounds, n) = (8, 2000);
        let type_a = [0.7, 0.05, 0.05];
        let type_b = [0.05, 0.05, 0.7];
        let best_alone = 1.0 - 0.3f64.powi(8);
        let success = |policy: Policy, mu: &[f64]| -> Vec<f64> {
            episodes(policy, mu, rounds, true, n)
                .iter()
                .map(|ep| {
                    let wins = ep.rewards.iter().filter(|&&r| r == 1.0).count();
                    // Stopped at the first success, or ran all rounds.
                    assert!(wins <= 1 && (wins == 1 || ep.played.len() == rounds));
                    assert_eq!(wins == 1, ep.rewards.last() == Some(&1.0));
                    wins as f64
                })
                .collect()
        };
        for mu in [type_a, type_b] {
            for policy in [Policy::Hedge, Policy::Ucb, Policy::Thompson] {
                let (rate, _) = mean_se(&success(policy, &mu));
                assert!(
                    rate >= best_alone - 0.1,
                    "{} on {mu:?}: {rate} vs {best_alone}",
                    policy.name()
                );
            }
        }
        for (mu, exact) in [(type_a, best_alone), (type_b, 1.0 - 0.95f64.powi(8))] {
            // The binomial standard error at the exact rate: the sample's is
            // 0 when all n succeed, as they mostly do at 1 − 0.3⁸.
            let (rate, _) = mean_se(&success(Policy::Fixed(0), &mu));
            let se = (exact * (1.0 - exact) / n as f64).sqrt();
            assert!((rate - exact).abs() <= 4.0 * se, "{rate} vs {exact}");
        }
        assert!(1.0 - 0.95f64.powi(8) < best_alone - 0.5);
    }

    #[test]
    fn simulate_with_no_experts_is_empty() {
        let mut rng = seed::rng(1, &[Part::Str("empty")]);
        let ep = simulate(Policy::Hedge, &[], 5, false, &mut rng);
        assert!(ep.played.is_empty() && ep.rewards.is_empty() && ep.recommended.is_empty());
    }
}
