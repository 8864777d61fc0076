//! The suppression decision (SPEC §3): may mail from `sender` reach `recipient`?
//!
//! Checked at RCPT without tags (entries for all mail, `*`), and again after DATA with the
//! message's tags for entries that name tags.

use std::sync::Arc;

use crate::address::domain_of;
use crate::config::SuppressionConfig;
use crate::id::now_secs;
use crate::store::{Reason, Scope, Store, StoreError};

/// The outcome for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Suppressed { scope: Scope, reason: Reason },
}

/// Reads the store with the `[suppression]` rules.
#[derive(Clone, Debug)]
pub struct Policy {
    store: Store,
    config: Arc<SuppressionConfig>,
}

impl Policy {
    pub fn new(store: Store, config: SuppressionConfig) -> Policy {
        Policy {
            store,
            config: Arc::new(config),
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
        // The recipient's own entries and, if it was erased, its tombstones. Empty for most
        // recipients, answered from memory: they end here.
        let addresses = self.store.suppression_addresses(recipient);
        if addresses.is_empty() {
            return Ok(Verdict::Allow);
        }
        let transactional = !sender.is_empty()
            && self
                .config
                .transactional_senders
                .iter()
                .any(|s| s == sender);
        let now = now_secs();
        let mut scopes = vec![Scope::Global];
        if !sender.is_empty() {
            if let Some(domain) = domain_of(sender) {
                scopes.push(Scope::Domain(domain.to_string()));
            }
            scopes.push(Scope::Sender(sender.to_string()));
        }
        for scope in scopes {
            // The in-memory index rules out most (scope, address) pairs without reading sled:
            // a suppressed recipient normally costs one scan, in the scope of its entry.
            let mut entries = Vec::new();
            for a in &addresses {
                if self.store.may_be_suppressed_in(&scope, a) {
                    entries.extend(self.store.suppressions_of(&scope, a)?);
                }
            }
            for (_, entry) in entries {
                if entry.is_expired(now) || (transactional && entry.reason == Reason::Unsub) {
                    continue;
                }
                let applies = match tags {
                    None => entry.is_all_tags(),
                    Some(tags) => entry.matches_tags(tags),
                };
                if applies {
                    // Read only now: most checks find no applying entry and need no allowlist.
                    if self.store.is_allowlisted(recipient)? {
                        return Ok(Verdict::Allow);
                    }
                    return Ok(Verdict::Suppressed {
                        scope,
                        reason: entry.reason,
                    });
                }
            }
        }
        Ok(Verdict::Allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{AllowEntry, Suppression, SuppressionKey};

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
}
