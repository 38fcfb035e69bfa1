//! Reading a final answer out of a model's text, and normalizing it so that
//! equal answers compare equal (`12`, `12.0` and `+12` are one answer).
//!
//! A text with no extractable answer is an *abstention*: `extract` returns
//! `None`, and strategies count it but never let it win a vote.

use std::sync::Arc;

use regex::Regex;

use crate::scenario::canonicalizer::Canonicalizer;
use crate::scenario::spec::NormalizeStep;

/// How a final answer is found in a text.
#[derive(Debug, Clone)]
pub enum Extractor {
    LastNumber,
    Boxed,
    /// The option letters, e.g. `ABCDE`, and the task field whose text lists
    /// the options (`(A) Mars (B) Jupiter`), if answers may name one by its text.
    Choice {
        letters: String,
        options_field: Option<String>,
    },
    Whole,
    Regex(Regex),
    /// A field of the last JSON object in the text, by path.
    Json(Vec<String>),
}

/// Extraction plus normalization: the scenario's `answer:` section.
#[derive(Debug, Clone)]
pub struct AnswerRule {
    pub extractor: Extractor,
    pub steps: Vec<Step>,
}

/// One normalization step.
#[derive(Debug, Clone)]
pub enum Step {
    /// A built-in step (never `NormalizeStep::Command`).
    Builtin(NormalizeStep),
    /// An external command's canonical form of the whole answer.
    Command(Arc<Canonicalizer>),
}

/// An extracted answer in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// As written in the text.
    pub raw: String,
    /// After normalization: the form answers are compared and voted in.
    pub normalized: String,
}

fn number_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
            .expect("number regex")
    })
}

impl AnswerRule {
    /// The steps used when a scenario names none.
    pub fn default_steps() -> Vec<Step> {
        [
            NormalizeStep::Trim,
            NormalizeStep::Casefold,
            NormalizeStep::Numeric,
        ]
        .map(Step::Builtin)
        .to_vec()
    }

    /// The final answer in `text` written for `task`: like [`AnswerRule::extract`],
    /// but a choice may also be named by its option's text, read from the
    /// task's options field (the later of the two mentions wins).
    pub fn extract_for(&self, text: &str, task: &crate::scenario::Task) -> Option<Answer> {
        let Extractor::Choice {
            letters,
            options_field: Some(field),
        } = &self.extractor
        else {
            return self.extract(text);
        };
        let listed = task
            .inputs
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let by_letter = last_choice(text, letters);
        let by_text = last_option_named(text, &options(listed, letters));
        let raw = match (by_letter, by_text) {
            (Some((at, l)), Some((named, n))) => {
                if named > at {
                    n
                } else {
                    l
                }
            }
            (Some((_, l)), None) => l,
            (None, Some((_, n))) => n,
            (None, None) => return None,
        };
        let normalized = self.normalize(&raw);
        (!normalized.is_empty()).then_some(Answer { raw, normalized })
    }

    /// The final answer in `text`, or `None` for an abstention.
    pub fn extract(&self, text: &str) -> Option<Answer> {
        let raw = match &self.extractor {
            Extractor::LastNumber => number_regex().find_iter(text).last()?.as_str().to_owned(),
            Extractor::Boxed => last_boxed(text)?,
            Extractor::Choice { letters, .. } => last_choice(text, letters)?.1,
            Extractor::Whole => text.to_owned(),
            Extractor::Json(path) => last_json_field(text, path)?,
            Extractor::Regex(re) => {
                let caps = re.captures_iter(text).last()?;
                caps.name("answer")
                    .or_else(|| caps.get(1))
                    .or_else(|| caps.get(0))?
                    .as_str()
                    .to_owned()
            }
        };
        let normalized = self.normalize(&raw);
        if normalized.is_empty() {
            return None;
        }
        Some(Answer { raw, normalized })
    }

    /// Apply the configured normalization steps. A command step that fails
    /// leaves the answer as the steps before it made it, and says so on
    /// stderr (expected answers are normalized at validation, where a
    /// failure is an error: see [`AnswerRule::try_normalize`]).
    pub fn normalize(&self, raw: &str) -> String {
        self.steps_on(raw, |e, before| {
            tracing::warn!("{e}; the answer stays {before:?}");
            before
        })
    }

    /// Apply the configured normalization steps; `Err` when a command fails.
    pub fn try_normalize(&self, raw: &str) -> Result<String, String> {
        let mut failure = None;
        let s = self.steps_on(raw, |e, before| {
            failure.get_or_insert(e);
            before
        });
        failure.map_or(Ok(s), Err)
    }

    /// Apply the steps, handing a failed command's error and the answer
    /// before it to `failed`, which says how to go on.
    fn steps_on(&self, raw: &str, mut failed: impl FnMut(String, String) -> String) -> String {
        let mut s = raw.to_owned();
        for step in &self.steps {
            s = match step {
                Step::Builtin(NormalizeStep::Set) => self.collection(&s, true),
                Step::Builtin(NormalizeStep::List) => self.collection(&s, false),
                Step::Builtin(scalar) => scalar_step(scalar, s),
                Step::Command(c) => match c.canonical(&s) {
                    Ok(canonical) => canonical,
                    Err(e) => failed(e, s),
                },
            };
        }
        s
    }

    /// `s` as a collection whose elements get every scalar step of the rule;
    /// a set is sorted and without repeats.
    fn collection(&self, s: &str, set: bool) -> String {
        let t = s.trim();
        let inner = [('{', '}'), ('[', ']'), ('(', ')')]
            .iter()
            .find(|(open, close)| t.starts_with(*open) && t.ends_with(*close) && t.len() >= 2)
            .map_or(t, |_| &t[1..t.len() - 1]);
        let mut items: Vec<String> = inner
            .split([',', ';'])
            .map(|item| {
                // Elements get the built-in scalar steps; commands see the whole answer.
                self.steps
                    .iter()
                    .filter_map(|st| match st {
                        Step::Builtin(NormalizeStep::Set | NormalizeStep::List)
                        | Step::Command(_) => None,
                        Step::Builtin(b) => Some(b),
                    })
                    .fold(item.trim().to_owned(), |acc, st| scalar_step(st, acc))
            })
            .filter(|item| !item.is_empty())
            .collect();
        if set {
            items.sort();
            items.dedup();
            format!("{{{}}}", items.join(", "))
        } else {
            format!("[{}]", items.join(", "))
        }
    }
}

fn scalar_step(step: &NormalizeStep, s: String) -> String {
    match step {
        NormalizeStep::Trim => s
            .trim()
            .trim_end_matches(['.', ',', ';', ':', '!'])
            .trim()
            .to_owned(),
        NormalizeStep::Casefold => s.to_lowercase(),
        NormalizeStep::Numeric => canonical_number(&s).unwrap_or(s),
        NormalizeStep::Fraction => canonical_fraction(&s).unwrap_or(s),
        NormalizeStep::Digits(d) => round_digits(&s, *d).unwrap_or(s),
        NormalizeStep::Set | NormalizeStep::List | NormalizeStep::Command(_) => s,
    }
}

/// `p/q`, `\frac{p}{q}` or `\dfrac{p}{q}` with integers p and q (q ≠ 0).
pub fn parse_fraction(s: &str) -> Option<(i128, i128)> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let (p, q) = if let Some(rest) = t
        .strip_prefix("\\frac")
        .or_else(|| t.strip_prefix("\\dfrac"))
    {
        let rest = rest.strip_prefix('{')?;
        let (p, rest) = rest.split_once('}')?;
        let q = rest.strip_prefix('{')?.strip_suffix('}')?;
        (p, q)
    } else {
        t.split_once('/')?
    };
    let p: i128 = p.trim().parse().ok()?;
    let q: i128 = q.trim().parse().ok()?;
    if q == 0 {
        return None;
    }
    let sign = if (p < 0) ^ (q < 0) ^ neg { -1 } else { 1 };
    Some((sign * p.abs(), q.abs()))
}

/// A fraction in lowest terms: as a decimal when it has a finite one
/// (`3/4` → `0.75`, `6/3` → `2`), else `p/q` (`2/6` → `1/3`).
pub fn canonical_fraction(s: &str) -> Option<String> {
    let (p, q) = parse_fraction(s)?;
    let g = gcd(p.unsigned_abs(), q.unsigned_abs()).max(1) as i128;
    let (p, q) = (p / g, q / g);
    let mut rest = q;
    for f in [2, 5] {
        while rest % f == 0 {
            rest /= f;
        }
    }
    if rest == 1 {
        canonical_number(&(p as f64 / q as f64).to_string())
    } else {
        Some(format!("{p}/{q}"))
    }
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A number or fraction rounded to `digits` significant digits, canonical.
fn round_digits(s: &str, digits: u8) -> Option<String> {
    let v = match parse_fraction(s) {
        Some((p, q)) => p as f64 / q as f64,
        None => canonical_number(s)?.parse().ok()?,
    };
    let rounded = format!("{:.*e}", usize::from(digits.max(1)) - 1, v);
    canonical_number(&rounded)
}

/// `+12`, `12.0`, `1,200`, `$12` → canonical decimal text; `None` if not a number.
pub fn canonical_number(s: &str) -> Option<String> {
    let t = s.trim().trim_start_matches('$').trim_end_matches('%');
    let m = number_regex().find(t)?;
    if m.start() != 0 || m.end() != t.len() {
        return None;
    }
    let cleaned = t.replace(',', "");
    let v: f64 = cleaned.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    if v == 0.0 {
        return Some("0".into());
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return Some(format!("{}", v as i64));
    }
    Some(format!("{v}"))
}

/// `path` in the last JSON object in `text` that has it (objects may sit in
/// prose or a code fence). Strings as written, other values as compact JSON;
/// `null` is no answer.
pub(crate) fn last_json_field(text: &str, path: &[String]) -> Option<String> {
    text.match_indices('{').rev().find_map(|(i, _)| {
        let value: serde_json::Value = serde_json::Deserializer::from_str(&text[i..])
            .into_iter()
            .next()?
            .ok()?;
        let field = path.iter().try_fold(&value, |v, k| v.get(k))?;
        match field {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    })
}

fn last_boxed(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i].to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

/// The last option letter standing alone: `(B)`, `B)`, `B.`, `Answer: B`.
/// The last option letter in `text`: its byte offset and the upper-case letter.
fn last_choice(text: &str, letters: &str) -> Option<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: Option<usize>| i.and_then(|i| chars.get(i)).copied();
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    // An upper-case letter standing alone is an option; a lower-case one only
    // when marked as one — `(b)`, `b)`, `b.` closing a sentence, or right
    // after "answer" / "answer is" — since a lone "a" is usually the article.
    let marked = |i: usize| {
        let (before, after) = (at(i.checked_sub(1)), at(Some(i + 1)));
        let prefix = chars[..i].iter().collect::<String>().to_lowercase();
        let prefix = prefix.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '*');
        before == Some('(')
            || after == Some(')')
            || (after == Some('.') && !is_word(at(Some(i + 2))))
            || prefix.ends_with("answer")
            || prefix.ends_with("answer is")
    };
    (0..chars.len())
        .rev()
        .find(|&i| {
            let c = chars[i];
            let standalone = !is_word(at(i.checked_sub(1))) && !is_word(at(Some(i + 1)));
            standalone
                && (letters.contains(c)
                    || (c.is_ascii_lowercase()
                        && letters.contains(c.to_ascii_uppercase())
                        && marked(i)))
        })
        .map(|i| {
            let offset = chars[..i].iter().map(|c| c.len_utf8()).sum();
            (offset, chars[i].to_ascii_uppercase().to_string())
        })
}

/// The options a question lists, as (letter, text): each `(X)` marker, or an
/// `X)`, `X.` or `X:` opening a line, for letters `X` of `letters`; the text
/// runs to the next marker.
pub fn options(listed: &str, letters: &str) -> Vec<(String, String)> {
    let chars: Vec<(usize, char)> = listed.char_indices().collect();
    let mut markers: Vec<(usize, usize, char)> = Vec::new(); // start, end, letter
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !letters.contains(c) {
            continue;
        }
        let before = k.checked_sub(1).map(|j| chars[j].1);
        let after = chars.get(k + 1).map(|x| x.1);
        let line_start = listed[..i].trim_end_matches([' ', '\t']).ends_with('\n')
            || listed[..i].trim().is_empty();
        if before == Some('(') && after == Some(')') {
            markers.push((i - 1, i + 2, c));
        } else if line_start && matches!(after, Some(')' | '.' | ':')) {
            markers.push((i, i + 2, c));
        }
    }
    markers
        .iter()
        .enumerate()
        .filter_map(|(m, &(_, end, letter))| {
            let stop = markers.get(m + 1).map_or(listed.len(), |next| next.0);
            let text = listed[end..stop].trim().trim_end_matches([',', ';']).trim();
            (!text.is_empty()).then(|| (letter.to_string(), text.to_owned()))
        })
        .collect()
}

/// The option whose text `text` mentions last (case-insensitively, as whole
/// words): its byte offset and letter.
fn last_option_named(text: &str, options: &[(String, String)]) -> Option<(usize, String)> {
    let lower = text.to_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    options
        .iter()
        .filter_map(|(letter, option)| {
            let option = option.to_lowercase();
            lower
                .match_indices(&option)
                .filter(|(at, m)| {
                    !is_word(lower[..*at].chars().next_back())
                        && !is_word(lower[at + m.len()..].chars().next())
                })
                .last()
                .map(|(at, _)| (at, letter.clone()))
        })
        .max_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(extractor: Extractor) -> AnswerRule {
        AnswerRule {
            extractor,
            steps: AnswerRule::default_steps(),
        }
    }

    #[track_caller]
    fn check(extractor: Extractor, text: &str, expected: Option<&str>) {
        let got = rule(extractor).extract(text).map(|a| a.normalized);
        assert_eq!(got.as_deref(), expected, "text: {text:?}");
    }

    fn choice() -> Extractor {
        Extractor::Choice {
            letters: "ABCD".into(),
            options_field: None,
        }
    }

    #[test]
    fn options_are_read_inline_or_one_per_line() {
        let inline = options(
            "Which planet is largest? (A) Mars (B) Jupiter (C) Venus, (D) Earth",
            "ABCD",
        );
        let text = |o: &[(String, String)]| {
            o.iter()
                .map(|(l, t)| format!("{l}={t}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(text(&inline), ["A=Mars", "B=Jupiter", "C=Venus", "D=Earth"]);
        let lines = options("Pick one:\nA) Oxygen\nB. Carbon dioxide\nC: Helium", "ABCD");
        assert_eq!(text(&lines), ["A=Oxygen", "B=Carbon dioxide", "C=Helium"]);
        assert!(options("No options here, just A question.", "ABCD").is_empty());
    }

    #[test]
    fn a_choice_may_be_named_by_its_text() {
        let rule = AnswerRule {
            extractor: Extractor::Choice {
                letters: "ABCD".into(),
                options_field: Some("question".into()),
            },
            steps: AnswerRule::default_steps(),
        };
        let mut inputs = serde_json::Map::new();
        inputs.insert(
            "question".into(),
            "Which gas? (A) Oxygen (B) Nitrogen (C) Carbon dioxide (D) Helium".into(),
        );
        let task = crate::scenario::Task {
            index: 0,
            id: "q".into(),
            inputs,
            expected: Some("c".into()),
            distribution: None,
        };
        let got = |t: &str| rule.extract_for(t, &task).map(|a| a.normalized);
        assert_eq!(got("A plant absorbs carbon dioxide."), Some("c".into()));
        assert_eq!(got("Not oxygen: the answer is (C)."), Some("c".into()));
        assert_eq!(got("Carbon dioxide? No, I pick (A)"), Some("a".into()));
        assert_eq!(got("Plants make OXYGEN"), Some("a".into()));
        // "Heliums" is not the option "Helium"; nothing else matches.
        assert_eq!(got("heliums and neons"), None);
    }

    #[test]
    fn extraction_cases() {
        check(Extractor::LastNumber, "3 apples and 4 pears: 7", Some("7"));
        check(Extractor::LastNumber, "so the answer is +12.0.", Some("12"));
        check(Extractor::LastNumber, "total 1,200 dollars", Some("1200"));
        check(Extractor::LastNumber, "it is -0.50", Some("-0.5"));
        check(Extractor::LastNumber, "no digits here", None);
        check(
            Extractor::Boxed,
            "x \\boxed{\\frac{1}{2}} y",
            Some("\\frac{1}{2}"),
        );
        check(
            Extractor::Boxed,
            "\\boxed{1} then \\boxed{ 12.0 }",
            Some("12"),
        );
        check(Extractor::Boxed, "\\boxed{unclosed", None);
        check(choice(), "I pick (C). Answer: B", Some("b"));
        check(choice(), "A Bad Choice", Some("a"));
        check(choice(), "Because", None);
        // Lower-case options count only where marked as options.
        check(choice(), "so it must be (b)", Some("b"));
        check(choice(), "I'd say c) here", Some("c"));
        check(choice(), "Final: d.", Some("d"));
        check(choice(), "Answer: c", Some("c"));
        check(choice(), "the answer is d", Some("d"));
        check(choice(), "B is a guess, not a fact", Some("b"));
        check(choice(), "it is a cat", None);
        check(choice(), "e) is not an option", None);
        check(Extractor::Whole, "  Paris. ", Some("paris"));
        check(Extractor::Whole, "   ", None);
        check(
            Extractor::Regex(Regex::new(r"Answer: (\w+)").unwrap()),
            "Answer: x ... Answer: Yes",
            Some("yes"),
        );
        check(
            Extractor::Regex(Regex::new(r"(?P<answer>\d+) cats").unwrap()),
            "3 cats",
            Some("3"),
        );
        let json = |path: &str| Extractor::Json(path.split('.').map(str::to_owned).collect());
        check(json("answer"), r#"Sure: {"answer": " 12.0 "}"#, Some("12"));
        check(
            json("result.value"),
            "```json\n{\"result\": {\"value\": 7}}\n```\nthen {\"result\": {\"value\": 9, \"note\": \"x\"}} {\"other\": 1}",
            Some("9"),
        );
        check(json("answer"), r#"{"answer": [3, 1]}"#, Some("[3,1]"));
        check(json("answer"), r#"{"answer": null}"#, None);
        check(json("answer"), r#"{"answer": 5"#, None);
        check(json("answer"), "no json here", None);
    }

    #[track_caller]
    fn same(steps: &[NormalizeStep], forms: &[&str]) {
        let rule = AnswerRule {
            extractor: Extractor::Whole,
            steps: steps.iter().cloned().map(Step::Builtin).collect(),
        };
        let first = rule.normalize(forms[0]);
        for f in &forms[1..] {
            assert_eq!(rule.normalize(f), first, "{f:?} vs {:?}", forms[0]);
        }
    }

    #[test]
    fn equivalent_forms_normalize_alike() {
        use NormalizeStep::*;
        same(
            &[Trim, Numeric, Fraction],
            &[
                "0.75",
                "3/4",
                "6/8",
                "\\frac{3}{4}",
                " \\dfrac{6}{8} ",
                "0.750",
            ],
        );
        same(
            &[Trim, Numeric, Fraction],
            &["-1/3", "2/-6", "-\\frac{1}{3}"],
        );
        same(&[Trim, Numeric, Fraction], &["2", "6/3", "2.0"]);
        same(
            &[Trim, Numeric, Digits(4)],
            &["3.14159", "3.1416", "3.14158"],
        );
        same(
            &[Trim, Fraction, Digits(6)],
            &["1/3", "0.333333", "0.3333334"],
        );
        same(
            &[Trim, Casefold, Numeric, Set],
            &["{1, 2, 3}", "[3,2,1]", "(2, 1, 3, 1)", "3; 2.0; 1"],
        );
        same(
            &[Trim, Casefold, Numeric, List],
            &["[1, 2]", "(1,2)", "1, 2.0"],
        );
        same(&[Trim, Casefold, Set], &["{Paris, Rome}", "rome, paris"]);
    }

    #[test]
    fn inequivalent_forms_stay_apart() {
        use NormalizeStep::*;
        let rule = |steps: &[NormalizeStep]| AnswerRule {
            extractor: Extractor::Whole,
            steps: steps.iter().cloned().map(Step::Builtin).collect(),
        };
        let r = rule(&[Trim, Numeric, Fraction]);
        assert_ne!(r.normalize("1/3"), r.normalize("0.333"));
        assert_eq!(r.normalize("1/0"), "1/0", "not a fraction: left as written");
        let r = rule(&[Trim, Numeric, List]);
        assert_ne!(r.normalize("[1, 2]"), r.normalize("[2, 1]"));
        let r = rule(&[Trim, Numeric, Digits(3)]);
        assert_ne!(r.normalize("3.14"), r.normalize("3.15"));
        assert_eq!(r.normalize("pi"), "pi");
    }

    #[test]
    fn numeric_canonical_forms_agree() {
        for s in ["12", "12.0", "+12", " 12 ", "$12", "12.000"] {
            assert_eq!(canonical_number(s).as_deref(), Some("12"), "{s}");
        }
        assert_eq!(canonical_number("1e3").as_deref(), Some("1000"));
        assert_eq!(canonical_number("12a"), None);
        assert_eq!(canonical_number("-0"), Some("0".into()));
    }
}
