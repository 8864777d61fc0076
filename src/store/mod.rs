//! Every sled call in quell lives in this module.
//!
//! # Trees, keys and values
//!
//! | tree | key | value (JSON) |
//! |---|---|---|
//! | `suppressions` | `<scope> 0x00 <address> 0x00 <list>` (scope `global`, `domain:<d>`, `sender:<a>`; list `u`/`b`/`c`) | [`Suppression`] |
//! | `allowlist` | `<address>` | [`AllowEntry`] |
//! | `queue` | `<queue id>` | [`QueuedMessage`]: envelope and recipients still to deliver |
//! | `spool` | `<queue id>` | empty: message bytes of stores written before the spool became files, moved to `spool/` at start |
//! | `messages` | `<md_id>` = `<queue id>.<n>` | [`MessageRecord`] per recipient copy |
//! | `profiles` | `<distinct id>` | the normalised address (Mixpanel profiles) |
//! | `profiles_by_address` | `<address> 0x00 <distinct id>` | empty: the reverse index |
//! | `deletions` | `<task id>` | [`DeletionTask`]: a GDPR/CCPA erasure and how far it got |
//! | `imports` | `<import id>` | an accepted CSV import not yet applied ([`ImportJob`] + the CSV) |
//! | `meta` | name | raw bytes (generated secrets and the like) |
//!
//! A suppression entry of an erased address is a *tombstone*: the same key and value, with the
//! address replaced by its keyed hash `#<32 hex>` (see [`tombstones`]).
//!
//! Addresses in keys are normalised (trimmed, lowercased). Queue ids start with 12 hex digits of
//! milliseconds, so `queue`, `spool` and `messages` iterate oldest first.
//!
//! # Durability
//!
//! Writes become durable at [`Store::flush`]: sled writes its log (with `sync_file_range`),
//! then the log and any new blob files are `fdatasync`ed and the spool directory's new entries
//! synced, so a flushed write survives a crash of the process, of the kernel and a power loss.
//! Concurrent callers share one flush (group commit). Message bytes are files of their own
//! ([`spool`]), each `fdatasync`ed before it is renamed into place.
//!
//! # Generations
//!
//! sled keeps removed values in its log until it happens to rewrite that part of the file, so
//! erasing data for real means copying the live data into a fresh database and deleting the old
//! one: a *vacuum* ([`Store::vacuum`], see [`generation`]). Every method therefore reads through
//! [`Store::read`] (the current generation) and writes through [`Store::write`] (which a vacuum
//! holds back while it copies).

mod admin;
mod allowlist;
mod changes;
mod deletions;
mod entry;
mod erasure;
mod generation;
mod imports;
mod index;
mod keys;
mod lock;
mod messages;
mod profiles;
mod queue;
mod recovery;
mod spool;
mod suppressions;
mod tombstones;
mod verdict;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock, RwLockReadGuard, TryLockError};

use arc_swap::{ArcSwap, Guard};

pub use allowlist::AllowEntry;
pub use changes::{Changes, Current, Update};
pub use deletions::{Compliance, DeletionTask, TaskStatus};
pub use entry::{List, Reason, Scope, Suppression, SuppressionKey, UnknownName};
pub use erasure::Erased;
pub use generation::Vacuumed;
pub use imports::ImportJob;
pub use messages::{MessageRecord, Status};
pub use queue::{MessageBytes, QueuedMessage, QueuedRecipient, SpoolDraft};
pub use suppressions::Page;
pub use tombstones::is_tombstone;
pub use verdict::{Query, Verdict};

/// sled's page cache for [`Store::open`]; quell itself opens with `storage.cache_size`
/// ([`Store::open_with`]). The store imports nothing of ours, so this is the same number as
/// the config's default (`config::DEFAULT_CACHE_SIZE`, where the choice is explained), and
/// `app.rs` fails to compile if they differ. RCPT checks do not read sled (see [`index`]),
/// so the cache mostly holds the queue and the spool.
pub const DEFAULT_CACHE_SIZE: u64 = 16 * 1024 * 1024;

/// Suppression entries read into the index per hold of the writer lock at start.
const INDEX_CHUNK: usize = 10_000;
/// Entries read before [`Store::open`] returns; a bigger store goes on in the background.
const INDEX_AT_OPEN: usize = 50_000;

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
    #[error("store directory: {0}")]
    Io(#[from] std::io::Error),
    /// The file system holding the store has less free space than `storage.min_free`: new
    /// mail and changes are refused (a temporary condition) so that the reserve lets the queue
    /// drain and records be updated.
    #[error("{free} bytes free on the store's file system, less than storage.min_free ({floor})")]
    Full { free: u64, floor: u64 },
    /// Another process has the store open (see [`lock`]).
    #[error("{}", lock::holder(.pid, .path))]
    InUse { pid: Option<u32>, path: PathBuf },
    /// A write failed (the disk filled up past the floor, or another I/O error): sled takes no
    /// write after its first failure, so the store refuses until it has reopened itself
    /// (see [`recovery`]). Temporary.
    #[error("the store is recovering from a failed write ({cause})")]
    Recovering { full: bool, cause: String },
}

impl StoreError {
    /// Whether the store refused for want of space (temporary: it passes when space returns).
    pub fn is_full(&self) -> bool {
        // sled hands out copies of its first error that keep the kind, not the errno.
        let enospc = |e: &std::io::Error| {
            e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull
        };
        match self {
            StoreError::Full { .. } => true,
            StoreError::Recovering { full, .. } => *full,
            StoreError::Io(e) => enospc(e),
            StoreError::Sled(sled::Error::Io(e)) => enospc(e),
            _ => false,
        }
    }

    /// Whether the store refuses for now, whatever the cause, and takes the same request again
    /// by itself later: below the floor or recovering from a failed write.
    pub fn is_temporary(&self) -> bool {
        self.is_full() || matches!(self, StoreError::Recovering { .. })
    }
}

/// Free bytes for unprivileged writers on the file system holding `path` (or, while `path`
/// does not exist yet, its nearest existing parent).
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    let mut at = path;
    loop {
        match rustix::fs::statvfs(at) {
            Ok(s) => return Ok(s.f_bavail.saturating_mul(s.f_frsize)),
            Err(e) if e == rustix::io::Errno::NOENT => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => {
                    return rustix::fs::statvfs(".")
                        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
                        .map_err(Into::into)
                }
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates the store directory `path` and any missing parent, each made durable in its own
/// parent: a new directory's entry survives a power cut only once the directory holding it is
/// synced, and without that a cut soon after the first start loses the whole store, every
/// acknowledged message and change with it (found by the power-cut test, `tests/it/power_cut.rs`).
/// What is inside `path` is synced by [`spool::Spool::open`] and [`Store::flush`].
fn create_dir_durably(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_durably(parent)?;
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    }
    File::open(parent)?.sync_all()
}

/// The sled database of one generation and its trees (see [`generation`]).
struct Trees {
    db: sled::Db,
    /// The generation's directory.
    dir: PathBuf,
    /// sled's log file, opened for syncing it (see [`Trees::sync`]).
    log: File,
    /// The highest blob file name (sled names them by log position) already synced.
    blobs_synced: AtomicU64,
    suppressions: sled::Tree,
    allowlist: sled::Tree,
    queue: sled::Tree,
    spool: sled::Tree,
    messages: sled::Tree,
    profiles: sled::Tree,
    profiles_by_address: sled::Tree,
    deletions: sled::Tree,
    imports: sled::Tree,
    meta: sled::Tree,
}

/// Every tree, by name: what a vacuum copies.
const TREE_NAMES: [&str; 10] = [
    "suppressions",
    "allowlist",
    "queue",
    "spool",
    "messages",
    "profiles",
    "profiles_by_address",
    "deletions",
    "imports",
    "meta",
];

impl Trees {
    fn open(db: sled::Db, dir: &Path) -> Result<Trees, StoreError> {
        Ok(Trees {
            log: File::open(dir.join("db"))?,
            dir: dir.to_path_buf(),
            blobs_synced: AtomicU64::new(0),
            suppressions: db.open_tree("suppressions")?,
            allowlist: db.open_tree("allowlist")?,
            queue: db.open_tree("queue")?,
            spool: db.open_tree("spool")?,
            messages: db.open_tree("messages")?,
            profiles: db.open_tree("profiles")?,
            profiles_by_address: db.open_tree("profiles_by_address")?,
            deletions: db.open_tree("deletions")?,
            imports: db.open_tree("imports")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// Makes every write so far durable for real: sled's `flush` writes its buffers with
    /// `sync_file_range`, which neither flushes the disk's write cache nor syncs metadata, so
    /// the log is then `fdatasync`ed, and so is every blob file sled wrote since the last call
    /// (values over 128 KiB go to a file of their own, written without a sync) with their
    /// directory. Blocking.
    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data()?;
        let blobs = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let synced = self.blobs_synced.load(AtomicOrdering::SeqCst);
        let mut highest = synced;
        for entry in entries {
            let entry = entry?;
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n > synced {
                File::open(entry.path())?.sync_data()?;
                highest = highest.max(n);
            }
        }
        if highest > synced {
            File::open(&blobs)?.sync_all()?;
            self.blobs_synced.fetch_max(highest, AtomicOrdering::SeqCst);
        }
        Ok(())
    }
}

/// What every clone of a [`Store`] shares.
struct Shared {
    /// The current generation; replaced whole by a vacuum.
    trees: ArcSwap<Trees>,
    /// This process's claim on the store directory, held until the last clone is dropped.
    _lock: lock::StoreLock,
    /// Writers hold it shared, a vacuum exclusively: no write is lost to the generation a
    /// vacuum is copying from. Readers never take it, so they go on during a vacuum.
    gate: RwLock<()>,
    /// The store directory and its generation layout.
    layout: generation::Layout,
    /// Message bytes, one file each (see [`spool`]).
    spool: spool::Spool,
    /// What the suppression entries say at RCPT time, in memory (see [`index`]).
    index: index::SuppressionIndex,
    /// The key of the tombstone hash (see [`tombstones`]).
    tombstones: tombstones::TombstoneKey,
    /// Serialises read-modify-writes of message records.
    message_updates: std::sync::Mutex<()>,
    /// Every deletion task written, to whoever listens ([`Store::deletion_changes`]).
    deletion_changes: tokio::sync::broadcast::Sender<DeletionTask>,
    /// Every message record written, to whoever listens ([`Store::message_changes`]).
    message_changes: tokio::sync::broadcast::Sender<MessageRecord>,
    /// `storage.min_free`: below it, [`Store::ensure_room`] refuses.
    min_free: AtomicU64,
    /// Set while [`Shared::failure`] holds a failure (read without the lock).
    failed: AtomicBool,
    /// The failed write the store is recovering from (see [`recovery`]).
    failure: std::sync::Mutex<Option<recovery::Failure>>,
    /// Held by whatever makes a new generation: a vacuum or a recovery, one at a time.
    generations: std::sync::Mutex<()>,
    /// Queued transactions: counted as they come and go, so `/metrics` never scans the tree.
    queued: AtomicU64,
    /// Flush requests taken (a ticket each) ...
    flush_tickets: AtomicU64,
    /// ... and the highest ticket a finished flush covers; one flush runs at a time.
    flushed: tokio::sync::Mutex<u64>,
}

/// The sled database and its trees; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The trees, held for writing: the vacuum gate (shared) and the current generation.
struct WriteTrees<'a> {
    _gate: RwLockReadGuard<'a, ()>,
    trees: Guard<Arc<Trees>>,
}

impl std::ops::Deref for WriteTrees<'_> {
    type Target = Trees;
    fn deref(&self) -> &Trees {
        &self.trees
    }
}

impl Store {
    /// Opens (or creates) the database in the directory `path` with the default cache. Fails
    /// at once with [`StoreError::InUse`] if another process holds it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, DEFAULT_CACHE_SIZE)
    }

    /// Like [`Store::open`], with `cache_size` bytes of sled page cache.
    pub fn open_with(path: &Path, cache_size: u64) -> Result<Store, StoreError> {
        let store = Store::open_unindexed(path, cache_size)?;
        store.build_index(INDEX_AT_OPEN)?;
        Ok(store)
    }

    /// The store with its index holding the allowlist only: entries are read in by
    /// [`Store::build_index`] (or, in tests, chunk by chunk).
    fn open_unindexed(path: &Path, cache_size: u64) -> Result<Store, StoreError> {
        create_dir_durably(path)?;
        let lock = lock::StoreLock::acquire(path)?;
        let layout = generation::Layout::new(path, cache_size);
        let (db, dir) = layout.open_current()?;
        let trees = Trees::open(db, &dir)?;
        let spool = spool::Spool::open(path)?;
        let index = index::SuppressionIndex::open(&trees.allowlist)?;
        let tombstones = tombstones::TombstoneKey::load_or_create(&trees.meta)?;
        let queued = trees.queue.len() as u64;
        let store = Store {
            shared: Arc::new(Shared {
                trees: ArcSwap::from_pointee(trees),
                _lock: lock,
                gate: RwLock::new(()),
                layout,
                spool,
                index,
                tombstones,
                min_free: AtomicU64::new(0),
                failed: AtomicBool::new(false),
                failure: std::sync::Mutex::new(None),
                generations: std::sync::Mutex::new(()),
                message_updates: std::sync::Mutex::new(()),
                message_changes: tokio::sync::broadcast::channel(messages::CHANGES_BUFFER).0,
                deletion_changes: tokio::sync::broadcast::channel(64).0,
                queued: AtomicU64::new(queued),
                flush_tickets: AtomicU64::new(0),
                flushed: tokio::sync::Mutex::new(0),
            }),
        };
        store.spool_migrate()?;
        store.spool_collect()?;
        store.start_watch()?;
        Ok(store)
    }

    /// Reads the suppression entries into the index: up to `at_open` before the store
    /// is handed out, the rest on a thread of its own, so that a big store answers its first
    /// RCPT at once (decisions read the tree until the index is complete, see
    /// [`Store::verdict`]).
    fn build_index(&self, at_open: usize) -> Result<(), StoreError> {
        let mut after = None;
        for _ in 0..at_open / INDEX_CHUNK {
            let tree = self.read().suppressions.clone();
            match self
                .index()
                .build_chunk(&tree, after.as_deref(), INDEX_CHUNK)?
            {
                Some(k) => after = Some(k),
                None => return Ok(()),
            }
        }
        let store = self.clone();
        std::thread::Builder::new()
            .name("quell-index".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                loop {
                    let tree = store.read().suppressions.clone();
                    match store.index().build_chunk(&tree, after.as_deref(), INDEX_CHUNK) {
                        Ok(Some(k)) => after = Some(k),
                        Ok(None) => {
                            let ms = started.elapsed().as_millis() as u64;
                            tracing::info!(ms, "suppression index complete");
                            return;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "suppression index: cannot read the store; RCPT decisions go on reading it");
                            return;
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// The current generation, for reading.
    fn read(&self) -> Guard<Arc<Trees>> {
        self.shared.trees.load()
    }

    /// The current generation, for writing (waits while a vacuum runs).
    ///
    /// Writes are called from async code; a write that has to wait for a vacuum tells tokio
    /// first (`block_in_place`), so the worker's other tasks — RCPT checks, reads — move to
    /// another thread instead of waiting with it.
    fn write(&self) -> WriteTrees<'_> {
        let gate = &self.shared.gate;
        let gate = match gate.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let wait = || gate.read().unwrap_or_else(|e| e.into_inner());
                match tokio::runtime::Handle::try_current() {
                    Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(wait)
                    }
                    _ => wait(),
                }
            }
        };
        WriteTrees {
            _gate: gate,
            trees: self.shared.trees.load(),
        }
    }

    fn index(&self) -> &index::SuppressionIndex {
        &self.shared.index
    }

    /// Makes every write so far durable: synced with `fdatasync`/`fsync`, data and the
    /// metadata that finds it, so it survives a crash of the process, of the kernel and a
    /// power loss (see [`Trees::sync`] and [`spool`]).
    ///
    /// Not `flush_async`: sled 0.34 runs that on its own pool of 7 threads, and concurrent
    /// flushes there wait for a log write that sled queues on the same pool behind them, so
    /// with 7 flushes in flight nothing completes (sled issue #1308, fixed only on sled's main
    /// branch). A blocking flush on tokio's blocking pool leaves sled's pool free for the write.
    ///
    /// Group commit: one flush runs at a time, and every caller that arrives meanwhile is
    /// served by the next one, so concurrent sessions share a log write instead of each sealing
    /// a buffer of its own (sled allocates a fresh 512 KiB buffer for every flush).
    ///
    /// While the store is recovering from a failed write it answers
    /// [`StoreError::Recovering`] at once; a failure of sled's flush starts that recovery.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        // Taken after this caller's writes: a flush that starts after it covers them.
        let ticket = shared.flush_tickets.fetch_add(1, AtomicOrdering::SeqCst) + 1;
        let mut flushed = shared.flushed.lock().await;
        if *flushed >= ticket {
            return Ok(());
        }
        self.check_failed()?;
        let covers = shared.flush_tickets.load(AtomicOrdering::SeqCst);
        let trees = self.shared.trees.load_full();
        let this = self.clone();
        let synced = tokio::task::spawn_blocking(move || {
            trees.sync()?;
            this.shared.spool.sync()?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("flush task: {e}"))))?;
        if let Err(e) = synced {
            if matches!(e, StoreError::Sled(_)) {
                self.mark_failed(&e);
            }
            return Err(e);
        }
        *flushed = covers;
        Ok(())
    }

    /// Whether every stored suppression entry is in the in-memory index (see
    /// [`Store::build_index`]).
    pub fn index_complete(&self) -> bool {
        self.index().is_complete()
    }

    /// Sets the free-space floor below which [`Store::ensure_room`] refuses.
    pub fn set_min_free(&self, bytes: u64) {
        self.shared.min_free.store(bytes, AtomicOrdering::Relaxed);
    }

    /// `Ok` while the store's file system has at least `storage.min_free` bytes free;
    /// [`StoreError::Full`] below it. Asked before accepting mail or a change, so that the
    /// reserve below the floor is left to delivery (records, the queue shrinking). One
    /// `statvfs`.
    ///
    /// While the store is recovering from a failed write, [`StoreError::Recovering`].
    pub fn ensure_room(&self) -> Result<(), StoreError> {
        self.check_failed()?;
        let floor = self.shared.min_free.load(AtomicOrdering::Relaxed);
        if floor == 0 {
            return Ok(());
        }
        let free = free_space(self.shared.layout.root())?;
        if free < floor {
            return Err(StoreError::Full { free, floor });
        }
        Ok(())
    }

    /// A value from the `meta` tree.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Stores a value in the `meta` tree.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write().meta.insert(name, value)?;
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
