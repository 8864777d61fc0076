//! A disk that loses power: a FUSE file system (see [`fs`]) that keeps, beside what each file
//! and directory holds, what it held at its last sync, and can "cut the power" at a chosen
//! operation. What survives ([`Disk::durable`]) is an [`Image`], written out into a real
//! directory with [`Image::materialise`] and mounted again for the next run.
//!
//! Mounting needs root and `/dev/fuse` (CI has both); `fuser` mounts with the `mount` system
//! call itself, no `fusermount` needed.

mod fs;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

/// Whether this machine can mount a FUSE file system.
pub fn available() -> bool {
    Path::new("/dev/fuse").exists()
}

/// A tree of files and directories, held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, Image>),
}

impl Image {
    /// An empty directory.
    pub fn empty() -> Image {
        Image::Dir(BTreeMap::new())
    }

    /// The tree under the directory `dir` (regular files and directories only).
    pub fn read(dir: &Path) -> std::io::Result<Image> {
        let mut children = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let child = if kind.is_dir() {
                Image::read(&entry.path())?
            } else if kind.is_file() {
                Image::File(std::fs::read(entry.path())?)
            } else {
                continue;
            };
            children.insert(entry.file_name(), child);
        }
        Ok(Image::Dir(children))
    }

    /// Writes the tree (a directory) into the existing directory `dir`.
    pub fn materialise(&self, dir: &Path) -> std::io::Result<()> {
        let Image::Dir(children) = self else {
            panic!("materialise a directory, not a file");
        };
        for (name, child) in children {
            let path = dir.join(name);
            match child {
                Image::File(bytes) => std::fs::write(&path, bytes)?,
                Image::Dir(_) => {
                    std::fs::create_dir(&path)?;
                    child.materialise(&path)?;
                }
            }
        }
        Ok(())
    }

    /// The entry at `path` (relative, `/`-separated), if there is one.
    pub fn get(&self, path: &str) -> Option<&Image> {
        path.split('/')
            .filter(|part| !part.is_empty())
            .try_fold(self, |at, part| match at {
                Image::Dir(children) => children.get(OsString::from(part).as_os_str()),
                Image::File(_) => None,
            })
    }

    /// The names in the directory at `path` (none when it is missing or a file).
    pub fn names(&self, path: &str) -> Vec<String> {
        match self.get(path) {
            Some(Image::Dir(children)) => children
                .keys()
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A mounted power-cut file system on a temporary directory; unmounted on drop.
pub struct Disk {
    mountpoint: tempfile::TempDir,
    state: Arc<Mutex<fs::State>>,
    power: watch::Receiver<bool>,
    session: Option<fuser::BackgroundSession>,
}

impl Disk {
    /// Mounts a file system holding `image` (a directory), all of it durable.
    pub fn mount(image: &Image) -> Disk {
        let mountpoint = tempfile::tempdir().expect("mountpoint");
        let (tx, power) = watch::channel(false);
        let state = Arc::new(Mutex::new(fs::State::new(image, tx)));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("quell-powercut".into()),
            fuser::MountOption::RW,
        ];
        let session = fuser::spawn_mount(
            fs::PowerFs {
                state: state.clone(),
            },
            mountpoint.path(),
            &config,
        )
        .expect("mount the FUSE file system (needs root and /dev/fuse)");
        Disk {
            mountpoint,
            state,
            power,
            session: Some(session),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    fn state(&self) -> MutexGuard<'_, fs::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changing operations (writes, creations, renames, removals, syncs…) so far.
    pub fn operations(&self) -> u64 {
        self.state().operations
    }

    /// Successful syncs so far: of files, of directories.
    pub fn syncs(&self) -> (u64, u64) {
        let s = self.state();
        (s.file_syncs, s.dir_syncs)
    }

    /// Cuts the power at the `n`th changing operation from now (n ≥ 1): that operation fails
    /// and so does everything after it.
    pub fn cut_after(&self, n: u64) {
        let mut s = self.state();
        s.cut_at = Some(s.operations + n.max(1));
    }

    /// Calls off a cut set with [`Disk::cut_after`] that has not come yet.
    pub fn cancel_cut(&self) {
        self.state().cut_at = None;
    }

    /// Cuts the power now.
    pub fn cut(&self) {
        self.state().power_off();
    }

    /// Whether the power is off.
    pub fn is_off(&self) -> bool {
        *self.power.borrow()
    }

    /// Tells when the power goes off (`true`).
    pub fn power(&self) -> watch::Receiver<bool> {
        self.power.clone()
    }

    /// Waits until the power is off, however long that takes.
    pub async fn off(&self) {
        let mut power = self.power.clone();
        let _ = power.wait_for(|off| *off).await;
    }

    /// Waits until the power is off; `false` if it was still on after `deadline`.
    pub async fn wait_off(&self, deadline: Duration) -> bool {
        let mut power = self.power.clone();
        let off = tokio::time::timeout(deadline, power.wait_for(|off| *off)).await;
        off.is_ok()
    }

    /// What a disk would hold after a power cut now.
    pub fn durable(&self) -> Image {
        self.state().durable()
    }

    /// Unmounts (every file on it must be closed: kill the process using it first).
    pub fn unmount(mut self) {
        self.detach();
    }

    fn detach(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if session.umount_and_join().is_err() {
            // Still busy (a test that failed with the process alive): detach it lazily.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.path())
                .status();
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.detach();
    }
}

/// A fresh directory holding `image`: the state a machine restarts on after a power cut.
pub fn materialise(image: &Image) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("disk");
    std::fs::create_dir(&root).unwrap();
    image.materialise(&root).expect("write the durable state");
    (dir, root)
}
