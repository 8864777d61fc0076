//! quell's own management API, for operators and for the admin command line (`quell suppress`,
//! `quell queue`): every suppression entry across scopes and lists, and the delivery queue.
//! The provider-compatible APIs (Mailgun, Mandrill, Mixpanel) each see one scope and speak their
//! provider's dialect; this one sees everything and speaks plainly. Every route needs a key
//! ([`ApiKey`]); bad input is a 400 `{"message": …}` naming the problem, and nothing is written.
//!
//! | file | routes |
//! |---|---|
//! | [`suppressions`] | `GET`, `POST`, `DELETE /api/suppressions` |
//! | [`export`] | `GET /api/suppressions/export` (streamed CSV) |
//! | [`entry`] | one submitted entry or removal, validated; scopes, reasons, lists, dates |
//! | [`queue`] | `GET /api/queue`, `POST /api/queue/{id}/retry`, `DELETE /api/queue/{id}` |
//!
//! [`ApiKey`]: crate::http::auth::ApiKey

mod entry;
mod export;
mod queue;
mod suppressions;

use super::rfc3339;
use axum::body::Body;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::address::AddressError;
use crate::state::AppState;
use crate::store::{List, Scope, StoreError, Suppression, SuppressionKey};
use entry::EntryError;

/// The admin routes, merged into the HTTP router by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/suppressions",
            get(suppressions::list)
                .post(suppressions::add)
                .delete(suppressions::remove),
        )
        .route("/api/suppressions/export", get(export::export))
        .route("/api/queue", get(queue::list))
        .route("/api/queue/{id}/retry", post(queue::retry))
        .route("/api/queue/{id}", axum::routing::delete(queue::delete))
}

/// Most entries one request may add or remove, and the largest page.
const MAX_ITEMS: usize = 1000;
/// Page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Largest JSON body read: 1000 entries with long details fit comfortably.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What is wrong with an admin request. Each maps to the status the client sees; the message
/// names the parameter or item at fault.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("invalid query string: {0}")]
    Query(String),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("limit {0:?} must be an integer from 1 to {MAX_ITEMS}")]
    Limit(String),
    #[error("after {0:?} is not a cursor this server handed out (use the \"next\" of a page)")]
    Cursor(String),
    #[error("{0}")]
    Entry(#[from] EntryError),
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body must be a JSON array of entries")]
    NotAnArray,
    #[error("the array of entries is empty")]
    Empty,
    #[error("{0} entries submitted; at most {MAX_ITEMS} are accepted per request")]
    TooMany(usize),
    #[error("item {index}: {error}")]
    Item { index: usize, error: EntryError },
    #[error("request body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("no suppression entry matched")]
    NothingMatched,
    #[error("queue entry {0:?} not found")]
    NotQueued(String),
    #[error("queue entry {0:?} is being delivered right now; try again in a moment")]
    InFlight(String),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        let status = match e {
            AdminError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::NothingMatched | AdminError::NotQueued(_) => StatusCode::NOT_FOUND,
            AdminError::InFlight(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

/// The query string's pairs; a parameter given twice counts once (the last).
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, AdminError> {
    super::form::pairs(uri.query().unwrap_or("").as_bytes())
        .map_err(|e| AdminError::Query(e.to_string()))
}

/// The value of parameter `name`, trimmed; empty counts as absent.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Refuses parameters the route does not know: a misspelt filter (`adress=`) must not quietly
/// widen a listing or a removal.
fn only_params(pairs: &[(String, String)], known: &[&str]) -> Result<(), AdminError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(AdminError::Query(format!(
            "unknown parameter {k:?}; expected {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `limit`: 1 to [`MAX_ITEMS`], default [`DEFAULT_LIMIT`].
fn limit(pairs: &[(String, String)]) -> Result<usize, AdminError> {
    match param(pairs, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ITEMS).contains(n))
            .ok_or_else(|| AdminError::Limit(v.to_string())),
    }
}

/// The opaque cursor of an entry: the key's parts, base64url. Neither a scope nor a normalised
/// address contains a NUL, so the parts split back unambiguously.
fn cursor(key: &SuppressionKey) -> String {
    let text = format!(
        "{}\0{}\0{}",
        key.scope.key(),
        key.address,
        list_name(key.list)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Reads a cursor written by [`cursor`].
fn parse_cursor(s: &str) -> Result<SuppressionKey, AdminError> {
    let bad = || AdminError::Cursor(s.chars().take(80).collect());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split('\0');
    let (Some(scope), Some(address), Some(list), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(SuppressionKey::new(
        Scope::parse(scope).ok_or_else(bad)?,
        address,
        entry::parse_list(list).map_err(|_| bad())?,
    ))
}

/// The wire name of a list.
fn list_name(list: List) -> &'static str {
    match list {
        List::Unsubscribes => "unsubscribes",
        List::Bounces => "bounces",
        List::Complaints => "complaints",
    }
}

/// One entry as the admin API renders it. The shape is also what `POST` accepts, so a listing
/// can be posted back.
fn render(key: &SuppressionKey, entry: &Suppression) -> Value {
    json!({
        "scope": key.scope.key(),
        "address": key.address,
        "list": list_name(key.list),
        "reason": entry.reason.as_str(),
        "tags": tags_of(entry),
        "created_at": rfc3339(entry.created_at),
        "expires_at": entry.expires_at.map(rfc3339),
        "detail": entry.detail,
        "md_id": entry.md_id,
        "code": entry.code,
    })
}

/// An entry's tags; none stored means all mail (`*`).
fn tags_of(entry: &Suppression) -> Vec<String> {
    if entry.tags.is_empty() {
        vec!["*".to_string()]
    } else {
        entry.tags.clone()
    }
}

/// Runs store work on the blocking pool: sled calls may wait on disk, and a scan of a large
/// tree must not stall the async workers.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => {
            tracing::error!(error = %e, "admin store task failed");
            Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "internal error".into(),
            })
        }
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes; larger is a 413 in the API's JSON shape
/// (axum's own rejection would be plain text).
async fn read_body(body: Body) -> Result<bytes::Bytes, AdminError> {
    crate::http::extract::read_body(body, MAX_BODY)
        .await
        .map_err(|_| AdminError::TooLarge)
}

/// A JSON body holding an array of 1 to [`MAX_ITEMS`] items.
fn json_array(body: &[u8]) -> Result<Vec<Value>, AdminError> {
    match serde_json::from_slice(body).map_err(|e| AdminError::Json(e.to_string()))? {
        Value::Array(items) if items.is_empty() => Err(AdminError::Empty),
        Value::Array(items) if items.len() > MAX_ITEMS => Err(AdminError::TooMany(items.len())),
        Value::Array(items) => Ok(items),
        _ => Err(AdminError::NotAnArray),
    }
}

/// The address error of a filter or item, as the message names it.
fn address_error(given: &str, e: AddressError) -> EntryError {
    EntryError::Address(given.chars().take(300).collect(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let key = SuppressionKey::new(Scope::Sender("app@x.io".into()), "a@y.io", List::Complaints);
        assert_eq!(parse_cursor(&cursor(&key)).unwrap(), key);
        for bad in ["", "!!", "Z2xvYmFs", "Z2xvYmFsAGFAeQB4"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limits_and_unknown_parameters() {
        let pairs = |q: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap();
        assert_eq!(limit(&pairs("")).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(&pairs("limit=1000")).unwrap(), 1000);
        for bad in ["limit=0", "limit=1001", "limit=x", "limit=-1"] {
            assert!(limit(&pairs(bad)).is_err(), "{bad}");
        }
        let e = only_params(&pairs("adress=a@b"), &["address"]).unwrap_err();
        assert!(e.to_string().contains("\"adress\""), "{e}");
    }

    #[test]
    fn statuses() {
        let status = |e: AdminError| ApiError::from(e).status;
        assert_eq!(status(AdminError::NothingMatched), StatusCode::NOT_FOUND);
        assert_eq!(
            status(AdminError::InFlight("x".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(status(AdminError::Empty), StatusCode::BAD_REQUEST);
        assert_eq!(status(AdminError::TooLarge), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
