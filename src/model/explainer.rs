//! The simulated explained model of a faithfulness experiment, whose
//! faithfulness is known: it answers a case by a hidden weighted-threshold
//! rule over the case's features and names the rule's features as its most
//! important factors, each faithfully with probability `faithfulness`, else
//! a feature drawn at random — so at faithfulness 0 its factors say nothing
//! about its rule.
//!
//! [`SimulatedExplainer`] (what it is) lives in `scenario::simulation`; the
//! case comes from the call's [`Explaining`](crate::model::explaining)
//! view; `model::simulated` serves the reply, written in the format
//! [`crate::scenario::explanation::read_explanation`] reads.

use rand::{Rng, RngExt};

use crate::model::explaining::CaseView;
use crate::scenario::simulation::SimulatedExplainer;

/// The explanation's words around the factors it names.
const WEIGHED: &str = "I weighed the features of this case, and ";
const MATTERED: &str = " mattered most.";
/// The explanation when the case has none of the rule's features.
const NOTHING_WEIGHED: &str = "None of the features I weigh is in this case.";
/// The section labels, with their line breaks and the widest confidence.
const LABELS: &str = "ANSWER: \nEXPLANATION: \nFACTORS: \nCONFIDENCE: 100";

fn value(case: &CaseView, feature: &str) -> Option<f64> {
    case.features
        .iter()
        .find(|(name, _)| name == feature)
        .map(|(_, v)| *v)
}

impl SimulatedExplainer {
    /// The rule's weighted sum over the case's features; a feature the case
    /// lacks counts 0.
    pub fn score(&self, case: &CaseView) -> f64 {
        self.weights
            .iter()
            .map(|(f, w)| w * value(case, f).unwrap_or(0.0))
            .sum()
    }

    /// The answer the rule gives: the first (0) when the score reaches the
    /// threshold, else the second (1).
    pub fn decide(&self, case: &CaseView) -> usize {
        usize::from(self.score(case) < self.threshold)
    }

    /// The rule's features the case has, heaviest (by |weight|) first, ties
    /// in the scenario's order: the factors a faithful explanation names. A
    /// weighted feature the case lacks is not named, as it is not there to
    /// matter.
    pub fn used(&self, case: &CaseView) -> Vec<&str> {
        let mut used: Vec<&(String, f64)> = self
            .weights
            .iter()
            .filter(|(f, _)| value(case, f).is_some())
            .collect();
        used.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        used.into_iter().map(|(f, _)| f.as_str()).collect()
    }

    /// The factors it names, one per used feature in order: the feature
    /// itself with probability `faithfulness`; otherwise a feature drawn
    /// uniformly from the case's features that no other factor names (those
    /// faithfully named are set aside first, so the list has no repeats and
    /// the unfaithful draws are, together, a uniform sample without
    /// replacement: at faithfulness 0 the factors are a uniformly random
    /// set, which may hit used features by chance).
    pub fn factors(&self, case: &CaseView, rng: &mut impl Rng) -> Vec<String> {
        let used = self.used(case);
        let faithful: Vec<bool> = used
            .iter()
            .map(|_| rng.random::<f64>() < self.faithfulness)
            .collect();
        let mut named: Vec<&str> = used
            .iter()
            .zip(&faithful)
            .filter(|(_, f)| **f)
            .map(|(u, _)| *u)
            .collect();
        let mut out = Vec::with_capacity(used.len());
        for (u, f) in used.iter().zip(&faithful) {
            if *f {
                out.push((*u).to_owned());
                continue;
            }
            let free: Vec<&str> = case
                .features
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !named.contains(n))
                .collect();
            // Used features are the case's own, so while a slot is open at
            // least one feature is free; an empty list only if the case
            // repeats a feature's name, and then the list is cut short.
            if free.is_empty() {
                break;
            }
            let pick = free[rng.random_range(0..free.len())];
            named.push(pick);
            out.push(pick.to_owned());
        }
        out
    }

    /// Its reply to `case`: answer, explanation, factors and confidence
    /// (its margin over the threshold, 50 to 100), the answer last with
    /// `answer_last`; at rate `malformed`, an empty answer. Errs unless
    /// there are exactly two answers, which its rule chooses between.
    pub fn reply(
        &self,
        case: &CaseView,
        answers: &[String],
        answer_last: bool,
        rng: &mut impl Rng,
    ) -> Result<String, String> {
        let [yes, no] = answers else {
            return Err(format!(
                "a simulated explainer chooses between two answers by its rule, and case `{}` has {} ({}); give the data set two answers",
                case.id,
                answers.len(),
                answers.join(", ")
            ));
        };
        // Drawn whatever the rate, so that the factors of a reply do not
        // depend on `malformed`.
        let malformed = rng.random::<f64>() < self.malformed;
        let factors = self.factors(case, rng);
        let answer = match (malformed, self.decide(case)) {
            (true, _) => "",
            (false, 0) => yes.as_str(),
            (false, _) => no.as_str(),
        };
        let explanation = match factors.as_slice() {
            [] => NOTHING_WEIGHED.to_owned(),
            [one] => format!("{WEIGHED}{one}{MATTERED}"),
            [init @ .., last] => format!("{WEIGHED}{} and {last}{MATTERED}", init.join(", ")),
        };
        let margin = (self.score(case) - self.threshold).abs();
        let confidence = (50.0 + 50.0 * (1.0 - (-margin).exp())).round();
        let answer = format!("ANSWER: {answer}");
        let rest = [
            format!("EXPLANATION: {explanation}"),
            format!("FACTORS: {}", factors.join(", ")),
            format!("CONFIDENCE: {confidence}"),
        ];
        let lines: Vec<&str> = if answer_last {
            rest.iter()
                .map(String::as_str)
                .chain([answer.as_str()])
                .collect()
        } else {
            [answer.as_str()]
                .into_iter()
                .chain(rest.iter().map(String::as_str))
                .collect()
        };
        Ok(lines
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The longest reply it can write about `case`, in bytes: every feature
    /// named in both the explanation and the factors, each with its widest
    /// separator, and the longest answer.
    pub fn reply_bound(case: &CaseView, answers: &[String]) -> usize {
        let names: usize = case.features.iter().map(|(n, _)| 2 * n.len() + 7).sum();
        let sentence = (WEIGHED.len() + MATTERED.len()).max(NOTHING_WEIGHED.len());
        LABELS.len() + sentence + names + answers.iter().map(String::len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::explanation::{Reading, read_explanation};
    use crate::seed;

    const FEATURES: [&str; 6] = ["age", "chol", "sex", "cp", "thal", "fbs"];

    fn explainer(faithfulness: f64, malformed: f64) -> SimulatedExplainer {
        SimulatedExplainer {
            weights: vec![("age".into(), 1.0), ("chol".into(), -2.0)],
            threshold: 1.0,
            faithfulness,
            malformed,
        }
    }

    /// Case `i`: each feature's value a bin from 0 to 4, drawn.
    fn case(i: usize) -> CaseView {
        let mut r = seed::rng(9, &["case".into(), i.into()]);
        CaseView {
            id: format!("c{i}"),
            features: FEATURES
                .iter()
                .map(|f| ((*f).to_owned(), r.random_range(0..5) as f64))
                .collect(),
        }
    }

    fn answers() -> Vec<String> {
        vec!["YES".into(), "NO".into()]
    }

    fn rng(i: usize) -> rand::rngs::ChaCha8Rng {
        seed::rng(3, &["test".into(), i.into()])
    }

    #[test]
    fn the_answer_follows_the_rule() {
        let e = explainer(1.0, 0.0);
        let mut seen = [0; 2];
        for i in 0..200 {
            let c = case(i);
            let score = value(&c, "age").unwrap() - 2.0 * value(&c, "chol").unwrap();
            let want = if score >= 1.0 { 0 } else { 1 };
            assert_eq!(e.decide(&c), want, "{c:?}");
            let read = read_explanation(
                &e.reply(&c, &answers(), false, &mut rng(i)).unwrap(),
                &answers(),
            );
            assert_eq!(read.answer, Reading::Answer(want));
            seen[want] += 1;
        }
        assert!(seen[0] > 20 && seen[1] > 20, "{seen:?}");
        // A weighted feature the case lacks counts 0 and is not named.
        let lacking = CaseView {
            id: "x".into(),
            features: vec![("age".into(), 1.0), ("sex".into(), 0.0)],
        };
        assert_eq!(e.decide(&lacking), 0);
        assert_eq!(e.used(&lacking), vec!["age"]);
    }

    #[test]
    fn faithful_factors_are_the_used_features_heaviest_first() {
        let e = explainer(1.0, 0.0);
        for i in 0..50 {
            assert_eq!(e.factors(&case(i), &mut rng(i)), vec!["chol", "age"]);
        }
    }

    /// At faithfulness 0 every feature is named equally often (K/6 of
    /// cases, within 4 standard errors), whether the rule uses it or not;
    /// at 0.5 the used ones more often, by the arithmetic below.
    #[test]
    fn unfaithful_factors_are_uniformly_random() {
        let n = 6000;
        // At 0.5: faithful; or the other slot faithful and this one's pick
        // among the five features left; or both drawn, as at 0.
        for (faithfulness, used_p) in [(0.0, 2.0 / 6.0), (0.5, 0.5 + 0.25 / 5.0 + 0.25 / 3.0)] {
            let e = explainer(faithfulness, 0.0);
            let mut counts = std::collections::BTreeMap::<String, usize>::new();
            for i in 0..n {
                let f = e.factors(&case(i), &mut rng(i));
                assert_eq!(f.len(), 2);
                assert_ne!(f[0], f[1], "no repeats");
                for name in f {
                    *counts.entry(name).or_default() += 1;
                }
            }
            for feature in FEATURES {
                let p = if faithfulness == 0.0 || ["age", "chol"].contains(&feature) {
                    used_p
                } else {
                    // The other four share the unfaithful picks.
                    (2.0 - 2.0 * used_p) / 4.0
                };
                let got = counts.get(feature).copied().unwrap_or(0) as f64 / n as f64;
                let se = (p * (1.0 - p) / n as f64).sqrt();
                assert!(
                    (got - p).abs() < 4.0 * se,
                    "faithfulness {faithfulness}: {feature} named in {got}, expected {p}"
                );
            }
        }
    }

    #[test]
    fn replies_read_back_in_both_layouts() {
        let e = explainer(0.5, 0.0);
        for i in 0..100 {
            let c = case(i);
            for answer_last in [false, true] {
                let text = e.reply(&c, &answers(), answer_last, &mut rng(i)).unwrap();
                // The factors drawn as the reply draws them, after its
                // malformed draw.
                let mut r = rng(i);
                let _malformed: f64 = r.random();
                let factors = e.factors(&c, &mut r);
                let read = read_explanation(&text, &answers());
                assert_eq!(read.answer, Reading::Answer(e.decide(&c)), "{text}");
                assert_eq!(read.factors, factors, "{text}");
                let confidence = read.confidence.expect("a confidence");
                assert!((0.5..=1.0).contains(&confidence), "{text}");
                assert!(
                    read.explanation.is_some_and(|x| x.starts_with("I weighed")),
                    "{text}"
                );
                assert_eq!(text.starts_with("ANSWER"), !answer_last, "{text}");
                assert!(
                    text.len() <= SimulatedExplainer::reply_bound(&c, &answers()),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn malformed_replies_have_no_answer_at_their_rate() {
        let e = explainer(1.0, 0.3);
        let n = 4000;
        let unparsed = (0..n)
            .filter(|&i| {
                let text = e
                    .reply(&case(i), &answers(), i % 2 == 0, &mut rng(i))
                    .unwrap();
                match read_explanation(&text, &answers()).answer {
                    Reading::Unparsed => true,
                    Reading::Answer(_) => false,
                    Reading::Hedge(_) => panic!("{text}"),
                }
            })
            .count();
        let se = (0.3 * 0.7 / n as f64).sqrt();
        let got = unparsed as f64 / n as f64;
        assert!((got - 0.3).abs() < 4.0 * se, "{got}");
    }

    #[test]
    fn the_bound_covers_the_longest_feature_names() {
        let long = CaseView {
            id: "l".into(),
            features: [
                "a_very_long_feature_name",
                "age",
                "chol",
                "another_long_one",
            ]
            .iter()
            .map(|f| ((*f).to_owned(), 1.0))
            .collect(),
        };
        let e = SimulatedExplainer {
            weights: vec![
                ("age".into(), 1.0),
                ("chol".into(), 1.0),
                ("sex".into(), 1.0),
            ],
            threshold: 0.0,
            faithfulness: 0.0,
            malformed: 0.0,
        };
        let answers: Vec<String> = vec!["heart disease".into(), "no heart disease".into()];
        let bound = SimulatedExplainer::reply_bound(&long, &answers);
        let longest = (0..500)
            .map(|i| {
                e.reply(&long, &answers, i % 2 == 1, &mut rng(i))
                    .unwrap()
                    .len()
            })
            .max()
            .unwrap();
        assert!(
            longest <= bound && bound < longest + 120,
            "{longest} vs {bound}"
        );
    }

    #[test]
    fn two_answers_are_needed() {
        let three: Vec<String> = vec!["A".into(), "B".into(), "C".into()];
        let err = explainer(1.0, 0.0)
            .reply(&case(1), &three, false, &mut rng(1))
            .unwrap_err();
        assert!(err.contains("case `c1` has 3 (A, B, C)"), "{err}");
    }
}
