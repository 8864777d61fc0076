//! The net effect of a request (or of one import batch) on the store, and how it is written.
//!
//! Records are validated and resolved to addresses first; what they ask for is gathered here,
//! the last word per address and per distinct id winning, so that nothing is written until the
//! whole request is known to be good. A plan becomes [`Writes`] (suppression ops whose rules
//! are decided against what is stored at the moment they are applied, atomically), so that
//! the import can prepare one batch while the previous one is being written.
//!
//! Entries are `global`, list `unsubscribes`, reason `unsub`, tags `*`, never expiring (SPEC §3:
//! manual entries do not expire). Re-subscribing removes only an entry whose reason is `unsub`:
//! a manual reject (`custom`) on the same list, and every bounce or complaint (other lists), stay.
//! For the same reason a suppression never overwrites a `custom` entry: turning it into `unsub`
//! would let a later re-subscribe remove it.

use std::collections::HashMap;

use crate::store::{List, Reason, Scope, StoreError, Suppression, SuppressionKey};
use crate::suppression::{Op, Outcome, Rule, Suppressions, When};

/// The `detail` of every entry this API writes, so operators can tell where it came from.
pub(super) const DETAIL: &str = "mixpanel $unsubscribed";

/// What happens to one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Suppress; `at` overrides `created_at`; `once` leaves an existing entry alone.
    Suppress {
        at: Option<i64>,
        once: bool,
    },
    Resubscribe,
}

/// The changes of one request or batch, in first-seen order, one per address and per id.
#[derive(Debug, Default)]
pub(super) struct Plan {
    actions: Vec<(String, Action)>,
    by_address: HashMap<String, usize>,
    profiles: Vec<(String, Option<String>)>,
    by_id: HashMap<String, usize>,
}

/// What writing a plan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    /// Entries written (new, or renewed with a date).
    pub suppressed: usize,
    /// `unsub` entries removed.
    pub resubscribed: usize,
    /// Addresses left as they were: already suppressed, `$set_once` over an entry, a manual
    /// entry that neither a suppression nor a re-subscribe may change, or nothing to remove.
    pub unchanged: usize,
    /// Profile mappings set or forgotten.
    pub profiles: usize,
}

impl Plan {
    /// Suppresses `address` (normalised); `at` becomes `created_at`. With `once`, an address
    /// that is already suppressed keeps its entry (`$set_once`).
    pub fn suppress(&mut self, address: String, at: Option<i64>, once: bool) {
        let new = Action::Suppress { at, once };
        match self.by_address.get(&address) {
            Some(&i) => {
                self.actions[i].1 = match (self.actions[i].1, once) {
                    // `$set_once` after a `$set` in the same request: already set.
                    (earlier @ Action::Suppress { .. }, true) => earlier,
                    // After a re-subscribe nothing is set, so `$set_once` sets.
                    (Action::Resubscribe, true) => Action::Suppress { at, once: false },
                    (_, false) => new,
                };
            }
            None => self.push(address, new),
        }
    }

    /// Re-subscribes `address` (normalised).
    pub fn resubscribe(&mut self, address: String) {
        match self.by_address.get(&address) {
            Some(&i) => self.actions[i].1 = Action::Resubscribe,
            None => self.push(address, Action::Resubscribe),
        }
    }

    /// Maps `distinct_id` to `address`, or forgets it (`None`).
    pub fn profile(&mut self, distinct_id: &str, address: Option<String>) {
        match self.by_id.get(distinct_id) {
            Some(&i) => self.profiles[i].1 = address,
            None => {
                self.by_id
                    .insert(distinct_id.to_string(), self.profiles.len());
                self.profiles.push((distinct_id.to_string(), address));
            }
        }
    }

    fn push(&mut self, address: String, action: Action) {
        self.by_address.insert(address.clone(), self.actions.len());
        self.actions.push((address, action));
    }

    /// Writes the plan in one go (`/engage`), not yet synced. `now` (Unix seconds) is the
    /// `created_at` of entries without a date.
    pub fn write(self, suppressions: &Suppressions, now: i64) -> Result<Written, StoreError> {
        self.into_writes(now).apply(suppressions, now)
    }

    /// The writes the plan asks for. What they do depends on what is stored when they are
    /// applied ([`Rule::Unsubscribed`], [`When::Reason`]), so batches of an import may be
    /// prepared ahead of the one being written.
    pub fn into_writes(self, now: i64) -> Writes {
        let ops = self
            .actions
            .into_iter()
            .map(|(address, action)| {
                let key = SuppressionKey::new(Scope::Global, address, List::Unsubscribes);
                match action {
                    Action::Suppress { at, once } => Op::Add {
                        key,
                        entry: entry(at.unwrap_or(now)),
                        rule: Rule::Unsubscribed {
                            dated: at.is_some(),
                            once,
                        },
                        unless_allowlisted: false,
                    },
                    Action::Resubscribe => Op::Remove {
                        key,
                        when: When::Reason(Reason::Unsub),
                    },
                }
            })
            .collect();
        Writes {
            ops,
            profiles: self.profiles,
        }
    }
}

/// The writes a plan came to.
#[derive(Debug, Default)]
pub(super) struct Writes {
    ops: Vec<Op>,
    profiles: Vec<(String, Option<String>)>,
}

impl Writes {
    /// Writes every entry, the re-subscribes (each only if the entry is still `unsub`) and the
    /// profile changes in one atomic store write, not yet synced.
    pub fn apply(self, suppressions: &Suppressions, now: i64) -> Result<Written, StoreError> {
        let outcomes = suppressions.apply_blocking(&self.ops, &self.profiles, now)?;
        let mut written = Written {
            profiles: self.profiles.len(),
            ..Written::default()
        };
        for outcome in outcomes {
            match outcome {
                Outcome::Written(_) => written.suppressed += 1,
                Outcome::Removed => written.resubscribed += 1,
                _ => written.unchanged += 1,
            }
        }
        Ok(written)
    }
}

/// The entry this API writes.
fn entry(created_at: i64) -> Suppression {
    let mut e = Suppression::new(Reason::Unsub, created_at);
    e.detail = DETAIL.to_string();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store, Suppressions) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s.clone(), Suppressions::new(s))
    }

    fn key(a: &str, list: List) -> SuppressionKey {
        SuppressionKey::new(Scope::Global, a, list)
    }

    fn get(s: &Store, a: &str) -> Option<Suppression> {
        s.suppression_get(&key(a, List::Unsubscribes)).unwrap()
    }

    #[test]
    fn last_word_per_address_wins() {
        let (_d, s, sup) = store();
        let mut p = Plan::default();
        p.suppress("a@x".into(), None, false);
        p.resubscribe("a@x".into());
        p.suppress("b@x".into(), Some(5), false);
        p.suppress("b@x".into(), Some(9), true); // set_once after set: no change
        p.resubscribe("c@x".into());
        p.suppress("c@x".into(), None, true); // set_once after unset: sets
        let w = p.write(&sup, 100).unwrap();
        assert_eq!(w.suppressed, 2);
        assert!(get(&s, "a@x").is_none());
        let b = get(&s, "b@x").unwrap();
        assert_eq!(
            (
                b.reason,
                b.created_at,
                b.expires_at,
                b.tags,
                b.detail.as_str()
            ),
            (Reason::Unsub, 5, None, vec!["*".to_string()], DETAIL)
        );
        assert_eq!(get(&s, "c@x").unwrap().created_at, 100);
    }

    #[test]
    fn resubscribe_removes_only_unsub_entries() {
        let (_d, s, sup) = store();
        s.suppression_put(
            &key("m@x", List::Unsubscribes),
            &Suppression::new(Reason::Custom, 1),
        )
        .unwrap();
        s.suppression_put(
            &key("b@x", List::Bounces),
            &Suppression::new(Reason::HardBounce, 1),
        )
        .unwrap();
        s.suppression_put(
            &key("u@x", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 1),
        )
        .unwrap();
        let mut p = Plan::default();
        for a in ["m@x", "b@x", "u@x", "none@x"] {
            p.resubscribe(a.into());
        }
        let w = p.write(&sup, 100).unwrap();
        assert_eq!((w.resubscribed, w.unchanged), (1, 3));
        assert_eq!(get(&s, "m@x").unwrap().reason, Reason::Custom);
        assert!(s
            .suppression_get(&key("b@x", List::Bounces))
            .unwrap()
            .is_some());
        assert!(get(&s, "u@x").is_none());
    }

    #[test]
    fn suppressing_keeps_manual_entries_and_original_dates() {
        let (_d, s, sup) = store();
        s.suppression_put(
            &key("m@x", List::Unsubscribes),
            &Suppression::new(Reason::Custom, 1),
        )
        .unwrap();
        let mut expiring = Suppression::new(Reason::Unsub, 7);
        expiring.expires_at = Some(1000);
        s.suppression_put(&key("e@x", List::Unsubscribes), &expiring)
            .unwrap();
        let mut old = Suppression::new(Reason::Unsub, 3);
        old.expires_at = Some(50); // expired at now = 100
        s.suppression_put(&key("o@x", List::Unsubscribes), &old)
            .unwrap();
        let mut p = Plan::default();
        for a in ["m@x", "e@x", "o@x"] {
            p.suppress(a.into(), None, false);
        }
        p.write(&sup, 100).unwrap();
        assert_eq!(get(&s, "m@x").unwrap().reason, Reason::Custom);
        let e = get(&s, "e@x").unwrap();
        assert_eq!(
            (e.created_at, e.expires_at),
            (7, None),
            "kept date, no expiry"
        );
        assert_eq!(
            get(&s, "o@x").unwrap().created_at,
            100,
            "expired: new entry"
        );
        // Once over a live entry: untouched, even with a date.
        let mut p = Plan::default();
        p.suppress("e@x".into(), Some(42), true);
        assert_eq!(p.write(&sup, 100).unwrap().unchanged, 1);
        assert_eq!(get(&s, "e@x").unwrap().created_at, 7);
    }

    #[test]
    fn profiles_last_word_per_id() {
        let (_d, s, sup) = store();
        s.profile_put("u2", "old@x").unwrap();
        let mut p = Plan::default();
        p.profile("u1", Some("a@x".into()));
        p.profile("u1", Some("b@x".into()));
        p.profile("u2", None);
        assert_eq!(p.write(&sup, 0).unwrap().profiles, 2);
        assert_eq!(s.profile_get("u1").unwrap().as_deref(), Some("b@x"));
        assert_eq!(s.profile_get("u2").unwrap(), None);
    }
}
