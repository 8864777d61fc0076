//! Store generations and the vacuum that moves from one to the next.
//!
//! sled never overwrites in place: a removed key or value stays in the log file until sled's
//! cleaner happens to rewrite that segment (tried: an erased address was still in the files
//! after remove and flush, and gone only after ~100,000 further inserts). Erasure (GDPR/CCPA)
//! must not leave the address behind, so [`Store::vacuum`] copies the live data of every tree
//! into a new sled database and deletes the old one.
//!
//! The copy runs while quell goes on writing: a [`Journal`] per tree records every change from
//! the start of the copy (sled tells subscribers of every insert and removal, those in batches
//! and transactions too). A long journal is replayed onto the copy while writes still go on,
//! into the next journal; only the last, short one is replayed with writes held back, and the
//! store switches over.
//!
//! # Layout of the store directory
//!
//! - A store that was never vacuumed is a sled database in the directory itself (`conf`, `db`,
//!   `blobs/`, `snap.*`).
//! - After a vacuum the database is in `gen-<n>/`, and the file `CURRENT` names it. `CURRENT`
//!   is replaced atomically (write, fsync, rename, fsync the directory) only once the new
//!   generation is complete and flushed, so a crash at any point leaves a whole database to
//!   open; leftovers (older generations, a half-copied one, the original files) are deleted
//!   when the store is next opened or vacuumed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Store, StoreError, Trees, TREE_NAMES};

/// The files sled keeps in a database directory (removed from the top level once the store
/// has moved to `gen-<n>/`; nothing else there is touched).
pub(super) const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];
pub(super) const SLED_SNAPSHOT_PREFIX: &str = "snap.";
const CURRENT: &str = "CURRENT";
const GENERATION_PREFIX: &str = "gen-";

/// Entries copied per sled batch during a vacuum.
const COPY_BATCH: usize = 10_000;

/// The store directory.
#[derive(Debug)]
pub(super) struct Layout {
    root: PathBuf,
    /// Bytes of sled page cache for each generation opened.
    cache_size: u64,
}

/// How long [`open_when_released`] waits for this process's own last handle to let go.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the database, waiting briefly while its file lock is held: after this process drops
/// its last handle, sled's background threads release the lock a moment later (an in-process
/// reopen, as in tests). Another process holding it still fails, after [`RELEASE_WAIT`].
fn open_when_released(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// The entries of `dir`; none if it does not exist.
fn entries_if_any(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect::<Result<_, _>>()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the snapshots sled left unfinished in `dir`: it writes `snap.<lsn>.generating`,
/// syncs it and only then renames it `snap.<lsn>`, so such a file is never whole. sled 0.34
/// does not tell them apart when it opens: it reads the newest `snap.*` of all, and a
/// `.generating` file left by a start on a full disk (0 bytes) made the store unopenable
/// (`Read corrupted data`) for good. sled then recovers from the last whole snapshot and its
/// log.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StoreError> {
    for entry in entries_if_any(dir)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(SLED_SNAPSHOT_PREFIX) && name.ends_with(".generating") {
            tracing::warn!(file = name, "deleting a snapshot sled left unfinished");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl Layout {
    pub fn new(root: &Path, cache_size: u64) -> Layout {
        Layout {
            root: root.to_path_buf(),
            cache_size,
        }
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn sled_config(&self, path: &Path) -> sled::Config {
        sled::Config::new()
            .path(path)
            .cache_capacity(self.cache_size)
            .flush_every_ms(Some(500))
    }

    /// The generation `CURRENT` names (0, the directory itself, without it).
    pub(super) fn current(&self) -> Result<u64, StoreError> {
        match fs::read_to_string(self.root.join(CURRENT)) {
            Ok(name) => name
                .trim()
                .strip_prefix(GENERATION_PREFIX)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    StoreError::Io(std::io::Error::other(format!(
                        "{}: not a generation name: {name:?}",
                        self.root.join(CURRENT).display()
                    )))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The generation after the current one and its directory, emptied of anything an
    /// interrupted vacuum or recovery left there.
    pub(super) fn next(&self) -> Result<(u64, PathBuf), StoreError> {
        let next = self.current()? + 1;
        let dir = self.dir(next);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        Ok((next, dir))
    }

    pub(super) fn dir(&self, generation: u64) -> PathBuf {
        match generation {
            0 => self.root.clone(),
            n => self.root.join(format!("{GENERATION_PREFIX}{n}")),
        }
    }

    /// Opens the current generation, deleting leftovers of earlier ones; the database and its
    /// directory.
    pub fn open_current(&self) -> Result<(sled::Db, PathBuf), StoreError> {
        let current = self.current()?;
        let dir = self.dir(current);
        remove_unfinished_snapshots(&dir)?;
        let db = open_when_released(&self.sled_config(&dir))?;
        self.remove_all_but(current)?;
        Ok((db, dir))
    }

    /// Deletes every generation other than `keep`.
    pub(super) fn remove_all_but(&self, keep: u64) -> Result<(), StoreError> {
        for entry in entries_if_any(&self.root)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            let generation = name
                .strip_prefix(GENERATION_PREFIX)
                .and_then(|n| n.parse::<u64>().ok());
            let stale = match generation {
                Some(n) => n != keep,
                None => {
                    keep != 0
                        && (SLED_FILES.contains(&name) || name.starts_with(SLED_SNAPSHOT_PREFIX))
                }
            };
            if stale {
                if path.is_dir() {
                    fs::remove_dir_all(&path)?;
                } else {
                    fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Makes `generation` the current one, durably.
    pub(super) fn set_current(&self, generation: u64) -> Result<(), StoreError> {
        use std::io::Write;
        let tmp = self.root.join(format!("{CURRENT}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{GENERATION_PREFIX}{generation}")?;
        f.sync_all()?;
        fs::rename(&tmp, self.root.join(CURRENT))?;
        fs::File::open(&self.root)?.sync_all()?;
        Ok(())
    }
}

/// The start of the keys a vacuum writes to the old generation's trees to end their journals
/// (one per round); never a real key (keys are UTF-8 text, which never holds 0xFF), and never
/// copied.
const JOURNAL_END: &[u8] = b"\xff\xffquell:vacuum:end:";

/// A journal with this many changes or fewer is replayed with writes held back; a longer one
/// is replayed while writes go on, into a new journal (at most [`CATCH_UP_ROUNDS`] times).
const CATCH_UP_BELOW: usize = 5_000;
const CATCH_UP_ROUNDS: u32 = 3;

/// Every change to one tree from [`Journal::start`] on, in order.
struct Journal {
    name: &'static str,
    tree: sled::Tree,
    end: Vec<u8>,
    recorded: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<sled::Event>>,
}

impl Journal {
    /// Starts recording `tree`'s changes (on a thread, so writers never wait for a full
    /// subscriber queue). The thread reads with the blocking iterator: sled 0.34's
    /// `next_timeout` stops for good at the first write that turned out a no-op.
    fn start(name: &'static str, tree: sled::Tree, round: u32) -> Journal {
        let mut end = JOURNAL_END.to_vec();
        end.extend_from_slice(round.to_string().as_bytes());
        let subscriber = tree.watch_prefix(Vec::new());
        let recorded = Arc::new(AtomicUsize::new(0));
        let (mark, count) = (end.clone(), recorded.clone());
        let thread = std::thread::spawn(move || {
            let mut events = Vec::new();
            for event in subscriber {
                if event.key() == mark.as_slice() {
                    break;
                }
                if !event.key().starts_with(JOURNAL_END) {
                    events.push(event);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            events
        });
        Journal {
            name,
            tree,
            end,
            recorded,
            thread,
        }
    }

    /// The changes recorded. With writes held back, none is missing; otherwise those made
    /// after its end mark are in the journal started before it (see [`Store::vacuum`]).
    fn finish(self) -> Result<(&'static str, Vec<sled::Event>), StoreError> {
        self.tree.insert(self.end.as_slice(), &[])?;
        let events = self.thread.join().expect("journal thread");
        self.tree.remove(self.end.as_slice())?;
        Ok((self.name, events))
    }
}

/// A journal for every tree of `trees`.
fn start_journals(trees: &Trees, round: u32) -> Result<Vec<Journal>, StoreError> {
    TREE_NAMES
        .iter()
        .map(|name| Ok(Journal::start(name, trees.db.open_tree(name)?, round)))
        .collect()
}

/// Finishes `journals` and replays them onto `db`; how many changes.
fn replay_journals(journals: Vec<Journal>, db: &sled::Db) -> Result<u64, StoreError> {
    let mut replayed = 0;
    for journal in journals {
        let (name, events) = journal.finish()?;
        replayed += events.len() as u64;
        replay(&db.open_tree(name)?, events)?;
    }
    Ok(replayed)
}

/// Replays `events` onto `tree`, in order (a batch keeps the last write of each key).
fn replay(tree: &sled::Tree, events: Vec<sled::Event>) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for event in events {
        if event.key().starts_with(JOURNAL_END) {
            continue;
        }
        match event {
            sled::Event::Insert { key, value } => batch.insert(key, value),
            sled::Event::Remove { key } => batch.remove(key),
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}

/// What a vacuum did.
#[derive(Debug, Clone, Copy)]
pub struct Vacuumed {
    /// Entries copied while writes went on.
    pub copied: u64,
    /// Changes made meanwhile, replayed with writes held back.
    pub replayed: u64,
    /// Journals replayed while writes went on.
    pub catch_up_rounds: u32,
    /// How long writes were held back.
    pub writes_held: std::time::Duration,
}

/// Copies every tree of `from` into `to`, in batches.
pub(super) fn copy_trees(from: &Trees, to: &sled::Db) -> Result<u64, StoreError> {
    let mut copied = 0;
    for name in TREE_NAMES {
        let source = from.db.open_tree(name)?;
        let target = to.open_tree(name)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in source.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            n += 1;
            if n == COPY_BATCH {
                target.apply_batch(std::mem::take(&mut batch))?;
                copied += n as u64;
                n = 0;
            }
        }
        target.apply_batch(batch)?;
        copied += n as u64;
    }
    Ok(copied)
}

impl Store {
    /// Copies the live data into a new generation and deletes the old one, so nothing removed
    /// before the call remains in the store's files.
    ///
    /// Blocking: call it on a blocking thread. Writes go on while it copies and are held back
    /// (reads are not) only while it replays what changed meanwhile and switches over. One
    /// vacuum at a time.
    pub fn vacuum(&self) -> Result<Vacuumed, StoreError> {
        self.vacuum_holding_below(CATCH_UP_BELOW)
    }

    /// [`Store::vacuum`], replaying journals of at most `hold_below` changes with writes held
    /// (tests lower it to go through the catch-up rounds).
    fn vacuum_holding_below(&self, hold_below: usize) -> Result<Vacuumed, StoreError> {
        let _one = self
            .shared
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A broken database takes no journal marks: the recovery copies it instead.
        self.check_failed()?;
        let layout = &self.shared.layout;
        let old = self.shared.trees.load_full();
        let (next, dir) = layout.next()?;
        let db = layout.sled_config(&dir).open()?;
        let mut journals = start_journals(&old, 0)?;
        let copied = match copy_trees(&old, &db) {
            Ok(n) => n,
            Err(e) => {
                for journal in journals {
                    let _ = journal.finish();
                }
                return Err(e);
            }
        };
        // Catch up while writes go on: a journal started before the previous one ends holds
        // every change after it, so replaying them in order gives the latest value of each key.
        let mut replayed = 0;
        let mut round = 0;
        while round < CATCH_UP_ROUNDS
            && journals
                .iter()
                .map(|j| j.recorded.load(Ordering::Relaxed))
                .sum::<usize>()
                > hold_below
        {
            round += 1;
            let next_journals = start_journals(&old, round)?;
            replayed += replay_journals(std::mem::replace(&mut journals, next_journals), &db)?;
        }

        let exclusive = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let held = std::time::Instant::now();
        replayed += replay_journals(journals, &db)?;
        let trees = Trees::open(db, &dir)?;
        trees.sync()?;
        layout.set_current(next)?;
        self.shared.trees.store(Arc::new(trees));
        drop(exclusive);
        let writes_held = held.elapsed();
        drop(old);
        layout.remove_all_but(next)?;
        Ok(Vacuumed {
            copied,
            replayed,
            catch_up_rounds: round,
            writes_held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Reason, Scope, Suppression, SuppressionKey};

    fn files_contain(dir: &Path, needle: &[u8]) -> bool {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
                {
                    return true;
                }
            }
        }
        false
    }

    #[tokio::test]
    async fn vacuum_keeps_live_data_and_drops_removed_data_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let store = Store::open(&root).unwrap();
        let key = |a: &str| SuppressionKey::new(Scope::Global, a, List::Unsubscribes);
        store
            .suppression_put(&key("kept@x.io"), &Suppression::new(Reason::Unsub, 1))
            .unwrap();
        store
            .suppression_put(&key("gone-7f3a@x.io"), &Suppression::new(Reason::Unsub, 1))
            .unwrap();
        store.suppression_remove(&key("gone-7f3a@x.io")).unwrap();
        store.meta_put("m", b"v").unwrap();
        store.flush().await.unwrap();
        assert!(files_contain(&root, b"gone-7f3a@x.io"), "sled keeps it");

        assert!(store.vacuum().unwrap().copied >= 2);
        assert!(!files_contain(&root, b"gone-7f3a@x.io"));
        assert!(root.join("gen-1").is_dir() && !root.join("conf").exists());
        assert!(store.suppression_get(&key("kept@x.io")).unwrap().is_some());
        store
            .suppression_put(&key("after@x.io"), &Suppression::new(Reason::Unsub, 2))
            .unwrap();
        store.vacuum().unwrap();
        assert!(root.join("gen-2").is_dir() && !root.join("gen-1").exists());
        drop(store);

        let store = Store::open(&root).unwrap();
        assert!(store.suppression_get(&key("kept@x.io")).unwrap().is_some());
        assert!(store.suppression_get(&key("after@x.io")).unwrap().is_some());
        assert_eq!(store.meta_get("m").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_waiting_for_a_vacuum_does_not_stall_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        // What a vacuum holds while it copies.
        let vacuum = store.shared.gate.write().unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.meta_put("k", b"v").unwrap() })
        };
        // The writer has the only worker; another task must still run. Waited for on this
        // thread (not a worker), so a stalled runtime fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        tokio::spawn(async move { tx.send(7).unwrap() });
        let ran = rx.recv_timeout(std::time::Duration::from_secs(10));
        let writer_waited = !writer.is_finished();
        drop(vacuum);
        writer.await.unwrap();
        assert_eq!(ran, Ok(7), "the runtime stalled behind the waiting write");
        assert!(writer_waited);
        assert_eq!(store.meta_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn writes_made_while_a_vacuum_copies_are_kept() {
        use crate::store::Changes;
        use std::collections::HashMap;
        use std::sync::atomic::{AtomicBool, Ordering};

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let store = Store::open(&root).unwrap();
        let key =
            |n: usize| SuppressionKey::new(Scope::Global, format!("{n}@x.io"), List::Unsubscribes);
        let entry = Suppression::new(Reason::Unsub, 1);
        let items: Vec<_> = (0..30_000).map(|n| (key(n), entry.clone())).collect();
        for chunk in items.chunks(1000) {
            store.suppression_put_many(chunk).unwrap();
        }
        let switched = Arc::new(AtomicBool::new(false));
        let (running_tx, running) = std::sync::mpsc::channel();
        // Single-threaded, so the last write to each key is the one that must survive; puts,
        // removals, transactions and another tree, before, during and after the copy: it
        // writes until 200 writes after the vacuum has switched over.
        let writer = {
            let (store, switched, entry) = (store.clone(), switched.clone(), entry.clone());
            std::thread::spawn(move || {
                let mut expected: HashMap<usize, bool> = HashMap::new();
                let mut i = 0usize;
                let mut after = 0;
                while after < 200 {
                    if i == 100 {
                        running_tx.send(()).unwrap();
                    }
                    if switched.load(Ordering::Relaxed) {
                        after += 1;
                    }
                    let n = (i * 7919) % 40_000;
                    match i % 4 {
                        0 => {
                            store.suppression_put(&key(n), &entry).unwrap();
                            expected.insert(n, true);
                        }
                        1 => {
                            store.suppression_remove(&key(n)).unwrap();
                            expected.insert(n, false);
                        }
                        2 => {
                            let changes = Changes {
                                puts: vec![(key(n + 1), entry.clone())],
                                removes_if_unsub: vec![key(n)],
                                profiles: vec![("p".into(), Some(format!("{n}@x.io")))],
                            };
                            store.apply(&changes).unwrap();
                            expected.insert(n, false);
                            expected.insert(n + 1, true);
                        }
                        _ => store.meta_put("last", n.to_string().as_bytes()).unwrap(),
                    }
                    i += 1;
                }
                expected
            })
        };
        running.recv().unwrap();
        let vacuumed = store.vacuum_holding_below(100).unwrap();
        switched.store(true, Ordering::Relaxed);
        let replayed = vacuumed.replayed;
        assert!(vacuumed.catch_up_rounds > 0, "{vacuumed:?}");
        let expected = writer.join().unwrap();
        assert!(replayed > 0, "no write happened during the copy");
        let check = |store: &Store| {
            for (n, present) in &expected {
                let got = store.suppression_get(&key(*n)).unwrap().is_some();
                assert_eq!(got, *present, "entry {n}");
            }
        };
        check(&store);
        drop(store);
        let store = Store::open(&root).unwrap();
        assert!(root.join("gen-1").is_dir());
        check(&store);
    }

    #[test]
    fn a_snapshot_left_unfinished_does_not_make_the_store_unopenable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let store = Store::open(&root).unwrap();
        store.meta_put("m", b"v").unwrap();
        drop(store);
        // What a start on a full disk leaves: sled created the file and could not write it.
        fs::write(root.join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
        let store = Store::open(&root).unwrap();
        assert_eq!(store.meta_get("m").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(!root.join("snap.7FFFFFFFFFFFFFFF.generating").exists());
    }

    #[test]
    fn open_deletes_a_half_copied_generation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        let store = Store::open(&root).unwrap();
        store.meta_put("m", b"v").unwrap();
        drop(store);
        fs::create_dir_all(root.join("gen-1")).unwrap();
        fs::write(root.join("gen-1").join("db"), b"partial").unwrap();
        let store = Store::open(&root).unwrap();
        assert_eq!(store.meta_get("m").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(!root.join("gen-1").exists());
    }
}
