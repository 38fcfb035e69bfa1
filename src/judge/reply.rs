//! Reading a failure judge's reply: per MAST mode, present, absent or
//! unknown, with the evidence the judge cites.
//!
//! The judge is asked for a JSON object (`summary`, `task_completed`, and
//! `failures`: per mode its `code`, `present` and `evidence` — the `turn`,
//! the `agent`, a short `quote`). The object is found anywhere in the reply
//! (prose or a code fence around it is fine). A reply cut short inside the
//! object keeps the entries that came before the cut. A reply with no such
//! object is read in the older line format, `1.3 Step repetition: yes`, with
//! sections split by `@@`. A mode the reply does not answer, or answers both
//! ways, is **unknown** — never "no". A reply in which no mode is answered
//! at all is unreadable: the caller stores it raw and counts it.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::scenario::failure::FailureMode;

/// What a reply says about one mode.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModeVerdict {
    /// `None`: the reply does not say (or says both).
    pub present: Option<bool>,
    pub evidence: Evidence,
}

/// Where the judge says a failure shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    /// The message, by its position in the transcript shown to the judge.
    pub turn: Option<u64>,
    pub agent: Option<String>,
    pub quote: Option<String>,
}

/// How a reply was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    Json,
    /// A JSON object cut short: the entries before the cut.
    TruncatedJson,
    /// `1.3 …: yes` lines.
    Lines,
}

/// Everything read from one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub format: ReplyFormat,
    pub summary: Option<String>,
    pub task_completed: Option<bool>,
    /// Every mode, in the taxonomy's order.
    pub modes: Vec<(FailureMode, ModeVerdict)>,
    /// What was passed over: codes no mode has, modes answered both ways.
    pub notes: Vec<String>,
}

/// Read `reply`; `Err` says why nothing could be read from it.
pub fn read(reply: &str) -> Result<Reading, String> {
    let reading = match json_object(reply) {
        Some(object) => from_json(&object, ReplyFormat::Json),
        None if reply.contains("\"failures\"") || reply.contains("\"modes\"") => {
            from_truncated_json(reply)
        }
        None => from_lines(reply),
    };
    if reading.modes.iter().all(|(_, v)| v.present.is_none()) {
        return Err(format!(
            "no mode answered: expected a JSON object with `failures` (or lines like `1.3 Step repetition: yes`){}",
            if reading.notes.is_empty() {
                String::new()
            } else {
                format!("; {}", reading.notes.join("; "))
            }
        ));
    }
    Ok(reading)
}

/// The first JSON object in `text` that holds `failures` or `modes`.
fn json_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    text.match_indices('{').find_map(|(at, _)| {
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(Value::Object(o))) if o.contains_key("failures") || o.contains_key("modes") => {
                Some(o)
            }
            _ => None,
        }
    })
}

/// Collects verdicts by mode, each mode's first answer with its evidence;
/// a mode answered both ways becomes unknown when they are finished.
struct Verdicts {
    modes: Vec<(FailureMode, ModeVerdict)>,
    contradicted: Vec<bool>,
    notes: Vec<String>,
}

impl Verdicts {
    fn new() -> Self {
        let modes: Vec<_> = FailureMode::all()
            .map(|m| (m, ModeVerdict::default()))
            .collect();
        Verdicts {
            contradicted: vec![false; modes.len()],
            modes,
            notes: Vec::new(),
        }
    }

    fn add(&mut self, code: &str, present: Option<bool>, evidence: Evidence) {
        let Some(mode) = mode_of(code) else {
            self.notes.push(format!("`{code}` names no MAST mode"));
            return;
        };
        let i = FailureMode::all()
            .position(|m| m == mode)
            .expect("every mode");
        let Some(present) = present else { return };
        match self.modes[i].1.present {
            Some(earlier) if earlier != present => {
                if !self.contradicted[i] {
                    self.notes
                        .push(format!("{} is answered both ways", mode.code()));
                }
                self.contradicted[i] = true;
            }
            Some(_) => {}
            None => {
                self.modes[i].1 = ModeVerdict {
                    present: Some(present),
                    evidence,
                };
            }
        }
    }

    fn finish(
        mut self,
        format: ReplyFormat,
        summary: Option<String>,
        task_completed: Option<bool>,
    ) -> Reading {
        for (i, contradicted) in self.contradicted.iter().enumerate() {
            if *contradicted {
                self.modes[i].1 = ModeVerdict::default();
            }
        }
        Reading {
            format,
            summary,
            task_completed,
            modes: self.modes,
            notes: self.notes,
        }
    }
}

/// `1.3`, `FM-1.3`, `FM1.3`, `1.3 Step repetition`: the mode.
fn mode_of(code: &str) -> Option<FailureMode> {
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^\s*(?:FM-?)?([1-3])\.([0-9])\b").expect("valid"));
    let c = CODE.captures(code)?;
    FailureMode::from_code(&format!("FM-{}.{}", &c[1], &c[2]))
}

/// A yes/no as judges write it.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => word(s),
        _ => None,
    }
}

fn word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "present" | "y" => Some(true),
        "no" | "false" | "absent" | "n" => Some(false),
        _ => None,
    }
}

fn evidence_of(entry: &serde_json::Map<String, Value>) -> Evidence {
    let from = entry
        .get("evidence")
        .and_then(Value::as_object)
        .unwrap_or(entry);
    let text = |k: &str| from.get(k).and_then(Value::as_str).map(str::to_owned);
    Evidence {
        turn: from.get("turn").and_then(|t| {
            t.as_u64()
                .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
        }),
        agent: text("agent"),
        quote: text("quote"),
    }
}

fn from_json(object: &serde_json::Map<String, Value>, format: ReplyFormat) -> Reading {
    let mut verdicts = Verdicts::new();
    match object.get("failures").or_else(|| object.get("modes")) {
        // [{code, present, evidence}, …]
        Some(Value::Array(entries)) => {
            for entry in entries.iter().filter_map(Value::as_object) {
                let Some(code) = entry.get("code").and_then(Value::as_str) else {
                    verdicts.notes.push("an entry without a `code`".into());
                    continue;
                };
                let present = entry.get("present").and_then(flag);
                verdicts.add(code, present, evidence_of(entry));
            }
        }
        // {"1.3": true} or {"1.3": {present, evidence}}
        Some(Value::Object(entries)) => {
            for (code, v) in entries {
                match v {
                    Value::Object(entry) => {
                        let present = entry.get("present").and_then(flag);
                        verdicts.add(code, present, evidence_of(entry));
                    }
                    v => verdicts.add(code, flag(v), Evidence::default()),
                }
            }
        }
        _ => verdicts
            .notes
            .push("`failures` is neither a list nor an object".into()),
    }
    let summary = object
        .get("summary")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let task_completed = object.get("task_completed").and_then(flag);
    verdicts.finish(format, summary, task_completed)
}

/// The entries of a JSON reply cut short, each up to the last one whole.
fn from_truncated_json(reply: &str) -> Reading {
    static ENTRY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"\{[^{}]*"code"\s*:\s*"([^"]*)"[^{}]*"present"\s*:\s*(true|false|"[A-Za-z]+"|[01])"#,
        )
        .expect("valid")
    });
    let mut verdicts = Verdicts::new();
    for c in ENTRY.captures_iter(reply) {
        let present = serde_json::from_str::<Value>(&c[2])
            .ok()
            .and_then(|v| flag(&v));
        verdicts.add(&c[1], present, Evidence::default());
    }
    verdicts.finish(ReplyFormat::TruncatedJson, None, None)
}

/// `1.3 Step repetition: yes` lines, with `@@` between sections.
fn from_lines(reply: &str) -> Reading {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?im)^[\s*\-]*((?:FM-?)?[1-3]\.[0-9])\b[^\n:]*[:\-]\s*\**\s*(yes|no|true|false)\b",
        )
        .expect("valid")
    });
    static DONE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?im)completed[^\n:]*:\s*\**\s*(yes|no|true|false)\b").expect("valid")
    });
    let mut verdicts = Verdicts::new();
    for c in LINE.captures_iter(reply) {
        verdicts.add(&c[1], word(&c[2]), Evidence::default());
    }
    let summary = reply
        .split_once("@@")
        .map(|(first, _)| first.trim().trim_start_matches("A.").trim().to_owned())
        .filter(|s| !s.is_empty());
    let task_completed = DONE.captures(reply).and_then(|c| word(&c[1]));
    verdicts.finish(ReplyFormat::Lines, summary, task_completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each reply with its verdicts in taxonomy order: `y` present, `n`
    /// absent, `?` unknown; `None`: unreadable.
    const CORPUS: &[(&str, &str, Option<&str>)] = &[
        (
            "clean JSON list",
            r#"{"summary": "ok", "task_completed": true, "failures": [
                {"code": "1.1", "present": false}, {"code": "1.3", "present": true,
                 "evidence": {"turn": 4, "agent": "coder", "quote": "Let us start over"}},
                {"code": "FM-3.3", "present": "no"}]}"#,
            Some("n?y??????????n"),
        ),
        (
            "JSON in prose and a code fence",
            "Here is my analysis.\n```json\n{\"failures\": {\"2.1\": true, \"2.4\": {\"present\": \"yes\"}, \"3.2\": 0}}\n```\nThanks!",
            Some("?????y??y???n?"),
        ),
        (
            "braces before the object",
            "The set {a, b} is fine. {\"modes\": [{\"code\": \"1.2\", \"present\": 1}]}",
            Some("?y????????????"),
        ),
        (
            "line format with @@ sections",
            "A. The agents looped.\n@@\nB. Task completed: no\n@@\nC.\n1.1 Disobey task specification: no\n1.3 Step repetition: yes\n3.1 Premature termination: No\n@@",
            Some("n?y????????n??"),
        ),
        (
            "contradictory lines make a mode unknown",
            "1.3 Step repetition: yes\n2.1 Conversation reset: no\n1.3 Step repetition: no",
            Some("?????n????????"),
        ),
        (
            "missing modes are unknown, not no",
            r#"{"failures": [{"code": "2.5", "present": true}]}"#,
            Some("?????????y????"),
        ),
        (
            "a reply cut short keeps the entries before the cut",
            r#"{"summary": "x", "failures": [{"code": "1.4", "present": true}, {"code": "2.2", "present": false}, {"code": "2.3", "pre"#,
            Some("???y??n???????"),
        ),
        (
            "unknown codes are noted, not read",
            r#"{"failures": [{"code": "4.1", "present": true}, {"code": "1.5", "present": false}]}"#,
            Some("????n?????????"),
        ),
        ("no verdict at all", "I cannot judge this transcript.", None),
        ("an empty object", r#"{"failures": []}"#, None),
    ];

    fn pattern(r: &Reading) -> String {
        r.modes
            .iter()
            .map(|(_, v)| match v.present {
                Some(true) => 'y',
                Some(false) => 'n',
                None => '?',
            })
            .collect()
    }

    #[test]
    fn the_reply_corpus_reads_as_expected() {
        let mut failures = Vec::new();
        for (name, reply, expected) in CORPUS {
            let got = read(reply).map(|r| pattern(&r));
            let ok = match (expected, &got) {
                (Some(e), Ok(g)) => e == g,
                (None, Err(_)) => true,
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn evidence_summary_and_completion_are_kept() {
        let r = read(CORPUS[0].1).unwrap();
        assert_eq!(r.format, ReplyFormat::Json);
        assert_eq!(r.summary.as_deref(), Some("ok"));
        assert_eq!(r.task_completed, Some(true));
        let (mode, v) = &r.modes[2];
        assert_eq!(*mode, FailureMode::StepRepetition);
        assert_eq!(
            v.evidence,
            Evidence {
                turn: Some(4),
                agent: Some("coder".into()),
                quote: Some("Let us start over".into())
            }
        );
        let lines = read(CORPUS[3].1).unwrap();
        assert_eq!(lines.format, ReplyFormat::Lines);
        assert_eq!(lines.summary.as_deref(), Some("The agents looped."));
        assert_eq!(lines.task_completed, Some(false));
        let cut = read(CORPUS[6].1).unwrap();
        assert_eq!(cut.format, ReplyFormat::TruncatedJson);
        let odd = read(CORPUS[7].1).unwrap();
        assert_eq!(odd.notes, vec!["`4.1` names no MAST mode".to_owned()]);
        let both = read(CORPUS[4].1).unwrap();
        assert_eq!(both.notes, vec!["FM-1.3 is answered both ways".to_owned()]);
    }
}
