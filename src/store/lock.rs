//! One quell per store: `quell.pid` in the store directory, locked with `flock` for as long
//! as the store is open and holding the owner's process id.
//!
//! sled locks its own files too, but only once it opens them, and its error says nothing about
//! who holds them. This lock is taken first, before anything in the directory is read or
//! written, so a second `quell serve` on the same store stops at once and names the process
//! that has it. The kernel drops the lock when that process exits, however it exits: a pid
//! file left behind by a `kill -9` holds no lock and is simply taken over.
//!
//! Within one process the lock is held by the open file, so a store reopened right after the
//! last handle was dropped (tests do) may meet its own lock for a moment, while background
//! threads still hold a clone: that case waits up to [`RELEASE_WAIT`], as sled's own lock does
//! (see `generation::open_when_released`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::StoreError;

/// The lock file's name in the store directory.
const LOCK_FILE: &str = "quell.pid";

/// How long an open waits for a lock held by this same process to be released.
const RELEASE_WAIT: Duration = Duration::from_secs(3);

/// The held lock; released when dropped (the file is left, holding a stale pid).
#[derive(Debug)]
pub(super) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Creates the store directory if needed and locks it, or fails with
    /// [`StoreError::InUse`] naming the process that holds it.
    pub fn acquire(root: &Path) -> Result<StoreLock, StoreError> {
        std::fs::create_dir_all(root)?;
        let path = root.join(LOCK_FILE);
        // Not truncated on open: the pid stays readable to others until the lock is ours.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_pid(&mut file);
                    if holder != Some(std::process::id()) || Instant::now() >= deadline {
                        return Err(StoreError::InUse {
                            pid: holder,
                            path: root.to_path_buf(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::Error(e)) => return Err(e.into()),
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_data()?;
        Ok(StoreLock { _file: file })
    }
}

/// The pid written in the lock file, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Who holds a store, for [`StoreError::InUse`]'s message.
pub(super) fn holder(pid: &Option<u32>, path: &Path) -> String {
    match pid {
        Some(pid) => format!("another quell (pid {pid}) is using {}", path.display()),
        None => format!("another quell is using {}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_dropped_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let first = StoreLock::acquire(&root).unwrap();
        let pid = std::fs::read_to_string(root.join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // Held by this very process: the second open waits for its release, then names it.
        let err = StoreLock::acquire(&root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "another quell (pid {}) is using {}",
                std::process::id(),
                root.display()
            )
        );
        drop(first);
        let _again = StoreLock::acquire(&root).unwrap();
    }
}
