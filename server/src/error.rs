//! The server's one error type. User errors carry a message that is safe to show; internal
//! errors are logged with the request id and shown only as "something went wrong".

/// Result alias for the server crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: the message is shown to the user.
    #[error("{0}")]
    User(String),
    /// The actor is not allowed to do this; the action has been audited.
    #[error("you are not allowed to do that")]
    Forbidden,
    #[error("not signed in")]
    Unauthenticated,
    /// A bearer token was refused; the message says why (revoked, expired, unknown).
    #[error("{0}")]
    Token(String),
    #[error("not found")]
    NotFound,
    /// Too much work is running and waiting already; the caller should retry shortly.
    #[error("too many requests are being served; try again shortly")]
    Overloaded,
    /// This principal asked faster than its rate limit; it may try again after this many seconds.
    #[error("asking too fast; try again in {0} s")]
    RateLimited(u64),
    /// The database cannot be reached or failed; answers fail closed.
    #[error("storage unavailable: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn user(msg: impl Into<String>) -> Self {
        Error::User(msg.into())
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Error::Internal(format!("{context}: {err}"))
    }
}

impl From<indexer::Error> for Error {
    fn from(err: indexer::Error) -> Self {
        match err {
            indexer::Error::User(e) => Error::User(e.to_string()),
            indexer::Error::Internal(e) => Error::Internal(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::internal("i/o", err)
    }
}
