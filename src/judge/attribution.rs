//! `crucible blame`'s judge methods, without I/O: the question each asks
//! of a trace, its prompt (the attribution file's template over the task,
//! the right answer when known and the steps, numbered from 0 as
//! `Step N - agent: text` and fitted to a token budget like a failure
//! judge's), and reading the reply — an agent and a step, a yes or no, a
//! half — or saying why it cannot be read. Binary search's narrowing is
//! here too. The engine asks the questions through its `Caller`.

use crate::judge::prompt::{Prompt, fit};
pub use crate::model::judged::BlameQuestion as Question;
use crate::model::judged::TraceView;
use crate::scenario::attribution_file::{AttributionFile, MethodPrompt, agent_of};

/// A judge method of attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Method {
    /// The whole log: name the agent and the step.
    AllAtOnce,
    /// One step at a time until a step is judged decisive.
    StepByStep,
    /// Halve the log by asking which half holds the mistake.
    BinarySearch,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::AllAtOnce, Method::StepByStep, Method::BinarySearch];

    /// Its name, as `attributions.method` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::AllAtOnce => "all-at-once",
            Method::StepByStep => "step-by-step",
            Method::BinarySearch => "binary-search",
        }
    }
}

/// A half of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Upper,
    Lower,
}

/// The prompt for `question` about `view` (`expected`: the right answer,
/// when known), its transcript fitted into `max_tokens` when given.
pub fn render(
    file: &AttributionFile,
    view: &TraceView,
    expected: Option<&str>,
    question: Question,
    max_tokens: Option<usize>,
) -> Result<Prompt, String> {
    let steps = view.messages.len();
    let (prompt, range): (&MethodPrompt, std::ops::Range<usize>) = match question {
        Question::Whole => (&file.all_at_once, 0..steps),
        Question::Step(s) => (&file.step_by_step, 0..(s + 1).min(steps)),
        Question::Half { start, end, .. } => (&file.binary_search, start..(end + 1).min(steps)),
    };
    let agents = senders(view);
    let fill = |transcript: &str| {
        let mut ctx = serde_json::Map::new();
        ctx.insert("task".into(), view.task.clone().into());
        ctx.insert("expected".into(), expected.unwrap_or("").into());
        ctx.insert("transcript".into(), transcript.into());
        ctx.insert("steps".into(), steps.into());
        ctx.insert("agents".into(), agents.clone().into());
        match question {
            Question::Whole => {}
            Question::Step(s) => {
                ctx.insert("step".into(), s.into());
                let agent = view.messages.get(s).and_then(|m| m.sender.clone());
                ctx.insert(
                    "agent".into(),
                    agent.unwrap_or_else(|| "(unknown)".into()).into(),
                );
            }
            Question::Half { start, mid, end } => {
                for (k, v) in [
                    ("start", start),
                    ("mid", mid),
                    ("next", mid + 1),
                    ("end", end),
                ] {
                    ctx.insert(k.into(), v.into());
                }
            }
        }
        prompt.user.render(&ctx)
    };
    let frame = match max_tokens {
        Some(_) => fill("")?.chars().count() + prompt.system.chars().count(),
        None => 0,
    };
    let entries: Vec<(String, &str)> = view.messages[range]
        .iter()
        .map(|m| {
            let who = m.sender.as_deref().unwrap_or("(unknown)");
            (format!("Step {} - {who}: ", m.position), m.text.as_str())
        })
        .collect();
    let (transcript, cut) = fit(&entries, "\n", frame, max_tokens);
    Ok(Prompt {
        system: prompt.system.clone(),
        user: fill(&transcript)?,
        cut,
    })
}

/// The senders of `view`'s messages, each once, in the order they first
/// speak: the agents a reply may name.
pub fn senders(view: &TraceView) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for m in &view.messages {
        if let Some(s) = m.sender.as_deref()
            && !out.contains(&s)
        {
            out.push(s);
        }
    }
    out
}

/// An all-at-once reply: the agent (one of `agents`, as the trace names
/// it) and the step (below `steps`), and the reason when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blamed {
    pub agent: String,
    pub step: usize,
    pub reason: Option<String>,
}

/// Read an all-at-once reply: `Agent Name:`, `Step Number:` and
/// `Reason for Mistake:` lines (or a JSON object with `agent` and `step`).
/// The agent must be one that spoke (compared without case, quotes or
/// markup) and the step one of the trace's.
pub fn read_blame(reply: &str, agents: &[&str], steps: usize) -> Result<Blamed, String> {
    let (agent, step, reason) = match json_blame(reply) {
        Some(found) => found,
        None => (
            field(reply, "agent name").ok_or("no `Agent Name:` line")?,
            field(reply, "step number").ok_or("no `Step Number:` line")?,
            field(reply, "reason for mistake").filter(|r| !r.is_empty()),
        ),
    };
    let digits: String = step
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let step: usize = digits
        .parse()
        .map_err(|_| format!("the step number \"{step}\" is not a number"))?;
    if step >= steps {
        return Err(format!("step {step} is not one of the {steps} steps"));
    }
    // A sender as written, or the agent it names without its action.
    let wanted = plain(&agent);
    let agent = agents
        .iter()
        .find(|a| plain(a) == wanted)
        .map(|a| (*a).to_owned())
        .or_else(|| {
            agents
                .iter()
                .map(|a| agent_of(a))
                .find(|a| plain(a) == wanted)
                .map(str::to_owned)
        })
        .ok_or_else(|| format!("\"{agent}\" is not an agent of this run"))?;
    Ok(Blamed {
        agent,
        step,
        reason,
    })
}

/// The value after `name:` on the first line that starts with it
/// (markup and numbering before it allowed), case-insensitively.
fn field(reply: &str, name: &str) -> Option<String> {
    reply.lines().find_map(|line| {
        let bare = line
            .trim_start_matches(|c: char| !c.is_alphabetic())
            .to_lowercase();
        let rest = bare.strip_prefix(name)?;
        let at = line.len() - rest.len();
        let value = line[at..].trim_start_matches(|c: char| c == '*' || c.is_whitespace());
        let value = value
            .strip_prefix(':')
            .or_else(|| value.strip_prefix('：'))?;
        Some(value.trim().trim_matches('*').trim().to_owned())
    })
}

/// `{"agent": ..., "step": ...}` anywhere in the reply.
fn json_blame(reply: &str) -> Option<(String, String, Option<String>)> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    let v: serde_json::Value = serde_json::from_str(reply.get(start..=end)?).ok()?;
    let agent = v.get("agent")?.as_str()?.to_owned();
    let step = match v.get("step")? {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let reason = v.get("reason").and_then(|r| r.as_str()).map(str::to_owned);
    Some((agent, step, reason))
}

/// A name as compared: lowercase, without quotes, backticks or markup.
fn plain(name: &str) -> String {
    name.trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*' | '.' | '(' | ')'))
        .trim()
        .to_lowercase()
}

/// Read a step-by-step reply: yes or no, first (after an optional `1.`).
pub fn read_verdict(reply: &str) -> Result<bool, String> {
    let first = reply
        .trim_start()
        .trim_start_matches(|c: char| {
            c.is_ascii_digit() || c == '.' || c == '*' || c.is_whitespace()
        })
        .to_lowercase();
    let word: String = first.chars().take_while(|c| c.is_alphabetic()).collect();
    match word.as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("the reply does not start with Yes or No".into()),
    }
}

/// Read a binary-search reply: "upper half" or "lower half", one of them.
pub fn read_half(reply: &str) -> Result<Half, String> {
    let lower = reply.to_lowercase();
    match (lower.contains("upper half"), lower.contains("lower half")) {
        (true, false) => Ok(Half::Upper),
        (false, true) => Ok(Half::Lower),
        (true, true) => Err("the reply names both halves".into()),
        (false, false) => Err("the reply names neither half".into()),
    }
}

/// Binary search over steps `0..steps`: the segment left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    start: usize,
    end: usize,
}

impl Search {
    /// Over `steps` steps (at least one).
    pub fn new(steps: usize) -> Search {
        Search {
            start: 0,
            end: steps.saturating_sub(1),
        }
    }

    /// The next question, or `None` once one step is left.
    pub fn question(&self) -> Option<Question> {
        (self.start < self.end).then(|| Question::Half {
            start: self.start,
            mid: self.start + (self.end - self.start) / 2,
            end: self.end,
        })
    }

    /// Keep the half the judge named.
    pub fn narrow(&mut self, half: Half) {
        let mid = self.start + (self.end - self.start) / 2;
        match half {
            Half::Upper => self.end = mid,
            Half::Lower => self.start = mid + 1,
        }
    }

    /// The step found, once one is left.
    pub fn found(&self) -> Option<usize> {
        (self.start == self.end).then_some(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_at_once_replies_are_read_or_refused_with_a_reason() {
        let agents = ["WebSurfer", "Orchestrator (thought)"];
        let ok = read_blame(
            "**Agent Name:** WebSurfer\n**Step Number:** 12\nReason for Mistake: it clicked the wrong link.",
            &agents,
            20,
        )
        .unwrap();
        assert_eq!((ok.agent.as_str(), ok.step), ("WebSurfer", 12));
        assert_eq!(ok.reason.as_deref(), Some("it clicked the wrong link."));
        let json = read_blame(
            r#"Here: {"agent": "orchestrator (thought)", "step": "3"}"#,
            &agents,
            20,
        );
        assert_eq!(json.unwrap().agent, "Orchestrator (thought)");
        for (reply, why) in [
            ("Agent Name: WebSurfer", "no `Step Number:` line"),
            (
                "Agent Name: Nobody\nStep Number: 2",
                "\"Nobody\" is not an agent",
            ),
            (
                "Agent Name: WebSurfer\nStep Number: 20",
                "step 20 is not one of the 20 steps",
            ),
            ("Agent Name: WebSurfer\nStep Number: two", "is not a number"),
        ] {
            let err = read_blame(reply, &agents, 20).unwrap_err();
            assert!(err.contains(why), "{reply}: {err}");
        }
    }

    #[test]
    fn verdicts_and_halves_are_read_only_when_unambiguous() {
        assert_eq!(read_verdict("1. Yes\n2. Reason: wrong sum"), Ok(true));
        assert_eq!(read_verdict("No. It is fine."), Ok(false));
        assert!(read_verdict("Maybe").is_err());
        // "Nothing" starts with "no" but is not No.
        assert!(read_verdict("Nothing wrong here").is_err());
        assert_eq!(read_half("The Upper Half."), Ok(Half::Upper));
        assert_eq!(read_half("lower half"), Ok(Half::Lower));
        assert!(read_half("upper half or lower half").is_err());
        assert!(read_half("the middle").is_err());
    }

    /// Binary search finds any step with ⌈log₂ n⌉ questions at most.
    #[test]
    fn binary_search_asks_at_most_log2_questions() {
        for steps in 1..=70usize {
            for target in 0..steps {
                let mut s = Search::new(steps);
                let mut asked = 0;
                while let Some(Question::Half { mid, .. }) = s.question() {
                    asked += 1;
                    s.narrow(if target <= mid {
                        Half::Upper
                    } else {
                        Half::Lower
                    });
                }
                assert_eq!(s.found(), Some(target));
                let bound = (steps as f64).log2().ceil() as usize;
                assert!(asked <= bound, "{steps} steps, target {target}: {asked}");
            }
        }
    }
}
