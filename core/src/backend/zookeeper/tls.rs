//! TLS for the ZooKeeper backend (`zks://`, or `zk://` with `tls=1`), against a
//! server's `secureClientPort` (Netty).
//!
//! The ZooKeeper client makes the TLS connections itself (its `tls` feature, on
//! rustls). When a handshake fails, it logs the reason at debug level and fails the
//! connect with `NoHosts`, which says nothing about certificates. So after a failed
//! connect, [`ZkTls::explain`] repeats the handshake alone, with the same
//! certificates and the same checks (the CA, the server's name), to tell the
//! caller why. It never falls back to plaintext: every endpoint is TLS.
//!
//! The client builds its rustls configuration from rustls's process-wide default
//! crypto provider, and this build links two (ring, which ballot uses, and
//! aws-lc-rs, which the client's rustls features add), so there is no default until
//! one is installed. [`ZkTls::new`] installs ring's when none is; one installed
//! before by the application stays.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use zookeeper_client as zk;

use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::url::BackendUrl;

/// The TLS settings of one backend: the client's, and a rustls configuration with
/// the same trust and identity for [`explain`](ZkTls::explain).
#[derive(Clone)]
pub(super) struct ZkTls {
    pub(super) client: zk::TlsOptions,
    probe: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ZkTls {
    // The key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkTls").finish_non_exhaustive()
    }
}

/// Reads a PEM file named by option `what` (`ca`, `cert`, `key`).
fn read_pem(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidArgument, format_args!("reading TLS {what} {}", path.display()), e))?;
    String::from_utf8(bytes).map_err(|_| Error::invalid(format!("the TLS {what} file {} is not PEM", path.display())))
}

impl ZkTls {
    /// The TLS settings that `url` and `options` ask for, or `None` for plaintext.
    /// As for etcd: `zks://` (or `tls=1`, or TLS files in the options) means TLS;
    /// `ca=`, `cert=` and `key=` name PEM files, and the URL's and the options' must
    /// agree (checked before, in `Options::resolve`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for `zks://` with `tls=0`, TLS files without TLS, no CA
    /// file (ZooKeeper's TLS has no system trust store to fall back on here), a
    /// certificate without its key or the reverse, and unreadable or unusable files.
    pub(super) fn new(url: &BackendUrl, options: &Options) -> Result<Option<ZkTls>> {
        let Some(files) = crate::options::tls_files(url, options, "zks")? else { return Ok(None) };
        let Some(ca_path) = &files.ca else {
            return Err(Error::invalid(
                "zks:// needs ca= (the PEM file of the CA that signed the server's certificate)",
            ));
        };
        let ca = read_pem(ca_path, "ca")?;
        let bad = |what: &str, path: &Path, e: zk::Error| {
            Error::invalid(format!("the TLS {what} file {} is not usable: {e}", path.display()))
        };
        let mut client = zk::TlsOptions::new().with_pem_ca(&ca).map_err(|e| bad("ca", ca_path, e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_bytes()).flatten() {
            // The client has accepted this bundle: a certificate it skipped is skipped here too.
            let _ = roots.add(cert);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Backend, format!("zookeeper: TLS setup: {e}")))?
            .with_root_certificates(roots);
        let probe = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => {
                let (cert, key) = (read_pem(c, "cert")?, read_pem(k, "key")?);
                client = client.with_pem_identity(&cert, &key).map_err(|e| bad("cert or key", c, e))?;
                let chain: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes()).flatten().collect();
                let key = rustls_pemfile::private_key(&mut key.as_bytes())
                    .ok()
                    .flatten()
                    .ok_or_else(|| Error::invalid(format!("the TLS key file {} holds no private key", k.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::invalid(format!("the TLS cert and key files are not usable: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(Error::invalid("TLS client authentication needs both cert and key")),
        };
        Ok(Some(ZkTls { client, probe: Arc::new(probe) }))
    }

    /// Why a TLS connection to `hosts` (`h1:p1,h2:p2`) cannot be made: the first
    /// handshake failure, as `"TLS handshake with H: REASON"`, within `limit`.
    /// `None` when every handshake succeeds, no server answers, or `limit` passes.
    pub(super) async fn explain(&self, hosts: &str, limit: Duration) -> Option<String> {
        let config = self.probe.clone();
        let hosts = hosts.to_string();
        let probe = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + limit;
            hosts
                .split(',')
                .find_map(|hp| handshake(&config, hp, deadline).err().map(|e| format!("TLS handshake with {hp}: {e}")))
        });
        tokio::time::timeout(limit, probe).await.ok()?.ok()?
    }
}

/// One handshake with `hp` (`host:port`), blocking, until `deadline`. A server
/// that is not reachable is no TLS failure: `Ok`.
fn handshake(config: &Arc<rustls::ClientConfig>, hp: &str, deadline: Instant) -> std::result::Result<(), String> {
    let Some((host, _)) = hp.rsplit_once(':') else { return Ok(()) };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(name) = ServerName::try_from(host.to_string()) else { return Ok(()) };
    let left = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
    let Some(addrs) = hp.to_socket_addrs().ok() else { return Ok(()) };
    let Some(mut sock) = addrs.into_iter().find_map(|a| TcpStream::connect_timeout(&a, left()?).ok()) else {
        return Ok(());
    };
    let Ok(mut conn) = rustls::ClientConnection::new(config.clone(), name) else { return Ok(()) };
    while conn.is_handshaking() {
        let Some(t) = left() else { return Ok(()) };
        if sock.set_read_timeout(Some(t)).and(sock.set_write_timeout(Some(t))).is_err() {
            return Ok(());
        }
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) => {
                return Err("the server closed the connection during the handshake (is this its TLS port?)".into())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(e.to_string()),
            Err(e) if closed(&e) => {
                return Err("the server closed the connection during the handshake (is this its TLS port?)".into())
            }
            Err(_) => return Ok(()),
        }
    }
    // With TLS 1.3 a refused client certificate shows only after the handshake, in
    // the server's alert: read a little (ZooKeeper sends nothing before the
    // client's connect request, so a read that times out means it was accepted).
    let wait = left().map_or(Duration::from_millis(1), |t| t.min(Duration::from_millis(200)));
    if sock.set_read_timeout(Some(wait)).is_err() {
        return Ok(());
    }
    match conn.complete_io(&mut sock) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}
