//! Judge files (`judges/*.yaml`): a failure taxonomy and the judge that
//! applies it — the modes with their definitions, the names earlier
//! taxonomy versions gave them (for import), and the prompt.

use crate::scenario::failure::FailureMode;

/// What a failure mode's name from elsewhere (an imported file, an earlier
/// taxonomy version) is, in a judge file's taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// One of the taxonomy's modes, by its name or a listed alias.
    Mode(FailureMode),
    /// A name the judge file lists as having no counterpart: kept under its
    /// own label.
    Unmapped,
    /// A name the judge file does not know.
    Unknown,
}

/// A mode's name as compared: lowercase words, punctuation and extra
/// spaces dropped, so "Derailment from task " and "derailment from task"
/// are one name.
pub fn normalized_name(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}
