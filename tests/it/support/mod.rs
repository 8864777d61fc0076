//! Test harness: quell started in-process on port 0 with a temp store and a scriptable fake
//! upstream, and a small SMTP client that speaks to it as an application would.

#![allow(dead_code)]

pub mod powercut;
pub mod process;
pub mod smtp_client;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use quell::app::{App, Listeners};
use quell::config::Config;
use quell::shutdown::CancellationToken;
use quell::state::AppState;
use tokio::net::TcpListener;

pub use smtp_client::SmtpClient;
pub use upstream::{FakeUpstream, Received, Script};

/// A valid management key configured by [`Quell::start`].
pub const API_KEY: &str = "test-key-0123456789abcdef";

/// Upper bound for anything a test waits on (deliveries, background imports).
pub const WAIT: Duration = Duration::from_secs(20);

/// A running quell.
pub struct Quell {
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    pub state: AppState,
    pub upstream: FakeUpstream,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Quell {
    /// Quell with the default config, an API key, and fast retries.
    pub async fn start() -> Quell {
        Quell::start_with(|_| {}).await
    }

    /// Like [`Quell::start`], after `change` has edited the config.
    pub async fn start_with(change: impl FnOnce(&mut Config)) -> Quell {
        // reqwest (the tests' HTTP client) uses rustls without a built-in provider.
        quell::tls::install_crypto_provider();
        let upstream = FakeUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.storage.path = dir.path().join("data");
        config.upstream.host = "127.0.0.1".into();
        config.upstream.port = upstream.addr.port();
        config.upstream.timeout = Duration::from_secs(10);
        config.upstream.connections = 2;
        config.http.api_keys = vec![API_KEY.into()];
        config.queue.retry_initial = Duration::from_millis(50);
        config.queue.retry_max = Duration::from_millis(200);
        let smtp = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let (smtp_addr, http_addr) = (smtp.local_addr().unwrap(), http.local_addr().unwrap());
        // Links in delivered mail point at this instance.
        config.unsubscribe.base_url = format!("http://{http_addr}");
        change(&mut config);
        let app = App::open(config).expect("open quell");
        let state = app.state.clone();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            app.run(Listeners { smtp, http }, token)
                .await
                .expect("quell run");
        });
        Quell {
            smtp: smtp_addr,
            http: http_addr,
            state,
            upstream,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// An SMTP client connected to quell, greeting read.
    pub async fn client(&self) -> SmtpClient {
        SmtpClient::connect(self.smtp).await
    }

    /// Sends one message through quell with a fresh connection; returns the DATA reply.
    pub async fn send(&self, from: &str, to: &[&str], body: &str) -> String {
        let mut c = self.client().await;
        c.expect("EHLO app.test", "250").await;
        c.expect(&format!("MAIL FROM:<{from}>"), "250").await;
        for rcpt in to {
            c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        }
        c.expect("DATA", "354").await;
        let reply = c.data(body).await;
        c.cmd("QUIT").await;
        reply
    }

    /// Waits until the record `md_id` has `status`; panics after [`WAIT`].
    pub async fn wait_status(&self, md_id: &str, status: quell::store::Status) {
        let store = &self.state.store;
        // Subscribed before reading, so no change is missed in between.
        let mut changes = store.message_changes();
        tokio::time::timeout(WAIT, async {
            if store.message_get(md_id).unwrap().map(|r| r.status) == Some(status) {
                return;
            }
            loop {
                match changes.recv().await {
                    Ok(r) if r.id == md_id && r.status == status => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if store.message_get(md_id).unwrap().map(|r| r.status) == Some(status) {
                            return;
                        }
                    }
                    Err(e) => panic!("message changes: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{md_id} never reached {status:?}: {:?}",
                store.message_get(md_id).unwrap()
            )
        });
    }

    /// Stops quell and waits for the drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("quell task");
        }
    }
}

impl Drop for Quell {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The queue id in a `250 2.0.0 Ok: queued as <id>` reply.
pub fn queue_id(reply: &str) -> String {
    reply
        .trim()
        .rsplit(' ')
        .next()
        .expect("queue id in reply")
        .to_string()
}

/// A small message with the given headers prepended.
pub fn message(headers: &str, body: &str) -> String {
    format!(
        "{headers}From: app@example.com\r\nTo: user@example.net\r\nSubject: test\r\n\r\n{body}\r\n"
    )
}
