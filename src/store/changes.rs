//! Suppression writes decided against what is stored at the moment of writing, all or nothing.
//!
//! Every write that depends on what a key holds — a merge of tags, "never weaken an entry",
//! "only if it is still `unsub`", "not for an allowlisted address" — goes through
//! [`Store::update`]: under the index's writer lock (which every suppression and allowlist
//! write takes) it reads each key, asks the caller's rule what to do, and writes every
//! decision in one sled batch (or, with profile changes, one transaction) before recording it
//! in the index. No other writer can come between the read and the write, so two concurrent
//! writers to one address never lose an update. The rules themselves live in
//! `crate::suppression::rules`; the store only runs them.

use std::collections::HashMap;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{decode, encode, Reason, Store, StoreError, Suppression, SuppressionKey};

/// What a write does to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Store this entry (insert or replace).
    Put(Suppression),
    /// Remove the entry.
    Remove,
    /// Leave the key as it is.
    Keep,
}

/// What a key holds when its write is decided.
#[derive(Debug)]
pub struct Current<'a> {
    /// The stored entry (or the one an earlier item of the same write decided).
    pub entry: Option<&'a Suppression>,
    store: &'a Store,
    address: &'a str,
}

impl Current<'_> {
    /// Whether the key's address is allowlisted (read only when a rule asks).
    pub fn allowlisted(&self) -> Result<bool, StoreError> {
        self.store.is_allowlisted(self.address)
    }
}

/// A simple set of writes: see [`Store::apply`].
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Entries inserted or replaced.
    pub puts: Vec<(SuppressionKey, Suppression)>,
    /// Entries removed only if their stored reason is still `unsub`.
    pub removes_if_unsub: Vec<SuppressionKey>,
    /// Profile changes: `Some(address)` maps the distinct id, `None` forgets it.
    pub profiles: Vec<(String, Option<String>)>,
}

impl Store {
    /// Writes `keys` atomically, each as `decide(i, key, current)` says, together with the
    /// profile changes. Items for the same key are decided in order, each seeing what the
    /// earlier decided. Returns what was done to each key, in order (`Keep` for a removal of
    /// nothing). Synchronous and possibly long (a batch of 10,000): call it off the async
    /// workers; durable only after [`Store::flush`].
    pub fn update<F>(
        &self,
        keys: &[SuppressionKey],
        profiles: &[(String, Option<String>)],
        mut decide: F,
    ) -> Result<Vec<Update>, StoreError>
    where
        F: FnMut(usize, &SuppressionKey, Current<'_>) -> Result<Update, StoreError>,
    {
        let t = self.write();
        let mut index = self.index().writer();
        // What earlier items of this write left at a key (None: removed).
        let mut pending: HashMap<Vec<u8>, Option<Suppression>> = HashMap::new();
        let mut updates = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let k = key.bytes();
            let stored = match pending.get(&k) {
                Some(p) => p.clone(),
                None => t
                    .suppressions
                    .get(&k)?
                    .map(|v| decode("suppressions", &v))
                    .transpose()?,
            };
            let current = Current {
                entry: stored.as_ref(),
                store: self,
                address: &key.address,
            };
            let update = match decide(i, key, current)? {
                Update::Remove if stored.is_none() => Update::Keep,
                u => u,
            };
            match &update {
                Update::Put(e) => {
                    pending.insert(k, Some(e.clone()));
                }
                Update::Remove => {
                    pending.insert(k, None);
                }
                Update::Keep => {}
            }
            updates.push(update);
        }
        if profiles.is_empty() {
            let mut batch = sled::Batch::default();
            for (k, v) in &pending {
                match v {
                    Some(e) => batch.insert(k.as_slice(), encode(e)),
                    None => batch.remove(k.as_slice()),
                }
            }
            t.suppressions.apply_batch(batch)?;
        } else {
            let result = (&t.suppressions, &t.profiles, &t.profiles_by_address).transaction(
                |(suppressions, profiles_tree, reverse)| {
                    for (k, v) in &pending {
                        match v {
                            Some(e) => suppressions.insert(k.as_slice(), encode(e))?,
                            None => suppressions.remove(k.as_slice())?,
                        };
                    }
                    for (id, address) in profiles {
                        set_profile(profiles_tree, reverse, id, address.as_deref())?;
                    }
                    Ok(())
                },
            );
            result.map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        }
        for (key, update) in keys.iter().zip(&updates) {
            match update {
                Update::Put(e) => index.put(key, e),
                Update::Remove => index.remove(key),
                Update::Keep => {}
            }
        }
        Ok(updates)
    }

    /// Applies `changes` atomically; returns how many entries were removed.
    pub fn apply(&self, changes: &Changes) -> Result<usize, StoreError> {
        let keys: Vec<SuppressionKey> = changes
            .puts
            .iter()
            .map(|(k, _)| k.clone())
            .chain(changes.removes_if_unsub.iter().cloned())
            .collect();
        let puts = changes.puts.len();
        let updates = self.update(&keys, &changes.profiles, |i, _, current| {
            Ok(if i < puts {
                Update::Put(changes.puts[i].1.clone())
            } else if current.entry.is_some_and(|e| e.reason == Reason::Unsub) {
                Update::Remove
            } else {
                Update::Keep
            })
        })?;
        Ok(updates.iter().filter(|u| **u == Update::Remove).count())
    }
}

/// Maps (or with `None` forgets) `id` inside a transaction, keeping the reverse index in step.
fn set_profile(
    profiles: &TransactionalTree,
    reverse: &TransactionalTree,
    id: &str,
    address: Option<&str>,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let old = match address {
        Some(a) => profiles.insert(id.as_bytes(), a.as_bytes())?,
        None => profiles.remove(id.as_bytes())?,
    };
    if let Some(old) = old {
        reverse.remove(super::profiles::reverse_key(
            &String::from_utf8_lossy(&old),
            id,
        ))?;
    }
    if let Some(a) = address {
        reverse.insert(super::profiles::reverse_key(a, id), &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Scope};

    #[test]
    fn applies_puts_conditional_removes_and_profiles_together() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let key = |a: &str| SuppressionKey::new(Scope::Global, a, List::Unsubscribes);
        s.suppression_put(&key("u@x"), &Suppression::new(Reason::Unsub, 1))
            .unwrap();
        s.suppression_put(&key("c@x"), &Suppression::new(Reason::Custom, 1))
            .unwrap();
        s.profile_put("old", "gone@x").unwrap();
        let changes = Changes {
            puts: vec![(key("n@x"), Suppression::new(Reason::Unsub, 2))],
            removes_if_unsub: vec![key("u@x"), key("c@x"), key("absent@x")],
            profiles: vec![("id1".into(), Some("n@x".into())), ("old".into(), None)],
        };
        assert_eq!(s.apply(&changes).unwrap(), 1);
        assert!(s.suppression_get(&key("n@x")).unwrap().is_some());
        assert!(s.suppression_get(&key("u@x")).unwrap().is_none());
        assert!(
            s.suppression_get(&key("c@x")).unwrap().is_some(),
            "manual reject kept"
        );
        assert_eq!(s.profile_get("id1").unwrap().as_deref(), Some("n@x"));
        assert_eq!(s.profiles_of_address("n@x").unwrap(), ["id1"]);
        assert!(s.profile_get("old").unwrap().is_none());
        assert!(s.profiles_of_address("gone@x").unwrap().is_empty());
    }

    #[test]
    fn items_for_one_key_see_each_other_and_a_removal_of_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let key = SuppressionKey::new(Scope::Global, "a@x", List::Unsubscribes);
        let keys = [key.clone(), key.clone(), key.clone()];
        let mut seen = Vec::new();
        let updates = s
            .update(&keys, &[], |i, _, current| {
                seen.push(current.entry.map(|e| e.created_at));
                Ok(match i {
                    0 => Update::Remove,
                    _ => Update::Put(Suppression::new(Reason::Unsub, i as i64)),
                })
            })
            .unwrap();
        assert_eq!(seen, [None, None, Some(1)]);
        assert_eq!(updates[0], Update::Keep);
        assert_eq!(s.suppression_get(&key).unwrap().unwrap().created_at, 2);
    }
}
