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
        // The recipient's own entries and, if it was erased, its tombstones.
        let tombstone = self
            .index()
            .has_tombstones()
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
                let Some(summary) = self.index().summary(scope, address) else {
                    continue;
                };
                let reason = if summary.needs_tree(query.now, query.tags.is_some()) {
                    self.applying_in_tree(scope, address, query, applies)?
                } else {
                    summary.all_mail_reasons().find(|r| applies(*r))
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
