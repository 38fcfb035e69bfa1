//! Reading a judge's verdict: yes/no, or a score from 0 to 10, from the
//! text an `llm` verifier's model wrote — weighted by the model's own
//! probabilities when its response carries log-probabilities.
//!
//! Pure functions of the reply (and its tokens); the executor makes the
//! judge's call and [`crate::model::network::token_logprobs`] reads the tokens from
//! the response body. A reply with no readable verdict is an error that says
//! why, which the executor records as an unscored sample, never as 0.

use std::sync::LazyLock;

use regex::Regex;

use crate::scenario::Scale;

/// One generated token and the most likely tokens at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenChoice {
    pub token: String,
    /// (token, natural-log probability), the chosen one among them.
    pub top: Vec<(String, f64)>,
}

/// What a judge said about one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// In [0, 1]: yes = 1 and no = 0, or the score / 10; with log-probabilities,
    /// the probability-weighted value at the token that wrote the verdict.
    pub value: f64,
    /// For `yes_no`: whether the judge said yes.
    pub accepted: Option<bool>,
    /// Whether `value` was weighted by log-probabilities.
    pub weighted: bool,
}

/// A verdict marker followed by the verdict: "Verdict: yes", "**Answer** - No".
static YES_NO_MARKED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:verdict|answer|judge?ment|decision|correct)\b\W{0,6}?(?:is\s+)?[*"'`]*\b(yes|no)\b"#)
        .expect("valid regex")
});
static YES_NO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(yes|no)\b").expect("valid regex"));
static SCORE_MARKED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:score|rating|grade|verdict)\b\W{0,6}?(?:(?:is|of)\s+)?[*"'`]*(\d+(?:\.\d+)?)\b"#)
        .expect("valid regex")
});
static SCORE_OUT_OF_TEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*10\b").expect("valid regex")
});
static SCORE_ALONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\W*(\d+(?:\.\d+)?)\W*$").expect("valid regex"));

/// Read `reply` on `scale`; `tokens` are the reply's tokens with their
/// alternatives, when the server returned log-probabilities.
pub fn read(scale: Scale, reply: &str, tokens: Option<&[TokenChoice]>) -> Result<Verdict, String> {
    let (start, word) = match scale {
        Scale::YesNo => find_yes_no(reply)?,
        Scale::Score => find_score(reply)?,
    };
    let plain = match scale {
        Scale::YesNo => f64::from(u8::from(word.eq_ignore_ascii_case("yes"))),
        Scale::Score => {
            let v: f64 = word
                .parse()
                .map_err(|_| format!("unreadable score {word:?}"))?;
            if !(0.0..=10.0).contains(&v) {
                return Err(format!("score {word} is outside 0–10"));
            }
            v / 10.0
        }
    };
    let accepted = (scale == Scale::YesNo).then_some(plain == 1.0);
    let weighted = tokens
        .and_then(|t| token_at(t, start))
        .filter(|choice| normalized(&choice.token) == word.to_ascii_lowercase())
        .and_then(|choice| weigh(scale, &choice.top));
    Ok(Verdict {
        value: weighted.unwrap_or(plain),
        accepted,
        weighted: weighted.is_some(),
    })
}

/// Where the yes/no verdict is: the last marked one; else a reply that opens
/// with it; else the only kind of yes/no word the reply uses.
fn find_yes_no(reply: &str) -> Result<(usize, &str), String> {
    if let Some(c) = YES_NO_MARKED.captures_iter(reply).last() {
        let m = c.get(1).expect("group 1");
        return Ok((m.start(), m.as_str()));
    }
    let words: Vec<regex::Match<'_>> = YES_NO.find_iter(reply).collect();
    let Some(first) = words.first() else {
        return Err("no yes/no verdict in the reply".into());
    };
    let opens = reply[..first.start()].chars().all(|c| !c.is_alphanumeric());
    let says = |w: &str| words.iter().any(|m| m.as_str().eq_ignore_ascii_case(w));
    if opens || !(says("yes") && says("no")) {
        Ok((first.start(), first.as_str()))
    } else {
        Err("ambiguous verdict: the reply says both yes and no, and marks neither (\"Verdict: yes\")".into())
    }
}

/// Where the score is: the last marked one ("Score: 7"), else the last
/// "N/10" or "N out of 10", else a reply that is only a number.
fn find_score(reply: &str) -> Result<(usize, &str), String> {
    [&*SCORE_MARKED, &*SCORE_OUT_OF_TEN, &*SCORE_ALONE]
        .into_iter()
        .find_map(|re| re.captures_iter(reply).last())
        .map(|c| {
            let m = c.get(1).expect("group 1");
            (m.start(), m.as_str())
        })
        .ok_or_else(|| "no 0–10 score in the reply (expected e.g. \"Score: 7\")".into())
}

/// The token whose text covers byte `offset` of the reply.
fn token_at(tokens: &[TokenChoice], offset: usize) -> Option<&TokenChoice> {
    let mut end = 0;
    tokens.iter().find(|t| {
        let start = end;
        end += t.token.len();
        // A token with leading space (" Yes") starts before the word.
        (start..end).contains(&offset)
            && t.token
                .get(offset - start..)
                .is_some_and(|rest| !rest.trim().is_empty())
    })
}

fn normalized(token: &str) -> String {
    token.trim().to_ascii_lowercase()
}

/// The expected verdict over the alternatives at the verdict's position:
/// P(yes) / (P(yes) + P(no)), or the probability-weighted mean of the whole
/// numbers 0–10 (over 10). `None` when no alternative is a verdict.
fn weigh(scale: Scale, top: &[(String, f64)]) -> Option<f64> {
    let (mut mass, mut total) = (0.0, 0.0);
    for (token, logprob) in top {
        let p = logprob.exp();
        let value = match scale {
            Scale::YesNo => match normalized(token).as_str() {
                "yes" => 1.0,
                "no" => 0.0,
                _ => continue,
            },
            Scale::Score => match normalized(token).parse::<u8>() {
                Ok(v) if v <= 10 => f64::from(v) / 10.0,
                _ => continue,
            },
        };
        mass += p;
        total += p * value;
    }
    (mass > 0.0 && mass.is_finite()).then(|| total / mass)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `reply` on `scale` reads as `expected` (value, accepted), or fails
    /// with a message containing `expected_error`.
    fn check(scale: Scale, reply: &str, expected: Result<(f64, Option<bool>), &str>) {
        let got = read(scale, reply, None);
        match (got, expected) {
            (Ok(v), Ok((value, accepted))) => {
                assert_eq!((v.value, v.accepted), (value, accepted), "{reply:?}");
                assert!(!v.weighted);
            }
            (Err(e), Err(want)) => assert!(e.contains(want), "{reply:?}: {e}"),
            (got, want) => panic!("{reply:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn yes_no_verdicts() {
        use Scale::YesNo;
        check(YesNo, "Yes", Ok((1.0, Some(true))));
        check(YesNo, "no.", Ok((0.0, Some(false))));
        check(YesNo, "**No**, the sum is 5.", Ok((0.0, Some(false))));
        check(YesNo, "Verdict: yes", Ok((1.0, Some(true))));
        check(YesNo, "VERDICT - No", Ok((0.0, Some(false))));
        check(
            YesNo,
            "Is it 4? No doubt it is. Verdict: yes",
            Ok((1.0, Some(true))),
        );
        check(
            YesNo,
            "At first I thought yes, but no. Verdict: no. Final answer: no",
            Ok((0.0, Some(false))),
        );
        check(YesNo, "The response is right, yes.", Ok((1.0, Some(true))));
        // Words that contain yes/no are not verdicts.
        check(
            YesNo,
            "Nobody knows; eyes closed.",
            Err("no yes/no verdict"),
        );
        check(YesNo, "", Err("no yes/no verdict"));
        check(YesNo, "The answer is correct.", Err("no yes/no verdict"));
        check(
            YesNo,
            "It could be yes or it could be no.",
            Err("ambiguous"),
        );
    }

    #[test]
    fn score_verdicts() {
        use Scale::Score;
        check(Score, "Score: 7", Ok((0.7, None)));
        check(Score, "7", Ok((0.7, None)));
        check(Score, "  10. ", Ok((1.0, None)));
        check(Score, "I'd give it 8/10.", Ok((0.8, None)));
        check(Score, "Rating is 6.5 out of 10", Ok((0.65, None)));
        check(Score, "Step 2 adds 3 and 4. Score: 0", Ok((0.0, None)));
        check(Score, "**Score**: 9", Ok((0.9, None)));
        check(Score, "Score: 12", Err("outside 0–10"));
        check(Score, "It adds 2 and 3.", Err("no 0–10 score"));
        check(Score, "Looks fine to me.", Err("no 0–10 score"));
    }

    fn tokens(parts: &[(&str, &[(&str, f64)])]) -> Vec<TokenChoice> {
        parts
            .iter()
            .map(|(token, top)| TokenChoice {
                token: (*token).to_owned(),
                top: top.iter().map(|(t, p)| ((*t).to_owned(), p.ln())).collect(),
            })
            .collect()
    }

    #[test]
    fn log_probabilities_weight_the_verdict_token() {
        let t = tokens(&[
            ("Verdict", &[("Verdict", 0.9)]),
            (":", &[(":", 1.0)]),
            (
                " Yes",
                &[(" Yes", 0.6), (" No", 0.2), (" yes", 0.1), (" The", 0.1)],
            ),
        ]);
        let v = read(Scale::YesNo, "Verdict: Yes", Some(&t)).unwrap();
        assert!(v.weighted);
        assert!((v.value - 0.7 / 0.9).abs() < 1e-12, "{}", v.value);
        assert_eq!(v.accepted, Some(true));

        let t = tokens(&[
            ("Score", &[("Score", 1.0)]),
            (": ", &[(": ", 1.0)]),
            ("7", &[("7", 0.5), ("8", 0.25), ("10", 0.125), ("x", 0.125)]),
        ]);
        let v = read(Scale::Score, "Score: 7", Some(&t)).unwrap();
        assert!(v.weighted);
        let expected = (0.5 * 7.0 + 0.25 * 8.0 + 0.125 * 10.0) / 0.875 / 10.0;
        assert!((v.value - expected).abs() < 1e-12, "{}", v.value);
    }

    #[test]
    fn log_probabilities_that_do_not_cover_the_verdict_are_ignored() {
        // "10" written as two tokens: the first token's alternatives are not scores of the verdict.
        let t = tokens(&[("1", &[("1", 0.5), ("9", 0.5)]), ("0", &[("0", 1.0)])]);
        let v = read(Scale::Score, "10", Some(&t)).unwrap();
        assert_eq!((v.value, v.weighted), (1.0, false));
        // Tokens that do not spell the reply.
        let t = tokens(&[("Hello", &[("Hello", 1.0)])]);
        let v = read(Scale::YesNo, "Yes", Some(&t)).unwrap();
        assert_eq!((v.value, v.weighted), (1.0, false));
    }
}
