//! The simulated predictor of a faithfulness experiment: it takes an
//! explanation at its word. It watches the features the explanation named
//! (without one, `guess` of the reference's features drawn at random) and
//! predicts the reference answer when a counterfactual keeps all of them,
//! another answer when it changes one. So its accuracy with explanations
//! rises above its accuracy without exactly as far as the explanations
//! name the features the explained model's answers depend on.
//!
//! [`SimulatedPredictor`] (what it is) lives in `scenario::simulation`; the
//! cases come from the call's [`Explaining`](crate::model::explaining)
//! view; `model::simulated` serves the reply, written in the format
//! [`crate::scenario::explanation::read_prediction`] reads.

use rand::seq::index;
use rand::{Rng, RngExt};

use crate::model::explaining::CaseView;
use crate::scenario::simulation::SimulatedPredictor;

/// What follows the prediction, by why it was made.
const KEPT: &str = "The new case keeps every feature I expect the answer to depend on.";
const CHANGED: &str = "The new case changes a feature I expect the answer to depend on.";
const HEDGED: &str = "I cannot tell which.";
/// A reply with no prediction: the section is there, empty.
const NO_PREDICTION: &str = "I cannot tell what the model will answer.\nPREDICTION:";
/// What starts a prediction, and joins a hedge's two answers.
const PREFIX: &str = "PREDICTION: ";
const OR: &str = " or ";

/// Whether two names are the same feature's: a factor a model wrote may
/// differ from the feature's name in case or surrounding spaces.
fn same(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn value(case: &CaseView, feature: &str) -> Option<f64> {
    case.features
        .iter()
        .find(|(name, _)| same(name, feature))
        .map(|(_, v)| *v)
}

impl SimulatedPredictor {
    /// The features it watches: the explanation's factors, or without an
    /// explanation `guess` of the reference's features (all of them when it
    /// has fewer) drawn without replacement.
    pub fn watched(
        &self,
        reference: &CaseView,
        factors: Option<&[String]>,
        rng: &mut impl Rng,
    ) -> Vec<String> {
        match factors {
            Some(f) => f.to_vec(),
            None => {
                let n = reference.features.len();
                index::sample(rng, n, self.guess.min(n))
                    .into_iter()
                    .map(|i| reference.features[i].0.clone())
                    .collect()
            }
        }
    }

    /// Whether `counterfactual` keeps every watched feature as the
    /// reference has it (a factor neither case has is kept).
    pub fn kept(watched: &[String], reference: &CaseView, counterfactual: &CaseView) -> bool {
        watched
            .iter()
            .all(|f| value(reference, f) == value(counterfactual, f))
    }

    /// Its reply: `PREDICTION: X` and why — the reference answer when the
    /// counterfactual keeps the watched features, else another answer
    /// (drawn uniformly among the others when there are more than two). At
    /// rate `hedge` it names that answer and another; at rate `malformed`,
    /// none. Errs with fewer than two answers, which leave nothing to
    /// predict.
    pub fn reply(
        &self,
        reference: &CaseView,
        reference_answer: &str,
        factors: Option<&[String]>,
        counterfactual: &CaseView,
        answers: &[String],
        rng: &mut impl Rng,
    ) -> Result<String, String> {
        if answers.len() < 2 {
            return Err(format!(
                "a simulated predictor needs two or more answers to choose from, and the case pair `{}`/`{}` has {}",
                reference.id,
                counterfactual.id,
                answers.len()
            ));
        }
        // Every draw is made whatever the rates and the outcome, so that
        // changing one rate changes no other reply.
        let form: f64 = rng.random();
        let watched = self.watched(reference, factors, rng);
        let pick_other: f64 = rng.random();
        let pick_hedge: f64 = rng.random();
        let kept = Self::kept(&watched, reference, counterfactual);
        let predicted = if kept {
            answers
                .iter()
                .find(|a| same(a, reference_answer))
                .map_or(reference_answer, String::as_str)
        } else {
            uniform(answers, reference_answer, pick_other)
        };
        Ok(if form < self.malformed {
            NO_PREDICTION.to_owned()
        } else if form < self.malformed + self.hedge {
            let partner = uniform(answers, predicted, pick_hedge);
            format!("{PREFIX}{predicted}{OR}{partner}\n{HEDGED}")
        } else {
            format!("{PREFIX}{predicted}\n{}", if kept { KEPT } else { CHANGED })
        })
    }

    /// The longest reply it can write, in bytes: a hedge between the two
    /// longest answers, or one answer and the longer reason (the reference
    /// answer counts, as it is written as given when the set lacks it).
    pub fn reply_bound(reference_answer: &str, answers: &[String]) -> usize {
        let mut lengths: Vec<usize> = answers.iter().map(String::len).collect();
        if !answers.iter().any(|a| same(a, reference_answer)) {
            lengths.push(reference_answer.len());
        }
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        let longest = |i: usize| lengths.get(i).copied().unwrap_or(0);
        let hedge = PREFIX.len() + longest(0) + OR.len() + longest(1) + 1 + HEDGED.len();
        let single = PREFIX.len() + longest(0) + 1 + KEPT.len().max(CHANGED.len());
        hedge.max(single).max(NO_PREDICTION.len())
    }
}

/// An answer other than `not` (ignoring case), chosen by `u` in [0, 1)
/// uniformly among them; `not` itself if every answer is it.
fn uniform<'a>(answers: &'a [String], not: &'a str, u: f64) -> &'a str {
    let others: Vec<&str> = answers
        .iter()
        .map(String::as_str)
        .filter(|a| !same(a, not))
        .collect();
    if others.is_empty() {
        return not;
    }
    others[((u * others.len() as f64) as usize).min(others.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::explanation::{Reading, read_prediction};
    use crate::seed;

    fn case(id: &str, values: [f64; 4]) -> CaseView {
        CaseView {
            id: id.into(),
            features: ["age", "chol", "sex", "cp"]
                .iter()
                .zip(values)
                .map(|(f, v)| ((*f).to_owned(), v))
                .collect(),
        }
    }

    fn answers() -> Vec<String> {
        vec!["YES".into(), "NO".into()]
    }

    fn predictor(guess: usize, hedge: f64, malformed: f64) -> SimulatedPredictor {
        SimulatedPredictor {
            guess,
            hedge,
            malformed,
        }
    }

    fn rng(i: usize) -> rand::rngs::ChaCha8Rng {
        seed::rng(5, &["test".into(), i.into()])
    }

    fn predict(
        p: &SimulatedPredictor,
        factors: Option<&[String]>,
        cf: &CaseView,
        i: usize,
    ) -> Reading {
        let reference = case("r", [1.0, 2.0, 0.0, 3.0]);
        let text = p
            .reply(&reference, "YES", factors, cf, &answers(), &mut rng(i))
            .unwrap();
        read_prediction(&text, &answers())
    }

    #[test]
    fn it_predicts_a_change_exactly_when_a_named_factor_changes() {
        let p = predictor(2, 0.0, 0.0);
        let named: Vec<String> = vec!["Age ".into(), "chol".into()];
        let keeps = case("k", [1.0, 2.0, 1.0, 0.0]);
        let changes = case("c", [1.0, 3.0, 0.0, 3.0]);
        assert_eq!(predict(&p, Some(&named), &keeps, 0), Reading::Answer(0));
        assert_eq!(predict(&p, Some(&named), &changes, 0), Reading::Answer(1));
        // A factor neither case has constrains nothing.
        let unknown: Vec<String> = vec!["weather".into()];
        assert_eq!(predict(&p, Some(&unknown), &changes, 0), Reading::Answer(0));
        // With more answers, a change is any other, each equally often.
        let three: Vec<String> = vec!["A".into(), "B".into(), "C".into()];
        let reference = case("r", [1.0, 2.0, 0.0, 3.0]);
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let text = p
                .reply(&reference, "B", Some(&named), &changes, &three, &mut rng(i))
                .unwrap();
            match read_prediction(&text, &three) {
                Reading::Answer(k) => counts[k] += 1,
                other => panic!("{other:?}: {text}"),
            }
        }
        assert_eq!(counts[1], 0);
        let se = (0.25f64 / 3000.0).sqrt();
        assert!(
            (counts[0] as f64 / 3000.0 - 0.5).abs() < 4.0 * se,
            "{counts:?}"
        );
    }

    #[test]
    fn without_an_explanation_it_guesses_features_and_repeats_differ() {
        let p = predictor(2, 0.0, 0.0);
        let reference = case("r", [1.0, 2.0, 0.0, 3.0]);
        // Counterfactual changing `cp` only: the reference answer unless the
        // guess holds `cp`, which 2 of 4 features do half the time.
        let cf = case("c", [1.0, 2.0, 0.0, 9.0]);
        let n = 4000;
        let mut changed = 0;
        for i in 0..n {
            let w = p.watched(&reference, None, &mut rng(i));
            assert_eq!(w.len(), 2);
            assert_ne!(w[0], w[1]);
            if predict(&p, None, &cf, i) == Reading::Answer(1) {
                changed += 1;
            }
        }
        let se = (0.25f64 / n as f64).sqrt();
        assert!(
            (changed as f64 / n as f64 - 0.5).abs() < 4.0 * se,
            "{changed}"
        );
        // More guesses than features watch them all.
        assert_eq!(
            predictor(9, 0.0, 0.0)
                .watched(&reference, None, &mut rng(0))
                .len(),
            4
        );
        // Deterministic per generator; different for another (a repeat).
        let draws = |i: usize| {
            (0..8)
                .map(|k| p.watched(&reference, None, &mut rng(i * 8 + k)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
    }

    #[test]
    fn hedges_and_malformed_replies_come_at_their_rates() {
        let p = predictor(2, 0.2, 0.1);
        let cf = case("c", [1.0, 3.0, 0.0, 3.0]);
        let n = 5000;
        let mut counts = [0usize; 3];
        for i in 0..n {
            match predict(&p, None, &cf, i) {
                Reading::Answer(_) => counts[0] += 1,
                Reading::Hedge(v) => {
                    assert_eq!(v, vec![0, 1]);
                    counts[1] += 1
                }
                Reading::Unparsed => counts[2] += 1,
            }
        }
        for (count, rate) in counts.iter().zip([0.7, 0.2, 0.1]) {
            let se = (rate * (1.0 - rate) / n as f64).sqrt();
            let got = *count as f64 / n as f64;
            assert!((got - rate).abs() < 4.0 * se, "{counts:?}");
        }
    }

    #[test]
    fn the_bound_covers_every_reply() {
        let p = predictor(1, 0.3, 0.3);
        let answers: Vec<String> = vec![
            "heart disease".into(),
            "no heart disease".into(),
            "x".into(),
        ];
        let reference = case("r", [1.0, 2.0, 0.0, 3.0]);
        let cf = case("c", [1.0, 3.0, 0.0, 3.0]);
        let bound = SimulatedPredictor::reply_bound("no heart disease", &answers);
        let longest = (0..500)
            .map(|i| {
                p.reply(
                    &reference,
                    "no heart disease",
                    None,
                    &cf,
                    &answers,
                    &mut rng(i),
                )
                .unwrap()
                .len()
            })
            .max()
            .unwrap();
        assert!(
            longest <= bound && bound <= longest + 2,
            "{longest} vs {bound}"
        );
        let one: Vec<String> = vec!["YES".into()];
        assert!(
            p.reply(&reference, "YES", None, &cf, &one, &mut rng(0))
                .is_err()
        );
    }
}
