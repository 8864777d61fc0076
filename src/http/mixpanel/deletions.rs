//! Mixpanel's GDPR/CCPA data deletion API (SPEC §6.5):
//!
//! - `POST /api/app/data-deletions/v3.0/` with `{"compliance_type": "GDPR"|"CCPA",
//!   "distinct_ids": [...]}` (at most [`MAX_IDS`]; addresses or known distinct ids) →
//!   `{"status":"ok","results":{"task_id": …}}`;
//! - `GET /api/app/data-deletions/v3.0/{task_id}` → `{"status":"ok","results":{"status":
//!   "PENDING"|"STARTED"|"SUCCESS"|"FAILURE", …}}`.
//!
//! Authorised like `/engage` by the `Authorization` header (`Bearer KEY`, Basic `api:KEY` or
//! Basic `KEY:`); errors are `{"status":"error","error":…}`. The work is [`crate::erasure`]'s.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::header_authorized;
use crate::erasure::MAX_IDS;
use crate::http::rfc3339;

/// Largest request body: 2000 ids of up to 255 bytes, JSON-quoted, with room to spare.
const MAX_BODY: usize = 2 * 1024 * 1024;
use crate::state::AppState;
use crate::store::{Compliance, DeletionTask, StoreError};

/// Longest distinct id accepted, in bytes.
const MAX_ID_LEN: usize = 1024;

/// Why a request was refused; nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeletionError {
    #[error("missing or invalid API key: send Authorization: Bearer KEY")]
    Unauthorized,
    #[error("{0}")]
    Invalid(String),
    #[error("unknown task {0:?}")]
    UnknownTask(String),
    #[error("{0}")]
    Body(crate::http::extract::BodyError),
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl IntoResponse for DeletionError {
    fn into_response(self) -> Response {
        let status = match self {
            DeletionError::Unauthorized => StatusCode::UNAUTHORIZED,
            DeletionError::Invalid(_) => StatusCode::BAD_REQUEST,
            DeletionError::UnknownTask(_) => StatusCode::NOT_FOUND,
            DeletionError::Body(crate::http::extract::BodyError::TooLarge(_)) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            DeletionError::Body(_) => StatusCode::BAD_REQUEST,
            DeletionError::Store(ref e) => {
                tracing::error!(error = %e, "store failure in the deletion API");
                crate::http::error::store_status(e)
            }
        };
        super::deletion_failure(status, &self.to_string())
    }
}

fn authorize(state: &AppState, parts: &Parts) -> Result<(), DeletionError> {
    if header_authorized(state, parts) {
        Ok(())
    } else {
        Err(DeletionError::Unauthorized)
    }
}

/// The request body, checked whole.
fn parse(body: &[u8]) -> Result<(Compliance, Vec<String>), DeletionError> {
    let invalid = |m: String| DeletionError::Invalid(m);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(invalid("the body must be a JSON object".into()));
    };
    let compliance = match fields.get("compliance_type") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("GDPR") => Compliance::Gdpr,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("CCPA") => Compliance::Ccpa,
        Some(_) => {
            return Err(invalid(
                "compliance_type must be \"GDPR\" or \"CCPA\"".into(),
            ))
        }
        None => return Err(invalid("compliance_type is missing".into())),
    };
    let Some(ids) = fields.get("distinct_ids") else {
        return Err(invalid("distinct_ids is missing".into()));
    };
    let Value::Array(ids) = ids else {
        return Err(invalid("distinct_ids must be an array of strings".into()));
    };
    if ids.is_empty() {
        return Err(invalid("distinct_ids is empty".into()));
    }
    if ids.len() > MAX_IDS {
        return Err(invalid(format!(
            "{} distinct_ids submitted; at most {MAX_IDS} are accepted per request",
            ids.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Value::String(id) = id else {
            return Err(invalid(format!("distinct_ids[{i}] is not a string")));
        };
        let id = id.trim();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(invalid(format!(
                "distinct_ids[{i}] must be 1 to {MAX_ID_LEN} bytes"
            )));
        }
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    Ok((compliance, out))
}

/// `POST /api/app/data-deletions/v3.0/`.
pub(super) async fn create(
    State(state): State<AppState>,
    parts: Parts,
    body: Body,
) -> Result<Json<Value>, DeletionError> {
    authorize(&state, &parts)?;
    // Read here, not by axum's `Bytes` extractor, whose refusal is plain text.
    let body = crate::http::extract::read_body(body, MAX_BODY)
        .await
        .map_err(DeletionError::Body)?;
    let (compliance, ids) = parse(&body)?;
    let task = state.erasure.submit(compliance, ids).await?;
    Ok(Json(
        json!({ "status": "ok", "results": { "task_id": task.id } }),
    ))
}

/// `GET /api/app/data-deletions/v3.0/{task_id}`.
pub(super) async fn status(
    State(state): State<AppState>,
    parts: Parts,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, DeletionError> {
    authorize(&state, &parts)?;
    let task = state
        .store
        .deletion_get(&task_id)?
        .ok_or(DeletionError::UnknownTask(task_id))?;
    Ok(Json(json!({ "status": "ok", "results": render(&task) })))
}

fn render(task: &DeletionTask) -> Value {
    json!({
        "task_id": task.id,
        "status": task.status,
        "compliance_type": task.compliance_type,
        "distinct_ids_count": task.requested,
        "erased": task.erased,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "error": task.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(DeletionError::Invalid(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn bodies_are_checked_whole() {
        let (c, ids) =
            parse(br#"{"compliance_type":"gdpr","distinct_ids":["a@x.io"," u1 ","u1"]}"#).unwrap();
        assert_eq!(c, Compliance::Gdpr);
        assert_eq!(ids, ["a@x.io", "u1"]);
        assert!(err("[]").contains("object"));
        assert!(err("{").contains("JSON"));
        assert!(err(r#"{"distinct_ids":["a"]}"#).contains("compliance_type is missing"));
        assert!(err(r#"{"compliance_type":"LGPD","distinct_ids":["a"]}"#).contains("GDPR"));
        assert!(err(r#"{"compliance_type":"CCPA"}"#).contains("distinct_ids is missing"));
        assert!(err(r#"{"compliance_type":"CCPA","distinct_ids":"a"}"#).contains("array"));
        assert!(err(r#"{"compliance_type":"CCPA","distinct_ids":[]}"#).contains("empty"));
        assert!(err(r#"{"compliance_type":"CCPA","distinct_ids":["a",1]}"#).contains("[1]"));
        assert!(err(r#"{"compliance_type":"CCPA","distinct_ids":[""]}"#).contains("[0]"));
        let many: Vec<String> = (0..=MAX_IDS).map(|i| format!("u{i}")).collect();
        let body = json!({"compliance_type": "GDPR", "distinct_ids": many}).to_string();
        assert!(err(&body).contains("2001 distinct_ids"));
    }
}
