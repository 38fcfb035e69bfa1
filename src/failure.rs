//! The MAST taxonomy of multi-agent failures (Cemri et al., "Why Do
//! Multi-Agent LLM Systems Fail?"): fourteen modes in three categories,
//! named by their codes (`FM-1.3`). Simulated agents can act out some of
//! them on purpose ([`crate::persona`]); the graph runner records each one
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

impl FailureMode {
    /// All fourteen, in the taxonomy's order.
    pub const ALL: [FailureMode; 14] = [
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
    ];

    pub fn code(self) -> &'static str {
        match self {
            DisobeyTask => "FM-1.1",
            DisobeyRole => "FM-1.2",
            StepRepetition => "FM-1.3",
            LossOfHistory => "FM-1.4",
            UnawareOfTermination => "FM-1.5",
            ConversationReset => "FM-2.1",
            NoClarification => "FM-2.2",
            TaskDerailment => "FM-2.3",
            InformationWithholding => "FM-2.4",
            IgnoredInput => "FM-2.5",
            ReasoningActionMismatch => "FM-2.6",
            PrematureTermination => "FM-3.1",
            NoVerification => "FM-3.2",
            IncorrectVerification => "FM-3.3",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DisobeyTask => "disobey task specification",
            DisobeyRole => "disobey role specification",
            StepRepetition => "step repetition",
            LossOfHistory => "loss of conversation history",
            UnawareOfTermination => "unaware of termination conditions",
            ConversationReset => "conversation reset",
            NoClarification => "fail to ask for clarification",
            TaskDerailment => "task derailment",
            InformationWithholding => "information withholding",
            IgnoredInput => "ignored other agent's input",
            ReasoningActionMismatch => "reasoning-action mismatch",
            PrematureTermination => "premature termination",
            NoVerification => "no or incomplete verification",
            IncorrectVerification => "incorrect verification",
        }
    }

    pub fn from_code(code: &str) -> Option<FailureMode> {
        Self::ALL.into_iter().find(|m| m.code() == code)
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
        for m in FailureMode::ALL {
            assert_eq!(FailureMode::from_code(m.code()), Some(m));
        }
        let mut codes: Vec<&str> = FailureMode::ALL.iter().map(|m| m.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), 14);
        assert_eq!(FailureMode::from_code("FM-4.1"), None);
    }
}
