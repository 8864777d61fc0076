//! The accept loop: caps concurrent connections, gives each a session id and a tracing span,
//! and performs the STARTTLS upgrade between two drives of the session.

use std::net::SocketAddr;
use std::sync::Arc;

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
    let mut failures = crate::accept::AcceptFailures::default();
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
