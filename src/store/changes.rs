//! Several kinds of write applied as one sled transaction: a Mixpanel request or import batch
//! suppresses some addresses, re-subscribes others and updates profiles, all or nothing.

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{decode, encode, Reason, Store, StoreError, Suppression, SuppressionKey};

/// The writes of one atomic unit.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Entries inserted or replaced.
    pub puts: Vec<(SuppressionKey, Suppression)>,
    /// Entries removed only if their stored reason is still `unsub` (a re-subscribe never
    /// lifts a bounce, a complaint or a manual reject, even one written a moment ago).
    pub removes_if_unsub: Vec<SuppressionKey>,
    /// Profile changes: `Some(address)` maps the distinct id, `None` forgets it.
    pub profiles: Vec<(String, Option<String>)>,
}

impl Store {
    /// Applies `changes` atomically; returns how many entries were removed.
    pub fn apply(&self, changes: &Changes) -> Result<usize, StoreError> {
        if changes.removes_if_unsub.is_empty() && changes.profiles.is_empty() {
            // Only insertions: one sled batch is atomic too, and cheaper than a transaction.
            self.suppression_put_many(&changes.puts)?;
            return Ok(0);
        }
        let t = self.write();
        let mut index = self.index().writer();
        let result = (&t.suppressions, &t.profiles, &t.profiles_by_address).transaction(
            |(suppressions, profiles, reverse)| {
                for (key, entry) in &changes.puts {
                    suppressions.insert(key.bytes(), encode(entry))?;
                }
                // Built anew by each attempt: sled may run the closure more than once.
                let mut removed = Vec::new();
                for key in &changes.removes_if_unsub {
                    let k = key.bytes();
                    if let Some(v) = suppressions.get(&k)? {
                        let entry: Suppression = decode("suppressions", &v)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if entry.reason == Reason::Unsub {
                            suppressions.remove(k)?;
                            removed.push(key);
                        }
                    }
                }
                for (id, address) in &changes.profiles {
                    set_profile(profiles, reverse, id, address.as_deref())?;
                }
                Ok(removed)
            },
        );
        let removed = result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        })?;
        for (key, entry) in &changes.puts {
            index.put(key, entry);
        }
        for key in &removed {
            index.remove(key);
        }
        Ok(removed.len())
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
}
