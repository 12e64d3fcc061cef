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
        // The names are ASCII literals (a test checks), so this never falls back.
        self.as_c_str().to_str().unwrap_or("")
    }

    /// The name as a NUL-terminated string, the same text as
    /// [`as_str`](Self::as_str): what the C ABI's `ballot_result_str` gives.
    /// Static, never freed.
    pub fn as_c_str(self) -> &'static std::ffi::CStr {
        match self {
            ErrorKind::InvalidArgument => c"invalid_argument",
            ErrorKind::Connection => c"connection",
            ErrorKind::Timeout => c"timeout",
            ErrorKind::NotLeader => c"not_leader",
            ErrorKind::NoLeader => c"no_leader",
            ErrorKind::SessionLost => c"session_lost",
            ErrorKind::Ended => c"ended",
            ErrorKind::Closed => c"closed",
            ErrorKind::Auth => c"auth",
            ErrorKind::Backend => c"backend",
            ErrorKind::Internal => c"internal",
            ErrorKind::Cancelled => c"cancelled",
        }
    }

    /// The stable numeric code of the kind: 1 to 12 in declaration order, the same
    /// numbers as the C ABI's `ballot_result` (0 is success there). A code is never
    /// reused or renumbered; a retired kind keeps its code reserved.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::InvalidArgument => 1,
            ErrorKind::Connection => 2,
            ErrorKind::Timeout => 3,
            ErrorKind::NotLeader => 4,
            ErrorKind::NoLeader => 5,
            ErrorKind::SessionLost => 6,
            ErrorKind::Ended => 7,
            ErrorKind::Closed => 8,
            ErrorKind::Auth => 9,
            ErrorKind::Backend => 10,
            ErrorKind::Internal => 11,
            ErrorKind::Cancelled => 12,
        }
    }

    /// The kind with this [`code`](Self::code), if any.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind with this [`name`](Self::as_str), if any.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// One sentence saying what the kind means, for the documentation that the
    /// bindings derive from this table (Python docstrings, for example).
    pub fn description(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => {
                "A value, name, URL or option is not acceptable, or the handle's state does not allow the operation."
            }
            ErrorKind::Connection => "The backend could not be reached or the connection broke.",
            ErrorKind::Timeout => "The operation did not finish within its timeout.",
            ErrorKind::NotLeader => "The operation needs leadership and this handle does not hold it.",
            ErrorKind::NoLeader => "The election has no leader.",
            ErrorKind::SessionLost => "The session was lost while the operation ran.",
            ErrorKind::Ended => "The election was ended by end(), from this or any other participant.",
            ErrorKind::Closed => "The client or election handle was closed.",
            ErrorKind::Auth => "The backend refused the credentials or the permission.",
            ErrorKind::Backend => "The backend answered with an error that fits no other kind.",
            ErrorKind::Internal => "A bug or broken invariant inside ballot (please report it).",
            ErrorKind::Cancelled => "The operation was cancelled by the caller.",
        }
    }

    /// Every kind, in declaration order, which is the order of the codes (used by
    /// bindings to build their tables).
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

    /// The table every surface derives from. A failure here means a code or a name
    /// changed: that breaks every C, Python and Node program that stored one. Add
    /// new kinds at the end with the next code instead.
    #[test]
    fn codes_and_names_never_change() {
        let pinned = [
            (ErrorKind::InvalidArgument, 1, "invalid_argument"),
            (ErrorKind::Connection, 2, "connection"),
            (ErrorKind::Timeout, 3, "timeout"),
            (ErrorKind::NotLeader, 4, "not_leader"),
            (ErrorKind::NoLeader, 5, "no_leader"),
            (ErrorKind::SessionLost, 6, "session_lost"),
            (ErrorKind::Ended, 7, "ended"),
            (ErrorKind::Closed, 8, "closed"),
            (ErrorKind::Auth, 9, "auth"),
            (ErrorKind::Backend, 10, "backend"),
            (ErrorKind::Internal, 11, "internal"),
            (ErrorKind::Cancelled, 12, "cancelled"),
        ];
        assert_eq!(ErrorKind::ALL.len(), pinned.len(), "a kind was added: pin its code and name here");
        for (i, (kind, code, name)) in pinned.into_iter().enumerate() {
            assert_eq!(ErrorKind::ALL[i], kind, "ALL is in code order");
            assert_eq!(kind.code(), code, "{kind:?}");
            assert_eq!(kind.as_str(), name, "{kind:?}");
            assert_eq!(ErrorKind::from_code(code), Some(kind));
            assert_eq!(ErrorKind::from_name(name), Some(kind));
            assert!(kind.description().ends_with('.'), "{kind:?} has a sentence");
        }
        assert_eq!(ErrorKind::from_code(0), None, "0 is success in C, never a kind");
        assert_eq!(ErrorKind::from_name("unknown"), None);
    }

    #[test]
    fn kind_names_are_unique() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
