//! Store generations and the vacuum that moves from one to the next.
//!
//! sled never overwrites in place: a removed key or value stays in the log file until sled's
//! cleaner happens to rewrite that segment (tried: an erased address was still in the files
//! after remove and flush, and gone only after ~100,000 further inserts). Erasure (GDPR/CCPA)
//! must not leave the address behind, so [`Store::vacuum`] copies the live data of every tree
//! into a new sled database and deletes the old one.
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
use std::sync::Arc;

use super::{Store, StoreError, Trees, TREE_NAMES};

/// The files sled keeps in a database directory (removed from the top level once the store
/// has moved to `gen-<n>/`; nothing else there is touched).
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];
const SLED_SNAPSHOT_PREFIX: &str = "snap.";
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

impl Layout {
    pub fn new(root: &Path, cache_size: u64) -> Layout {
        Layout {
            root: root.to_path_buf(),
            cache_size,
        }
    }

    fn sled_config(&self, path: &Path) -> sled::Config {
        sled::Config::new()
            .path(path)
            .cache_capacity(self.cache_size)
            .flush_every_ms(Some(500))
    }

    /// The generation `CURRENT` names (0, the directory itself, without it).
    fn current(&self) -> Result<u64, StoreError> {
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

    fn dir(&self, generation: u64) -> PathBuf {
        match generation {
            0 => self.root.clone(),
            n => self.root.join(format!("{GENERATION_PREFIX}{n}")),
        }
    }

    /// Opens the current generation, deleting leftovers of earlier ones.
    pub fn open_current(&self) -> Result<sled::Db, StoreError> {
        let current = self.current()?;
        let db = self.sled_config(&self.dir(current)).open()?;
        self.remove_all_but(current)?;
        Ok(db)
    }

    /// Deletes every generation other than `keep`.
    fn remove_all_but(&self, keep: u64) -> Result<(), StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
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
    fn set_current(&self, generation: u64) -> Result<(), StoreError> {
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

/// Copies every tree of `from` into `to`, in batches.
fn copy_trees(from: &Trees, to: &sled::Db) -> Result<u64, StoreError> {
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
    /// before the call remains in the store's files; returns how many entries it copied.
    ///
    /// Blocking, and it holds back every write (not reads) while it copies: call it on a
    /// blocking thread. Followers of the old generation ([`Store::watch_message`]) see no
    /// further changes; they re-read after their timeout.
    pub fn vacuum(&self) -> Result<u64, StoreError> {
        let layout = &self.shared.layout;
        let _exclusive = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let old = self.shared.trees.load_full();
        old.db.flush()?;
        let next = layout.current()? + 1;
        let dir = layout.dir(next);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let db = layout.sled_config(&dir).open()?;
        let copied = copy_trees(&old, &db)?;
        db.flush()?;
        layout.set_current(next)?;
        self.shared.trees.store(Arc::new(Trees::open(db)?));
        drop(old);
        layout.remove_all_but(next)?;
        Ok(copied)
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

        assert!(store.vacuum().unwrap() >= 2);
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
