//! What one turn of a graph run shows its speaker, in structured form: the
//! messages it sees with their answers, what it is asked to do, how the
//! conversation can end, and the failure (if any) it is to act out.
//!
//! The graph runner ([`crate::engine::executor`]) builds a scene for every turn of
//! an agent on the simulated model and sends it with the request; the
//! simulated provider acts on it ([`crate::model::actor`]) and network providers
//! never see one. The prompt holds the same transcript as text.

use std::sync::Arc;

use crate::scenario::failure::FailureMode;
use crate::scenario::persona::{Persona, Role};

#[derive(Debug, Clone)]
pub struct Scene {
    /// The speaking agent's name.
    pub speaker: String,
    pub persona: Arc<Persona>,
    pub step: SceneStep,
    /// Messages the speaker sees, oldest first.
    pub seen: Vec<Seen>,
    /// The speaker's own latest message in the run.
    pub own_last: Option<Seen>,
    /// The text that ends the chat the speaker is in (`until: {mentions}`).
    pub stop: Option<String>,
    /// The failure to act out in this turn.
    pub failure: Option<FailureMode>,
}

/// What the turn asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum SceneStep {
    /// A message in the conversation.
    Speak,
    /// A pick among named options (a manager's next speaker, an `llm`
    /// router's branch); `last` is the previous speaker, not picked again
    /// while there is another option.
    Choose {
        options: Vec<String>,
        last: Option<String>,
    },
    /// A running summary of `seen`.
    Summarize,
}

/// One message as the speaker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub sender: Option<String>,
    pub text: String,
    /// Its answer, normalized, as the scenario's rule extracts it.
    pub answer: Option<String>,
    /// Whether that answer is the task's expected one (`None`: no answer or
    /// nothing expected).
    pub correct: Option<bool>,
}

impl Scene {
    /// What the call's key adds to the prompt: everything the simulated
    /// provider reads that the prompt text does not already hold.
    pub fn key(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?}",
            self.persona, self.step, self.stop, self.failure
        )
    }

    /// The latest message with an answer from another agent.
    pub fn last_other(&self) -> Option<&Seen> {
        self.seen
            .iter()
            .rev()
            .find(|m| m.answer.is_some() && m.sender.as_deref().is_some_and(|s| s != self.speaker))
    }

    /// The text with which the speaker can end the conversation: a
    /// reviewer's approval, or its chat's stop mention.
    pub fn stop_signal(&self) -> Option<&str> {
        match self.persona.role {
            Role::Reviewer => Some(&self.persona.approve),
            _ => self.stop.as_deref(),
        }
    }

    /// Whether `mode` can be acted out in this turn. Only messages can
    /// fail; each mode needs what it acts on (a message of its own to
    /// repeat, another's input to ignore, a way to end the conversation).
    pub fn eligible(&self, mode: FailureMode) -> bool {
        use FailureMode::*;
        if self.step != SceneStep::Speak {
            return false;
        }
        match mode {
            DisobeyRole | InformationWithholding => true,
            StepRepetition => self.own_last.is_some(),
            UnawareOfTermination | PrematureTermination => self.stop_signal().is_some(),
            ConversationReset => !self.seen.is_empty(),
            IgnoredInput => self.last_other().is_some(),
            NoVerification => self.persona.role.verifies(),
            _ => false,
        }
    }

    /// The failure a draw `u` in [0, 1) picks: the persona's rates split
    /// [0, 1) in a fixed order, so each mode is injected at exactly its rate
    /// in turns where it is eligible, and at most one per turn.
    pub fn pick_failure(&self, u: f64) -> Option<FailureMode> {
        let mut acc = 0.0;
        for &(mode, rate) in &self.persona.failures {
            acc += rate;
            if u < acc {
                return self.eligible(mode).then_some(mode);
            }
        }
        None
    }
}
