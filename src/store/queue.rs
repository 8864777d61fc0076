//! The durable delivery queue: one [`QueuedMessage`] per accepted transaction in `queue`, its
//! bytes in `spool`.

use serde::{Deserialize, Serialize};

use super::{decode, encode, MessageRecord, Store, StoreError};

/// One recipient still to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    /// Normalised address.
    pub address: String,
    pub md_id: String,
}

/// An accepted transaction waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub id: String,
    /// Envelope sender, normalised as at MAIL; empty for the null sender `<>`.
    pub sender: String,
    /// Recipients not yet delivered or failed.
    pub recipients: Vec<QueuedRecipient>,
    pub tags: Vec<String>,
    /// Unix seconds.
    pub received_at: i64,
    pub attempts: u32,
    /// Unix seconds; 0 means now.
    pub next_attempt_at: i64,
}

impl Store {
    /// Writes an accepted transaction: its bytes, a record per recipient copy, then the queue
    /// entry (last, so an entry never exists without its bytes). Call [`Store::flush`] before
    /// acknowledging.
    pub fn enqueue(
        &self,
        message: &QueuedMessage,
        body: &[u8],
        records: &[MessageRecord],
    ) -> Result<(), StoreError> {
        let t = self.write();
        if !message.recipients.is_empty() {
            t.spool.insert(message.id.as_bytes(), body)?;
        }
        for record in records {
            t.messages.insert(record.id.as_bytes(), encode(record))?;
        }
        if !message.recipients.is_empty() {
            t.queue.insert(message.id.as_bytes(), encode(message))?;
        }
        Ok(())
    }

    pub fn queue_get(&self, id: &str) -> Result<Option<QueuedMessage>, StoreError> {
        self.read()
            .queue
            .get(id)?
            .map(|v| decode("queue", &v))
            .transpose()
    }

    /// Replaces the entry (after an attempt); removes it with its bytes when no recipient is left.
    pub fn queue_update(&self, message: &QueuedMessage) -> Result<(), StoreError> {
        if message.recipients.is_empty() {
            self.queue_remove(&message.id)?;
        } else {
            self.write()
                .queue
                .insert(message.id.as_bytes(), encode(message))?;
        }
        Ok(())
    }

    /// Removes the entry and its bytes; whether it existed.
    pub fn queue_remove(&self, id: &str) -> Result<bool, StoreError> {
        let t = self.write();
        let existed = t.queue.remove(id)?.is_some();
        t.spool.remove(id)?;
        Ok(existed)
    }

    /// Every queued transaction, oldest first.
    pub fn queue_all(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        self.read()
            .queue
            .iter()
            .map(|item| decode("queue", &item?.1))
            .collect()
    }

    /// Number of queued transactions.
    pub fn queue_len(&self) -> usize {
        self.read().queue.len()
    }

    /// The bytes of a queued transaction.
    pub fn spool_get(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.read().spool.get(id)?)
    }
}
