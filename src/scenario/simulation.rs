//! What a simulated model is: its answer distribution per task and how it
//! writes an answer so the scenario's extraction rule reads it back; and
//! what it is as a failure judge, an explained model and a predictor
//! (their error rates and rules).
//!
//! Data and pure functions only; `model::simulated` draws samples from it
//! and serves it as a provider, `model::judged`, `model::explainer` and
//! `model::predictor` give the judge, explainer and predictor their
//! behaviour. The validator writes a probe answer with
//! [`SimulatedModel::write`] to check that the answer rule reads it back.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::scenario::Task;
use crate::scenario::spec::Spread;
use crate::seed;

#[derive(Debug, Clone)]
pub enum Distribution {
    /// Correct answer `p_correct`, runner-up `p_correct - delta`, the rest of
    /// the mass (less `abstain`) over `wrong - 1` further wrong answers.
    Gap {
        p_correct: f64,
        delta: f64,
        wrong: usize,
        spread: Spread,
        abstain: f64,
    },
    /// Normalized answer → probability; the remainder is abstention.
    Explicit(Vec<(String, f64)>),
}

/// How answers are written so the scenario's extractor reads them back.
#[derive(Debug, Clone)]
pub struct AnswerStyle {
    /// The final line, with `{answer}` where the answer goes.
    pub format: String,
    /// Whether reasoning lines come before the answer (not for whole-text extraction).
    pub reasoning: bool,
    /// Option letters when answers are multiple-choice letters.
    pub choices: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SimulatedModel {
    pub name: String,
    pub seed: u64,
    pub distribution: Distribution,
    pub style: AnswerStyle,
    /// Mean and standard deviation of call latency in ms.
    pub latency: Option<(f64, f64)>,
    pub failure_rate: f64,
    /// Samples repeat their block's shared answer with this probability.
    pub correlation: Option<Correlation>,
    /// p_correct by the value of a task field.
    pub skills: Option<Skills>,
    /// Samples per request (the simulated server accepts any `n`).
    pub n_per_request: usize,
    /// As a failure judge: how it answers.
    pub judge: Option<SimulatedJudge>,
    /// As an explained model of a faithfulness experiment: its hidden rule
    /// and how faithfully it names the rule's features.
    pub explainer: Option<SimulatedExplainer>,
    /// As a predictor of a faithfulness experiment: how it guesses.
    pub predictor: Option<SimulatedPredictor>,
}

/// A simulated model's probability of the correct answer by the value of
/// task field `field`: the correct answer gets it, the wrong answers are
/// scaled to share what is left beside abstention.
#[derive(Debug, Clone, PartialEq)]
pub struct Skills {
    pub field: String,
    pub p_correct: Vec<(String, f64)>,
}

/// A simulated model's dependence between samples: sample k belongs to
/// block k / `block` and repeats that block's answer with probability `rho`
/// (the answer itself drawn from the task's distribution), so every sample
/// keeps the distribution while samples of one block agree more often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    pub rho: f64,
    pub block: usize,
}

/// A simulated failure judge: it knows which failures were injected into a
/// trace and reports each mode with a known error rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedJudge {
    /// Per mode, in the taxonomy's order: P(reports it | injected).
    pub sensitivity: Vec<f64>,
    /// Per mode: P(does not report it | not injected).
    pub specificity: Vec<f64>,
    /// Share of replies with no readable verdict.
    pub malformed: f64,
    /// P(an answer to an attribution question is right).
    pub attribution: f64,
}

/// A simulated explained model whose faithfulness is known: it answers by a
/// hidden weighted-threshold rule over a case's features and names the
/// rule's features as its most important factors, each faithfully with
/// probability `faithfulness`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedExplainer {
    /// Feature → weight, in the scenario's (alphabetical) order.
    pub weights: Vec<(String, f64)>,
    /// The first answer when the weighted sum reaches it, else the second.
    pub threshold: f64,
    /// P(a named factor is the rule's own feature), per factor.
    pub faithfulness: f64,
    /// Share of replies with no readable answer.
    pub malformed: f64,
    /// Share of cases whose answer is settled before the reasoning.
    pub post_hoc: f64,
    /// P(following a suggested answer).
    pub susceptibility: f64,
    /// P(saying so, when following one).
    pub acknowledge: f64,
}

/// A simulated predictor: it expects the explained model's answer to
/// change exactly when a counterfactual changes a feature the explanation
/// named, and guesses `guess` features without an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedPredictor {
    /// Features guessed without an explanation, at least 1.
    pub guess: usize,
    /// Share of replies naming two answers.
    pub hedge: f64,
    /// Share of replies naming no answer; `hedge + malformed` ≤ 1.
    pub malformed: f64,
}

pub const REASONING: &[&str] = &[
    "Let me work through this step by step.",
    "First, I restate the problem in my own words.",
    "Then I check each part of the question carefully.",
    "Working through the details gives one candidate result.",
    "I double-check the computation before answering.",
];

pub const ABSTAIN_TEXT: &str = "I could not reach a confident conclusion on this one.";

impl SimulatedModel {
    /// The answer distribution of `task` (answer → probability; `None` =
    /// abstain), with the model's skill at the task's kind applied.
    pub fn distribution_for(&self, task: &Task) -> Vec<(Option<String>, f64)> {
        let mut dist = self.base_distribution(task);
        let skill = self.skills.as_ref().and_then(|s| {
            let value = task.inputs.get(&s.field)?;
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            s.p_correct
                .iter()
                .find(|(v, _)| *v == value)
                .map(|(_, p)| *p)
        });
        if let (Some(p), Some(expected)) = (skill, task.expected.as_deref()) {
            let abstain: f64 = dist
                .iter()
                .filter(|(a, _)| a.is_none())
                .map(|(_, q)| q)
                .sum();
            let wrong: f64 = dist
                .iter()
                .filter(|(a, _)| a.as_deref().is_some_and(|a| a != expected))
                .map(|(_, q)| q)
                .sum();
            // Abstention keeps its share; with no wrong answer to take the
            // rest, abstention does.
            let p = p.min(1.0 - abstain);
            let left = 1.0 - p - abstain;
            let scale = if wrong > 0.0 { left / wrong } else { 0.0 };
            for (a, q) in &mut dist {
                match a.as_deref() {
                    Some(a) if a == expected => *q = p,
                    Some(_) => *q *= scale,
                    None if wrong > 0.0 => {}
                    None => *q += left,
                }
            }
            if !dist.iter().any(|(a, _)| a.as_deref() == Some(expected)) {
                dist.insert(0, (Some(expected.to_owned()), p));
            }
        }
        dist
    }

    fn base_distribution(&self, task: &Task) -> Vec<(Option<String>, f64)> {
        if let Some(d) = &task.distribution {
            return with_abstention(d.clone());
        }
        match &self.distribution {
            Distribution::Explicit(d) => with_abstention(d.clone()),
            Distribution::Gap {
                p_correct,
                delta,
                wrong,
                spread,
                abstain,
            } => {
                let expected = task.expected.as_deref().unwrap_or("0");
                let wrongs = self.wrong_answers(task, expected, *wrong);
                let mut out = vec![(Some(expected.to_owned()), *p_correct)];
                let runner_up = p_correct - delta;
                let rest = (1.0 - p_correct - runner_up - abstain).max(0.0);
                let shares = spread_shares(*spread, wrongs.len().saturating_sub(1), rest);
                for (i, w) in wrongs.into_iter().enumerate() {
                    let p = if i == 0 { runner_up } else { shares[i - 1] };
                    out.push((Some(w), p));
                }
                out.push((None, *abstain));
                out
            }
        }
    }

    /// `count` distinct wrong answers near `expected`, seeded per task.
    fn wrong_answers(&self, task: &Task, expected: &str, count: usize) -> Vec<String> {
        let mut rng = seed::rng(
            self.seed,
            &[
                "wrong".into(),
                self.name.as_str().into(),
                task.id.as_str().into(),
            ],
        );
        if let Some(letters) = &self.style.choices {
            let mut others: Vec<String> = letters
                .chars()
                .map(|c| c.to_lowercase().to_string())
                .filter(|c| c != expected)
                .collect();
            others.shuffle(&mut rng);
            others.truncate(count);
            return others;
        }
        if let Ok(v) = expected.parse::<f64>() {
            let span = (count * 3).max(10) as i64;
            let mut offsets: Vec<i64> = (1..=span).flat_map(|d| [d, -d]).collect();
            offsets.shuffle(&mut rng);
            let step = if expected.contains('.') { 0.5 } else { 1.0 };
            return offsets[..count]
                .iter()
                .map(|d| {
                    crate::scenario::answer::canonical_number(&(v + *d as f64 * step).to_string())
                        .unwrap_or_default()
                })
                .collect();
        }
        (1..=count)
            .map(|i| format!("{expected} (variant {i})"))
            .collect()
    }

    /// How the answer `a` (normalized) is written.
    pub fn shown(&self, a: &str) -> String {
        match &self.style.choices {
            Some(_) => a.to_uppercase(),
            None => a.to_owned(),
        }
    }

    /// The text of one sample.
    pub fn write(&self, answer: Option<&str>, rng: &mut ChaCha8Rng) -> String {
        let mut text = String::new();
        if self.style.reasoning {
            let steps = 1 + rng.random_range(0..3);
            let start = rng.random_range(0..REASONING.len());
            for i in 0..steps {
                text.push_str(REASONING[(start + i) % REASONING.len()]);
                text.push('\n');
            }
        }
        text.push_str(&self.answer_line(answer));
        text
    }

    /// The line stating `answer`; for none, the abstention text (nothing
    /// under whole-text extraction, which reads any text as an answer).
    pub fn answer_line(&self, answer: Option<&str>) -> String {
        match answer {
            Some(a) => self.style.format.replace("{answer}", &self.shown(a)),
            None if self.style.reasoning => ABSTAIN_TEXT.to_owned(),
            None => String::new(),
        }
    }
}

fn with_abstention(mut d: Vec<(String, f64)>) -> Vec<(Option<String>, f64)> {
    let total: f64 = d.iter().map(|(_, p)| p).sum();
    let mut out: Vec<(Option<String>, f64)> = d.drain(..).map(|(a, p)| (Some(a), p)).collect();
    out.push((None, (1.0 - total).max(0.0)));
    out
}

/// Split `mass` over `k` answers.
pub fn spread_shares(spread: Spread, k: usize, mass: f64) -> Vec<f64> {
    if k == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = match spread {
        Spread::Uniform => vec![1.0; k],
        Spread::Geometric => (0..k).map(|i| 0.5f64.powi(i as i32)).collect(),
    };
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| mass * w / total).collect()
}
