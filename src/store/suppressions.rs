//! The suppression list (SPEC §3): `(scope, address, list)` → [`Suppression`], and the reads
//! and raw writes of it. Writes that depend on what is stored go through [`Store::update`].

use std::ops::Bound;

use super::entry::{List, Scope, Suppression, SuppressionKey};
use super::keys::{self, address_prefix, scope_prefix, split_tail};
use super::{decode, encode, Store, StoreError};

/// Paging direction for [`Store::suppression_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page<'a> {
    /// From the first address.
    First,
    /// Addresses after this one.
    After(&'a str),
    /// Addresses before this one (the page is still returned in ascending order).
    Before(&'a str),
    /// The last page.
    Last,
}

impl Store {
    /// Inserts or replaces one entry.
    pub fn suppression_put(
        &self,
        key: &SuppressionKey,
        entry: &Suppression,
    ) -> Result<(), StoreError> {
        let t = self.write();
        let mut index = self.index().writer();
        t.suppressions.insert(key.bytes(), encode(entry))?;
        index.put(key, entry);
        Ok(())
    }

    /// Inserts or replaces many entries atomically: all of them or none.
    pub fn suppression_put_many(
        &self,
        items: &[(SuppressionKey, Suppression)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, entry) in items {
            batch.insert(key.bytes(), encode(entry));
        }
        let t = self.write();
        let mut index = self.index().writer();
        t.suppressions.apply_batch(batch)?;
        for (key, entry) in items {
            index.put(key, entry);
        }
        Ok(())
    }

    /// One entry.
    pub fn suppression_get(&self, key: &SuppressionKey) -> Result<Option<Suppression>, StoreError> {
        self.read()
            .suppressions
            .get(key.bytes())?
            .map(|v| decode("suppressions", &v))
            .transpose()
    }

    /// Every list's entry for `address` in `scope`: one short prefix scan.
    pub fn suppressions_of(
        &self,
        scope: &Scope,
        address: &str,
    ) -> Result<Vec<(List, Suppression)>, StoreError> {
        let prefix = address_prefix(scope, address);
        let mut out = Vec::new();
        for item in self.read().suppressions.scan_prefix(&prefix) {
            let (k, v) = item?;
            if let Some(list) = keys::list_after(&k, prefix.len()) {
                out.push((list, decode("suppressions", &v)?));
            }
        }
        Ok(out)
    }

    /// Removes one entry; whether it existed.
    pub fn suppression_remove(&self, key: &SuppressionKey) -> Result<bool, StoreError> {
        let t = self.write();
        let mut index = self.index().writer();
        let existed = t.suppressions.remove(key.bytes())?.is_some();
        index.remove(key);
        Ok(existed)
    }

    /// Removes every entry of `list` in `scope`; how many.
    pub fn suppression_clear(&self, scope: &Scope, list: List) -> Result<usize, StoreError> {
        let prefix = scope_prefix(scope);
        let t = self.write();
        let mut index = self.index().writer();
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        for item in t.suppressions.scan_prefix(&prefix) {
            let (k, _) = item?;
            if let Some((address, l)) = split_tail(&k[prefix.len()..]) {
                if l == list {
                    batch.remove(k);
                    removed.push(SuppressionKey::new(scope.clone(), address, list));
                }
            }
        }
        t.suppressions.apply_batch(batch)?;
        for key in &removed {
            index.remove(key);
        }
        Ok(removed.len())
    }

    /// Up to `limit` entries of `list` in `scope`, in address order, whose address starts with
    /// `term` (empty: all), positioned by `page`.
    pub fn suppression_page(
        &self,
        scope: &Scope,
        list: List,
        page: Page<'_>,
        term: &str,
        limit: usize,
    ) -> Result<Vec<(String, Suppression)>, StoreError> {
        let prefix = scope_prefix(scope);
        let mut start = prefix.clone();
        start.extend_from_slice(term.as_bytes());
        let mut end = prefix.clone();
        end.extend_from_slice(term.as_bytes());
        end.push(0xFF);
        let (lower, upper, reverse) = match page {
            Page::First => (Bound::Included(start), Bound::Excluded(end), false),
            Page::Last => (Bound::Included(start), Bound::Excluded(end), true),
            Page::After(a) => {
                let mut k = address_prefix(scope, a);
                k.push(0xFF);
                (
                    Bound::Excluded(k.max(start.clone())),
                    Bound::Excluded(end),
                    false,
                )
            }
            Page::Before(a) => {
                let k = address_prefix(scope, a);
                let upper = if k < end { k } else { end };
                (Bound::Included(start), Bound::Excluded(upper), true)
            }
        };
        let mut out = Vec::new();
        let range = self.read().suppressions.range::<Vec<u8>, _>((lower, upper));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let Some((address, l)) = split_tail(&k[prefix.len()..]) else {
                continue;
            };
            if l == list {
                out.push((address, decode("suppressions", &v)?));
            }
        }
        if reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// Up to `limit` entries of every list in `scope`, in address order, starting after the
    /// address `after` (exclusive) when given.
    pub fn suppressions_in_scope(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, List, Suppression)>, StoreError> {
        let prefix = scope_prefix(scope);
        let mut end = prefix.clone();
        end.push(0xFF);
        let lower = match after {
            Some(a) => {
                let mut k = address_prefix(scope, a);
                k.push(0xFF);
                Bound::Excluded(k)
            }
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        for item in self
            .read()
            .suppressions
            .range::<Vec<u8>, _>((lower, Bound::Excluded(end)))
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if let Some((address, list)) = split_tail(&k[prefix.len()..]) {
                out.push((address, list, decode("suppressions", &v)?));
            }
        }
        Ok(out)
    }

    /// Every entry, in key order: for export and listing across scopes.
    pub fn suppressions_all(
        &self,
    ) -> impl Iterator<Item = Result<(SuppressionKey, Suppression), StoreError>> + '_ {
        self.read().suppressions.iter().filter_map(|item| {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            let key = keys::parse_key(&k)?;
            Some(decode("suppressions", &v).map(|e| (key, e)))
        })
    }

    /// Number of entries in every scope and list.
    pub fn suppression_count(&self) -> usize {
        self.read().suppressions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Reason;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    #[test]
    fn lookup_sees_only_its_scope_and_address() {
        let (_d, s) = store();
        let d = Scope::Domain("example.com".into());
        s.suppression_put(
            &SuppressionKey::new(d.clone(), "a@x.io", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 1),
        )
        .unwrap();
        s.suppression_put(
            &SuppressionKey::new(d.clone(), "a@x.io", List::Bounces),
            &Suppression::new(Reason::HardBounce, 2),
        )
        .unwrap();
        s.suppression_put(
            &SuppressionKey::new(d.clone(), "a@x.iox", List::Bounces),
            &Suppression::new(Reason::HardBounce, 2),
        )
        .unwrap();
        s.suppression_put(
            &SuppressionKey::new(Scope::Global, "b@x.io", List::Bounces),
            &Suppression::new(Reason::HardBounce, 2),
        )
        .unwrap();
        assert_eq!(s.suppressions_of(&d, "a@x.io").unwrap().len(), 2);
        assert!(s
            .suppressions_of(&Scope::Global, "a@x.io")
            .unwrap()
            .is_empty());
        assert!(s
            .suppressions_of(&Scope::Domain("example.org".into()), "a@x.io")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pages_in_address_order_both_ways() {
        let (_d, s) = store();
        let sc = Scope::Domain("d.io".into());
        for a in ["e@x", "a@x", "c@x", "b@x", "d@x"] {
            s.suppression_put(
                &SuppressionKey::new(sc.clone(), a, List::Unsubscribes),
                &Suppression::new(Reason::Unsub, 1),
            )
            .unwrap();
        }
        s.suppression_put(
            &SuppressionKey::new(sc.clone(), "bb@x", List::Bounces),
            &Suppression::new(Reason::HardBounce, 1),
        )
        .unwrap();
        let addrs =
            |v: Vec<(String, Suppression)>| v.into_iter().map(|(a, _)| a).collect::<Vec<_>>();
        let u = List::Unsubscribes;
        assert_eq!(
            addrs(s.suppression_page(&sc, u, Page::First, "", 2).unwrap()),
            ["a@x", "b@x"]
        );
        assert_eq!(
            addrs(
                s.suppression_page(&sc, u, Page::After("b@x"), "", 2)
                    .unwrap()
            ),
            ["c@x", "d@x"]
        );
        assert_eq!(
            addrs(
                s.suppression_page(&sc, u, Page::Before("d@x"), "", 2)
                    .unwrap()
            ),
            ["b@x", "c@x"]
        );
        assert_eq!(
            addrs(s.suppression_page(&sc, u, Page::Last, "", 2).unwrap()),
            ["d@x", "e@x"]
        );
        assert_eq!(
            addrs(s.suppression_page(&sc, u, Page::First, "c", 10).unwrap()),
            ["c@x"]
        );
        assert_eq!(
            addrs(
                s.suppression_page(&sc, List::Bounces, Page::First, "", 10)
                    .unwrap()
            ),
            ["bb@x"]
        );
        assert_eq!(s.suppression_clear(&sc, u).unwrap(), 5);
        assert_eq!(s.suppression_count(), 1);
    }

    impl Store {
        fn may_be_suppressed_in(&self, scope: &Scope, address: &str) -> bool {
            self.index().summary(scope.into(), address).is_some()
        }
    }

    #[test]
    fn index_knows_every_written_scope_and_address_also_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let d = Scope::Domain("d.io".into());
        let sender = Scope::Sender("news@d.io".into());
        // (scope, address) pairs written below; one address in two scopes.
        let written = [
            (Scope::Global, "a@x"),
            (d.clone(), "a@x"),
            (d.clone(), "b@x"),
            (sender.clone(), "c@x"),
        ];
        let check = |s: &Store| {
            for (scope, a) in &written {
                assert!(s.may_be_suppressed_in(scope, a), "{scope} {a}");
            }
            for (scope, a) in [
                (Scope::Global, "b@x"),
                (sender.clone(), "a@x"),
                (d.clone(), "c@x"),
                (Scope::Global, "z@x"),
            ] {
                assert!(!s.may_be_suppressed_in(&scope, a), "{scope} {a}");
            }
        };
        {
            let s = Store::open(&path).unwrap();
            assert!(!s.may_be_suppressed_in(&Scope::Global, "a@x"));
            s.suppression_put(
                &SuppressionKey::new(Scope::Global, "a@x", List::Unsubscribes),
                &Suppression::new(Reason::Unsub, 1),
            )
            .unwrap();
            s.suppression_put_many(&[
                (
                    SuppressionKey::new(d.clone(), "a@x", List::Bounces),
                    Suppression::new(Reason::HardBounce, 1),
                ),
                (
                    SuppressionKey::new(d.clone(), "b@x", List::Complaints),
                    Suppression::new(Reason::Spam, 1),
                ),
            ])
            .unwrap();
            s.apply(&crate::store::Changes {
                puts: vec![(
                    SuppressionKey::new(sender.clone(), "c@x", List::Unsubscribes),
                    Suppression::new(Reason::Unsub, 1),
                )],
                profiles: vec![("id".into(), Some("c@x".into()))],
                ..Default::default()
            })
            .unwrap();
            check(&s);
        }
        check(&Store::open(&path).unwrap());
    }

    #[test]
    fn scope_listing_spans_lists() {
        let (_d, s) = store();
        for (a, r) in [
            ("b@x", Reason::Spam),
            ("a@x", Reason::Unsub),
            ("a@x", Reason::HardBounce),
        ] {
            s.suppression_put(
                &SuppressionKey::new(Scope::Global, a, r.list()),
                &Suppression::new(r, 1),
            )
            .unwrap();
        }
        s.suppression_put(
            &SuppressionKey::new(Scope::Domain("d".into()), "c@x", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 1),
        )
        .unwrap();
        let all = s.suppressions_in_scope(&Scope::Global, None, 10).unwrap();
        assert_eq!(all.len(), 3);
        let after = s
            .suppressions_in_scope(&Scope::Global, Some("a@x"), 10)
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].0, "b@x");
    }

    #[test]
    fn batch_and_iteration_round_trip() {
        let (_d, s) = store();
        let items = vec![
            (
                SuppressionKey::new(Scope::Sender("App@x.io".into()), "a@y", List::Unsubscribes),
                Suppression::new(Reason::Unsub, 5),
            ),
            (
                SuppressionKey::new(Scope::Global, "b@y", List::Complaints),
                Suppression::new(Reason::Spam, 6),
            ),
        ];
        s.suppression_put_many(&items).unwrap();
        let all: Vec<_> = s.suppressions_all().collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert!(all
            .iter()
            .any(|(k, _)| k.scope == Scope::Sender("app@x.io".into())));
    }

    #[test]
    fn tags_and_expiry() {
        let mut e = Suppression::new(Reason::Unsub, 0);
        assert!(e.matches_tags(&[]));
        e.tags = vec!["news".into()];
        assert!(!e.matches_tags(&[]));
        assert!(e.matches_tags(&["NEWS".into()]));
        e.expires_at = Some(10);
        assert!(e.is_expired(10) && !e.is_expired(9));
    }
}
