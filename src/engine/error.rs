//! The library's error type: what can go wrong in a command, with the
//! context a person needs to act on it.

use crate::scenario::diagnostic::Diagnostic;
use crate::store::{ExportError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario (or a file it names) is invalid; nothing was run or written.
    #[error("{} error(s) in the scenario", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// Something the run needs is missing (an API key, a TLS client).
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Exit status: 2 for bad input, 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            _ => 1,
        }
    }
}
