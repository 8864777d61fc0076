//! The suppression decision (SPEC §3), made inside the store where the entries are: may mail
//! from `sender` reach `recipient`?
//!
//! Answered from the in-memory index (one probe per scope that applies to the sender, no
//! allocation for a recipient without entries, see [`super::index`]); sled is read only for
//! what the index cannot decide (an expiry that has come, tag-scoped entries after DATA).
//! Checked at RCPT without tags (entries for all mail, `*`), and after DATA and at every
//! delivery attempt with the message's tags.

use super::entry::{Reason, Scope};
use super::index::ScopeRef;
use super::{Store, StoreError};

/// The outcome for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Suppressed { scope: Scope, reason: Reason },
}

/// What is asked.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Normalised envelope sender; empty for `<>`.
    pub sender: &'a str,
    /// Normalised recipient.
    pub recipient: &'a str,
    /// `None` at RCPT time, when only entries for all mail apply; the message's tags after.
    pub tags: Option<&'a [String]>,
    /// The sender is transactional: `unsub` entries do not apply to its mail.
    pub transactional: bool,
    /// Unix seconds: which entries have expired.
    pub now: i64,
}

impl Store {
    /// The verdict for `query`.
    pub fn verdict(&self, query: &Query<'_>) -> Result<Verdict, StoreError> {
        let sender = query.sender;
        // Until the index has read every entry (a big store, just opened), the tree decides.
        let complete = self.index().is_complete();
        // The recipient's own entries and, if it was erased, its tombstones.
        let tombstone = (!complete || self.index().has_tombstones())
            .then(|| self.tombstone_of(query.recipient));
        let addresses = [Some(query.recipient), tombstone.as_deref()];
        let scopes = [
            Some(ScopeRef::Global),
            sender
                .rsplit_once('@')
                .map(|(_, domain)| ScopeRef::Domain(domain)),
            (!sender.is_empty()).then_some(ScopeRef::Sender(sender)),
        ];
        let applies = |reason: Reason| !(query.transactional && reason == Reason::Unsub);
        for scope in scopes.into_iter().flatten() {
            for address in addresses.into_iter().flatten() {
                let reason = if !complete {
                    self.applying_in_tree(scope, address, query, applies)?
                } else if let Some(summary) = self.index().summary(scope, address) {
                    if summary.needs_tree(query.now, query.tags.is_some()) {
                        self.applying_in_tree(scope, address, query, applies)?
                    } else {
                        summary.all_mail_reasons().find(|r| applies(*r))
                    }
                } else {
                    continue;
                };
                if let Some(reason) = reason {
                    // Asked only now: most checks find no applying entry.
                    if self.index().is_allowlisted(query.recipient) {
                        return Ok(Verdict::Allow);
                    }
                    return Ok(Verdict::Suppressed {
                        scope: scope.to_scope(),
                        reason,
                    });
                }
            }
        }
        Ok(Verdict::Allow)
    }

    /// The reason of the first entry in the tree for `address` in `scope` that applies.
    fn applying_in_tree(
        &self,
        scope: ScopeRef<'_>,
        address: &str,
        query: &Query<'_>,
        applies: impl Fn(Reason) -> bool,
    ) -> Result<Option<Reason>, StoreError> {
        let entries = self.suppressions_of(&scope.to_scope(), address)?;
        Ok(entries.into_iter().find_map(|(_, entry)| {
            let matches = match query.tags {
                None => entry.is_all_tags(),
                Some(tags) => entry.matches_tags(tags),
            };
            (matches && !entry.is_expired(query.now) && applies(entry.reason))
                .then_some(entry.reason)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Suppression, SuppressionKey};

    fn ask<'a>(sender: &'a str, recipient: &'a str, tags: Option<&'a [String]>) -> Query<'a> {
        Query {
            sender,
            recipient,
            tags,
            transactional: false,
            now: 100,
        }
    }

    /// What the tree says, the reference the index must agree with.
    fn cases(store: &Store) -> Vec<Verdict> {
        let tags = ["news".to_string()];
        [
            ask("a@shop.io", "g@x.io", None),
            ask("a@shop.io", "d@x.io", None),
            ask("a@other.io", "d@x.io", None),
            ask("a@shop.io", "s@x.io", None),
            ask("b@shop.io", "s@x.io", None),
            ask("a@shop.io", "t@x.io", None),
            ask("a@shop.io", "t@x.io", Some(&tags)),
            ask("a@shop.io", "old@x.io", None),
            ask("a@shop.io", "w@x.io", None),
            ask("a@shop.io", "gone@x.io", None),
        ]
        .iter()
        .map(|q| store.verdict(q).unwrap())
        .collect()
    }

    #[test]
    fn a_store_still_reading_its_index_decides_from_the_tree_and_the_same_way_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let put = |s: &Store, scope: Scope, a: &str, e: Suppression| {
            s.suppression_put(&SuppressionKey::new(scope, a, e.reason.list()), &e)
                .unwrap();
        };
        let expected;
        {
            let s = Store::open(&path).unwrap();
            put(
                &s,
                Scope::Global,
                "g@x.io",
                Suppression::new(Reason::HardBounce, 1),
            );
            put(
                &s,
                Scope::Domain("shop.io".into()),
                "d@x.io",
                Suppression::new(Reason::Unsub, 1),
            );
            put(
                &s,
                Scope::Sender("a@shop.io".into()),
                "s@x.io",
                Suppression::new(Reason::Spam, 1),
            );
            let mut tagged = Suppression::new(Reason::Unsub, 1);
            tagged.tags = vec!["news".into()];
            put(&s, Scope::Global, "t@x.io", tagged);
            let mut expired = Suppression::new(Reason::Unsub, 1);
            expired.expires_at = Some(50);
            put(&s, Scope::Global, "old@x.io", expired);
            put(
                &s,
                Scope::Global,
                "w@x.io",
                Suppression::new(Reason::Custom, 1),
            );
            s.allowlist_put(
                "w@x.io",
                &crate::store::AllowEntry {
                    detail: String::new(),
                    created_at: 1,
                },
            )
            .unwrap();
            let tombstone = s.tombstone_of("gone@x.io");
            put(
                &s,
                Scope::Global,
                &tombstone,
                Suppression::new(Reason::Unsub, 1),
            );
            expected = cases(&s);
            assert!(s.index().is_complete());
        }
        let s = Store::open_unindexed(&path, crate::store::DEFAULT_CACHE_SIZE).unwrap();
        assert!(!s.index().is_complete());
        assert_eq!(cases(&s), expected, "decided from the tree");
        assert!(matches!(expected[0], Verdict::Suppressed { .. }));
        assert_eq!(expected[8], Verdict::Allow, "allowlisted");
        assert!(
            matches!(expected[9], Verdict::Suppressed { .. }),
            "tombstone"
        );

        // Read in two entries at a time, with writes on both sides of the reading position.
        let tree = s.read().suppressions.clone();
        let mut after = s.index().build_chunk(&tree, None, 2).unwrap();
        s.suppression_remove(&SuppressionKey::new(Scope::Global, "g@x.io", List::Bounces))
            .unwrap();
        put(
            &s,
            Scope::Global,
            "late@x.io",
            Suppression::new(Reason::Unsub, 1),
        );
        while let Some(k) = after {
            after = s.index().build_chunk(&tree, Some(&k), 2).unwrap();
        }
        assert!(s.index().is_complete());
        let mut now_expected = expected.clone();
        now_expected[0] = Verdict::Allow;
        assert_eq!(cases(&s), now_expected, "decided from the index");
        assert!(matches!(
            s.verdict(&ask("a@shop.io", "late@x.io", None)).unwrap(),
            Verdict::Suppressed { .. }
        ));
    }
}
