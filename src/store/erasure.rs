//! Erasure of people (GDPR/CCPA): their suppression entries become tombstones, and their
//! allowlist entries, profiles, message records and queued copies go. What sled keeps of the
//! removed data in its files goes at the next [`Store::vacuum`].

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::keys::parse_key;
use super::{decode, encode, QueuedMessage, Store, StoreError, Suppression, SuppressionKey};

/// What an erasure removed, by kind (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// Suppression entries turned into tombstones.
    pub suppressions: usize,
    pub allowlist: usize,
    pub profiles: usize,
    pub messages: usize,
    /// Recipients taken off queued messages.
    pub queued: usize,
}

impl Store {
    /// The tombstone address (`#` and 32 hex digits) of the normalised `address`.
    pub fn tombstone_of(&self, address: &str) -> String {
        self.shared.tombstones.hash(address)
    }

    /// Erases the normalised `addresses` and the profiles of `distinct_ids` (and every other
    /// profile of those addresses). Reads every suppression entry and message record: there is
    /// no index by recipient across scopes. Queued copies are the caller's, through
    /// [`Store::queue_drop_recipients`] under the scheduler's claim.
    pub fn erase(
        &self,
        addresses: &HashSet<String>,
        distinct_ids: &HashSet<String>,
    ) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        let mut ids = distinct_ids.clone();
        for address in addresses {
            ids.extend(self.profiles_of_address(address)?);
        }
        let t = self.write();
        // Held from the scan on, so no suppression write between the scan and the batch is lost.
        let mut index = self.index().writer();

        // Tombstone and removal in one batch: the person is suppressed at every moment.
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        let mut tombstones = Vec::new();
        for item in t.suppressions.iter() {
            let (k, v) = item?;
            let Some(key) = parse_key(&k) else { continue };
            if !addresses.contains(&key.address) {
                continue;
            }
            let entry: Suppression = decode("suppressions", &v)?;
            let tombstone_key =
                SuppressionKey::new(key.scope.clone(), self.tombstone_of(&key.address), key.list);
            let tombstone = scrubbed(entry);
            batch.remove(k);
            batch.insert(tombstone_key.bytes(), encode(&tombstone));
            tombstones.push((tombstone_key, tombstone));
            removed.push(key);
            erased.suppressions += 1;
        }
        t.suppressions.apply_batch(batch)?;
        for key in &removed {
            index.remove(key);
        }
        for (key, entry) in &tombstones {
            index.put(key, entry);
        }
        for address in addresses {
            if t.allowlist.remove(address.as_bytes())?.is_some() {
                erased.allowlist += 1;
            }
            index.disallow(address);
        }
        drop(index);

        for id in &ids {
            if let Some(address) = t.profiles.remove(id.as_bytes())? {
                let address = String::from_utf8_lossy(&address).into_owned();
                t.profiles_by_address
                    .remove(super::profiles::reverse_key(&address, id))?;
                erased.profiles += 1;
            }
        }

        let mut batch = sled::Batch::default();
        for item in t.messages.iter() {
            let (k, v) = item?;
            let record: super::MessageRecord = decode("messages", &v)?;
            if addresses.contains(&record.recipient) {
                batch.remove(k);
                erased.messages += 1;
            }
        }
        t.messages.apply_batch(batch)?;
        Ok(erased)
    }

    /// Queue ids of the messages with one of `addresses` still to deliver.
    pub fn queued_for(&self, addresses: &HashSet<String>) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.read().queue.iter() {
            let message: QueuedMessage = decode("queue", &item?.1)?;
            if message
                .recipients
                .iter()
                .any(|r| addresses.contains(&r.address))
            {
                out.push(message.id);
            }
        }
        Ok(out)
    }

    /// Takes `addresses` off queued message `id` (removing it with its bytes if no recipient
    /// is left); how many recipients it took off. The caller holds the message's claim.
    pub fn queue_drop_recipients(
        &self,
        id: &str,
        addresses: &HashSet<String>,
    ) -> Result<usize, StoreError> {
        let Some(mut message) = self.queue_get(id)? else {
            return Ok(0);
        };
        let before = message.recipients.len();
        message
            .recipients
            .retain(|r| !addresses.contains(&r.address));
        let dropped = before - message.recipients.len();
        if dropped > 0 {
            self.queue_update(&message)?;
        }
        Ok(dropped)
    }
}

/// A tombstone's value: the entry without its free text or the message it came from.
fn scrubbed(mut entry: Suppression) -> Suppression {
    entry.detail.clear();
    entry.md_id = None;
    entry
}
