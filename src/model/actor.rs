//! How a simulated agent acts out its [`Persona`] in a graph. Given a
//! [`Scene`] and the answer the simulated model drew for the turn,
//! [`Persona::act`] writes the message its role calls for, or the failure it
//! was picked to act out.
//!
//! Only the simulated provider calls `act`; the scenario's agents carry
//! their persona (`agents.NAME.simulate`), and the graph runner puts it in
//! each turn's scene. Every text ends in the scenario's answer line when it
//! states an answer, so answers extract as for any sample; prose is left out
//! under whole-text extraction, where it would be read as the answer.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;

use crate::model::scene::{Scene, SceneStep, Seen};
use crate::scenario::failure::FailureMode;
use crate::scenario::persona::{Persona, Role};
use crate::scenario::simulation::SimulatedModel;

/// Phrases that mark a failure in a message, for readers (and tests) of
/// transcripts.
pub const RESET: &str = "Let us start over from the beginning.";
pub const WITHHELD: &str = "I have worked out a result, but I will keep it to myself for now.";
pub const STANDS: &str = "My answer stands.";
pub const CONTINUE: &str =
    "The answer looks right, but let us keep going and go over it once more.";
pub const STOP_NOW: &str = "That settles it; we can stop here.";
pub const SOLVE_MYSELF: &str = "I will solve this myself instead.";
pub const RULE_MYSELF: &str = "Rather than doing my part, I will rule on this myself.";
pub const UNCHECKED: &str = "I go with the last answer.";

impl Persona {
    /// The message for `scene`, given the answer `drawn` for this turn
    /// (`None`: the model abstains) and the turn's generator.
    pub fn act(
        &self,
        scene: &Scene,
        model: &SimulatedModel,
        drawn: Option<&str>,
        rng: &mut ChaCha8Rng,
    ) -> String {
        match &scene.step {
            SceneStep::Choose { options, last } => {
                let mut open: Vec<&String> = options
                    .iter()
                    .filter(|o| Some(*o) != last.as_ref())
                    .collect();
                if open.is_empty() {
                    open = options.iter().collect();
                }
                match open.len() {
                    0 => String::new(),
                    n => format!("Next: {}", open[rng.random_range(0..n)]),
                }
            }
            SceneStep::Summarize => {
                let parts: Vec<String> = scene
                    .seen
                    .iter()
                    .map(|m| {
                        let who = m.sender.as_deref().unwrap_or("a join");
                        match &m.answer {
                            Some(a) => format!("{who} answered {}", model.shown(a)),
                            None => format!("{who} gave no answer"),
                        }
                    })
                    .collect();
                format!("Summary: {}.", parts.join("; "))
            }
            SceneStep::Speak => match scene.failure {
                Some(mode) => self.fail(mode, scene, model, drawn, rng),
                None => self.speak(scene, model, drawn, rng),
            },
        }
    }

    fn speak(
        &self,
        scene: &Scene,
        model: &SimulatedModel,
        drawn: Option<&str>,
        rng: &mut ChaCha8Rng,
    ) -> String {
        let other = scene.last_other();
        match self.role {
            Role::Solver | Role::Debater => {
                let adopted = match other {
                    Some(o) if self.agree > 0.0 && rng.random_bool(self.agree) => Some(o),
                    _ => None,
                };
                let (mut text, agreed) = match (adopted, other) {
                    (Some(o), _) => (
                        prose(model, &format!("{} has convinced me.", name(o)))
                            + &model.answer_line(o.answer.as_deref()),
                        true,
                    ),
                    // Outside chats and debates, solvers work alone.
                    (None, Some(o))
                        if o.answer.as_deref() == drawn
                            && (scene.stop.is_some() || self.role == Role::Debater) =>
                    {
                        (
                            prose(model, &format!("I agree with {}.", name(o)))
                                + &model.write(drawn, rng),
                            true,
                        )
                    }
                    (None, Some(o)) if self.role == Role::Debater => (
                        prose(model, &format!("I disagree with {}.", name(o)))
                            + &model.write(drawn, rng),
                        false,
                    ),
                    _ => (model.write(drawn, rng), false),
                };
                // Agreement is consensus: in a chat that ends on a mention,
                // the one who agrees ends it.
                if let (true, Some(stop)) = (agreed, &scene.stop) {
                    text.push('\n');
                    text.push_str(stop);
                }
                text
            }
            Role::Planner => prose_only(
                model,
                "Plan: restate the question, work through it step by step, then check the result before answering.",
            ),
            Role::Reviewer => match other {
                None => format!("{}: there is no answer to review yet.", self.revise),
                Some(o) => {
                    let p = if o.correct == Some(true) {
                        self.approve_correct
                    } else {
                        self.approve_wrong
                    };
                    let verdict = if rng.random_bool(p) {
                        format!(
                            "{}. I checked the answer of {} and it holds.",
                            self.approve,
                            name(o)
                        )
                    } else {
                        format!(
                            "{}: the answer of {} does not hold up; please rework it.",
                            self.revise,
                            name(o)
                        )
                    };
                    verdict + "\n" + &model.answer_line(o.answer.as_deref())
                }
            },
            Role::Judge => match majority(&scene.seen, &scene.speaker) {
                Some(m) => {
                    prose(
                        model,
                        &format!("Having weighed the arguments, I side with {}.", name(m)),
                    ) + &model.answer_line(m.answer.as_deref())
                }
                None => model.write(drawn, rng),
            },
        }
    }

    fn fail(
        &self,
        mode: FailureMode,
        scene: &Scene,
        model: &SimulatedModel,
        drawn: Option<&str>,
        rng: &mut ChaCha8Rng,
    ) -> String {
        use FailureMode::*;
        let other = scene.last_other().and_then(|o| o.answer.as_deref());
        match mode {
            DisobeyRole if self.role.verifies() => {
                prose(model, SOLVE_MYSELF) + &model.write(drawn, rng)
            }
            DisobeyRole => {
                let pick = majority(&scene.seen, &scene.speaker).and_then(|m| m.answer.as_deref());
                prose(model, RULE_MYSELF) + &model.answer_line(pick.or(drawn))
            }
            StepRepetition => scene
                .own_last
                .as_ref()
                .map_or_else(String::new, |m| m.text.clone()),
            UnawareOfTermination => prose(model, CONTINUE) + &model.answer_line(other.or(drawn)),
            ConversationReset => prose(model, RESET) + &model.write(drawn, rng),
            InformationWithholding if self.role == Role::Reviewer => {
                format!("{}.", self.revise)
            }
            InformationWithholding => prose_only(model, WITHHELD),
            IgnoredInput if self.role == Role::Reviewer => {
                let word = if rng.random_bool(0.5) {
                    &self.approve
                } else {
                    &self.revise
                };
                format!("{word}.\n") + &model.answer_line(drawn)
            }
            IgnoredInput => {
                let own = scene.own_last.as_ref().and_then(|m| m.answer.as_deref());
                prose(model, STANDS) + &model.answer_line(own.or(drawn))
            }
            PrematureTermination if self.role == Role::Reviewer => {
                format!("{}. {STOP_NOW}\n", self.approve) + &model.answer_line(other.or(drawn))
            }
            PrematureTermination => {
                let stop = scene.stop_signal().unwrap_or_default();
                prose(model, STOP_NOW) + &model.answer_line(drawn) + "\n" + stop
            }
            NoVerification if self.role == Role::Reviewer => {
                format!("{}.\n", self.approve) + &model.answer_line(other.or(drawn))
            }
            NoVerification => {
                prose(model, UNCHECKED)
                    + &model.answer_line(
                        scene
                            .seen
                            .last()
                            .and_then(|m| m.answer.as_deref())
                            .or(drawn),
                    )
            }
            // Not injectable: validation refuses them.
            _ => model.write(drawn, rng),
        }
    }
}

/// `sentence` on a line of its own, unless answers are whole texts (where
/// any prose would be read as the answer).
fn prose(model: &SimulatedModel, sentence: &str) -> String {
    if model.style.reasoning {
        format!("{sentence}\n")
    } else {
        String::new()
    }
}

/// A message that is only prose.
fn prose_only(model: &SimulatedModel, sentence: &str) -> String {
    prose(model, sentence).trim_end().to_owned()
}

fn name(m: &Seen) -> &str {
    m.sender.as_deref().unwrap_or("the joined branches")
}

/// The latest message giving the most common answer among the others'
/// messages in `seen`.
fn majority<'s>(seen: &'s [Seen], speaker: &str) -> Option<&'s Seen> {
    let others: Vec<&Seen> = seen
        .iter()
        .filter(|m| m.answer.is_some() && m.sender.as_deref() != Some(speaker))
        .collect();
    let count = |a: &Option<String>| others.iter().filter(|m| &m.answer == a).count();
    others
        .iter()
        .enumerate()
        .max_by_key(|(i, m)| (count(&m.answer), *i))
        .map(|(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::SeedableRng;

    use super::*;
    use crate::scenario::simulation::{AnswerStyle, Distribution};

    fn model(reasoning: bool) -> SimulatedModel {
        SimulatedModel {
            name: "sim".into(),
            seed: 1,
            distribution: Distribution::Explicit(vec![("7".into(), 1.0)]),
            style: AnswerStyle {
                format: if reasoning {
                    "So the answer is {answer}.".into()
                } else {
                    "{answer}".into()
                },
                reasoning,
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

    fn seen(sender: &str, answer: Option<&str>, correct: Option<bool>) -> Seen {
        Seen {
            sender: Some(sender.into()),
            text: format!("{sender} says {answer:?}"),
            answer: answer.map(str::to_owned),
            correct,
        }
    }

    fn scene(persona: Persona, seen: Vec<Seen>) -> Scene {
        Scene {
            speaker: "me".into(),
            persona: Arc::new(persona),
            step: SceneStep::Speak,
            seen,
            own_last: None,
            stop: None,
            failure: None,
        }
    }

    fn reviewer() -> Persona {
        Persona {
            role: Role::Reviewer,
            approve_correct: 0.8,
            approve_wrong: 0.3,
            ..Persona::default()
        }
    }

    /// Share of `n` messages for `scene` that contain `text`.
    fn share(scene: &Scene, text: &str, n: u64) -> f64 {
        let m = model(true);
        let hits = (0..n)
            .filter(|&k| {
                let mut rng = ChaCha8Rng::seed_from_u64(k);
                scene
                    .persona
                    .act(scene, &m, Some("5"), &mut rng)
                    .contains(text)
            })
            .count();
        hits as f64 / n as f64
    }

    #[test]
    fn a_reviewer_approves_at_its_rate_for_right_and_wrong_answers() {
        let n = 20_000;
        for (correct, p) in [(true, 0.8), (false, 0.3)] {
            let s = scene(reviewer(), vec![seen("coder", Some("9"), Some(correct))]);
            let f = share(&s, "APPROVED.", n);
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((f - p).abs() < 5.0 * se, "correct={correct}: {f} vs {p}");
            // Whatever the verdict, the reviewed answer is restated.
            assert_eq!(share(&s, "So the answer is 9.", 200), 1.0);
        }
        let nothing = scene(reviewer(), vec![]);
        assert_eq!(share(&nothing, "REVISE: there is no answer", 50), 1.0);
    }

    #[test]
    fn a_judge_sides_with_the_most_common_answer_it_sees() {
        let s = scene(
            Persona {
                role: Role::Judge,
                ..Persona::default()
            },
            vec![
                seen("pro", Some("3"), None),
                seen("con", Some("4"), None),
                seen("pro", Some("4"), None),
                seen("con", Some("3"), None),
                seen("pro", Some("2"), None),
            ],
        );
        // A tie between 3 and 4: the later of them.
        assert_eq!(share(&s, "I side with con.\nSo the answer is 3.", 20), 1.0);
    }

    #[test]
    fn a_chooser_never_repeats_the_last_speaker_while_others_remain() {
        let m = model(true);
        let mut s = scene(Persona::default(), vec![]);
        s.step = SceneStep::Choose {
            options: vec!["a".into(), "b".into(), "c".into()],
            last: Some("b".into()),
        };
        let picks: std::collections::BTreeSet<String> = (0..200)
            .map(|k| {
                s.persona
                    .act(&s, &m, None, &mut ChaCha8Rng::seed_from_u64(k))
            })
            .collect();
        assert_eq!(
            picks.into_iter().collect::<Vec<_>>(),
            ["Next: a", "Next: c"]
        );
    }

    #[test]
    fn chat_members_end_the_chat_when_they_agree() {
        let mut s = scene(Persona::default(), vec![seen("other", Some("5"), None)]);
        s.stop = Some("TERMINATE".into());
        // The drawn answer is 5: agreement, so the stop mention.
        assert_eq!(share(&s, "I agree with other.", 20), 1.0);
        assert_eq!(share(&s, "\nTERMINATE", 20), 1.0);
        s.seen = vec![seen("other", Some("6"), None)];
        assert_eq!(share(&s, "TERMINATE", 20), 0.0);
    }

    /// Each injectable mode acted out, with the mark it leaves.
    #[test]
    fn each_injected_failure_leaves_its_mark() {
        use FailureMode::*;
        let coder = seen("coder", Some("9"), Some(false));
        let own = Seen {
            sender: Some("me".into()),
            text: "my earlier words\nSo the answer is 8.".into(),
            answer: Some("8".into()),
            correct: Some(false),
        };
        let cases: [(Persona, FailureMode, &str); 12] = [
            (Persona::default(), DisobeyRole, RULE_MYSELF),
            (reviewer(), DisobeyRole, SOLVE_MYSELF),
            (
                Persona::default(),
                StepRepetition,
                "my earlier words\nSo the answer is 8.",
            ),
            (reviewer(), UnawareOfTermination, CONTINUE),
            (Persona::default(), ConversationReset, RESET),
            (Persona::default(), InformationWithholding, WITHHELD),
            (reviewer(), InformationWithholding, "REVISE."),
            (
                Persona::default(),
                IgnoredInput,
                "My answer stands.\nSo the answer is 8.",
            ),
            (
                reviewer(),
                PrematureTermination,
                "APPROVED. That settles it",
            ),
            (Persona::default(), PrematureTermination, "TERMINATE"),
            (reviewer(), NoVerification, "APPROVED.\nSo the answer is 9."),
            (
                Persona {
                    role: Role::Judge,
                    ..Persona::default()
                },
                NoVerification,
                UNCHECKED,
            ),
        ];
        for (persona, mode, mark) in cases {
            let mut s = scene(persona, vec![own.clone(), coder.clone()]);
            s.own_last = Some(own.clone());
            s.stop = Some("TERMINATE".into());
            assert!(s.eligible(mode), "{mode:?}");
            s.failure = Some(mode);
            assert_eq!(share(&s, mark, 20), 1.0, "{mode:?} leaves {mark:?}");
        }
        // What each needs to act on.
        let bare = scene(Persona::default(), vec![]);
        for mode in [
            StepRepetition,
            ConversationReset,
            IgnoredInput,
            PrematureTermination,
        ] {
            assert!(!bare.eligible(mode), "{mode:?}");
        }
        assert!(!bare.eligible(NoVerification));
        assert!(scene(reviewer(), vec![]).eligible(PrematureTermination));
    }

    #[test]
    fn failure_rates_split_the_unit_interval() {
        let p = Persona {
            failures: vec![
                (FailureMode::DisobeyRole, 0.2),
                (FailureMode::StepRepetition, 0.3),
            ],
            ..Persona::default()
        };
        let mut s = scene(p, vec![seen("x", Some("1"), None)]);
        let pick = |s: &Scene, u: f64| s.pick_failure(u);
        assert_eq!(pick(&s, 0.1), Some(FailureMode::DisobeyRole));
        assert_eq!(pick(&s, 0.3), None, "no own message to repeat");
        s.own_last = Some(seen("me", Some("1"), None));
        assert_eq!(pick(&s, 0.3), Some(FailureMode::StepRepetition));
        assert_eq!(pick(&s, 0.5), None);
        s.step = SceneStep::Summarize;
        assert_eq!(pick(&s, 0.1), None, "only messages fail");
    }

    #[test]
    fn whole_text_answers_get_no_prose() {
        let m = model(false);
        let s = scene(
            Persona {
                role: Role::Judge,
                ..Persona::default()
            },
            vec![seen("pro", Some("3"), None)],
        );
        let text = s
            .persona
            .act(&s, &m, Some("5"), &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(text, "3");
    }
}
