//! The statistics: numbers computed from pools of samples, with no I/O.
//!
//! Owns the exact estimators over size-k subsets of a pool, percentile
//! bootstrap intervals, a strategy's expected accuracy on one task's pool,
//! a run's summary rows, agreement between raters (κ, α, confusion
//! against a reference, corrected prevalence, Kendall's W), McNemar's test
//! of two strategies on the same tasks, the faithfulness of
//! self-explanations (normalized simulatability gain) and the measures
//! over a reasoning, self-correction as online learning over experts
//! (policies, regret and its bounds), and the theory: exact accuracy
//! curves for a known answer distribution and their Monte Carlo check.
//!
//! May use: `scenario`, `seed`.

pub mod agreement;
pub mod agreement_report;
pub mod bootstrap;
mod equal_others;
pub mod estimator;
pub mod faithfulness;
pub mod monte_carlo;
pub mod online;
pub mod paired;
pub mod reasoning;
pub mod separation;
pub mod shapley;
pub mod strategy;
pub mod summary;
pub mod theory;

/// Runs a Python script with `input` on its stdin and reads its stdout as
/// JSON: tests check statistics against an independent computation.
#[cfg(test)]
fn run_python<T: serde::de::DeserializeOwned>(script: &str, input: &str) -> T {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("python3 reads its input");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python3 prints JSON")
}
