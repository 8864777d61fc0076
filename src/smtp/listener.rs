//! The accept loop: admits connections within the limits, gives each a session id and a
//! tracing span, and performs the STARTTLS upgrade between two drives of the session.
//!
//! Slots go to those who need them, not to whoever takes them first (issue 11: 1,000
//! connections from one address that could not relay took all 512 and the relay client got
//! `421`). A client outside `smtp.relay_networks` may hold `smtp.max_connections_per_ip`
//! connections, and all such clients together `max_connections - reserved_connections`; the
//! reserved rest is for `relay_networks` clients. Past a limit the client gets a `421 4.7.0`
//! greeting and the connection is closed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::connection::{drive, Exit};
use super::reply::Reply;
use super::session::Session;
use crate::accept::{AcceptFailures, ClientSlot, Clients};
use crate::config::SmtpConfig;
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
    let admission = Admission::new(&state.config.smtp);
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
        let permit = match admission.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                let hostname = &state.config.smtp.hostname;
                let reply = match refusal {
                    Refusal::PerAddress => Reply::too_many_connections_from_address(hostname),
                    Refusal::Full => Reply::too_many_connections(hostname),
                };
                tracing::debug!(peer = %peer.ip(), reason = refusal.as_str(), "smtp connection refused");
                let mut out = Vec::new();
                reply.write_to(&mut out);
                tracker.spawn(async move {
                    let _ = stream.write_all(&out).await;
                });
                continue;
            }
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

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its address holds `max_connections_per_ip` already.
    PerAddress,
    /// No slot it may take is free.
    Full,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "too many from this address",
            Refusal::Full => "no free slot",
        }
    }
}

/// The listener's slots: `max_connections` in all, of which clients outside `relay_networks`
/// may take `max_connections - reserved_connections` together and `max_connections_per_ip`
/// from one address.
struct Admission {
    config: SmtpConfig,
    /// Every connection holds one of these.
    all: Arc<Semaphore>,
    /// Clients outside `relay_networks` hold one of these too.
    unreserved: Arc<Semaphore>,
    per_address: Option<Clients>,
}

/// What an admitted connection holds until it ends.
#[derive(Debug)]
struct Admitted {
    _all: OwnedSemaphorePermit,
    _unreserved: Option<OwnedSemaphorePermit>,
    _address: Option<ClientSlot>,
}

impl Admission {
    fn new(config: &SmtpConfig) -> Admission {
        Admission {
            config: config.clone(),
            all: Arc::new(Semaphore::new(config.max_connections)),
            unreserved: Arc::new(Semaphore::new(
                config
                    .max_connections
                    .saturating_sub(config.reserved_connections),
            )),
            per_address: config.max_connections_per_ip.map(Clients::new),
        }
    }

    /// The slots for a connection from `ip`, or why there is none.
    fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        if self.config.in_relay_networks(ip) {
            let all = self.all.clone().try_acquire_owned();
            return all
                .map(|all| Admitted {
                    _all: all,
                    _unreserved: None,
                    _address: None,
                })
                .map_err(|_| Refusal::Full);
        }
        let address = match &self.per_address {
            Some(clients) => Some(
                clients
                    .enter(ip.to_canonical())
                    .ok_or(Refusal::PerAddress)?,
            ),
            None => None,
        };
        let unreserved = self
            .unreserved
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        Ok(Admitted {
            _all: all,
            _unreserved: Some(unreserved),
            _address: address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize, reserved: usize, per_ip: Option<usize>) -> Admission {
        let mut config = crate::config::Config::default().smtp;
        config.relay_networks = vec!["10.0.0.0/8".parse().unwrap()];
        config.max_connections = max;
        config.reserved_connections = reserved;
        config.max_connections_per_ip = per_ip;
        Admission::new(&config)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn outsiders_share_the_unreserved_slots_and_relay_clients_keep_the_rest() {
        let a = admission(5, 2, None);
        let outsiders: Vec<_> = (1..=3)
            .map(|i| a.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(a.admit(ip("192.0.2.9")).unwrap_err(), Refusal::Full);
        let relay: Vec<_> = (0..2).map(|_| a.admit(ip("10.1.2.3")).unwrap()).collect();
        assert_eq!(a.admit(ip("10.1.2.3")).unwrap_err(), Refusal::Full);
        drop(outsiders);
        // Relay clients may take unreserved slots too, and are not counted per address.
        let more: Vec<_> = (0..3).map(|_| a.admit(ip("10.1.2.3")).unwrap()).collect();
        assert_eq!(a.admit(ip("192.0.2.1")).unwrap_err(), Refusal::Full);
        drop((relay, more));
        assert!(a.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn one_outside_address_holds_at_most_its_share() {
        let a = admission(10, 0, Some(2));
        let held: Vec<_> = (0..2).map(|_| a.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(a.admit(ip("192.0.2.1")).unwrap_err(), Refusal::PerAddress);
        // The same client over an IPv6 socket is the same address.
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.1")).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(a.admit(ip("192.0.2.2")).is_ok());
        let relay: Vec<_> = (0..3).map(|_| a.admit(ip("10.0.0.1")).unwrap()).collect();
        drop((held, relay));
        assert!(a.admit(ip("192.0.2.1")).is_ok());
    }
}
