//! Shapley values of a game whose worth is measured by replays: how much
//! each player (an agent, or a turn, of a failed run) contributes to the
//! run succeeding when it is re-sampled or repaired. `blame`'s
//! counterfactual method asks a [`Plan`] which coalitions to replay under
//! which seeds, replays them, and hands the measured worths back to
//! [`Plan::estimate`].
//!
//! - **Exact**: every coalition, under each of R replay seeds; each seed's
//!   values are exact Shapley values of that seed's game (common random
//!   numbers across coalitions), and their mean and standard error over
//!   the seeds are reported. O(n·2ⁿ) worths per seed.
//! - **Permutations**: M random orders, each player credited its marginal
//!   worth when it joins. **Paired** (antithetic): each order is walked
//!   forwards and backwards under one replay seed, so every coalition on
//!   the way is evaluated with its complement. The even part of the game,
//!   e(S) = (v(S) + v(N∖S))/2, then cancels within each pair — it adds
//!   e(P ∪ i) − e(P) going one way and e(P) − e(P ∪ i) the other — and it
//!   is exactly the part with no Shapley value, so the estimate's variance
//!   is the odd part's alone. Unpaired, the same budget buys two
//!   independent orders under their own seeds.

use rand::seq::SliceRandom;
use serde::Serialize;

use crate::seed;

/// A set of players: bit i for player i.
pub type Coalition = u64;

/// Most players a plan takes (one bit each).
pub const MAX_PLAYERS: usize = 64;

/// Most players an exact plan takes (2ⁿ coalitions per seed).
pub const MAX_EXACT: usize = 16;

/// One worth a plan needs: v(coalition) under replay seed `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    pub coalition: Coalition,
    pub replay: u32,
}

/// A player's Shapley value, with its standard error over replays or
/// orders (`None` from a single one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub stderr: Option<f64>,
}

/// Which worths to measure, and how they become values.
#[derive(Debug, Clone)]
pub struct Plan {
    players: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact {
        replays: u32,
    },
    /// Orders and the replay seed each is walked under; paired orders are
    /// walked both ways.
    Orders {
        orders: Vec<(Vec<usize>, u32)>,
        paired: bool,
    },
}

impl Plan {
    /// Every coalition of `players` (at most [`MAX_EXACT`]) under
    /// `replays` seeds.
    pub fn exact(players: usize, replays: u32) -> Plan {
        assert!(
            players <= MAX_EXACT,
            "an exact plan takes at most {MAX_EXACT} players"
        );
        Plan {
            players,
            kind: Kind::Exact {
                replays: replays.max(1),
            },
        }
    }

    /// `samples` random orders (at most [`MAX_PLAYERS`] players), drawn
    /// from `seed`: each walked both ways under one replay seed when
    /// `paired`, else two independent orders under a seed each.
    pub fn permutations(players: usize, samples: u32, paired: bool, seed: u64) -> Plan {
        assert!(
            players <= MAX_PLAYERS,
            "a plan takes at most {MAX_PLAYERS} players"
        );
        let samples = samples.max(1);
        let draws = if paired { samples } else { 2 * samples };
        let orders = (0..draws)
            .map(|j| {
                let mut order: Vec<usize> = (0..players).collect();
                order.shuffle(&mut seed::rng(
                    seed,
                    &["shapley order".into(), u64::from(j).into()],
                ));
                (order, j)
            })
            .collect();
        Plan {
            players,
            kind: Kind::Orders { orders, paired },
        }
    }

    pub fn players(&self) -> usize {
        self.players
    }

    /// The worths needed, each once, in a fixed order.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = std::collections::BTreeSet::new();
        match &self.kind {
            Kind::Exact { replays } => {
                for replay in 0..*replays {
                    for coalition in 0..(1u64 << self.players) {
                        out.insert(Query { coalition, replay });
                    }
                }
            }
            Kind::Orders { orders, paired } => {
                for (order, replay) in orders {
                    for coalition in prefixes(order) {
                        out.insert(Query {
                            coalition,
                            replay: *replay,
                        });
                        if *paired {
                            out.insert(Query {
                                coalition: full(self.players) & !coalition,
                                replay: *replay,
                            });
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Each player's value from the worths of [`Plan::queries`].
    pub fn estimate(&self, worth: impl Fn(Query) -> f64) -> Vec<Estimate> {
        let n = self.players;
        let per_unit: Vec<Vec<f64>> = match &self.kind {
            Kind::Exact { replays } => (0..*replays)
                .map(|replay| exact(n, |coalition| worth(Query { coalition, replay })))
                .collect(),
            Kind::Orders { orders, paired } => {
                let walk = |order: &[usize], replay: u32| {
                    marginals(order, |coalition| worth(Query { coalition, replay }))
                };
                let reversed = |order: &[usize]| order.iter().rev().copied().collect::<Vec<_>>();
                if *paired {
                    orders
                        .iter()
                        .map(|(order, replay)| {
                            let (a, b) = (walk(order, *replay), walk(&reversed(order), *replay));
                            a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect()
                        })
                        .collect()
                } else {
                    orders
                        .chunks(2)
                        .map(|pair| {
                            let runs: Vec<Vec<f64>> = pair
                                .iter()
                                .map(|(order, replay)| walk(order, *replay))
                                .collect();
                            (0..n)
                                .map(|i| runs.iter().map(|r| r[i]).sum::<f64>() / runs.len() as f64)
                                .collect()
                        })
                        .collect()
                }
            }
        };
        (0..n)
            .map(|i| {
                let xs: Vec<f64> = per_unit.iter().map(|u| u[i]).collect();
                mean_and_stderr(&xs)
            })
            .collect()
    }
}

/// All n players.
fn full(players: usize) -> Coalition {
    if players >= 64 {
        u64::MAX
    } else {
        (1u64 << players) - 1
    }
}

/// The coalitions an order passes through: ∅, {π₀}, {π₀, π₁}, …, N.
fn prefixes(order: &[usize]) -> Vec<Coalition> {
    let mut out = vec![0];
    let mut c = 0;
    for &i in order {
        c |= 1 << i;
        out.push(c);
    }
    out
}

/// Each player's marginal worth when it joins in `order`.
fn marginals(order: &[usize], worth: impl Fn(Coalition) -> f64) -> Vec<f64> {
    let mut out = vec![0.0; order.len()];
    let values: Vec<f64> = prefixes(order).into_iter().map(&worth).collect();
    for (k, &i) in order.iter().enumerate() {
        out[i] = values[k + 1] - values[k];
    }
    out
}

/// Exact Shapley values: φᵢ = Σ_{S ∌ i} |S|!(n − |S| − 1)!/n! ·
/// (v(S ∪ i) − v(S)).
pub fn exact(players: usize, worth: impl Fn(Coalition) -> f64) -> Vec<f64> {
    let n = players;
    let values: Vec<f64> = (0..(1u64 << n)).map(&worth).collect();
    // weight[s] = s!(n − s − 1)!/n!, by the ratio of neighbours.
    let mut weight = vec![0.0; n.max(1)];
    if n > 0 {
        weight[0] = 1.0 / n as f64;
        for s in 1..n {
            weight[s] = weight[s - 1] * s as f64 / (n - s) as f64;
        }
    }
    let mut phi = vec![0.0; n];
    for (s, &v) in values.iter().enumerate() {
        let size = (s as u64).count_ones() as usize;
        for (i, p) in phi.iter_mut().enumerate() {
            if s & (1 << i) == 0 {
                *p += weight[size] * (values[s | (1 << i)] - v);
            }
        }
    }
    phi
}

fn mean_and_stderr(xs: &[f64]) -> Estimate {
    let k = xs.len() as f64;
    let value = xs.iter().sum::<f64>() / k;
    let stderr = (xs.len() > 1).then(|| {
        let var = xs.iter().map(|x| (x - value).powi(2)).sum::<f64>() / (k - 1.0);
        (var / k).sqrt()
    });
    Estimate { value, stderr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Shapley values by the definition: the mean marginal worth over all
    /// n! orders.
    fn brute(players: usize, worth: impl Fn(Coalition) -> f64) -> Vec<f64> {
        fn orders(rest: Vec<usize>) -> Vec<Vec<usize>> {
            if rest.is_empty() {
                return vec![Vec::new()];
            }
            let mut out = Vec::new();
            for (k, &x) in rest.iter().enumerate() {
                let mut others = rest.clone();
                others.remove(k);
                for mut o in orders(others) {
                    o.insert(0, x);
                    out.push(o);
                }
            }
            out
        }
        let all = orders((0..players).collect());
        let mut phi = vec![0.0; players];
        for o in &all {
            for (i, m) in marginals(o, &worth).into_iter().enumerate() {
                phi[i] += m / all.len() as f64;
            }
        }
        phi
    }

    #[test]
    fn textbook_games() {
        // Glove game: player 0 holds a left glove, 1 and 2 a right one each.
        let gloves = exact(3, |s| f64::from(s & 1 == 1 && s & 6 != 0));
        for (got, want) in gloves.iter().zip([2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0]) {
            assert!((got - want).abs() < 1e-12, "{gloves:?}");
        }
        // Three-player majority: any two win; a third each.
        let majority = exact(3, |s| f64::from(s.count_ones() >= 2));
        assert!(majority.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn exact_equals_the_mean_over_all_orders() {
        let mut rng = seed::rng(7, &["shapley test".into()]);
        for n in 1..=6 {
            let table: Vec<f64> = (0..(1u64 << n)).map(|_| rng.random::<f64>()).collect();
            let worth = |s: Coalition| table[s as usize];
            let (a, b) = (exact(n, worth), brute(n, worth));
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-12, "n {n}: {a:?} vs {b:?}");
            }
        }
    }

    /// A game of 6 players with an additive odd part and a large even part
    /// (the same for a coalition and its complement), its worth measured
    /// with noise that depends on the replay seed.
    fn noisy_game(q: Query) -> f64 {
        let s = q.coalition;
        let odd: f64 = (0..6)
            .filter(|i| s & (1 << i) != 0)
            .map(|i| 0.1 * (i + 1) as f64)
            .sum();
        let k = s.count_ones() as f64;
        let even = 3.0 * k * (6.0 - k) + 2.0 * f64::from((s ^ (s >> 3)) & 1 == 1);
        let mut rng = seed::rng(11, &["noise".into(), u64::from(q.replay).into(), s.into()]);
        odd + even + 0.05 * (rng.random::<f64>() - 0.5)
    }

    #[test]
    fn paired_orders_are_unbiased_and_cancel_the_even_part() {
        // Each order's expected credit is the exact value of its replay's
        // game; a plan of 8 samples uses replays 0..8 (paired) or 0..16.
        let truth = |replays: u32, i: usize| {
            (0..replays)
                .map(|replay| {
                    exact(6, |s| {
                        noisy_game(Query {
                            coalition: s,
                            replay,
                        })
                    })[i]
                })
                .sum::<f64>()
                / f64::from(replays)
        };
        let estimates = |paired: bool| -> Vec<Vec<f64>> {
            (0..300)
                .map(|seed| {
                    Plan::permutations(6, 8, paired, seed)
                        .estimate(noisy_game)
                        .iter()
                        .map(|e| e.value)
                        .collect()
                })
                .collect()
        };
        let (paired, unpaired) = (estimates(true), estimates(false));
        let moments = |runs: &[Vec<f64>], i: usize| {
            let xs: Vec<f64> = runs.iter().map(|r| r[i]).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
            (m, v)
        };
        for i in 0..6 {
            let (m, v) = moments(&paired, i);
            let se = (v / paired.len() as f64).sqrt();
            assert!(
                (m - truth(8, i)).abs() < 4.0 * se,
                "player {i}: {m} vs {}",
                truth(8, i)
            );
            let (m_unpaired, v_unpaired) = moments(&unpaired, i);
            let se = (v_unpaired / unpaired.len() as f64).sqrt();
            assert!((m_unpaired - truth(16, i)).abs() < 4.0 * se);
            // The even part has no value: about 0.1·(i + 1) either way.
            assert!((truth(8, i) - 0.1 * (i + 1) as f64).abs() < 0.05);
            assert!(
                v < 0.01 * v_unpaired,
                "player {i}: variance {v} paired vs {v_unpaired}"
            );
        }
    }

    #[test]
    fn orders_credit_exactly_the_grand_coalitions_worth() {
        let plan = Plan::permutations(5, 3, true, 1);
        let worth = |q: Query| {
            (q.coalition.count_ones() as f64).powi(2) + f64::from(q.coalition as u32 & 3)
        };
        let total: f64 = plan.estimate(worth).iter().map(|e| e.value).sum();
        assert!(
            (total
                - (worth(Query {
                    coalition: 31,
                    replay: 0
                }) - 0.0))
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn exact_plans_report_the_spread_over_replays() {
        let plan = Plan::exact(3, 4);
        assert_eq!(plan.queries().len(), 4 * 8);
        // Player 0's worth is the replay number: values 0..3, mean 1.5.
        let est = plan.estimate(|q| f64::from(q.coalition & 1 == 1) * f64::from(q.replay));
        assert!((est[0].value - 1.5).abs() < 1e-12);
        let se = (5.0f64 / 3.0 / 4.0).sqrt();
        assert!((est[0].stderr.unwrap() - se).abs() < 1e-12);
        assert_eq!(est[1].value, 0.0);
    }
}
