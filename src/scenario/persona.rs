//! A simulated agent's persona (`agents.NAME.simulate`): its role (what
//! kind of message it writes), its probabilities (agreeing, approving) and
//! the failures it acts out on purpose, with their rates.
//!
//! Data only: `model::actor` writes a persona's message for a graph scene.

use crate::scenario::failure::FailureMode;

/// What kind of message an agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Works the task out: reasoning, then its drawn answer.
    Solver,
    /// Argues for its drawn answer and answers the other side.
    Debater,
    /// Lays out a plan; states no answer.
    Planner,
    /// Checks the last answer from another agent: approves it or asks for
    /// a revision, repeating the answer it reviewed.
    Reviewer,
    /// Sides with the most common answer among the messages it sees.
    Judge,
}

impl Role {
    /// Reviewers and judges check others' work.
    pub fn verifies(self) -> bool {
        matches!(self, Role::Reviewer | Role::Judge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub role: Role,
    /// Chance of adopting the latest answer of another agent instead of
    /// its own (solvers and debaters).
    pub agree: f64,
    /// A reviewer's chance of approving a correct answer.
    pub approve_correct: f64,
    /// A reviewer's chance of approving a wrong one.
    pub approve_wrong: f64,
    /// The words a reviewer approves and rejects with.
    pub approve: String,
    pub revise: String,
    /// Failure modes and their rates per eligible turn, in the taxonomy's
    /// order; they add up to at most 1.
    pub failures: Vec<(FailureMode, f64)>,
}

impl Default for Persona {
    fn default() -> Self {
        Persona {
            role: Role::Solver,
            agree: 0.0,
            approve_correct: 0.9,
            approve_wrong: 0.1,
            approve: "APPROVED".into(),
            revise: "REVISE".into(),
            failures: Vec::new(),
        }
    }
}
