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
    /// Asked instead who made the run fail and when (`crucible blame`).
    pub question: Option<BlameQuestion>,
    /// The known culprit (agent, message position), which a simulated
    /// judge reads as ground truth: the first injected failure, or an
    /// imported trace's blame.
    pub culprit: Option<(String, usize)>,
}

/// One question of an attribution judge about a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlameQuestion {
    /// Which agent, which step?
    Whole,
    /// Is this step decisive?
    Step(usize),
    /// Steps `start..=end`: is the mistake in `start..=mid` or after?
    Half {
        start: usize,
        mid: usize,
        end: usize,
    },
}

/// Words of a message a simulated judge quotes.
const QUOTE_WORDS: usize = 8;

/// What a simulated judge writes when it writes no verdict at all.
pub const MALFORMED_REPLY: &str = "Looking at this conversation, several things could have gone better, but overall the agents cooperated.";

impl TraceView {
    /// What of the view is not in the prompt, for cache keys: the injected
    /// failures.
    pub fn key(&self) -> String {
        match (&self.question, &self.culprit) {
            (None, None) => format!("{:?}", self.injected),
            (q, c) => format!("{:?} {q:?} {c:?}", self.injected),
        }
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
        if let Some(q) = view.question {
            return self.blame(view, q, rng);
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

    /// An attribution answer, right with probability `attribution`: the
    /// culprit's agent and step (else a message drawn at random), whether
    /// a step is the culprit's, the half holding it. With no culprit
    /// known, every answer is drawn at random.
    fn blame(&self, view: &TraceView, q: BlameQuestion, rng: &mut impl Rng) -> String {
        let right = view.culprit.is_some() && rng.random_bool(self.attribution);
        let culprit = view.culprit.as_ref();
        match q {
            BlameQuestion::Whole => {
                let (agent, step) = match (right, culprit) {
                    (true, Some((agent, step))) => (agent.clone(), *step),
                    _ if view.messages.is_empty() => ("(none)".to_owned(), 0),
                    _ => {
                        let m = &view.messages[rng.random_range(0..view.messages.len())];
                        (m.sender.clone().unwrap_or_default(), m.position)
                    }
                };
                format!(
                    "Agent Name: {agent}\nStep Number: {step}\nReason for Mistake: its message at step {step} set the run on the wrong course."
                )
            }
            BlameQuestion::Step(step) => {
                let decisive = culprit.is_some_and(|(_, s)| *s == step);
                let yes = if right {
                    decisive
                } else {
                    rng.random_bool(0.5)
                };
                if yes {
                    format!("1. Yes\n2. Reason: step {step} goes wrong.")
                } else {
                    format!("1. No\n2. Reason: step {step} is fine.")
                }
            }
            BlameQuestion::Half { mid, .. } => {
                let upper = match (right, culprit) {
                    (true, Some((_, s))) => *s <= mid,
                    _ => rng.random_bool(0.5),
                };
                if upper { "upper half" } else { "lower half" }.to_owned()
            }
        }
    }
}
