//! GDPR/CCPA erasure (SPEC §6.5): requests become [`DeletionTask`]s in the store, run one
//! batch at a time in the background, and survive restarts.
//!
//! A task runs in three steps, each safe to repeat after a crash:
//! 1. `STARTED`: its distinct ids are resolved to addresses (an id that is an address is one;
//!    a profile maps the others), queued copies for them are dropped under the delivery claim,
//!    and [`Store::erase`] turns their suppression entries into tombstones and removes their
//!    allowlist entries, profiles and message records. The task then forgets its ids.
//! 2. [`Store::vacuum`] rewrites the store's files without anything removed so far (one vacuum
//!    for every task that is waiting).
//! 3. `SUCCESS` (or `FAILURE`, with the reason, and the ids forgotten all the same).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::address::normalize;
use crate::id::{new_queue_id, now_secs};
use crate::queue::Scheduler;
use crate::store::{Compliance, DeletionTask, Store, StoreError, TaskStatus};

/// Distinct ids per request (Mixpanel's limit).
pub const MAX_IDS: usize = 2000;

/// How long a task waits for a delivery attempt in progress to a person it erases.
const CLAIM_WAIT: Duration = Duration::from_secs(60);

/// Accepts deletion requests and runs them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Erasure {
    store: Store,
    scheduler: Scheduler,
    wake: Arc<Notify>,
}

/// Why a task failed (no addresses in it: it is stored and shown).
#[derive(Debug, thiserror::Error)]
enum TaskError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("a delivery to an erased recipient was still in progress after {0:?}")]
    InFlight(Duration),
    #[error("the store vacuum stopped: {0}")]
    Vacuum(String),
}

impl Erasure {
    pub fn new(store: Store, scheduler: Scheduler) -> Erasure {
        Erasure {
            store,
            scheduler,
            wake: Arc::default(),
        }
    }

    /// Records a task (durably) and wakes the runner.
    pub async fn submit(
        &self,
        compliance_type: Compliance,
        distinct_ids: Vec<String>,
    ) -> Result<DeletionTask, StoreError> {
        let now = now_secs();
        let task = DeletionTask {
            id: new_queue_id(),
            compliance_type,
            status: TaskStatus::Pending,
            requested: distinct_ids.len(),
            distinct_ids,
            erased: None,
            created_at: now,
            updated_at: now,
            error: None,
        };
        self.store.ensure_room()?;
        self.store.deletion_put(&task)?;
        self.store.flush().await?;
        self.wake.notify_one();
        Ok(task)
    }

    /// Runs waiting tasks (those left by an earlier run first) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.store.deletions_unfinished() {
                Ok(tasks) if !tasks.is_empty() => self.run_batch(tasks).await,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the deletion tasks"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut woken => {}
            }
        }
    }

    /// Erases every task of `tasks`, then vacuums once, then records the outcomes.
    async fn run_batch(&self, tasks: Vec<DeletionTask>) {
        let mut erased = Vec::new();
        for mut task in tasks {
            match self.erase(&mut task).await {
                Ok(()) => erased.push(task),
                Err(e) => self.finish(task, Err(e)).await,
            }
        }
        if erased.is_empty() {
            return;
        }
        let store = self.store.clone();
        let vacuum = tokio::task::spawn_blocking(move || store.vacuum()).await;
        let outcome = match vacuum {
            Ok(Ok(v)) => {
                tracing::info!(
                    tasks = erased.len(),
                    entries = v.copied,
                    changes_meanwhile = v.replayed,
                    writes_held_ms = v.writes_held.as_millis() as u64,
                    "erasure: store vacuumed"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        for task in erased {
            let outcome = outcome.clone().map_err(TaskError::Vacuum);
            self.finish(task, outcome).await;
        }
    }

    /// Step 1 for one task (a no-op for a task whose ids are already forgotten).
    async fn erase(&self, task: &mut DeletionTask) -> Result<(), TaskError> {
        task.status = TaskStatus::Started;
        task.updated_at = now_secs();
        self.store.deletion_put(task)?;
        if task.distinct_ids.is_empty() {
            return Ok(());
        }
        let (addresses, ids) = self.resolve(&task.distinct_ids)?;
        let queued = self.drop_queued(&addresses).await?;
        let mut erased = self.store.erase(&addresses, &ids)?;
        erased.queued = queued;
        tracing::info!(
            task = %task.id,
            suppressions = erased.suppressions,
            profiles = erased.profiles,
            messages = erased.messages,
            queued = erased.queued,
            "erasure: data removed"
        );
        task.erased = Some(erased);
        task.distinct_ids = Vec::new();
        task.updated_at = now_secs();
        self.store.deletion_put(task)?;
        self.store.flush().await?;
        Ok(())
    }

    /// The addresses and the distinct ids the request names.
    fn resolve(
        &self,
        distinct_ids: &[String],
    ) -> Result<(HashSet<String>, HashSet<String>), StoreError> {
        let mut addresses = HashSet::new();
        let mut ids = HashSet::new();
        for id in distinct_ids {
            if let Some(address) = self.store.profile_get(id)? {
                addresses.insert(address);
            }
            if id.contains('@') {
                if let Ok(address) = normalize(id) {
                    addresses.insert(address);
                }
            }
            ids.insert(id.clone());
        }
        Ok((addresses, ids))
    }

    /// Takes `addresses` off every queued message, each under its delivery claim.
    async fn drop_queued(&self, addresses: &HashSet<String>) -> Result<usize, TaskError> {
        let mut dropped = 0;
        for id in self.store.queued_for(addresses)? {
            if !self.scheduler.claim_within(&id, CLAIM_WAIT).await {
                return Err(TaskError::InFlight(CLAIM_WAIT));
            }
            let result = self.store.queue_drop_recipients(&id, addresses);
            self.scheduler.release(&id);
            dropped += result?;
        }
        Ok(dropped)
    }

    /// Step 3: the final status.
    async fn finish(&self, mut task: DeletionTask, outcome: Result<(), TaskError>) {
        task.distinct_ids = Vec::new();
        task.updated_at = now_secs();
        match outcome {
            Ok(()) => task.status = TaskStatus::Success,
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "erasure failed");
                task.status = TaskStatus::Failure;
                task.error = Some(e.to_string());
            }
        }
        let written = match self.store.deletion_put(&task) {
            Ok(()) => self.store.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(task = %task.id, error = %e, "cannot record the erasure's outcome");
        }
    }
}
