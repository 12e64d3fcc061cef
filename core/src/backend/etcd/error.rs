//! etcd-client errors as ballot errors, for the backend and its watch hub.

use etcd_client as ec;

use crate::error::{Error, ErrorKind};

/// Maps an etcd-client error to a ballot error; `what` names the operation.
pub(super) fn map_err(what: &str, e: ec::Error) -> Error {
    use tonic::Code;
    let kind = match &e {
        ec::Error::GRpcStatus(s) => {
            let msg = s.message();
            match s.code() {
                Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Auth,
                Code::InvalidArgument | Code::FailedPrecondition
                    if msg.contains("authentication failed")
                        || msg.contains("user name is empty")
                        || msg.contains("auth")
                        || msg.contains("permission denied") =>
                {
                    ErrorKind::Auth
                }
                // A value above a server's --max-request-bytes (smaller than the
                // default that the backend's MAX_VALUE is computed for): the caller's input.
                Code::InvalidArgument if msg.contains("request is too large") => ErrorKind::InvalidArgument,
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => ErrorKind::Connection,
                Code::Unknown if msg.contains("transport") || msg.contains("connect") => ErrorKind::Connection,
                _ => ErrorKind::Backend,
            }
        }
        ec::Error::TransportError(_) | ec::Error::IoError(_) => ErrorKind::Connection,
        ec::Error::InvalidArgs(_) | ec::Error::InvalidUri(_) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("etcd {what}: {e}")).with_source(e)
}

/// Whether an error says that the lease does not exist any more.
pub(super) fn lease_gone(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => s.code() == tonic::Code::NotFound || s.message().contains("lease not found"),
        ec::Error::LeaseKeepAliveError(m) => m.contains("not found"),
        _ => false,
    }
}
