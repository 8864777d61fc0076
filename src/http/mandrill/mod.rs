//! Mandrill-compatible rejects and allowlists API (SPEC §6.2), so that the Mandrill and Mailchimp
//! Transactional client libraries work against quell with only their base URL changed.
//!
//! Every call is a `POST` of a JSON object to `/api/{1.0,1.3}/{call}` with or without `.json`
//! (mailchimp-transactional for Python appends it, the Node client does not); `whitelists/` is
//! the older clients' name for `allowlists/`. Denylist entries live in scope `global`.
//!
//! | file | concern |
//! |---|---|
//! | [`rejects`] | `rejects/add`, `rejects/list`, `rejects/delete`: the global denylist |
//! | [`allowlists`] | `allowlists/add`, `allowlists/list`, `allowlists/delete` (alias `whitelists/`) |
//! | this file | routes, the request (body, key, fields), Mandrill's error shape, its dates |

mod allowlists;
mod rejects;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::auth::{key_from_header, key_is_valid};
use crate::address::normalize;
use crate::state::AppState;
use crate::store::StoreError;

/// API versions served: 1.0 is Mandrill's documented base (and the older clients'), 1.3 the
/// current mailchimp-transactional default.
const VERSIONS: [&str; 2] = ["1.0", "1.3"];

/// Output formats Mandrill offers besides JSON, as a path suffix. quell answers them with a
/// `ValidationError` rather than a bare 404, so a client set to one of them learns why.
const OTHER_FORMATS: [&str; 3] = ["xml", "php", "yaml"];

/// Largest request body read: a call carries a few short fields.
const MAX_BODY: usize = 1024 * 1024;

/// Longest `comment` kept as an entry's `detail`: lists return it for up to 1000 entries.
const MAX_COMMENT: usize = 4096;

/// Mandrill's limit on a subaccount id.
const MAX_SUBACCOUNT: usize = 255;

/// The Mandrill routes, merged into the HTTP router by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    let calls: [(&str, MethodRouter<AppState>); 9] = [
        ("rejects/add", post(rejects::add)),
        ("rejects/list", post(rejects::list)),
        ("rejects/delete", post(rejects::delete)),
        ("allowlists/add", post(allowlists::add)),
        ("allowlists/list", post(allowlists::list)),
        ("allowlists/delete", post(allowlists::delete)),
        ("whitelists/add", post(allowlists::add)),
        ("whitelists/list", post(allowlists::list)),
        ("whitelists/delete", post(allowlists::delete)),
    ];
    let mut router = Router::new();
    for version in VERSIONS {
        for (call, handler) in &calls {
            let path = format!("/api/{version}/{call}");
            let handler = handler.clone().fallback(wrong_method);
            router = router
                .route(&format!("{path}.json"), handler.clone())
                .route(&path, handler);
            for format in OTHER_FORMATS {
                router = router.route(&format!("{path}.{format}"), any(other_format));
            }
        }
    }
    router
}

/// Any method but `POST` on a call's path.
async fn wrong_method() -> MandrillError {
    MandrillError::WrongMethod
}

/// A call asked for XML, PHP or YAML output.
async fn other_format() -> MandrillError {
    MandrillError::Validation("quell answers in JSON only: use the .json suffix or none".into())
}

/// Why a call failed, rendered in Mandrill's shape
/// `{"status":"error","code":…,"name":…,"message":…}`. Mandrill itself answers every error with
/// 500; quell uses the 4xx that says what happened, because clients retry a 5xx (SPEC §6).
#[derive(Debug, thiserror::Error)]
pub enum MandrillError {
    /// No key, or not one of `http.api_keys` (always, when none is configured).
    #[error("Invalid API key")]
    InvalidKey,
    /// A field is missing, of the wrong type or not acceptable, or the body is not JSON.
    #[error("Validation error: {0}")]
    Validation(String),
    /// The body is over [`MAX_BODY`].
    #[error("Validation error: the request body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// `rejects/delete` of an address that has no entry: Mandrill's `Invalid_Reject`.
    #[error("Email {0:?} is not in the rejection list")]
    NotRejected(String),
    /// A method other than `POST`.
    #[error("Validation error: Mandrill API calls are made with POST")]
    WrongMethod,
    /// The store failed; the cause goes to the log, the client sees a general error (or, with
    /// the disk below its floor, that nothing was changed and to try again later).
    #[error("{}", if .0.is_temporary() { crate::http::error::store_message(.0) } else { "An unexpected error occurred processing the request" })]
    Store(#[from] StoreError),
    /// A blocking store scan panicked or was cancelled; logged like a store failure.
    #[error("An unexpected error occurred processing the request")]
    Task(#[from] tokio::task::JoinError),
}

impl MandrillError {
    /// The HTTP status: never 200, never 429, 5xx only for a store failure.
    pub fn status(&self) -> StatusCode {
        match self {
            MandrillError::InvalidKey => StatusCode::UNAUTHORIZED,
            MandrillError::Validation(_) => StatusCode::BAD_REQUEST,
            MandrillError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MandrillError::NotRejected(_) => StatusCode::NOT_FOUND,
            MandrillError::WrongMethod => StatusCode::METHOD_NOT_ALLOWED,
            MandrillError::Store(e) => crate::http::error::store_status(e),
            MandrillError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Mandrill's error name, which the clients map to their exception classes.
    pub fn name(&self) -> &'static str {
        match self {
            MandrillError::InvalidKey => "Invalid_Key",
            MandrillError::Validation(_) | MandrillError::TooLarge | MandrillError::WrongMethod => {
                "ValidationError"
            }
            MandrillError::NotRejected(_) => "Invalid_Reject",
            MandrillError::Store(_) | MandrillError::Task(_) => "GeneralError",
        }
    }

    /// The numeric code: Mandrill's -1 and -2 for `Invalid_Key` and `ValidationError`; the
    /// others are quell's own (clients branch on the name).
    pub fn code(&self) -> i32 {
        match self {
            MandrillError::InvalidKey => -1,
            MandrillError::Validation(_) | MandrillError::TooLarge | MandrillError::WrongMethod => {
                -2
            }
            MandrillError::NotRejected(_) => 13,
            MandrillError::Store(_) | MandrillError::Task(_) => -99,
        }
    }
}

/// An error that did not come from a call's handler (an unknown call's 404, see
/// [`crate::http::error::json_errors`]) in Mandrill's shape, named by its status.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let (code, name) = match status {
        StatusCode::UNAUTHORIZED => (-1, "Invalid_Key"),
        s if s.is_server_error() => (-99, "GeneralError"),
        _ => (-2, "ValidationError"),
    };
    let body = json!({ "status": "error", "code": code, "name": name, "message": message });
    (status, Json(body)).into_response()
}

impl IntoResponse for MandrillError {
    fn into_response(self) -> Response {
        match &self {
            MandrillError::Store(e) => {
                tracing::error!(error = %e, "store failure in Mandrill API call")
            }
            MandrillError::Task(e) => {
                tracing::error!(error = %e, "store scan failed in Mandrill API call")
            }
            _ => {}
        }
        let body = json!({
            "status": "error",
            "code": self.code(),
            "name": self.name(),
            "message": self.to_string(),
        });
        (self.status(), Json(body)).into_response()
    }
}

/// The fields of an authenticated call: the body's JSON object, admitted only with a valid key
/// from its `"key"` field or, when that is absent, the `Authorization` header (SPEC §6).
#[derive(Debug)]
pub(super) struct Params(Map<String, Value>);

impl FromRequest<AppState> for Params {
    type Rejection = MandrillError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| MandrillError::TooLarge)?;
        let params = Params::parse(&bytes)?;
        let header_key = key_from_header(&parts);
        let key = match params.0.get("key") {
            None | Some(Value::Null) => header_key.as_deref(),
            Some(Value::String(key)) => Some(key.as_str()),
            Some(_) => None,
        };
        if !key.is_some_and(|key| key_is_valid(state, key)) {
            return Err(MandrillError::InvalidKey);
        }
        Ok(params)
    }
}

impl Params {
    /// The body as a JSON object; an empty body is an empty object (every field absent).
    fn parse(body: &[u8]) -> Result<Params, MandrillError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => Ok(Params(fields)),
            Ok(_) => Err(MandrillError::Validation(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(MandrillError::Validation(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    /// A string field; absent and `null` are both `None` (SPEC §6.2).
    fn string(&self, name: &str) -> Result<Option<&str>, MandrillError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(MandrillError::Validation(format!(
                "{name} must be a string"
            ))),
        }
    }

    /// The `email` a call acts on, as given (for the answer) and normalised (for the store).
    fn email(&self) -> Result<(&str, String), MandrillError> {
        let given = self
            .string("email")?
            .ok_or_else(|| MandrillError::Validation("email is required".into()))?;
        Ok((given, address(given)?))
    }

    /// A boolean field, `false` when absent. Also takes `0`/`1` and `"true"`/`"false"`, as
    /// clients that send form-like values do.
    fn flag(&self, name: &str) -> Result<bool, MandrillError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(Value::String(s)) if s == "true" || s == "1" => Ok(true),
            Some(Value::String(s)) if s == "false" || s == "0" || s.is_empty() => Ok(false),
            Some(_) => Err(MandrillError::Validation(format!(
                "{name} must be a boolean"
            ))),
        }
    }

    /// The optional `comment`, kept as an entry's `detail`; bounded by [`MAX_COMMENT`].
    fn comment(&self) -> Result<Option<&str>, MandrillError> {
        let comment = self.string("comment")?;
        if comment.is_some_and(|c| c.len() > MAX_COMMENT) {
            return Err(MandrillError::Validation(format!(
                "comment is longer than {MAX_COMMENT} bytes"
            )));
        }
        Ok(comment)
    }

    /// The optional `subaccount`, validated as Mandrill does and echoed in answers. quell has no
    /// subaccounts: entries made through any subaccount are global.
    fn subaccount(&self) -> Result<Option<&str>, MandrillError> {
        let subaccount = self.string("subaccount")?;
        if subaccount.is_some_and(|s| s.chars().count() > MAX_SUBACCOUNT) {
            return Err(MandrillError::Validation(format!(
                "subaccount is longer than {MAX_SUBACCOUNT} characters"
            )));
        }
        Ok(subaccount)
    }
}

/// A normalised address, or the `ValidationError` saying what is wrong with it.
fn address(given: &str) -> Result<String, MandrillError> {
    normalize(given).map_err(|e| MandrillError::Validation(format!("email: {e}")))
}

/// Mandrill's timestamp format, `YYYY-MM-DD HH:MM:SS` in UTC.
use crate::time::mandrill as mandrill_time;

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_that_are_not_an_object_are_validation_errors() {
        assert!(params("").0.is_empty());
        assert!(params(" \r\n").0.is_empty());
        for bad in ["not json", "[1]", "\"a@b.io\"", "{\"email\":", "null"] {
            let e = Params::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.name(), "ValidationError", "{bad}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn null_fields_are_absent() {
        let p = params(r#"{"email":null,"comment":null,"subaccount":null,"include_expired":null}"#);
        assert_eq!(p.string("email").unwrap(), None);
        assert_eq!(p.comment().unwrap(), None);
        assert_eq!(p.subaccount().unwrap(), None);
        assert!(!p.flag("include_expired").unwrap());
        let e = p.email().unwrap_err();
        assert!(e.to_string().contains("email is required"), "{e}");
    }

    #[test]
    fn fields_of_the_wrong_type_name_the_field() {
        let p = params(r#"{"email":5,"include_expired":"maybe","comment":[]}"#);
        assert!(p.email().unwrap_err().to_string().contains("email must be"));
        assert!(p
            .flag("include_expired")
            .unwrap_err()
            .to_string()
            .contains("include_expired must be"));
        assert!(p.comment().is_err());
    }

    #[test]
    fn flags_accept_form_like_values() {
        for (v, want) in [
            ("true", true),
            ("false", false),
            ("1", true),
            ("0", false),
            ("\"true\"", true),
            ("\"0\"", false),
        ] {
            let p = params(&format!(r#"{{"f":{v}}}"#));
            assert_eq!(p.flag("f").unwrap(), want, "{v}");
        }
        assert!(!params("{}").flag("f").unwrap());
        assert!(params(r#"{"f":2}"#).flag("f").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        let p = params(r#"{"email":" Bob@Example.COM "}"#);
        assert_eq!(
            p.email().unwrap(),
            (" Bob@Example.COM ", "bob@example.com".into())
        );
        let e = params(r#"{"email":"bob"}"#).email().unwrap_err();
        assert_eq!((e.name(), e.code()), ("ValidationError", -2));
    }

    #[test]
    fn comment_and_subaccount_are_bounded() {
        let long = "x".repeat(MAX_COMMENT + 1);
        assert!(params(&format!(r#"{{"comment":"{long}"}}"#))
            .comment()
            .is_err());
        let sub = "s".repeat(MAX_SUBACCOUNT);
        assert_eq!(
            params(&format!(r#"{{"subaccount":"{sub}"}}"#))
                .subaccount()
                .unwrap(),
            Some(sub.as_str())
        );
        let sub = "s".repeat(MAX_SUBACCOUNT + 1);
        assert!(params(&format!(r#"{{"subaccount":"{sub}"}}"#))
            .subaccount()
            .is_err());
    }

    #[test]
    fn errors_have_mandrills_shape_and_a_4xx() {
        let cases = [
            (MandrillError::InvalidKey, 401, "Invalid_Key", -1),
            (
                MandrillError::Validation("x".into()),
                400,
                "ValidationError",
                -2,
            ),
            (MandrillError::TooLarge, 413, "ValidationError", -2),
            (
                MandrillError::NotRejected("a@b.io".into()),
                404,
                "Invalid_Reject",
                13,
            ),
            (MandrillError::WrongMethod, 405, "ValidationError", -2),
        ];
        for (e, status, name, code) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!((e.name(), e.code()), (name, code));
        }
        assert_eq!(MandrillError::InvalidKey.to_string(), "Invalid API key");
    }

    #[test]
    fn times_are_mandrills_format_in_utc() {
        assert_eq!(mandrill_time(1_357_054_227), "2013-01-01 15:30:27");
        assert_eq!(mandrill_time(0), "1970-01-01 00:00:00");
    }
}
