//! Self-signed certificates for TLS tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate for `localhost` and `127.0.0.1`, written as PEM files into `dir`.
pub struct TestCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCert {
    pub fn new(dir: &Path) -> TestCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        TestCert {
            cert_file,
            key_file,
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server acceptor presenting this certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        quell::tls::install_crypto_provider();
        let key = rustls::pki_types::PrivateKeyDer::try_from(self.key_der.clone()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// A client connector trusting only this certificate.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        quell::tls::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}
