//! TLS for the PostgreSQL backend, with libpq's `sslmode` meanings, on rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, ErrorKind, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without checking its certificate (unless a
    /// root certificate is given: then as `VerifyCa`). libpq's default.
    Prefer,
    /// TLS, the certificate checked only when a root certificate is given.
    Require,
    /// TLS, the certificate chain checked, not the host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    pub(super) fn parse(v: &str) -> Result<SslMode> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::invalid(
                    "option sslmode=allow is not supported (it tries without TLS first); use prefer or disable",
                ))
            }
            other => {
                return Err(Error::invalid(format!(
                    "option sslmode={other:?}: expected disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

/// The files TLS uses.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsFiles {
    pub(super) root_cert: Option<PathBuf>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::io(ErrorKind::InvalidArgument, format_args!("reading TLS {what} {}", path.display()), e))
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let out: std::result::Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let out = out.map_err(|e| Error::invalid(format!("TLS {what} {}: not PEM certificates: {e}", path.display())))?;
    if out.is_empty() {
        return Err(Error::invalid(format!("TLS {what} {} holds no certificate", path.display())));
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `mode` and `files`.
pub(super) fn client_config(mode: SslMode, files: &TlsFiles) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS setup: {e}")))?;
    let roots = || -> Result<Arc<RootCertStore>> {
        let mut store = RootCertStore::empty();
        match &files.root_cert {
            Some(p) => {
                for c in certs(p, "sslrootcert")? {
                    store.add(c).map_err(|e| Error::invalid(format!("TLS sslrootcert {}: {e}", p.display())))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = store.add(c);
                }
            }
        }
        Ok(Arc::new(store))
    };
    let verify_chain = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        // libpq: with a root certificate, require and prefer check the chain.
        _ => files.root_cert.is_some(),
    };
    let builder = if !verify_chain {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify))
    } else {
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots()?, provider())
            .build()
            .map_err(|e| Error::invalid(format!("TLS root certificates: {e}")))?;
        if mode == SslMode::VerifyFull {
            builder.with_webpki_verifier(webpki)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        }
    };
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => {
            let chain = certs(c, "sslcert")?;
            let pem = read(k, "sslkey")?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
                .map_err(|e| Error::invalid(format!("TLS sslkey {}: {e}", k.display())))?
                .ok_or_else(|| Error::invalid(format!("TLS sslkey {} holds no private key", k.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::invalid(format!("TLS client certificate and key: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::invalid("TLS client authentication needs both sslcert and sslkey")),
    }
}

/// `require`/`prefer` without a root certificate: encryption without
/// authentication of the server, as libpq does.
#[derive(Debug)]
struct NoVerify;

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
