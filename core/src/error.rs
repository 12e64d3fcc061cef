//! The one error type of the library and its kinds.

use std::fmt;
use std::sync::Arc;

/// What went wrong, in the categories that every language binding maps one-to-one
/// (C result codes, Python exception classes, Node error codes).
///
/// New kinds may be added; existing kinds are never renumbered or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A caller-supplied value is not acceptable: an election name, a value, a URL,
    /// an option, or an operation that the handle's current state does not allow.
    InvalidArgument,
    /// The backend could not be reached or the connection broke.
    Connection,
    /// The operation did not finish within its timeout.
    Timeout,
    /// The operation needs leadership and this handle does not hold it.
    NotLeader,
    /// The election has no leader.
    NoLeader,
    /// The session (lease, ZooKeeper session, Consul session) was lost while the
    /// operation ran, and the operation could not be carried over to a new one.
    SessionLost,
    /// The election was ended by `end()` (from this or any other participant).
    Ended,
    /// The client or election handle was closed.
    Closed,
    /// The backend refused the credentials or the permission.
    Auth,
    /// The backend answered with an error that fits no other kind.
    Backend,
    /// A bug or broken invariant inside ballot (please report it).
    Internal,
    /// The operation was cancelled by the caller (for example from another thread
    /// through a [`CancelToken`](crate::blocking::CancelToken)).
    Cancelled,
}

impl ErrorKind {
    /// A short stable name, such as `"not_leader"`, used in CLI output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NotLeader => "not_leader",
            ErrorKind::NoLeader => "no_leader",
            ErrorKind::SessionLost => "session_lost",
            ErrorKind::Ended => "ended",
            ErrorKind::Closed => "closed",
            ErrorKind::Auth => "auth",
            ErrorKind::Backend => "backend",
            ErrorKind::Internal => "internal",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Every kind, in declaration order (used by bindings to build their tables).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::NotLeader,
        ErrorKind::NoLeader,
        ErrorKind::SessionLost,
        ErrorKind::Ended,
        ErrorKind::Closed,
        ErrorKind::Auth,
        ErrorKind::Backend,
        ErrorKind::Internal,
        ErrorKind::Cancelled,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from ballot: a [`kind`](Error::kind), a message naming the cause, and
/// the underlying error (if any) as [`source`](std::error::Error::source).
///
/// `Error` is cheap to clone (the source is shared) and is `Send + Sync`.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of `kind` with a message that names the cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// Attaches the underlying error, kept as [`source`](std::error::Error::source).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message alone, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn closed() -> Self {
        Error::new(ErrorKind::Closed, "the election handle or its client is closed")
    }

    pub(crate) fn ended() -> Self {
        Error::new(ErrorKind::Ended, "the election was ended by end()")
    }

    pub(crate) fn io(kind: ErrorKind, what: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(kind, format!("{what}: {err}")).with_source(err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result<T, ballot::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_cause_and_keeps_source() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::io(ErrorKind::Backend, "opening /x", io);
        assert_eq!(e.to_string(), "backend: opening /x: denied");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.kind(), ErrorKind::Backend);
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
