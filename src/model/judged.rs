//! The trace a failure judge's call is about, as a structured view: its
//! messages and the failures injected into them. The prompt builder renders
//! it for language models; the simulated judge reads the injected failures
//! from it as ground truth and answers at its configured sensitivity and
//! specificity.

use rand::{Rng, RngExt};

use crate::scenario::failure::FailureMode;
use crate::scenario::simulation::SimulatedJudge;

/// One message of a judged trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedMessage {
    /// Its position in the trace, from 0: what a judge cites as the turn.
    pub position: usize,
    pub sender: Option<String>,
    pub text: String,
}

/// A failure injected on purpose, where it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedFailure {
    pub mode: FailureMode,
    pub position: usize,
    pub agent: String,
}

/// What a judge's call judges.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceView {
    /// The task the system was given, "" when unknown.
    pub task: String,
    pub messages: Vec<TracedMessage>,
    pub injected: Vec<InjectedFailure>,
    /// The modes the judge is asked about, in order.
    pub modes: Vec<FailureMode>,
}

/// Words of a message a simulated judge quotes.
const QUOTE_WORDS: usize = 8;

/// What a simulated judge writes when it writes no verdict at all.
pub const MALFORMED_REPLY: &str = "Looking at this conversation, several things could have gone better, but overall the agents cooperated.";

impl TraceView {
    /// What of the view is not in the prompt, for cache keys: the injected
    /// failures.
    pub fn key(&self) -> String {
        format!("{:?}", self.injected)
    }

    /// The longest reply a simulated judge can write about this trace, in
    /// bytes: every mode present, each citing the longest message (JSON
    /// escaping at most doubles a quote) and the longest sender.
    pub fn reply_bound(&self) -> usize {
        let longest =
            |f: fn(&TracedMessage) -> usize| self.messages.iter().map(f).max().unwrap_or(0);
        let per_mode = 96
            + 2 * longest(|m| m.text.len())
            + 2 * longest(|m| m.sender.as_ref().map_or(0, String::len));
        160 + self.modes.len() * per_mode + MALFORMED_REPLY.len()
    }
}

impl SimulatedJudge {
    /// A reply in the judge's JSON format: each asked mode present with
    /// probability `sensitivity` where it was injected and `1 − specificity`
    /// where it was not, citing the injected message (or, for a false
    /// alarm, a message drawn at random); or, at rate `malformed`, no
    /// verdict at all.
    pub fn reply(&self, view: &TraceView, rng: &mut impl Rng) -> String {
        if self.malformed > 0.0 && rng.random_bool(self.malformed) {
            return MALFORMED_REPLY.to_owned();
        }
        let mut failures = Vec::with_capacity(view.modes.len());
        let mut found = 0;
        for &mode in &view.modes {
            let i = FailureMode::all()
                .position(|m| m == mode)
                .expect("every mode");
            let injected = view.injected.iter().find(|f| f.mode == mode);
            let present = match injected {
                Some(_) => rng.random_bool(self.sensitivity[i]),
                None => !rng.random_bool(self.specificity[i]),
            };
            let cited = match (present, injected) {
                (false, _) => None,
                (true, Some(f)) => view.messages.iter().find(|m| m.position == f.position),
                (true, None) if view.messages.is_empty() => None,
                (true, None) => Some(&view.messages[rng.random_range(0..view.messages.len())]),
            };
            found += usize::from(present);
            let evidence = cited.map_or(serde_json::Value::Null, |m| {
                let quote: Vec<&str> = m.text.split_whitespace().take(QUOTE_WORDS).collect();
                serde_json::json!({
                    "turn": m.position,
                    "agent": m.sender,
                    "quote": quote.join(" "),
                })
            });
            failures.push(serde_json::json!({
                "code": mode.code().trim_start_matches("FM-"),
                "present": present,
                "evidence": evidence,
            }));
        }
        let summary = match found {
            0 => "The agents worked through the task without a failure I can name.".to_owned(),
            n => format!("I found {n} failure mode(s) in this run."),
        };
        serde_json::json!({
            "summary": summary,
            "task_completed": serde_json::Value::Null,
            "failures": failures,
        })
        .to_string()
    }
}
