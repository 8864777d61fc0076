//! `POST /v3/{domain}/{resource}/import`: a CSV upload (the first file part of a multipart body,
//! whatever its field name or filename; ≤ 25 MB). The header row is checked before answering
//! `202 {"message":"file uploaded successfully"}`, and the upload is kept in the store, synced,
//! before that answer; the rows are then applied in the background in atomic batches, and an
//! import cut short by a crash is applied again at the next start ([`resume`]). A bad row is logged with its line number and skipped; it never stops the
//! good ones.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::add::multipart_error;
use super::record::RawRecord;
use super::{write_batch, Bounces, Complaints, Resource, Target, Unsubscribes};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{ImportJob, Scope, StoreError};
use crate::suppression::Suppressions;

/// Mailgun's size limit for an import file.
const MAX_CSV: usize = 25 * 1024 * 1024;
/// Rows written per atomic batch.
const BATCH: usize = 1000;

/// What is wrong with an upload; each is a 4xx, answered before anything is applied.
#[derive(Debug, thiserror::Error)]
pub(super) enum ImportError {
    #[error("no file part in the multipart body")]
    NoFile,
    #[error("the CSV file is larger than 25 MB")]
    TooLarge,
    #[error("the CSV file is empty; its first row must be the header {0}")]
    Empty(String),
    #[error("cannot read the CSV header row: {0}")]
    Unreadable(String),
    #[error("CSV header: unknown column {column:?}; expected {expected}")]
    UnknownColumn { column: String, expected: String },
    #[error("CSV header: column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("CSV header: missing column \"address\"; expected {0}")]
    MissingAddress(String),
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        let status = match e {
            ImportError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

/// Which column holds which field, from the header row. Column names are matched trimmed and
/// case-insensitively; any of the resource's columns but `address` may be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Columns(HashMap<String, usize>);

impl Columns {
    /// Checks a header row against the resource's columns.
    pub fn from_header<R: Resource>(header: &csv::StringRecord) -> Result<Columns, ImportError> {
        let expected = R::CSV_COLUMNS.join(",");
        let mut map = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim().to_ascii_lowercase();
            if !R::CSV_COLUMNS.contains(&name.as_str()) {
                return Err(ImportError::UnknownColumn {
                    column: name,
                    expected,
                });
            }
            if map.insert(name.clone(), i).is_some() {
                return Err(ImportError::DuplicateColumn(name));
            }
        }
        if !map.contains_key("address") {
            return Err(ImportError::MissingAddress(expected));
        }
        Ok(Columns(map))
    }

    /// One data row as a record. The `tags` cell may hold several tags separated by commas.
    pub fn record(&self, row: &csv::StringRecord) -> RawRecord {
        let cell = |name: &str| {
            self.0
                .get(name)
                .and_then(|&i| row.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        RawRecord {
            address: cell("address"),
            tags: cell("tags")
                .map(|t| t.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            code: cell("code"),
            error: cell("error"),
            created_at: cell("created_at"),
        }
    }
}

fn reader(csv: &[u8]) -> csv::Reader<&[u8]> {
    let csv = csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv); // spreadsheet BOM
    csv::ReaderBuilder::new().flexible(true).from_reader(csv)
}

/// Checks the header row of `csv` for resource `R`.
pub(super) fn check_header<R: Resource>(csv: &[u8]) -> Result<Columns, ImportError> {
    let mut reader = reader(csv);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Unreadable(e.to_string()))?;
    if header.iter().all(|c| c.trim().is_empty()) {
        return Err(ImportError::Empty(R::CSV_COLUMNS.join(",")));
    }
    Columns::from_header::<R>(header)
}

/// What an import did: rows written and rows skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outcome {
    pub written: usize,
    pub skipped: usize,
}

/// Applies every data row of `csv` in batches of [`BATCH`]; a bad row is handed to `skip` with
/// its line number (1 is the header) and the reason, and skipped. Stops only on a store failure.
pub(super) fn apply<R: Resource>(
    suppressions: &Suppressions,
    scope: &Scope,
    columns: &Columns,
    csv: &[u8],
    now: i64,
    mut skip: impl FnMut(Option<u64>, &str),
) -> Result<Outcome, StoreError> {
    let mut reader = reader(csv);
    let mut outcome = Outcome::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut row = csv::StringRecord::new();
    loop {
        let read = reader.read_record(&mut row);
        let line = match &read {
            Ok(_) => row.position().map(csv::Position::line),
            Err(e) => e.position().map(csv::Position::line),
        };
        let problem = match read {
            Ok(false) => break,
            Ok(true) if row.iter().all(|c| c.trim().is_empty()) => continue,
            Ok(true) => match columns.record(&row).validate::<R>(now) {
                Ok(entry) => {
                    batch.push(entry);
                    None
                }
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = problem {
            skip(line, &error);
            outcome.skipped += 1;
        }
        if batch.len() == BATCH {
            outcome.written += batch.len();
            write_batch::<R>(suppressions, scope, std::mem::take(&mut batch))?;
        }
    }
    outcome.written += batch.len();
    write_batch::<R>(suppressions, scope, batch)?;
    Ok(outcome)
}

/// Reads the first file part into one buffer, chunk by chunk, refusing it past [`MAX_CSV`].
/// A file part is one with a filename or a content type; a plain text field is skipped.
async fn read_csv(multipart: &mut Multipart) -> Result<BytesMut, ApiError> {
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.file_name().is_none() && field.content_type().is_none() {
            continue;
        }
        let mut csv = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if csv.len() + chunk.len() > MAX_CSV {
                return Err(ImportError::TooLarge.into());
            }
            csv.extend_from_slice(&chunk);
        }
        return Ok(csv);
    }
    Err(ImportError::NoFile.into())
}

/// `POST /v3/{domain}/{resource}/import`.
pub(super) async fn import<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError {
            status: e.status(),
            message: e.body_text(),
        })?;
    let csv = read_csv(&mut multipart).await?.freeze();
    check_header::<R>(&csv)?;
    let scope = target.scope;
    let now = chrono::Utc::now().timestamp();
    let id = crate::id::new_queue_id();
    let job = ImportJob {
        resource: R::NAME.to_string(),
        scope: scope.key(),
        accepted_at: now,
    };
    // The 202 promises the import: the upload is kept, synced, until its rows are.
    state.store.ensure_room()?;
    let store = state.store.clone();
    let (kept_id, kept_csv) = (id.clone(), csv.clone());
    tokio::task::spawn_blocking(move || store.import_put(&kept_id, &job, &kept_csv))
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("store task: {e}"))))??;
    state.store.flush().await?;
    tracing::info!(resource = R::NAME, %scope, import_id = %id, bytes = csv.len(), "CSV import accepted");
    run::<R>(&state, id, scope, csv, now);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": "file uploaded successfully" })),
    ))
}

/// Applies an accepted import in the background (tracked, so a graceful shutdown waits for
/// it) and forgets it once its rows are synced.
fn run<R: Resource>(state: &AppState, id: String, scope: Scope, csv: Bytes, now: i64) {
    let suppressions = state.suppressions.clone();
    let store = state.store.clone();
    state.tasks.spawn_blocking(move || {
        let columns = match check_header::<R>(&csv) {
            Ok(columns) => columns,
            Err(e) => {
                tracing::error!(resource = R::NAME, import_id = %id, error = %e, "CSV import dropped");
                return;
            }
        };
        let log = |line: Option<u64>, error: &str| {
            tracing::warn!(resource = R::NAME, %scope, line, error, "CSV import: row skipped");
        };
        let applied = apply::<R>(&suppressions, &scope, &columns, &csv, now, log);
        let done = applied.and_then(|o| {
            suppressions.sync_blocking()?;
            store.import_remove(&id)?;
            Ok(o)
        });
        match done {
            Ok(o) => tracing::info!(
                resource = R::NAME, %scope, import_id = %id, written = o.written, skipped = o.skipped, "CSV import done"
            ),
            Err(e) => tracing::error!(
                resource = R::NAME, %scope, import_id = %id, error = %e, "CSV import stopped by a store failure; it is applied again at the next start"
            ),
        }
    });
}

/// At start: applies again every import accepted before quell stopped and not finished;
/// how many.
pub fn resume(state: &AppState) -> Result<usize, StoreError> {
    let pending = state.store.imports_pending()?;
    let count = pending.len();
    for (id, job, csv) in pending {
        let csv = Bytes::from(csv);
        let Some(scope) = Scope::parse(&job.scope) else {
            tracing::error!(import_id = %id, "kept CSV import has no valid scope; dropped");
            state.store.import_remove(&id)?;
            continue;
        };
        match job.resource.as_str() {
            Unsubscribes::NAME => run::<Unsubscribes>(state, id, scope, csv, job.accepted_at),
            Bounces::NAME => run::<Bounces>(state, id, scope, csv, job.accepted_at),
            Complaints::NAME => run::<Complaints>(state, id, scope, csv, job.accepted_at),
            _ => {
                tracing::error!(import_id = %id, "kept CSV import names no resource; dropped");
                state.store.import_remove(&id)?;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::mailgun::{Bounces, Complaints, Unsubscribes};
    use crate::store::{List, SuppressionKey};

    #[test]
    fn headers_are_checked_per_resource() {
        assert!(check_header::<Unsubscribes>(b"address,tags,created_at\n").is_ok());
        assert!(check_header::<Unsubscribes>(b"\xEF\xBB\xBF Address , Tags\r\n").is_ok());
        assert!(check_header::<Bounces>(b"address,code,error,created_at\n").is_ok());
        assert!(check_header::<Complaints>(b"address\n").is_ok());
        let unknown = check_header::<Complaints>(b"address,tags\n").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown column \"tags\""),
            "{unknown}"
        );
        assert!(matches!(
            check_header::<Bounces>(b"code,error\n"),
            Err(ImportError::MissingAddress(_))
        ));
        assert!(matches!(
            check_header::<Bounces>(b"address,address\n"),
            Err(ImportError::DuplicateColumn(_))
        ));
        assert!(matches!(
            check_header::<Bounces>(b""),
            Err(ImportError::Empty(_))
        ));
        assert!(matches!(
            check_header::<Bounces>(b"alice@x.io\n"),
            Err(ImportError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn rows_apply_in_batches_and_bad_rows_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let suppressions = Suppressions::new(store.clone());
        let scope = Scope::Domain("d.io".into());
        let mut csv = String::from("address,tags,created_at\n");
        for i in 0..2500 {
            csv.push_str(&format!("user{i}@x.io,,\n"));
        }
        csv.push_str("not-an-address,,\n");
        csv.push_str("late@x.io,,Fri, 21 Oct 2011 11:02:55 UTC\n"); // unquoted commas: bad date
        csv.push_str("\"dated@x.io\",\"a,b\",\"Fri, 21 Oct 2011 11:02:55 UTC\"\n");
        csv.push('\n');
        let columns = check_header::<Unsubscribes>(csv.as_bytes()).unwrap();
        let mut skipped = Vec::new();
        let o = apply::<Unsubscribes>(
            &suppressions,
            &scope,
            &columns,
            csv.as_bytes(),
            7,
            |line, e| skipped.push((line, e.to_string())),
        )
        .unwrap();
        assert_eq!((o.written, o.skipped), (2501, 2));
        // Line 1 is the header, so the 2500 good rows are lines 2..=2501.
        assert_eq!(skipped[0].0, Some(2502));
        assert!(
            skipped[0].1.starts_with("address \"not-an-address\""),
            "{:?}",
            skipped[0]
        );
        assert_eq!(skipped[1].0, Some(2503));
        assert!(
            skipped[1].1.starts_with("created_at \"Fri\""),
            "{:?}",
            skipped[1]
        );
        let get = |a: &str| {
            store
                .suppression_get(&SuppressionKey::new(scope.clone(), a, List::Unsubscribes))
                .unwrap()
        };
        let dated = get("dated@x.io").unwrap();
        assert_eq!(
            (dated.tags, dated.created_at),
            (vec!["a".to_string(), "b".to_string()], 1_319_194_975)
        );
        assert_eq!(get("user2499@x.io").map(|e| e.created_at), Some(7));
        assert!(get("late@x.io").is_none());
    }

    #[test]
    fn bounce_rows_keep_code_and_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let suppressions = Suppressions::new(store.clone());
        let scope = Scope::Domain("d.io".into());
        let csv = b"address,code,error\nb@x.io,554,relay denied\nc@x.io,abc,\n";
        let columns = check_header::<Bounces>(csv).unwrap();
        let o = apply::<Bounces>(&suppressions, &scope, &columns, csv, 0, |_, _| {}).unwrap();
        assert_eq!(
            o,
            Outcome {
                written: 1,
                skipped: 1
            }
        );
        let b = store
            .suppression_get(&SuppressionKey::new(scope, "b@x.io", List::Bounces))
            .unwrap()
            .unwrap();
        assert_eq!((b.code, b.detail.as_str()), (Some(554), "relay denied"));
    }
}
