//! Message bytes, one file per queued transaction, outside sled: `<storage.path>/spool/<queue id>`.
//!
//! sled keeps what it removes in its log until its cleaner rewrites the segment, so bytes of
//! delivered mail kept the store growing (1.17 GB after 232,000 messages of 4 KB); a file is
//! given back to the file system the moment its message is done. A file is written the way
//! Postfix writes a queue file: into `spool/tmp/`, `fdatasync`, renamed into `spool/`, and the
//! directory entry synced by the next [`Store::flush`](super::Store::flush) (shared by every
//! message waiting for it) before the `250`. A crash leaves at worst a file in `tmp/` or a file
//! without a queue entry: both are deleted at the next start ([`Spool::open`],
//! [`super::Store::spool_collect`]).
//!
//! A message larger than the session keeps in memory is written while it arrives: a
//! [`Draft`] in `spool/tmp/`, appended to chunk by chunk and committed (synced, renamed) at the
//! end of DATA the same way; a draft dropped before its commit deletes its file.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The spool directory.
#[derive(Debug)]
pub(super) struct Spool {
    dir: PathBuf,
    tmp: PathBuf,
    /// A file was renamed into `dir` since its entries were last synced.
    unsynced: AtomicBool,
}

impl Spool {
    /// Opens (or creates) `root/spool`, deleting what a crash left in `tmp/`.
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        let dir = root.join("spool");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            fs::remove_file(entry?.path())?;
        }
        // The directories themselves must survive a power cut before anything in them does.
        File::open(root)?.sync_all()?;
        File::open(&dir)?.sync_all()?;
        Ok(Spool {
            dir,
            tmp,
            unsynced: AtomicBool::new(false),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes the bytes of `id`: synced file, renamed into place. Blocking.
    pub fn write(&self, id: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut draft = self.create(id)?;
        draft.append(bytes)?;
        self.commit(draft)
    }

    /// Starts the file of `id` in `tmp/`. Blocking.
    pub fn create(&self, id: &str) -> std::io::Result<Draft> {
        let path = self.tmp.join(id);
        let file = File::create(&path)?;
        Ok(Draft {
            id: id.to_string(),
            path,
            file: Some(file),
        })
    }

    /// Syncs the draft's bytes and renames it into place; its directory entry is synced by the
    /// next [`Spool::sync`]. A draft that fails here is deleted. Blocking.
    pub fn commit(&self, mut draft: Draft) -> std::io::Result<()> {
        draft.file()?.sync_data()?;
        fs::rename(&draft.path, self.path(&draft.id))?;
        draft.file = None;
        self.unsynced.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The bytes of `id`, if it has a file. Blocking.
    pub fn read(&self, id: &str) -> std::io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the file of `id` (none is fine). The space is free at once; the removal needs
    /// no sync: a file that comes back after a power cut has no queue entry and is collected.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every id with a file.
    pub fn ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    ids.push(name.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Syncs the directory entries of files renamed in since the last call. Blocking.
    pub fn sync(&self) -> std::io::Result<()> {
        if self.unsynced.swap(false, Ordering::SeqCst) {
            if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                self.unsynced.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A spool file being written, in `spool/tmp/` until [`Spool::commit`]; deleted if dropped
/// before.
#[derive(Debug)]
pub struct Draft {
    id: String,
    path: PathBuf,
    /// `None` once committed.
    file: Option<File>,
}

impl Draft {
    fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spool draft already committed"))
    }

    /// Appends `bytes`. Blocking.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file()?.write_all(bytes)
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_read_removed_and_leftovers_collected() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        spool.write("a", b"hello").unwrap();
        assert_eq!(spool.read("a").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(spool.ids().unwrap(), ["a"]);
        spool.sync().unwrap();
        spool.remove("a").unwrap();
        spool.remove("a").unwrap();
        assert_eq!(spool.read("a").unwrap(), None);
        std::fs::write(dir.path().join("spool/tmp/torn"), b"half").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert!(!dir.path().join("spool/tmp/torn").exists());
        assert!(spool.ids().unwrap().is_empty());
    }

    #[test]
    fn a_draft_is_invisible_until_committed_and_deleted_if_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut draft = spool.create("big").unwrap();
        draft.append(b"part one, ").unwrap();
        draft.append(b"part two").unwrap();
        assert_eq!(spool.read("big").unwrap(), None);
        spool.commit(draft).unwrap();
        assert_eq!(
            spool.read("big").unwrap().as_deref(),
            Some(&b"part one, part two"[..])
        );
        let mut dropped = spool.create("gone").unwrap();
        dropped.append(b"x").unwrap();
        drop(dropped);
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(spool.ids().unwrap(), ["big"]);
    }
}
