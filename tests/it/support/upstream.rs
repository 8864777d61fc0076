//! A fake upstream SMTP server on port 0, scriptable per recipient: 250, 451, 550 5.1.1 …
//! It records every message it accepted and lets tests wait for deliveries without sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::WAIT;

/// What the upstream answers to RCPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    Accept,
    /// `451 4.3.0 try again later`
    Defer,
    /// `550 5.1.1 no such user`
    Bounce,
    /// `550 5.7.1 policy` (permanent but not a hard bounce)
    Refuse,
    /// `250` to RCPT, then the message is read and its end never answered: the transaction
    /// hangs until the client goes away (a crash in the middle of a delivery).
    Stall,
}

/// A message the upstream accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct Inner {
    default: Option<Script>,
    per_rcpt: HashMap<String, Script>,
    received: Vec<Received>,
    rcpt_attempts: HashMap<String, usize>,
    /// Transactions left hanging by [`Script::Stall`].
    stalled: usize,
}

/// TLS and AUTH the fake upstream offers.
#[derive(Clone, Default)]
pub struct Options {
    /// Offer STARTTLS, or with `implicit` speak TLS from the first byte.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub implicit: bool,
    /// Require AUTH PLAIN with these credentials before MAIL.
    pub credentials: Option<(String, String)>,
}

#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    count: watch::Receiver<usize>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        FakeUpstream::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let shared = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let ctx = Ctx {
                    inner: shared.clone(),
                    tx: tx.clone(),
                    options: options.clone(),
                };
                tokio::spawn(async move {
                    let _ = connection(stream, ctx).await;
                });
            }
        });
        FakeUpstream { addr, inner, count }
    }

    /// The answer to every RCPT without its own script.
    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().default = Some(s);
    }

    /// The answer to RCPT for one address.
    pub fn script_rcpt(&self, rcpt: &str, s: Script) {
        self.inner
            .lock()
            .unwrap()
            .per_rcpt
            .insert(rcpt.to_string(), s);
    }

    /// The count of accepted messages, to wait for its next change.
    pub fn counter(&self) -> watch::Receiver<usize> {
        self.count.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// How many times RCPT was tried for `rcpt`.
    pub fn attempts(&self, rcpt: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .rcpt_attempts
            .get(rcpt)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `n` messages have been accepted; panics after [`WAIT`].
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut rx = self.count.clone();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "upstream did not receive {n} messages in time (got {})",
                    *self.count.borrow()
                )
            })
            .unwrap();
        self.received()
    }

    /// How many accepted messages were addressed to `rcpt`.
    pub fn deliveries_to(&self, rcpt: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.to.iter().any(|t| t == rcpt))
            .count()
    }

    /// Waits until at least `n` transactions hang after their message ([`Script::Stall`]).
    pub async fn wait_stalled(&self, n: usize) {
        let mut rx = self.count.clone();
        let stalled = || self.inner.lock().unwrap().stalled;
        tokio::time::timeout(WAIT, async {
            while stalled() < n {
                let _ = rx.changed().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} transactions did not stall (got {})", stalled()));
    }

    /// Waits until RCPT for `rcpt` has been tried at least `n` times.
    pub async fn wait_attempts(&self, rcpt: &str, n: usize) {
        let mut rx = self.count.clone();
        let check = |_: &usize| self.attempts(rcpt) >= n;
        tokio::time::timeout(WAIT, async {
            loop {
                if check(&0) {
                    return;
                }
                let _ = rx.changed().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{rcpt} was not tried {n} times (got {})",
                self.attempts(rcpt)
            )
        });
    }
}

#[derive(Clone)]
struct Ctx {
    inner: Arc<Mutex<Inner>>,
    tx: Arc<watch::Sender<usize>>,
    options: Options,
}

async fn connection(stream: tokio::net::TcpStream, ctx: Ctx) -> std::io::Result<()> {
    match (&ctx.options.tls, ctx.options.implicit) {
        (Some(acceptor), true) => {
            let tls = acceptor.accept(stream).await?;
            session(tls, &ctx, true).await?;
        }
        _ => {
            if let Some(plain) = session(stream, &ctx, false).await? {
                let acceptor = ctx.options.tls.clone().expect("STARTTLS only when offered");
                let tls = acceptor.accept(plain).await?;
                session(tls, &ctx, true).await?;
            }
        }
    }
    Ok(())
}

/// One SMTP session; returns the stream when the client asked for STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ctx: &Ctx,
    tls: bool,
) -> std::io::Result<Option<S>> {
    let mut r = BufReader::new(stream);
    if !tls || ctx.options.implicit {
        r.get_mut()
            .write_all(b"220 fake.upstream ESMTP\r\n")
            .await?;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut user: Option<String> = None;
    let mut stall = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut ext = String::from("250-fake.upstream\r\n250-8BITMIME\r\n");
            if ctx.options.tls.is_some() && !tls {
                ext.push_str("250-STARTTLS\r\n");
            }
            if ctx.options.credentials.is_some() {
                ext.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            ext.push_str("250 SMTPUTF8\r\n");
            ext
        } else if upper.starts_with("STARTTLS") && ctx.options.tls.is_some() && !tls {
            r.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
            return Ok(Some(r.into_inner()));
        } else if upper.starts_with("AUTH PLAIN ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(line[11..].trim())
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            match (&ctx.options.credentials, parts.as_slice()) {
                (Some((u, p)), [_, gu, gp]) if u.as_bytes() == *gu && p.as_bytes() == *gp => {
                    user = Some(u.clone());
                    "235 2.7.0 ok\r\n".into()
                }
                _ => "535 5.7.8 bad credentials\r\n".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if ctx.options.credentials.is_some() && user.is_none() {
                "530 5.7.0 authentication required\r\n".into()
            } else {
                from = addr_of(&line);
                to.clear();
                stall = false;
                "250 2.1.0 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = addr_of(&line);
            let script = {
                let mut g = ctx.inner.lock().unwrap();
                *g.rcpt_attempts.entry(rcpt.clone()).or_default() += 1;
                g.per_rcpt
                    .get(&rcpt)
                    .cloned()
                    .or(g.default.clone())
                    .unwrap_or(Script::Accept)
            };
            // Let waiters see the attempt.
            ctx.tx.send_modify(|_| {});
            match script {
                Script::Accept => {
                    to.push(rcpt);
                    "250 2.1.5 ok\r\n".into()
                }
                Script::Defer => "451 4.3.0 try again later\r\n".into(),
                Script::Bounce => "550 5.1.1 no such user\r\n".into(),
                Script::Refuse => "550 5.7.1 refused by policy\r\n".into(),
                Script::Stall => {
                    stall = true;
                    to.push(rcpt);
                    "250 2.1.5 ok\r\n".into()
                }
            }
        } else if upper.starts_with("DATA") {
            r.get_mut().write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(None);
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            if stall {
                ctx.inner.lock().unwrap().stalled += 1;
                ctx.tx.send_modify(|_| {});
                // No answer: wait for the client to go away.
                let mut rest = Vec::new();
                while r.read_until(b'\n', &mut rest).await? > 0 {
                    rest.clear();
                }
                return Ok(None);
            }
            let n = {
                let mut g = ctx.inner.lock().unwrap();
                g.received.push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    tls,
                    user: user.clone(),
                });
                g.received.len()
            };
            ctx.tx.send_replace(n);
            "250 2.0.0 queued upstream\r\n".into()
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 2.0.0 ok\r\n".into()
        } else if upper.starts_with("QUIT") {
            r.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(None);
        } else {
            "502 5.5.1 not implemented\r\n".into()
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
    }
}

fn addr_of(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(line.len());
    line[start..end].trim().to_string()
}
