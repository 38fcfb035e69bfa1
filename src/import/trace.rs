//! Imported traces: what another tool's trace file says, in crucible's
//! in-memory form — the messages, the failure-mode labels with who gave
//! them, and the blamed agent and step when the source names one.
//!
//! A trace is identified by the hash of its content, not by its source id:
//! source ids repeat (MAD's `trace_id` restarts for every system and
//! model), while the same conversation hashes the same wherever it came
//! from.

use serde_json::{Map, Value};

use crate::scenario::failure::FailureMode;

/// One trace of another tool's file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTrace {
    /// The id in the source file (MAD's trace_id, Who&When's question_ID or
    /// file stem, a messages line's `id` or its 1-based line number).
    pub source_id: String,
    /// Where it came from: e.g. {"mas_name": ..., "llm_name": ...,
    /// "benchmark_name": ..., "round": ...} — whatever the format has.
    pub source: Map<String, Value>,
    /// The task the system was given, when the format has it (Who&When
    /// `question`), else "".
    pub task: String,
    /// [`content_hash`] of `messages`.
    pub content_hash: String,
    pub messages: Vec<ImportedMessage>,
    pub labels: Vec<ImportedLabel>,
    /// Who&When: the agent and step the source blames.
    pub mistake: Option<Mistake>,
    /// Who&When's ground-truth answer, when given.
    pub expected: Option<String>,
}

impl ImportedTrace {
    /// A trace of `messages` with its hash, and no labels, mistake or
    /// expected answer yet.
    pub fn new(
        source_id: String,
        source: Map<String, Value>,
        task: String,
        messages: Vec<ImportedMessage>,
    ) -> Self {
        ImportedTrace {
            source_id,
            source,
            task,
            content_hash: content_hash(&messages),
            messages,
            labels: Vec::new(),
            mistake: None,
            expected: None,
        }
    }
}

/// One message of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMessage {
    /// The agent that sent it, when the source says.
    pub sender: Option<String>,
    /// The role as the source names it (a chat role such as `assistant`, or
    /// an agent's profile such as MetaGPT's `SimpleCoder`).
    pub role: Option<String>,
    pub text: String,
}

/// One rater's verdict on one failure mode of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLabel {
    /// Who gave it: `mad:annotator_1`, `mad:o1`, `import` (messages files).
    pub rater: String,
    /// `None`: the judge file lists the name as having no counterpart among
    /// the fourteen modes; the label is kept under `original`.
    pub mode: Option<FailureMode>,
    /// The label as the source named it, e.g. "1.2 Inconsistency between
    /// reasoning and action", or "1.1" (MAD full file).
    pub original: String,
    /// Whether the rater saw the failure; `None` when the source gives no
    /// verdict.
    pub present: Option<bool>,
    pub agent: Option<String>,
    pub turn: Option<u64>,
}

/// The agent and step a source blames for a failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    pub agent: String,
    /// 0-based index into the trace's messages.
    pub step: u64,
    pub reason: Option<String>,
}

/// What one read of a source produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imported {
    pub traces: Vec<ImportedTrace>,
    /// Original labels that mapped to no 14-mode code, deduplicated, sorted.
    pub unmapped: Vec<String>,
}

impl Imported {
    /// The traces, with the originals of their unmapped labels gathered.
    pub fn new(traces: Vec<ImportedTrace>) -> Self {
        let mut unmapped: Vec<String> = traces
            .iter()
            .flat_map(|t| &t.labels)
            .filter(|l| l.mode.is_none())
            .map(|l| l.original.clone())
            .collect();
        unmapped.sort();
        unmapped.dedup();
        Imported { traces, unmapped }
    }
}

/// The identity of a trace's content: blake3 over each message's sender
/// and text, length-prefixed so that no two different conversations
/// concatenate to the same bytes; hex, first 32 characters.
pub fn content_hash(messages: &[ImportedMessage]) -> String {
    let mut hasher = blake3::Hasher::new();
    for message in messages {
        for part in [message.sender.as_deref(), Some(message.text.as_str())] {
            match part {
                None => hasher.update(&[0]),
                Some(s) => hasher
                    .update(&[1])
                    .update(&(s.len() as u64).to_le_bytes())
                    .update(s.as_bytes()),
            };
        }
    }
    hasher.finalize().to_hex()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: Option<&str>, text: &str) -> ImportedMessage {
        ImportedMessage {
            sender: sender.map(str::to_owned),
            role: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn content_hash_separates_sender_and_text_boundaries() {
        let a = content_hash(&[message(Some("ab"), "c")]);
        let b = content_hash(&[message(Some("a"), "bc")]);
        let c = content_hash(&[message(None, "abc")]);
        let d = content_hash(&[message(Some(""), "abc")]);
        assert_eq!(a.len(), 32);
        assert!(a != b && a != c && b != c && c != d, "{a} {b} {c} {d}");
        assert_eq!(a, content_hash(&[message(Some("ab"), "c")]));
    }

    #[test]
    fn unmapped_gathers_each_original_once_in_order() {
        let label = |mode, original: &str| ImportedLabel {
            rater: "r".into(),
            mode,
            original: original.into(),
            present: None,
            agent: None,
            turn: None,
        };
        let mut t = ImportedTrace::new("1".into(), Map::new(), String::new(), vec![]);
        t.labels = vec![
            label(None, "b"),
            label(Some(FailureMode::StepRepetition), "x"),
            label(None, "a"),
            label(None, "b"),
        ];
        assert_eq!(Imported::new(vec![t]).unmapped, ["a", "b"]);
    }
}
