//! `POST /v3/{domain}/{resource}`: a JSON array of up to 1000 records, one JSON object, or one
//! record as a form (`application/x-www-form-urlencoded` or `multipart/form-data`, as Mailgun's
//! clients send it). The whole submission is validated before anything is written, then written
//! in one atomic batch: a request either adds every record or none.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::entry::read_body;
use super::record::{RawRecord, RecordError};
use super::{write_batch, Resource, Target};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::http::form;
use crate::state::AppState;

/// Mailgun's batch limit.
pub(super) const MAX_RECORDS: usize = 1000;
/// Largest body read: 1000 records with long `error` texts fit comfortably.
const MAX_ADD_BODY: usize = 8 * 1024 * 1024;

/// What a `POST` carried.
#[derive(Debug, PartialEq)]
pub(super) enum Submission {
    /// One record (a JSON object or a form): answered with its address.
    One(RawRecord),
    /// A JSON array: answered with the count.
    Many(Vec<RawRecord>),
}

impl Submission {
    /// Parses a JSON body: an array of records or a single record object.
    pub fn from_json(body: &[u8]) -> Result<Submission, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(ApiError::bad_request("the array of records is empty"));
                }
                if items.len() > MAX_RECORDS {
                    return Err(ApiError::bad_request(format!(
                        "{} records submitted; at most {MAX_RECORDS} are accepted per request",
                        items.len()
                    )));
                }
                let records = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| RawRecord::from_json(v).map_err(|e| item_error(i, &e)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Submission::Many(records))
            }
            object @ Value::Object(_) => RawRecord::from_json(&object)
                .map(Submission::One)
                .map_err(|e| ApiError::bad_request(e.to_string())),
            _ => Err(ApiError::bad_request(
                "request body must be a JSON array of records or one record object",
            )),
        }
    }

    /// Validates every record for `R` (nothing is written yet): the normalised addresses and
    /// entries, or a 400 naming the first bad record (by index in a batch) and field.
    pub fn validate<R: Resource>(
        &self,
        now: i64,
    ) -> Result<Vec<(String, crate::store::Suppression)>, ApiError> {
        match self {
            Submission::One(raw) => Ok(vec![raw
                .validate::<R>(now)
                .map_err(|e| ApiError::bad_request(e.to_string()))?]),
            Submission::Many(records) => records
                .iter()
                .enumerate()
                .map(|(i, raw)| raw.validate::<R>(now).map_err(|e| item_error(i, &e)))
                .collect(),
        }
    }
}

fn item_error(index: usize, e: &RecordError) -> ApiError {
    ApiError::bad_request(format!("item {index}: {e}"))
}

/// How the body is encoded, from `Content-Type`.
#[derive(Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
    Multipart,
}

fn encoding(content_type: Option<&str>) -> Result<Option<Encoding>, ApiError> {
    let Some(ct) = content_type else {
        return Ok(None);
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Some(Encoding::Json)),
        "application/x-www-form-urlencoded" => Ok(Some(Encoding::Form)),
        "multipart/form-data" => Ok(Some(Encoding::Multipart)),
        _ if essence.ends_with("+json") => Ok(Some(Encoding::Json)),
        _ => Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "Content-Type {ct:?} is not supported: send application/json, \
                 application/x-www-form-urlencoded or multipart/form-data"
            ),
        }),
    }
}

/// Reads the submission in whichever encoding the request declares. Without a `Content-Type`,
/// a body starting with `[` or `{` is JSON, anything else a form.
async fn submission(state: &AppState, request: Request) -> Result<Submission, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match encoding(content_type)? {
        Some(Encoding::Multipart) => {
            let mut multipart =
                Multipart::from_request(request, state)
                    .await
                    .map_err(|e| ApiError {
                        status: e.status(),
                        message: e.body_text(),
                    })?;
            let mut pairs = Vec::new();
            while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
                let name = field.name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                let value = form::text(&name, &bytes)
                    .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
                pairs.push((name, value));
            }
            Ok(Submission::One(RawRecord::from_pairs(pairs)))
        }
        declared => {
            let body = read_body(request.into_body(), MAX_ADD_BODY).await?;
            let json = match declared {
                Some(e) => e == Encoding::Json,
                None => matches!(
                    body.iter().find(|b| !b.is_ascii_whitespace()),
                    Some(b'[' | b'{')
                ),
            };
            if json {
                return Submission::from_json(&body);
            }
            let pairs = form::pairs(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
            Ok(Submission::One(RawRecord::from_pairs(pairs)))
        }
    }
}

/// A multipart parse failure, with its own (4xx) status.
pub(super) fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError {
        status,
        message: format!("invalid multipart body: {}", e.body_text()),
    }
}

/// `POST /v3/{domain}/{resource}`.
pub(super) async fn add<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let submission = submission(&state, request).await?;
    let entries = submission.validate::<R>(chrono::Utc::now().timestamp())?;
    let count = entries.len();
    let suppressions = state.suppressions.clone();
    let scope = target.scope.clone();
    tokio::task::spawn_blocking(move || write_batch::<R>(&suppressions, &scope, entries))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "suppression write task failed");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "internal error".into(),
            }
        })??;
    // A 200 means the entries survive a crash of quell.
    state.suppressions.sync().await?;
    tracing::info!(resource = R::NAME, scope = %target.scope, count, "suppressions added");
    Ok(Json(match submission {
        Submission::One(raw) => json!({
            "message": R::ADDED_ONE,
            "address": raw.address.unwrap_or_default(),
        }),
        Submission::Many(_) => json!({ "message": format!("{count} {}", R::ADDED_MANY) }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::mailgun::{Bounces, Unsubscribes};

    #[test]
    fn json_shapes() {
        let one = Submission::from_json(br#"{"address":"a@b.io","tags":["x"]}"#).unwrap();
        assert!(matches!(one, Submission::One(ref r) if r.tags == ["x"]));
        let many =
            Submission::from_json(br#"[{"address":"a@b.io"},{"address":"c@d.io"}]"#).unwrap();
        assert!(matches!(many, Submission::Many(ref v) if v.len() == 2));
        for bad in [&b"[]"[..], b"\"a@b.io\"", b"{not json", b"[1]"] {
            let e = Submission::from_json(bad).unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn batches_over_the_limit_are_refused_whole() {
        let items: Vec<Value> = (0..=MAX_RECORDS)
            .map(|i| json!({"address": format!("u{i}@x.io")}))
            .collect();
        let body = serde_json::to_vec(&items).unwrap();
        let e = Submission::from_json(&body).unwrap_err();
        assert!(e.message.contains("1001 records"), "{}", e.message);
    }

    #[test]
    fn one_bad_item_fails_the_batch_and_is_named() {
        let s = Submission::from_json(br#"[{"address":"a@b.io"},{"address":"nope"}]"#).unwrap();
        let e = s.validate::<Unsubscribes>(0).unwrap_err();
        assert!(
            e.message.starts_with("item 1: address \"nope\""),
            "{}",
            e.message
        );
        let s = Submission::from_json(br#"[{"address":"a@b.io","code":"x"}]"#).unwrap();
        assert!(s
            .validate::<Bounces>(0)
            .unwrap_err()
            .message
            .starts_with("item 0: code"));
        // The same record is fine where the field does not apply.
        assert!(s.validate::<Unsubscribes>(0).is_ok());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            encoding(Some("application/json; charset=utf-8")).unwrap(),
            Some(Encoding::Json)
        );
        assert_eq!(
            encoding(Some("Application/X-WWW-Form-Urlencoded")).unwrap(),
            Some(Encoding::Form)
        );
        assert_eq!(
            encoding(Some("multipart/form-data; boundary=x")).unwrap(),
            Some(Encoding::Multipart)
        );
        assert_eq!(encoding(None).unwrap(), None);
        assert_eq!(
            encoding(Some("text/csv")).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
