//! Delivery workers: `upstream.connections` tasks, each owning one upstream connection, take
//! queue ids from the [`Scheduler`] and make one delivery attempt per id.
//!
//! Per recipient, at every attempt: a recipient the suppression list names now (it unsubscribed,
//! bounced or was added while its copy waited) is not sent to and its copy is `rejected`;
//! otherwise `250` marks the copy `sent`; a 4xx or a connection failure keeps it queued
//! (`deferred`) for the next attempt; a 5xx marks it `bounced`, and a 5.1.x adds a `global`
//! `hard-bounce` suppression. After `queue.max_age` deferred copies fail for good. A copy
//! that is done leaves the queue entry durably before the next one is tried, so a crash in
//! the middle of a message's recipients sends no accepted copy again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::transport::smtp::client::AsyncSmtpConnection;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::render::Renderer;
use super::retry::backoff;
use super::upstream::{SendError, Upstream};
use super::Jobs;
use crate::id::now_secs;
use crate::metrics::Metrics;
use crate::policy::Verdict;
use crate::shutdown::CancellationToken;
use crate::state::AppState;
use crate::store::{
    QueuedMessage, QueuedRecipient, Reason, Scope, Status, Store, StoreError, Suppression,
    SuppressionKey,
};
use crate::suppression::{Op, Outcome, Rule};

/// Starts the workers on `tracker`; they stop at `shutdown` after the attempt in progress.
pub fn start(
    state: &AppState,
    jobs: Arc<Jobs>,
    upstream: Upstream,
    renderer: Arc<Renderer>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    for n in 0..state.config.upstream.connections {
        let state = state.clone();
        let jobs = jobs.clone();
        let upstream = upstream.clone();
        let renderer = renderer.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut connection = None;
            loop {
                let id = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    id = jobs.next() => match id { Some(id) => id, None => break },
                };
                if !state.scheduler.claim(&id) {
                    continue;
                }
                let span = tracing::info_span!("delivery", queue_id = %id, worker = n);
                if let Err(e) = attempt(&state, &upstream, &renderer, &mut connection, &id).instrument(span).await {
                    tracing::error!(queue_id = %id, error = %e, "delivery bookkeeping failed; retrying later");
                    state.scheduler.after(id.clone(), state.config.queue.retry_initial);
                }
                state.scheduler.release(&id);
            }
            if let Some(mut c) = connection {
                let _ = c.quit().await;
            }
        });
    }
}

/// Schedules every queued transaction: at startup, after a crash or a clean stop.
pub fn recover(state: &AppState) -> Result<usize, StoreError> {
    let now = now_secs();
    let queued = state.store.queue_all()?;
    for message in &queued {
        let wait = message.next_attempt_at.saturating_sub(now);
        if wait > 0 {
            state
                .scheduler
                .after(message.id.clone(), Duration::from_secs(wait as u64));
        } else {
            state.scheduler.now(message.id.clone());
        }
    }
    Ok(queued.len())
}

/// One delivery attempt of queue entry `id`: each recipient is checked against the suppression
/// list as it is now, then sent its copy. Every copy that is done — accepted, failed for good
/// or suppressed — leaves the entry durably before the next copy is tried (SPEC §2).
async fn attempt(
    state: &AppState,
    upstream: &Upstream,
    renderer: &Renderer,
    connection: &mut Option<AsyncSmtpConnection>,
    id: &str,
) -> Result<(), StoreError> {
    let store = &state.store;
    let Some(mut message) = store.queue_get(id)? else {
        return Ok(()); // already delivered
    };
    let Some(body) = store.spool_read(id).await? else {
        tracing::error!("queue entry without its message bytes; dropping it");
        store.queue_remove(id)?;
        return Ok(());
    };
    message.attempts += 1;
    let attempts = message.attempts;
    let expired = now_secs().saturating_sub(message.received_at)
        >= state.config.queue.max_age.as_secs() as i64;
    // An untagged message is checked against entries for all mail only, which is the same
    // decision as with no tags and is answered from memory.
    let tags = (!message.tags.is_empty()).then(|| message.tags.clone());
    let analysis = renderer.analyze(&body);
    for rcpt in message.recipients.clone() {
        let verdict = state
            .policy
            .check(&message.sender, &rcpt.address, tags.as_deref())?;
        let done = match verdict {
            Verdict::Suppressed { scope, reason } => {
                suppressed(state, &rcpt, &scope, reason)?;
                true
            }
            Verdict::Allow => {
                let copy = renderer.render(&body, &analysis, &message, &rcpt);
                match send(state, upstream, connection, &message.sender, &rcpt, &copy).await {
                    Ok(reply) => {
                        relayed(state, &rcpt, attempts, reply)?;
                        true
                    }
                    Err(e) if e.is_transient() => {
                        deferred(state, &rcpt, attempts, &e)?;
                        if expired {
                            bounce(state, &rcpt, attempts, &given_up(attempts, &e)).await?;
                        }
                        expired
                    }
                    Err(e) => {
                        bounce(state, &rcpt, attempts, &e).await?;
                        true
                    }
                }
            }
        };
        if done {
            finish(store, &mut message, &rcpt).await?;
        }
    }
    if message.recipients.is_empty() {
        return Ok(()); // the last copy done took the entry with it
    }
    let delay = backoff(&state.config.queue, attempts);
    message.next_attempt_at = now_secs() + delay.as_secs() as i64;
    // Not flushed here: losing this write to a crash only brings the next attempt forward.
    store.queue_update(&message)?;
    state.scheduler.after(message.id.clone(), delay);
    Ok(())
}

/// Takes a done copy off the queue entry (the entry and its bytes go with the last one) and
/// makes that durable before the next copy is tried. After this flush no retry and no restart
/// after a crash sends the copy again; a crash before it may send an accepted copy twice, as
/// in any at-least-once relay.
async fn finish(
    store: &Store,
    message: &mut QueuedMessage,
    rcpt: &QueuedRecipient,
) -> Result<(), StoreError> {
    message.recipients.retain(|r| r.md_id != rcpt.md_id);
    store.queue_update(message)?;
    store.flush().await
}

/// One upstream transaction for `rcpt`'s copy, timed and counted.
async fn send(
    state: &AppState,
    upstream: &Upstream,
    connection: &mut Option<AsyncSmtpConnection>,
    sender: &str,
    rcpt: &QueuedRecipient,
    copy: &[u8],
) -> Result<String, SendError> {
    let started = Instant::now();
    let result = upstream.send(connection, sender, &rcpt.address, copy).await;
    Metrics::inc(&state.metrics.upstream_sends);
    state.metrics.upstream_latency_us.fetch_add(
        started.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    result
}

/// A recipient suppressed since the message was accepted: not sent, the copy `rejected`, with
/// the entry's scope and reason. Counted as the suppressed recipients dropped after DATA are:
/// accepted, then never forwarded.
fn suppressed(
    state: &AppState,
    rcpt: &QueuedRecipient,
    scope: &Scope,
    reason: Reason,
) -> Result<(), StoreError> {
    Metrics::inc(&state.metrics.suppression_hits);
    Metrics::inc(&state.metrics.recipients_dropped);
    // The scope's kind only: a sender scope names an address.
    tracing::info!(md_id = %rcpt.md_id, outcome = "suppressed", action = "drop", scope = scope.kind(), reason = reason.as_str(), "recipient");
    state.store.message_update(&rcpt.md_id, |r| {
        r.status = Status::Rejected;
        r.updated_at = now_secs();
        r.last_reply = Some(format!(
            "suppressed before delivery: {scope} {}",
            reason.as_str()
        ));
    })?;
    Ok(())
}

/// The upstream accepted the copy.
fn relayed(
    state: &AppState,
    rcpt: &QueuedRecipient,
    attempts: u32,
    reply: String,
) -> Result<(), StoreError> {
    Metrics::inc(&state.metrics.recipients_forwarded);
    tracing::info!(md_id = %rcpt.md_id, outcome = "relayed", attempts, "recipient");
    record(state, &rcpt.md_id, Status::Sent, attempts, reply)
}

/// A 4xx or a connection failure: the copy stays queued for the next attempt.
fn deferred(
    state: &AppState,
    rcpt: &QueuedRecipient,
    attempts: u32,
    e: &SendError,
) -> Result<(), StoreError> {
    Metrics::inc(&state.metrics.recipients_deferred);
    tracing::info!(md_id = %rcpt.md_id, outcome = "deferred", attempts, reply = %e, "recipient");
    record(
        state,
        &rcpt.md_id,
        Status::Deferred,
        attempts,
        e.record_text(),
    )
}

/// The permanent failure of a copy still deferred after `queue.max_age`.
fn given_up(attempts: u32, last: &SendError) -> SendError {
    SendError::GaveUp {
        attempts,
        last: Box::new(last.clone()),
    }
}

fn record(
    state: &AppState,
    md_id: &str,
    status: Status,
    attempts: u32,
    reply: String,
) -> Result<(), StoreError> {
    state.store.message_update(md_id, |r| {
        r.status = status;
        r.attempts = attempts;
        r.updated_at = now_secs();
        r.last_reply = Some(reply);
    })?;
    Ok(())
}

/// A permanent failure: the copy is `bounced`; a 5.1.x also suppresses the address globally
/// (synced before the record says `bounced`), never weakening an entry already there and never
/// for an allowlisted address (Mandrill's rule).
async fn bounce(
    state: &AppState,
    rcpt: &QueuedRecipient,
    attempts: u32,
    e: &SendError,
) -> Result<(), StoreError> {
    Metrics::inc(&state.metrics.recipients_bounced);
    tracing::info!(md_id = %rcpt.md_id, outcome = "bounced", attempts, reply = %e, "recipient");
    if e.is_hard_bounce() {
        let now = now_secs();
        let entry = Suppression {
            reason: Reason::HardBounce,
            tags: vec!["*".to_string()],
            created_at: now,
            expires_at: state
                .config
                .suppression
                .expiry
                .hard_bounce
                .map(|d| now + d.as_secs() as i64),
            detail: e.record_text(),
            md_id: Some(rcpt.md_id.clone()),
            code: e.code(),
        };
        let op = Op::Add {
            key: SuppressionKey::new(Scope::Global, rcpt.address.clone(), entry.reason.list()),
            entry,
            rule: Rule::Strengthen,
            unless_allowlisted: true,
        };
        let written = state
            .suppressions
            .apply_in_reserve(vec![op], Vec::new())
            .await?;
        if let Some(Outcome::Written(_)) = written.last() {
            tracing::info!(md_id = %rcpt.md_id, scope = "global", reason = "hard-bounce", "suppression added");
        }
    }
    record(
        state,
        &rcpt.md_id,
        Status::Bounced,
        attempts,
        e.record_text(),
    )
}
