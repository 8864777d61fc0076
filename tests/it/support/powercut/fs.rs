//! The FUSE file system behind [`super::Disk`]: files and directories in memory, each holding
//! what it has now and what it had at its last sync.
//!
//! - A file's durable contents are its contents at its last `fsync`/`fdatasync`; a file never
//!   synced is durable as an empty file (stricter than ext4, which may keep some of it).
//! - A directory's durable entries are its entries at its last `fsync`: a file created or
//!   renamed in, or removed, is durably so only once the directory is synced. A rename is two
//!   directory changes, each durable with its own directory.
//! - `sync_file_range` reaches no FUSE file system (the kernel only starts writeback of its own
//!   page cache, and this mount uses none for writes), so it syncs nothing here, as on a disk
//!   with a volatile write cache.
//!
//! Every operation that changes something is counted; at the count [`State::cut_at`] the
//! power goes off: that operation and every later one fail with `EIO`, and nothing changes
//! any more, so [`State::durable`] is what a disk would hold after the cut.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use tokio::sync::watch;

use super::Image;

/// How long the kernel may cache names and attributes. Only the process on the mount changes
/// it (through the kernel), so caching is safe; each power cycle mounts afresh.
const TTL: Duration = Duration::from_secs(1);

/// Free space reported by `statfs` (quell refuses mail below `storage.min_free`).
const BLOCKS: u64 = 16 << 20;
const BLOCK_SIZE: u32 = 4096;

enum Kind {
    File {
        data: Vec<u8>,
        /// As of the last `fsync`/`fdatasync`.
        durable: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        /// As of the directory's last `fsync`.
        durable: BTreeMap<OsString, u64>,
    },
}

struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
}

/// The whole file system; inodes are never freed while it is mounted (an unlinked file may
/// still be durable in a directory that was not synced since).
pub(super) struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Changing operations so far.
    pub operations: u64,
    /// The power goes off at this operation.
    pub cut_at: Option<u64>,
    /// Syncs of files and of directories that succeeded.
    pub file_syncs: u64,
    pub dir_syncs: u64,
    off: bool,
    power: watch::Sender<bool>,
}

impl State {
    /// A file system holding `image` (a directory), all of it durable.
    pub fn new(image: &Image, power: watch::Sender<bool>) -> State {
        let mut state = State {
            nodes: HashMap::new(),
            // The image's top directory is inserted first: it gets the root's number.
            next_ino: INodeNo::ROOT.0,
            operations: 0,
            cut_at: None,
            file_syncs: 0,
            dir_syncs: 0,
            off: false,
            power,
        };
        let root = state.insert(image);
        assert_eq!(root, INodeNo::ROOT.0);
        assert!(state.is_dir(root), "the image is a directory");
        state
    }

    fn insert(&mut self, image: &Image) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let kind = match image {
            Image::File(bytes) => Kind::File {
                data: bytes.clone(),
                durable: bytes.clone(),
            },
            Image::Dir(children) => {
                let entries: BTreeMap<OsString, u64> = children
                    .iter()
                    .map(|(name, child)| (name.clone(), self.insert(child)))
                    .collect();
                Kind::Dir {
                    durable: entries.clone(),
                    entries,
                }
            }
        };
        let perm = if matches!(image, Image::Dir(_)) {
            0o755
        } else {
            0o644
        };
        self.nodes.insert(
            ino,
            Node {
                kind,
                perm,
                mtime: SystemTime::now(),
            },
        );
        ino
    }

    /// Cuts the power now (nothing changes from here on).
    pub fn power_off(&mut self) {
        self.off = true;
        self.power.send_replace(true);
    }

    /// What a disk would hold after a power cut now: from the root, every directory's
    /// durable entries and every file's durable contents.
    pub fn durable(&self) -> Image {
        self.durable_of(INodeNo::ROOT.0, 0)
    }

    fn durable_of(&self, ino: u64, depth: usize) -> Image {
        assert!(depth < 64, "directory cycle in the durable state");
        match &self.nodes[&ino].kind {
            Kind::File { durable, .. } => Image::File(durable.clone()),
            Kind::Dir { durable, .. } => Image::Dir(
                durable
                    .iter()
                    .map(|(name, child)| (name.clone(), self.durable_of(*child, depth + 1)))
                    .collect(),
            ),
        }
    }

    fn readable(&self) -> Result<(), Errno> {
        if self.off {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    /// Counts a changing operation; the one at [`State::cut_at`] cuts the power first.
    fn change(&mut self) -> Result<(), Errno> {
        self.readable()?;
        self.operations += 1;
        if self.cut_at.is_some_and(|at| self.operations >= at) {
            self.power_off();
            return Err(Errno::EIO);
        }
        Ok(())
    }

    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: INodeNo) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: INodeNo) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        let node = self.node_mut(dir)?;
        node.mtime = SystemTime::now();
        match &mut node.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn data_mut(&mut self, ino: INodeNo) -> Result<&mut Vec<u8>, Errno> {
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        match &mut node.kind {
            Kind::File { data, .. } => Ok(data),
            Kind::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<u64, Errno> {
        self.entries(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.node(INodeNo(ino))?;
        let (kind, size, nlink) = match &node.kind {
            Kind::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Kind::Dir { .. } => (FileType::Directory, 0, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        })
    }

    /// A new, empty node named `name` in `parent`.
    fn create(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        dir: bool,
        mode: u32,
    ) -> Result<u64, Errno> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let kind = if dir {
            Kind::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            }
        } else {
            Kind::File {
                data: Vec::new(),
                durable: Vec::new(),
            }
        };
        self.nodes.insert(
            ino,
            Node {
                kind,
                perm: (mode & 0o7777) as u16,
                mtime: SystemTime::now(),
            },
        );
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    fn is_dir(&self, ino: u64) -> bool {
        matches!(self.nodes[&ino].kind, Kind::Dir { .. })
    }

    fn remove(&mut self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (dir, self.is_dir(ino)) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) if !self.entries(INodeNo(ino))?.is_empty() => {
                return Err(Errno::ENOTEMPTY)
            }
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let target = self.entries(new_parent)?.get(new_name).copied();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let other = target.ok_or(Errno::ENOENT)?;
            self.entries_mut(parent)?.insert(name.to_os_string(), other);
            self.entries_mut(new_parent)?
                .insert(new_name.to_os_string(), ino);
            return Ok(());
        }
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = target {
            if target == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (self.is_dir(ino), self.is_dir(target)) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !self.entries(INodeNo(target))?.is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_os_string(), ino);
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file or a directory: its present state becomes durable.
    fn sync(&mut self, ino: INodeNo) -> Result<(), Errno> {
        match &mut self.node_mut(ino)?.kind {
            Kind::File { data, durable } => {
                durable.clone_from(data);
                self.file_syncs += 1;
            }
            Kind::Dir { entries, durable } => {
                durable.clone_from(entries);
                self.dir_syncs += 1;
            }
        }
        Ok(())
    }
}

/// The [`Filesystem`] over a shared [`State`].
pub(super) struct PowerFs {
    pub state: Arc<Mutex<State>>,
}

impl PowerFs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn entry(reply: ReplyEntry, attr: Result<FileAttr, Errno>) {
    match attr {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.state();
        let attr = s
            .readable()
            .and_then(|()| s.lookup(parent, name))
            .and_then(|ino| s.attr(ino));
        entry(reply, attr);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.state();
        match s.readable().and_then(|()| s.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let result = (|| {
            s.readable()?;
            if let Some(size) = size {
                s.change()?;
                s.data_mut(ino)?.resize(size as usize, 0);
            }
            if let Some(mode) = mode {
                s.node_mut(ino)?.perm = (mode & 0o7777) as u16;
            }
            s.attr(ino.0)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let attr = (|| {
            if mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Errno::EPERM);
            }
            s.change()?;
            let ino = s.create(parent, name, false, mode & !umask)?;
            s.attr(ino)
        })();
        entry(reply, attr);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let attr = s
            .change()
            .and_then(|()| s.create(parent, name, true, mode & !umask))
            .and_then(|ino| s.attr(ino));
        entry(reply, attr);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let result = s.change().and_then(|()| s.remove(parent, name, false));
        empty(reply, result);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let result = s.change().and_then(|()| s.remove(parent, name, true));
        empty(reply, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = s
            .change()
            .and_then(|()| s.rename(parent, name, newparent, newname, flags));
        empty(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = self.state();
        match s.readable().and_then(|()| s.node(ino).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let result = s.readable().and_then(|()| match &s.node(ino)?.kind {
            Kind::File { data, .. } => {
                let start = (offset as usize).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(&data[start..end])
            }
            Kind::Dir { .. } => Err(Errno::EISDIR),
        });
        match result {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let result = s.change().and_then(|()| {
            let data = s.data_mut(ino)?;
            let start = offset as usize;
            let end = start + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
            Ok(())
        });
        match result {
            Ok(()) => reply.written(bytes.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = s.change().and_then(|()| s.sync(ino));
        empty(reply, result);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = self.state();
        match s.readable().and_then(|()| s.entries(ino).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = self.state();
        let entries = match s.readable().and_then(|()| s.entries(ino)) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots.into_iter().chain(entries.iter().map(|(name, child)| {
            let kind = if s.is_dir(*child) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            (*child, kind, name.as_os_str())
        }));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = s.change().and_then(|()| s.sync(ino));
        empty(reply, result);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            BLOCKS,
            BLOCKS,
            BLOCKS,
            1 << 20,
            1 << 20,
            BLOCK_SIZE,
            255,
            BLOCK_SIZE,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let attr = s.change().and_then(|()| match s.lookup(parent, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => Err(Errno::EEXIST),
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    s.data_mut(INodeNo(ino))?.clear();
                }
                s.attr(ino)
            }
            Err(_) => {
                let ino = s.create(parent, name, false, mode & !umask)?;
                s.attr(ino)
            }
        });
        match attr {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = (|| {
            if mode != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            s.change()?;
            let data = s.data_mut(ino)?;
            let end = (offset + length) as usize;
            if data.len() < end {
                data.resize(end, 0);
            }
            Ok(())
        })();
        empty(reply, result);
    }
}
