//! The composition root: opens the store, builds the [`AppState`], starts the SMTP listener,
//! the HTTP server and the delivery workers on sockets that are already bound, and drains
//! them on shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, DkimConfig};
use crate::id::now_secs;
use crate::mime::dkim::{Dkim, DkimError};
use crate::queue::{self, render::Renderer, upstream::Upstream, Jobs, Scheduler};
use crate::shutdown::CancellationToken;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::tls::TlsError;

// `Store::open` (tests, tools) and a config without `storage.cache_size` use one cache size;
// the store cannot read the config's constant, so the two are compared here.
const _: () = assert!(crate::config::DEFAULT_CACHE_SIZE == crate::store::DEFAULT_CACHE_SIZE);

/// How long sessions and deliveries in flight get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Why quell could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("store at {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("{key}: {source}")]
    Tls { key: &'static str, source: TlsError },
    #[error("store: {0}")]
    Runtime(#[from] StoreError),
    #[error("{0}")]
    UpstreamCa(#[from] crate::queue::upstream::CaError),
    #[error("dkim.key_file {path}: {reason}")]
    Dkim { path: String, reason: String },
    #[error("http server: {0}")]
    Http(std::io::Error),
}

/// The sockets quell serves on, bound by the caller (`main`, or a test on port 0).
#[derive(Debug)]
pub struct Listeners {
    pub smtp: TcpListener,
    pub http: TcpListener,
}

/// An opened quell, ready to [`App::run`].
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    jobs: Arc<Jobs>,
}

impl App {
    /// Opens the store at `storage.path` and builds the shared state.
    /// Refuses to start (before the store is touched, so a full disk cannot leave it half
    /// written) while its file system has less than `storage.min_free` free.
    pub fn open(config: Config) -> Result<App, AppError> {
        let path = config.storage.path.clone();
        let store_error = |source| AppError::Store {
            path: path.display().to_string(),
            source,
        };
        let floor = config.storage.min_free;
        let free = crate::store::free_space(&path).map_err(|e| store_error(e.into()))?;
        if free < floor {
            return Err(store_error(StoreError::Full { free, floor }));
        }
        let store = Store::open_with(&path, config.storage.cache_size).map_err(store_error)?;
        store.set_min_free(floor);
        let (scheduler, jobs) = Scheduler::channel();
        Ok(App {
            state: AppState::new(config, store, scheduler),
            jobs,
        })
    }

    /// Serves until `shutdown` is cancelled, then drains: accept loops stop, sessions finish
    /// the message in flight or answer 421, deliveries in progress end, the store is flushed.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        let state = self.state;
        let config = state.config.clone();
        let smtp_tls = config
            .smtp
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()
            .map_err(|source| AppError::Tls {
                key: "smtp.tls",
                source,
            })?;
        let http_tls = config
            .http
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()
            .map_err(|source| AppError::Tls {
                key: "http.tls",
                source,
            })?;
        crate::tls::install_crypto_provider();
        let upstream = Upstream::new(&config.upstream)?;
        let dkim = config.dkim.as_ref().map(load_dkim).transpose()?;

        let tracker = state.tasks.clone();
        let recovered = queue::worker::recover(&state)?;
        if recovered > 0 {
            tracing::info!(count = recovered, "queued messages scheduled for delivery");
        }
        let imports = crate::http::mailgun::resume_imports(&state)?;
        if imports > 0 {
            tracing::info!(count = imports, "unfinished CSV imports applied again");
        }
        let renderer = Arc::new(Renderer::new(&config, state.tokens.clone(), dkim));
        queue::worker::start(
            &state,
            self.jobs,
            upstream,
            renderer,
            shutdown.clone(),
            &tracker,
        );
        tracker.spawn(crate::smtp::serve(
            listeners.smtp,
            state.clone(),
            smtp_tls,
            shutdown.clone(),
            tracker.clone(),
        ));
        let http = tokio::spawn(crate::http::serve(
            listeners.http,
            http_tls,
            state.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(retention(state.clone(), shutdown.clone()));
        tracker.spawn(state.erasure.clone().run(shutdown.clone()));

        state.ready.store(true, Ordering::Relaxed);
        tracing::info!("quell ready");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

        shutdown.cancelled().await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        state.ready.store(false, Ordering::Relaxed);
        tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain deadline passed; stopping with work in flight (it stays queued)");
        }
        let http_result = http.await;
        state.store.flush().await?;
        tracing::info!("stopped");
        match http_result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AppError::Http(e)),
            Err(e) => Err(AppError::Http(std::io::Error::other(e))),
        }
    }
}

/// The DKIM signer for `[dkim]`, its key read from `key_file`.
pub fn load_dkim(config: &DkimConfig) -> Result<Dkim, AppError> {
    let error = |reason: String| AppError::Dkim {
        path: config.key_file.display().to_string(),
        reason,
    };
    let pem = std::fs::read(&config.key_file).map_err(|e| error(e.to_string()))?;
    Dkim::from_pem(&config.domain, &config.selector, &pem)
        .map_err(|e: DkimError| error(e.to_string()))
}

/// Removes message records older than `storage.message_retention`, hourly.
async fn retention(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = now_secs() - state.config.storage.message_retention.as_secs() as i64;
        match state.store.messages_purge_before(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired message records removed"),
            Err(e) => tracing::error!(error = %e, "message retention sweep failed"),
        }
    }
}
