//! One address on a list — `GET` and `DELETE /v3/{domain}/{resource}/{address}` — and
//! `DELETE /v3/{domain}/{resource}`, which clears the list for the domain.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::Json;
use serde_json::{json, Value};

use super::{render, Resource, Target};
use crate::address::normalize;
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::http::form;
use crate::state::AppState;
use crate::store::{Suppression, SuppressionKey};
use crate::suppression::{Op, Outcome, When};

/// Largest form body read for a `DELETE` (it holds at most a `tag`).
const MAX_DELETE_BODY: usize = 64 * 1024;

/// The key `target` names, or the resource's 404 when the address cannot be on any list.
fn key_of<R: Resource>(target: &Target) -> Result<SuppressionKey, ApiError> {
    let raw = target.address.as_deref().unwrap_or_default();
    let address = normalize(raw).map_err(|_| ApiError::not_found(R::NOT_FOUND))?;
    Ok(SuppressionKey::new(target.scope.clone(), address, R::LIST))
}

/// The live (unexpired) entry for `key`, or the resource's 404.
fn live_entry<R: Resource>(
    state: &AppState,
    key: &SuppressionKey,
) -> Result<Suppression, ApiError> {
    let now = chrono::Utc::now().timestamp();
    state
        .store
        .suppression_get(key)?
        .filter(|e| !e.is_expired(now))
        .ok_or_else(|| ApiError::not_found(R::NOT_FOUND))
}

/// `GET /v3/{domain}/{resource}/{address}`.
pub(super) async fn get<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
) -> Result<Json<Value>, ApiError> {
    let key = key_of::<R>(&target)?;
    let entry = live_entry::<R>(&state, &key)?;
    Ok(Json(render::<R>(&key.address, &entry)))
}

/// `DELETE /v3/{domain}/{resource}/{address}[?tag=…]`. With a `tag` (query or form body) on a
/// tagged resource, only that tag is removed; the entry goes when no tag remains.
pub(super) async fn remove<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let key = key_of::<R>(&target)?;
    let given = target.address.as_deref().unwrap_or_default().trim();
    let tag = if R::TAGGED {
        tag_param(request).await?
    } else {
        None
    };
    let op = match tag {
        None => Op::Remove {
            key: key.clone(),
            when: When::Always,
        },
        Some(tag) => Op::RemoveTag {
            key: key.clone(),
            tag,
        },
    };
    match state.suppressions.apply(vec![op]).await?.pop() {
        Some(Outcome::Removed | Outcome::Written(_)) => {}
        Some(Outcome::NoSuchTag) => {
            return Err(ApiError::not_found(
                "Unsubscribe event for this tag does not exist",
            ))
        }
        _ => return Err(ApiError::not_found(R::NOT_FOUND)),
    }
    tracing::info!(resource = R::NAME, scope = %key.scope, "suppression removed");
    Ok(Json(json!({ "message": R::REMOVED_ONE, "address": given })))
}

/// The `tag` parameter of a `DELETE`, from the query string or a form-encoded body.
async fn tag_param(request: Request) -> Result<Option<String>, ApiError> {
    let (parts, body) = request.into_parts();
    let mut pairs = form::pairs(parts.uri.query().unwrap_or("").as_bytes())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let is_form = crate::http::extract::media_type(&parts.headers).as_deref()
        == Some("application/x-www-form-urlencoded");
    if is_form {
        let bytes = read_body(body, MAX_DELETE_BODY).await?;
        let fields = form::pairs(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
        pairs.extend(fields);
    }
    Ok(pairs
        .into_iter()
        .find(|(k, v)| k == "tag" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string()))
}

/// Reads a request body of at most `limit` bytes; larger is a 413 in Mailgun's JSON shape
/// (axum's own rejection would be plain text).
pub(super) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use crate::http::extract::{read_body, BodyError};
    read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge(_) => ApiError {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            message: e.to_string(),
        },
        BodyError::Broken(_) => ApiError::bad_request(e.to_string()),
    })
}

/// `DELETE /v3/{domain}/{resource}`.
pub(super) async fn clear<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
) -> Result<Json<Value>, ApiError> {
    let removed = state
        .suppressions
        .clear(target.scope.clone(), R::LIST)
        .await?;
    tracing::info!(resource = R::NAME, scope = %target.scope, removed, "suppression list cleared");
    Ok(Json(json!({ "message": R::REMOVED_ALL })))
}
