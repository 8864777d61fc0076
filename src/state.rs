//! [`AppState`]: the one cheap-to-clone handle on everything shared, built by [`crate::app`]
//! and passed explicitly to the SMTP sessions, the delivery workers and the HTTP handlers.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::queue::Scheduler;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    /// Hands queue ids to the delivery workers.
    pub scheduler: Scheduler,
    /// Set once every listener is up (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Every task that must finish before quell exits: sessions, deliveries, background
    /// imports. The drain on shutdown waits for it.
    pub tasks: TaskTracker,
}

impl AppState {
    /// Builds the state around an open store.
    pub fn new(config: Config, store: Store, scheduler: Scheduler) -> AppState {
        let policy = Policy::new(store.clone(), config.suppression.clone());
        AppState {
            config: Arc::new(config),
            store,
            policy,
            metrics: Arc::new(Metrics::default()),
            scheduler,
            ready: Arc::new(AtomicBool::new(false)),
            tasks: TaskTracker::new(),
        }
    }
}
