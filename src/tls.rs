//! TLS for quell's listeners: a rustls server configuration from PEM files (STARTTLS on the
//! SMTP listener, `[http.tls]` on the HTTP one, whose handshake runs in the connection's own
//! task under `http.header_timeout`, see `http::listener`).

use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not PEM: {source}")]
    Pem { path: String, source: pem::Error },
    #[error("no certificate in {0}")]
    NoCertificate(String),
    #[error("no private key in {0}")]
    NoKey(String),
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS acceptor for the certificate chain and key in `files`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    install_crypto_provider();
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let unparsable = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| TlsError::Pem { path, source }
    };
    let certs = CertificateDer::pem_slice_iter(&read(&files.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(unparsable(&files.cert_file))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(
            files.cert_file.display().to_string(),
        ));
    }
    let key = match PrivateKeyDer::from_pem_slice(&read(&files.key_file)?) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(files.key_file.display().to_string()))
        }
        Err(e) => return Err(unparsable(&files.key_file)(e)),
    };
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
