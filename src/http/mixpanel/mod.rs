//! Mixpanel-style bulk `$unsubscribed` (SPEC §6.3), scope `global`: applications that already
//! tell Mixpanel who unsubscribed can tell quell the same way, with Mixpanel's own client
//! libraries pointed at quell.
//!
//! What the official clients send (read from their sources) and what quell does with it:
//!
//! | client | request | answer expected |
//! |---|---|---|
//! | mixpanel-python `people_set`/`people_unset` | `POST /engage`, form `data=<JSON>&verbose=1&ip=0` (a `BufferedConsumer` sends a JSON array of ≤ 50) | `{"status":1}` |
//! | mixpanel-node `people.set`/`unset` | `GET /engage?ip=0&verbose=0&data=<base64 JSON>` (or `POST` with form `data=<base64>`) | the body `1` when `verbose=0` |
//! | Mixpanel's HTTP docs | `POST /engage`, `Content-Type: application/json`, an array | `1` or `{"status":1,"error":null}` |
//!
//! Answers: `{"status":1,"error":null}` (or the bare `1` when the request says `verbose=0`);
//! failures are always `{"status":0,"error":"…"}` with a 4xx naming the problem (a 5xx only for
//! a store failure, where a client's retry is right).
//!
//! | file | concern |
//! |---|---|
//! | [`deletions`] | `/api/app/data-deletions/v3.0/`: GDPR/CCPA deletion tasks |
//! | [`engage`] | `/engage`: body encodings, `$token` auth, whole-request validation |
//! | [`update`] | one record: operations on `$email` and `$unsubscribed` |
//! | [`unsubscribed`] | what a `$unsubscribed` value means; dates |
//! | [`target`] | distinct ids, and ids that are addresses |
//! | [`plan`] | the net changes of a request or batch, written to the store |
//! | [`import`] | `POST /engage/import`: the request and its answer |
//! | [`report`] | what an import did (counts, rejected rows) and why it stopped early |
//! | [`rows`] | the import's CSV rows, checked and written in batches, two threads deep |
//! | [`upload`] | the import body streamed from HTTP to the CSV reader, bounded |
//! | [`lines`] | the import's lines: line ends made uniform, each line bounded |
//! | [`fields`] | one line split into CSV fields |

mod deletions;
mod engage;
mod fields;
mod import;
mod lines;
mod plan;
mod report;
mod rows;
mod target;
mod unsubscribed;
mod update;
mod upload;

use axum::extract::DefaultBodyLimit;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::http::auth::{key_from_header, key_is_valid};
use crate::state::AppState;

/// The Mixpanel routes, merged into the HTTP router by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        // mixpanel-node sends GET by default; mixpanel-js appends a slash.
        .route("/engage", get(engage::engage).post(engage::engage))
        .route("/engage/", get(engage::engage).post(engage::engage))
        .route("/api/app/data-deletions/v3.0/", post(deletions::create))
        .route(
            "/api/app/data-deletions/v3.0/{task_id}",
            get(deletions::status),
        )
        .route(
            "/engage/import",
            // Raises the router's body limit for this route only (multipart uploads).
            post(import::import).layer(DefaultBodyLimit::max(upload::MAX_IMPORT_BODY)),
        )
}

/// How a success is answered: Mixpanel answers `1` unless asked for `verbose=1`; quell answers
/// JSON unless asked for `verbose=0` (mixpanel-node's default, which accepts only the bare `1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verbosity {
    Json,
    Terse,
}

impl Verbosity {
    fn from_param(value: Option<&str>) -> Verbosity {
        match value.map(str::trim) {
            Some("0") | Some("false") => Verbosity::Terse,
            _ => Verbosity::Json,
        }
    }

    fn success(self) -> Response {
        match self {
            Verbosity::Json => Json(json!({ "status": 1, "error": null })).into_response(),
            Verbosity::Terse => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "1").into_response()
            }
        }
    }
}

/// A failure in Mixpanel's shape, `{"status":0,"error":message}`, plus `extra` fields (the
/// import's partial report).
pub(crate) fn failure(
    status: StatusCode,
    message: &str,
    extra: Option<Map<String, Value>>,
) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!(0));
    body.insert("error".into(), json!(message));
    if let Some(extra) = extra {
        body.extend(extra);
    }
    (status, Json(Value::Object(body))).into_response()
}

/// A failure of the data-deletions API, in its shape `{"status":"error","error":message}`.
pub(crate) fn deletion_failure(status: StatusCode, message: &str) -> Response {
    let body = json!({ "status": "error", "error": message });
    (status, Json(body)).into_response()
}

/// Whether the `Authorization` header carries a valid key: `Bearer KEY`, Basic `api:KEY`
/// (Mailgun style), or Basic `KEY:` (Mixpanel's style: the secret as user name, no password).
fn header_authorized(state: &AppState, parts: &Parts) -> bool {
    let key = key_from_header(parts)
        .filter(|k| !k.is_empty())
        .or_else(|| basic_user(parts));
    key.is_some_and(|k| key_is_valid(state, &k))
}

/// The user name of `Authorization: Basic base64(user:)` with an empty password.
fn basic_user(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (password.is_empty() && !user.is_empty()).then(|| user.to_string())
}

/// The lowercased media type of `Content-Type`, without parameters.
fn media_type(parts: &Parts) -> Option<String> {
    crate::http::extract::media_type(&parts.headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = Request::builder().uri("/engage");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn basic_user_only_with_empty_password() {
        assert_eq!(
            basic_user(&parts(Some(&format!("Basic {}", b64("secret:"))))).as_deref(),
            Some("secret")
        );
        assert_eq!(
            basic_user(&parts(Some(&format!("Basic {}", b64("api:key"))))),
            None
        );
        assert_eq!(basic_user(&parts(Some("Bearer x"))), None);
        assert_eq!(basic_user(&parts(None)), None);
    }

    #[test]
    fn verbosity() {
        assert_eq!(Verbosity::from_param(Some("0")), Verbosity::Terse);
        assert_eq!(Verbosity::from_param(Some("1")), Verbosity::Json);
        assert_eq!(Verbosity::from_param(None), Verbosity::Json);
    }

    #[test]
    fn media_types() {
        let p = Request::builder()
            .header(header::CONTENT_TYPE, "Text/CSV; charset=utf-8")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(media_type(&p).as_deref(), Some("text/csv"));
        assert_eq!(media_type(&parts(None)), None);
    }
}
