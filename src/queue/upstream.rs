//! The upstream SMTP server, through lettre's async connection.
//!
//! Each delivery worker owns one connection and reuses it between messages. We connect the
//! TCP socket ourselves to set `TCP_NODELAY`: lettre writes the message and the final
//! `CRLF.CRLF` separately, and with Nagle's algorithm the second write waited for the delayed
//! ACK of the first (~40 ms per message on loopback). Every transaction runs under
//! `upstream.timeout`, because lettre's own timeout covers only the TCP connect.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{UpstreamConfig, UpstreamTls};

/// A failed upstream transaction.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reply}")]
pub struct SendError {
    /// 4xx, connection and timeout failures: try again later.
    pub transient: bool,
    /// The upstream's reply or the local cause, for the message record.
    pub reply: String,
}

impl SendError {
    fn transient(reply: impl Into<String>) -> SendError {
        SendError {
            transient: true,
            reply: reply.into(),
        }
    }

    fn from_lettre(e: &lettre::transport::smtp::Error) -> SendError {
        SendError {
            transient: !e.is_permanent(),
            reply: e.to_string(),
        }
    }

    /// The enhanced status code (RFC 3463) in the reply, e.g. `5.1.1`.
    pub fn enhanced_status(&self) -> Option<&str> {
        self.reply.split_whitespace().find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The three-digit reply code, e.g. 550 in "permanent error (550): …".
    pub fn code(&self) -> Option<u16> {
        let start = self.reply.find('(')? + 1;
        self.reply.get(start..start + 3)?.parse().ok()
    }

    /// A permanent failure about the recipient's mailbox (5.1.x): a hard bounce.
    pub fn is_hard_bounce(&self) -> bool {
        !self.transient
            && self
                .enhanced_status()
                .is_some_and(|s| s.starts_with("5.1."))
    }
}

/// The upstream's CA file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("upstream.ca_file {path}: {reason}")]
pub struct CaError {
    path: String,
    reason: String,
}

/// How to reach the upstream.
#[derive(Clone)]
pub struct Upstream {
    config: UpstreamConfig,
    client_id: ClientId,
    /// For implicit TLS (our own handshake).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// PEM of `upstream.ca_file`, for lettre's STARTTLS parameters.
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.config.host)
            .field("port", &self.config.port)
            .finish()
    }
}

impl Upstream {
    /// Prepares the TLS trust: `upstream.ca_file` when set, else the public web PKI roots.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, CaError> {
        let bad = |reason: String| CaError {
            path: config
                .ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reason,
        };
        let ca_pem = match &config.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| bad(e.to_string()))?),
        };
        let tls = if config.tls == UpstreamTls::None {
            None
        } else {
            let roots = match &ca_pem {
                None => {
                    rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
                }
                Some(pem) => {
                    let mut roots = rustls::RootCertStore::empty();
                    for cert in rustls_pemfile::certs(&mut &pem[..]) {
                        let cert = cert.map_err(|e| bad(e.to_string()))?;
                        roots.add(cert).map_err(|e| bad(e.to_string()))?;
                    }
                    if roots.is_empty() {
                        return Err(bad("no certificate in file".into()));
                    }
                    roots
                }
            };
            Some(Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        };
        Ok(Upstream {
            config: config.clone(),
            client_id: ClientId::Domain(config.helo_name.clone()),
            tls,
            ca_pem,
        })
    }

    /// lettre's parameters for STARTTLS, with the same trust as implicit TLS.
    fn starttls_parameters(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut builder = TlsParameters::builder(self.config.host.clone());
        if let Some(pem) = &self.ca_pem {
            builder = builder
                .certificate_store(CertificateStore::None)
                .add_root_certificate(Certificate::from_pem(pem)?);
        }
        builder.build_rustls()
    }

    /// Sends `message` from `sender` (empty: `<>`) to `recipient`, reusing `*connection` when
    /// it is still good and replacing it otherwise. Returns the upstream's reply.
    pub async fn send(
        &self,
        connection: &mut Option<AsyncSmtpConnection>,
        sender: &str,
        recipient: &str,
        message: &[u8],
    ) -> Result<String, SendError> {
        let envelope = envelope(sender, recipient)?;
        // lettre ends the data with CRLF.CRLF itself: a final CRLF of ours would add a line.
        let message = message.strip_suffix(b"\r\n").unwrap_or(message);
        let attempt = async {
            let (mut conn, reused) = match connection.take() {
                Some(c) if !c.has_broken() => (c, true),
                _ => (self.connect().await?, false),
            };
            let mut result = conn.send(&envelope, message).await;
            // A kept connection the upstream closed while it was idle (its idle timeout: smtp-sink
            // 100 s, Postfix 300 s) fails without any SMTP reply: retry at once on a new one
            // instead of deferring the message for queue.retry_initial.
            if reused
                && conn.has_broken()
                && result
                    .as_ref()
                    .is_err_and(|e| !e.is_transient() && !e.is_permanent())
            {
                tracing::debug!("kept upstream connection was closed; reconnecting");
                conn = self.connect().await?;
                result = conn.send(&envelope, message).await;
            }
            if !conn.has_broken() {
                *connection = Some(conn);
            }
            result.map_err(|e| SendError::from_lettre(&e))
        };
        match tokio::time::timeout(self.config.timeout, attempt).await {
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                *connection = None;
                Err(SendError::transient("timed out talking to upstream"))
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|e| SendError::transient(format!("cannot connect to upstream: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = match (self.config.tls, &self.tls) {
            (UpstreamTls::Tls, Some(tls)) => {
                let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
                    .map_err(|e| SendError::transient(format!("bad upstream host name: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SendError::transient(format!("TLS with upstream failed: {e}")))?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(ImplicitTls(stream)),
                    &self.client_id,
                )
                .await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.client_id).await,
        }
        .map_err(|e| SendError::from_lettre(&e))?;
        if self.config.tls == UpstreamTls::StartTls {
            let params = self
                .starttls_parameters()
                .map_err(|e| SendError::from_lettre(&e))?;
            conn.starttls(params, &self.client_id)
                .await
                .map_err(|e| SendError::from_lettre(&e))?;
        }
        if let Some((user, pass)) = &self.config.credentials {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), pass.expose().clone()),
            )
            .await
            .map_err(|e| SendError::from_lettre(&e))?;
        }
        Ok(conn)
    }
}

fn envelope(sender: &str, recipient: &str) -> Result<Envelope, SendError> {
    let bad = |what: &str, e: lettre::address::AddressError| SendError {
        transient: false,
        reply: format!("invalid {what} address for upstream: {e}"),
    };
    let from = if sender.is_empty() {
        None
    } else {
        Some(sender.parse::<Address>().map_err(|e| bad("sender", e))?)
    };
    let to = recipient
        .parse::<Address>()
        .map_err(|e| bad("recipient", e))?;
    Envelope::new(from, vec![to]).map_err(|e| SendError {
        transient: false,
        reply: format!("invalid envelope: {e}"),
    })
}

/// An implicitly encrypted stream (RFC 8314) on our own no-delay socket, for lettre.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounce_detection() {
        let e = SendError {
            transient: false,
            reply: "permanent error (550): 5.1.1 no such user".into(),
        };
        assert_eq!(e.enhanced_status(), Some("5.1.1"));
        assert!(e.is_hard_bounce());
        let e = SendError {
            transient: false,
            reply: "permanent error (550): 5.7.1 policy".into(),
        };
        assert!(!e.is_hard_bounce());
        let e = SendError {
            transient: true,
            reply: "transient error (450): 4.1.1 try later".into(),
        };
        assert!(!e.is_hard_bounce());
    }
}
