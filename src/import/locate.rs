//! JSON records with their place in the file, so a problem found in a
//! parsed value (a missing field, a wrong type, an unknown label) is
//! reported at the line and column where it is written.
//!
//! serde_json's `Value` forgets positions, and the files are too varied for
//! typed deserialization to give useful messages. So the readers parse with
//! serde_json, check the `Value`, and only when something is wrong walk the
//! already-valid text along the offending value's path to find where it
//! starts.

use std::cell::OnceCell;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::scenario::diagnostic::{Diagnostic, Span};
pub use crate::scenario::json_text::kind;
use crate::scenario::json_text::{skip_string, skip_value, skip_ws};

/// One step of a path into a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A path as a message names it: `annotations[2].failure mode`.
pub struct PathName<'p, 'a>(pub &'p [Step<'a>]);

impl fmt::Display for PathName<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Something wrong with the value at `path` (relative to where the caller
/// looked), before it is placed in a file: `message` says what, after the
/// path (`must be a string, not a number`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Vec<Step<'static>>,
    pub message: String,
}

impl Problem {
    pub fn wrong_type(path: Vec<Step<'static>>, expected: &str, found: &Value) -> Self {
        Problem {
            path,
            message: must_be(expected, found),
        }
    }
}

/// A file's text, and where its lines start (found at the first
/// diagnostic). Diagnostics are built here rather than by
/// [`SourceFile::error`](crate::scenario::diagnostic::SourceFile::error),
/// which copies the text and finds the line by counting from the top: a
/// dataset of hundreds of megabytes with a problem in every record would
/// take hours.
pub struct Text<'a> {
    path: &'a Path,
    text: &'a str,
    line_starts: OnceCell<Vec<usize>>,
}

impl<'a> Text<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Text {
            path,
            text,
            line_starts: OnceCell::new(),
        }
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn span(&self, offset: usize) -> Span {
        let starts = self.line_starts();
        let line = starts.partition_point(|&s| s <= offset);
        let col = self.text[starts[line - 1]..offset].chars().count() + 1;
        Span::new(line, col)
    }

    /// An error at `span`, quoting its line.
    fn error_at_span(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        let starts = self.line_starts();
        let snippet = starts.get(span.line.wrapping_sub(1)).map(|&start| {
            let end = starts.get(span.line).map_or(self.text.len(), |&e| e);
            self.text[start..end]
                .trim_end_matches(['\n', '\r'])
                .to_owned()
        });
        Diagnostic {
            path: self.path.to_path_buf(),
            span,
            message: message.into(),
            snippet,
        }
    }

    /// An error at byte `offset` of the text.
    pub fn error(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        self.error_at_span(self.span(offset), message)
    }

    /// An error for JSON serde_json could not parse, at the position it
    /// names, counted from byte `start` of the text (a JSONL line).
    pub fn json_error(&self, start: usize, error: &serde_json::Error, hint: &str) -> Diagnostic {
        let first = self.span(start);
        let at = match error.line() {
            1 => Span::new(first.line, first.col + error.column().saturating_sub(1)),
            // At the end of the text serde_json says column 0.
            n => Span::new(first.line + n - 1, error.column().max(1)),
        };
        // serde_json's own text ends in " at line L column C", said better
        // by the diagnostic's location.
        let full = error.to_string();
        let what = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(w, _)| w);
        self.error_at_span(at, format!("not valid JSON: {what}{hint}"))
    }
}

/// One JSON record of a file — an array element, a JSONL line or the whole
/// file — and where it starts.
pub struct Record<'t> {
    value: Value,
    /// 1-based, among the file's records.
    number: usize,
    text: &'t Text<'t>,
    start: usize,
    /// What messages about this record begin with (`record 3 (trace_id
    /// 17)`); empty for a file that is one record.
    name: String,
}

impl<'t> Record<'t> {
    fn new(text: &'t Text<'t>, value: Value, number: usize, start: usize) -> Self {
        Record {
            value,
            number,
            text,
            start,
            name: String::new(),
        }
    }

    /// The 1-based line the record starts on.
    pub fn line(&self) -> usize {
        self.text.span(self.start).line
    }

    /// Name the record in messages as `record N`, followed by its `id_key`
    /// field when it has a string or number there: `record 3 (trace_id 17)`.
    pub fn name_by(&mut self, id_key: &str) {
        self.name = format!("record {}", self.number);
        if let Some(id) = self.value.get(id_key).and_then(scalar_text) {
            self.name = format!("{} ({id_key} {id})", self.name);
        }
    }

    /// An error at the value `path` leads to in this record — or, where the
    /// path leaves the text (a missing field), at the last value on the way
    /// that exists.
    pub fn error(&self, path: &[Step], message: impl fmt::Display) -> Diagnostic {
        let at = offset(self.text.text.as_bytes(), self.start, path);
        let message = match self.name.as_str() {
            "" => message.to_string(),
            name => format!("{name}: {message}"),
        };
        self.text.error(at, message)
    }

    /// The value at `path`, if there is one.
    pub fn get(&self, path: &[Step]) -> Option<&Value> {
        path.iter().try_fold(&self.value, |v, step| match step {
            Step::Key(k) => v.get(k),
            Step::Index(i) => v.get(i),
        })
    }

    /// The value at `path`, or an error saying it is missing.
    pub fn require(&self, path: &[Step]) -> Result<&Value, Diagnostic> {
        self.get(path)
            .ok_or_else(|| self.error(path, format!("missing field `{}`", PathName(path))))
    }

    /// The record's object.
    pub fn object(&self) -> Result<&Map<String, Value>, Diagnostic> {
        self.value
            .as_object()
            .ok_or_else(|| self.wrong_type(&[], "a JSON object", &self.value))
    }

    /// The list at `path`, which must be there; `expected` says of what.
    pub fn require_list(&self, path: &[Step], expected: &str) -> Result<&[Value], Diagnostic> {
        match self.require(path)? {
            Value::Array(list) => Ok(list),
            other => Err(self.wrong_type(path, expected, other)),
        }
    }

    /// The string at `path`; `None` when it is absent or null.
    pub fn optional_str(&self, path: &[Step]) -> Result<Option<&str>, Diagnostic> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(path, "a string", other)),
        }
    }

    /// The string at `path`, which must be there.
    pub fn require_str(&self, path: &[Step]) -> Result<&str, Diagnostic> {
        match self.require(path)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(path, "a string", other)),
        }
    }

    /// An error saying the value at `path` should have been `expected`.
    pub fn wrong_type(&self, path: &[Step], expected: &str, found: &Value) -> Diagnostic {
        self.about(path, &must_be(expected, found))
    }

    /// An error for `problem`, found in the value at `prefix`.
    pub fn report(&self, prefix: &[Step], problem: &Problem) -> Diagnostic {
        let path: Vec<Step> = prefix.iter().chain(&problem.path).copied().collect();
        self.about(&path, &problem.message)
    }

    /// An error at `path` whose message is the path, then `predicate`.
    fn about(&self, path: &[Step], predicate: &str) -> Diagnostic {
        match path {
            [] => self.error(path, predicate),
            _ => self.error(path, format!("`{}` {predicate}", PathName(path))),
        }
    }
}

/// The diagnostics of one record or file, gathered so that one problem
/// does not hide the next.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<Diagnostic>);

impl Errors {
    /// The value, or `None` with its diagnostic kept.
    pub fn one<T>(&mut self, result: Result<T, Diagnostic>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    /// The value, or `None` with its diagnostics kept.
    pub fn all<T>(&mut self, result: Result<T, Vec<Diagnostic>>) -> Option<T> {
        result.map_err(|mut e| self.0.append(&mut e)).ok()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// `value` when nothing was wrong, else every diagnostic, in the order
    /// of the files and of the places in them.
    pub fn or<T>(mut self, value: T) -> Result<T, Vec<Diagnostic>> {
        if self.0.is_empty() {
            return Ok(value);
        }
        self.0
            .sort_by(|a, b| (&a.path, a.span).cmp(&(&b.path, b.span)));
        Err(self.0)
    }
}

/// A string or number as text (ids are written both ways).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// "must be `expected`, not" what was `found`.
fn must_be(expected: &str, found: &Value) -> String {
    format!("must be {expected}, not {}", kind(found))
}

/// The records of a JSON array (the text starts with `[`) or of JSONL (one
/// per non-blank line), each problem a diagnostic.
pub fn records<'t>(text: &'t Text<'t>) -> Result<Vec<Record<'t>>, Vec<Diagnostic>> {
    match readable_records(text) {
        (records, errors) if errors.is_empty() => Ok(records),
        (_, errors) => Err(errors),
    }
}

/// [`records`], but the records that could be parsed are kept beside the
/// diagnostics of those that could not (JSONL lines; a JSON array is read
/// whole or not at all), so that a reader can report the problems of the
/// good ones too.
pub fn readable_records<'t>(text: &'t Text<'t>) -> (Vec<Record<'t>>, Vec<Diagnostic>) {
    let bytes = text.text.as_bytes();
    let first = skip_ws(bytes, 0);
    if bytes.get(first) == Some(&b'[') {
        return match serde_json::from_str::<Vec<Value>>(text.text) {
            Ok(values) => (
                values
                    .into_iter()
                    .zip(elements(bytes, first))
                    .enumerate()
                    .map(|(i, (value, start))| Record::new(text, value, i + 1, start))
                    .collect(),
                Vec::new(),
            ),
            Err(e) => (Vec::new(), vec![text.json_error(0, &e, "")]),
        };
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut start = 0;
    for line in text.text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            // Without its line ending, so that a truncated record's error
            // is on its own line.
            match serde_json::from_str::<Value>(line.trim_end_matches(['\n', '\r'])) {
                Ok(value) => out.push(Record::new(text, value, out.len() + 1, start)),
                Err(e) => errors.push(text.json_error(
                    start,
                    &e,
                    " (a JSONL file holds one JSON record per line; a JSON file, one array of records)",
                )),
            }
        }
        start += line.len();
    }
    (out, errors)
}

/// A file that is one JSON value, as one record.
pub fn document<'t>(text: &'t Text<'t>) -> Result<Record<'t>, Diagnostic> {
    let value = serde_json::from_str(text.text).map_err(|e| text.json_error(0, &e, ""))?;
    let start = skip_ws(text.text.as_bytes(), 0);
    Ok(Record::new(text, value, 1, start))
}

/// The start of each element of the array whose `[` is at `i`.
fn elements(b: &[u8], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, i + 1);
    while b.get(i).is_some_and(|&c| c != b']') {
        out.push(i);
        i = skip_ws(b, skip_value(b, i));
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    out
}

/// The start of the value for `key` in the object whose `{` is at `i`.
fn member(b: &[u8], i: usize, key: &str) -> Option<usize> {
    let mut i = skip_ws(b, i + 1);
    while b.get(i) == Some(&b'"') {
        let end = skip_string(b, i);
        let name: Option<String> = std::str::from_utf8(&b[i..end])
            .ok()
            .and_then(|s| serde_json::from_str(s).ok());
        let value = skip_ws(b, skip_ws(b, end) + 1);
        if name.as_deref() == Some(key) {
            return Some(value);
        }
        i = skip_ws(b, skip_value(b, value));
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    None
}

/// The start of the value `path` leads to from the value at `start`, or of
/// the last value on the way that exists.
fn offset(b: &[u8], start: usize, path: &[Step]) -> usize {
    let mut at = start;
    for step in path {
        let next = match (step, b.get(at)) {
            (Step::Key(k), Some(b'{')) => member(b, at, k),
            (Step::Index(n), Some(b'[')) => elements(b, at).get(*n).copied(),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[\n  {\"a\": 1, \"b\\\"\": {\"c\": [10, \"x]\", {\"d\": null}]}},\n  {\"é\": \"ü\", \"a\": 2}\n]\n";

    #[test]
    fn paths_lead_to_where_values_are_written() {
        let t = Text::new(Path::new("t.json"), TEXT);
        let records = records(&t).unwrap();
        assert_eq!(records.len(), 2);
        let at = |r: &Record, path: &[Step]| r.error(path, "m").span;
        let first = &records[0];
        assert_eq!(at(first, &[]), Span::new(2, 3));
        assert_eq!(at(first, &[Step::Key("a")]), Span::new(2, 9));
        let d = [
            Step::Key("b\""),
            Step::Key("c"),
            Step::Index(2),
            Step::Key("d"),
        ];
        assert_eq!(at(first, &d), Span::new(2, 42));
        // A missing field points at the object that lacks it.
        assert_eq!(
            at(first, &[Step::Key("b\""), Step::Key("zz")]),
            Span::new(2, 19)
        );
        // Columns count characters, not bytes.
        assert_eq!(at(&records[1], &[Step::Key("a")]), Span::new(3, 19));
    }

    #[test]
    fn jsonl_errors_are_at_the_line_serde_json_names() {
        let text = "{\"a\": 1}\n\n{\"a\": }\n{\"a\": 3}\n{\"a\":\n";
        let t = Text::new(Path::new("t.jsonl"), text);
        let errors = records(&t).err().unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].span, Span::new(3, 7));
        let message = &errors[0].message;
        assert!(
            message.starts_with("not valid JSON: expected value"),
            "{message}"
        );
        assert_eq!(errors[0].snippet.as_deref(), Some("{\"a\": }"));
        // A truncated line: the error is at its end, not on the next line.
        assert_eq!(errors[1].span, Span::new(5, 5));
    }

    #[test]
    fn messages_name_the_record_and_path() {
        let t = Text::new(Path::new("t.json"), TEXT);
        let mut second = records(&t).unwrap().remove(1);
        second.name_by("a");
        let e = second.require_str(&[Step::Key("a")]).unwrap_err();
        assert_eq!(
            e.message,
            "record 2 (a 2): `a` must be a string, not a number"
        );
        let e = second.require(&[Step::Key("q")]).unwrap_err();
        assert_eq!(e.message, "record 2 (a 2): missing field `q`");
    }
}
