//! The one table that every surface (Rust, C, Python, Node, the CLI) derives
//! from: the error kinds ([`ErrorKind`](crate::ErrorKind), with stable codes),
//! the event kinds ([`EventKind`]) and the options ([`OPTIONS`], set by name
//! with [`Options::set`](crate::Options::set)).
//!
//! # One name, one spelling rule per surface
//!
//! Every entry has one canonical `snake_case` name. A surface never keeps its
//! own list: it reads this table and spells each name by one mechanical rule.
//!
//! | surface | error kind `not_leader` | event kind `leader_changed` | option `safety_margin` |
//! |---|---|---|---|
//! | Rust | `ErrorKind::NotLeader` | `EventKind::LeaderChanged` | `Options::set("safety_margin", ..)` |
//! | C | `BALLOT_RESULT_NOT_LEADER` (= its code) | `BALLOT_EVENT_KIND_LEADER_CHANGED` (= its code) | a setter per option |
//! | Python | class `NotLeaderError` (`CamelCase` + `Error`), `kind == "not_leader"` | `Event.kind == "leader_changed"` (the name) | keyword `safety_margin=` (seconds) |
//! | Node | `code === 'BALLOT_NOT_LEADER'` (`BALLOT_` + upper case) | event `'leaderChanged'` (lowerCamelCase) | key `safetyMarginMs` (lowerCamelCase, `Ms` for a duration in milliseconds) |
//!
//! Codes and names never change: a new kind takes the next code, and a retired
//! one keeps its code reserved.
//!
//! # An event kind a binding does not know
//!
//! [`Event`] may grow. A binding that meets a kind it has no
//! special handling for **passes it on**: the event is delivered under its
//! canonical name (spelt by the binding's rule) or its code, with none of the
//! payload fields set, never dropped, never renamed to `"unknown"`, never turned
//! into an error. Callers ignore kinds they do not know. [`Event::kind`](crate::Event::kind)
//! names every event, so a binding always has a name to pass on.
//!
//! # Options and the URL
//!
//! Each option of [`OPTIONS`] can be given without the URL, in every language.
//! Some can also be given in the backend URL ([`OptionInfo::in_url`]).
//!
//! - **The two must agree.** Neither place overrides the other: an option given
//!   in one place is used; one given in both with the same value too; one given
//!   in both with different values (the query's `ttl=`, `margin=`,
//!   `connect_timeout=`, `ca=`, `cert=`, `key=`, or the userinfo's
//!   `user:password@` / `token@` against the credentials) is refused with
//!   `InvalidArgument`, naming the option and never showing a secret. A value
//!   silently replaced in either direction would be a setting the user believes
//!   in and does not have.
//! - **Contradictions are refused** with `InvalidArgument`, never resolved
//!   silently: a token together with a username or password; a username without
//!   a password or the reverse; TLS files for a backend that does not speak TLS
//!   (`file://`, `memory://`); credentials for a backend that takes none
//!   (`file://`); a safety margin that is not below the TTL; and the backends'
//!   own (`etcds://` with `tls=0`, TLS files with `tls=0`, a ZooKeeper
//!   `session_timeout=` that differs from the TTL, ...).

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::Event;
use crate::options::{Credentials, Options};
use crate::url::{parse_duration, show_duration, COMMON_OPTIONS};

/// What an [`Event`] reports, without its payload: the event table.
///
/// New kinds may be added (see the module docs for what a binding does with a
/// kind it does not know); existing kinds are never renumbered or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// This handle became leader.
    Elected,
    /// Leadership is in doubt; stop acting as leader until `Reconnected`.
    Suspended,
    /// Leadership was confirmed again after `Suspended`.
    Reconnected,
    /// Leadership is gone.
    Lost,
    /// This handle resigned.
    Resigned,
    /// The election's leader changed.
    LeaderChanged,
    /// The election was ended. No event follows.
    Ended,
    /// A background error.
    Error,
}

impl EventKind {
    /// Every kind, in the order of their codes.
    pub const ALL: [EventKind; 8] = [
        EventKind::Elected,
        EventKind::Suspended,
        EventKind::Reconnected,
        EventKind::Lost,
        EventKind::Resigned,
        EventKind::LeaderChanged,
        EventKind::Ended,
        EventKind::Error,
    ];

    /// The canonical name, such as `"leader_changed"`.
    pub fn as_str(self) -> &'static str {
        // The names are ASCII literals (a test checks), so this never falls back.
        self.as_c_str().to_str().unwrap_or("")
    }

    /// The canonical name as a NUL-terminated string, the same text as
    /// [`as_str`](Self::as_str): what the C ABI's `ballot_event_kind_str` gives.
    /// Static, never freed.
    pub fn as_c_str(self) -> &'static std::ffi::CStr {
        match self {
            EventKind::Elected => c"elected",
            EventKind::Suspended => c"suspended",
            EventKind::Reconnected => c"reconnected",
            EventKind::Lost => c"lost",
            EventKind::Resigned => c"resigned",
            EventKind::LeaderChanged => c"leader_changed",
            EventKind::Ended => c"ended",
            EventKind::Error => c"error",
        }
    }

    /// The stable numeric code, 1 to 8 (the C ABI's `ballot_event_kind`; 0 is no
    /// kind).
    pub fn code(self) -> u32 {
        match self {
            EventKind::Elected => 1,
            EventKind::Suspended => 2,
            EventKind::Reconnected => 3,
            EventKind::Lost => 4,
            EventKind::Resigned => 5,
            EventKind::LeaderChanged => 6,
            EventKind::Ended => 7,
            EventKind::Error => 8,
        }
    }

    /// The kind with this [`code`](Self::code), if any.
    pub fn from_code(code: u32) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind with this [`name`](Self::as_str), if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The kind of this event, from the event table.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Elected { .. } => EventKind::Elected,
            Event::Suspended => EventKind::Suspended,
            Event::Reconnected => EventKind::Reconnected,
            Event::Lost { .. } => EventKind::Lost,
            Event::Resigned => EventKind::Resigned,
            Event::LeaderChanged(_) => EventKind::LeaderChanged,
            Event::Ended => EventKind::Ended,
            Event::Error(_) => EventKind::Error,
        }
    }
}

/// The type of an option's value; each binding takes it in its own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OptionType {
    /// A duration: a [`Duration`] in Rust, seconds (a float) in Python,
    /// milliseconds in Node and C, or text in the URL's syntax (`10s`, `500ms`).
    Duration,
    /// A flag: `true`/`false` (as text also `1`/`0`).
    Bool,
    /// Text, such as a user name or a token.
    Text,
    /// The path of a file (PEM).
    Path,
}

impl OptionType {
    /// A short name: `duration`, `bool`, `text` or `path`.
    pub fn as_str(self) -> &'static str {
        match self {
            OptionType::Duration => "duration",
            OptionType::Bool => "bool",
            OptionType::Text => "text",
            OptionType::Path => "path",
        }
    }
}

/// One row of the option table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OptionInfo {
    /// The canonical name, such as `"safety_margin"`.
    pub name: &'static str,
    /// The type of its value.
    pub ty: OptionType,
    /// Where the backend URL sets the same thing, if it can: a query key (`ttl`,
    /// `margin`, `ca`, ...) or `userinfo`. When both give a value, they must agree.
    pub in_url: Option<&'static str>,
    /// Whether the value is a secret: no error message and no `Debug` shows it.
    pub secret: bool,
    /// One sentence saying what it sets, and its default.
    pub summary: &'static str,
}

impl OptionInfo {
    /// The row of option `name`, if there is one.
    pub fn find(name: &str) -> Option<&'static OptionInfo> {
        OPTIONS.iter().find(|o| o.name == name)
    }
}

const fn row(
    name: &'static str,
    ty: OptionType,
    in_url: Option<&'static str>,
    secret: bool,
    summary: &'static str,
) -> OptionInfo {
    OptionInfo { name, ty, in_url, secret, summary }
}

/// Every option, settable by name with [`Options::set`](crate::Options::set)
/// and in every binding without the URL.
pub const OPTIONS: [OptionInfo; 10] = [
    row(
        "ttl",
        OptionType::Duration,
        Some("ttl"),
        false,
        "The session TTL (default 10 s; 1 s to 24 h; Consul: at least 10 s).",
    ),
    row(
        "safety_margin",
        OptionType::Duration,
        Some("margin"),
        false,
        "How long before the TTL runs out leadership is reported lost (default TTL/5; below the TTL).",
    ),
    row(
        "connect_timeout",
        OptionType::Duration,
        Some("connect_timeout"),
        false,
        "How long connecting may take (default 5 s; 1 ms to 1 h).",
    ),
    row(
        "auto_requeue",
        OptionType::Bool,
        None,
        false,
        "Whether a leader that lost its leadership campaigns again by itself (default true).",
    ),
    row(
        "username",
        OptionType::Text,
        Some("userinfo"),
        false,
        "The user name (etcd, ZooKeeper digest), with password.",
    ),
    row("password", OptionType::Text, Some("userinfo"), true, "The password, with username."),
    row("token", OptionType::Text, Some("userinfo"), true, "A token (Consul ACL); not with username or password."),
    row("tls_ca", OptionType::Path, Some("ca"), false, "PEM file of the CA certificates that verify the server."),
    row(
        "tls_cert",
        OptionType::Path,
        Some("cert"),
        false,
        "PEM file of the client certificate (mutual TLS), with tls_key.",
    ),
    row("tls_key", OptionType::Path, Some("key"), false, "PEM file of the client key (mutual TLS), with tls_cert."),
];

/// A value for [`Options::set`](crate::Options::set), in the form the caller
/// has it; the setter converts and checks it against the option's type.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum OptionValue {
    /// A flag.
    Bool(bool),
    /// A duration in seconds (Python): finite and not negative.
    Seconds(f64),
    /// A duration in milliseconds (Node, C): whole and not negative.
    Millis(f64),
    /// A duration.
    Duration(Duration),
    /// Text: a text or path option's value, a duration in the URL's syntax
    /// (`10s`), or a flag (`true`, `false`, `1`, `0`).
    Text(String),
}

impl fmt::Debug for OptionValue {
    // Text may be a secret (a password, a token): never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "Bool({b})"),
            OptionValue::Seconds(s) => write!(f, "Seconds({s})"),
            OptionValue::Millis(m) => write!(f, "Millis({m})"),
            OptionValue::Duration(d) => write!(f, "Duration({d:?})"),
            OptionValue::Text(_) => f.write_str("Text(***)"),
        }
    }
}

impl OptionValue {
    /// What the caller gave, for an error message (never the text itself).
    fn shown(&self) -> String {
        match self {
            OptionValue::Bool(_) => "a bool".into(),
            OptionValue::Seconds(s) => format!("{s} seconds"),
            OptionValue::Millis(m) => format!("{m} milliseconds"),
            OptionValue::Duration(d) => format!("{d:?}"),
            OptionValue::Text(_) => "text".into(),
        }
    }
}

/// A duration of `what` from a number of seconds: finite and not negative. A
/// binding's call timeouts use it too, so that they read numbers as options do.
///
/// # Errors
///
/// `InvalidArgument` naming `what` for NaN, an infinity, a negative value, or one
/// too large for a `Duration`.
pub fn duration_from_secs(what: &str, secs: f64) -> Result<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::invalid(format!("{what} must be a finite number of seconds, at least 0; got {secs}")));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| Error::invalid(format!("{what} is too large: {secs} seconds")))
}

/// A duration of `what` from a number of milliseconds: whole and not negative.
///
/// # Errors
///
/// `InvalidArgument` naming `what` for NaN, an infinity, a negative or
/// fractional value, or one above 2^53 (where a float stops counting whole
/// milliseconds).
pub fn duration_from_millis(what: &str, ms: f64) -> Result<Duration> {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    if !ms.is_finite() || ms < 0.0 || ms.fract() != 0.0 {
        return Err(Error::invalid(format!("{what} must be a whole number of milliseconds, at least 0; got {ms}")));
    }
    if ms > MAX_EXACT {
        return Err(Error::invalid(format!("{what} is too large: {ms} milliseconds")));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The error for a value that a binding cannot even convert to an
/// [`OptionValue`] (a list, an object, ...): the same message as
/// [`Options::set`](crate::Options::set) gives for a value of the wrong type,
/// or for an unknown option. `got` names what was given, as the binding calls it.
pub fn unusable_value(name: &str, got: &str) -> Error {
    match OptionInfo::find(name) {
        Some(info) => Error::invalid(format!("option {} takes {}, not {got}", info.name, expected(info.ty))),
        None => unknown_option(name),
    }
}

/// `url` as ballot shows a backend URL in its messages: parsed and written back
/// with its user, password or token replaced by `***` (a URL that does not parse
/// keeps its text with everything before its last `@` replaced). For a surface
/// that prints a URL a user gave it, such as the CLI's `demo`.
pub fn shown_url(url: &str) -> String {
    match crate::url::BackendUrl::parse(url) {
        Ok(parsed) => parsed.to_string(),
        Err(_) => crate::url::redact(url),
    }
}

fn unknown_option(name: &str) -> Error {
    let names: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
    Error::invalid(format!("unknown option {}; the options are: {}", shown_name(name), names.join(", ")))
}

impl Options {
    /// Sets option `name` of [`OPTIONS`] from `value`: the one parser of options
    /// that every binding uses, so that each language takes the same options
    /// with the same checks. Durations are checked against their range here
    /// (and again at connect, with the URL's values).
    ///
    /// Setting `username` or `password` makes the credentials a user and
    /// password; `token` makes them a token; one kind excludes the other. TLS
    /// files add to the TLS settings. The [`surface`](crate::surface) module says
    /// how the URL and these options combine (they must agree; contradictions
    /// are refused at connect).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for an unknown option, a value of the wrong type, a
    /// duration out of its range, empty text, or a token with a username or
    /// password. The message names the option and never shows a secret.
    ///
    /// # Examples
    ///
    /// ```
    /// use ballot::{OptionValue, Options};
    /// let mut o = Options::default();
    /// o.set("ttl", OptionValue::Seconds(3.0))?;
    /// o.set("safety_margin", OptionValue::Text("500ms".into()))?;
    /// assert_eq!(o.ttl(), std::time::Duration::from_secs(3));
    /// assert!(o.set("ttl", OptionValue::Bool(true)).is_err());
    /// assert!(o.set("tll", OptionValue::Seconds(3.0)).is_err());
    /// # Ok::<_, ballot::Error>(())
    /// ```
    pub fn set(&mut self, name: &str, value: OptionValue) -> Result<()> {
        let Some(info) = OptionInfo::find(name) else { return Err(unknown_option(name)) };
        let wrong = |value: &OptionValue| unusable_value(info.name, &value.shown());
        match info.ty {
            OptionType::Duration => {
                let d = match &value {
                    OptionValue::Seconds(s) => duration_from_secs(info.name, *s)?,
                    OptionValue::Millis(ms) => duration_from_millis(info.name, *ms)?,
                    OptionValue::Duration(d) => *d,
                    OptionValue::Text(t) => {
                        parse_duration(t).map_err(|m| Error::invalid(format!("option {}={t:?}: {m}", info.name)))?
                    }
                    OptionValue::Bool(_) => return Err(wrong(&value)),
                };
                check_range(info, d)?;
                let o = std::mem::take(self);
                *self = match info.name {
                    "ttl" => o.with_ttl(d),
                    "safety_margin" => o.with_safety_margin(d),
                    _ => o.with_connect_timeout(d),
                };
            }
            OptionType::Bool => {
                let on = match &value {
                    OptionValue::Bool(b) => *b,
                    OptionValue::Text(t) if t == "true" || t == "1" => true,
                    OptionValue::Text(t) if t == "false" || t == "0" => false,
                    _ => return Err(wrong(&value)),
                };
                *self = std::mem::take(self).with_auto_requeue(on);
            }
            OptionType::Text | OptionType::Path => {
                let OptionValue::Text(text) = value else { return Err(wrong(&value)) };
                if text.is_empty() {
                    return Err(Error::invalid(format!("option {} must not be empty", info.name)));
                }
                if info.ty == OptionType::Path {
                    let tls = self.tls.get_or_insert_with(Default::default);
                    let slot = match info.name {
                        "tls_ca" => &mut tls.ca,
                        "tls_cert" => &mut tls.cert,
                        _ => &mut tls.key,
                    };
                    *slot = Some(text.into());
                } else {
                    self.credentials = Some(with_credential(self.credentials.clone(), info.name, text)?);
                }
            }
        }
        Ok(())
    }
}

/// The credentials after setting `name` (username, password or token) to `text`.
/// A user name or a password alone is kept with the other part empty, which
/// [`check_contradictions`] refuses at connect if it is still missing then.
fn with_credential(now: Option<Credentials>, name: &str, text: String) -> Result<Credentials> {
    Ok(match (name, now) {
        ("token", None | Some(Credentials::Token(_))) => Credentials::Token(text),
        ("username", None) => Credentials::Password { user: text, password: String::new() },
        ("password", None) => Credentials::Password { user: String::new(), password: text },
        ("username", Some(Credentials::Password { password, .. })) => Credentials::Password { user: text, password },
        ("password", Some(Credentials::Password { user, .. })) => Credentials::Password { user, password: text },
        _ => {
            // Neither value is shown: both may be secrets.
            return Err(Error::invalid("options token and username/password exclude each other: give one kind"));
        }
    })
}

/// Checks a duration against the range of its option (the URL's ranges).
fn check_range(info: &OptionInfo, d: Duration) -> Result<()> {
    let Some((min, max)) = info.in_url.and_then(url_range) else { return Ok(()) };
    if d < min {
        Err(Error::invalid(format!("option {} must be at least {}; got {d:?}", info.name, show_duration(min))))
    } else if d > max {
        Err(Error::invalid(format!("option {} must be at most {}; got {d:?}", info.name, show_duration(max))))
    } else {
        Ok(())
    }
}

fn expected(ty: OptionType) -> &'static str {
    match ty {
        OptionType::Duration => "a duration (a number, or text such as 10s)",
        OptionType::Bool => "true or false",
        OptionType::Text => "text",
        OptionType::Path => "a file path",
    }
}

/// An unknown option's name as given, if it looks like a name (it might be a
/// misplaced secret otherwise).
fn shown_name(name: &str) -> String {
    let plain = !name.is_empty() && name.len() <= 40 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{name:?}")
    } else {
        "(a name that is not one)".into()
    }
}

/// The range of the common URL option `name` (`ttl`, `margin`, `connect_timeout`).
fn url_range(name: &str) -> Option<(Duration, Duration)> {
    COMMON_OPTIONS.iter().find(|o| o.name == name).and_then(|o| o.range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::options::check_contradictions;
    use crate::url::BackendUrl;

    /// The event table every surface derives from; a failure means a code or a
    /// name changed, which breaks programs that stored one.
    #[test]
    fn event_codes_and_names_never_change() {
        let pinned = [
            (EventKind::Elected, 1, "elected"),
            (EventKind::Suspended, 2, "suspended"),
            (EventKind::Reconnected, 3, "reconnected"),
            (EventKind::Lost, 4, "lost"),
            (EventKind::Resigned, 5, "resigned"),
            (EventKind::LeaderChanged, 6, "leader_changed"),
            (EventKind::Ended, 7, "ended"),
            (EventKind::Error, 8, "error"),
        ];
        assert_eq!(EventKind::ALL.len(), pinned.len(), "a kind was added: pin its code and name here");
        for (i, (kind, code, name)) in pinned.into_iter().enumerate() {
            assert_eq!(EventKind::ALL[i], kind);
            assert_eq!((kind.code(), kind.as_str()), (code, name));
            assert_eq!(EventKind::from_code(code), Some(kind));
            assert_eq!(EventKind::from_name(name), Some(kind));
        }
        assert_eq!(EventKind::from_code(0), None);
    }

    #[test]
    fn every_event_has_its_kind() {
        let l = crate::Leader::new(b"v".to_vec(), 1, "k".into());
        let events = [
            (Event::Elected { term: 1 }, EventKind::Elected),
            (Event::Suspended, EventKind::Suspended),
            (Event::Reconnected, EventKind::Reconnected),
            (Event::Lost { reason: crate::LostReason::Deleted }, EventKind::Lost),
            (Event::Resigned, EventKind::Resigned),
            (Event::LeaderChanged(Some(l)), EventKind::LeaderChanged),
            (Event::Ended, EventKind::Ended),
            (Event::Error(Error::new(ErrorKind::Backend, "x")), EventKind::Error),
        ];
        for (ev, kind) in events {
            assert_eq!(ev.kind(), kind, "{ev:?}");
        }
    }

    #[test]
    fn option_names_are_unique_snake_case_and_documented() {
        let mut names: Vec<_> = OPTIONS.iter().map(|o| o.name).collect();
        assert_eq!(
            names,
            [
                "ttl",
                "safety_margin",
                "connect_timeout",
                "auto_requeue",
                "username",
                "password",
                "token",
                "tls_ca",
                "tls_cert",
                "tls_key"
            ]
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPTIONS.len());
        for o in OPTIONS {
            assert!(o.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", o.name);
            assert!(o.summary.ends_with('.'), "{}", o.name);
            if o.ty == OptionType::Duration {
                assert!(o.in_url.and_then(url_range).is_some(), "{} has a range", o.name);
            }
        }
    }

    fn err(o: &mut Options, name: &str, v: OptionValue) -> String {
        let e = o.set(name, v).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        e.to_string()
    }

    #[test]
    fn every_option_is_set_from_each_form_of_its_value() {
        let mut o = Options::default();
        o.set("ttl", OptionValue::Seconds(2.5)).unwrap();
        assert_eq!(o.ttl(), Duration::from_millis(2500));
        o.set("ttl", OptionValue::Millis(4000.0)).unwrap();
        assert_eq!(o.ttl(), Duration::from_secs(4));
        o.set("ttl", OptionValue::Text("1m".into())).unwrap();
        assert_eq!(o.ttl(), Duration::from_secs(60));
        o.set("safety_margin", OptionValue::Duration(Duration::from_secs(7))).unwrap();
        assert_eq!(o.safety_margin(), Duration::from_secs(7));
        o.set("connect_timeout", OptionValue::Millis(1.0)).unwrap();
        assert_eq!(o.connect_timeout, Duration::from_millis(1));
        o.set("auto_requeue", OptionValue::Bool(false)).unwrap();
        assert!(!o.auto_requeue());
        o.set("auto_requeue", OptionValue::Text("1".into())).unwrap();
        assert!(o.auto_requeue());
        o.set("password", OptionValue::Text("pw".into())).unwrap();
        o.set("username", OptionValue::Text("alice".into())).unwrap();
        assert_eq!(o.credentials, Some(Credentials::Password { user: "alice".into(), password: "pw".into() }));
        for (name, path) in [("tls_ca", "/ca.pem"), ("tls_cert", "/c.pem"), ("tls_key", "/k.pem")] {
            o.set(name, OptionValue::Text(path.into())).unwrap();
        }
        let tls = o.tls.clone().unwrap();
        assert_eq!(
            (tls.ca.unwrap(), tls.cert.unwrap(), tls.key.unwrap()),
            ("/ca.pem".into(), "/c.pem".into(), "/k.pem".into())
        );
        let mut t = Options::default();
        t.set("token", OptionValue::Text("tok".into())).unwrap();
        assert_eq!(t.credentials, Some(Credentials::Token("tok".into())));
    }

    #[test]
    fn bad_options_are_refused_by_name_without_showing_secrets() {
        let mut o = Options::default();
        assert!(err(&mut o, "tll", OptionValue::Seconds(1.0)).contains("unknown option \"tll\"; the options are: ttl,"));
        assert!(!err(&mut o, "s3cr:et", OptionValue::Seconds(1.0)).contains("s3cr"));
        assert!(err(&mut o, "ttl", OptionValue::Bool(true)).contains("ttl takes a duration"));
        assert!(err(&mut o, "auto_requeue", OptionValue::Seconds(1.0)).contains("auto_requeue takes true or false"));
        assert!(err(&mut o, "tls_ca", OptionValue::Millis(1.0)).contains("tls_ca takes a file path"));
        assert!(err(&mut o, "username", OptionValue::Text(String::new())).contains("must not be empty"));
        // Huge, negative, fractional, non-finite and out-of-range durations.
        assert!(err(&mut o, "ttl", OptionValue::Seconds(1e300)).contains("too large"));
        assert!(err(&mut o, "ttl", OptionValue::Millis(1e300)).contains("too large"));
        assert!(err(&mut o, "ttl", OptionValue::Seconds(f64::NAN)).contains("finite"));
        assert!(err(&mut o, "ttl", OptionValue::Seconds(-1.0)).contains("at least 0"));
        assert!(err(&mut o, "ttl", OptionValue::Millis(0.5)).contains("whole"));
        assert!(err(&mut o, "ttl", OptionValue::Seconds(86_401.0)).contains("ttl must be at most 24h"));
        assert!(err(&mut o, "ttl", OptionValue::Millis(999.0)).contains("ttl must be at least 1s"));
        assert!(
            err(&mut o, "connect_timeout", OptionValue::Text("18000000000000000000s".into())).contains("at most 1h")
        );
        assert!(err(&mut o, "ttl", OptionValue::Text("99999999999999999999s".into())).contains("out of range"));
        assert!(err(&mut o, "safety_margin", OptionValue::Text("10".into())).contains("unit"));
        // A token and a user/password, in either order; the secret never shows.
        o.set("password", OptionValue::Text("hunter2".into())).unwrap();
        let m = err(&mut o, "token", OptionValue::Text("t0ken".into()));
        assert!(m.contains("exclude each other") && !m.contains("hunter2") && !m.contains("t0ken"), "{m}");
        let mut t = Options::default();
        t.set("token", OptionValue::Text("t0ken".into())).unwrap();
        assert!(err(&mut t, "username", OptionValue::Text("alice".into())).contains("exclude each other"));
        assert!(!format!("{:?}", OptionValue::Text("hunter2".into())).contains("hunter2"));
        assert_eq!(
            unusable_value("ttl", "list").to_string(),
            "invalid_argument: option ttl takes a duration (a number, or text such as 10s), not list"
        );
        assert!(unusable_value("tll", "list").to_string().contains("unknown option"));
        // A refused value leaves the options as they were.
        assert_eq!(o.ttl(), Options::default().ttl());
        assert_eq!(o.credentials, Some(Credentials::Password { user: String::new(), password: "hunter2".into() }));
    }

    #[test]
    fn contradictions_with_the_backend_are_refused() {
        let with = |pairs: &[(&str, &str)]| {
            let mut o = Options::default();
            for (k, v) in pairs {
                o.set(k, OptionValue::Text(v.to_string())).unwrap();
            }
            o
        };
        let url = |u: &str| BackendUrl::parse(u).unwrap();
        let refused = |o: &Options, u: &str| check_contradictions(o, &url(u)).expect_err(u).to_string();
        assert!(refused(&with(&[("username", "u")]), "etcd://h").contains("password is not"));
        assert!(refused(&with(&[("password", "p")]), "etcd://h").contains("username is not"));
        assert!(refused(&with(&[("token", "t")]), "file:///d").contains("file:// takes no credentials"));
        assert!(refused(&with(&[("tls_ca", "/ca")]), "file:///d").contains("file:// does not speak TLS"));
        assert!(refused(&with(&[("tls_ca", "/ca")]), "memory://n").contains("memory:// does not speak TLS"));
        for ok in ["etcd://h", "etcds://h", "consul://h", "consuls://h", "zk://h", "zks://h"] {
            check_contradictions(&with(&[("tls_ca", "/ca"), ("username", "u"), ("password", "p")]), &url(ok)).unwrap();
        }
        check_contradictions(&with(&[("username", "u"), ("password", "p")]), &url("zk://h")).unwrap();
        check_contradictions(&Options::default(), &url("file:///d")).unwrap();
    }

    /// Through `Client::connect`: the URL and the options must agree, and an
    /// option the backend cannot use is refused (it used to be ignored silently).
    #[tokio::test]
    async fn connect_refuses_a_url_that_disagrees_and_options_a_backend_cannot_use() {
        let dir = std::env::temp_dir().join(format!("ballot-surface-{}", std::process::id()));
        let url = format!("file://{}", dir.display());
        let mut o = Options::default();
        o.set("ttl", OptionValue::Seconds(5.0)).unwrap();
        let e = crate::Client::connect(&format!("{url}?ttl=3s"), o.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("ttl=3s"), "{e}");
        let c = crate::Client::connect(&format!("{url}?ttl=5s"), o.clone()).await.unwrap();
        assert_eq!(c.options().ttl(), Duration::from_secs(5), "the same value in both places");
        c.close().await.unwrap();
        for (name, shown) in [("tls_ca", "does not speak TLS"), ("token", "takes no credentials")] {
            let mut bad = o.clone();
            bad.set(name, OptionValue::Text("x".into())).unwrap();
            let e = crate::Client::connect(&url, bad).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.message().contains(shown), "{e}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn shown_url_never_shows_credentials() {
        for (url, shown) in [
            ("etcd://someone:hunter2@127.0.0.1:2379/ns", "etcd://***@127.0.0.1:2379/ns"),
            ("consul://hunter2@127.0.0.1:8500", "consul://***@127.0.0.1:8500"),
            // Unparsable (an unknown option): everything before the last `@` goes.
            ("zk://someone:hunter2@127.0.0.1:2181/x?bogus=1", "zk://***@127.0.0.1:2181/x?bogus=1"),
            ("file:///var/lib/ballot", "file:///var/lib/ballot"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }
}
