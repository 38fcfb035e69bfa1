//! Raw logs: a whole run written as one string (MAD's traces), split into
//! messages where the framework's log format marks where each begins.
//!
//! A log may come wrapped in a JSON envelope (MAD's human-labelled AG2 and
//! MetaGPT traces): then its `trajectory` list is the messages, or its
//! `content` / `trajectory` string the log, and `prompt` or
//! `problem_statement` the task. The envelope's other fields — run
//! metadata, and for AG2 the expected answer and the annotators' notes —
//! are not part of the conversation and are left out, so a judge shown the
//! messages is not shown the answer.
//!
//! Formats split, by the system's `mas_name`:
//! - AG2 / AutoGen: a line `SENDER (to RECEIVER):` opens a message; lines
//!   of 80 or more dashes close one.
//! - MetaGPT (loguru): a line `DATE TIME | LEVEL | module:function:line -
//!   REST` opens one; when REST is `Name(Profile): ...` the sender is
//!   `Name` and the role `Profile`.
//! - ChatDev: a line `[DATE TIME LEVEL] REST` opens one; the sender is the
//!   `Role: ` before a `**...**` marker (`Chief Product Officer:
//!   **Chief Product Officer<->Chief Executive Officer on : DemandAnalysis,
//!   turn 0**`), or the speaker of a bare `**A<->B on : ...**` marker.
//! - Magentic-One: a line `---------- SENDER ----------` opens one.
//!
//! The header's prefix (timestamp, level, module, `(to RECEIVER):`) is
//! dropped; what follows the sender on the header line starts the
//! message's text, and every other line is kept verbatim, so no text of
//! the log is lost. Text before the first header is a message without a
//! sender. A log of another system, or one with no header, is one message
//! without a sender.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::import::{ImportedMessage, json_messages};
use crate::scenario::judge_file::normalized_name;

/// The messages of the log `text` of a run of the system `mas_name`. An
/// envelope whose message list is malformed is kept whole, as one message.
pub fn split(text: &str, mas_name: &str) -> Vec<ImportedMessage> {
    let Some(envelope) = envelope(text) else {
        return split_text(text, Format::of(mas_name));
    };
    match envelope
        .get("trajectory")
        .or_else(|| envelope.get("content"))
    {
        Some(Value::Array(list)) => json_messages(list).unwrap_or_else(|_| whole(text)),
        Some(Value::String(log)) => split_text(log, Format::of(mas_name)),
        _ => whole(text),
    }
}

/// The task a log's JSON envelope states (`prompt`, or `problem_statement`
/// as a string or a list of lines), else "".
pub fn task(text: &str) -> String {
    let Some(envelope) = envelope(text) else {
        return String::new();
    };
    ["prompt", "problem_statement"]
        .iter()
        .find_map(|key| match envelope.get(*key)? {
            Value::String(s) => Some(s.clone()),
            Value::Array(lines) => lines
                .iter()
                .map(Value::as_str)
                .collect::<Option<Vec<_>>>()
                .map(|lines| lines.join("\n")),
            _ => None,
        })
        .unwrap_or_default()
}

/// The JSON object a log is wrapped in, if it is one.
fn envelope(text: &str) -> Option<Map<String, Value>> {
    match text.trim_start().starts_with('{') {
        true => serde_json::from_str(text).ok(),
        false => None,
    }
}

/// A framework whose log lines mark where messages begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ag2,
    MetaGpt,
    ChatDev,
    MagenticOne,
}

/// What one line of a log is.
enum Line<'a> {
    /// The start of a message: its sender and role, and the text after
    /// them on the line.
    Header {
        sender: Option<String>,
        role: Option<String>,
        rest: &'a str,
    },
    /// A line that only separates messages.
    Separator,
    Text,
}

static AG2_HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S(?:.*\S)?) \(to .+\):\s*$").expect("valid regex"));
static AG2_SEPARATOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^-{80,}\s*$").expect("valid regex"));
static LOGURU_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \| *[A-Z]+ *\| \S+ - (.*)$")
        .expect("valid regex")
});
static METAGPT_ROLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([^\s():][^():]*)\(([^()]+)\): ?(.*)$").expect("valid regex"));
static CHATDEV_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z]+\] (.*)$").expect("valid regex")
});
static CHATDEV_ROLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([^:*\[\]]+): (\*\*.*)$").expect("valid regex"));
static CHATDEV_TURN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\*\*(.+?)<->.+ on : ").expect("valid regex"));
static MAGENTIC_HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^-{3,} (.+?) -{3,}\s*$").expect("valid regex"));

impl Format {
    fn of(mas_name: &str) -> Option<Format> {
        match normalized_name(mas_name).replace(' ', "").as_str() {
            "ag2" | "autogen" => Some(Format::Ag2),
            "metagpt" => Some(Format::MetaGpt),
            "chatdev" => Some(Format::ChatDev),
            "magenticone" => Some(Format::MagenticOne),
            _ => None,
        }
    }

    fn line(self, line: &str) -> Line<'_> {
        let header = |sender: Option<&str>, role: Option<&str>, rest| Line::Header {
            sender: sender.map(str::to_owned),
            role: role.map(str::to_owned),
            rest,
        };
        match self {
            Format::Ag2 if AG2_SEPARATOR.is_match(line) => Line::Separator,
            Format::Ag2 => match AG2_HEADER.captures(line) {
                Some(c) => header(c.get(1).map(|m| m.as_str()), None, ""),
                None => Line::Text,
            },
            Format::MetaGpt => {
                let Some(rest) = LOGURU_HEADER.captures(line).and_then(|c| c.get(1)) else {
                    return Line::Text;
                };
                match METAGPT_ROLE.captures(rest.as_str()) {
                    Some(c) => header(
                        c.get(1).map(|m| m.as_str()),
                        c.get(2).map(|m| m.as_str()),
                        c.get(3).map_or("", |m| m.as_str()),
                    ),
                    None => header(None, None, rest.as_str()),
                }
            }
            Format::ChatDev => {
                let Some(rest) = CHATDEV_HEADER.captures(line).and_then(|c| c.get(1)) else {
                    return Line::Text;
                };
                let rest = rest.as_str();
                if let Some(c) = CHATDEV_ROLE.captures(rest) {
                    header(
                        c.get(1).map(|m| m.as_str()),
                        None,
                        c.get(2).map_or("", |m| m.as_str()),
                    )
                } else {
                    let speaker = CHATDEV_TURN.captures(rest).and_then(|c| c.get(1));
                    header(speaker.map(|m| m.as_str()), None, rest)
                }
            }
            Format::MagenticOne => match MAGENTIC_HEADER.captures(line) {
                Some(c) => header(c.get(1).map(|m| m.as_str()), None, ""),
                None => Line::Text,
            },
        }
    }
}

/// The messages of a log in `format` (one message when it has none).
fn split_text(log: &str, format: Option<Format>) -> Vec<ImportedMessage> {
    let Some(format) = format else {
        return whole(log);
    };
    let mut preamble = String::new();
    let mut messages: Vec<ImportedMessage> = Vec::new();
    for line in log.split_inclusive('\n') {
        match format.line(line.trim_end_matches(['\n', '\r'])) {
            Line::Header { sender, role, rest } => messages.push(ImportedMessage {
                sender,
                role,
                text: match rest {
                    "" => String::new(),
                    rest => format!("{rest}\n"),
                },
            }),
            Line::Separator => {}
            Line::Text => match messages.last_mut() {
                Some(message) => message.text.push_str(line),
                None => preamble.push_str(line),
            },
        }
    }
    for message in &mut messages {
        message.text = trim_blank_lines(&message.text).to_owned();
    }
    let mut out = whole(&preamble);
    out.append(&mut messages);
    out
}

/// The whole log as one message without a sender; none when it is blank.
fn whole(log: &str) -> Vec<ImportedMessage> {
    match trim_blank_lines(log) {
        "" => Vec::new(),
        text => vec![ImportedMessage {
            sender: None,
            role: None,
            text: text.to_owned(),
        }],
    }
}

/// `text` without the blank lines around it (the indentation of its first
/// line and the spaces ending its last are kept).
fn trim_blank_lines(text: &str) -> &str {
    let Some(first) = text.find(|c: char| !c.is_whitespace()) else {
        return "";
    };
    let start = text[..first].rfind('\n').map_or(0, |i| i + 1);
    let last = text.trim_end().len();
    let end = text[last..].find('\n').map_or(text.len(), |i| last + i);
    text[start..end].trim_end_matches('\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAD: &str = include_str!("../../tests/data/mad/MAD_human_labelled_sample.json");

    /// The raw log of the sample's record `i` (0: AG2, 1: MetaGPT).
    fn sample_log(i: usize) -> String {
        let records: Vec<Value> = serde_json::from_str(MAD).unwrap();
        records[i]["trace"].as_str().unwrap().to_owned()
    }

    fn senders(messages: &[ImportedMessage]) -> Vec<Option<&str>> {
        messages.iter().map(|m| m.sender.as_deref()).collect()
    }

    /// Whether every non-whitespace character of `log`'s lines that are
    /// not headers appears, in order, in the messages' texts. (Splitting
    /// keeps what follows the sender on a header line too, so the texts
    /// may hold more.)
    fn keeps_all_text(
        log: &str,
        messages: &[ImportedMessage],
        header: impl Fn(&str) -> bool,
    ) -> bool {
        let body: String = log
            .lines()
            .filter(|l| !header(l))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut texts = messages.iter().flat_map(|m| m.text.chars());
        body.chars().all(|c| texts.any(|t| t == c))
    }

    #[test]
    fn splits_the_metagpt_sample_at_each_role_action() {
        let log = sample_log(1);
        let messages = split(&log, "MetaGPT");
        assert_eq!(
            senders(&messages),
            [
                Some("Alice"),
                Some("Bob"),
                Some("Charlie"),
                Some("Bob"),
                Some("Charlie")
            ]
        );
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_deref()).collect();
        assert_eq!(
            roles,
            [
                Some("SimpleCoder"),
                Some("SimpleTester"),
                Some("SimpleReviewer"),
                Some("SimpleTester"),
                Some("SimpleReviewer")
            ]
        );
        assert!(
            messages[0].text.starts_with(
                "to do SimpleWriteCode(SimpleWriteCode)\n```python\ndef detect_palindromes(file_path):\n    palindromes = []"
            ),
            "{}",
            messages[0].text
        );
        assert!(messages[0].text.ends_with("    return palindromes\n```"));
        // The reviewer's output is not in the log: its messages are the
        // header's action alone.
        assert_eq!(
            messages[2].text,
            "to do SimpleWriteReview(SimpleWriteReview)"
        );
        assert_eq!(
            task(&log),
            "develop a program that detects palindromes in a text file"
        );
    }

    #[test]
    fn reads_the_ag2_sample_trajectory_without_the_envelope() {
        let log = sample_log(0);
        let messages = split(&log, "AG2");
        assert_eq!(
            senders(&messages),
            [
                Some("mathproxyagent"),
                Some("assistant"),
                Some("mathproxyagent"),
                Some("assistant")
            ]
        );
        assert_eq!(messages[1].role.as_deref(), Some("user"));
        assert_eq!(messages[2].text, "29.0");
        assert_eq!(
            messages[3].text,
            "Great! So, the final answer is:\n\\boxed{29}. \n\nMiss Maria has 29 students."
        );
        // The envelope's expected answer and annotators' notes stay out.
        assert!(
            messages
                .iter()
                .all(|m| !m.text.contains("forgot") && !m.text.contains("seed_solution"))
        );
        assert!(task(&log).starts_with("Miss Maria is a middle school teacher"));
    }

    #[test]
    fn never_loses_text_of_either_sample() {
        let metagpt = sample_log(1);
        let envelope: Value = serde_json::from_str(&metagpt).unwrap();
        let content = envelope["content"].as_str().unwrap();
        assert!(keeps_all_text(content, &split(&metagpt, "MetaGPT"), |l| {
            l.contains(" | INFO     | ")
        }));

        let ag2 = sample_log(0);
        let envelope: Value = serde_json::from_str(&ag2).unwrap();
        let trajectory: String = envelope["trajectory"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().unwrap())
            .map(|l| format!("{}\n", l.as_str().unwrap()))
            .collect();
        assert!(keeps_all_text(&trajectory, &split(&ag2, "AG2"), |_| false));
    }

    // The splitters below have no sample in the repository: these logs are
    // small inventions in each framework's documented header format.

    #[test]
    fn splits_ag2_text_logs_invented() {
        let dashes = "-".repeat(80);
        let log = format!(
            "user_proxy (to assistant):\n\nWhat is 2 + 2?\n\n{dashes}\nassistant (to user_proxy):\n\n  4\n\nTERMINATE\n\n{dashes}\n"
        );
        let messages = split(&log, "AG2");
        assert_eq!(senders(&messages), [Some("user_proxy"), Some("assistant")]);
        assert_eq!(messages[0].text, "What is 2 + 2?");
        assert_eq!(messages[1].text, "  4\n\nTERMINATE");
        assert!(keeps_all_text(&log, &messages, |l| {
            l.contains(" (to ") || l == dashes
        }));
    }

    #[test]
    fn splits_chatdev_logs_invented() {
        let log = "[2025-17-01 11:36:43 INFO] **[Preprocessing]**\n\n**task_prompt**: Build a Sudoku solver.\n[2025-17-01 11:36:43 INFO] flask app.py did not start for online log\n[2025-17-01 11:36:46 INFO] Chief Product Officer: **Chief Product Officer<->Chief Executive Officer on : DemandAnalysis, turn 0**\n\nWe should support a 9x9 grid.\n[2025-17-01 11:36:50 INFO] **Chief Executive Officer<->Chief Product Officer on : DemandAnalysis, turn 1**\n\n<INFO> Application\n";
        let messages = split(log, "ChatDev");
        assert_eq!(
            senders(&messages),
            [
                None,
                None,
                Some("Chief Product Officer"),
                Some("Chief Executive Officer")
            ]
        );
        assert_eq!(
            messages[0].text,
            "**[Preprocessing]**\n\n**task_prompt**: Build a Sudoku solver."
        );
        assert_eq!(
            messages[2].text,
            "**Chief Product Officer<->Chief Executive Officer on : DemandAnalysis, turn 0**\n\nWe should support a 9x9 grid."
        );
        assert!(keeps_all_text(log, &messages, |l| l.starts_with("[2025-17-01 ")));
    }

    #[test]
    fn splits_magentic_one_logs_invented() {
        let log = "Task: find the price\n---------- user ----------\nFind the price.\n---------- MagenticOneOrchestrator ----------\n\nPlease search the web.\n\n---------- WebSurfer ----------\nI typed 'price'.\n";
        let messages = split(log, "Magentic-One");
        assert_eq!(
            senders(&messages),
            [
                None,
                Some("user"),
                Some("MagenticOneOrchestrator"),
                Some("WebSurfer")
            ]
        );
        assert_eq!(messages[0].text, "Task: find the price");
        assert_eq!(messages[2].text, "Please search the web.");
        assert!(keeps_all_text(log, &messages, |l| l.starts_with("----------")));
    }

    #[test]
    fn other_logs_are_one_message() {
        let log = "\n\n  step 1: think\nstep 2: act\n\n";
        let whole = [ImportedMessage {
            sender: None,
            role: None,
            text: "  step 1: think\nstep 2: act".to_owned(),
        }];
        assert_eq!(split(log, "HyperAgent"), whole);
        // A known framework whose headers never appear.
        assert_eq!(split(log, "ChatDev"), whole);
        assert_eq!(split(" \n", "ChatDev"), []);
        assert_eq!(task(log), "");
    }
}
