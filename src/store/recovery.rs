//! Recovery from a failed write: a full disk (`ENOSPC` past `storage.min_free`) or another I/O
//! error inside sled.
//!
//! sled 0.34 records the first error of a log write as its *global error* and from then on
//! refuses every write and every flush of that database until it is opened again, so without
//! help one full disk made quell answer `451`/`500` to everything until a restart, even after
//! space was freed. Worse, the thread that hit the error does not wake the threads waiting in
//! `flush` (sled's `make_stable_inner` waits on a condition variable that a failed background
//! write never notifies), so a flush could hang for ever and with it SIGTERM's drain.
//!
//! What this module does about it, on a thread of its own (`quell-store-watch`):
//!
//! - **Detect.** Every [`WATCH_EVERY`] it asks sled to flush (on a short-lived thread). A
//!   database with a global error always has an unwritten log position (the buffer that failed
//!   is never made stable), so the flush returns the error at once; a healthy one has nothing
//!   or little to write. The same call wakes any flush stuck on the condition variable: sled
//!   checks its global error and notifies every waiter before it returns. [`Store::flush`]
//!   reports its own failures here too.
//! - **Refuse while failed.** [`Store::ensure_room`] and [`Store::flush`] answer
//!   [`StoreError::Recovering`] (`452`/`451` at SMTP, `507`/`503` on the API, `/readyz` 503)
//!   instead of touching the broken database.
//! - **Recover in place.** Once the file system has room for a copy, the live data of every
//!   tree is read from the broken database (reads still work: its page cache and files are
//!   intact) into a new generation (see [`super::generation`]), which is synced, made current
//!   and swapped in; the broken one is deleted. What is copied is exactly what quell's memory
//!   holds (the suppression index, the queue counter), so nothing needs rebuilding: every write
//!   that was acknowledged is in it, and so may be a write whose flush failed (its client was
//!   told to try again — at least once, as a crash between a sync and its reply would).
//! - **Or from its files.** A read can make sled rewrite a page, which the broken database
//!   refuses, so the copy can fail (1 run in 10 of the soak). Then the new generation is a copy
//!   of the broken database's files, opened by sled as after a crash: every synced write is in
//!   it, unsynced ones are not (none was acknowledged). The in-memory suppression index may then
//!   still hold a change whose flush failed (its client got `507`/`503`) until the next start.
//!
//! A restart needs none of this: sled opens the files as after a crash (the soak's kill -9 and
//! start-on-a-full-disk scenarios).

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::generation::{copy_trees, SLED_FILES, SLED_SNAPSHOT_PREFIX};
use super::{free_space, Shared, Store, StoreError, Trees};

/// How often the watch thread looks at the database (and, while it is failed, at the room
/// for a copy).
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How long a probe may take before the watch thread stops waiting for it (it goes on, and the
/// next probe wakes it if sled failed meanwhile).
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// Probes left waiting at most; more are not started.
const MAX_PROBES: usize = 4;
/// Room kept free beyond the copy's estimated size before a recovery is tried.
const COPY_MARGIN: u64 = 1024 * 1024;

/// Why the store refuses: set at the first failed write, cleared by a recovery.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    /// The failure was the disk being full (`ENOSPC`).
    pub full: bool,
    /// The error, for the log and [`StoreError::Recovering`].
    pub cause: String,
    /// The wait for room was logged.
    pub waiting_logged: bool,
}

impl Store {
    /// Starts the watch thread; it ends when the last clone of the store is dropped.
    pub(super) fn start_watch(&self) -> std::io::Result<()> {
        let shared = Arc::downgrade(&self.shared);
        std::thread::Builder::new()
            .name("quell-store-watch".into())
            .spawn(move || watch(shared))?;
        Ok(())
    }

    /// The failure the store is recovering from, if any.
    pub(super) fn failure(&self) -> Option<Failure> {
        if !self.shared.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`StoreError::Recovering`] while the store is failed.
    pub(super) fn check_failed(&self) -> Result<(), StoreError> {
        match self.failure() {
            Some(f) => Err(StoreError::Recovering {
                full: f.full,
                cause: f.cause,
            }),
            None => Ok(()),
        }
    }

    /// Marks the store failed after `error` from sled (the first one wins); the watch thread
    /// recovers it.
    pub(super) fn mark_failed(&self, error: &StoreError) {
        let mut failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            let full = error.is_full();
            tracing::error!(error = %error, full, "store write failed; refusing writes until it is reopened");
            *failure = Some(Failure {
                full,
                cause: error.to_string(),
                waiting_logged: false,
            });
            self.shared.failed.store(true, Ordering::SeqCst);
        }
    }

    /// One look at the store: a probe while it is healthy, a recovery attempt while it is
    /// failed and there is room for the copy.
    fn watch_once(&self, probes: &mut Vec<mpsc::Receiver<Result<(), StoreError>>>) {
        if self.failure().is_some() {
            // Whatever still waits on the broken database is woken by one more probe.
            if probes.is_empty() {
                probes.push(self.probe());
            }
            probes.retain(|rx| matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)));
            if self.room_for_copy() {
                match self.recover() {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "store recovery failed; trying again"),
                }
            }
            return;
        }
        probes.retain(|rx| match rx.try_recv() {
            Ok(Err(e)) => {
                self.mark_failed(&e);
                false
            }
            Ok(Ok(())) | Err(mpsc::TryRecvError::Disconnected) => false,
            Err(mpsc::TryRecvError::Empty) => true,
        });
        if probes.len() >= MAX_PROBES {
            return;
        }
        let rx = self.probe();
        match rx.recv_timeout(PROBE_WAIT) {
            Ok(Err(e)) => self.mark_failed(&e),
            Ok(Ok(())) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => probes.push(rx),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
    }

    /// Asks sled to flush the current generation on a thread of its own; the answer arrives on
    /// the channel (never, if sled hangs and nothing wakes it).
    fn probe(&self) -> mpsc::Receiver<Result<(), StoreError>> {
        let (tx, rx) = mpsc::channel();
        let trees = self.shared.trees.load_full();
        let spawned = std::thread::Builder::new()
            .name("quell-store-probe".into())
            .spawn(move || {
                let _ = tx.send(trees.db.flush().map(drop).map_err(StoreError::from));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a store probe");
        }
        rx
    }

    /// Whether the store's file system has room for a copy of the current generation and the
    /// free-space floor.
    fn room_for_copy(&self) -> bool {
        let root = self.shared.layout.root();
        let Ok(free) = free_space(root) else {
            return false;
        };
        let needed = allocated(&self.read().dir)
            .saturating_add(self.shared.min_free.load(Ordering::Relaxed))
            .saturating_add(COPY_MARGIN);
        if free < needed {
            let mut failure = self
                .shared
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(f) = failure.as_mut().filter(|f| !f.waiting_logged) {
                f.waiting_logged = true;
                tracing::warn!(
                    free,
                    needed,
                    "store recovery waits for room for a copy of the store"
                );
            }
            return false;
        }
        true
    }

    /// Copies what the broken database holds into a new generation, makes it current and
    /// clears the failure. Writers wait meanwhile (they would fail on the broken database);
    /// readers go on reading it.
    fn recover(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let _one = self
            .shared
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let writers = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let layout = &self.shared.layout;
        let old = self.shared.trees.load_full();
        let (next, dir) = layout.next()?;
        let live = (|| {
            let db = layout.sled_config(&dir).open()?;
            let copied = copy_trees(&old, &db)?;
            let trees = Arc::new(Trees::open(db, &dir)?);
            // The copy may fill the disk again; a failed write must not leave this thread
            // waiting in sled for good.
            sync_unstuck(trees.clone())?;
            Ok::<_, StoreError>((trees, copied))
        })();
        let (trees, copied, from) = match live {
            Ok((trees, copied)) => (trees, copied, "memory"),
            Err(e) => {
                // Nothing points at the half-made generation.
                let _ = fs::remove_dir_all(&dir);
                // A read can make sled rewrite a page (it consolidates long chains of
                // changes), which a broken database refuses: seen in 1 of 10 soak runs. Then
                // the generation is made from the broken database's files instead, as a
                // restart would open them.
                tracing::warn!(error = %e, "store recovery: the broken database cannot be read whole; reopening a copy of its files");
                let from_files = (|| {
                    copy_files(&old.dir, &dir)?;
                    let db = layout.sled_config(&dir).open()?;
                    let trees = Arc::new(Trees::open(db, &dir)?);
                    sync_unstuck(trees.clone())?;
                    Ok::<_, StoreError>(trees)
                })();
                match from_files {
                    Ok(trees) => {
                        let queued = trees.queue.len() as u64;
                        self.shared.queued.store(queued, Ordering::Relaxed);
                        (trees, queued, "files")
                    }
                    Err(e) => {
                        let _ = fs::remove_dir_all(&dir);
                        return Err(e);
                    }
                }
            }
        };
        if let Err(e) = layout.set_current(next) {
            drop(trees);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.shared.trees.store(trees);
        *self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.failed.store(false, Ordering::SeqCst);
        drop(writers);
        // sled's drop of the broken database could wait on it: let it go on a thread of its
        // own. Its files are deleted now; the space returns when the last handle closes.
        std::thread::Builder::new()
            .name("quell-store-drop".into())
            .spawn(move || drop(old))?;
        layout.remove_all_but(next)?;
        tracing::info!(
            copied,
            from,
            generation = next,
            ms = started.elapsed().as_millis() as u64,
            "store recovered: writes are taken again"
        );
        Ok(())
    }
}

/// Copies sled's files of the database in `from` (a generation's directory, or the store
/// directory for generation 0) into the new directory `to`, without unfinished snapshots. The
/// database in `from` writes nothing any more (sled stops at its first failed write), so the
/// copy is what a crash would have left.
fn copy_files(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = SLED_FILES.contains(&name) || name.starts_with(SLED_SNAPSHOT_PREFIX);
        if !ours || name.ends_with(".generating") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            // `blobs/`: every file in it.
            fs::create_dir_all(to.join(name))?;
            for blob in fs::read_dir(entry.path())? {
                let blob = blob?;
                fs::copy(blob.path(), to.join(name).join(blob.file_name()))?;
            }
        } else {
            fs::copy(entry.path(), to.join(name))?;
        }
    }
    Ok(())
}

/// [`Trees::sync`] on a thread of its own, asking sled to flush again (which wakes a flush
/// stuck on a failed write, see the module docs) for as long as it has not returned.
fn sync_unstuck(trees: Arc<Trees>) -> Result<(), StoreError> {
    let (tx, rx) = mpsc::channel();
    let syncing = trees.clone();
    std::thread::Builder::new()
        .name("quell-store-sync".into())
        .spawn(move || {
            let _ = tx.send(syncing.sync());
        })?;
    loop {
        match rx.recv_timeout(PROBE_WAIT) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StoreError::Io(std::io::Error::other(
                    "store sync thread ended",
                )))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let poke = trees.clone();
                std::thread::Builder::new()
                    .name("quell-store-probe".into())
                    .spawn(move || drop(poke.db.flush()))?;
            }
        }
    }
}

/// The watch loop of the store behind `shared`, until it is dropped.
fn watch(shared: Weak<Shared>) {
    let mut probes = Vec::new();
    loop {
        std::thread::sleep(WATCH_EVERY);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        Store { shared }.watch_once(&mut probes);
    }
}

/// Bytes allocated to the files under `dir` (sled's log is sparse; its length overstates).
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("gen-") || n == "spool")
                {
                    continue;
                }
                stack.push(entry.path());
            } else {
                total = total.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
    }
    total
}
