//! How a write combines with what an address already has: every merge rule of quell, in one
//! place. The APIs, the landing page and bounces only say which rule a write follows; the
//! store runs the rule against the stored entry at the moment of writing, under its writer
//! lock ([`crate::store::Store::update`]), so concurrent writers never lose an update.

use crate::store::{Current, Reason, StoreError, Suppression, SuppressionKey, Update};

/// How an added entry combines with the live entry its key already holds. An expired entry
/// counts as none: the new one replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The new entry replaces the stored one: Mailgun's update of a bounce or complaint, the
    /// admin API, Mandrill's manual reject.
    Replace,
    /// The new entry replaces the stored one, but the tags accumulate: Mailgun's repeated
    /// unsubscribe of an address for more tags.
    AddTags,
    /// The entry is never weakened: a click or a bounce keeps the earlier creation time and
    /// message, the stronger reason ([`strength`]), the wider tags (all mail wins, tag lists
    /// add up) and the later expiry (never expiring wins).
    Strengthen,
    /// Mixpanel's `$unsubscribed`: a live entry of another reason (a manual reject) is left
    /// alone, so that a later re-subscribe cannot lift it; a live `unsub` entry is kept when
    /// this is `$set_once` (`once`) or when it already is for all mail, never expiring and no
    /// date is given (`dated`). Otherwise the entry is written, keeping the live entry's
    /// creation time unless a date is given.
    Unsubscribed { dated: bool, once: bool },
}

/// When a removal applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only an entry of this reason (a re-subscribe lifts `unsub`, never a bounce or a manual
    /// reject).
    Reason(Reason),
    /// Only an `unsub` entry that this message's click made (a link never lifts an
    /// unsubscribe made through the APIs).
    ClickOf(String),
}

/// One write to one key.
#[derive(Debug, Clone)]
pub enum Op {
    /// Add `entry` by `rule`; `unless_allowlisted`: not for an allowlisted address (Mandrill's
    /// rule for manual rejects and bounces).
    Add {
        key: SuppressionKey,
        entry: Suppression,
        rule: Rule,
        unless_allowlisted: bool,
    },
    Remove {
        key: SuppressionKey,
        when: When,
    },
    /// Removes one tag from a live entry; the entry goes with its last tag.
    RemoveTag {
        key: SuppressionKey,
        tag: String,
    },
}

impl Op {
    pub fn key(&self) -> &SuppressionKey {
        match self {
            Op::Add { key, .. } | Op::Remove { key, .. } | Op::RemoveTag { key, .. } => key,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key now holds this entry.
    Written(Suppression),
    /// An add that changed nothing (the stored entry already said as much, or its rule keeps
    /// it).
    Unchanged,
    /// An add refused because the address is allowlisted.
    Allowlisted,
    Removed,
    /// A removal that found no (live) entry, or one its condition keeps.
    Absent,
    /// A tag removal of a tag the live entry does not have.
    NoSuchTag,
}

/// How strongly a reason suppresses, for [`Rule::Strengthen`]: a manual entry outranks
/// everything, a hard bounce a soft one, a complaint an unsubscribe.
pub fn strength(reason: Reason) -> u8 {
    match reason {
        Reason::Unsub | Reason::SoftBounce => 1,
        Reason::HardBounce | Reason::Spam => 2,
        Reason::Custom => 3,
    }
}

/// Decides `op` against what its key holds at `now`.
pub fn decide(op: &Op, current: Current<'_>, now: i64) -> Result<(Update, Outcome), StoreError> {
    let live = current.entry.filter(|e| !e.is_expired(now));
    Ok(match op {
        Op::Add {
            entry,
            rule,
            unless_allowlisted,
            ..
        } => {
            if *unless_allowlisted && current.allowlisted()? {
                return Ok((Update::Keep, Outcome::Allowlisted));
            }
            match merge(live, entry.clone(), *rule) {
                Some(e) if Some(&e) != current.entry => {
                    (Update::Put(e.clone()), Outcome::Written(e))
                }
                _ => (Update::Keep, Outcome::Unchanged),
            }
        }
        Op::Remove { when, .. } => {
            let applies = current.entry.is_some_and(|e| match when {
                When::Always => true,
                When::Reason(r) => e.reason == *r,
                When::ClickOf(md_id) => {
                    e.reason == Reason::Unsub && e.md_id.as_deref() == Some(md_id.as_str())
                }
            });
            if applies {
                (Update::Remove, Outcome::Removed)
            } else {
                (Update::Keep, Outcome::Absent)
            }
        }
        Op::RemoveTag { tag, .. } => match live {
            None => (Update::Keep, Outcome::Absent),
            Some(e) if !e.tags.contains(tag) => (Update::Keep, Outcome::NoSuchTag),
            Some(e) => {
                let mut e = e.clone();
                e.tags.retain(|t| t != tag);
                if e.tags.is_empty() {
                    (Update::Remove, Outcome::Removed)
                } else {
                    (Update::Put(e.clone()), Outcome::Written(e))
                }
            }
        },
    })
}

/// The entry `rule` makes of the live `existing` and `fresh`; `None`: keep what is stored.
fn merge(
    existing: Option<&Suppression>,
    mut fresh: Suppression,
    rule: Rule,
) -> Option<Suppression> {
    let Some(existing) = existing else {
        return Some(fresh);
    };
    match rule {
        Rule::Replace => Some(fresh),
        Rule::AddTags => {
            let mut tags = existing.tags.clone();
            add_tags(&mut tags, std::mem::take(&mut fresh.tags));
            fresh.tags = tags;
            Some(fresh)
        }
        Rule::Strengthen => {
            let mut e = existing.clone();
            if strength(fresh.reason) > strength(e.reason) {
                e.reason = fresh.reason;
                e.detail = std::mem::take(&mut fresh.detail);
                e.code = fresh.code;
            }
            if fresh.is_all_tags() || e.is_all_tags() {
                e.tags = vec!["*".to_string()];
            } else {
                add_tags(&mut e.tags, fresh.tags);
            }
            e.created_at = e.created_at.min(fresh.created_at);
            e.expires_at = match (e.expires_at, fresh.expires_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            e.md_id = e.md_id.or(fresh.md_id);
            Some(e)
        }
        Rule::Unsubscribed { dated, once } => {
            if existing.reason != Reason::Unsub {
                return None;
            }
            let plain = existing.expires_at.is_none() && existing.is_all_tags();
            if once || (plain && !dated) {
                return None;
            }
            if !dated {
                fresh.created_at = existing.created_at;
            }
            Some(fresh)
        }
    }
}

/// Adds the tags of `more` that `tags` lacks (case-insensitively), in order.
fn add_tags(tags: &mut Vec<String>, more: Vec<String>) {
    for tag in more {
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            tags.push(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(reason: Reason, created_at: i64, tags: &[&str]) -> Suppression {
        let mut e = Suppression::new(reason, created_at);
        e.tags = tags.iter().map(|t| t.to_string()).collect();
        e
    }

    #[test]
    fn add_tags_accumulates_and_takes_the_rest_from_the_new_entry() {
        let m = merge(
            Some(&tagged(Reason::Unsub, 1, &["x"])),
            tagged(Reason::Unsub, 2, &["y", "x"]),
            Rule::AddTags,
        )
        .unwrap();
        assert_eq!((m.tags, m.created_at), (vec!["x".into(), "y".into()], 2));
    }

    #[test]
    fn strengthen_never_weakens() {
        let mut old = tagged(Reason::Custom, 5, &["a"]);
        old.expires_at = Some(100);
        old.md_id = Some("m1".into());
        let mut click = tagged(Reason::Unsub, 9, &["b"]);
        click.expires_at = Some(50);
        click.md_id = Some("m2".into());
        let m = merge(Some(&old), click.clone(), Rule::Strengthen).unwrap();
        assert_eq!(m.reason, Reason::Custom);
        assert_eq!(m.tags, ["a", "b"]);
        assert_eq!((m.created_at, m.expires_at), (5, Some(100)));
        assert_eq!(m.md_id.as_deref(), Some("m1"));
        click.tags = vec!["*".into()];
        click.expires_at = None;
        let m = merge(Some(&old), click, Rule::Strengthen).unwrap();
        assert_eq!((m.tags, m.expires_at), (vec!["*".to_string()], None));
        let soft = tagged(Reason::SoftBounce, 1, &["*"]);
        let m = merge(
            Some(&soft),
            tagged(Reason::HardBounce, 2, &["*"]),
            Rule::Strengthen,
        );
        assert_eq!(m.unwrap().reason, Reason::HardBounce);
    }

    #[test]
    fn unsubscribed_leaves_manual_and_plain_entries_alone() {
        let manual = Suppression::new(Reason::Custom, 1);
        let fresh = Suppression::new(Reason::Unsub, 9);
        let rule = |dated, once| Rule::Unsubscribed { dated, once };
        assert_eq!(merge(Some(&manual), fresh.clone(), rule(true, false)), None);
        let plain = Suppression::new(Reason::Unsub, 1);
        assert_eq!(merge(Some(&plain), fresh.clone(), rule(false, false)), None);
        assert_eq!(merge(Some(&plain), fresh.clone(), rule(true, true)), None);
        assert_eq!(
            merge(Some(&plain), fresh.clone(), rule(true, false)).map(|e| e.created_at),
            Some(9)
        );
        let mut expiring = Suppression::new(Reason::Unsub, 1);
        expiring.expires_at = Some(i64::MAX);
        assert_eq!(
            merge(Some(&expiring), fresh, rule(false, false)).map(|e| (e.created_at, e.expires_at)),
            Some((1, None))
        );
    }

    #[test]
    fn strength_orders_reasons() {
        assert!(strength(Reason::Custom) > strength(Reason::HardBounce));
        assert!(strength(Reason::HardBounce) > strength(Reason::SoftBounce));
        assert!(strength(Reason::Spam) > strength(Reason::Unsub));
    }
}
