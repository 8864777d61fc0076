//! The one way suppression entries and the allowlist change (SPEC §3). The Mailgun, Mandrill,
//! Mixpanel and admin APIs, the landing page and bounces only parse and render; every write
//! they make goes through [`Suppressions`], which
//!
//! - applies it atomically, each key decided by its [`Rule`] against what the key holds at
//!   that moment ([`rules`], [`crate::store::Store::update`]);
//! - refuses while the store's disk is below `storage.min_free` ([`StoreError::Full`]), so
//!   that the reserve is left to delivery (whose hard bounces still go in);
//! - runs the disk work on tokio's blocking pool, never on an async worker;
//! - syncs it before returning ([`crate::store::Store::flush`], shared by concurrent callers),
//!   so an answer given after it survives a crash of quell;
//! - announces each change on a broadcast channel ([`Change`]), the seam where webhooks and
//!   the cluster replica will listen.
//!
//! Readers (RCPT checks) are never held up by these writes: see [`crate::store`]'s index.

pub mod rules;

use tokio::sync::broadcast;

use crate::id::now_secs;
use crate::store::{AllowEntry, List, Scope, Store, StoreError, Suppression, SuppressionKey};
pub use rules::{Op, Outcome, Rule, When};

/// How many changes a slow listener may fall behind before it misses some (it is told).
const CHANGES_BUFFER: usize = 4096;

/// One change to the suppression list or the allowlist, announced after it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Suppressed {
        key: SuppressionKey,
        entry: Suppression,
    },
    Unsuppressed {
        key: SuppressionKey,
    },
    /// Every entry of `list` in `scope` was removed.
    Cleared {
        scope: Scope,
        list: List,
    },
    Allowed {
        address: String,
    },
    Disallowed {
        address: String,
    },
}

/// The suppression write service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Suppressions {
    store: Store,
    changes: broadcast::Sender<Change>,
}

/// A failure to run a write: the store failed, or the blocking task did not finish.
fn joined<T>(r: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Io(std::io::Error::other(format!("store task: {e}"))))?
}

impl Suppressions {
    pub fn new(store: Store) -> Suppressions {
        Suppressions {
            store,
            changes: broadcast::channel(CHANGES_BUFFER).0,
        }
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Applies `ops` atomically and syncs them; one outcome per op, in order.
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StoreError> {
        self.apply_with_profiles(ops, Vec::new()).await
    }

    /// [`Suppressions::apply`] together with Mixpanel profile changes (`Some(address)` maps a
    /// distinct id, `None` forgets it), all in one atomic write.
    pub async fn apply_with_profiles(
        &self,
        ops: Vec<Op>,
        profiles: Vec<(String, Option<String>)>,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.store.ensure_room()?;
        self.apply_in_reserve(ops, profiles).await
    }

    /// [`Suppressions::apply_with_profiles`] also below the free-space floor: for what delivery
    /// records (a hard bounce), which the reserve is kept for.
    pub async fn apply_in_reserve(
        &self,
        ops: Vec<Op>,
        profiles: Vec<(String, Option<String>)>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let this = self.clone();
        let outcomes = joined(
            tokio::task::spawn_blocking(move || this.write(&ops, &profiles, now_secs())).await,
        )?;
        self.store.flush().await?;
        Ok(outcomes)
    }

    /// For callers already on a blocking thread (imports): [`Suppressions::apply_with_profiles`]
    /// without the sync, which the caller does with [`Suppressions::sync`] (or
    /// [`Suppressions::sync_blocking`]) before it reports success. `now` (Unix seconds) decides
    /// which stored entries have expired.
    pub fn apply_blocking(
        &self,
        ops: &[Op],
        profiles: &[(String, Option<String>)],
        now: i64,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.store.ensure_room()?;
        self.write(ops, profiles, now)
    }

    /// The write itself, without the free-space check.
    fn write(
        &self,
        ops: &[Op],
        profiles: &[(String, Option<String>)],
        now: i64,
    ) -> Result<Vec<Outcome>, StoreError> {
        let keys: Vec<SuppressionKey> = ops.iter().map(|op| op.key().clone()).collect();
        let mut outcomes = Vec::with_capacity(ops.len());
        self.store.update(&keys, profiles, |i, _, current| {
            let (update, outcome) = rules::decide(&ops[i], current, now)?;
            outcomes.push(outcome);
            Ok(update)
        })?;
        if self.changes.receiver_count() > 0 {
            for (key, outcome) in keys.into_iter().zip(&outcomes) {
                let change = match outcome {
                    Outcome::Written(entry) => Change::Suppressed {
                        key,
                        entry: entry.clone(),
                    },
                    Outcome::Removed => Change::Unsuppressed { key },
                    _ => continue,
                };
                let _ = self.changes.send(change);
            }
        }
        Ok(outcomes)
    }

    /// Makes every write so far durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.store.flush().await
    }

    /// [`Suppressions::sync`] from a blocking thread of the runtime.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        tokio::runtime::Handle::current().block_on(self.store.flush())
    }

    /// Removes every entry of `list` in `scope` and syncs; how many. The scan runs on the
    /// blocking pool; RCPT checks go on meanwhile.
    pub async fn clear(&self, scope: Scope, list: List) -> Result<usize, StoreError> {
        self.store.ensure_room()?;
        let store = self.store.clone();
        let cleared = scope.clone();
        let removed = joined(
            tokio::task::spawn_blocking(move || store.suppression_clear(&cleared, list)).await,
        )?;
        self.store.flush().await?;
        let _ = self.changes.send(Change::Cleared { scope, list });
        Ok(removed)
    }

    /// Allowlists `address` (normalised) and removes its `global` entries on every list, as
    /// Mandrill does, in one atomic write, synced; how many entries were removed. Adding an
    /// address again keeps its `created_at` and replaces its detail when a comment is given.
    pub async fn allow(
        &self,
        address: String,
        comment: Option<String>,
    ) -> Result<usize, StoreError> {
        self.store.ensure_room()?;
        let store = self.store.clone();
        let allowed = address.clone();
        let removed = joined(
            tokio::task::spawn_blocking(move || {
                let keys: Vec<SuppressionKey> =
                    [List::Unsubscribes, List::Bounces, List::Complaints]
                        .into_iter()
                        .map(|list| SuppressionKey::new(Scope::Global, allowed.clone(), list))
                        .collect();
                let entry = |existing: Option<AllowEntry>| match existing {
                    Some(e) => AllowEntry {
                        detail: comment.clone().unwrap_or(e.detail),
                        created_at: e.created_at,
                    },
                    None => AllowEntry {
                        detail: comment.clone().unwrap_or_default(),
                        created_at: now_secs(),
                    },
                };
                store.allow(&allowed, entry, &keys)
            })
            .await,
        )?;
        self.store.flush().await?;
        let _ = self.changes.send(Change::Allowed { address });
        Ok(removed)
    }

    /// Takes `address` off the allowlist and syncs; whether it was there.
    pub async fn disallow(&self, address: String) -> Result<bool, StoreError> {
        self.store.ensure_room()?;
        let store = self.store.clone();
        let removed = address.clone();
        let was =
            joined(tokio::task::spawn_blocking(move || store.allowlist_remove(&removed)).await)?;
        if was {
            self.store.flush().await?;
            let _ = self.changes.send(Change::Disallowed { address });
        }
        Ok(was)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Reason;

    fn service() -> (tempfile::TempDir, Store, Suppressions) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, store.clone(), Suppressions::new(store))
    }

    fn tagged(tags: &[&str]) -> Suppression {
        let mut e = Suppression::new(Reason::Unsub, 1);
        e.tags = tags.iter().map(|t| t.to_string()).collect();
        e
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tag_writers_to_one_address_lose_nothing() {
        let (_d, store, s) = service();
        let key = SuppressionKey::new(Scope::Domain("d.io".into()), "a@x.io", List::Unsubscribes);
        let writers = (0..3).map(|w| {
            let s = s.clone();
            let key = key.clone();
            tokio::spawn(async move {
                for n in 0..40 {
                    let op = Op::Add {
                        key: key.clone(),
                        entry: tagged(&[&format!("w{w}-{n}")]),
                        rule: Rule::AddTags,
                        unless_allowlisted: false,
                    };
                    s.apply(vec![op]).await.unwrap();
                }
            })
        });
        for w in writers.collect::<Vec<_>>() {
            w.await.unwrap();
        }
        let stored = store.suppression_get(&key).unwrap().unwrap();
        assert_eq!(stored.tags.len(), 120, "{:?}", stored.tags);
    }

    #[tokio::test]
    async fn changes_are_announced_and_allowlisted_addresses_refused() {
        let (_d, _store, s) = service();
        let mut changes = s.subscribe();
        let key = SuppressionKey::new(Scope::Global, "a@x.io", List::Unsubscribes);
        let add = || Op::Add {
            key: key.clone(),
            entry: Suppression::new(Reason::Custom, 1),
            rule: Rule::Replace,
            unless_allowlisted: true,
        };
        let out = s.apply(vec![add()]).await.unwrap();
        assert!(matches!(out[0], Outcome::Written(_)));
        assert!(matches!(
            changes.recv().await.unwrap(),
            Change::Suppressed { .. }
        ));
        assert_eq!(s.allow("a@x.io".into(), None).await.unwrap(), 1);
        assert_eq!(
            changes.recv().await.unwrap(),
            Change::Allowed {
                address: "a@x.io".into()
            }
        );
        assert_eq!(s.apply(vec![add()]).await.unwrap(), [Outcome::Allowlisted]);
        assert!(s.disallow("a@x.io".into()).await.unwrap());
        assert!(!s.disallow("a@x.io".into()).await.unwrap());
    }
}
