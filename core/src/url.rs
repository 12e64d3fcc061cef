//! Backend URL parsing and validation, and election-name validation.
//!
//! URLs are parsed by hand rather than with a general URL crate because the
//! backend forms list several hosts in the authority (`h1:2379,h2:2379`), which a
//! WHATWG parser rejects. Passwords and tokens never appear in `Debug`, `Display`
//! or error messages.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The longest election name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// The backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    File,
    Etcd { tls: bool },
    Zk,
    Consul { tls: bool },
}

impl Scheme {
    fn parse(s: &str) -> Result<Scheme> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "file" => Scheme::File,
            "etcd" => Scheme::Etcd { tls: false },
            "etcds" => Scheme::Etcd { tls: true },
            "zk" => Scheme::Zk,
            "consul" => Scheme::Consul { tls: false },
            "consuls" => Scheme::Consul { tls: true },
            other => {
                return Err(Error::invalid(format!(
                    "unknown backend scheme {other:?}; expected file, etcd, etcds, zk, consul or consuls"
                )))
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scheme::File => "file",
            Scheme::Etcd { tls: false } => "etcd",
            Scheme::Etcd { tls: true } => "etcds",
            Scheme::Zk => "zk",
            Scheme::Consul { tls: false } => "consul",
            Scheme::Consul { tls: true } => "consuls",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::File => None,
            Scheme::Etcd { .. } => Some(2379),
            Scheme::Zk => Some(2181),
            Scheme::Consul { .. } => Some(8500),
        }
    }

    /// Query options this scheme accepts besides the common ones.
    fn own_options(self) -> &'static [&'static str] {
        match self {
            Scheme::File => &[],
            Scheme::Etcd { .. } => &["tls", "ca", "cert", "key"],
            Scheme::Zk => &["session_timeout"],
            Scheme::Consul { .. } => &["lock_delay", "tls", "ca", "cert", "key"],
        }
    }
}

/// Query options every scheme accepts.
const COMMON_OPTIONS: &[&str] = &["ttl", "margin", "connect_timeout"];

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
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed, validated backend URL.
#[derive(Debug, Clone)]
pub(crate) struct BackendUrl {
    pub(crate) scheme: Scheme,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) hosts: Vec<HostPort>,
    /// For `file`, the directory (absolute). For the others, the namespace path
    /// without leading or trailing `/` (empty when there is none).
    pub(crate) path: String,
    options: Vec<(String, String)>,
}

impl BackendUrl {
    /// Parses and validates `input`; every problem is an `InvalidArgument` error
    /// that names it.
    pub(crate) fn parse(input: &str) -> Result<BackendUrl> {
        let (scheme_str, rest) = input.split_once("://").ok_or_else(|| {
            Error::invalid(format!(
                "malformed backend URL {}: expected SCHEME://..., for example etcd://127.0.0.1:2379",
                redact(input)
            ))
        })?;
        let scheme = Scheme::parse(scheme_str)?;
        if rest.contains('#') {
            return Err(Error::invalid("backend URL must not contain a fragment ('#')"));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (mut user, mut password) = (None, None);
        if let Some(ui) = userinfo {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let u = percent_decode(u, "user name")?;
            if !u.is_empty() {
                user = Some(u);
            }
            if let Some(p) = p {
                password = Some(Secret(percent_decode(p, "password")?));
            }
            if user.is_none() && password.is_none() {
                return Err(Error::invalid("backend URL has an empty user part before '@'"));
            }
        }

        let mut hosts = Vec::new();
        let path_out = if scheme == Scheme::File {
            if userinfo.is_some() {
                return Err(Error::invalid("file:// URLs take no user or password"));
            }
            if !(hostlist.is_empty() || hostlist.eq_ignore_ascii_case("localhost")) {
                return Err(Error::invalid(format!(
                    "file:// URLs take an absolute directory, as file:///var/run/ballot; got host {hostlist:?}"
                )));
            }
            let dir = percent_decode(path, "directory")?;
            if !dir.starts_with('/') {
                return Err(Error::invalid("file:// URL has no directory; use file:///some/dir"));
            }
            if dir.contains('\0') {
                return Err(Error::invalid("file:// directory contains NUL"));
            }
            dir
        } else {
            if hostlist.is_empty() {
                return Err(Error::invalid(format!(
                    "{}:// URL has no host; for example {}://127.0.0.1:{}",
                    scheme.name(),
                    scheme.name(),
                    scheme.default_port().unwrap_or(0)
                )));
            }
            for hp in hostlist.split(',') {
                hosts.push(parse_hostport(hp, scheme)?);
            }
            let ns = percent_decode(path, "namespace")?;
            // One leading and one trailing '/' are separators; more are empty segments.
            let ns = ns.strip_prefix('/').unwrap_or(&ns);
            let ns = ns.strip_suffix('/').unwrap_or(ns);
            if !ns.is_empty() {
                validate_name(ns).map_err(|e| Error::invalid(format!("namespace in backend URL: {}", e.message())))?;
            }
            ns.to_string()
        };

        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::invalid(format!("backend URL option {pair:?} has no value (expected key=value)"))
                })?;
                let k = percent_decode(k, "option name")?;
                let v = percent_decode(v, "option value")?;
                if !COMMON_OPTIONS.contains(&k.as_str()) && !scheme.own_options().contains(&k.as_str()) {
                    let mut known: Vec<&str> = COMMON_OPTIONS.to_vec();
                    known.extend_from_slice(scheme.own_options());
                    return Err(Error::invalid(format!(
                        "unknown option {k:?} for {}:// URLs; known options: {}",
                        scheme.name(),
                        known.join(", ")
                    )));
                }
                if options.iter().any(|(ek, _)| *ek == k) {
                    return Err(Error::invalid(format!("option {k:?} is given twice")));
                }
                options.push((k, v));
            }
        }
        let url = BackendUrl { scheme, user, password, hosts, path: path_out, options };
        // Validate the common options now so a bad value is reported at connect.
        url.duration("ttl")?;
        url.duration("margin")?;
        url.duration("connect_timeout")?;
        Ok(url)
    }

    /// The raw value of option `key`, if given.
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Option `key` parsed as a duration (`500ms`, `10s`, `2m`, `1h`).
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.option(key)
            .map(|v| parse_duration(v).map_err(|m| Error::invalid(format!("option {key}={v:?}: {m}"))))
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

impl fmt::Display for BackendUrl {
    /// The URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.name())?;
        if self.scheme == Scheme::File {
            return f.write_str(&self.path);
        }
        if let Some(u) = &self.user {
            // A bare userinfo is a Consul ACL token: a secret.
            f.write_str(if matches!(self.scheme, Scheme::Consul { .. }) { "***" } else { u })?;
        }
        if self.password.is_some() {
            f.write_str(":***")?;
        }
        if self.user.is_some() || self.password.is_some() {
            f.write_str("@")?;
        }
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        f.write_str(&hosts.join(","))?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

/// Replaces the userinfo of a raw URL with `***` for error messages.
fn redact(input: &str) -> String {
    match (input.find("://"), input.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &input[..s + 3], &input[a..]),
        _ => input.to_string(),
    }
}

fn parse_hostport(hp: &str, scheme: Scheme) -> Result<HostPort> {
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
            None => scheme.default_port().unwrap_or(0),
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
                .ok_or_else(|| Error::invalid(format!("{what} in backend URL has a bad percent escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid(format!("{what} in backend URL is not valid UTF-8")))
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

/// Checks an election name: `/`-separated segments of printable UTF-8, no empty
/// segment, at most [`MAX_NAME_LEN`] bytes.
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
    if name.split('/').any(str::is_empty) {
        return Err(Error::invalid(format!(
            "election name {name:?} has an empty segment (a leading, trailing or doubled '/')"
        )));
    }
    Ok(())
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
        assert_eq!(u.scheme, Scheme::Etcd { tls: false });
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
        assert_eq!((f.scheme, f.path.as_str()), (Scheme::File, "/var/run/ballot"));
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
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
