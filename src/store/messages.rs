//! Message records (SPEC §5): one per accepted recipient copy, keyed by `md_id`.

use serde::{Deserialize, Serialize};

use super::{decode, encode, Store, StoreError};

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
        Ok(())
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

    /// Applies `change` to a record and stores it; the new record, or `None` if absent.
    pub fn message_update(
        &self,
        md_id: &str,
        change: impl FnOnce(&mut MessageRecord),
    ) -> Result<Option<MessageRecord>, StoreError> {
        let Some(mut record) = self.message_get(md_id)? else {
            return Ok(None);
        };
        change(&mut record);
        self.message_put(&record)?;
        Ok(Some(record))
    }

    /// Follows one record: [`MessageWatch::changed`] returns at its next write. Subscribe
    /// before reading the record so no change is missed in between.
    pub fn watch_message(&self, md_id: &str) -> MessageWatch {
        MessageWatch(self.read().messages.watch_prefix(md_id.as_bytes()))
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

/// A subscription to changes of one message record (see [`Store::watch_message`]).
pub struct MessageWatch(sled::Subscriber);

impl MessageWatch {
    /// Waits for the next write to the record.
    pub async fn changed(&mut self) {
        (&mut self.0).await;
    }
}
