//! Errors of the JSON APIs: a status and a message, rendered `{"message": "..."}` (Mailgun's
//! shape). Store failures become a 500 whose cause goes to the log, not to the client.

use axum::http::StatusCode;
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}
