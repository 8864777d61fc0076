//! Message records (SPEC §5): one per accepted recipient copy, keyed by `md_id`.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{decode, encode, Store, StoreError};

/// How many record changes a slow listener may fall behind before it misses some (it is told).
pub(super) const CHANGES_BUFFER: usize = 4096;

/// Where a recipient copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Sent,
    Deferred,
    Bounced,
    /// Suppressed and dropped (never forwarded).
    Rejected,
    /// The recipient clicked the unsubscribe link.
    Unsub,
}

/// One recipient copy of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    pub queue_id: String,
    pub sender: String,
    pub recipient: String,
    pub tags: Vec<String>,
    pub status: Status,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub attempts: u32,
    /// The upstream's last reply, or why quell decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
}

impl Store {
    pub fn message_put(&self, record: &MessageRecord) -> Result<(), StoreError> {
        self.write()
            .messages
            .insert(record.id.as_bytes(), encode(record))?;
        self.announce(record);
        Ok(())
    }

    pub(super) fn announce(&self, record: &MessageRecord) {
        let changes = &self.shared.message_changes;
        if changes.receiver_count() > 0 {
            let _ = changes.send(record.clone());
        }
    }

    pub fn message_get(&self, md_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read()
            .messages
            .get(md_id)?
            .map(|v| decode("messages", &v))
            .transpose()
    }

    /// Every record of one transaction.
    pub fn messages_of_queue(&self, queue_id: &str) -> Result<Vec<MessageRecord>, StoreError> {
        self.read()
            .messages
            .scan_prefix(format!("{queue_id}."))
            .map(|item| decode("messages", &item?.1))
            .collect()
    }

    /// Applies `change` to a record and stores it, atomically with respect to other updates
    /// (a click and a delivery attempt may update one record at once); the new record, or
    /// `None` if absent.
    pub fn message_update(
        &self,
        md_id: &str,
        change: impl FnOnce(&mut MessageRecord),
    ) -> Result<Option<MessageRecord>, StoreError> {
        let _updating = self
            .shared
            .message_updates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(mut record) = self.message_get(md_id)? else {
            return Ok(None);
        };
        change(&mut record);
        self.message_put(&record)?;
        Ok(Some(record))
    }

    /// Every message record written from now on (a copy accepted, delivered, deferred,
    /// bounced, refused, unsubscribed): the seam where delivery events are heard.
    pub fn message_changes(&self) -> broadcast::Receiver<MessageRecord> {
        self.shared.message_changes.subscribe()
    }

    /// Removes records created before `cutoff` (Unix seconds); how many. Keys start with the
    /// creation time in milliseconds, so this reads only what it removes.
    pub fn messages_purge_before(&self, cutoff: i64) -> Result<usize, StoreError> {
        let bound = format!("{:012X}", (cutoff.max(0) as u64 * 1000) & 0xFFFF_FFFF_FFFF);
        let t = self.write();
        let mut n = 0;
        for item in t.messages.range(..bound.as_bytes()) {
            let (k, _) = item?;
            t.messages.remove(k)?;
            n += 1;
        }
        Ok(n)
    }
}
