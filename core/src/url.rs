//! Backend URL parsing and validation, and election-name validation.
//!
//! The parser is generic: what differs between backends (schemes, default port,
//! servers, a directory or a name, own options and their ranges) is each backend's
//! [`Syntax`], which the registry (`backend/registry.rs`) holds. The registry's
//! `BackendUrl::parse` parses a URL against every registered backend.
//!
//! URLs are parsed by hand rather than with a general URL crate because the
//! backend forms list several hosts in the authority (`h1:2379,h2:2379`), which a
//! WHATWG parser rejects.
//!
//! # The userinfo
//!
//! A URL is `SCHEME://[USERINFO@]HOSTS[/PATH][?QUERY]`. The userinfo is everything
//! between `://` and the **last** `@` of the URL; `HOSTS` runs from that `@` to
//! the first `/` or `?` after it (or the end), and a `#` after it is a fragment,
//! which is refused. So a password may contain `/`, `?`, `#`, `@` and `:` as they
//! are (`etcd://alice:s3cr/et@h` is user `alice`, password `s3cr/et`, host `h`),
//! and an `@` in the path or in an option value must be written `%40`.
//!
//! This departs from RFC 3986 (section 3.2), where the authority ends at the first
//! `/`, `?` or `#` and those characters must be percent-encoded in the userinfo,
//! and from the parsers that follow it: Go's `net/url` takes the last `@` before
//! the first `/`, and libpq the first `@` before the first `/`; both misread a
//! password with a raw `/` as a host and port, and echo it in their error. Generated
//! passwords often contain `/`, `?`, `#` or `@`; namespaces and option values rarely
//! contain `@`. A userinfo percent-encoded as RFC 3986 asks reads the same,
//! unless the path or the query holds a raw `@` (which RFC 3986 allows there).
//!
//! In the userinfo, the first `:` separates the user from the password (a `:` in
//! the user is written `%3A`). A userinfo without `:` is a Consul ACL token, or a
//! user without a password elsewhere. `%XX` escapes are decoded in the user, the
//! password and the token; a `%` that starts no valid escape, or an escape that
//! decodes to invalid UTF-8, is an `InvalidArgument` error, as is a password with
//! no user.
//!
//! No part of the userinfo, user names included, ever appears in an error message,
//! in `Debug` or in `Display` (which shows `***@`).
//!
//! # Durations
//!
//! Every duration option has a range (the common ones in [`COMMON_OPTIONS`], a
//! backend's own in its [`Syntax`]); a value outside it, from the URL or from
//! [`Options`](crate::Options), is an `InvalidArgument` error that names the
//! option. The ranges keep every deadline that ballot computes from them far from
//! the limits of the clock's arithmetic.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The longest election name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// One URL scheme of a backend, as written in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scheme {
    /// The scheme in lowercase (`etcds`); URLs may write it in any case.
    pub(crate) name: &'static str,
    /// Whether the scheme asks for TLS by itself (`etcds`, `consuls`).
    pub(crate) tls: bool,
}

impl Scheme {
    /// A scheme that leaves TLS to the URL's options.
    pub(crate) const fn plain(name: &'static str) -> Scheme {
        Scheme { name, tls: false }
    }

    /// A scheme that always means TLS.
    pub(crate) const fn tls(name: &'static str) -> Scheme {
        Scheme { name, tls: true }
    }
}

/// What a backend's URL names between `://` and the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// `[USERINFO@]HOST[:PORT][,HOST[:PORT]...][/NAMESPACE]`: servers, and a
    /// namespace put before every election name. A host without a port gets
    /// `default_port`.
    Hosts {
        /// The port of a host written without one.
        default_port: u16,
    },
    /// `/ABSOLUTE/DIRECTORY` (`file:///var/run/ballot`): a directory of this host.
    /// No userinfo, and no host but `localhost`.
    Directory,
    /// `NAME[/NAMESPACE]` (`memory://test`): something of this process that the
    /// backend looks up by name, not a server. Read as a host list without a
    /// default port (port 0: none given), so the backend refuses a port, several
    /// names or a userinfo in its own words.
    Name,
}

/// A query option of a backend's URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlOption {
    /// Its name, as in `?name=value`.
    pub(crate) name: &'static str,
    /// For a duration: its range `(min, max)`, checked when the URL is parsed.
    /// `None`: any text, read by the backend (`tls=` is read as a flag there).
    pub(crate) range: Option<(Duration, Duration)>,
}

impl UrlOption {
    /// An option whose value the backend reads.
    pub(crate) const fn text(name: &'static str) -> UrlOption {
        UrlOption { name, range: None }
    }

    /// A duration option (`500ms`, `10s`, `2m`, `1h`) within `min..=max`.
    pub(crate) const fn duration(name: &'static str, min: Duration, max: Duration) -> UrlOption {
        UrlOption { name, range: Some((min, max)) }
    }
}

/// How one backend's URLs are written: everything the parser needs to know of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// Its schemes, in the order error messages list them.
    pub(crate) schemes: &'static [Scheme],
    /// What the URL names.
    pub(crate) place: Place,
    /// Query options it accepts besides the [`COMMON_OPTIONS`].
    pub(crate) options: &'static [UrlOption],
}

impl Syntax {
    /// The option `name` of this syntax, common or own.
    fn option(&self, name: &str) -> Option<&'static UrlOption> {
        COMMON_OPTIONS.iter().chain(self.options).find(|o| o.name == name)
    }
}

/// One second, for option ranges.
pub(crate) const SECOND: Duration = Duration::from_secs(1);
/// One hour, for option ranges.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
/// One day, for option ranges; also Consul's maximum session TTL.
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// Query options every scheme accepts, with their ranges:
///
/// - `ttl`: 1 s to 24 h, Consul's own maximum session TTL. The lower bounds of
///   each backend (Consul: 10 s, a ZooKeeper server's 2 ticks) are checked by the
///   backend.
/// - `margin`: 0 to 24 h, and below the TTL (checked with the TTL).
/// - `connect_timeout`: 1 ms to 1 h.
///
/// The same names and ranges apply to the values given through
/// [`Options`](crate::Options).
pub(crate) const COMMON_OPTIONS: &[UrlOption] = &[
    UrlOption::duration("ttl", SECOND, DAY),
    UrlOption::duration("margin", Duration::ZERO, DAY),
    UrlOption::duration("connect_timeout", Duration::from_millis(1), HOUR),
];

/// A secret string whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A host and port from the URL's authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Port 0 is "none given", for a name (`Place::Name`): a server's port is never 0.
        if self.port == 0 {
            return f.write_str(&self.host);
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed, validated backend URL. `Debug` and `Display` show no part of the
/// userinfo.
#[derive(Clone)]
pub(crate) struct BackendUrl {
    pub(crate) scheme: Scheme,
    /// How URLs of this scheme are written.
    syntax: &'static Syntax,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) hosts: Vec<HostPort>,
    /// For `file`, the directory (absolute). For the others, the namespace path
    /// without leading or trailing `/` (empty when there is none).
    pub(crate) path: String,
    options: Vec<(String, String)>,
}

impl BackendUrl {
    /// Parses and validates `input` as a URL of one of `known`; every problem is an
    /// `InvalidArgument` error that names it.
    pub(crate) fn parse_with(input: &str, known: impl Iterator<Item = &'static Syntax> + Clone) -> Result<BackendUrl> {
        let (scheme_str, rest) = input.split_once("://").ok_or_else(|| {
            Error::invalid(format!(
                "malformed backend URL {}: expected SCHEME://..., for example etcd://127.0.0.1:2379",
                redact(input)
            ))
        })?;
        let (scheme, syntax) = find_scheme(scheme_str, known)?;
        // The userinfo ends at the last '@' (see the module docs).
        let (userinfo, after) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        if after.contains('#') {
            return Err(Error::invalid(
                "backend URL must not contain a fragment ('#'); a '#' is allowed only in the password or token",
            ));
        }
        let (before_query, query) = match after.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (after, None),
        };
        let (hostlist, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        let (mut user, mut password) = (None, None);
        if let Some(ui) = userinfo {
            if syntax.place == Place::Directory {
                return Err(Error::invalid(format!(
                    "{}:// URLs take no user or password (an '@' in the directory is written %40)",
                    scheme.name
                )));
            }
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let u = percent_decode(u, "user name")?;
            if let Some(p) = p {
                if u.is_empty() {
                    return Err(Error::invalid("backend URL has a password but no user name before it"));
                }
                password = Some(Secret(percent_decode(p, "password")?));
            }
            if u.is_empty() {
                return Err(Error::invalid("backend URL has an empty user part before '@'"));
            }
            user = Some(u);
        }

        let mut hosts = Vec::new();
        let path_out = match syntax.place {
            Place::Directory => {
                let s = scheme.name;
                if !(hostlist.is_empty() || hostlist.eq_ignore_ascii_case("localhost")) {
                    return Err(Error::invalid(format!(
                        "{s}:// URLs take an absolute directory, as {s}:///var/run/ballot; got host {hostlist:?}"
                    )));
                }
                let dir = percent_decode(path, "directory")?;
                if !dir.starts_with('/') {
                    return Err(Error::invalid(format!("{s}:// URL has no directory; use {s}:///some/dir")));
                }
                if dir.contains('\0') {
                    return Err(Error::invalid(format!("{s}:// directory contains NUL")));
                }
                dir
            }
            Place::Hosts { .. } | Place::Name => {
                let s = scheme.name;
                let default_port = match syntax.place {
                    Place::Hosts { default_port } => default_port,
                    _ => 0,
                };
                if hostlist.is_empty() {
                    return Err(Error::invalid(match syntax.place {
                        Place::Name => format!("{s}:// URL has no name; for example {s}://test"),
                        _ => format!("{s}:// URL has no host; for example {s}://127.0.0.1:{default_port}"),
                    }));
                }
                for hp in hostlist.split(',') {
                    hosts.push(parse_hostport(hp, default_port)?);
                }
                let ns = percent_decode(path, "namespace")?;
                // One leading and one trailing '/' are separators; more are empty segments.
                let ns = ns.strip_prefix('/').unwrap_or(&ns);
                let ns = ns.strip_suffix('/').unwrap_or(ns);
                if !ns.is_empty() {
                    validate_name(ns)
                        .map_err(|e| Error::invalid(format!("namespace in backend URL: {}", e.message())))?;
                }
                ns.to_string()
            }
        };

        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::invalid(format!("backend URL option {pair:?} has no value (expected key=value)"))
                })?;
                let k = percent_decode(k, "option name")?;
                let v = percent_decode(v, "option value")?;
                if syntax.option(&k).is_none() {
                    let known: Vec<&str> = COMMON_OPTIONS.iter().chain(syntax.options).map(|o| o.name).collect();
                    return Err(Error::invalid(format!(
                        "unknown option {k:?} for {}:// URLs; known options: {}",
                        scheme.name,
                        known.join(", ")
                    )));
                }
                if options.iter().any(|(ek, _)| *ek == k) {
                    return Err(Error::invalid(format!("option {k:?} is given twice")));
                }
                options.push((k, v));
            }
        }
        let url = BackendUrl { scheme, syntax, user, password, hosts, path: path_out, options };
        // Validate every duration now so a bad value is reported at connect.
        for (k, _) in &url.options {
            if syntax.option(k).is_some_and(|o| o.range.is_some()) {
                url.duration(k)?;
            }
        }
        Ok(url)
    }

    /// Whether this URL's backend speaks TLS: its URLs take `ca=`.
    pub(crate) fn takes_tls(&self) -> bool {
        self.syntax.option("ca").is_some()
    }

    /// Whether this URL's backend takes credentials: its URLs name hosts, with a
    /// userinfo.
    pub(crate) fn takes_credentials(&self) -> bool {
        matches!(self.syntax.place, Place::Hosts { .. })
    }

    /// The raw value of option `key`, if given.
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Option `key` parsed as a duration (`500ms`, `10s`, `2m`, `1h`) and checked
    /// against the option's range (in [`COMMON_OPTIONS`] or the backend's
    /// [`Syntax`]).
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        let range = self.syntax.option(key).and_then(|o| o.range);
        self.option(key)
            .map(|v| {
                let d = parse_duration(v).map_err(|m| Error::invalid(format!("option {key}={v:?}: {m}")))?;
                check_range(key, range, d).map_err(|m| Error::invalid(format!("option {key}={v:?}: {m}")))
            })
            .transpose()
    }

    /// Option `key` parsed as a boolean (`1/0/true/false`).
    #[allow(dead_code)] // used by the TLS-capable backends
    pub(crate) fn flag(&self, key: &str) -> Result<Option<bool>> {
        self.option(key)
            .map(|v| match v {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(Error::invalid(format!("option {key}={v:?}: expected 1, 0, true or false"))),
            })
            .transpose()
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendUrl")
            .field("scheme", &self.scheme)
            .field("user", &self.user.as_ref().map(|_| "***"))
            .field("password", &self.password)
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("options", &self.options)
            .finish()
    }
}

impl fmt::Display for BackendUrl {
    /// The URL with its userinfo (user, password or token) replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.name)?;
        if self.syntax.place == Place::Directory {
            return f.write_str(&self.path);
        }
        if self.user.is_some() || self.password.is_some() {
            f.write_str("***@")?;
        }
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        f.write_str(&hosts.join(","))?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

/// Replaces the userinfo of a raw URL (everything before its last `@`, after any
/// `://`) with `***`, for error messages.
pub(crate) fn redact(input: &str) -> String {
    let Some(a) = input.rfind('@') else { return input.to_string() };
    match input.find("://") {
        Some(s) if s < a => format!("{}***{}", &input[..s + 3], &input[a..]),
        _ => format!("***{}", &input[a..]),
    }
}

/// The scheme `written` names among the schemes of `known`, and its syntax.
fn find_scheme(
    written: &str,
    known: impl Iterator<Item = &'static Syntax> + Clone,
) -> Result<(Scheme, &'static Syntax)> {
    let lower = written.to_ascii_lowercase();
    let all = known.flat_map(|syntax| syntax.schemes.iter().map(move |scheme| (*scheme, syntax)));
    if let Some(found) = all.clone().find(|(scheme, _)| scheme.name == lower) {
        return Ok(found);
    }
    // Echo only what looks like a scheme: anything else may be a misplaced secret
    // (`user:pass@etcd://...`).
    let plain = lower.len() <= 32 && lower.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let shown = if plain { format!(" {lower:?}") } else { String::new() };
    let names: Vec<&str> = all.map(|(scheme, _)| scheme.name).collect();
    let expected = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "none (this build has no backend)".to_string(),
    };
    Err(Error::invalid(format!("unknown backend scheme{shown}; expected {expected}")))
}

fn parse_hostport(hp: &str, default_port: u16) -> Result<HostPort> {
    if hp.is_empty() {
        return Err(Error::invalid("backend URL has an empty host in its host list"));
    }
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) =
            rest.split_once(']').ok_or_else(|| Error::invalid(format!("host {hp:?}: unclosed '[' in IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':').ok_or_else(|| Error::invalid(format!("host {hp:?}: expected ':' after ']'")))?,
            ),
        };
        (h, port)
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')) {
        return Err(Error::invalid(format!("host {host:?} in backend URL is not a valid host name or address")));
    }
    let port =
        match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                Error::invalid(format!("port {p:?} of host {host:?} is not a number from 1 to 65535"))
            })?,
        };
    Ok(HostPort { host: host.to_string(), port })
}

fn percent_decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::invalid(format!("{what} in backend URL has a bad percent escape (a '%' is written %25)"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid(format!("{what} in backend URL is not valid UTF-8")))
}

/// Checks `d` against the range of the common duration option `name` (see
/// [`COMMON_OPTIONS`]); the error text says the range.
pub(crate) fn check_duration(name: &str, d: Duration) -> std::result::Result<Duration, String> {
    let range = COMMON_OPTIONS.iter().find(|o| o.name == name).and_then(|o| o.range);
    check_range(name, range, d)
}

/// Checks `d` against `range`, for the option `name`; the error text says the range.
fn check_range(name: &str, range: Option<(Duration, Duration)>, d: Duration) -> std::result::Result<Duration, String> {
    let Some((min, max)) = range else { return Ok(d) };
    if d < min {
        Err(format!("{name} must be at least {}", show_duration(min)))
    } else if d > max {
        Err(format!("{name} must be at most {}", show_duration(max)))
    } else {
        Ok(d)
    }
}

/// A duration in the largest unit of the URL syntax that shows it whole.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h` (a whole number and a unit).
pub(crate) fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    if num.is_empty() {
        return Err("expected a whole number and a unit (ms, s, m, h), as 10s".into());
    }
    let n: u64 = num.parse().map_err(|_| "number out of range".to_string())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or("number out of range")?,
        "h" => n.checked_mul(3600).map(Duration::from_secs).ok_or("number out of range")?,
        "" => return Err("needs a unit (ms, s, m, h), as 10s".into()),
        u => return Err(format!("unknown unit {u:?} (use ms, s, m or h)")),
    };
    Ok(d)
}

/// Checks an election name (also a URL's namespace); the one naming rule of every
/// backend:
///
/// - printable UTF-8 (no control character, so no NUL), 1 to [`MAX_NAME_LEN`] bytes;
/// - `/`-separated segments, none empty (no leading, trailing or doubled `/`);
/// - no segment starts with `.`: `.` and `..` would be resolved away by HTTP
///   clients on Consul (so reads and writes would reach different keys, or leave
///   the KV store) and are refused by ZooKeeper, and ballot's own keys on Consul
///   (`.lock`, `.candidates`, `.term`, `.epoch`) start with `.`, so a nested
///   election could not collide with them;
/// - no segment starts with `~`, kept for ballot's own entries (ZooKeeper's
///   `~ballot-epoch` marker);
/// - no segment ends with `latch-` and digits: on ZooKeeper such a child of an
///   election's node is taken for a candidate (Curator's latch naming), so a
///   nested election of that name would be a phantom leader of its parent.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("election name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!("election name is {} bytes; the limit is {MAX_NAME_LEN}", name.len())));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "election name contains the control character {:?}; names are printable UTF-8",
            c
        )));
    }
    for seg in name.split('/') {
        if seg.is_empty() {
            return Err(Error::invalid(format!(
                "election name {name:?} has an empty segment (a leading, trailing or doubled '/')"
            )));
        }
        if seg.starts_with('.') || seg.starts_with('~') {
            return Err(Error::invalid(format!(
                "election name {name:?}: the segment {seg:?} starts with '{}'; segments starting with '.' or '~' \
                 are reserved (no '.' or '..', and ballot's own keys start so)",
                &seg[..1]
            )));
        }
        if is_latch_like(seg) {
            return Err(Error::invalid(format!(
                "election name {name:?}: the segment {seg:?} ends with 'latch-' and digits, the name of a \
                 candidate node on ZooKeeper"
            )));
        }
    }
    Ok(())
}

/// Whether `seg` ends with `latch-` followed by one or more digits.
fn is_latch_like(seg: &str) -> bool {
    let digits = seg.bytes().rev().take_while(u8::is_ascii_digit).count();
    digits > 0 && seg[..seg.len() - digits].ends_with("latch-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn err(u: &str) -> String {
        let e = BackendUrl::parse(u).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{u}");
        e.to_string()
    }

    #[test]
    fn parses_each_form() {
        let u = BackendUrl::parse("etcd://alice:s3cr%40t@h1:1,h2/app/ns?ttl=5s&tls=1").unwrap();
        assert_eq!(u.scheme, Scheme::plain("etcd"));
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().unwrap().0, "s3cr@t");
        assert_eq!(u.hosts, vec![HostPort { host: "h1".into(), port: 1 }, HostPort { host: "h2".into(), port: 2379 }]);
        assert_eq!(u.path, "app/ns");
        assert_eq!(u.duration("ttl").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(u.flag("tls").unwrap(), Some(true));
        let s = u.to_string();
        assert!(!s.contains("s3cr"), "{s}");
        assert!(!format!("{u:?}").contains("s3cr"));

        let f = BackendUrl::parse("file:///var/run/ballot").unwrap();
        assert_eq!((f.scheme, f.path.as_str()), (Scheme::plain("file"), "/var/run/ballot"));
        let z = BackendUrl::parse("zk://[::1]:2181/chroot?session_timeout=6s").unwrap();
        assert_eq!(z.hosts[0].host, "::1");
        assert_eq!(BackendUrl::parse("consuls://tok@h").unwrap().password, None);
        let c = BackendUrl::parse("consul://s3cr3t-token@h:8500/ns?lock_delay=0s").unwrap();
        assert_eq!(c.user.as_deref(), Some("s3cr3t-token"));
        assert_eq!(c.to_string(), "consul://***@h:8500/ns");
    }

    #[test]
    fn rejects_bad_urls_with_a_named_cause() {
        assert!(err("127.0.0.1:2379").contains("malformed"));
        assert!(err("redis://h").contains("unknown backend scheme"));
        assert!(err("etcd://").contains("no host"));
        assert!(err("etcd://h:99999").contains("port"));
        assert!(err("etcd://h:0").contains("port"));
        assert!(err("etcd://h?bogus=1").contains("unknown option \"bogus\""));
        assert!(err("etcd://h?ttl=10").contains("unit"));
        assert!(err("etcd://h?ttl=10s&ttl=5s").contains("twice"));
        assert!(err("zk://h?lock_delay=1s").contains("unknown option"));
        assert!(err("file://relative/dir").contains("absolute"));
        assert!(err("etcd://h//x").contains("empty segment"));
        assert!(err("etcd://h/a//b").contains("empty segment"));
        assert_eq!(BackendUrl::parse("etcd://h/app/").unwrap().path, "app");
        assert!(err("etcd://h,,h2").contains("empty host"));
        assert!(!err("etcd://u:topsecret@h?x=1").contains("topsecret"));
        assert!(!err("nope://u:topsecret@h").contains("topsecret"));
    }

    /// Every surface of a parsed URL and every parse error, for the leak checks.
    fn surfaces(u: &str) -> String {
        match BackendUrl::parse(u) {
            Ok(p) => format!("{p} {p:?}"),
            Err(e) => format!("{e} {e:?}"),
        }
    }

    #[test]
    fn userinfo_ends_at_the_last_at_sign() {
        // Issue 14: a '/' or '?' in a password used to end the authority early.
        let u = BackendUrl::parse("etcd://alice:s3cr/et@h").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().unwrap().0, "s3cr/et");
        assert_eq!(u.hosts, vec![HostPort { host: "h".into(), port: 2379 }]);
        assert_eq!(u.path, "");
        let c = BackendUrl::parse("consul://to/ken@h").unwrap();
        assert_eq!(c.user.as_deref(), Some("to/ken"));
        assert_eq!(c.hosts[0].host, "h");
        // Every delimiter may appear raw in the password; the first ':' ends the user.
        let u = BackendUrl::parse("etcd://bob:p?a#b@c:d/e@h1:1,h2:2/app/ns?ttl=5s").unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_ref().unwrap().0, "p?a#b@c:d/e");
        assert_eq!(u.hosts.len(), 2);
        assert_eq!(u.path, "app/ns");
        assert_eq!(u.duration("ttl").unwrap(), Some(Duration::from_secs(5)));
        // Percent-encoding is decoded in the user, the password and the token.
        let u = BackendUrl::parse("zk://al%3Aice%40x:50%25%2Foff@h").unwrap();
        assert_eq!((u.user.as_deref(), u.password.as_ref().unwrap().0.as_str()), (Some("al:ice@x"), "50%/off"));
        let c = BackendUrl::parse("consul://t%2Fo%3Fk%23en@h").unwrap();
        assert_eq!(c.user.as_deref(), Some("t/o?k#en"));
        // An '@' after the userinfo (in the namespace, in an option) is written %40.
        let u = BackendUrl::parse("etcd://u:p@h/team%40corp?ca=/x%40y.pem").unwrap();
        assert_eq!((u.path.as_str(), u.option("ca")), ("team@corp", Some("/x@y.pem")));
        // A '#' outside the userinfo is still a fragment, and refused.
        assert!(err("etcd://u:p#w@h/ns#frag").contains("fragment"));
        assert!(err("etcd://h#x").contains("fragment"));
    }

    #[test]
    fn userinfo_never_shows() {
        for u in [
            "etcd://alice:s3cr/et@h",
            "etcd://alice:s3cr/et@h:0",
            "etcd://alice:s3cr?et@",
            "etcd://alice:s3cr#et@h:99999/ns",
            "etcd://alice:s3cr/et@h/a//b",
            "etcd://alice:s3cr%zzet@h",
            "etcd://alice:s3cr%ffet@h",
            "etcd://alice%zz:s3cret@h",
            "etcd://:s3cret@h",
            "etcd://alice:s3cret@h?bogus=1",
            "zk://alice:s3cr/et@h?ttl=1d",
            "consul://s3cr/et@h",
            "consul://s3cr/et@h1,h2",
            "consuls://s3cr?et@[::1",
            "file://alice:s3cret@/tmp/x",
            "nope://alice:s3cr/et@h",
            "alice:s3cr/et@h:2379",
            "alice:s3cret@etcd://h",
        ] {
            let s = surfaces(u);
            assert!(!s.contains("s3cr") && !s.contains("alice"), "{u}: {s}");
        }
        // Display shows that there is a userinfo, and nothing of it.
        let u = BackendUrl::parse("etcd://alice:s3cret@h/ns").unwrap();
        assert_eq!(u.to_string(), "etcd://***@h:2379/ns");
    }

    #[test]
    fn bad_userinfo_is_invalid_argument() {
        assert!(err("etcd://u:s3cr%zzet@h").contains("percent"));
        assert!(err("etcd://u:%ff@h").contains("UTF-8"));
        assert!(err("etcd://:pw@h").contains("user"));
        assert!(err("etcd://@h").contains("empty"));
        assert!(err("file://u@/tmp/x").contains("no user"));
    }

    #[test]
    fn reserved_segments() {
        // Issue 14: '.' and '..' are normalized away by HTTP clients (Consul) and
        // refused by ZooKeeper; ballot's own keys start with '.' (Consul) or '~'
        // (ZooKeeper); a segment named like a latch node would pass for a candidate
        // of the parent election on ZooKeeper.
        for bad in [
            ".",
            "..",
            "a/./b",
            "a/../b",
            "../..",
            "svc/..",
            ".lock",
            "svc/.lock",
            "svc/.candidates",
            "svc/.epoch",
            "svc/.term",
            ".hidden",
            "svc/~ballot-epoch",
            "~x",
            "svc/latch-0000000001",
            "svc/_c_0b6f-latch-12",
        ] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert!(validate_name("../x").unwrap_err().to_string().contains("\"..\""));
        for good in ["a.b", "v1.2/x.", "a..", "x~y", "svc/latch", "latch-", "svc/latch-1a", "a-latch-b"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
        // The namespace follows the same rule.
        assert!(err("etcd://h/../x").contains("\"..\""));
        assert!(err("consul://h/ns/.lock").contains("namespace"));
    }

    #[test]
    fn every_duration_option_has_a_range() {
        // Issue 14: this value used to overflow `Instant + Duration` (a panic).
        let e = err("etcd://h?connect_timeout=18000000000000000000s");
        assert!(e.contains("connect_timeout") && e.contains("at most"), "{e}");
        for (opt, scheme) in [
            ("ttl", "etcd"),
            ("margin", "file"),
            ("connect_timeout", "zk"),
            ("session_timeout", "zk"),
            ("lock_delay", "consul"),
        ] {
            let host = if scheme == "file" { "/tmp/x" } else { "h" };
            for v in ["18000000000000000000s", "18446744073709551615ms", "100000h", "25h"] {
                let e = err(&format!("{scheme}://{host}?{opt}={v}"));
                assert!(e.contains(opt) && e.contains("at most"), "{opt}={v}: {e}");
            }
            assert!(err(&format!("{scheme}://{host}?{opt}=99999999999999999999999s")).contains(opt));
        }
        assert!(err("etcd://h?ttl=999ms").contains("at least"));
        assert!(err("etcd://h?connect_timeout=0s").contains("at least"));
        assert!(err("consul://h?lock_delay=61s").contains("lock_delay"));
        for ok in ["ttl=24h", "connect_timeout=1h", "margin=0s", "ttl=1s"] {
            BackendUrl::parse(&format!("etcd://h?{ok}")).unwrap();
        }
        BackendUrl::parse("consul://h?lock_delay=60s").unwrap();
        BackendUrl::parse("zk://h?session_timeout=24h").unwrap();
    }

    #[test]
    fn names() {
        assert!(validate_name("svc").is_ok());
        assert!(validate_name("team/svc/primary").is_ok());
        assert!(validate_name("ünïcode ok").is_ok());
        for bad in ["", "/svc", "svc/", "a//b", "a\0b", "a\nb", &"x".repeat(257)] {
            assert_eq!(validate_name(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn a_name_instead_of_hosts() {
        // The form of an in-process backend: a name, no default port.
        static NAMED: Syntax = Syntax { schemes: &[Scheme::plain("mem")], place: Place::Name, options: &[] };
        let parse = |u: &str| BackendUrl::parse_with(u, [&NAMED].into_iter());
        let u = parse("MEM://test/app/ns?ttl=5s").unwrap();
        assert_eq!(u.scheme, Scheme::plain("mem"));
        assert_eq!(u.hosts, vec![HostPort { host: "test".into(), port: 0 }]);
        assert_eq!(u.path, "app/ns");
        assert_eq!(u.to_string(), "mem://test/app/ns");
        // A port or several names are the backend's to refuse; they parse.
        assert_eq!(parse("mem://a:5,b").unwrap().to_string(), "mem://a:5,b");
        assert_eq!(parse("mem://u:s3cret@a").unwrap().to_string(), "mem://***@a");
        let e = parse("mem:///ns").unwrap_err().to_string();
        assert!(e.contains("mem:// URL has no name; for example mem://test"), "{e}");
        let e = parse("file:///x").unwrap_err().to_string();
        assert!(e.contains("unknown backend scheme \"file\"; expected mem"), "{e}");
        assert!(parse("mem://a?lock_delay=1s").unwrap_err().to_string().contains("known options: ttl, margin"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
