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
    /// CA certificates that verify the server (PEM). None: the system roots
    /// (etcd, Consul, PostgreSQL); the ZooKeeper backend (`zks://`) requires a file.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    pub key: Option<PathBuf>,
}

/// Client settings, built with `with_*` methods.
///
/// The backend URL can carry some of them too: `ttl=`, `margin=`,
/// `connect_timeout=`, the credentials (`user:password@`, `TOKEN@`) and the TLS
/// files (`ca=`, `cert=`, `key=`). Neither place overrides the other: an option
/// given in one place is used, one given in both with the same value too, and one
/// given in both with different values (or `tls=0` in the URL beside
/// [`with_tls`](Options::with_tls)) makes
/// [`Client::connect`](crate::Client::connect) fail with an `InvalidArgument`
/// error that names the option and never shows a secret.
///
/// The builders accept any value; [`validate`](Options::validate) and
/// [`Client::connect`](crate::Client::connect) refuse a duration out of its range
/// with an `InvalidArgument` error that names the option (the ranges are in the
/// README's URL section: TTL 1 s to 24 h, margin below the TTL, connect timeout
/// 1 ms to 1 h).
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) ttl: Duration,
    pub(crate) margin: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) auto_requeue: bool,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) credentials: Option<Credentials>,
    /// Whether `with_ttl` set the TTL, which the URL's `ttl=` (and ZooKeeper's
    /// `session_timeout=`) must then agree with; the default does not count.
    pub(crate) ttl_set: bool,
    /// Whether `with_connect_timeout` set the connect timeout (as `ttl_set`).
    connect_timeout_set: bool,
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
            ttl_set: false,
            connect_timeout_set: false,
        }
    }
}

impl Options {
    /// Session TTL (default 10 s): how long the backend keeps the session of a
    /// silent client. Keepalives are sent every TTL/3. From 1 s to 24 h (checked
    /// by [`Client::connect`](crate::Client::connect)); Consul's minimum is 10 s.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self.ttl_set = true;
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

    /// How long `connect` may take (default 5 s). From 1 ms to 1 h (checked by
    /// [`Client::connect`](crate::Client::connect)). A backend that cannot be
    /// reached is a `Connection` error that names the cause (etcd and PostgreSQL
    /// stop a little before the limit to report it that way); a connect that
    /// runs out of time otherwise is a `Timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.connect_timeout_set = true;
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

    /// Credentials for the backend. Credentials in the URL must be the same ones.
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

    /// Checks every duration set so far against its range, as
    /// [`Client::connect`](crate::Client::connect) does before anything else; for
    /// callers that want a bad value reported where it is set. That the margin is
    /// below the TTL is checked at connect, where the URL may still set either.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` naming the option and its range.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, shown: &str, d: Duration| {
            check_duration(name, d)
                .map(|_| ())
                .map_err(|m| Error::invalid(format!("{shown} {} is out of range: {m}", show_duration_exact(d))))
        };
        check("ttl", "ttl", self.ttl)?;
        if let Some(m) = self.margin {
            check("margin", "safety margin", m)?;
        }
        check("connect_timeout", "connect_timeout", self.connect_timeout)
    }

    /// Merges in what the URL gives (see the type's docs: the same option in both
    /// places must agree) and checks ranges.
    pub(crate) fn resolve(mut self, url: &BackendUrl) -> Result<Options> {
        check_contradictions(&self, url)?;
        // Builder values are checked against the same ranges as URL options (a URL
        // value was checked when the URL was parsed), also when the URL gives them
        // too: a bad value is reported, not silently replaced.
        self.validate()?;
        if let Some(t) = url.duration("ttl")? {
            agree("ttl", "ttl", self.ttl_set.then_some(self.ttl), t)?;
            self.ttl = t;
        }
        if let Some(m) = url.duration("margin")? {
            agree("margin", "safety margin", self.margin, m)?;
            self.margin = Some(m);
        }
        if let Some(c) = url.duration("connect_timeout")? {
            agree("connect_timeout", "connect timeout", self.connect_timeout_set.then_some(self.connect_timeout), c)?;
            self.connect_timeout = c;
        }
        if self.safety_margin() >= self.ttl {
            return Err(Error::invalid(format!(
                "safety margin {:?} must be smaller than the ttl {:?}",
                self.safety_margin(),
                self.ttl
            )));
        }
        let from_url = match (&url.user, &url.password) {
            (Some(user), Some(pw)) => Some(Credentials::Password { user: user.clone(), password: pw.0.clone() }),
            // A bare userinfo is a token (consul://TOKEN@host).
            (Some(user), None) => Some(Credentials::Token(user.clone())),
            _ => None,
        };
        if let Some(c) = from_url {
            if self.credentials.as_ref().is_some_and(|o| *o != c) {
                // Neither credential is shown, nor which part differs.
                return Err(Error::invalid(
                    "the credentials in the URL differ from the credentials in the options; give them in one place",
                ));
            }
            self.credentials = Some(c);
        }
        if let Some(tls) = &self.tls {
            for (k, set) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                if let (Some(u), Some(o)) = (url.option(k), set) {
                    if std::path::Path::new(u) != o {
                        return Err(Error::invalid(format!(
                            "the TLS {k} file is given twice, as {k}={u:?} in the URL and as {o:?} in the options; \
                             give it in one place, or the same file in both"
                        )));
                    }
                }
            }
            if url.flag("tls")? == Some(false) {
                return Err(Error::invalid("tls=0 in the URL contradicts the TLS settings in the options"));
            }
        }
        Ok(self)
    }
}

/// Refuses options that contradict each other or the backend of `url`, before
/// the URL's values are merged in (the `surface` module says how the URL and the
/// options combine). What a backend takes comes from its registry entry: TLS
/// files if its URLs take `ca=`, credentials if they name hosts (with a userinfo).
pub(crate) fn check_contradictions(options: &Options, url: &BackendUrl) -> Result<()> {
    let scheme = url.scheme.name;
    match &options.credentials {
        Some(Credentials::Password { user, password }) if user.is_empty() && !password.is_empty() => {
            return Err(Error::invalid("option password is set but username is not"));
        }
        Some(Credentials::Password { user, password }) if !user.is_empty() && password.is_empty() => {
            return Err(Error::invalid("option username is set but password is not"));
        }
        Some(_) if !url.takes_credentials() => {
            return Err(Error::invalid(format!("{scheme}:// takes no credentials (username, password, token)")));
        }
        _ => {}
    }
    if options.tls.is_some() && !url.takes_tls() {
        return Err(Error::invalid(format!(
            "{scheme}:// does not speak TLS: options tls_ca, tls_cert and tls_key are for backends that do"
        )));
    }
    Ok(())
}

/// The TLS files a connection uses, or `None` for plaintext: the options' files
/// with the URL's `ca=`, `cert=` and `key=` over them (`resolve` has refused the
/// two disagreeing). TLS is on for the TLS scheme (`tls_scheme`, such as `etcds`),
/// `tls=1`, or TLS files in the options unless `tls=0`.
///
/// # Errors
///
/// `InvalidArgument` for `tls=0` on the TLS scheme, and for TLS files on a
/// plaintext connection.
#[cfg(any(feature = "etcd", feature = "zookeeper"))]
pub(crate) fn tls_files(url: &BackendUrl, options: &Options, tls_scheme: &str) -> Result<Option<TlsOptions>> {
    let url_tls = url.flag("tls")?;
    if url_tls == Some(false) && url.scheme.tls {
        return Err(Error::invalid(format!("{tls_scheme}:// always uses TLS; tls=0 contradicts it")));
    }
    let mut files = options.tls.clone();
    for k in ["ca", "cert", "key"] {
        if let Some(v) = url.option(k) {
            let t = files.get_or_insert_with(TlsOptions::default);
            let slot = match k {
                "ca" => &mut t.ca,
                "cert" => &mut t.cert,
                _ => &mut t.key,
            };
            *slot = Some(PathBuf::from(v));
        }
    }
    let use_tls = url.scheme.tls || url_tls == Some(true) || (url_tls.is_none() && options.tls.is_some());
    if use_tls {
        return Ok(Some(files.unwrap_or_default()));
    }
    if files.as_ref().is_some_and(|t| t.ca.is_some() || t.cert.is_some() || t.key.is_some()) {
        return Err(Error::invalid(format!("ca, cert and key need TLS: use {tls_scheme}:// or tls=1")));
    }
    Ok(None)
}

/// Refuses a value that the URL gives (`from_url`) when the options set another.
fn agree(key: &str, shown: &str, from_options: Option<Duration>, from_url: Duration) -> Result<()> {
    match from_options {
        Some(o) if o != from_url => Err(Error::invalid(format!(
            "the {shown} is given twice, as {key}={} in the URL and as {} in the options; give it in one \
             place, or the same value in both",
            show_duration_exact(from_url),
            show_duration_exact(o)
        ))),
        _ => Ok(()),
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

    fn resolve(url: &str, o: Options) -> Result<Options> {
        o.resolve(&BackendUrl::parse(url).expect("a valid URL"))
    }

    /// Issue 15: an option given in the URL and in `Options` must agree; neither
    /// overrides the other, and a refusal never shows a secret.
    #[test]
    fn an_option_in_the_url_and_in_the_options_must_agree() {
        let secs = Duration::from_secs;
        // One place, or both with the same value: used.
        assert_eq!(resolve("file:///d?ttl=3s", Options::default()).unwrap().ttl(), secs(3));
        assert_eq!(resolve("file:///d", Options::default().with_ttl(secs(3))).unwrap().ttl(), secs(3));
        assert_eq!(resolve("file:///d?ttl=3s", Options::default().with_ttl(secs(3))).unwrap().ttl(), secs(3));
        // The default is not a setting: the URL gives the value.
        assert_eq!(resolve("file:///d?ttl=10s", Options::default()).unwrap().ttl(), secs(10));
        // Different values: refused, naming the option.
        let refused = |url: &str, o: Options, names: &str| {
            let e = resolve(url, o).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains(names), "{e}");
            e.to_string()
        };
        refused("file:///d?ttl=3s", Options::default().with_ttl(secs(4)), "ttl=3s");
        refused("file:///d?margin=1s", Options::default().with_safety_margin(secs(2)), "margin=1s");
        refused("file:///d?connect_timeout=1s", Options::default().with_connect_timeout(secs(2)), "connect_timeout");
        // Credentials: the same ones are fine, others (or another kind) are refused unseen.
        let pw = |u: &str, p: &str| Credentials::Password { user: u.into(), password: p.into() };
        let o = resolve("etcd://alice:s3cret@h", Options::default().with_credentials(pw("alice", "s3cret"))).unwrap();
        assert_eq!(o.credentials, Some(pw("alice", "s3cret")));
        let o = resolve("etcd://h", Options::default().with_credentials(pw("alice", "s3cret"))).unwrap();
        assert_eq!(o.credentials, Some(pw("alice", "s3cret")));
        for other in [pw("alice", "other-pw"), pw("bob", "s3cret"), Credentials::Token("tok3n".into())] {
            let shown = refused("etcd://alice:s3cret@h", Options::default().with_credentials(other), "credentials");
            for secret in ["alice", "s3cret", "other-pw", "bob", "tok3n"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        refused(
            "consul://tok3n@h",
            Options::default().with_credentials(Credentials::Token("t2".into())),
            "credentials",
        );
        // TLS files: the same file is fine, another is refused; tls=0 contradicts them.
        let tls = |ca: &str| TlsOptions { ca: Some(ca.into()), ..TlsOptions::default() };
        resolve("etcds://h?ca=/a.pem", Options::default().with_tls(tls("/a.pem"))).unwrap();
        refused("etcds://h?ca=/a.pem", Options::default().with_tls(tls("/b.pem")), "ca=");
        refused("consul://h?tls=0", Options::default().with_tls(tls("/a.pem")), "tls=0");
        refused("etcd://h?tls=0", Options::default().with_tls(tls("/a.pem")), "tls=0");
    }

    #[test]
    fn validate_names_the_option_out_of_range() {
        assert!(Options::default().validate().is_ok());
        for (o, name) in [
            (Options::default().with_ttl(Duration::ZERO), "ttl"),
            (Options::default().with_ttl(Duration::MAX), "ttl"),
            (Options::default().with_safety_margin(Duration::from_secs(25 * 3600)), "margin"),
            (Options::default().with_connect_timeout(Duration::from_millis(u64::MAX)), "connect_timeout"),
        ] {
            let e = o.validate().unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }

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
