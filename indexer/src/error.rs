//! The indexer's one error type. User errors (bad input a caller can fix) are kept apart from
//! internal ones so the server can map each to the right status without leaking internals.

use std::path::PathBuf;

/// Result alias used throughout the indexer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not something the indexer accepts; the message says why and is safe to show.
    #[error(transparent)]
    User(#[from] UserError),
    /// A fault in the engine or its environment; details go to logs, not to end users.
    #[error("internal indexer error: {0}")]
    Internal(String),
}

/// Problems with input, each with a message meant for the person who supplied it.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{name} is not a PDF file (it does not start with %PDF-)")]
    NotPdf { name: String },
    #[error("{name} is encrypted; upload an unencrypted copy")]
    EncryptedPdf { name: String },
    #[error("{name} could not be read as a PDF: {reason}")]
    CorruptPdf { name: String, reason: String },
    #[error("{name} contains no extractable text (is it a scanned image?)")]
    NoText { name: String },
    #[error("model file missing: {} ({hint})", path.display())]
    MissingModelFile { path: PathBuf, hint: String },
    #[error("the ONNX Runtime library could not be loaded: {0}")]
    OnnxRuntime(String),
    #[error("invalid value for {field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
    #[error("the search query is empty")]
    EmptyQuery,
}

impl Error {
    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Error::Internal(format!("{context}: {err}"))
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(err: tantivy::TantivyError) -> Self {
        Error::internal("tantivy", err)
    }
}
