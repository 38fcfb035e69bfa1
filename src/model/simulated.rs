//! The simulated model as a provider: samples drawn from the answer
//! distribution that [`crate::scenario::simulation`] defines.
//!
//! Each task gets a categorical distribution over answers (a `gap` family or
//! explicit probabilities, optionally overridden per dataset item). Sample k of
//! task t for agent a draws from a generator seeded by (scenario seed, agent,
//! model, task id, k), and is written as a short reasoning text that ends in the
//! answer, in a form the scenario's extraction rule reads.

use async_trait::async_trait;
use rand::RngExt;

use crate::model::provider::{
    CallRequest, CallResponse, Completion, Provider, ProviderError, UsageBound,
};
use crate::model::scene::Scene;
use crate::scenario::Task;
use crate::scenario::simulation::{ABSTAIN_TEXT, REASONING, SimulatedModel};
use crate::seed::{self, Part};

impl SimulatedModel {
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
            "simulated {} seed={} {:?} {:?} failure={} judge={:?}",
            self.name, self.seed, self.distribution, self.style, self.failure_rate, self.judge
        )
    }

    fn usage_bound(&self, req: &CallRequest<'_>) -> UsageBound {
        if let (Some(_), Some(view)) = (&self.judge, req.trace) {
            return UsageBound {
                input_tokens: estimate_input_tokens(req),
                output_tokens: Some(tokens_of_len(view.reply_bound())),
            };
        }
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
        if let (Some(judge), Some(view)) = (&self.judge, req.trace) {
            let mut rng = seed::rng(
                self.seed,
                &[
                    Part::Str("judge"),
                    Part::Str(&self.name),
                    Part::Str(&req.task.id),
                    Part::Int(req.first_sample as u64),
                    Part::Int(req.history.len() as u64),
                ],
            );
            let text = judge.reply(view, &mut rng);
            return Ok(CallResponse {
                completions: vec![Completion {
                    output_tokens: estimate_tokens(&text),
                    text,
                }],
                input_tokens: estimate_input_tokens(&req),
                latency_ms: 0.0,
                raw: None,
                request: None,
                attempts: Vec::new(),
            });
        }
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
                    unreachable: false,
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
    use crate::scenario::simulation::{AnswerStyle, Distribution};
    use crate::scenario::spec::Spread;

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
            judge: None,
            explainer: None,
            predictor: None,
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
        let rule = crate::scenario::answer::AnswerRule {
            extractor: crate::scenario::answer::Extractor::LastNumber,
            steps: crate::scenario::answer::AnswerRule::default_steps(),
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
            trace: None,
            explaining: None,
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
