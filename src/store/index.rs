//! The RCPT-time view of the `suppressions` tree, in memory: for every (scope, address) pair
//! with entries, what those entries say about mail *without tags* — which lists hold one, its
//! reason, whether it covers all mail — and the earliest expiry of any of them. The RCPT check
//! reads no sled at all: a recipient without entries costs one probe per scope that applies to
//! the sender, a suppressed one the same, whatever the size of the tree or of sled's cache.
//!
//! Only what memory cannot answer goes to sled: a pair with an entry whose expiry has come
//! (the tree has the truth; expiries only ever lower the bound kept here), and, after DATA,
//! a pair with an entry for some tags only (tag matching needs the tags).
//!
//! It is exact, not a cache: it is built from the tree at every start, and every write to the
//! tree records its effect here right after the tree write, both under one writer lock (see
//! [`IndexWriter`]), so that writers never leave the two disagreeing.
//!
//! Readers never wait for a writer's disk work or scan: the writer lock is not theirs, and the
//! table is split into [`SHARDS`] shards, each behind its own `RwLock` that a writer holds for
//! one insert or removal at a time. A reader waits at most for one hash-table operation (or a
//! shard's growth, 1/64 of the table), also while a 1,000,000-row import or the clear of a
//! whole scope is being written. Keys are 64-bit SipHash values of the pair under
//! a random per-process key: a wrong match needs a 64-bit collision (about 1 in 2⁴⁴ lookups at
//! 1,000,000 pairs), and cannot be aimed at. One 16-byte entry per pair in a table that doubles
//! as it grows: 17 to 34 bytes a pair, about 36 MiB at 1,000,000.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use serde::Deserialize;

use super::entry::{List, Reason, Scope, Suppression, SuppressionKey};
use super::StoreError;

/// Decodes a stored value into a view that borrows from it.
fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        tree: "suppressions",
        source,
    })
}

/// A scope, borrowed: what the RCPT check looks up without building a [`Scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeRef<'a> {
    Global,
    Domain(&'a str),
    Sender(&'a str),
}

impl<'a> ScopeRef<'a> {
    pub fn to_scope(self) -> Scope {
        match self {
            ScopeRef::Global => Scope::Global,
            ScopeRef::Domain(d) => Scope::Domain(d.to_string()),
            ScopeRef::Sender(a) => Scope::Sender(a.to_string()),
        }
    }

    /// The scope key ([`Scope::key`]) as (kind, value): hashed as two writes everywhere.
    fn parts(self) -> (&'static [u8], &'a [u8]) {
        match self {
            ScopeRef::Global => (b"global", b""),
            ScopeRef::Domain(d) => (b"domain:", d.as_bytes()),
            ScopeRef::Sender(a) => (b"sender:", a.as_bytes()),
        }
    }
}

impl<'a> From<&'a Scope> for ScopeRef<'a> {
    fn from(scope: &'a Scope) -> ScopeRef<'a> {
        match scope {
            Scope::Global => ScopeRef::Global,
            Scope::Domain(d) => ScopeRef::Domain(d),
            Scope::Sender(a) => ScopeRef::Sender(a),
        }
    }
}

/// The lists in the order the tree holds them (by list code), which is the order the RCPT
/// check reports the first that applies.
const LISTS: [List; 3] = [List::Bounces, List::Complaints, List::Unsubscribes];
const REASONS: [Reason; 5] = [
    Reason::Unsub,
    Reason::HardBounce,
    Reason::SoftBounce,
    Reason::Spam,
    Reason::Custom,
];

fn slot_of(list: List) -> usize {
    LISTS.iter().position(|l| *l == list).expect("every list")
}

/// What the entries of one (scope, address) pair say, packed: per list 5 bits (present, all
/// mail, reason), and in the high 32 bits the earliest expiry of any entry ever recorded for
/// the pair (Unix seconds; 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary(u64);

const PRESENT: u64 = 1;
const ALL_MAIL: u64 = 2;

impl Summary {
    fn slot(self, i: usize) -> u64 {
        (self.0 >> (5 * i)) & 0x1F
    }

    fn set(&mut self, list: List, entry: Indexed<'_>) {
        let i = slot_of(list);
        let reason = REASONS.iter().position(|r| *r == entry.reason).unwrap_or(0) as u64;
        let bits = PRESENT | if entry.all_mail() { ALL_MAIL } else { 0 } | (reason << 2);
        self.0 = (self.0 & !(0x1F << (5 * i))) | (bits << (5 * i));
        if let Some(at) = entry.expires_at {
            let at = at.clamp(1, u32::MAX as i64) as u64;
            let current = self.0 >> 32;
            if current == 0 || at < current {
                self.0 = (self.0 & 0xFFFF_FFFF) | (at << 32);
            }
        }
    }

    fn clear(&mut self, list: List) {
        self.0 &= !(0x1F << (5 * slot_of(list)));
    }

    fn is_empty(self) -> bool {
        (0..3).all(|i| self.slot(i) & PRESENT == 0)
    }

    /// Whether memory cannot decide at `now`: an expiry has come, or (`tagged`, after DATA) an
    /// entry is for some tags only.
    pub fn needs_tree(self, now: i64, tagged: bool) -> bool {
        let expiry = (self.0 >> 32) as i64;
        (expiry != 0 && now >= expiry)
            || (tagged
                && (0..3).any(|i| {
                    let s = self.slot(i);
                    s & PRESENT != 0 && s & ALL_MAIL == 0
                }))
    }

    /// The reasons of the entries for all mail, in list order.
    pub fn all_mail_reasons(self) -> impl Iterator<Item = Reason> {
        (0..3).filter_map(move |i| {
            let s = self.slot(i);
            (s & PRESENT != 0 && s & ALL_MAIL != 0).then(|| REASONS[(s >> 2) as usize & 7])
        })
    }
}

/// What the index needs of an entry: read from a stored value without the rest (detail, message
/// id), so that building the index at start decodes as little as it can.
#[derive(Debug, Deserialize)]
struct Indexed<'a> {
    reason: Reason,
    #[serde(borrow, default)]
    tags: Vec<Cow<'a, str>>,
    #[serde(default)]
    expires_at: Option<i64>,
}

impl<'a> Indexed<'a> {
    fn of(entry: &'a Suppression) -> Indexed<'a> {
        Indexed {
            reason: entry.reason,
            tags: entry
                .tags
                .iter()
                .map(|t| Cow::Borrowed(t.as_str()))
                .collect(),
            expires_at: entry.expires_at,
        }
    }

    /// As [`Suppression::is_all_tags`].
    fn all_mail(&self) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|t| t == "*")
    }
}

/// The table's keys are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Table = HashMap<u64, Summary, BuildHasherDefault<PassThrough>>;

/// How many independently locked parts the table has (a power of two).
pub const SHARDS: usize = 64;

/// The index (see the module docs).
#[derive(Debug)]
pub(super) struct SuppressionIndex {
    /// The table, split by the top bits of the key.
    shards: Box<[RwLock<Table>]>,
    /// Held by whoever writes the tree and then the index, so that two writers of one key
    /// cannot record their effects in the other order than they wrote them. Never taken by
    /// readers.
    writing: Mutex<()>,
    /// The allowlisted addresses, hashed like the pairs: the RCPT check of a suppressed
    /// recipient asks it without reading sled (whose large batches hold readers back).
    allowlisted: RwLock<HashSet<u64, BuildHasherDefault<PassThrough>>>,
    /// Every stored entry has been read in (see [`SuppressionIndex::build_chunk`]).
    complete: AtomicBool,
    keys: RandomState,
    /// Whether any tombstone (`#…`) was ever recorded: until then RCPT checks skip hashing.
    tombstones: AtomicBool,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThrough")
    }
}

impl SuppressionIndex {
    fn empty() -> SuppressionIndex {
        SuppressionIndex {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            writing: Mutex::new(()),
            allowlisted: RwLock::default(),
            complete: AtomicBool::new(false),
            keys: RandomState::new(),
            tombstones: AtomicBool::new(false),
        }
    }

    /// An index holding every address in `allowlist` and no entry yet: not complete until
    /// [`SuppressionIndex::build_chunk`] has gone through the `suppressions` tree.
    pub fn open(allowlist: &sled::Tree) -> Result<SuppressionIndex, StoreError> {
        let index = SuppressionIndex::empty();
        {
            let mut writer = index.writer();
            for item in allowlist.iter() {
                let (k, _) = item?;
                writer.allow(&String::from_utf8_lossy(&k));
            }
        }
        Ok(index)
    }

    /// Adds up to `limit` entries of `suppressions` after the key `after` (from the start with
    /// `None`), under the writer lock, so that no write comes between reading an entry and
    /// recording it; returns the last key read, or `None` (and marks the index complete) at
    /// the end of the tree. Writes between chunks keep the index right by themselves: a key
    /// already read is updated by its writer, one not yet read is read as the writer left it.
    pub fn build_chunk(
        &self,
        suppressions: &sled::Tree,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut writer = self.writer();
        let range = match after {
            Some(k) => suppressions.range::<&[u8], _>((Bound::Excluded(k), Bound::Unbounded)),
            None => suppressions.iter(),
        };
        let mut last = None;
        for item in range.take(limit) {
            let (k, v) = item?;
            if let Some((pair, address, list)) = super::keys::suppression_parts(&k) {
                let entry: Indexed<'_> = decode_borrowed(&v)?;
                writer.record(
                    self.hash_pair(pair),
                    address.first() == Some(&b'#'),
                    list,
                    entry,
                );
            }
            last = Some(k);
        }
        match last {
            Some(k) => Ok(Some(k.to_vec())),
            None => {
                self.complete.store(true, Ordering::Release);
                Ok(None)
            }
        }
    }

    /// Whether every stored entry is in the index (until then, decisions read the tree).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// The hash of a pair as its key's bytes `<scope> 0x00 <address>` hold it: the same value as
    /// [`SuppressionIndex::hash`] (SipHash takes its input as one stream, however it is split).
    fn hash_pair(&self, pair: &[u8]) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write(pair);
        h.finish()
    }

    fn hash(&self, scope: ScopeRef<'_>, address: &str) -> u64 {
        let (kind, value) = scope.parts();
        let mut h = self.keys.build_hasher();
        h.write(kind);
        h.write(value);
        h.write(&[0]);
        h.write(address.as_bytes());
        h.finish()
    }

    fn shard(&self, h: u64) -> &RwLock<Table> {
        &self.shards[(h >> (64 - SHARDS.trailing_zeros())) as usize]
    }

    /// What the entries of `address` (stored form) in `scope` say; `None`: it has none.
    pub fn summary(&self, scope: ScopeRef<'_>, address: &str) -> Option<Summary> {
        let h = self.hash(scope, address);
        self.shard(h)
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&h)
            .copied()
    }

    /// Whether `address` (stored form) is allowlisted.
    pub fn is_allowlisted(&self, address: &str) -> bool {
        let h = self.hash(ScopeRef::Global, address);
        self.allowlisted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&h)
    }

    /// Whether the store may hold tombstones.
    pub fn has_tombstones(&self) -> bool {
        self.tombstones.load(Ordering::Relaxed)
    }

    /// The writer lock, for recording writes. Take it before reading what a write depends on
    /// and hold it across the tree write it records: every suppression write is serialised by
    /// it, so a read-decide-write under it is atomic, and the index follows the tree in the
    /// order the tree was written. Readers do not take it.
    pub fn writer(&self) -> IndexWriter<'_> {
        IndexWriter {
            index: self,
            _writing: self.writing.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The index, locked for recording writes (see [`SuppressionIndex::writer`]).
pub(super) struct IndexWriter<'a> {
    index: &'a SuppressionIndex,
    _writing: MutexGuard<'a, ()>,
}

impl IndexWriter<'_> {
    /// Records that `key` now holds `entry`.
    pub fn put(&mut self, key: &SuppressionKey, entry: &Suppression) {
        let h = self.index.hash(ScopeRef::from(&key.scope), &key.address);
        self.record(
            h,
            super::is_tombstone(&key.address),
            key.list,
            Indexed::of(entry),
        );
    }

    /// Records that the pair hashed `h` holds `entry` on `list`.
    fn record(&mut self, h: u64, tombstone: bool, list: List, entry: Indexed<'_>) {
        if tombstone {
            self.index.tombstones.store(true, Ordering::Relaxed);
        }
        let mut shard = self
            .index
            .shard(h)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        shard.entry(h).or_default().set(list, entry);
    }

    /// Records that `address` is allowlisted.
    pub fn allow(&mut self, address: &str) {
        let h = self.index.hash(ScopeRef::Global, address);
        let set = self.index.allowlisted.write();
        set.unwrap_or_else(|e| e.into_inner()).insert(h);
    }

    /// Records that `address` is no longer allowlisted.
    pub fn disallow(&mut self, address: &str) {
        let h = self.index.hash(ScopeRef::Global, address);
        let set = self.index.allowlisted.write();
        set.unwrap_or_else(|e| e.into_inner()).remove(&h);
    }

    /// Records that `key` holds nothing now.
    pub fn remove(&mut self, key: &SuppressionKey) {
        let h = self.index.hash(ScopeRef::from(&key.scope), &key.address);
        let mut shard = self
            .index
            .shard(h)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(summary) = shard.get_mut(&h) {
            summary.clear(key.list);
            if summary.is_empty() {
                shard.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: Scope, address: &str, list: List) -> SuppressionKey {
        SuppressionKey::new(scope, address, list)
    }

    #[test]
    fn a_pair_hashes_the_same_from_its_key_bytes() {
        let i = SuppressionIndex::empty();
        for scope in [
            Scope::Global,
            Scope::Domain("d.io".into()),
            Scope::Sender("a@d.io".into()),
        ] {
            let k = key(scope.clone(), "x@y.io", List::Bounces).bytes();
            let (pair, address, list) = super::super::keys::suppression_parts(&k).unwrap();
            assert_eq!((address, list), (&b"x@y.io"[..], List::Bounces));
            assert_eq!(i.hash_pair(pair), i.hash(ScopeRef::from(&scope), "x@y.io"));
        }
    }

    #[test]
    fn records_lists_reasons_tags_and_expiry() {
        let i = SuppressionIndex::empty();
        let d = Scope::Domain("d.io".into());
        assert_eq!(i.summary(ScopeRef::Global, "a@x"), None);
        let mut unsub = Suppression::new(Reason::Unsub, 0);
        unsub.expires_at = Some(100);
        let mut tagged = Suppression::new(Reason::Custom, 0);
        tagged.tags = vec!["news".into()];
        {
            let mut w = i.writer();
            w.put(&key(d.clone(), "a@x", List::Unsubscribes), &unsub);
            w.put(
                &key(d.clone(), "a@x", List::Bounces),
                &Suppression::new(Reason::HardBounce, 0),
            );
            w.put(&key(Scope::Global, "t@x", List::Complaints), &tagged);
        }
        let s = i.summary(ScopeRef::Domain("d.io"), "a@x").unwrap();
        assert_eq!(
            s.all_mail_reasons().collect::<Vec<_>>(),
            [Reason::HardBounce, Reason::Unsub]
        );
        assert!(!s.needs_tree(99, true) && s.needs_tree(100, false));
        assert_eq!(i.summary(ScopeRef::Global, "a@x"), None);
        assert_eq!(i.summary(ScopeRef::Domain("e.io"), "a@x"), None);
        assert_eq!(i.summary(ScopeRef::Sender("d.io"), "a@x"), None);

        let t = i.summary(ScopeRef::Global, "t@x").unwrap();
        assert_eq!(t.all_mail_reasons().count(), 0);
        assert!(!t.needs_tree(0, false) && t.needs_tree(0, true));

        let mut w = i.writer();
        w.remove(&key(d.clone(), "a@x", List::Bounces));
        drop(w);
        let s = i.summary(ScopeRef::Domain("d.io"), "a@x").unwrap();
        assert_eq!(s.all_mail_reasons().collect::<Vec<_>>(), [Reason::Unsub]);
        let mut w = i.writer();
        w.remove(&key(d, "a@x", List::Unsubscribes));
        w.remove(&key(Scope::Global, "nothing@x", List::Unsubscribes));
        drop(w);
        assert_eq!(i.summary(ScopeRef::Domain("d.io"), "a@x"), None);
        assert!(!i.has_tombstones());
        i.writer()
            .put(&key(Scope::Global, "#00", List::Bounces), &unsub);
        assert!(i.has_tombstones());
    }
}
