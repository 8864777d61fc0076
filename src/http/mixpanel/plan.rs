//! The net effect of a request (or of one import batch) on the store, and how it is written.
//!
//! Records are validated and resolved to addresses first; what they ask for is gathered here,
//! the last word per address and per distinct id winning, so that nothing is written until the
//! whole request is known to be good. A plan is then *decided* against what is stored (reads
//! only) into [`Writes`], which are *applied* separately, so that the import can decide one
//! batch while the previous one is being written ([`InFlight`]).
//!
//! Entries are `global`, list `unsubscribes`, reason `unsub`, tags `*`, never expiring (SPEC §3:
//! manual entries do not expire). Re-subscribing removes only an entry whose reason is `unsub`:
//! a manual reject (`custom`) on the same list, and every bounce or complaint (other lists), stay.
//! For the same reason a suppression never overwrites a `custom` entry: turning it into `unsub`
//! would let a later re-subscribe remove it.

use std::collections::HashMap;

use crate::store::{Changes, List, Reason, Scope, Store, StoreError, Suppression, SuppressionKey};

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

    /// Decides and writes the plan in one go (`/engage`). `now` (Unix seconds) is the
    /// `created_at` of entries without a date.
    pub fn write(self, store: &Store, now: i64) -> Result<Written, StoreError> {
        self.decide(store, now, &mut InFlight::default())?
            .apply(store)
    }

    /// Decides what to write against what is stored — or, for addresses in `inflight`, against
    /// what earlier batches will have written — and records the outcome in `inflight`.
    pub fn decide(
        self,
        store: &Store,
        now: i64,
        inflight: &mut InFlight,
    ) -> Result<Writes, StoreError> {
        let batch = inflight.next;
        inflight.next += 1;
        let mut writes = Writes {
            profiles: self.profiles,
            ..Writes::default()
        };
        for (address, action) in self.actions {
            let state = match inflight.states.get(&address) {
                Some(&(_, state)) => state,
                None => State::of(
                    store.suppression_get(&SuppressionKey::new(
                        Scope::Global,
                        address.as_str(),
                        List::Unsubscribes,
                    ))?,
                    now,
                ),
            };
            let after = match (action, state) {
                (Action::Resubscribe, State::Unsub { .. }) => State::Absent,
                (Action::Resubscribe, _) => {
                    writes.unchanged += 1;
                    continue;
                }
                (Action::Suppress { .. }, State::Manual { live: true })
                | (Action::Suppress { once: true, .. }, State::Unsub { live: true, .. })
                | (
                    Action::Suppress { at: None, .. },
                    State::Unsub {
                        live: true,
                        plain: true,
                        ..
                    },
                ) => {
                    writes.unchanged += 1;
                    continue;
                }
                (Action::Suppress { at, .. }, state) => {
                    let kept = match state {
                        State::Unsub {
                            live: true,
                            created_at,
                            ..
                        } => Some(created_at),
                        _ => None,
                    };
                    State::Unsub {
                        created_at: at.or(kept).unwrap_or(now),
                        plain: true,
                        live: true,
                    }
                }
            };
            let key = SuppressionKey::new(Scope::Global, address.as_str(), List::Unsubscribes);
            match after {
                State::Unsub { created_at, .. } => writes.puts.push((key, entry(created_at))),
                _ => writes.removes.push(key),
            }
            inflight.states.insert(address, (batch, after));
        }
        Ok(writes)
    }
}

/// What is stored for an address in `global`/`unsubscribes`, as far as the decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    /// An `unsub` entry; `plain`: for all tags and never expiring (what this API writes).
    Unsub {
        created_at: i64,
        plain: bool,
        live: bool,
    },
    /// Any other reason (a manual reject): never changed by this API while it is live.
    Manual {
        live: bool,
    },
}

impl State {
    fn of(entry: Option<Suppression>, now: i64) -> State {
        match entry {
            None => State::Absent,
            Some(e) if e.reason == Reason::Unsub => State::Unsub {
                created_at: e.created_at,
                plain: e.expires_at.is_none() && e.is_all_tags(),
                live: !e.is_expired(now),
            },
            Some(e) => State::Manual {
                live: !e.is_expired(now),
            },
        }
    }
}

/// Decisions of batches that may not be written yet. The import decides batch N+1 while batch
/// N is being written; without this, an address in both would be judged against a store that
/// does not show batch N yet (a `false` after a `true` would find nothing to remove).
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Address -> (batch that decided it, its state after that batch).
    states: HashMap<String, (u64, State)>,
    /// The number of the next batch [`Plan::decide`] decides.
    next: u64,
}

impl InFlight {
    /// The number the next decided batch gets (from 0).
    pub fn next_batch(&self) -> u64 {
        self.next
    }

    /// Batch `batch` and every one before it are in the store: forget their decisions.
    pub fn written(&mut self, batch: u64) {
        self.states.retain(|_, (b, _)| *b > batch);
    }
}

/// The writes a plan came to.
#[derive(Debug, Default)]
pub(super) struct Writes {
    puts: Vec<(SuppressionKey, Suppression)>,
    removes: Vec<SuppressionKey>,
    profiles: Vec<(String, Option<String>)>,
    unchanged: usize,
}

impl Writes {
    /// Writes every new or renewed entry, the re-subscribes (each only if the entry is still
    /// `unsub`) and the profile changes in one store transaction: all or nothing.
    pub fn apply(self, store: &Store) -> Result<Written, StoreError> {
        let suppressed = self.puts.len();
        let profiles = self.profiles.len();
        let changes = Changes {
            puts: self.puts,
            removes_if_unsub: self.removes,
            profiles: self.profiles,
        };
        let resubscribed = store.apply(&changes)?;
        Ok(Written {
            suppressed,
            resubscribed,
            unchanged: self.unchanged,
            profiles,
        })
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

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    fn key(a: &str, list: List) -> SuppressionKey {
        SuppressionKey::new(Scope::Global, a, list)
    }

    fn get(s: &Store, a: &str) -> Option<Suppression> {
        s.suppression_get(&key(a, List::Unsubscribes)).unwrap()
    }

    #[test]
    fn last_word_per_address_wins() {
        let (_d, s) = store();
        let mut p = Plan::default();
        p.suppress("a@x".into(), None, false);
        p.resubscribe("a@x".into());
        p.suppress("b@x".into(), Some(5), false);
        p.suppress("b@x".into(), Some(9), true); // set_once after set: no change
        p.resubscribe("c@x".into());
        p.suppress("c@x".into(), None, true); // set_once after unset: sets
        let w = p.write(&s, 100).unwrap();
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
        let (_d, s) = store();
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
        let w = p.write(&s, 100).unwrap();
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
        let (_d, s) = store();
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
        p.write(&s, 100).unwrap();
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
        assert_eq!(p.write(&s, 100).unwrap().unchanged, 1);
        assert_eq!(get(&s, "e@x").unwrap().created_at, 7);
    }

    #[test]
    fn decisions_see_batches_not_written_yet() {
        let (_d, s) = store();
        let mut inflight = InFlight::default();
        let mut first = Plan::default();
        first.suppress("a@x".into(), Some(5), false);
        first.suppress("b@x".into(), None, false);
        let first = first.decide(&s, 100, &mut inflight).unwrap();
        // Decided before the first batch is written: "a" must be found to remove, "b" kept.
        let mut second = Plan::default();
        second.resubscribe("a@x".into());
        second.suppress("b@x".into(), None, true);
        let second = second.decide(&s, 100, &mut inflight).unwrap();
        assert_eq!((second.removes.len(), second.unchanged), (1, 1));
        first.apply(&s).unwrap();
        inflight.written(0);
        second.apply(&s).unwrap();
        inflight.written(1);
        assert!(get(&s, "a@x").is_none());
        assert_eq!(get(&s, "b@x").unwrap().created_at, 100);
        assert!(inflight.states.is_empty());
    }

    #[test]
    fn profiles_last_word_per_id() {
        let (_d, s) = store();
        s.profile_put("u2", "old@x").unwrap();
        let mut p = Plan::default();
        p.profile("u1", Some("a@x".into()));
        p.profile("u1", Some("b@x".into()));
        p.profile("u2", None);
        assert_eq!(p.write(&s, 0).unwrap().profiles, 2);
        assert_eq!(s.profile_get("u1").unwrap().as_deref(), Some("b@x"));
        assert_eq!(s.profile_get("u2").unwrap(), None);
    }
}
