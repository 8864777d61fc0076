//! An in-memory index of which scopes have suppression entries for which addresses, so the
//! RCPT-time check reads sled only where an entry may be: not at all for most recipients (they
//! have no entry), and for a suppressed one normally only the one scope that holds its entry,
//! instead of one prefix scan for every scope that applies to the sender.
//!
//! Per address (a 32-bit hash of it) it keeps a 32-bit filter of its scopes: bit 0 for `global`,
//! two bits picked by a hash of the scope key for a `domain:` or `sender:` scope. A recipient
//! whose hash is absent has no entry (one probe, as cheap as a set of addresses); for one that
//! is present, a scope whose bits are not all set has no entry for it.
//!
//! It is conservative: it must never answer "no" where an entry exists. Every insertion adds
//! its bits, removals leave them, hash collisions merge filters, and it is rebuilt from the keys
//! at every start; a wrong "maybe" only costs the sled scan the index would have saved (about
//! 1 in 4,000 absent addresses at 1,000,000 present ones, and then only if the filter matches
//! too). One 8-byte entry per address in a hash table that doubles as it grows: 9 to 18 bytes an
//! address, 18 MiB at 1,000,000.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::suppressions::split_key;
use super::{Scope, SuppressionKey};

/// Address hash → scope filter bits.
#[derive(Debug, Default)]
pub(super) struct AddressIndex {
    scopes: RwLock<HashMap<u32, u32>>,
    /// Whether any tombstone (`#…`) was ever inserted: until then RCPT checks skip hashing.
    tombstones: AtomicBool,
}

/// SipHash with fixed keys (the same at every start) of `bytes`, in one `write`: `Hasher` does
/// not promise that split writes hash alike.
fn sip(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

fn address_hash(address: &[u8]) -> u32 {
    let h = sip(address);
    (h ^ (h >> 32)) as u32
}

/// The filter bits of the scope whose key ([`Scope::key`]) is `scope_key`.
fn scope_bits(scope_key: &[u8]) -> u32 {
    if scope_key == b"global" {
        return 1;
    }
    let h = sip(scope_key);
    (1 << (1 + h % 31)) | (1 << (1 + (h >> 32) % 31))
}

impl AddressIndex {
    /// The index of every `(scope, address)` pair in the `suppressions` tree.
    pub fn build(suppressions: &sled::Tree) -> Result<AddressIndex, super::StoreError> {
        let index = AddressIndex::default();
        {
            let mut map = index.scopes.write().unwrap_or_else(|e| e.into_inner());
            for key in suppressions.iter().keys() {
                let key = key?;
                if let Some((scope, address)) = split_key(&key) {
                    if address.first() == Some(&b'#') {
                        index.tombstones.store(true, Ordering::Relaxed);
                    }
                    *map.entry(address_hash(address)).or_default() |= scope_bits(scope);
                }
            }
        }
        Ok(index)
    }

    /// Records that `key`'s scope has (or may have) an entry for its address.
    pub fn insert(&self, key: &SuppressionKey) {
        self.insert_many([key]);
    }

    /// Records many keys under one lock.
    pub fn insert_many<'a>(&self, keys: impl IntoIterator<Item = &'a SuppressionKey>) {
        let items: Vec<(u32, u32)> = keys
            .into_iter()
            .map(|k| {
                if super::is_tombstone(&k.address) {
                    self.tombstones.store(true, Ordering::Relaxed);
                }
                (
                    address_hash(k.address.as_bytes()),
                    scope_bits(k.scope.key().as_bytes()),
                )
            })
            .collect();
        {
            // Most insertions replace an entry or add one more list: nothing new to record.
            let map = self.scopes.read().unwrap_or_else(|e| e.into_inner());
            if items
                .iter()
                .all(|(a, s)| map.get(a).is_some_and(|bits| bits & s == *s))
            {
                return;
            }
        }
        let mut map = self.scopes.write().unwrap_or_else(|e| e.into_inner());
        for (a, s) in items {
            *map.entry(a).or_default() |= s;
        }
    }

    /// Whether the store may hold tombstones.
    pub fn has_tombstones(&self) -> bool {
        self.tombstones.load(Ordering::Relaxed)
    }

    /// False only if no scope has an entry for `address`. No allocation: this is the whole
    /// RCPT-time cost for most recipients.
    pub fn may_contain(&self, address: &str) -> bool {
        let h = address_hash(address.as_bytes());
        self.read().contains_key(&h)
    }

    /// False only if `scope` has no entry for `address`.
    pub fn may_contain_in(&self, scope: &Scope, address: &str) -> bool {
        let s = scope_bits(scope.key().as_bytes());
        let h = address_hash(address.as_bytes());
        self.read().get(&h).is_some_and(|bits| bits & s == s)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, u32>> {
        self.scopes.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::List;

    fn key(scope: Scope, address: &str) -> SuppressionKey {
        SuppressionKey::new(scope, address, List::Unsubscribes)
    }

    #[test]
    fn answers_no_only_for_unknown_pairs() {
        let i = AddressIndex::default();
        let d = Scope::Domain("d.io".into());
        assert!(!i.may_contain("a@x") && !i.may_contain_in(&Scope::Global, "a@x"));
        i.insert(&key(Scope::Global, "a@x"));
        i.insert_many([
            &key(d.clone(), "b@x"),
            &key(Scope::Sender("S@d.io".into()), "c@x"),
        ]);
        assert!(i.may_contain("a@x") && i.may_contain("b@x") && i.may_contain("c@x"));
        assert!(i.may_contain_in(&Scope::Global, "a@x") && i.may_contain_in(&d, "b@x"));
        assert!(i.may_contain_in(&Scope::Sender("s@d.io".into()), "c@x"));
        assert!(!i.may_contain("d@x") && !i.may_contain_in(&Scope::Global, "d@x"));
        assert!(
            !i.may_contain_in(&Scope::Global, "b@x"),
            "global has its own bit"
        );
        assert!(!i.may_contain_in(&Scope::Global, "c@x"));
        assert!(!i.has_tombstones());
        i.insert(&key(d, "#00"));
        assert!(i.has_tombstones());
    }

    #[test]
    fn scope_bits_are_one_for_global_and_two_others_for_any_other_scope() {
        assert_eq!(scope_bits(b"global"), 1);
        for n in 0..1000 {
            let bits = scope_bits(Scope::Domain(format!("d{n}.io")).key().as_bytes());
            assert!(bits & 1 == 0 && (1..=2).contains(&bits.count_ones()));
        }
    }
}
