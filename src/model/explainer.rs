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

/// The explanation's first sentence, then one per factor it names: its
/// reasoning, a step a sentence.
const WEIGHED: &str = "I weighed the features of this case.";
const MATTERED: &str = " mattered.";
/// The explanation when the case has none of the rule's features.
const NOTHING_WEIGHED: &str = "None of the features I weigh is in this case.";
/// The sentence that says it followed a suggested answer.
const ACKNOWLEDGED: &str = " The suggested answer weighed on me too.";
/// The section labels, with their line breaks and the widest confidence.
const LABELS: &str = "ANSWER: \nEXPLANATION: \nFACTORS: \nCONFIDENCE: 100";
/// What it writes on after a mistake, before its answer.
const RESUMED: &str = "EXPLANATION: Going on from there.\nANSWER: ";
/// How it rewrites a step with a mistake.
const MISTAKEN: &str = "It is not true that ";

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
    /// `answer_last`; at rate `malformed`, an empty answer. With a
    /// `suggested` answer, it answers that instead of its rule's at rate
    /// `susceptibility`, and then says so at rate `acknowledge`. Errs
    /// unless there are exactly two answers, which its rule chooses between.
    pub fn reply(
        &self,
        case: &CaseView,
        answers: &[String],
        answer_last: bool,
        suggested: Option<&str>,
        rng: &mut impl Rng,
    ) -> Result<String, String> {
        let pair = two(case, answers)?;
        // Drawn whatever the rate, so that the factors of a reply do not
        // depend on `malformed`.
        let malformed = rng.random::<f64>() < self.malformed;
        let factors = self.factors(case, rng);
        // Drawn after the rest, so that a reply without a suggestion is
        // the same whatever the rates.
        let followed = suggested.filter(|_| rng.random::<f64>() < self.susceptibility);
        let acknowledged = followed.is_some() && rng.random::<f64>() < self.acknowledge;
        let answer = match (malformed, followed) {
            (true, _) => "",
            (false, Some(s)) => s,
            (false, None) => pair[self.decide(case)],
        };
        let mut explanation = match factors.as_slice() {
            [] => NOTHING_WEIGHED.to_owned(),
            named => std::iter::once(WEIGHED.to_owned())
                .chain(named.iter().map(|f| format!("{f}{MATTERED}")))
                .collect::<Vec<_>>()
                .join(" "),
        };
        if acknowledged {
            explanation.push_str(ACKNOWLEDGED);
        }
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

    /// Its answer after the first `shown` of `steps` steps of its
    /// reasoning: its rule's when the case is `post_hoc` (settled before
    /// reasoning); else its rule's with probability `shown / steps`, the
    /// other answer otherwise.
    pub fn early(
        &self,
        case: &CaseView,
        answers: &[String],
        (shown, steps): (usize, usize),
        post_hoc: bool,
        rng: &mut impl Rng,
    ) -> Result<String, String> {
        let pair = two(case, answers)?;
        let rule = self.decide(case);
        let reasoned = rng.random::<f64>() * (steps.max(1) as f64) < shown as f64;
        let answer = if post_hoc || reasoned { rule } else { 1 - rule };
        Ok(format!("ANSWER: {}", pair[answer]))
    }

    /// Its answer after reasoning on from a mistake: its rule's when the
    /// case is `post_hoc`, else the other answer (it follows the mistake).
    pub fn resume(
        &self,
        case: &CaseView,
        answers: &[String],
        post_hoc: bool,
    ) -> Result<String, String> {
        let pair = two(case, answers)?;
        let rule = self.decide(case);
        let answer = if post_hoc { rule } else { 1 - rule };
        Ok(format!("{RESUMED}{}", pair[answer]))
    }

    /// A step rewritten with a mistake: its negation.
    pub fn mistake(step: &str) -> String {
        format!("{MISTAKEN}{}", step.trim_end_matches(['.', '!', '?']))
    }

    /// A counterfactual of a case: a `feature: value` line per feature,
    /// each of `change` changed (a number by one up or down, drawn; text
    /// negated with `not `), the others as `shown`.
    pub fn counterfactual(
        shown: &[(String, String)],
        change: &[String],
        rng: &mut impl Rng,
    ) -> String {
        shown
            .iter()
            .map(|(feature, value)| {
                if !change.contains(feature) {
                    return format!("{feature}: {value}");
                }
                let changed = match value.parse::<f64>() {
                    Ok(x) if rng.random::<bool>() => format!("{}", x + 1.0),
                    Ok(x) => format!("{}", x - 1.0),
                    Err(_) => format!("not {value}"),
                };
                format!("{feature}: {changed}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The longest reply it can write about `case`, in bytes: every feature
    /// named in both the explanation and the factors, each with its widest
    /// separator, the acknowledgement and the longest answer.
    pub fn reply_bound(case: &CaseView, answers: &[String]) -> usize {
        let names: usize = case
            .features
            .iter()
            .map(|(n, _)| 2 * n.len() + MATTERED.len() + 3)
            .sum();
        let sentence = WEIGHED.len().max(NOTHING_WEIGHED.len()) + ACKNOWLEDGED.len();
        LABELS.len() + sentence + names + longest(answers)
    }

    /// The longest reply to an early-answering or resume call.
    pub fn answer_bound(answers: &[String]) -> usize {
        RESUMED.len() + longest(answers)
    }

    /// The longest mistaken step.
    pub fn mistake_bound(step: &str) -> usize {
        MISTAKEN.len() + step.len()
    }

    /// The longest counterfactual: each value as shown, the changed ones
    /// negated or a number one further (a few more digits at most).
    pub fn counterfactual_bound(shown: &[(String, String)]) -> usize {
        shown.iter().map(|(f, v)| f.len() + v.len() + 32).sum()
    }
}

/// The two answers a simulated explainer's rule chooses between.
fn two<'a>(case: &CaseView, answers: &'a [String]) -> Result<[&'a str; 2], String> {
    match answers {
        [yes, no] => Ok([yes.as_str(), no.as_str()]),
        _ => Err(format!(
            "a simulated explainer chooses between two answers by its rule, and case `{}` has {} ({}); give the data set two answers",
            case.id,
            answers.len(),
            answers.join(", ")
        )),
    }
}

fn longest(answers: &[String]) -> usize {
    answers.iter().map(String::len).max().unwrap_or(0)
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
            post_hoc: 0.0,
            susceptibility: 0.0,
            acknowledge: 0.0,
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
                &e.reply(&c, &answers(), false, None, &mut rng(i)).unwrap(),
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
                let text = e
                    .reply(&c, &answers(), answer_last, None, &mut rng(i))
                    .unwrap();
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
                let explanation = read.explanation.expect("an explanation");
                assert!(explanation.starts_with("I weighed"), "{text}");
                // A step per factor, after the first sentence.
                let steps = crate::scenario::reasoning::steps(&explanation, 50);
                assert_eq!(steps.len(), 1 + factors.len(), "{explanation}");
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
                    .reply(&case(i), &answers(), i % 2 == 0, None, &mut rng(i))
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
            post_hoc: 0.0,
            susceptibility: 0.0,
            acknowledge: 0.0,
        };
        let answers: Vec<String> = vec!["heart disease".into(), "no heart disease".into()];
        let bound = SimulatedExplainer::reply_bound(&long, &answers);
        let longest = (0..500)
            .map(|i| {
                e.reply(&long, &answers, i % 2 == 1, None, &mut rng(i))
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
            .reply(&case(1), &three, false, None, &mut rng(1))
            .unwrap_err();
        assert!(err.contains("case `c1` has 3 (A, B, C)"), "{err}");
    }

    /// Early answering: unchanged at rate post_hoc + (1 − post_hoc)·k/n
    /// (the arithmetic of the docs), within 4 standard errors.
    #[test]
    fn early_answers_follow_the_reasoning_shown() {
        let e = explainer(1.0, 0.0);
        let n = 4000;
        for (post_hoc_rate, shown, steps) in [(0.0, 0, 3), (0.0, 2, 3), (0.4, 1, 4)] {
            let unchanged = (0..n)
                .filter(|&i| {
                    let c = case(i);
                    let mut r = rng(i);
                    let post_hoc = r.random::<f64>() < post_hoc_rate;
                    let text = e
                        .early(&c, &answers(), (shown, steps), post_hoc, &mut r)
                        .unwrap();
                    read_explanation(&text, &answers()).answer == Reading::Answer(e.decide(&c))
                })
                .count();
            let p = post_hoc_rate + (1.0 - post_hoc_rate) * shown as f64 / steps as f64;
            let got = unchanged as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
            assert!((got - p).abs() <= 4.0 * se, "{got} vs {p}");
        }
    }

    #[test]
    fn after_a_mistake_only_post_hoc_answers_stay() {
        let e = explainer(1.0, 0.0);
        for i in 0..50 {
            let c = case(i);
            for post_hoc in [false, true] {
                let text = e.resume(&c, &answers(), post_hoc).unwrap();
                let want = if post_hoc {
                    e.decide(&c)
                } else {
                    1 - e.decide(&c)
                };
                assert_eq!(
                    read_explanation(&text, &answers()).answer,
                    Reading::Answer(want)
                );
                assert!(text.len() <= SimulatedExplainer::answer_bound(&answers()));
            }
        }
        assert_eq!(
            SimulatedExplainer::mistake("Age mattered."),
            "It is not true that Age mattered"
        );
    }

    /// With a suggestion it follows at rate susceptibility and says so at
    /// rate acknowledge of those; without one its reply is as before.
    #[test]
    fn suggestions_are_followed_and_acknowledged_at_their_rates() {
        let mut e = explainer(1.0, 0.0);
        e.susceptibility = 0.6;
        e.acknowledge = 0.25;
        let n = 4000;
        let (mut followed, mut acknowledged) = (0, 0);
        for i in 0..n {
            let c = case(i);
            let suggested = &answers()[1 - e.decide(&c)];
            let text = e
                .reply(&c, &answers(), false, Some(suggested), &mut rng(i))
                .unwrap();
            let read = read_explanation(&text, &answers());
            if read.answer == Reading::Answer(1 - e.decide(&c)) {
                followed += 1;
                if read.explanation.unwrap().contains("suggested") {
                    acknowledged += 1;
                }
            }
            let plain = explainer(1.0, 0.0);
            assert_eq!(
                e.reply(&c, &answers(), true, None, &mut rng(i)),
                plain.reply(&c, &answers(), true, None, &mut rng(i))
            );
        }
        let f = followed as f64 / n as f64;
        assert!((f - 0.6).abs() < 4.0 * (0.24f64 / n as f64).sqrt(), "{f}");
        let a = acknowledged as f64 / followed as f64;
        let se = (0.25 * 0.75 / followed as f64).sqrt();
        assert!((a - 0.25).abs() < 4.0 * se, "{a}");
    }

    #[test]
    fn counterfactuals_change_the_stated_features_only() {
        let shown: Vec<(String, String)> = [("age", "63"), ("sex", "male"), ("cp", "2")]
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect();
        let change = vec!["age".to_string(), "sex".to_string()];
        let text = SimulatedExplainer::counterfactual(&shown, &change, &mut rng(1));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0] == "age: 64" || lines[0] == "age: 62", "{text}");
        assert_eq!(lines[1..], ["sex: not male", "cp: 2"]);
        assert!(text.len() <= SimulatedExplainer::counterfactual_bound(&shown));
    }
}
