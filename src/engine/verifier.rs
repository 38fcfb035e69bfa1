//! Verifiers: scores for candidate samples.
//!
//! Simulated verifiers draw from seeded generators, so a verifier's noise is
//! reproducible per sample; programmatic ones check the answer or text, or
//! run an external command that reads the candidate as JSON on stdin and
//! prints a score. `llm` verifiers are judged by a model: this module writes
//! the judge's prompt and scores its reply ([`crate::model::verdict`]); the executor
//! makes the call, through the provider layer like any other. A verifier that
//! cannot score a candidate says why; that is recorded as no score, never as 0.

use std::process::Stdio;

use rand::RngExt;
use tokio::io::AsyncWriteExt;

use crate::model::verdict::{self, TokenChoice};
use crate::scenario::answer::parse_fraction;
use crate::scenario::{Aggregate, Check, Judge, RewardModel, Steps, Task, Verifier, VerifierKind};
use crate::seed::{self, Part};

/// A verifier's judgement of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// `None`: the verifier could not score the sample (`detail` says why).
    pub value: Option<f64>,
    /// For accept/reject verifiers.
    pub accepted: Option<bool>,
    /// Why there is no score, or what an external verifier said besides it.
    pub detail: Option<String>,
}

impl Score {
    fn verdict(accepted: bool) -> Score {
        Score {
            value: Some(if accepted { 1.0 } else { 0.0 }),
            accepted: Some(accepted),
            detail: None,
        }
    }

    pub fn failed(why: String) -> Score {
        Score {
            value: None,
            accepted: None,
            detail: Some(why),
        }
    }
}

/// What a verifier sees of one sample.
pub struct Candidate<'a> {
    pub agent: &'a str,
    pub task: &'a Task,
    /// The user prompt the agent was given.
    pub prompt: &'a str,
    pub index: usize,
    /// For a message inside a graph run (a join's branch, a chat's
    /// message), its position: simulated verifiers draw per message.
    pub within: Option<usize>,
    pub text: &'a str,
    /// The answer as written, and normalized; `None` for an abstention.
    pub extracted: Option<&'a str>,
    pub answer: Option<&'a str>,
    /// Whether the answer equals the expected one (`None`: no expected answer).
    pub correct: Option<bool>,
}

impl Verifier {
    /// Whether scoring runs an external command (and so is asynchronous).
    pub fn runs_command(&self) -> bool {
        matches!(self.kind, VerifierKind::Programmatic(Check::Command { .. }))
    }

    /// The model the verifier calls about each candidate: an `llm` judge's
    /// or a reward model.
    pub fn model(&self) -> Option<usize> {
        match &self.kind {
            VerifierKind::Llm(j) => Some(j.model),
            VerifierKind::RewardModel(r) => Some(r.model),
            _ => None,
        }
    }

    /// What to ask the verifier's model about `c`: the system prompt and the
    /// prompt (for a reward model, its JSON request document).
    pub fn request(&self, c: &Candidate<'_>) -> Result<(String, String), String> {
        match &self.kind {
            VerifierKind::Llm(j) => Ok((j.system.clone(), j.prompt_for(c)?)),
            VerifierKind::RewardModel(r) => Ok((String::new(), r.request(c).to_string())),
            _ => Err(format!("verifier `{}` calls no model", self.name)),
        }
    }

    /// The score of the model's `reply` about a candidate whose text is
    /// `text` (`raw`: the whole response body), with the step scores of a
    /// process reward model.
    pub fn read(&self, text: &str, reply: &str, raw: Option<&str>) -> (Score, Vec<(String, f64)>) {
        match &self.kind {
            VerifierKind::Llm(j) => {
                let tokens = raw.and_then(crate::model::network::token_logprobs);
                (j.score(reply, tokens.as_deref()), Vec::new())
            }
            VerifierKind::RewardModel(r) => match r.read(text, reply) {
                Ok((value, steps)) => (
                    Score {
                        value: Some(value),
                        accepted: None,
                        detail: None,
                    },
                    steps,
                ),
                Err(why) => (Score::failed(why), Vec::new()),
            },
            _ => (
                Score::failed(format!("verifier `{}` calls no model", self.name)),
                Vec::new(),
            ),
        }
    }

    /// Score `c` without waiting on anything; `None` for a command verifier
    /// (see [`Verifier::score_by_command`]) and one that calls a model
    /// ([`Verifier::request`], [`Verifier::read`]).
    pub fn score_now(&self, seed: u64, c: &Candidate<'_>) -> Option<Score> {
        // Simulated verifiers judge an abstention as wrong.
        let judged = c.answer.and(c.correct);
        let rng = || {
            let mut parts = vec![
                Part::Str("verify"),
                Part::Str(&self.name),
                Part::Str(c.agent),
                Part::Str(&c.task.id),
                Part::Int(c.index as u64),
            ];
            parts.extend(c.within.map(|m| Part::Int(m as u64)));
            seed::rng(seed, &parts)
        };
        let score = match &self.kind {
            VerifierKind::Oracle {
                false_positive_rate,
                false_negative_rate,
            } => {
                let mut rng = rng();
                Score::verdict(match judged {
                    None => false,
                    Some(true) => !rng.random_bool(*false_negative_rate),
                    Some(false) => rng.random_bool(*false_positive_rate),
                })
            }
            VerifierKind::Noisy {
                correct_mean,
                wrong_mean,
                sd,
            } => {
                let mean = if judged == Some(true) {
                    correct_mean
                } else {
                    wrong_mean
                };
                Score {
                    value: Some(mean + sd * seed::standard_normal(&mut rng())),
                    accepted: None,
                    detail: None,
                }
            }
            VerifierKind::Programmatic(Check::Exact) => Score::verdict(c.correct == Some(true)),
            VerifierKind::Programmatic(Check::Numeric { absolute, relative }) => {
                let number = |s: Option<&str>| s.and_then(parse_number);
                match (number(c.answer), number(c.task.expected.as_deref())) {
                    (Some(a), Some(e)) => {
                        Score::verdict((a - e).abs() <= absolute.max(relative * e.abs()))
                    }
                    (_, None) => Score::failed("the expected answer is not a number".into()),
                    (None, _) => Score::verdict(false),
                }
            }
            VerifierKind::Programmatic(Check::Regex(re)) => Score::verdict(re.is_match(c.text)),
            VerifierKind::Programmatic(Check::Command { .. })
            | VerifierKind::Llm(_)
            | VerifierKind::RewardModel(_) => return None,
        };
        Some(score)
    }

    /// Run a command verifier on `c`: the candidate goes to the command's
    /// stdin as one JSON object, and the first word it prints is the score.
    /// A command that fails, times out or prints no number scores nothing.
    pub async fn score_by_command(&self, c: &Candidate<'_>) -> Score {
        let VerifierKind::Programmatic(Check::Command { argv, dir, timeout }) = &self.kind else {
            unreachable!("score_by_command on a verifier that runs no command");
        };
        let input = serde_json::json!({
            "task_id": c.task.id,
            "inputs": c.task.inputs,
            "expected": c.task.expected,
            "agent": c.agent,
            "prompt": c.prompt,
            "sample_index": c.index,
            "text": c.text,
            "extracted": c.extracted,
            "answer": c.answer,
        })
        .to_string();
        let program = argv.join(" ");
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return Score::failed(format!("cannot start `{program}`: {e}")),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A command that exits without reading its input is its own business.
            let _ = stdin.write_all(input.as_bytes()).await;
        }
        let output = match tokio::time::timeout(*timeout, child.wait_with_output()).await {
            Err(_) => {
                return Score::failed(format!(
                    "`{program}` did not finish within {} s",
                    timeout.as_secs_f64()
                ));
            }
            Ok(Err(e)) => return Score::failed(format!("`{program}`: {e}")),
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Score::failed(format!(
                "`{program}` exited with {}: {}",
                output.status,
                last_line(&stderr)
            ));
        }
        let first = stdout.split_whitespace().next().unwrap_or("");
        match first.parse::<f64>() {
            Ok(v) if v.is_finite() => Score {
                value: Some(v),
                accepted: None,
                detail: None,
            },
            _ => Score::failed(format!(
                "`{program}` printed no number (first word {first:?}); it must print the score first"
            )),
        }
    }
}

impl Judge {
    /// The judge's prompt about `c`.
    pub fn prompt_for(&self, c: &Candidate<'_>) -> Result<String, String> {
        let mut context = c.task.inputs.clone();
        for (field, value) in [
            ("prompt", Some(c.prompt)),
            ("text", Some(c.text)),
            ("extracted", c.extracted),
            ("answer", c.answer),
            ("expected", c.task.expected.as_deref()),
        ] {
            context.insert(field.into(), value.into());
        }
        self.prompt.render(&context)
    }

    /// The score of the judge's `reply` (with its tokens, when the server
    /// sent log-probabilities). The reply is the detail, so that
    /// self-correction can send the judge's critique back; a reply with no
    /// readable verdict scores nothing and says why.
    pub fn score(&self, reply: &str, tokens: Option<&[TokenChoice]>) -> Score {
        match verdict::read(self.scale, reply, tokens) {
            Ok(v) => Score {
                value: Some(v.value),
                accepted: v.accepted,
                detail: Some(reply.to_owned()),
            },
            Err(why) => Score::failed(format!("{why}; the judge wrote: {reply}")),
        }
    }
}

impl RewardModel {
    /// The request about `c`: the task, the prompt, the response, and for a
    /// process reward model its steps.
    fn request(&self, c: &Candidate<'_>) -> serde_json::Value {
        let mut body = serde_json::json!({
            "task_id": c.task.id,
            "prompt": c.prompt,
            "response": c.text,
        });
        if let Some((steps, _)) = self.process {
            body["steps"] = split_steps(c.text, steps).into();
        }
        body
    }

    /// The solution's score from the model's reply (`{"score": s}`, or for
    /// a process reward model `{"step_scores": [...]}`, one per step of
    /// `text`), with each step and its score.
    fn read(&self, text: &str, reply: &str) -> Result<(f64, Vec<(String, f64)>), String> {
        let v: serde_json::Value = serde_json::from_str(reply)
            .map_err(|e| format!("the reward model's reply is not JSON ({e}): {reply}"))?;
        let number = |x: &serde_json::Value| x.as_f64().filter(|f| f.is_finite());
        let Some((split, aggregate)) = self.process else {
            return v
                .get("score")
                .and_then(number)
                .map(|s| (s, Vec::new()))
                .ok_or_else(|| {
                    format!("the reward model's reply has no numeric `score`: {reply}")
                });
        };
        let steps = split_steps(text, split);
        let scores: Vec<f64> = v
            .get("step_scores")
            .and_then(serde_json::Value::as_array)
            .and_then(|a| a.iter().map(number).collect())
            .ok_or_else(|| {
                format!("the reward model's reply has no numeric `step_scores` list: {reply}")
            })?;
        if scores.len() != steps.len() {
            return Err(format!(
                "the reward model scored {} steps of a solution with {}: {reply}",
                scores.len(),
                steps.len()
            ));
        }
        let value = aggregate_steps(aggregate, &scores)
            .ok_or("the solution has no steps to score (it is empty)")?;
        Ok((
            value,
            steps.into_iter().map(str::to_owned).zip(scores).collect(),
        ))
    }
}

/// The steps of a solution, trimmed, none empty.
pub fn split_steps(text: &str, steps: Steps) -> Vec<&str> {
    static PARAGRAPH_BREAK: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\n[ \t]*\n").expect("valid regex"));
    static STEP_MARKER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?mi)^[ \t#*]*step\s*\d+\s*[:.)]").expect("valid regex")
    });
    let pieces: Vec<&str> = match steps {
        Steps::Lines => text.lines().collect(),
        Steps::Paragraphs => PARAGRAPH_BREAK.split(text).collect(),
        Steps::Markers => {
            let mut starts: Vec<usize> = STEP_MARKER.find_iter(text).map(|m| m.start()).collect();
            starts.insert(0, 0);
            starts.push(text.len());
            starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
        }
    };
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// A solution's score from its step scores; `None` without steps.
pub fn aggregate_steps(aggregate: Aggregate, scores: &[f64]) -> Option<f64> {
    let last = *scores.last()?;
    Some(match aggregate {
        Aggregate::Min => scores.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Last => last,
        Aggregate::Mean => scores.iter().sum::<f64>() / scores.len() as f64,
        Aggregate::Product => scores.iter().product(),
    })
}

/// A number written as a decimal or a fraction (`3/4`, `\frac{3}{4}`).
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    let (p, q) = parse_fraction(s)?;
    Some(p as f64 / q as f64)
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(steps: Steps, text: &str, expected: &[&str]) {
        assert_eq!(split_steps(text, steps), expected, "{steps:?} of {text:?}");
    }

    #[test]
    fn solutions_split_into_steps() {
        let text = "Let x = 3.\n\nStep 1: add 2.\nSo 5.\n  \nStep 2. double it\n**Step 3:** 10";
        check(
            Steps::Lines,
            text,
            &[
                "Let x = 3.",
                "Step 1: add 2.",
                "So 5.",
                "Step 2. double it",
                "**Step 3:** 10",
            ],
        );
        check(
            Steps::Paragraphs,
            text,
            &[
                "Let x = 3.",
                "Step 1: add 2.\nSo 5.",
                "Step 2. double it\n**Step 3:** 10",
            ],
        );
        check(
            Steps::Markers,
            text,
            &[
                "Let x = 3.",
                "Step 1: add 2.\nSo 5.",
                "Step 2. double it",
                "**Step 3:** 10",
            ],
        );
        // "step" inside a sentence, or without a number, starts nothing.
        check(
            Steps::Markers,
            "One step at a time.\nStep two: no number",
            &["One step at a time.\nStep two: no number"],
        );
        check(Steps::Lines, " \n\n", &[]);
    }

    #[test]
    fn step_scores_aggregate() {
        let scores = [0.5, 0.8, 0.25];
        let got: Vec<Option<f64>> = [
            Aggregate::Min,
            Aggregate::Last,
            Aggregate::Mean,
            Aggregate::Product,
        ]
        .into_iter()
        .map(|a| aggregate_steps(a, &scores))
        .collect();
        assert_eq!(got, [Some(0.25), Some(0.25), Some(1.55 / 3.0), Some(0.1)]);
        assert_eq!(aggregate_steps(Aggregate::Mean, &[]), None);
    }

    #[test]
    fn reward_replies_are_read_or_refused() {
        let process = RewardModel {
            model: 0,
            process: Some((Steps::Lines, Aggregate::Min)),
        };
        let text = "a\nb";
        assert_eq!(
            process.read(text, r#"{"step_scores": [0.7, 0.4]}"#),
            Ok((0.4, vec![("a".to_owned(), 0.7), ("b".to_owned(), 0.4)]))
        );
        for (reply, why) in [
            (
                r#"{"step_scores": [0.7]}"#,
                "scored 1 steps of a solution with 2",
            ),
            (r#"{"score": 0.7}"#, "no numeric `step_scores`"),
            (r#"{"step_scores": [0.7, "x"]}"#, "no numeric `step_scores`"),
            ("oops", "not JSON"),
        ] {
            let e = process.read(text, reply).unwrap_err();
            assert!(e.contains(why), "{reply}: {e}");
        }
        let outcome = RewardModel {
            model: 0,
            process: None,
        };
        assert_eq!(outcome.read(text, r#"{"score": -1.5}"#), Ok((-1.5, vec![])));
        assert!(
            outcome
                .read(text, r#"{"score": null}"#)
                .unwrap_err()
                .contains("no numeric `score`")
        );
    }
}
