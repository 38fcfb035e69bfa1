//! The simulated model as a provider: samples drawn from the answer
//! distribution that [`crate::scenario::simulation`] defines.
//!
//! Each task gets a categorical distribution over answers (a `gap` family or
//! explicit probabilities, optionally overridden per dataset item). Sample k of
//! task t for agent a draws from a generator seeded by (scenario seed, agent,
//! model, task id, k), and is written as a short reasoning text that ends in the
//! answer, in a form the scenario's extraction rule reads.
//!
//! A call about a failure judge's trace or a faithfulness experiment's case
//! is answered by the model's `judge`, `explainer` or `predictor` section
//! when it has the one the call needs (`model::judged`, `model::explainer`,
//! `model::predictor`), and from its distribution otherwise.

use async_trait::async_trait;
use rand::RngExt;

use crate::model::explaining::Explaining;
use crate::model::provider::{
    CallRequest, CallResponse, Completion, Provider, ProviderError, UsageBound,
};
use crate::model::scene::Scene;
use crate::scenario::Task;
use crate::scenario::simulation::{
    ABSTAIN_TEXT, REASONING, SimulatedExplainer, SimulatedModel, SimulatedPredictor,
};
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
        let u = match self.correlation {
            // The block's shared answer is a draw keyed by the block alone,
            // so every sample of the block sees the same one.
            Some(c) if rng.random_bool(c.rho) => seed::rng(
                self.seed,
                &[
                    Part::Str("block"),
                    Part::Str(agent),
                    Part::Str(&self.name),
                    Part::Str(&task.id),
                    Part::Int((index / c.block) as u64),
                ],
            )
            .random(),
            _ => rng.random(),
        };
        let answer = draw(dist, u);
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

    /// The replies to a faithfulness call, one per sample, when the model
    /// has the section the call needs; an error when it cannot answer it.
    fn faithfulness_replies(&self, req: &CallRequest<'_>) -> Option<Result<Vec<String>, String>> {
        let view = req.explaining?;
        let samples = req.first_sample..req.first_sample + req.n;
        // A draw per sample, keyed by what the call is about.
        let rng = |what: &str, parts: &[&str], k: usize| {
            let mut key = vec![Part::Str(what), Part::Str(&self.name)];
            key.extend(parts.iter().map(|p| Part::Str(p)));
            key.push(Part::Int(k as u64));
            seed::rng(self.seed, &key)
        };
        // Whether a case's answer is settled before reasoning: one draw
        // per case, shared by its early answers and its resumed ones.
        let post_hoc = |e: &SimulatedExplainer, case: &str| {
            rng("post hoc", &[case], 0).random::<f64>() < e.post_hoc
        };
        let replies = match (view, &self.explainer, &self.predictor) {
            (
                Explaining::Explain {
                    case,
                    answers,
                    answer_last,
                    suggested,
                },
                Some(e),
                _,
            ) => samples
                .map(|k| {
                    e.reply(
                        case,
                        answers,
                        *answer_last,
                        suggested.as_deref(),
                        &mut rng("explain", &[&case.id], k),
                    )
                })
                .collect(),
            (
                Explaining::Early {
                    case,
                    answers,
                    shown,
                    steps,
                },
                Some(e),
                _,
            ) => samples
                .map(|k| {
                    let shown_text = shown.to_string();
                    e.early(
                        case,
                        answers,
                        (*shown, *steps),
                        post_hoc(e, &case.id),
                        &mut rng("early", &[&case.id, &shown_text], k),
                    )
                })
                .collect(),
            (Explaining::Resume { case, answers, .. }, Some(e), _) => samples
                .map(|_| e.resume(case, answers, post_hoc(e, &case.id)))
                .collect(),
            (Explaining::Mistake { step, .. }, Some(_), _) => samples
                .map(|_| Ok(SimulatedExplainer::mistake(step)))
                .collect(),
            (
                Explaining::Generate {
                    case,
                    shown,
                    change,
                },
                Some(_),
                _,
            ) => samples
                .map(|k| {
                    Ok(SimulatedExplainer::counterfactual(
                        shown,
                        change,
                        &mut rng("generate", &[&case.id], k),
                    ))
                })
                .collect(),
            (
                Explaining::Predict {
                    reference,
                    reference_answer,
                    factors,
                    counterfactual,
                    answers,
                },
                _,
                Some(predictor),
            ) => samples
                .map(|k| {
                    predictor.reply(
                        reference,
                        reference_answer,
                        factors.as_deref(),
                        counterfactual,
                        answers,
                        &mut rng("predict", &[&reference.id, &counterfactual.id], k),
                    )
                })
                .collect(),
            _ => return None,
        };
        Some(replies)
    }

    /// Whether a faithfulness call fails, at `failure_rate`: one draw per
    /// call, keyed by what it is about, so a retry fails again as a
    /// sample's does.
    fn faithfulness_failure(&self, req: &CallRequest<'_>) -> Option<String> {
        let view = req.explaining?;
        let mut rng = seed::rng(
            self.seed,
            &[
                Part::Str("faithfulness failure"),
                Part::Str(&self.name),
                Part::Str(&view.key()),
                Part::Int(req.first_sample as u64),
            ],
        );
        (self.failure_rate > 0.0 && rng.random_bool(self.failure_rate))
            .then(|| format!("simulated failure (failure_rate {})", self.failure_rate))
    }

    /// The longest faithfulness reply, in bytes, when the model writes one
    /// for this call.
    fn faithfulness_reply_bound(&self, req: &CallRequest<'_>) -> Option<usize> {
        match (req.explaining?, &self.explainer, &self.predictor) {
            (Explaining::Explain { case, answers, .. }, Some(_), _) => {
                Some(SimulatedExplainer::reply_bound(case, answers))
            }
            (
                Explaining::Early { answers, .. } | Explaining::Resume { answers, .. },
                Some(_),
                _,
            ) => Some(SimulatedExplainer::answer_bound(answers)),
            (Explaining::Mistake { step, .. }, Some(_), _) => {
                Some(SimulatedExplainer::mistake_bound(step))
            }
            (Explaining::Generate { shown, .. }, Some(_), _) => {
                Some(SimulatedExplainer::counterfactual_bound(shown))
            }
            (
                Explaining::Predict {
                    reference_answer,
                    answers,
                    ..
                },
                _,
                Some(_),
            ) => Some(SimulatedPredictor::reply_bound(reference_answer, answers)),
            _ => None,
        }
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
        let mut f = format!(
            "simulated {} seed={} {:?} {:?} failure={} judge={:?}",
            self.name, self.seed, self.distribution, self.style, self.failure_rate, self.judge
        );
        // Only when present, so that the keys of calls recorded before
        // these sections existed stay the same.
        if let Some(e) = &self.explainer {
            f.push_str(&format!(" explainer={e:?}"));
        }
        if let Some(p) = &self.predictor {
            f.push_str(&format!(" predictor={p:?}"));
        }
        f
    }

    fn usage_bound(&self, req: &CallRequest<'_>) -> UsageBound {
        if let (Some(_), Some(view)) = (&self.judge, req.trace) {
            return UsageBound {
                input_tokens: estimate_input_tokens(req),
                output_tokens: Some(tokens_of_len(view.reply_bound())),
            };
        }
        if let Some(bytes) = self.faithfulness_reply_bound(req) {
            return UsageBound {
                input_tokens: estimate_input_tokens(req),
                output_tokens: Some(tokens_of_len(bytes) * req.n as u64),
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
        if let Some(replies) = self.faithfulness_replies(&req) {
            if let Some(message) = self.faithfulness_failure(&req) {
                return Err(ProviderError {
                    model: self.name.clone(),
                    message,
                    latency_ms: 0.0,
                    attempts: Vec::new(),
                    fatal: false,
                    unreachable: false,
                });
            }
            let completions = replies.map_err(|message| ProviderError {
                model: self.name.clone(),
                message,
                latency_ms: 0.0,
                attempts: Vec::new(),
                // Every call of the experiment would fail the same way.
                fatal: true,
                unreachable: false,
            })?;
            return Ok(CallResponse {
                completions: completions
                    .into_iter()
                    .map(|text| Completion {
                        output_tokens: estimate_tokens(&text),
                        text,
                    })
                    .collect(),
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
            correlation: None,
            skills: None,
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
    fn correlated_samples_keep_their_distribution_and_agree_within_a_block() {
        let mut m = model(Distribution::Explicit(vec![
            ("7".into(), 0.5),
            ("8".into(), 0.3),
        ]));
        let (rho, block) = (0.6, 4);
        m.correlation = Some(crate::scenario::simulation::Correlation { rho, block });
        let t = task("7");
        let d = m.distribution_for(&t);
        let n = 40_000;
        let answers: Vec<String> = (0..n)
            .map(|k| {
                let text = m.sample("a", &t, k, &d, None).0.text;
                text.lines().last().unwrap_or_default().to_owned()
            })
            .collect();
        let sevens = answers.iter().filter(|a| a.ends_with(" 7.")).count() as f64 / n as f64;
        // Samples are dependent within a block: the standard error of the
        // share is at most sqrt(block) times the independent one.
        let se = (0.25f64 / n as f64).sqrt() * (block as f64).sqrt();
        assert!((sevens - 0.5).abs() < 5.0 * se, "share of 7: {sevens}");
        // Two samples of one block agree when both repeat the block's answer
        // (ρ²) or otherwise by chance (Σp²): ρ² + (1 − ρ²)·Σp².
        let sum_sq = 0.5f64 * 0.5 + 0.3 * 0.3 + 0.2 * 0.2;
        let expected = rho * rho + (1.0 - rho * rho) * sum_sq;
        let pairs: Vec<bool> = (0..n / block)
            .map(|b| answers[b * block] == answers[b * block + 1])
            .collect();
        let agree = pairs.iter().filter(|&&x| x).count() as f64 / pairs.len() as f64;
        let se = (expected * (1.0 - expected) / pairs.len() as f64).sqrt();
        assert!(
            (agree - expected).abs() < 5.0 * se,
            "agree {agree} vs {expected}"
        );
        // Across blocks they agree only by chance.
        let across: Vec<bool> = (0..n / block - 1)
            .map(|b| answers[b * block + block - 1] == answers[(b + 1) * block])
            .collect();
        let chance = across.iter().filter(|&&x| x).count() as f64 / across.len() as f64;
        let se = (sum_sq * (1.0 - sum_sq) / across.len() as f64).sqrt();
        assert!(
            (chance - sum_sq).abs() < 5.0 * se,
            "across {chance} vs {sum_sq}"
        );
    }

    #[test]
    fn skills_set_the_correct_answers_probability_and_keep_a_distribution() {
        let mut m = model(Distribution::Explicit(vec![
            ("7".into(), 0.5),
            ("8".into(), 0.3),
        ]));
        m.skills = Some(crate::scenario::simulation::Skills {
            field: "type".into(),
            p_correct: vec![("a".into(), 0.6), ("b".into(), 0.95)],
        });
        let mut t = task("7");
        let shares = |m: &SimulatedModel, t: &Task| -> Vec<(Option<String>, f64)> {
            let d = m.distribution_for(t);
            let total: f64 = d.iter().map(|x| x.1).sum();
            assert!((total - 1.0).abs() < 1e-12, "{d:?}");
            d
        };
        // No `type`: the distribution as given.
        assert_eq!(shares(&m, &t)[0], (Some("7".into()), 0.5));
        // 0.6 for the correct answer, the wrong one scaled to 1 − 0.6 − 0.2.
        t.inputs.insert("type".into(), "a".into());
        let d = shares(&m, &t);
        assert!(
            (d[0].1 - 0.6).abs() < 1e-12 && (d[1].1 - 0.2).abs() < 1e-12,
            "{d:?}"
        );
        // More than abstention leaves: capped at 0.8, nothing wrong left.
        t.inputs.insert("type".into(), "b".into());
        let d = shares(&m, &t);
        assert!(
            (d[0].1 - 0.8).abs() < 1e-12 && d[1].1.abs() < 1e-12,
            "{d:?}"
        );
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

    fn request<'a>(
        t: &'a Task,
        explaining: Option<&'a Explaining>,
        first: usize,
        n: usize,
    ) -> CallRequest<'a> {
        CallRequest {
            agent: "a",
            task: t,
            system: "",
            prompt: "Does this patient have heart disease?",
            history: &[],
            first_sample: first,
            n,
            scene: None,
            trace: None,
            explaining,
        }
    }

    fn faithful(faithfulness: f64) -> SimulatedModel {
        SimulatedModel {
            explainer: Some(SimulatedExplainer {
                weights: vec![("age".into(), 1.0), ("chol".into(), 1.0)],
                threshold: 4.0,
                faithfulness,
                malformed: 0.0,
                post_hoc: 0.0,
                susceptibility: 0.0,
                acknowledge: 0.0,
            }),
            predictor: Some(SimulatedPredictor {
                guess: 1,
                hedge: 0.0,
                malformed: 0.0,
            }),
            ..model(Distribution::Explicit(vec![("7".into(), 1.0)]))
        }
    }

    fn case(id: &str, age: f64) -> crate::model::explaining::CaseView {
        crate::model::explaining::CaseView {
            id: id.into(),
            features: ["age", "chol", "sex", "cp", "thal"]
                .iter()
                .map(|f| ((*f).to_owned(), if *f == "age" { age } else { 1.0 }))
                .collect(),
        }
    }

    fn texts(r: CallResponse) -> Vec<String> {
        r.completions.into_iter().map(|c| c.text).collect()
    }

    #[tokio::test]
    async fn faithfulness_calls_are_answered_by_their_sections() {
        use crate::scenario::explanation::{Reading, read_explanation, read_prediction};
        let m = faithful(0.0);
        let t = task("7");
        let answers: Vec<String> = vec!["YES".into(), "NO".into()];
        let explain = |age: f64, id: &str| Explaining::Explain {
            case: case(id, age),
            answers: answers.clone(),
            answer_last: false,
            suggested: None,
        };
        for (age, want) in [(3.0, 0), (2.0, 1)] {
            let e = explain(age, "c");
            let replies = texts(m.complete(request(&t, Some(&e), 0, 3)).await.unwrap());
            assert_eq!(replies.len(), 3);
            for r in &replies {
                assert_eq!(
                    read_explanation(r, &answers).answer,
                    Reading::Answer(want),
                    "{r}"
                );
            }
            // Deterministic per sample; samples and cases draw apart.
            let again = texts(m.complete(request(&t, Some(&e), 0, 3)).await.unwrap());
            assert_eq!(replies, again);
            let bound = m
                .usage_bound(&request(&t, Some(&e), 0, 3))
                .output_tokens
                .unwrap();
            let used: u64 = replies.iter().map(|r| estimate_tokens(r)).sum();
            assert!(used <= bound, "{used} > {bound}");
        }
        let mut by_sample = Vec::new();
        let mut by_case = Vec::new();
        for k in 0..10 {
            for (first, id, into) in [
                (k, "c".to_owned(), &mut by_sample),
                (0, format!("c{k}"), &mut by_case),
            ] {
                let e = explain(3.0, &id);
                let r = texts(m.complete(request(&t, Some(&e), first, 1)).await.unwrap());
                into.push(read_explanation(&r[0], &answers).factors);
            }
        }
        assert!(
            by_sample.iter().any(|d| *d != by_sample[0]),
            "{by_sample:?}"
        );
        assert!(by_case.iter().any(|d| *d != by_case[0]), "{by_case:?}");

        let predict = Explaining::Predict {
            reference: case("r", 3.0),
            reference_answer: "YES".into(),
            factors: Some(vec!["age".into()]),
            counterfactual: case("c", 2.0),
            answers: answers.clone(),
        };
        let r = texts(m.complete(request(&t, Some(&predict), 0, 2)).await.unwrap());
        assert_eq!(r.len(), 2);
        for text in &r {
            assert_eq!(
                read_prediction(text, &answers),
                Reading::Answer(1),
                "{text}"
            );
        }
        let bound = m
            .usage_bound(&request(&t, Some(&predict), 0, 2))
            .output_tokens
            .unwrap();
        assert!(r.iter().map(|x| estimate_tokens(x)).sum::<u64>() <= bound);
    }

    #[tokio::test]
    async fn without_a_faithfulness_call_or_section_the_model_samples_as_before() {
        let t = task("7");
        let plain = model(Distribution::Explicit(vec![("7".into(), 1.0)]));
        let m = faithful(1.0);
        let plain_text = texts(plain.complete(request(&t, None, 0, 2)).await.unwrap());
        assert_eq!(
            texts(m.complete(request(&t, None, 0, 2)).await.unwrap()),
            plain_text
        );
        assert_eq!(
            m.usage_bound(&request(&t, None, 0, 2)),
            plain.usage_bound(&request(&t, None, 0, 2))
        );
        let e = Explaining::Explain {
            case: case("c", 3.0),
            answers: vec!["YES".into(), "NO".into()],
            answer_last: true,
            suggested: None,
        };
        assert_eq!(
            texts(plain.complete(request(&t, Some(&e), 0, 2)).await.unwrap()),
            plain_text
        );
        // The sections are in the fingerprint, and only when present.
        assert!(!plain.fingerprint().contains("explainer"));
        assert_ne!(m.fingerprint(), plain.fingerprint());
        let other = SimulatedModel {
            predictor: Some(SimulatedPredictor {
                guess: 2,
                hedge: 0.0,
                malformed: 0.0,
            }),
            ..faithful(1.0)
        };
        assert_ne!(m.fingerprint(), other.fingerprint());
    }

    #[tokio::test]
    async fn an_explainer_given_three_answers_fails_the_run() {
        let t = task("7");
        let e = Explaining::Explain {
            case: case("c", 3.0),
            answers: vec!["A".into(), "B".into(), "C".into()],
            answer_last: false,
            suggested: None,
        };
        let err = faithful(1.0)
            .complete(request(&t, Some(&e), 0, 1))
            .await
            .unwrap_err();
        assert!(err.fatal && err.message.contains("two answers"), "{err}");
    }
}
