//! Cursor paging for the operator's views (`/api/suppressions`, `/api/queue`, the admin CLI):
//! every entry in key order across scopes and lists, resumable after any entry, so that a
//! listing or an export of a large store never holds more than one page in memory.
//!
//! The suppression key layout is the one documented in the module docs of [`crate::store`]
//! (`<scope> 0x00 <address> 0x00 <list code>`), written and parsed by `suppressions.rs`.

use std::ops::Bound;

use super::keys::parse_key;
use super::{decode, QueuedMessage, Scope, Store, StoreError, Suppression, SuppressionKey};

/// Which entries a listing covers: all, one scope, one address (in every scope), or one address
/// in one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Filter<'a> {
    scope: Option<&'a Scope>,
    /// A normalised address, matched exactly.
    address: Option<&'a str>,
}

impl Filter<'_> {
    /// The key prefix every matching entry starts with (empty: the whole tree).
    fn prefix(&self) -> Vec<u8> {
        let Some(scope) = self.scope else {
            return Vec::new();
        };
        let mut k = scope.key().into_bytes();
        k.push(0);
        if let Some(address) = self.address {
            k.extend_from_slice(address.as_bytes());
            k.push(0);
        }
        k
    }

    fn matches(&self, key: &SuppressionKey) -> bool {
        self.address.is_none_or(|a| key.address == a)
    }
}

impl Store {
    /// Up to `limit` entries in key order (scope, then address, then list), starting after the
    /// entry `after` when given; only `scope`'s when given, only the (normalised) `address`'s
    /// when given. A filter on the address alone reads the whole tree (there is no index by
    /// address across scopes), so it costs a full scan.
    pub fn suppressions_after(
        &self,
        scope: Option<&Scope>,
        address: Option<&str>,
        after: Option<&SuppressionKey>,
        limit: usize,
    ) -> Result<Vec<(SuppressionKey, Suppression)>, StoreError> {
        let filter = Filter { scope, address };
        let prefix = filter.prefix();
        let lower = match after.map(SuppressionKey::bytes) {
            Some(k) if k >= prefix => Bound::Excluded(k),
            _ => Bound::Included(prefix.clone()),
        };
        let upper = if prefix.is_empty() {
            Bound::Unbounded
        } else {
            // Keys are UTF-8 and NULs, which never contain 0xFF.
            let mut end = prefix.clone();
            end.push(0xFF);
            Bound::Excluded(end)
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in self.read().suppressions.range::<Vec<u8>, _>((lower, upper)) {
            let (k, v) = item?;
            let Some(key) = parse_key(&k) else { continue };
            if !filter.matches(&key) {
                continue;
            }
            out.push((key, decode("suppressions", &v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` queued transactions, oldest first, starting after the queue id `after`.
    pub fn queue_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let lower = match after {
            Some(id) => Bound::Excluded(id.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.read()
            .queue
            .range::<Vec<u8>, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|item| decode("queue", &item?.1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::List;
    use crate::store::MessageBytes;
    use crate::store::Reason;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    fn put(s: &Store, scope: Scope, address: &str, reason: Reason) {
        s.suppression_put(
            &SuppressionKey::new(scope, address, reason.list()),
            &Suppression::new(reason, 1),
        )
        .unwrap();
    }

    fn names(v: &[(SuppressionKey, Suppression)]) -> Vec<String> {
        v.iter()
            .map(|(k, _)| format!("{} {} {:?}", k.scope, k.address, k.list))
            .collect()
    }

    #[test]
    fn key_layout_agrees_with_the_suppressions_tree() {
        let (_d, s) = store();
        let key = SuppressionKey::new(Scope::Sender("app@x.io".into()), "a@y", List::Complaints);
        s.suppression_put(&key, &Suppression::new(Reason::Spam, 1))
            .unwrap();
        let got = s.suppressions_after(None, None, None, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, key);
        // And the cursor written from a key positions exactly after it.
        assert!(s
            .suppressions_after(None, None, Some(&key), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pages_resume_mid_address_across_scopes_and_lists() {
        let (_d, s) = store();
        let d = Scope::Domain("d.io".into());
        put(&s, Scope::Global, "a@x", Reason::Unsub);
        put(&s, Scope::Global, "a@x", Reason::HardBounce);
        put(&s, Scope::Global, "a@x", Reason::Spam);
        put(&s, Scope::Global, "b@x", Reason::Unsub);
        put(&s, d.clone(), "a@x", Reason::Unsub);
        let mut seen = Vec::new();
        let mut after: Option<SuppressionKey> = None;
        loop {
            let page = s.suppressions_after(None, None, after.as_ref(), 2).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|(k, _)| k.clone());
            seen.extend(names(&page));
        }
        assert_eq!(
            seen,
            [
                "domain:d.io a@x Unsubscribes",
                "global a@x Bounces",
                "global a@x Complaints",
                "global a@x Unsubscribes",
                "global b@x Unsubscribes",
            ]
        );
    }

    #[test]
    fn filters_by_scope_address_or_both() {
        let (_d, s) = store();
        let d = Scope::Domain("d.io".into());
        put(&s, Scope::Global, "a@x", Reason::Unsub);
        put(&s, Scope::Global, "a@xx", Reason::Unsub);
        put(&s, Scope::Global, "b@x", Reason::Spam);
        put(&s, d.clone(), "a@x", Reason::HardBounce);
        put(&s, Scope::Domain("d.iox".into()), "z@x", Reason::Unsub);
        let page = |scope: Option<&Scope>, address: Option<&str>| {
            names(&s.suppressions_after(scope, address, None, 100).unwrap())
        };
        assert_eq!(
            page(Some(&d), None),
            ["domain:d.io a@x Bounces"],
            "a scope never spills into one it prefixes"
        );
        assert_eq!(
            page(None, Some("a@x")),
            ["domain:d.io a@x Bounces", "global a@x Unsubscribes"]
        );
        assert_eq!(
            page(Some(&Scope::Global), Some("a@x")),
            ["global a@x Unsubscribes"]
        );
        // A cursor from outside the filtered range starts at the range.
        let before = SuppressionKey::new(Scope::Domain("a".into()), "a@x", List::Bounces);
        let global = Some(&Scope::Global);
        let from_before = s.suppressions_after(global, None, Some(&before), 10);
        assert_eq!(from_before.unwrap().len(), 3);
        assert!(s
            .suppressions_after(global, None, None, 0)
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn queue_pages_oldest_first() {
        let (_d, s) = store();
        for id in ["000000000002AA", "000000000001AA", "000000000003AA"] {
            let m = QueuedMessage {
                id: id.into(),
                sender: String::new(),
                recipients: vec![crate::store::QueuedRecipient {
                    address: "a@x".into(),
                    md_id: format!("{id}.1"),
                }],
                tags: Vec::new(),
                received_at: 0,
                attempts: 0,
                next_attempt_at: 0,
            };
            s.enqueue(&m, MessageBytes::InMemory(b"x".to_vec()), &[])
                .await
                .unwrap();
        }
        let ids = |v: Vec<QueuedMessage>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.queue_page(None, 2).unwrap()),
            ["000000000001AA", "000000000002AA"]
        );
        assert_eq!(
            ids(s.queue_page(Some("000000000002AA"), 2).unwrap()),
            ["000000000003AA"]
        );
    }
}
