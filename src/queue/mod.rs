//! Delivery: the [`Scheduler`] hands queue ids to `upstream.connections` workers, each owning
//! one upstream SMTP session; 4xx answers and connection failures are retried with
//! exponential backoff until `queue.max_age`.
//!
//! | file | concept |
//! |---|---|
//! | [`render`] | the copy each recipient receives: links, footer, List-Unsubscribe, DKIM |
//! | [`retry`] | the backoff schedule and delayed re-scheduling |
//! | [`upstream`] | the lettre connection (TCP_NODELAY, TLS, auth, timeouts) |
//! | [`worker`] | one delivery attempt of a queued transaction |

pub mod render;
pub mod retry;
pub mod upstream;
pub mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

/// Hands queue ids to the delivery workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<String>,
    /// Ids a worker is delivering now: a second schedule of the same id waits its turn.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Signalled whenever a claim is released.
    released: Arc<Notify>,
}

/// The workers' side of the [`Scheduler`].
#[derive(Debug)]
pub struct Jobs {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Scheduler {
    /// A scheduler and the job source its workers read.
    pub fn channel() -> (Scheduler, Arc<Jobs>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Scheduler {
                tx,
                in_flight: Arc::default(),
                released: Arc::default(),
            },
            Arc::new(Jobs {
                rx: tokio::sync::Mutex::new(rx),
            }),
        )
    }

    /// Deliver `id` as soon as a worker is free.
    pub fn now(&self, id: String) {
        // Fails only when the workers are gone (shutdown): the entry stays queued on disk.
        let _ = self.tx.send(id);
    }

    /// Deliver `id` after `delay`.
    pub fn after(&self, id: String, delay: Duration) {
        retry::schedule_after(self.clone(), id, delay);
    }

    /// Claims `id` for one worker; false if another worker has it.
    pub(crate) fn claim(&self, id: &str) -> bool {
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .insert(id.to_string())
    }

    /// Claims `id`, waiting up to `wait` for another holder to release it; false if it did not.
    pub(crate) async fn claim_within(&self, id: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before trying, so a release in between is not missed.
            released.as_mut().enable();
            if self.claim(id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    pub(crate) fn release(&self, id: &str) {
        self.in_flight.lock().expect("in-flight lock").remove(id);
        self.released.notify_waiters();
    }
}

impl Jobs {
    /// The next id to deliver; `None` once every scheduler is dropped.
    pub async fn next(&self) -> Option<String> {
        self.rx.lock().await.recv().await
    }
}
