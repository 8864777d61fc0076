//! A fake upstream SMTP server on port 0, scriptable per recipient: 250, 451, 550 5.1.1 …
//! It records every message it accepted and lets tests wait for deliveries without sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
}

/// A message the upstream accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
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
}

#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    count: watch::Receiver<usize>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let shared = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = shared.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, inner, tx).await;
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

async fn serve(
    stream: tokio::net::TcpStream,
    inner: Arc<Mutex<Inner>>,
    tx: Arc<watch::Sender<usize>>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 fake.upstream ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-fake.upstream\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = addr_of(&line);
            to.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = addr_of(&line);
            let script = {
                let mut g = inner.lock().unwrap();
                *g.rcpt_attempts.entry(rcpt.clone()).or_default() += 1;
                g.per_rcpt
                    .get(&rcpt)
                    .cloned()
                    .or(g.default.clone())
                    .unwrap_or(Script::Accept)
            };
            // Let waiters see the attempt.
            tx.send_modify(|_| {});
            match script {
                Script::Accept => {
                    to.push(rcpt);
                    "250 2.1.5 ok\r\n".into()
                }
                Script::Defer => "451 4.3.0 try again later\r\n".into(),
                Script::Bounce => "550 5.1.1 no such user\r\n".into(),
                Script::Refuse => "550 5.7.1 refused by policy\r\n".into(),
            }
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
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
            let n = {
                let mut g = inner.lock().unwrap();
                g.received.push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                g.received.len()
            };
            tx.send_replace(n);
            "250 2.0.0 queued upstream\r\n".into()
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 2.0.0 ok\r\n".into()
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.1 not implemented\r\n".into()
        };
        w.write_all(reply.as_bytes()).await?;
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
