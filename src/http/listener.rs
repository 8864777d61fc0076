//! The HTTP accept loop. The listener is public (unsubscribe links), so no client may make quell
//! hold more than a bounded share of it: at most `http.max_connections` connections are served
//! at once (more wait in the listen backlog), at most `http.max_connections_per_ip` from one
//! address (more are closed at accept), a client has `http.header_timeout` to send a request's
//! headers (hyper's header-read timeout, which also ends a kept-alive connection left idle) and
//! to finish a TLS handshake. An accept failure (out of descriptors) waits and is logged
//! sparingly ([`crate::accept`]). On shutdown, requests in flight finish; idle connections close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::accept::AcceptFailures;
use crate::config::HttpConfig;
use crate::shutdown::CancellationToken;

/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: &HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Clients::new(limits.max_connections_per_ip);
    let mut failures = AcceptFailures::default();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    failures.ended();
                    a
                }
                Err(e) => {
                    let wait = failures.failed(&e);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let Some(client) = clients.enter(peer.ip()) else {
            tracing::debug!(peer = %peer.ip(), "http connection closed: too many from this address");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let _held = (slot, client);
            let served = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        _ => return,
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "http connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => tracing::warn!("http requests still in flight after the drain; closing"),
    }
    Ok(())
}

/// Connections per client address.
#[derive(Clone)]
struct Clients {
    limit: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection of a client, counted until dropped.
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl Clients {
    fn new(limit: usize) -> Clients {
        Clients {
            limit,
            counts: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, unless it holds `limit` already.
    fn enter(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self
            .clients
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let clients = Clients::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = clients.enter(ip).unwrap();
        let _b = clients.enter(ip).unwrap();
        assert!(clients.enter(ip).is_none());
        assert!(clients.enter("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(clients.enter(ip).is_some());
    }
}
