//! `GET`/`POST /engage`: one profile-update record or an array of up to [`MAX_RECORDS`].
//!
//! The records arrive as a raw JSON body (Mixpanel's HTTP docs), or in a `data` parameter of a
//! form body or of the query string (the client libraries), holding JSON or base64 JSON. The
//! whole request is read, authorised and validated — every record resolved to an address —
//! before anything is written, so a bad record fails the request and changes nothing.
//!
//! An address is found, in order: the record's own `$set.$email`, the profile of its distinct
//! id (as set by an earlier request or an earlier record of this one), the distinct id itself
//! when it is an address. Otherwise the record is refused.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

use super::plan::{Plan, Written};
use super::target::DistinctId;
use super::unsubscribed::Unsubscribed;
use super::update::{Change, RecordError, Update};
use super::{failure, header_authorized, media_type, Verbosity};
use crate::http::auth::key_is_valid;
use crate::http::form;
use crate::http::MAX_BODY;
use crate::id::now_secs;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Records per request, as Mixpanel's `/engage` allows.
pub(super) const MAX_RECORDS: usize = 2000;

/// Why a request was refused. Nothing has been written when any of these is returned, except
/// for [`EngageError::Store`] (a failure part-way through the writes).
#[derive(Debug, thiserror::Error)]
pub(super) enum EngageError {
    #[error("invalid query string: {0}")]
    Query(String),
    #[error("the request body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("Content-Type {0:?} is not supported: send application/json, or application/x-www-form-urlencoded with data=")]
    ContentType(String),
    #[error("invalid form body: {0}")]
    Form(String),
    #[error("no data: send the records as a JSON body, or in a data= parameter")]
    NoData,
    #[error("data is neither JSON nor base64-encoded JSON")]
    Base64,
    #[error("data is not valid JSON: {0}")]
    Json(String),
    #[error("data must be a JSON object or an array of objects")]
    Shape,
    #[error("no records: the array is empty")]
    Empty,
    #[error("{0} records submitted; at most {MAX_RECORDS} are accepted per request")]
    TooMany(usize),
    #[error("records[{0}]: $token is missing (or send Authorization: Bearer KEY)")]
    MissingToken(usize),
    #[error("records[{0}]: $token is not a valid API key")]
    BadToken(usize),
    #[error("records[{index}]: {source}")]
    Record { index: usize, source: RecordError },
    #[error("records[{index}]: unknown $distinct_id {id:?}: no $email in the record, no profile, and not an address")]
    Unknown { index: usize, id: String },
    #[error("{}", crate::http::error::store_message(.0))]
    Store(#[from] StoreError),
    #[error("internal error")]
    Task,
}

impl EngageError {
    fn status(&self) -> StatusCode {
        match self {
            EngageError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EngageError::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            EngageError::MissingToken(_) | EngageError::BadToken(_) => StatusCode::UNAUTHORIZED,
            EngageError::Store(e) => crate::http::error::store_status(e),
            EngageError::Task => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for EngageError {
    fn into_response(self) -> Response {
        if let EngageError::Store(e) = &self {
            tracing::error!(error = %e, "store failure in /engage");
        }
        failure(self.status(), &self.to_string(), None)
    }
}

/// `GET`/`POST /engage`.
pub(super) async fn engage(State(state): State<AppState>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(verbosity) => verbosity.success(),
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, request: Request) -> Result<Verbosity, EngageError> {
    let (parts, body) = request.into_parts();
    let (data, verbosity) = payload(&parts, body).await?;
    let records = records(&data)?;
    authorise(state, &parts, &records)?;
    let updates = records
        .iter()
        .enumerate()
        .map(|(index, r)| {
            Update::from_json(r).map_err(|source| EngageError::Record { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let store = state.store.clone();
    let suppressions = state.suppressions.clone();
    let count = updates.len();
    let written: Written = tokio::task::spawn_blocking(move || {
        let plan = plan(&store, &updates)?;
        Ok::<_, EngageError>(plan.write(&suppressions, now_secs())?)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "/engage write task failed");
        EngageError::Task
    })??;
    // A 200 means the changes survive a crash of quell.
    state.suppressions.sync().await?;
    tracing::info!(
        records = count,
        suppressed = written.suppressed,
        resubscribed = written.resubscribed,
        unchanged = written.unchanged,
        profiles = written.profiles,
        "mixpanel engage applied"
    );
    Ok(verbosity)
}

/// The `data` (as bytes) and the requested verbosity, wherever the client put them.
async fn payload(parts: &Parts, body: Body) -> Result<(Vec<u8>, Verbosity), EngageError> {
    let query = form::pairs(parts.uri.query().unwrap_or("").as_bytes())
        .map_err(|e| EngageError::Query(e.to_string()))?;
    let mut data = param(&query, "data").map(|s| s.as_bytes().to_vec());
    let mut verbose = param(&query, "verbose").map(str::to_string);
    let body = read_body(body).await?;
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let json_body = match media_type(parts).as_deref() {
        Some("application/json") => true,
        Some(t) if t.ends_with("+json") => true,
        Some("application/x-www-form-urlencoded") => false,
        // No type (mixpanel-node's POST) or text/plain: go by the first byte.
        None | Some("text/plain") => matches!(first, Some(b'[' | b'{')),
        Some(other) => return Err(EngageError::ContentType(other.to_string())),
    };
    if json_body {
        data = Some(body.to_vec());
    } else if first.is_some() {
        let fields = form::pairs(&body).map_err(|e| EngageError::Form(e.to_string()))?;
        if let Some(d) = param(&fields, "data") {
            data = Some(d.as_bytes().to_vec());
        }
        if let Some(v) = param(&fields, "verbose") {
            verbose = Some(v.to_string());
        }
    }
    let data = data.ok_or(EngageError::NoData)?;
    Ok((data, Verbosity::from_param(verbose.as_deref())))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads the body, refusing it past [`MAX_BODY`].
async fn read_body(body: Body) -> Result<bytes::Bytes, EngageError> {
    use crate::http::extract::{read_body, BodyError};
    read_body(body, MAX_BODY).await.map_err(|e| match e {
        BodyError::TooLarge(_) => EngageError::TooLarge,
        BodyError::Broken(e) => EngageError::Body(e),
    })
}

/// The records in `data`: JSON, or base64 of JSON (standard or URL-safe alphabet, padded or
/// not). A `+` turned into a space by a sloppy form encoder is put back.
pub(super) fn records(data: &[u8]) -> Result<Vec<Value>, EngageError> {
    let trimmed = data.trim_ascii();
    if trimmed.is_empty() {
        return Err(EngageError::NoData);
    }
    let json = if matches!(trimmed[0], b'[' | b'{') {
        trimmed.to_vec()
    } else {
        let text: Vec<u8> = trimmed
            .iter()
            .map(|&b| if b == b' ' { b'+' } else { b })
            .collect();
        let text = text
            .strip_suffix(b"==")
            .or_else(|| text.strip_suffix(b"="))
            .unwrap_or(&text);
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        STANDARD_NO_PAD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| EngageError::Base64)?
    };
    let value: Value =
        serde_json::from_slice(&json).map_err(|e| EngageError::Json(e.to_string()))?;
    let records = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(EngageError::Shape),
    };
    if records.is_empty() {
        return Err(EngageError::Empty);
    }
    if records.len() > MAX_RECORDS {
        return Err(EngageError::TooMany(records.len()));
    }
    Ok(records)
}

/// A valid key in the `Authorization` header admits the whole request; otherwise every record
/// must carry a valid `$token` (Mixpanel's project token is the credential).
fn authorise(state: &AppState, parts: &Parts, records: &[Value]) -> Result<(), EngageError> {
    if header_authorized(state, parts) {
        return Ok(());
    }
    for (index, record) in records.iter().enumerate() {
        match record.get("$token").and_then(Value::as_str) {
            None | Some("") => return Err(EngageError::MissingToken(index)),
            Some(token) if !key_is_valid(state, token) => return Err(EngageError::BadToken(index)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Resolves every update to an address and gathers the changes. Profiles set by earlier records
/// of the request count for later ones.
pub(super) fn plan(store: &Store, updates: &[Update]) -> Result<Plan, EngageError> {
    let mut plan = Plan::default();
    // Profiles as this request leaves them so far: id -> address (None: forgotten).
    let mut overlay: HashMap<&str, Option<String>> = HashMap::new();
    for (index, u) in updates.iter().enumerate() {
        let id = u.distinct_id.id.as_str();
        let before = match overlay.get(id) {
            Some(known) => known.clone(),
            None => store.profile_get(id)?,
        };
        let set_to = match &u.email {
            Some(Change::Set(a)) => Some(a.clone()),
            Some(Change::SetOnce(a)) if before.is_none() => Some(a.clone()),
            _ => None,
        };
        if let Some(change) = &u.unsubscribed {
            let address = set_to
                .clone()
                .or_else(|| before.clone())
                .or_else(|| u.distinct_id.address.clone())
                .ok_or_else(|| unknown(index, &u.distinct_id))?;
            match *change {
                Change::Set(Unsubscribed::Yes { at }) => plan.suppress(address, at, false),
                Change::SetOnce(Unsubscribed::Yes { at }) => plan.suppress(address, at, true),
                Change::Set(Unsubscribed::No) | Change::Unset => plan.resubscribe(address),
                // Setting "not unsubscribed" once: where it is unset, that is the state already.
                Change::SetOnce(Unsubscribed::No) => {}
            }
        }
        if let Some(address) = set_to {
            overlay.insert(id, Some(address.clone()));
            plan.profile(id, Some(address));
        } else if u.delete || matches!(u.email, Some(Change::Unset)) {
            overlay.insert(id, None);
            plan.profile(id, None);
        }
    }
    Ok(plan)
}

fn unknown(index: usize, id: &DistinctId) -> EngageError {
    EngageError::Unknown {
        index,
        id: id.id.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Reason, Scope, SuppressionKey};
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn data_encodings() {
        let one = r#"{"$distinct_id":"u1","$set":{"$unsubscribed":true}}"#;
        assert_eq!(records(one.as_bytes()).unwrap().len(), 1);
        assert_eq!(
            records(format!(" [{one},{one}] ").as_bytes())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(records(b64(one).as_bytes()).unwrap().len(), 1);
        let spaced = b64(&format!("[{one}]")).replace('+', " ");
        assert_eq!(records(spaced.as_bytes()).unwrap().len(), 1);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(one);
        assert_eq!(records(url_safe.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn bad_data() {
        assert!(matches!(records(b"  "), Err(EngageError::NoData)));
        assert!(matches!(records(b"%%%"), Err(EngageError::Base64)));
        assert!(matches!(records(b"{nope"), Err(EngageError::Json(_))));
        assert!(matches!(records(b"[]"), Err(EngageError::Empty)));
        assert!(matches!(
            records(b64("\"x\"").as_bytes()),
            Err(EngageError::Shape)
        ));
        let many = serde_json::to_vec(&vec![json!({}); MAX_RECORDS + 1]).unwrap();
        assert!(matches!(records(&many), Err(EngageError::TooMany(2001))));
        let ok = serde_json::to_vec(&vec![json!({}); MAX_RECORDS]).unwrap();
        assert_eq!(records(&ok).unwrap().len(), MAX_RECORDS);
    }

    fn updates(values: Value) -> Vec<Update> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Update::from_json(v).unwrap())
            .collect()
    }

    #[test]
    fn addresses_resolve_through_email_profile_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store.profile_put("stored", "s@x.io").unwrap();
        let u = updates(json!([
            {"$distinct_id": "u1", "$set": {"$email": "A@x.io"}},
            {"$distinct_id": "u1", "$set": {"$unsubscribed": true}},
            {"$distinct_id": "stored", "$set": {"$unsubscribed": "2024-05-01"}},
            {"$distinct_id": "Me@X.io", "$set": {"$unsubscribed": true}},
        ]));
        plan(&store, &u)
            .unwrap()
            .write(&crate::suppression::Suppressions::new(store.clone()), 9)
            .unwrap();
        let get = |a: &str| {
            store
                .suppression_get(&SuppressionKey::new(Scope::Global, a, List::Unsubscribes))
                .unwrap()
        };
        assert_eq!(get("a@x.io").map(|e| e.reason), Some(Reason::Unsub));
        assert_eq!(get("s@x.io").map(|e| e.created_at), Some(1_714_521_600));
        assert_eq!(get("me@x.io").map(|e| e.created_at), Some(9));
        assert_eq!(store.profile_get("u1").unwrap().as_deref(), Some("a@x.io"));
    }

    #[test]
    fn unknown_ids_fail_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let u = updates(json!([
            {"$distinct_id": "a@x.io", "$set": {"$unsubscribed": true}},
            {"$distinct_id": "u9", "$unset": ["$unsubscribed"]},
        ]));
        let e = plan(&store, &u).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("records[1]: unknown $distinct_id \"u9\""),
            "{e}"
        );
        // An unset $email forgets the mapping for later records.
        let u = updates(json!([
            {"$distinct_id": "u1", "$set": {"$email": "a@x.io"}},
            {"$distinct_id": "u1", "$unset": ["$email"]},
            {"$distinct_id": "u1", "$set": {"$unsubscribed": true}},
        ]));
        assert!(matches!(
            plan(&store, &u),
            Err(EngageError::Unknown { index: 2, .. })
        ));
    }
}
