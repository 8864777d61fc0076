//! The delivery queue for operators (`postqueue`/`postsuper` in Postfix terms): list what is
//! waiting, deliver an entry now, or delete one. Retry and delete take the entry's delivery claim
//! (the one a worker holds during an attempt) first, so they never interleave with an attempt on
//! the same entry — a worker finishing one would otherwise write back an entry just deleted, or
//! a recipient just delivered.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

use super::{blocking, limit, only_params, param, query_pairs, rfc3339, AdminError};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::id::now_secs;
use crate::queue::Scheduler;
use crate::state::AppState;
use crate::store::{QueuedMessage, Status};

/// The `last_reply` of a copy the operator deleted from the queue.
pub(super) const DELETED_REPLY: &str = "deleted from the queue by the operator";

/// `GET /api/queue?after=&limit=` → `{"items": [...], "next": id}`, oldest first.
/// `next_attempt_at` is null when the entry is due now.
pub(super) async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(&uri)?;
    only_params(&pairs, &["after", "limit"])?;
    let limit = limit(&pairs)?;
    let after = param(&pairs, "after").map(str::to_string);
    let store = state.store.clone();
    let mut page = blocking(move || store.queue_page(after.as_deref(), limit + 1)).await?;
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|m| m.id.clone())
    } else {
        None
    };
    let items: Vec<Value> = page.iter().map(render).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

fn render(m: &QueuedMessage) -> Value {
    json!({
        "id": m.id,
        "sender": m.sender,
        "recipients": m.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(),
        "tags": m.tags,
        "attempts": m.attempts,
        "received_at": rfc3339(m.received_at),
        "next_attempt_at": (m.next_attempt_at > 0).then(|| rfc3339(m.next_attempt_at)),
    })
}

/// The `{id}` of a queue path. Axum's own rejection (a segment that is not UTF-8) is plain
/// text; this answers in the API's JSON shape.
fn queue_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(format!("queue id: {}", e.body_text())))
}

/// How long retry and delete wait for a delivery attempt in progress.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Holds an entry's delivery claim; released when dropped, whatever the handler's outcome.
struct Claim<'a> {
    scheduler: &'a Scheduler,
    id: String,
}

impl<'a> Claim<'a> {
    /// Claims `id`, waiting up to [`CLAIM_WAIT`] for a worker's attempt in progress to end
    /// (an operator who retries right after a deferral means "once more", not "never mind");
    /// 409 if it is still being delivered then.
    async fn take(scheduler: &'a Scheduler, id: &str) -> Result<Claim<'a>, AdminError> {
        if !scheduler.claim_within(id, CLAIM_WAIT).await {
            return Err(AdminError::InFlight(id.to_string()));
        }
        Ok(Claim {
            scheduler,
            id: id.to_string(),
        })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.scheduler.release(&self.id);
    }
}

/// `POST /api/queue/{id}/retry`: the entry is due now (stored, so a restart keeps it so) and is
/// handed to a worker. 404 if it is not queued.
pub(super) async fn retry(
    _: ApiKey,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = queue_id(id)?;
    let claim = Claim::take(&state.scheduler, &id).await?;
    let store = state.store.clone();
    let key = id.clone();
    let now = now_secs();
    let found = blocking(move || {
        let Some(mut message) = store.queue_get(&key)? else {
            return Ok(false);
        };
        message.next_attempt_at = now;
        store.queue_update(&message)?;
        Ok(true)
    })
    .await?;
    if !found {
        return Err(AdminError::NotQueued(id).into());
    }
    state.store.flush().await?;
    drop(claim);
    state.scheduler.now(id.clone());
    tracing::info!(queue_id = %id, "admin API: delivery retried now");
    Ok(Json(json!({ "id": id, "next_attempt_at": rfc3339(now) })))
}

/// `DELETE /api/queue/{id}`: the entry and its bytes are removed, and every copy still waiting
/// is recorded `bounced` with [`DELETED_REPLY`] — the sender's records must not say `deferred`
/// forever. 404 if it is not queued.
pub(super) async fn delete(
    _: ApiKey,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = queue_id(id)?;
    let claim = Claim::take(&state.scheduler, &id).await?;
    let store = state.store.clone();
    let key = id.clone();
    let bounced = blocking(move || {
        let Some(message) = store.queue_get(&key)? else {
            return Ok(None);
        };
        let now = now_secs();
        // Records first: a crash before the removal leaves the entry queued (and delivered
        // later, which rewrites the records), never an entry gone with records still waiting.
        for rcpt in &message.recipients {
            store.message_update(&rcpt.md_id, |r| {
                r.status = Status::Bounced;
                r.updated_at = now;
                r.last_reply = Some(DELETED_REPLY.to_string());
            })?;
            tracing::info!(md_id = %rcpt.md_id, outcome = "bounced", reason = "deleted by the operator", "recipient");
        }
        store.queue_remove(&key)?;
        Ok(Some(message.recipients.len()))
    })
    .await?;
    let Some(bounced) = bounced else {
        return Err(AdminError::NotQueued(id).into());
    };
    state.store.flush().await?;
    drop(claim);
    tracing::info!(queue_id = %id, bounced, "admin API: queue entry deleted");
    Ok(Json(json!({ "id": id, "bounced": bounced })))
}
