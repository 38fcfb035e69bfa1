//! The simulated model: a provider whose answer distribution is known.
//!
//! Each task gets a categorical distribution over answers (a `gap` family or
//! explicit probabilities, optionally overridden per dataset item). Sample k of
//! task t for agent a draws from a generator seeded by (scenario seed, agent,
//! model, task id, k), and is written as a short reasoning text that ends in the
//! answer, in a form the scenario's extraction rule reads.

use async_trait::async_trait;
use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::provider::{CallRequest, CallResponse, Completion, Provider, ProviderError, UsageBound};
use crate::scenario::Task;
use crate::scene::Scene;
use crate::seed::{self, Part};
use crate::spec::Spread;

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
    /// Samples per request (the simulated server accepts any `n`).
    pub n_per_request: usize,
}

const REASONING: &[&str] = &[
    "Let me work through this step by step.",
    "First, I restate the problem in my own words.",
    "Then I check each part of the question carefully.",
    "Working through the details gives one candidate result.",
    "I double-check the computation before answering.",
];

const ABSTAIN_TEXT: &str = "I could not reach a confident conclusion on this one.";

impl SimulatedModel {
    /// The answer distribution of `task` (answer → probability; `None` = abstain).
    pub fn distribution_for(&self, task: &Task) -> Vec<(Option<String>, f64)> {
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
                    crate::answer::canonical_number(&(v + *d as f64 * step).to_string())
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

    /// Draw sample `index` of `task` for `agent`; in a graph turn, the
    /// agent's persona writes it for the turn's `scene`.
    pub fn sample(
        &self,
        agent: &str,
        task: &Task,
        index: usize,
        dist: &[(Option<String>, f64)],
        scene: Option<&Scene>,
    ) -> (Completion, f64, bool) {
        let mut rng = seed::rng(
            self.seed,
            &[
                Part::Str("sample"),
                Part::Str(agent),
                Part::Str(&self.name),
                Part::Str(&task.id),
                Part::Int(index as u64),
            ],
        );
        let failed = self.failure_rate > 0.0 && rng.random_bool(self.failure_rate);
        let answer = draw(dist, rng.random());
        let text = match scene {
            Some(scene) => scene.persona.act(scene, self, answer, &mut rng),
            None => self.write(answer, &mut rng),
        };
        let latency = self.latency.map_or(0.0, |(mean, sd)| {
            (mean + sd * seed::standard_normal(&mut rng)).max(0.0)
        });
        let output_tokens = estimate_tokens(&text);
        (
            Completion {
                text,
                output_tokens,
            },
            latency,
            failed,
        )
    }
}

/// Rough token count: four characters a token, at least one.
pub fn estimate_tokens(text: &str) -> u64 {
    tokens_of_len(text.len())
}

/// Rough input tokens of a request: its system prompt and user prompt.
pub fn estimate_input_tokens(req: &CallRequest<'_>) -> u64 {
    estimate_tokens(req.system)
        + estimate_tokens(req.prompt)
        + req
            .history
            .iter()
            .map(|t| estimate_tokens(&t.reply) + estimate_tokens(&t.feedback))
            .sum::<u64>()
}

fn tokens_of_len(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4).max(1)
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

/// The outcome whose cumulative probability first exceeds `u` in [0, 1).
fn draw(dist: &[(Option<String>, f64)], u: f64) -> Option<&str> {
    let total: f64 = dist.iter().map(|(_, p)| p).sum();
    let mut acc = 0.0;
    let target = u * total;
    for (a, p) in dist {
        acc += p;
        if target < acc {
            return a.as_deref();
        }
    }
    dist.last().and_then(|(a, _)| a.as_deref())
}

#[async_trait]
impl Provider for SimulatedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn max_n_per_request(&self) -> usize {
        self.n_per_request
    }

    fn fingerprint(&self) -> String {
        format!(
            "simulated {} seed={} {:?} {:?} failure={}",
            self.name, self.seed, self.distribution, self.style, self.failure_rate
        )
    }

    fn usage_bound(&self, req: &CallRequest<'_>) -> UsageBound {
        // The longest text `write` can produce: three reasoning lines, then
        // the longest answer line or the abstention.
        let mut lines: Vec<usize> = REASONING.iter().map(|l| l.len() + 1).collect();
        lines.sort_unstable_by(|a, b| b.cmp(a));
        let reasoning: usize = if self.style.reasoning {
            lines.iter().take(3).sum()
        } else {
            0
        };
        let answer = self
            .distribution_for(req.task)
            .iter()
            .filter_map(|(a, _)| a.as_ref())
            .map(|a| self.style.format.replace("{answer}", a).len())
            .max()
            .unwrap_or(0)
            .max(ABSTAIN_TEXT.len());
        UsageBound {
            input_tokens: estimate_input_tokens(req),
            output_tokens: Some(tokens_of_len(reasoning + answer) * req.n as u64),
        }
    }

    async fn complete(&self, req: CallRequest<'_>) -> Result<CallResponse, ProviderError> {
        let dist = self.distribution_for(req.task);
        let mut completions = Vec::with_capacity(req.n);
        let mut latency: f64 = 0.0;
        for k in req.first_sample..req.first_sample + req.n {
            let (c, ms, failed) = self.sample(req.agent, req.task, k, &dist, req.scene);
            latency = latency.max(ms);
            if failed {
                return Err(ProviderError {
                    model: self.name.clone(),
                    message: format!("simulated failure (failure_rate {})", self.failure_rate),
                    latency_ms: ms,
                    attempts: Vec::new(),
                    fatal: false,
                });
            }
            completions.push(c);
        }
        let input_tokens = estimate_input_tokens(&req);
        Ok(CallResponse {
            completions,
            input_tokens,
            latency_ms: latency,
            raw: None,
            request: None,
            attempts: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(expected: &str) -> Task {
        Task {
            index: 0,
            id: "t1".into(),
            inputs: Default::default(),
            expected: Some(expected.into()),
            distribution: None,
        }
    }

    fn model(distribution: Distribution) -> SimulatedModel {
        SimulatedModel {
            name: "sim".into(),
            seed: 1,
            distribution,
            style: AnswerStyle {
                format: "So the answer is {answer}.".into(),
                reasoning: true,
                choices: None,
            },
            latency: None,
            failure_rate: 0.0,
            n_per_request: 1,
        }
    }

    #[test]
    fn gap_family_has_the_stated_probabilities() {
        let m = model(Distribution::Gap {
            p_correct: 0.4,
            delta: 0.1,
            wrong: 5,
            spread: Spread::Uniform,
            abstain: 0.02,
        });
        let d = m.distribution_for(&task("42"));
        assert_eq!(d[0], (Some("42".into()), 0.4));
        assert!((d[1].1 - 0.3).abs() < 1e-12);
        let rest: Vec<f64> = d[2..6].iter().map(|x| x.1).collect();
        for p in &rest {
            assert!((p - 0.07).abs() < 1e-12, "{p}");
        }
        assert_eq!(d[6], (None, 0.02));
        let total: f64 = d.iter().map(|x| x.1).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let mut answers: Vec<_> = d.iter().filter_map(|x| x.0.clone()).collect();
        answers.sort();
        answers.dedup();
        assert_eq!(
            answers.len(),
            6,
            "wrong answers are distinct and differ from 42"
        );
    }

    #[test]
    fn empirical_frequencies_match_the_distribution() {
        let m = model(Distribution::Explicit(vec![
            ("7".into(), 0.5),
            ("8".into(), 0.3),
        ]));
        let t = task("7");
        let d = m.distribution_for(&t);
        let rule = crate::answer::AnswerRule {
            extractor: crate::answer::Extractor::LastNumber,
            steps: crate::answer::AnswerRule::default_steps(),
        };
        let n = 20_000;
        let mut counts = [0usize; 3];
        for k in 0..n {
            let (c, _, _) = m.sample("a", &t, k, &d, None);
            match rule.extract(&c.text).map(|a| a.normalized).as_deref() {
                Some("7") => counts[0] += 1,
                Some("8") => counts[1] += 1,
                None => counts[2] += 1,
                other => panic!("unexpected answer {other:?}"),
            }
        }
        // 5 standard errors either side.
        for (count, p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let f = *count as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((f - p).abs() < 5.0 * se, "freq {f} vs p {p}");
        }
    }

    #[test]
    fn usage_bound_covers_every_sample() {
        let m = model(Distribution::Gap {
            p_correct: 0.3,
            delta: 0.05,
            wrong: 8,
            spread: Spread::Uniform,
            abstain: 0.1,
        });
        let t = task("12345");
        let req = CallRequest {
            agent: "a",
            task: &t,
            system: "sys",
            prompt: "What is 12340 + 5?",
            history: &[],
            first_sample: 0,
            n: 1,
            scene: None,
        };
        let bound = m
            .usage_bound(&req)
            .output_tokens
            .expect("simulated output is bounded");
        let d = m.distribution_for(&t);
        let longest = (0..5000)
            .map(|k| m.sample("a", &t, k, &d, None).0.output_tokens)
            .max()
            .unwrap();
        assert!(
            longest <= bound,
            "sample of {longest} tokens over the bound {bound}"
        );
        assert!(
            bound <= longest + 2,
            "bound {bound} is loose against {longest}"
        );
    }
}
