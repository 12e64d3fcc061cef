//! What a client is configured with: [`Options`], [`Credentials`], [`TlsOptions`],
//! and the default backend URL.
//!
//! This file sits low in the crate: the backends read the options they are
//! connected with, and the client resolves them against the URL.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::url::{check_duration, BackendUrl};

/// The backend used when none is given: the local backend in
/// `$XDG_STATE_HOME/ballot` (by default `~/.local/state/ballot`), or in
/// `/var/lib/ballot` for root.
///
/// Not in a temporary directory: cleaners such as systemd-tmpfiles delete files
/// there that nobody touched for days (a stable leadership touches nothing), and a
/// tmpfs loses the persisted terms at every reboot.
pub fn default_backend_url() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = default_local_dir(root, std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"));
    format!("file://{}", dir.display())
}

/// The default local directory, from the facts `default_backend_url` reads.
fn default_local_dir(root: bool, xdg_state_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    // The XDG base directory spec: a relative (or empty) value is invalid and ignored.
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if root {
        return PathBuf::from("/var/lib/ballot");
    }
    if let Some(state) = absolute(xdg_state_home) {
        return state.join("ballot");
    }
    match absolute(home) {
        Some(home) => home.join(".local/state/ballot"),
        // No home to put it in: the system location, where a user without the right
        // to write gets a clear error from connect() rather than a silent elsewhere.
        None => PathBuf::from("/var/lib/ballot"),
    }
}

/// Credentials for a backend: a user and password (etcd, ZooKeeper digest) or a
/// token (Consul ACL). `Debug` prints neither the secret nor the user name.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// User name and password.
    Password {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { .. } => {
                f.debug_struct("Password").field("user", &"***").field("password", &"***").finish()
            }
            Credentials::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// TLS settings: PEM files for the CA bundle and for an optional client identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates that verify the server (PEM). None: the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    pub key: Option<PathBuf>,
}

/// Client settings, built with `with_*` methods. Options in the backend URL's query
/// (`ttl=`, `margin=`, `connect_timeout=`) override the values set here.
///
/// The builders accept any value; [`Client::connect`](crate::Client::connect)
/// checks the result and refuses a duration out of its range with an
/// `InvalidArgument` error that names the option (the ranges are in the README's
/// URL section: TTL 1 s to 24 h, margin below the TTL, connect timeout 1 ms to 1 h).
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) ttl: Duration,
    pub(crate) margin: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) auto_requeue: bool,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) credentials: Option<Credentials>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ttl: Duration::from_secs(10),
            margin: None,
            connect_timeout: Duration::from_secs(5),
            auto_requeue: true,
            tls: None,
            credentials: None,
        }
    }
}

impl Options {
    /// Session TTL (default 10 s): how long the backend keeps the session of a
    /// silent client. Keepalives are sent every TTL/3. From 1 s to 24 h (checked
    /// by [`Client::connect`](crate::Client::connect)); Consul's minimum is 10 s.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Safety margin (default TTL/5): leadership is reported lost at
    /// `send time of the last acknowledged keepalive + TTL - margin`, so that it is
    /// reported before the backend could let another candidate win. Must be
    /// smaller than the TTL (checked by [`Client::connect`](crate::Client::connect)).
    ///
    /// The deadline counts `CLOCK_BOOTTIME`, so time the host spent suspended
    /// counts too. A process or VM that is paused cannot check anything while
    /// paused: the margin does not cover that, fencing with the term does.
    pub fn with_safety_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// How long `connect` may take (default 5 s) before a `Timeout` error. From
    /// 1 ms to 1 h (checked by [`Client::connect`](crate::Client::connect)).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether a leader that lost its leadership (for example because its session
    /// expired) joins the election again with its last value (default true).
    ///
    /// Such a campaign keeps going through transient failures (`Connection`,
    /// `Timeout`, `SessionLost`, `Backend`): each one is reported as an
    /// `Event::Error` and retried after a pause that grows from 200 ms to 5 s. Any
    /// other error ends it, reported the same way, and the handle is `Idle`.
    pub fn with_auto_requeue(mut self, on: bool) -> Self {
        self.auto_requeue = on;
        self
    }

    /// TLS settings for backends that speak TLS.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Credentials for the backend. Credentials in the URL take precedence.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The TTL in force.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The safety margin in force (TTL/5 unless set).
    pub fn safety_margin(&self) -> Duration {
        self.margin.unwrap_or(self.ttl / 5)
    }

    /// Whether auto-requeue is on.
    pub fn auto_requeue(&self) -> bool {
        self.auto_requeue
    }

    /// Applies URL overrides and checks ranges.
    pub(crate) fn resolve(mut self, url: &BackendUrl) -> Result<Options> {
        crate::surface::check_contradictions(&self, url)?;
        // Builder values are checked against the same ranges as URL options (a URL
        // value was checked when the URL was parsed), also when the URL overrides
        // them: a bad value is reported, not silently replaced.
        let check = |name: &str, shown: &str, d: Duration| {
            check_duration(name, d)
                .map_err(|m| Error::invalid(format!("{shown} {} is out of range: {m}", show_duration_exact(d))))
        };
        check("ttl", "ttl", self.ttl)?;
        if let Some(m) = self.margin {
            check("margin", "safety margin", m)?;
        }
        check("connect_timeout", "connect_timeout", self.connect_timeout)?;
        if let Some(t) = url.duration("ttl")? {
            self.ttl = t;
        }
        if let Some(m) = url.duration("margin")? {
            self.margin = Some(m);
        }
        if let Some(c) = url.duration("connect_timeout")? {
            self.connect_timeout = c;
        }
        if self.safety_margin() >= self.ttl {
            return Err(Error::invalid(format!(
                "safety margin {:?} must be smaller than the ttl {:?}",
                self.safety_margin(),
                self.ttl
            )));
        }
        if let (Some(user), Some(pw)) = (&url.user, &url.password) {
            self.credentials = Some(Credentials::Password { user: user.clone(), password: pw.0.clone() });
        } else if let Some(user) = &url.user {
            // A bare userinfo is a token (consul://TOKEN@host).
            self.credentials = Some(Credentials::Token(user.clone()));
        }
        Ok(self)
    }
}

/// A duration as given, for messages (`Debug` of a huge one is unwieldy but exact).
fn show_duration_exact(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_not_a_temporary_one() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(default_local_dir(true, s("/x/state"), s("/root")), PathBuf::from("/var/lib/ballot"));
        assert_eq!(default_local_dir(false, s("/x/state"), s("/home/u")), PathBuf::from("/x/state/ballot"));
        assert_eq!(default_local_dir(false, None, s("/home/u")), PathBuf::from("/home/u/.local/state/ballot"));
        // Relative or empty values are invalid (XDG spec) and ignored.
        assert_eq!(default_local_dir(false, s("rel"), s("/home/u")), PathBuf::from("/home/u/.local/state/ballot"));
        assert_eq!(default_local_dir(false, s(""), s("/home/u")), PathBuf::from("/home/u/.local/state/ballot"));
        assert_eq!(default_local_dir(false, None, None), PathBuf::from("/var/lib/ballot"));
        let url = default_backend_url();
        assert!(url.starts_with("file:///") && url.ends_with("/ballot"), "{url}");
    }
}
