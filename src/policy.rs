//! The suppression decision (SPEC §3) with the `[suppression]` rules: which senders are
//! transactional. The decision itself is the store's ([`Store::verdict`]).
//!
//! Checked at RCPT without tags (entries for all mail, `*`), and again after DATA and at every
//! delivery attempt with the message's tags for entries that name tags.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::SuppressionConfig;
use crate::id::now_secs;
pub use crate::store::{Query, Verdict};
use crate::store::{Store, StoreError};

/// Where decisions come from: the store, or whatever answers like it — a test's failing
/// store, the PostgreSQL node's replica (SPEC §10). The one seam between deciding and storing.
pub trait Verdicts: Send + Sync + std::fmt::Debug {
    fn verdict(&self, query: &Query<'_>) -> Result<Verdict, StoreError>;
}

impl Verdicts for Store {
    fn verdict(&self, query: &Query<'_>) -> Result<Verdict, StoreError> {
        Store::verdict(self, query)
    }
}

/// Reads the store with the `[suppression]` rules.
#[derive(Clone, Debug)]
pub struct Policy {
    source: Arc<dyn Verdicts>,
    /// `suppression.transactional_senders`, normalised.
    transactional: Arc<HashSet<String>>,
}

impl Policy {
    pub fn new(store: Store, config: SuppressionConfig) -> Policy {
        Policy::with_source(Arc::new(store), config)
    }

    /// A policy deciding from `source`.
    pub fn with_source(source: Arc<dyn Verdicts>, config: SuppressionConfig) -> Policy {
        Policy {
            source,
            transactional: Arc::new(
                config
                    .transactional_senders
                    .iter()
                    .map(|s| s.trim().to_lowercase())
                    .collect(),
            ),
        }
    }

    /// The verdict for normalised `sender` (empty for `<>`) and `recipient`. `tags` is `None` at
    /// RCPT time, when only entries for all mail apply, and the message's tags after DATA.
    pub fn check(
        &self,
        sender: &str,
        recipient: &str,
        tags: Option<&[String]>,
    ) -> Result<Verdict, StoreError> {
        self.source.verdict(&Query {
            sender,
            recipient,
            tags,
            transactional: !sender.is_empty() && self.transactional.contains(sender),
            now: now_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::domain_of;
    use crate::config::Config;
    use crate::store::{AllowEntry, Reason, Scope, Suppression, SuppressionKey};

    fn setup(transactional: &[&str]) -> (tempfile::TempDir, Store, Policy) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut cfg = Config::default().suppression;
        cfg.transactional_senders = transactional.iter().map(|s| s.to_string()).collect();
        let policy = Policy::new(store.clone(), cfg);
        (dir, store, policy)
    }

    fn put(store: &Store, scope: Scope, rcpt: &str, e: Suppression) {
        store
            .suppression_put(&SuppressionKey::new(scope, rcpt, e.reason.list()), &e)
            .unwrap();
    }

    #[test]
    fn scopes_apply_to_the_right_senders() {
        let (_d, store, p) = setup(&[]);
        put(
            &store,
            Scope::Sender("news@a.io".into()),
            "r1@x.io",
            Suppression::new(Reason::Unsub, 0),
        );
        put(
            &store,
            Scope::Domain("b.io".into()),
            "r2@x.io",
            Suppression::new(Reason::Unsub, 0),
        );
        put(
            &store,
            Scope::Global,
            "r3@x.io",
            Suppression::new(Reason::HardBounce, 0),
        );
        assert!(matches!(
            p.check("news@a.io", "r1@x.io", None).unwrap(),
            Verdict::Suppressed { .. }
        ));
        assert_eq!(
            p.check("other@a.io", "r1@x.io", None).unwrap(),
            Verdict::Allow
        );
        assert!(matches!(
            p.check("any@b.io", "r2@x.io", None).unwrap(),
            Verdict::Suppressed { .. }
        ));
        assert_eq!(
            p.check("any@a.io", "r2@x.io", None).unwrap(),
            Verdict::Allow
        );
        assert!(matches!(
            p.check("", "r3@x.io", None).unwrap(),
            Verdict::Suppressed { .. }
        ));
    }

    #[test]
    fn every_scope_and_tombstone_counts_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let domain = Scope::Domain("b.io".into());
        {
            let store = Store::open(&path).unwrap();
            // A global entry that does not apply at RCPT time, so the domain's must be read.
            let mut tagged = Suppression::new(Reason::Unsub, 0);
            tagged.tags = vec!["news".into()];
            put(&store, Scope::Global, "r@x.io", tagged);
            put(
                &store,
                domain.clone(),
                "r@x.io",
                Suppression::new(Reason::Unsub, 0),
            );
            put(
                &store,
                Scope::Sender("app@c.io".into()),
                "r@x.io",
                Suppression::new(Reason::Spam, 0),
            );
            // An erased person, suppressed through their tombstone only.
            put(
                &store,
                domain.clone(),
                "gone@x.io",
                Suppression::new(Reason::Unsub, 0),
            );
            let erased = store
                .erase(&["gone@x.io".to_string()].into(), &Default::default())
                .unwrap();
            assert_eq!(erased.suppressions, 1);
        }
        let store = Store::open(&path).unwrap();
        let p = Policy::new(store, Config::default().suppression);
        assert_eq!(
            p.check("any@b.io", "r@x.io", None).unwrap(),
            Verdict::Suppressed {
                scope: domain.clone(),
                reason: Reason::Unsub
            }
        );
        assert_eq!(
            p.check("app@c.io", "r@x.io", None).unwrap(),
            Verdict::Suppressed {
                scope: Scope::Sender("app@c.io".into()),
                reason: Reason::Spam
            }
        );
        assert!(matches!(
            p.check("other@c.io", "r@x.io", Some(&["news".into()]))
                .unwrap(),
            Verdict::Suppressed {
                scope: Scope::Global,
                ..
            }
        ));
        assert_eq!(
            p.check("other@c.io", "r@x.io", None).unwrap(),
            Verdict::Allow
        );
        assert_eq!(
            p.check("any@b.io", "gone@x.io", None).unwrap(),
            Verdict::Suppressed {
                scope: domain,
                reason: Reason::Unsub
            }
        );
        assert_eq!(
            p.check("any@c.io", "gone@x.io", None).unwrap(),
            Verdict::Allow
        );
    }

    #[test]
    fn tags_expiry_allowlist_and_transactional() {
        let (_d, store, p) = setup(&["receipts@a.io"]);
        let mut tagged = Suppression::new(Reason::Unsub, 0);
        tagged.tags = vec!["news".into()];
        put(&store, Scope::Global, "t@x.io", tagged);
        assert_eq!(p.check("s@a.io", "t@x.io", None).unwrap(), Verdict::Allow);
        assert!(matches!(
            p.check("s@a.io", "t@x.io", Some(&["news".into()])).unwrap(),
            Verdict::Suppressed { .. }
        ));
        assert_eq!(
            p.check("s@a.io", "t@x.io", Some(&["billing".into()]))
                .unwrap(),
            Verdict::Allow
        );

        let mut expired = Suppression::new(Reason::SoftBounce, 0);
        expired.expires_at = Some(1);
        put(&store, Scope::Global, "e@x.io", expired);
        assert_eq!(p.check("s@a.io", "e@x.io", None).unwrap(), Verdict::Allow);

        put(
            &store,
            Scope::Global,
            "u@x.io",
            Suppression::new(Reason::Unsub, 0),
        );
        put(
            &store,
            Scope::Global,
            "b@x.io",
            Suppression::new(Reason::HardBounce, 0),
        );
        assert_eq!(
            p.check("receipts@a.io", "u@x.io", None).unwrap(),
            Verdict::Allow
        );
        assert!(matches!(
            p.check("receipts@a.io", "b@x.io", None).unwrap(),
            Verdict::Suppressed { .. }
        ));

        store
            .allowlist_put(
                "b@x.io",
                &AllowEntry {
                    detail: String::new(),
                    created_at: 0,
                },
            )
            .unwrap();
        assert_eq!(p.check("s@a.io", "b@x.io", None).unwrap(), Verdict::Allow);
    }

    /// The decision as the tree alone gives it: every scope scanned, nothing from memory.
    fn reference(
        store: &Store,
        transactional: &[&str],
        sender: &str,
        recipient: &str,
        tags: Option<&[String]>,
    ) -> Verdict {
        let tx = transactional.contains(&sender);
        let mut scopes = vec![Scope::Global];
        if let Some(d) = domain_of(sender) {
            scopes.push(Scope::Domain(d.into()));
        }
        if !sender.is_empty() {
            scopes.push(Scope::Sender(sender.into()));
        }
        let now = now_secs();
        for scope in scopes {
            for address in [recipient.to_string(), store.tombstone_of(recipient)] {
                for (_, e) in store.suppressions_of(&scope, &address).unwrap() {
                    let matches = match tags {
                        None => e.is_all_tags(),
                        Some(t) => e.matches_tags(t),
                    };
                    if matches && !e.is_expired(now) && !(tx && e.reason == Reason::Unsub) {
                        if store.is_allowlisted(recipient).unwrap() {
                            return Verdict::Allow;
                        }
                        return Verdict::Suppressed {
                            scope,
                            reason: e.reason,
                        };
                    }
                }
            }
        }
        Verdict::Allow
    }

    #[test]
    fn the_index_decides_as_the_tree_does_after_any_sequence_of_writes() {
        use crate::store::{Changes, List};
        use rand::{Rng, SeedableRng};
        use std::collections::HashSet;

        let transactional = ["tx@a.io"];
        let (dir, mut store, mut p) = setup(&transactional);
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
        let addresses = ["a@x.io", "b@x.io", "c@x.io"];
        let scopes = [
            Scope::Global,
            Scope::Domain("a.io".into()),
            Scope::Domain("b.io".into()),
            Scope::Sender("s@a.io".into()),
            Scope::Sender("tx@a.io".into()),
        ];
        let lists = [List::Unsubscribes, List::Bounces, List::Complaints];
        let reasons = [
            Reason::Unsub,
            Reason::HardBounce,
            Reason::SoftBounce,
            Reason::Spam,
            Reason::Custom,
        ];
        let senders = ["s@a.io", "tx@a.io", "o@b.io", ""];
        let tag_sets: [Option<Vec<String>>; 3] =
            [None, Some(vec!["news".into()]), Some(vec!["other".into()])];
        for step in 0..1500 {
            let mut key = || {
                SuppressionKey::new(
                    scopes[rng.random_range(0..scopes.len())].clone(),
                    addresses[rng.random_range(0..addresses.len())],
                    lists[rng.random_range(0..lists.len())],
                )
            };
            let k1 = key();
            let k2 = key();
            let mut entry = Suppression::new(reasons[rng.random_range(0..reasons.len())], 1);
            if rng.random_bool(0.3) {
                entry.tags = vec!["news".into()];
            }
            entry.expires_at = match rng.random_range(0..4) {
                0 => Some(now_secs() - 1000),
                1 => Some(now_secs() + 1000),
                _ => None,
            };
            match rng.random_range(0..10) {
                0..=2 => store.suppression_put(&k1, &entry).unwrap(),
                3 => store
                    .suppression_put_many(&[(k1, entry.clone()), (k2, entry)])
                    .unwrap(),
                4 => {
                    store.suppression_remove(&k1).unwrap();
                }
                5 => {
                    store.suppression_clear(&k1.scope, k1.list).unwrap();
                }
                6 => {
                    let changes = Changes {
                        puts: vec![(k1, entry)],
                        removes_if_unsub: vec![k2],
                        profiles: Vec::new(),
                    };
                    store.apply(&changes).unwrap();
                }
                7 if step % 10 == 0 => {
                    let erased: HashSet<String> = [k1.address].into();
                    store.erase(&erased, &HashSet::new()).unwrap();
                }
                8 => {
                    if rng.random_bool(0.5) {
                        let allow = AllowEntry {
                            detail: String::new(),
                            created_at: 0,
                        };
                        store.allowlist_put(&k1.address, &allow).unwrap();
                    } else {
                        store.allowlist_remove(&k1.address).unwrap();
                    }
                }
                9 if step % 50 == 0 => {
                    // Reopen: the index is rebuilt from the tree.
                    drop(p);
                    drop(store);
                    store = Store::open(&dir.path().join("db")).unwrap();
                    let mut cfg = Config::default().suppression;
                    cfg.transactional_senders =
                        transactional.iter().map(|s| s.to_string()).collect();
                    p = Policy::new(store.clone(), cfg);
                }
                _ => {}
            }
            for sender in senders {
                for rcpt in addresses {
                    for tags in &tag_sets {
                        let tags = tags.as_deref();
                        assert_eq!(
                            p.check(sender, rcpt, tags).unwrap(),
                            reference(&store, &transactional, sender, rcpt, tags),
                            "step {step}: {sender} -> {rcpt} tags {tags:?}"
                        );
                    }
                }
            }
        }
    }
}
