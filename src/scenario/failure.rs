//! The MAST taxonomy of multi-agent failures (Cemri et al., "Why Do
//! Multi-Agent LLM Systems Fail?"): fourteen modes in three categories,
//! named by their codes (`FM-1.3`). Simulated agents can act out some of
//! them on purpose ([`crate::scenario::persona`]); the graph runner records each one
//! it injects as ground truth (`injected_failures`).

/// One MAST failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureMode {
    DisobeyTask,
    DisobeyRole,
    StepRepetition,
    LossOfHistory,
    UnawareOfTermination,
    ConversationReset,
    NoClarification,
    TaskDerailment,
    InformationWithholding,
    IgnoredInput,
    ReasoningActionMismatch,
    PrematureTermination,
    NoVerification,
    IncorrectVerification,
}

use FailureMode::*;

/// Each mode with its code and name, in the taxonomy's order.
const TABLE: [(FailureMode, &str, &str); 14] = [
    (DisobeyTask, "FM-1.1", "disobey task specification"),
    (DisobeyRole, "FM-1.2", "disobey role specification"),
    (StepRepetition, "FM-1.3", "step repetition"),
    (LossOfHistory, "FM-1.4", "loss of conversation history"),
    (
        UnawareOfTermination,
        "FM-1.5",
        "unaware of termination conditions",
    ),
    (ConversationReset, "FM-2.1", "conversation reset"),
    (NoClarification, "FM-2.2", "fail to ask for clarification"),
    (TaskDerailment, "FM-2.3", "task derailment"),
    (InformationWithholding, "FM-2.4", "information withholding"),
    (IgnoredInput, "FM-2.5", "ignored other agent's input"),
    (
        ReasoningActionMismatch,
        "FM-2.6",
        "reasoning-action mismatch",
    ),
    (PrematureTermination, "FM-3.1", "premature termination"),
    (NoVerification, "FM-3.2", "no or incomplete verification"),
    (IncorrectVerification, "FM-3.3", "incorrect verification"),
];

impl FailureMode {
    /// All fourteen, in the taxonomy's order.
    pub fn all() -> impl Iterator<Item = FailureMode> {
        TABLE.iter().map(|t| t.0)
    }

    fn entry(self) -> &'static (FailureMode, &'static str, &'static str) {
        TABLE
            .iter()
            .find(|t| t.0 == self)
            .expect("every mode is in the table")
    }

    pub fn code(self) -> &'static str {
        self.entry().1
    }

    pub fn name(self) -> &'static str {
        self.entry().2
    }

    pub fn from_code(code: &str) -> Option<FailureMode> {
        TABLE.iter().find(|t| t.1 == code).map(|t| t.0)
    }

    /// The modes simulated agents can act out.
    pub fn injectable(self) -> bool {
        matches!(
            self,
            DisobeyRole
                | StepRepetition
                | UnawareOfTermination
                | ConversationReset
                | InformationWithholding
                | IgnoredInput
                | PrematureTermination
                | NoVerification
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_read_back() {
        for m in FailureMode::all() {
            assert_eq!(FailureMode::from_code(m.code()), Some(m));
        }
        let mut codes: Vec<&str> = FailureMode::all().map(|m| m.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), 14);
        assert_eq!(FailureMode::from_code("FM-4.1"), None);
    }
}
