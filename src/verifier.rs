//! Verifiers: scores for candidate samples.
//!
//! Simulated verifiers draw from seeded generators, so a verifier's noise is
//! reproducible per sample; programmatic ones check the answer or text, or
//! run an external command that reads the candidate as JSON on stdin and
//! prints a score. `llm` verifiers are judged by a model: this module writes
//! the judge's prompt and scores its reply ([`crate::verdict`]); the executor
//! makes the call, through the provider layer like any other. A verifier that
//! cannot score a candidate says why; that is recorded as no score, never as 0.

use std::process::Stdio;

use rand::RngExt;
use tokio::io::AsyncWriteExt;

use crate::answer::parse_fraction;
use crate::scenario::{Check, Judge, Task, Verifier, VerifierKind};
use crate::seed::{self, Part};
use crate::verdict::{self, TokenChoice};

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

    /// The judge, for an `llm` verifier.
    pub fn judge(&self) -> Option<&Judge> {
        match &self.kind {
            VerifierKind::Llm(j) => Some(j),
            _ => None,
        }
    }

    /// Score `c` without waiting on anything; `None` for a command verifier
    /// (see [`Verifier::score_by_command`]) and a judge ([`Judge::score`]).
    pub fn score_now(&self, seed: u64, c: &Candidate<'_>) -> Option<Score> {
        // Simulated verifiers judge an abstention as wrong.
        let judged = c.answer.and(c.correct);
        let rng = || {
            seed::rng(
                seed,
                &[
                    Part::Str("verify"),
                    Part::Str(&self.name),
                    Part::Str(c.agent),
                    Part::Str(&c.task.id),
                    Part::Int(c.index as u64),
                ],
            )
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
            VerifierKind::Programmatic(Check::Command { .. }) | VerifierKind::Llm(_) => {
                return None;
            }
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
