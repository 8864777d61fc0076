//! The message: written to its spool file while it arrives once it outgrows [`SPILL_AT`]
//! bytes, so a session's memory stays bounded whatever the message's size; then, at the end
//! of DATA, tag-scoped suppression and the durable hand-off to the queue. `250` is answered
//! only after the store has flushed the message.

use super::codec::TooBig;
use super::error::SessionError;
use super::reply::Reply;
use super::session::{Session, Transaction};
use crate::id::{md_id, new_queue_id, now_secs};
use crate::metrics::Metrics;
use crate::mime::tags::take_tags;
use crate::policy::Verdict;
use crate::store::{
    MessageBytes, MessageRecord, QueuedMessage, QueuedRecipient, SpoolDraft, Status,
};

/// Decoded bytes a session keeps in memory before it writes the message to the spool. The
/// header section must end within them: it is where the tags are read and removed.
pub const SPILL_AT: usize = 256 * 1024;

/// A message being received that outgrew [`SPILL_AT`].
#[derive(Debug)]
pub enum Spill {
    /// Its bytes so far (trace header first, tag headers removed) are in a spool draft.
    Writing {
        queue_id: String,
        tags: Vec<String>,
        draft: SpoolDraft,
    },
    /// It cannot be kept: the rest is read and discarded, and this is the answer.
    Failed(SessionError),
}

impl Session {
    /// Takes the part of the message decoded so far, at least [`SPILL_AT`] bytes, and writes it
    /// to the message's spool file: the first part starts the file.
    pub async fn spill(&mut self, part: Vec<u8>) {
        self.spill = match self.spill.take() {
            None => Some(self.start_spill(part).await),
            Some(Spill::Writing {
                queue_id,
                tags,
                mut draft,
            }) => Some(match draft.append(part).await {
                Ok(()) => Spill::Writing {
                    queue_id,
                    tags,
                    draft,
                },
                Err(e) => Spill::Failed(SessionError::store("spool write")(e)),
            }),
            failed @ Some(Spill::Failed(_)) => failed,
        };
    }

    async fn start_spill(&self, head: Vec<u8>) -> Spill {
        if !head.starts_with(b"\r\n") && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Spill::Failed(SessionError::HeaderTooLarge { limit: SPILL_AT });
        }
        let queue_id = new_queue_id();
        let (tags, head) = take_tags(&head);
        let bytes = self.with_trace_header(&queue_id, &head);
        let mut draft = match self.state.store.spool_draft(&queue_id).await {
            Ok(d) => d,
            Err(e) => return Spill::Failed(SessionError::store("spool draft")(e)),
        };
        match draft.append(bytes).await {
            Ok(()) => Spill::Writing {
                queue_id,
                tags,
                draft,
            },
            Err(e) => Spill::Failed(SessionError::store("spool write")(e)),
        }
    }

    /// Handles the decoded message (what was not spilled); the transaction ends whatever the
    /// outcome.
    pub async fn message(&mut self, content: Result<Vec<u8>, TooBig>) -> Reply {
        let spill = self.spill.take();
        let Some(tx) = self.transaction.take() else {
            return Reply::bad_sequence("no transaction");
        };
        match self.accept(tx, content, spill).await {
            Ok(reply) => reply,
            Err(e) => self.fail(e),
        }
    }

    /// The queue id, tags and bytes of the message, whole.
    async fn assemble(
        &self,
        content: Vec<u8>,
        spill: Option<Spill>,
    ) -> Result<(String, Vec<String>, MessageBytes), SessionError> {
        match spill {
            None => {
                let queue_id = new_queue_id();
                let (tags, content) = take_tags(&content);
                let bytes = self.with_trace_header(&queue_id, &content);
                Ok((queue_id, tags, MessageBytes::InMemory(bytes)))
            }
            Some(Spill::Writing {
                queue_id,
                tags,
                mut draft,
            }) => {
                draft
                    .append(content)
                    .await
                    .map_err(SessionError::store("spool write"))?;
                Ok((queue_id, tags, MessageBytes::Spooled(draft)))
            }
            Some(Spill::Failed(e)) => Err(e),
        }
    }

    /// Checks tag-scoped suppressions, stores the message durably and schedules it.
    async fn accept(
        &mut self,
        tx: Transaction,
        content: Result<Vec<u8>, TooBig>,
        spill: Option<Spill>,
    ) -> Result<Reply, SessionError> {
        let content = content.map_err(|TooBig| SessionError::MessageTooLarge)?;
        let (queue_id, tags, body) = self.assemble(content, spill).await?;
        let now = now_secs();
        let mut records = Vec::with_capacity(tx.recipients.len());
        let mut pending = Vec::new();
        for (i, rcpt) in tx.recipients.iter().enumerate() {
            let id = md_id(&queue_id, i + 1);
            let mut dropped = rcpt.dropped;
            if !dropped && !tags.is_empty() {
                let verdict = self
                    .state
                    .policy
                    .check(&tx.sender, &rcpt.address, Some(&tags))
                    .map_err(SessionError::store("suppression lookup"))?;
                if let Verdict::Suppressed { scope, reason } = verdict {
                    Metrics::inc(&self.state.metrics.suppression_hits);
                    tracing::info!(md_id = %id, outcome = "suppressed", action = "drop", scope = scope.kind(), reason = reason.as_str(), "tag-scoped");
                    dropped = true;
                }
            }
            records.push(MessageRecord {
                id: id.clone(),
                queue_id: queue_id.clone(),
                sender: tx.sender.clone(),
                recipient: rcpt.address.clone(),
                tags: tags.clone(),
                status: if dropped {
                    Status::Rejected
                } else {
                    Status::Queued
                },
                created_at: now,
                updated_at: now,
                attempts: 0,
                last_reply: dropped.then(|| "suppressed".to_string()),
            });
            if dropped {
                Metrics::inc(&self.state.metrics.recipients_dropped);
            } else {
                pending.push(QueuedRecipient {
                    address: rcpt.address.clone(),
                    md_id: id,
                });
            }
        }
        let queued = QueuedMessage {
            id: queue_id.clone(),
            sender: tx.sender.clone(),
            recipients: pending,
            tags,
            received_at: now,
            attempts: 0,
            next_attempt_at: 0,
        };
        self.state
            .store
            .enqueue(&queued, body, &records)
            .await
            .map_err(SessionError::store("enqueue"))?;
        // The durability point: after this flush a crash loses nothing (see store docs).
        self.state
            .store
            .flush()
            .await
            .map_err(SessionError::store("flush"))?;
        Metrics::inc(&self.state.metrics.messages_accepted);
        for r in &records {
            if r.status == Status::Queued {
                Metrics::inc(&self.state.metrics.recipients_accepted);
                tracing::info!(md_id = %r.id, outcome = "accepted", "recipient");
            }
        }
        if !queued.recipients.is_empty() {
            self.state.scheduler.now(queue_id.clone());
        }
        Ok(Reply::queued(&queue_id))
    }

    /// Prepends the `Received:` trace field (RFC 5321 §4.4).
    fn with_trace_header(&self, queue_id: &str, content: &[u8]) -> Vec<u8> {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let with = match (self.tls, self.user.is_some()) {
            (true, true) => "ESMTPSA",
            (true, false) => "ESMTPS",
            (false, true) => "ESMTPA",
            (false, false) => "ESMTP",
        };
        let header = format!(
            "Received: from {} ([{}])\r\n\tby {} (quell) with {} id {};\r\n\t{}\r\n",
            sanitize(helo),
            self.peer.ip(),
            self.state.config.smtp.hostname,
            with,
            queue_id,
            chrono::Utc::now().to_rfc2822()
        );
        let mut out = Vec::with_capacity(header.len() + content.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(content);
        out
    }
}

/// The HELO name as it may appear in a header: printable ASCII without spaces, bounded.
fn sanitize(helo: &str) -> String {
    helo.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '(' && *c != ')')
        .take(255)
        .collect()
}
