//! `GET /api/messages/{id}` (SPEC §5): one recipient copy by `md_id`, or every copy of a
//! transaction by the queue id from `250 2.0.0 Ok: queued as <id>`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::ApiKey;
use super::error::ApiError;
use crate::state::AppState;
use crate::store::MessageRecord;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/messages/{id}", get(get_message))
}

async fn get_message(
    _: ApiKey,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    // Axum's own rejection (a segment that is not UTF-8) is plain text: answer in JSON.
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("id: {}", e.body_text())))?;
    if id.contains('.') {
        let record = state
            .store
            .message_get(&id)?
            .ok_or_else(|| ApiError::not_found("message not found"))?;
        return Ok(Json(render(&record)));
    }
    let records = state.store.messages_of_queue(&id)?;
    if records.is_empty() {
        return Err(ApiError::not_found("message not found"));
    }
    Ok(Json(json!({
        "queue_id": id,
        "recipients": records.iter().map(render).collect::<Vec<_>>(),
    })))
}

fn render(r: &MessageRecord) -> Value {
    json!({
        "id": r.id,
        "queue_id": r.queue_id,
        "sender": r.sender,
        "recipient": r.recipient,
        "tags": r.tags,
        "status": r.status,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
        "attempts": r.attempts,
        "last_reply": r.last_reply,
    })
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
