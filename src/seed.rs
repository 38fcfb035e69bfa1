//! Derived random generators. Every random choice in a run draws from a
//! ChaCha8 generator seeded by a blake3 hash of (scenario seed, what the draw
//! is for, and whose it is) — e.g. sample k of task t for agent a. No draw
//! depends on another's order, so results are identical at any concurrency.

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

/// One part of a seed key.
pub enum Part<'a> {
    Str(&'a str),
    Int(u64),
}

impl<'a> From<&'a str> for Part<'a> {
    fn from(s: &'a str) -> Self {
        Part::Str(s)
    }
}

impl From<u64> for Part<'_> {
    fn from(n: u64) -> Self {
        Part::Int(n)
    }
}

impl From<usize> for Part<'_> {
    fn from(n: usize) -> Self {
        Part::Int(n as u64)
    }
}

/// A generator for the draw named by `parts`, under scenario seed `seed`.
pub fn rng(seed: u64, parts: &[Part<'_>]) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    for p in parts {
        // Length-prefix strings so ("ab","c") and ("a","bc") differ.
        match p {
            Part::Str(s) => {
                h.update(&[0]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Part::Int(n) => {
                h.update(&[1]);
                h.update(&n.to_le_bytes());
            }
        }
    }
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}

/// A standard normal draw (Box–Muller), for latencies and noisy scores.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    use rand::RngExt;
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn same_key_same_stream_different_key_different_stream() {
        let a: u64 = rng(7, &["s".into(), 3u64.into()]).random();
        let b: u64 = rng(7, &["s".into(), 3u64.into()]).random();
        let c: u64 = rng(7, &["s".into(), 4u64.into()]).random();
        let d: u64 = rng(8, &["s".into(), 3u64.into()]).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
