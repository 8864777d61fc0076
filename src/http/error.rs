//! Errors of the JSON APIs: a status and a message, rendered `{"message": "..."}` (Mailgun's
//! shape). Store failures become a 500 whose cause goes to the log, not to the client.
//!
//! Every error of a JSON API is JSON in that API's shape ([`Api`]): the handlers build their
//! own, and [`json_errors`] rewraps whatever else answers under an API's paths — axum's 404 for
//! an unknown path, its 405 for a wrong method, an extractor's plain-text rejection.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

/// An API error with the status and message the client sees.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "Invalid private key".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure in HTTP handler");
        ApiError {
            status: store_status(&e),
            message: store_message(&e).into(),
        }
    }
}

/// The status of a store failure: `507 Insufficient Storage` while the disk is below
/// `storage.min_free` or full (temporary: nothing was written, try again later), `503` while
/// the store recovers from another failed write, else 500.
pub fn store_status(e: &StoreError) -> StatusCode {
    if e.is_full() {
        StatusCode::INSUFFICIENT_STORAGE
    } else if e.is_temporary() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// What a client is told of a store failure (the cause goes to the log).
pub fn store_message(e: &StoreError) -> &'static str {
    if e.is_full() {
        "insufficient storage: quell's disk is below its free-space floor; nothing was changed, try again later"
    } else if e.is_temporary() {
        "storage unavailable: quell is recovering from a failed write; try again later"
    } else {
        "internal error"
    }
}

/// The JSON APIs, told apart by path, each with its own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v3/…`: `{"message": …}`.
    Mailgun,
    /// `/api/1.0/…`, `/api/1.3/…`: `{"status":"error","code":…,"name":…,"message":…}`.
    Mandrill,
    /// `/engage…`: `{"status":0,"error":…}`.
    Mixpanel,
    /// `/api/app/data-deletions/…`: `{"status":"error","error":…}`.
    Deletions,
    /// quell's own `/api/…` (suppressions, queue, messages): `{"message": …}`.
    Admin,
}

impl Api {
    /// The API `path` belongs to; `None` for what is not a JSON API (health, metrics, the
    /// unsubscribe pages, the OpenAPI document).
    pub fn of(path: &str) -> Option<Api> {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/v3") {
            Some(Api::Mailgun)
        } else if under("/api/1.0") || under("/api/1.3") {
            Some(Api::Mandrill)
        } else if under("/api/app/data-deletions") {
            Some(Api::Deletions)
        } else if under("/engage") {
            Some(Api::Mixpanel)
        } else if under("/api") {
            Some(Api::Admin)
        } else {
            None
        }
    }

    /// An error answer in this API's shape.
    pub fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Api::Mailgun | Api::Admin => ApiError {
                status,
                message: message.to_string(),
            }
            .into_response(),
            Api::Mandrill => super::mandrill::error_response(status, message),
            Api::Mixpanel => super::mixpanel::failure(status, message, None),
            Api::Deletions => super::mixpanel::deletion_failure(status, message),
        }
    }
}

/// Longest body of a non-JSON error that is kept as the message (axum's rejections are a line).
const MAX_REWRAPPED: usize = 4096;
/// Longest path repeated in a 404 or 405 message.
const PATH_IN_ERROR: usize = 200;

/// Middleware: an error (4xx or 5xx) under a JSON API's paths that is not JSON already is
/// answered again in the API's shape, its text (or, when it has none, what happened) as the
/// message. Status and headers (`Allow` of a 405) are kept.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let Some(api) = Api::of(request.uri().path()) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(PATH_IN_ERROR).collect();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REWRAPPED)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::NOT_FOUND {
        format!("no such endpoint: {method} {path}")
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        format!("method {method} is not allowed on {path} (allowed: {allowed})")
    } else {
        status.canonical_reason().unwrap_or("error").to_string()
    };
    let mut rewrapped = api.error(status, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewrapped.headers_mut().append(name.clone(), value.clone());
        }
    }
    if method == Method::HEAD {
        *rewrapped.body_mut() = axum::body::Body::empty();
    }
    rewrapped
}

/// Whether a response declares a JSON body (`application/json` or `…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    super::extract::media_type(headers)
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_by_path() {
        for (path, api) in [
            ("/v3/example.com/unsubscribes", Some(Api::Mailgun)),
            ("/v3", Some(Api::Mailgun)),
            ("/v3x", None),
            ("/api/1.0/rejects/add.json", Some(Api::Mandrill)),
            ("/api/1.3/nope", Some(Api::Mandrill)),
            ("/api/app/data-deletions/v3.0/", Some(Api::Deletions)),
            ("/engage", Some(Api::Mixpanel)),
            ("/engage/import", Some(Api::Mixpanel)),
            ("/engagement", None),
            ("/api/suppressions", Some(Api::Admin)),
            ("/api/messages/1", Some(Api::Admin)),
            ("/api/1.2/x", Some(Api::Admin)),
            ("/u/token", None),
            ("/healthz", None),
            ("/openapi.json", None),
        ] {
            assert_eq!(Api::of(path), api, "{path}");
        }
    }
}
