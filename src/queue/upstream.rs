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
use lettre::transport::smtp::response::{Code, Severity};
use lettre::Address;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{UpstreamConfig, UpstreamTls};

/// An enhanced mail system status code (RFC 3463 §2), e.g. `5.1.1`: class, subject, detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// What the status is about: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5
    /// protocol, 6 content, 7 security or policy.
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// The code a reply text starts with (RFC 2034 §4: it precedes the text), if it has one.
    pub fn parse(text: &str) -> Option<Enhanced> {
        let word = text.split_ascii_whitespace().next()?;
        let mut parts = word.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |p: &str| {
            ((1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(Enhanced {
            class,
            subject: number(subject)?,
            detail: number(detail)?,
        })
    }
}

impl std::fmt::Display for Enhanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Why one copy was not delivered. Its `Display` is for logs and leaves out the upstream's
/// free text, which usually names the recipient (`550 5.1.1 <a@b>: user unknown`); the
/// message record gets [`SendError::record_text`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The upstream answered 4xx or 5xx.
    #[error("{code}{}", enhanced.map(|e| format!(" {e}")).unwrap_or_default())]
    Reply {
        /// The reply code, from lettre's [`lettre::transport::smtp::Error::status`].
        code: Code,
        /// The enhanced status code the text starts with, parsed once here; `None` when there
        /// is none or its class disagrees with the reply code (RFC 2034 §4).
        enhanced: Option<Enhanced>,
        /// The reply's text (lines joined), for the message record only.
        text: String,
    },
    /// No reply to act on: connecting, TLS, a connection that broke or a reply lettre could not
    /// read. Transient: the copy stays queued.
    #[error("{0}")]
    Connection(String),
    /// The transaction did not finish within `upstream.timeout`. Transient.
    #[error("timed out talking to upstream")]
    Timeout,
    /// The envelope cannot be sent as it is (an address lettre refuses): trying again cannot
    /// help.
    #[error("{0}")]
    Envelope(String),
    /// Still not delivered after `queue.max_age`: a permanent failure.
    #[error("gave up after {attempts} attempts (queue.max_age); last reply: {last}")]
    GaveUp {
        attempts: u32,
        /// The failure of the last attempt.
        last: Box<SendError>,
    },
}

impl SendError {
    /// From lettre's error: the reply code from [`lettre::transport::smtp::Error::status`],
    /// the reply text from its source (lettre keeps the joined reply lines there).
    fn from_lettre(e: &lettre::transport::smtp::Error) -> SendError {
        match e.status() {
            Some(code) => {
                let text = std::error::Error::source(e)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                SendError::reply(code, text)
            }
            None if e.is_timeout() => SendError::Timeout,
            None => SendError::Connection(e.to_string()),
        }
    }

    /// A negative reply with its text.
    fn reply(code: Code, text: String) -> SendError {
        let class = code.severity as u8;
        let enhanced = Enhanced::parse(&text).filter(|e| e.class == class);
        SendError::Reply {
            code,
            enhanced,
            text,
        }
    }

    /// 4xx replies, connection failures and timeouts: the copy stays queued and is tried
    /// again.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Reply { code, .. } => code.severity != Severity::PermanentNegativeCompletion,
            SendError::Connection(_) | SendError::Timeout => true,
            SendError::Envelope(_) | SendError::GaveUp { .. } => false,
        }
    }

    /// A permanent failure about the recipient's address (5.1.x, RFC 3463 §3.2): a hard
    /// bounce, which suppresses the address.
    pub fn is_hard_bounce(&self) -> bool {
        matches!(
            self,
            SendError::Reply {
                code,
                enhanced: Some(Enhanced { class: 5, subject: 1, .. }),
                ..
            } if code.severity == Severity::PermanentNegativeCompletion
        )
    }

    /// The upstream's three-digit reply code, e.g. 550; for [`SendError::GaveUp`], that of the
    /// last attempt.
    pub fn code(&self) -> Option<u16> {
        match self {
            SendError::Reply { code, .. } => Some(u16::from(*code)),
            SendError::GaveUp { last, .. } => last.code(),
            _ => None,
        }
    }

    /// The enhanced status code of the upstream's reply, e.g. `5.1.1`.
    pub fn enhanced(&self) -> Option<Enhanced> {
        match self {
            SendError::Reply { enhanced, .. } => *enhanced,
            SendError::GaveUp { last, .. } => last.enhanced(),
            _ => None,
        }
    }

    /// The full failure for the message record (`last_reply`) and a hard bounce's detail:
    /// the upstream's reply as it came (`550 5.1.1 <a@b>: user unknown`) or the local cause.
    /// Not for logs: it may name the recipient.
    pub fn record_text(&self) -> String {
        match self {
            SendError::Reply { code, text, .. } if text.is_empty() => code.to_string(),
            SendError::Reply { code, text, .. } => format!("{code} {text}"),
            SendError::GaveUp { attempts, last } => format!(
                "gave up after {attempts} attempts (queue.max_age); last reply: {}",
                last.record_text()
            ),
            other => other.to_string(),
        }
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
                    use rustls::pki_types::pem::PemObject;
                    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
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
                Err(SendError::Timeout)
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|e| SendError::Connection(format!("cannot connect to upstream: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = match (self.config.tls, &self.tls) {
            (UpstreamTls::Tls, Some(tls)) => {
                let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
                    .map_err(|e| SendError::Connection(format!("bad upstream host name: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SendError::Connection(format!("TLS with upstream failed: {e}")))?;
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
    let bad = |what: &str, e: lettre::address::AddressError| {
        SendError::Envelope(format!("invalid {what} address for upstream: {e}"))
    };
    let from = if sender.is_empty() {
        None
    } else {
        Some(sender.parse::<Address>().map_err(|e| bad("sender", e))?)
    };
    let to = recipient
        .parse::<Address>()
        .map_err(|e| bad("recipient", e))?;
    Envelope::new(from, vec![to]).map_err(|e| SendError::Envelope(format!("invalid envelope: {e}")))
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
    use tokio::io::{AsyncWriteExt, DuplexStream};

    /// One end of an in-memory pipe for lettre, the other end holding the upstream's replies.
    #[derive(Debug)]
    struct Pipe(DuplexStream);

    impl AsyncRead for Pipe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Pipe {
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
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    impl AsyncTokioStream for Pipe {
        fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            Ok(([127, 0, 0, 1], 25).into())
        }
    }

    fn status(class: u8, subject: u16, detail: u16) -> Option<Enhanced> {
        Some(Enhanced {
            class,
            subject,
            detail,
        })
    }

    /// One line of the fake upstream's script.
    fn line(code: u16, text: &str) -> String {
        format!("{code} {text}\r\n")
    }

    /// The error lettre returns when the upstream answers RCPT with `rcpt_reply` (the replies
    /// are all written up front: lettre reads them one per command; after the refusal it sends
    /// QUIT and waits for its `221`).
    async fn refused_at_rcpt(rcpt_reply: &str) -> lettre::transport::smtp::Error {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let script = [
            line(220, "fake"),
            line(250, "fake"),
            line(250, "2.1.0 ok"),
            format!("{rcpt_reply}\r\n"),
            line(221, "bye"),
        ]
        .concat();
        server.write_all(script.as_bytes()).await.unwrap();
        let id = ClientId::Domain("quell.test".into());
        let Ok(mut conn) =
            AsyncSmtpConnection::connect_with_transport(Box::new(Pipe(client)), &id).await
        else {
            panic!("EHLO failed");
        };
        let envelope = envelope("a@example.com", "x@example.net").unwrap();
        let e = conn
            .send(&envelope, b"Subject: t\r\n\r\nx")
            .await
            .unwrap_err();
        drop(server);
        e
    }

    #[tokio::test]
    async fn built_from_the_reply_code_and_its_enhanced_status() {
        // (RCPT reply, code, enhanced, transient, hard bounce)
        type Case = (&'static str, u16, Option<Enhanced>, bool, bool);
        let cases: &[Case] = &[
            (
                "550 5.1.1 <x@y>: user unknown",
                550,
                status(5, 1, 1),
                false,
                true,
            ),
            ("452 4.2.2 mailbox full", 452, status(4, 2, 2), true, false),
            ("421 4.3.0 try later", 421, status(4, 3, 0), true, false),
            (
                "550 5.7.1 refused by policy",
                550,
                status(5, 7, 1),
                false,
                false,
            ),
            ("554 no such user here", 554, None, false, false),
            // The class disagrees with the reply code (RFC 2034 §4): not taken as a status.
            ("550 4.1.1 odd", 550, None, false, false),
            ("451 4.1.1 try later", 451, status(4, 1, 1), true, false),
        ];
        for &(reply, code, enhanced, transient, hard) in cases {
            let e = SendError::from_lettre(&refused_at_rcpt(reply).await);
            assert!(matches!(e, SendError::Reply { .. }), "{reply}: {e:?}");
            assert_eq!(e.code(), Some(code), "{reply}");
            assert_eq!(e.enhanced(), enhanced, "{reply}");
            assert_eq!(e.is_transient(), transient, "{reply}");
            assert_eq!(e.is_hard_bounce(), hard, "{reply}");
            // The record keeps the reply as it came; the log line leaves its text out.
            assert_eq!(e.record_text(), reply);
            let logged = e.to_string();
            assert!(
                !logged.contains('@') && logged.starts_with(&code.to_string()),
                "{logged}"
            );
        }
    }

    #[tokio::test]
    async fn multiline_replies_keep_their_status_once() {
        let e = SendError::from_lettre(
            &refused_at_rcpt("550-5.1.1 <x@y>: no such\r\n550 5.1.1 user here").await,
        );
        assert_eq!(
            e.enhanced().map(|e| e.to_string()).as_deref(),
            Some("5.1.1")
        );
        assert!(e.is_hard_bounce());
        assert_eq!(e.record_text(), "550 5.1.1 <x@y>: no such user here");
        assert_eq!(e.to_string(), "550 5.1.1");
    }

    #[tokio::test]
    async fn a_broken_connection_is_transient() {
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(line(220, "fake").as_bytes())
            .await
            .unwrap();
        drop(server); // gone before EHLO is written
        let id = ClientId::Domain("quell.test".into());
        let Err(e) = AsyncSmtpConnection::connect_with_transport(Box::new(Pipe(client)), &id).await
        else {
            panic!("EHLO succeeded on a closed pipe");
        };
        assert_eq!(e.status(), None);
        let e = SendError::from_lettre(&e);
        assert!(matches!(e, SendError::Connection(_)), "{e:?}");
        assert!(e.is_transient() && !e.is_hard_bounce());
        assert_eq!((e.code(), e.enhanced()), (None, None));
        assert!(SendError::Timeout.is_transient());
    }

    #[test]
    fn given_up_is_permanent_and_keeps_the_last_reply() {
        let last = SendError::reply(
            Code::new(
                Severity::TransientNegativeCompletion,
                lettre::transport::smtp::response::Category::MailSystem,
                lettre::transport::smtp::response::Detail::Two,
            ),
            "4.2.2 <x@y> mailbox full".into(),
        );
        let e = SendError::GaveUp {
            attempts: 7,
            last: Box::new(last),
        };
        assert!(!e.is_transient() && !e.is_hard_bounce());
        assert_eq!(e.code(), Some(452));
        assert_eq!(
            e.record_text(),
            "gave up after 7 attempts (queue.max_age); last reply: 452 4.2.2 <x@y> mailbox full"
        );
        assert_eq!(
            e.to_string(),
            "gave up after 7 attempts (queue.max_age); last reply: 452 4.2.2"
        );
        let bad = envelope("a@example.com", "not an address").unwrap_err();
        assert!(!bad.is_transient() && bad.code().is_none());
    }

    #[test]
    fn enhanced_status_table() {
        let cases: &[(&str, Option<Enhanced>)] = &[
            ("5.1.1 <x@y>: user unknown", status(5, 1, 1)),
            ("4.2.2 mailbox full", status(4, 2, 2)),
            ("2.0.0 Ok", status(2, 0, 0)),
            ("5.7.25 no PTR", status(5, 7, 25)),
            ("5.123.999 x", status(5, 123, 999)),
            ("  4.4.1\tlater", status(4, 4, 1)),
            ("user unknown 5.1.1", None),
            ("3.1.1 x", None),
            ("5.1 x", None),
            ("5.1.1.1 x", None),
            ("5.1234.1 x", None),
            ("5..1 x", None),
            ("5.a.1 x", None),
            ("5.1.1: x", None),
            ("", None),
        ];
        for &(text, want) in cases {
            assert_eq!(Enhanced::parse(text), want, "{text:?}");
        }
        assert_eq!(Enhanced::parse("5.7.25 x").unwrap().to_string(), "5.7.25");
    }
}
