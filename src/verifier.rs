//! Simulated verifiers: scores for candidate samples, drawn from seeded
//! generators so that a verifier's noise is reproducible per sample.

use rand::RngExt;

use crate::scenario::{Verifier, VerifierKind};
use crate::seed::{self, Part};

/// A verifier's judgement of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub value: f64,
    /// For accept/reject verifiers.
    pub accepted: Option<bool>,
}

impl Verifier {
    /// Score sample `index` of `task_id` for `agent`, given whether it is
    /// correct (`None` for an abstention).
    pub fn score(
        &self,
        seed: u64,
        agent: &str,
        task_id: &str,
        index: usize,
        correct: Option<bool>,
    ) -> Score {
        let mut rng = seed::rng(
            seed,
            &[
                Part::Str("verify"),
                Part::Str(&self.name),
                Part::Str(agent),
                Part::Str(task_id),
                Part::Int(index as u64),
            ],
        );
        match self.kind {
            VerifierKind::Oracle {
                false_positive_rate,
                false_negative_rate,
            } => {
                let accepted = match correct {
                    None => false,
                    Some(true) => !rng.random_bool(false_negative_rate),
                    Some(false) => rng.random_bool(false_positive_rate),
                };
                Score {
                    value: if accepted { 1.0 } else { 0.0 },
                    accepted: Some(accepted),
                }
            }
            VerifierKind::Noisy {
                correct_mean,
                wrong_mean,
                sd,
            } => {
                let mean = if correct == Some(true) {
                    correct_mean
                } else {
                    wrong_mean
                };
                Score {
                    value: mean + sd * seed::standard_normal(&mut rng),
                    accepted: None,
                }
            }
        }
    }
}
