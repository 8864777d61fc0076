//! The accept loop: caps concurrent connections, gives each a session id and a tracing span,
//! and performs the STARTTLS upgrade between two drives of the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::connection::{drive, Exit};
use super::reply::Reply;
use super::session::Session;
use crate::shutdown::CancellationToken;
use crate::state::AppState;

/// Accepts SMTP connections on `listener` until `shutdown`; sessions run on `tracker`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(state.config.smtp.max_connections));
    let mut failures = AcceptFailures::default();
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    failures.ended();
                    a
                }
                Err(e) => {
                    // EMFILE and friends: wait (backoff), then keep accepting.
                    let wait = failures.failed(&e);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut out = Vec::new();
            Reply::too_many_connections(&state.config.smtp.hostname).write_to(&mut out);
            tracker.spawn(async move {
                let _ = stream.write_all(&out).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let session_id = format!("{:016x}", rand::random::<u64>());
        let span = tracing::info_span!("smtp", session_id = %session_id, peer = %peer);
        let state = state.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                handle(stream, peer, state, tls, &shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Accept failures — out of file descriptors (`EMFILE`, `ENFILE`), of buffers — do not end the
/// listener, but retrying at once would spin a core on a connection the kernel keeps offering
/// and write a log line each time (measured: 14.5 million lines in 66 s). quell waits before
/// the next accept, 10 ms doubling to 1 s while the failures go on, and logs at most one line
/// a second, with how many failures it stands for.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// The next wait (backoff); zero after a successful accept.
    wait: Duration,
    /// Failures since the last line logged.
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptFailures {
    const FIRST_WAIT: Duration = Duration::from_millis(10);
    const MAX_WAIT: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    /// Records a failure; how long to wait before accepting again.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY)
        {
            tracing::warn!(error = %e, failures = self.unlogged, "accept failed; waiting before the next accept");
            self.unlogged = 0;
            self.logged_at = Some(Instant::now());
        }
        self.wait = (self.wait * 2).clamp(Self::FIRST_WAIT, Self::MAX_WAIT);
        self.wait
    }

    /// A connection was accepted: the next failure waits the shortest time again.
    fn ended(&mut self) {
        self.wait = Duration::ZERO;
    }
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: AppState,
    tls: Option<TlsAcceptor>,
    shutdown: &CancellationToken,
) {
    let mut session = Session::new(state, peer, tls.is_some());
    session.count_connection();
    tracing::debug!("connected");
    match drive(&mut stream, &mut session, shutdown, true).await {
        Ok(Exit::Closed) => {}
        Ok(Exit::StartTls) => {
            let Some(acceptor) = tls else { return };
            let mut tls_stream = match tokio::time::timeout(
                session.state.config.smtp.command_timeout,
                acceptor.accept(stream),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return;
                }
            };
            session.tls_started();
            if let Err(e) = drive(&mut tls_stream, &mut session, shutdown, false).await {
                e.log();
            }
        }
        Err(e) => e.log(),
    }
    tracing::debug!("disconnected");
}
