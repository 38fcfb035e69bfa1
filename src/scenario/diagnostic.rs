//! Diagnostics: one problem in a user's file, located at `path:line:col`.
//!
//! The loader and validator never stop at the first problem: they push every
//! [`Diagnostic`] they find into a [`Diagnostics`] list, and the command line
//! renders the whole list at once. Each diagnostic keeps the source line it
//! points at, so rendering needs no file access.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub const fn new(line: usize, col: usize) -> Self {
        Span { line, col }
    }
}

/// A file's text, kept so that diagnostics can quote the offending line.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The text of 1-based line `line`, without its line ending.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        if line == 0 {
            return None;
        }
        self.text
            .lines()
            .nth(line - 1)
            .map(|l| l.trim_end_matches('\r'))
    }

    /// An error diagnostic at `span` in this file.
    pub fn error(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            span,
            message: message.into(),
            snippet: self.line_text(span.line).map(str::to_owned),
        }
    }
}

/// One error in a user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub span: Span,
    pub message: String,
    /// The source line `span` points into, when known.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// A diagnostic about a whole file (e.g. one that cannot be read).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            span: Span::new(1, 1),
            message: message.into(),
            snippet: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    /// `path:line:col: error: message`, then the source line with a caret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path.display(),
            self.span.line,
            self.span.col,
            self.message
        )?;
        if let Some(line) = &self.snippet {
            let number = self.span.line.to_string();
            let pad = " ".repeat(number.len());
            // Keep tabs so the caret lines up under the same characters.
            let lead: String = line
                .chars()
                .take(self.span.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {number} | {line}\n {pad} | {lead}^")?;
        }
        Ok(())
    }
}

/// Every diagnostic found in one pass, in the order found.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorted by file, then position, without exact duplicates.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (&a.path, a.span).cmp(&(&b.path, b.span)));
        self.items.dedup();
        self.items
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.clone().into_sorted() {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" when a close candidate exists, else "".
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest(word, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: edits plus adjacent transpositions,
/// so `modle` is one step from `model`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_message_and_caret() {
        let src = SourceFile::new("s.yaml", "name: x\n  bad: 1\n");
        let d = src.error(Span::new(2, 3), "unknown key `bad`");
        assert_eq!(
            d.to_string(),
            "s.yaml:2:3: error: unknown key `bad`\n 2 |   bad: 1\n   |   ^"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("modle", ["model", "prompt"]), Some("model"));
        assert_eq!(suggest("zzz", ["model", "prompt"]), None);
    }
}
