//! Every sled call in quell lives in this module.
//!
//! # Trees, keys and values
//!
//! | tree | key | value (JSON) |
//! |---|---|---|
//! | `suppressions` | `<scope> 0x00 <address> 0x00 <list>` (scope `global`, `domain:<d>`, `sender:<a>`; list `u`/`b`/`c`) | [`Suppression`] |
//! | `allowlist` | `<address>` | [`AllowEntry`] |
//! | `queue` | `<queue id>` | [`QueuedMessage`]: envelope and recipients still to deliver |
//! | `spool` | `<queue id>` | the message bytes as received (CRLF, dot-unstuffed) |
//! | `messages` | `<md_id>` = `<queue id>.<n>` | [`MessageRecord`] per recipient copy |
//! | `profiles` | `<distinct id>` | the normalised address (Mixpanel profiles) |
//! | `profiles_by_address` | `<address> 0x00 <distinct id>` | empty: the reverse index |
//! | `meta` | name | raw bytes (generated secrets and the like) |
//!
//! Addresses in keys are normalised (trimmed, lowercased). Queue ids start with 12 hex digits of
//! milliseconds, so `queue`, `spool` and `messages` iterate oldest first.
//!
//! # Durability
//!
//! Writes become durable at [`Store::flush`]: sled writes its log with `sync_file_range`, so a
//! flushed write survives a crash of the process (`kill -9`) but, unlike `fsync`, not
//! necessarily a power loss. sled also flushes in the background every 500 ms.

mod admin;
mod allowlist;
mod changes;
mod index;
mod messages;
mod profiles;
mod queue;
mod suppressions;

use std::path::Path;

pub use allowlist::AllowEntry;
pub use changes::Changes;
pub use messages::{MessageRecord, MessageWatch, Status};
pub use queue::{QueuedMessage, QueuedRecipient};
pub use suppressions::{List, Page, Reason, Scope, Suppression, SuppressionKey};

/// A store failure. Every one is an I/O or corruption problem, never bad input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt value in tree {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
}

/// The sled database and its trees; cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    suppressions: sled::Tree,
    allowlist: sled::Tree,
    queue: sled::Tree,
    spool: sled::Tree,
    messages: sled::Tree,
    profiles: sled::Tree,
    profiles_by_address: sled::Tree,
    meta: sled::Tree,
    /// Addresses with suppression entries, in memory (see [`index`]).
    index: std::sync::Arc<index::AddressIndex>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path`. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        let suppressions = db.open_tree("suppressions")?;
        let index = std::sync::Arc::new(index::AddressIndex::build(&suppressions)?);
        Ok(Store {
            suppressions,
            index,
            allowlist: db.open_tree("allowlist")?,
            queue: db.open_tree("queue")?,
            spool: db.open_tree("spool")?,
            messages: db.open_tree("messages")?,
            profiles: db.open_tree("profiles")?,
            profiles_by_address: db.open_tree("profiles_by_address")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Makes every write so far durable (see the module docs for how far that goes).
    ///
    /// Not `flush_async`: sled 0.34 runs that on its own pool of 7 threads, and concurrent
    /// flushes there wait for a log write that sled queues on the same pool behind them, so
    /// with 7 flushes in flight nothing completes (sled issue #1308, fixed only on sled's main
    /// branch). A blocking flush on tokio's blocking pool leaves sled's pool free for the write;
    /// concurrent callers still share one log write (group commit).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| {
                StoreError::Sled(sled::Error::ReportableBug(format!("flush task: {e}")))
            })??;
        Ok(())
    }

    /// A value from the `meta` tree.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Stores a value in the `meta` tree.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name, value)?;
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store values serialise")
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}
