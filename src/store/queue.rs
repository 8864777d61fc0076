//! The durable delivery queue: one [`QueuedMessage`] per accepted transaction in `queue`, its
//! bytes in a spool file ([`super::spool`]).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{decode, encode, spool, MessageRecord, Store, StoreError};

/// The bytes of an accepted transaction, as the session holds them at the end of DATA.
#[derive(Debug)]
pub enum MessageBytes {
    /// A message small enough to be kept in memory until then.
    InMemory(Vec<u8>),
    /// A larger one, written to its spool file while it arrived.
    Spooled(SpoolDraft),
}

/// A spool file being written while its message arrives ([`Store::spool_draft`]); deleted if
/// dropped before [`Store::enqueue`] commits it.
#[derive(Debug)]
pub struct SpoolDraft(Option<spool::Draft>);

impl SpoolDraft {
    /// Appends `bytes` on the blocking pool.
    pub async fn append(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        let mut draft = self.take()?;
        let draft = blocking(move || draft.append(&bytes).map(|()| draft)).await?;
        self.0 = Some(draft);
        Ok(())
    }

    fn take(&mut self) -> Result<spool::Draft, StoreError> {
        self.0.take().ok_or_else(|| {
            StoreError::Io(std::io::Error::other("spool draft lost by a failed write"))
        })
    }
}

/// Runs file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("spool task: {e}"))))?
        .map_err(StoreError::from)
}

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
    /// Starts the spool file of transaction `id`, for a message written while it arrives.
    pub async fn spool_draft(&self, id: &str) -> Result<SpoolDraft, StoreError> {
        let (this, id) = (self.clone(), id.to_string());
        let draft = blocking(move || this.shared.spool.create(&id)).await?;
        Ok(SpoolDraft(Some(draft)))
    }

    /// Writes an accepted transaction: its bytes (a synced spool file, written or committed on
    /// the blocking pool; not kept when no recipient is left to deliver), a record per
    /// recipient copy, then the queue entry (last, so an entry never exists without its
    /// bytes). Call [`Store::flush`] before acknowledging.
    pub async fn enqueue(
        &self,
        message: &QueuedMessage,
        body: MessageBytes,
        records: &[MessageRecord],
    ) -> Result<(), StoreError> {
        if !message.recipients.is_empty() {
            let (this, id) = (self.clone(), message.id.clone());
            match body {
                MessageBytes::InMemory(bytes) => {
                    blocking(move || this.shared.spool.write(&id, &bytes)).await?
                }
                MessageBytes::Spooled(mut draft) => {
                    let draft = draft.take()?;
                    blocking(move || this.shared.spool.commit(draft)).await?
                }
            }
        }
        let t = self.write();
        for record in records {
            t.messages.insert(record.id.as_bytes(), encode(record))?;
        }
        drop(t);
        for record in records {
            self.announce(record);
        }
        let t = self.write();
        if !message.recipients.is_empty()
            && t.queue
                .insert(message.id.as_bytes(), encode(message))?
                .is_none()
        {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
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
        let existed = self.write().queue.remove(id)?.is_some();
        if existed {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        self.shared.spool.remove(id)?;
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

    /// Number of queued transactions (a counter: no scan).
    pub fn queue_len(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed) as usize
    }

    /// The bytes of a queued transaction, read on the blocking pool (up to 25 MiB).
    pub async fn spool_read(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (this, id) = (self.clone(), id.to_string());
        blocking(move || this.shared.spool.read(&id)).await
    }

    /// Moves message bytes that a store written before the spool became files still holds in
    /// its `spool` tree into spool files, synced. At open, before anything else runs.
    pub(super) fn spool_migrate(&self) -> Result<(), StoreError> {
        let t = self.read();
        if t.spool.is_empty() {
            return Ok(());
        }
        for item in t.spool.iter() {
            let (k, v) = item?;
            self.shared.spool.write(&String::from_utf8_lossy(&k), &v)?;
        }
        self.shared.spool.sync()?;
        t.spool.clear()?;
        t.sync()
    }

    /// Deletes spool files without a queue entry (a crash between the file and the entry, or
    /// after the entry's removal). At open, before deliveries start.
    pub(super) fn spool_collect(&self) -> Result<usize, StoreError> {
        let t = self.read();
        let mut removed = 0;
        for id in self.shared.spool.ids()? {
            if !t.queue.contains_key(id.as_bytes())? {
                self.shared.spool.remove(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
