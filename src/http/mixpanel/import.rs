//! `POST /engage/import`: a CSV without a header row, `distinct_id,unsubscribed`, up to
//! [`MAX_ROWS`] rows, applied in atomic batches of [`BATCH`] rows while it streams in.
//!
//! A bad row is reported (row number — the line it starts on — and reason) and skipped; it never
//! stops the good ones. The answer is a report: `{"status":1,"error":null,"applied":N,
//! "rejected":M,"errors":[{"row":R,"reason":"…"},…]}` (the first [`MAX_ERRORS`] errors), a 200
//! even when rows were rejected. Only a request that is bad as a whole (no key, wrong content
//! type, no rows) gets a 4xx; an upload cut short gets its status with the report of what was
//! applied before the cut.
//!
//! An id that is an address is used as it is; any other id goes through its profile (set by
//! `/engage` with `$email`). A first row `distinct_id,unsubscribed` is taken as a header and
//! skipped, so a file exported with one works too.

use std::io::Read;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::lines::LfOnly;
use super::plan::Plan;
use super::target::DistinctId;
use super::unsubscribed::Unsubscribed;
use super::upload::{body_error, channel, BodyError, Source};
use super::{failure, header_authorized};
use crate::id::now_secs;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Rows per import (SPEC §6.3).
pub(super) const MAX_ROWS: u64 = 1_000_000;
/// Rows written per atomic batch.
pub(super) const BATCH: usize = 10_000;
/// Row errors listed in the report (all are counted).
pub(super) const MAX_ERRORS: usize = 1000;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct RowError {
    pub row: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Report {
    /// Data rows read (blank rows and a header row are not counted).
    pub rows: u64,
    pub applied: u64,
    pub rejected: u64,
    /// The first [`MAX_ERRORS`] rejected rows, in row order.
    pub errors: Vec<RowError>,
}

impl Report {
    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("applied".into(), json!(self.applied));
        m.insert("rejected".into(), json!(self.rejected));
        m.insert("errors".into(), json!(self.errors));
        m
    }
}

/// Why an import stopped before the end of its CSV; `report` says what was applied until then.
#[derive(Debug)]
pub(super) struct Stopped {
    pub cause: StopCause,
    pub report: Report,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StopCause {
    #[error("{0}")]
    Body(BodyError),
    #[error("store failure: {0}")]
    Store(#[from] StoreError),
}

/// A row read and checked, waiting for its batch.
struct Row {
    line: u64,
    id: DistinctId,
    value: Unsubscribed,
}

/// The rows since the last write and their errors.
#[derive(Default)]
struct Pending {
    rows: Vec<Row>,
    errors: Vec<RowError>,
}

impl Pending {
    fn len(&self) -> usize {
        self.rows.len() + self.errors.len()
    }
}

/// Reads every row of `input` and applies them in batches. `now` (Unix seconds) is the
/// `created_at` of rows without a date. Stops only when the input cannot be read to its end or
/// the store fails.
pub(super) fn apply_csv(store: &Store, input: impl Read, now: i64) -> Result<Report, Stopped> {
    apply_csv_limited(store, input, now, MAX_ROWS)
}

/// [`apply_csv`] with rows past `max_rows` rejected.
fn apply_csv_limited(
    store: &Store,
    input: impl Read,
    now: i64,
    max_rows: u64,
) -> Result<Report, Stopped> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(64 * 1024)
        .from_reader(LfOnly::new(input));
    let mut report = Report::default();
    let mut pending = Pending::default();
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let cause = match e.into_kind() {
                    csv::ErrorKind::Io(io) => {
                        body_error(&io).unwrap_or_else(|| BodyError::Read(io.to_string()))
                    }
                    other => BodyError::Read(format!("{other:?}")),
                };
                return Err(Stopped {
                    cause: StopCause::Body(cause),
                    report,
                });
            }
        }
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        if std::mem::take(&mut first) && is_header(&record) {
            continue;
        }
        report.rows += 1;
        let line = start_line(reader.position().line(), &record);
        match parse_row(&record, report.rows, max_rows) {
            Ok((id, value)) => pending.rows.push(Row { line, id, value }),
            Err(reason) => pending.errors.push(RowError { row: line, reason }),
        }
        if pending.len() >= BATCH {
            if let Err(e) = flush(store, &mut pending, &mut report, now) {
                return Err(Stopped {
                    cause: e.into(),
                    report,
                });
            }
        }
    }
    match flush(store, &mut pending, &mut report, now) {
        Ok(()) => Ok(report),
        Err(e) => Err(Stopped {
            cause: e.into(),
            report,
        }),
    }
}

/// The line a row starts on, from the line after it (see [`super::lines`]): back over its own
/// `\n` and those inside quoted fields.
fn start_line(line_after: u64, record: &csv::ByteRecord) -> u64 {
    let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    line_after.saturating_sub(1 + inside).max(1)
}

/// A first row that names the two columns.
fn is_header(record: &csv::ByteRecord) -> bool {
    let name = |i: usize, want: &str| {
        record.get(i).is_some_and(|f| {
            let f = f.trim_ascii();
            f.eq_ignore_ascii_case(want.as_bytes())
                || f.strip_prefix(b"$")
                    .is_some_and(|f| f.eq_ignore_ascii_case(want.as_bytes()))
        })
    };
    record.len() == 2 && name(0, "distinct_id") && name(1, "unsubscribed")
}

/// Checks one row (`number` counts data rows from 1); the reason when it is bad.
fn parse_row(
    record: &csv::ByteRecord,
    number: u64,
    max_rows: u64,
) -> Result<(DistinctId, Unsubscribed), String> {
    if number > max_rows {
        return Err(format!("over the limit of {max_rows} rows per import"));
    }
    if record.len() != 2 {
        return Err(format!(
            "expected 2 columns (distinct_id,unsubscribed), found {}",
            record.len()
        ));
    }
    let text = |i: usize, what: &str| {
        std::str::from_utf8(&record[i]).map_err(|_| format!("{what} is not valid UTF-8"))
    };
    let id = DistinctId::parse(text(0, "distinct_id")?)
        .map_err(|e| e.to_string().replace("$distinct_id", "distinct_id"))?;
    let value = Unsubscribed::from_text(text(1, "unsubscribed")?).map_err(|e| e.to_string())?;
    Ok((id, value))
}

/// Resolves and writes the pending rows as one batch, and moves their errors to the report in
/// row order.
fn flush(
    store: &Store,
    pending: &mut Pending,
    report: &mut Report,
    now: i64,
) -> Result<(), StoreError> {
    let mut plan = Plan::default();
    let mut errors = std::mem::take(&mut pending.errors);
    let mut applied = 0;
    for row in std::mem::take(&mut pending.rows) {
        // Profile lookups only for ids that are not addresses.
        let address = match row.id.address {
            Some(address) => Some(address),
            None => store.profile_get(&row.id.id)?,
        };
        let Some(address) = address else {
            errors.push(RowError {
                row: row.line,
                reason: format!(
                    "unknown distinct_id {:?}: not an address, and no profile maps it to an $email",
                    row.id.id.chars().take(64).collect::<String>()
                ),
            });
            continue;
        };
        match row.value {
            Unsubscribed::Yes { at } => plan.suppress(address, at, false),
            Unsubscribed::No => plan.resubscribe(address),
        }
        applied += 1;
    }
    plan.write(store, now)?;
    report.applied += applied;
    report.rejected += errors.len() as u64;
    errors.sort_by_key(|e| e.row);
    let room = MAX_ERRORS.saturating_sub(report.errors.len());
    report.errors.extend(errors.into_iter().take(room));
    Ok(())
}

/// `POST /engage/import`.
pub(super) async fn import(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !header_authorized(&state, &parts) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key: send Authorization: Bearer KEY",
            None,
        );
    }
    let source = match Source::of(&state, parts, body).await {
        Ok(source) => source,
        Err(e) => return failure(e.status(), &e.to_string(), None),
    };
    let started = std::time::Instant::now();
    let (tx, reader) = channel();
    let store = state.store.clone();
    let now = now_secs();
    // Tracked, so a graceful shutdown waits for the batch being written.
    let worker = state
        .tasks
        .spawn_blocking(move || apply_csv(&store, reader, now));
    let pumped = source.pump(tx).await;
    let outcome = worker.await;
    if let Err(e) = pumped {
        return failure(e.status(), &e.to_string(), None);
    }
    match outcome {
        Ok(Ok(report)) if report.rows == 0 => failure(
            StatusCode::BAD_REQUEST,
            "the CSV has no rows: send distinct_id,unsubscribed lines",
            None,
        ),
        Ok(Ok(report)) => {
            tracing::info!(
                rows = report.rows,
                applied = report.applied,
                rejected = report.rejected,
                ms = started.elapsed().as_millis() as u64,
                "mixpanel import done"
            );
            let mut body = Map::new();
            body.insert("status".into(), json!(1));
            body.insert("error".into(), Value::Null);
            body.extend(report.fields());
            Json(Value::Object(body)).into_response()
        }
        Ok(Err(Stopped { cause, report })) => {
            let status = match &cause {
                StopCause::Body(e) => e.status(),
                StopCause::Store(e) => {
                    tracing::error!(error = %e, applied = report.applied, "mixpanel import stopped by a store failure");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            tracing::warn!(rows = report.rows, applied = report.applied, error = %cause, "mixpanel import stopped");
            let message = match cause {
                StopCause::Body(e) => format!("{e}; the rows before it were applied (see applied)"),
                StopCause::Store(_) => {
                    "internal error; the rows before it were applied (see applied)".into()
                }
            };
            failure(status, &message, Some(report.fields()))
        }
        Err(e) => {
            tracing::error!(error = %e, "mixpanel import task failed");
            failure(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Reason, Scope, Suppression, SuppressionKey};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    fn key(a: &str, list: List) -> SuppressionKey {
        SuppressionKey::new(Scope::Global, a, list)
    }

    fn get(s: &Store, a: &str) -> Option<Suppression> {
        s.suppression_get(&key(a, List::Unsubscribes)).unwrap()
    }

    #[test]
    fn good_rows_apply_and_bad_rows_are_reported_by_line() {
        let (_d, s) = store();
        s.profile_put("u-1", "profiled@x.io").unwrap();
        s.suppression_put(
            &key("back@x.io", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 1),
        )
        .unwrap();
        let csv = "\u{feff}distinct_id,unsubscribed\n\
                   a@x.io,true\n\
                   u-1,2024-05-01\n\
                   \n\
                   nobody,true\n\
                   back@x.io,FALSE\n\
                   b@x.io,\n\
                   c@x.io,true,extra\n\
                   \"d@x.io\",\"2024-05-01T10:00:00Z\"\n\
                   e@x.io,2024-99-99\n";
        let r = apply_csv(&s, csv.as_bytes(), 50).unwrap();
        assert_eq!((r.rows, r.applied, r.rejected), (8, 4, 4));
        let rows: Vec<u64> = r.errors.iter().map(|e| e.row).collect();
        assert_eq!(rows, [5, 7, 8, 10]);
        assert!(
            r.errors[0]
                .reason
                .starts_with("unknown distinct_id \"nobody\""),
            "{:?}",
            r.errors
        );
        assert!(r.errors[1].reason.contains("empty"), "{:?}", r.errors[1]);
        assert!(r.errors[2].reason.contains("found 3"), "{:?}", r.errors[2]);
        assert!(
            r.errors[3].reason.contains("not a valid"),
            "{:?}",
            r.errors[3]
        );
        assert_eq!(get(&s, "a@x.io").map(|e| e.created_at), Some(50));
        assert_eq!(
            get(&s, "profiled@x.io").map(|e| e.created_at),
            Some(1_714_521_600)
        );
        assert_eq!(get(&s, "d@x.io").map(|e| e.created_at), Some(1_714_557_600));
        assert!(get(&s, "back@x.io").is_none(), "false re-subscribes");
        assert!(get(&s, "nobody").is_none() && get(&s, "c@x.io").is_none());
    }

    #[test]
    fn row_numbers_are_lines_with_any_line_ends() {
        let (_d, s) = store();
        for csv in [
            "a@x.io,true\n\nbad\n\"multi\nline\",true\nlast,yes",
            "a@x.io,true\r\n\r\nbad\r\n\"multi\r\nline\",true\r\nlast,yes\r\n",
        ] {
            let r = apply_csv(&s, csv.as_bytes(), 0).unwrap();
            let rows: Vec<u64> = r.errors.iter().map(|e| e.row).collect();
            assert_eq!(rows, [3, 4, 6], "{csv:?}: {:?}", r.errors);
        }
    }

    #[test]
    fn batches_error_cap_and_row_limit() {
        let (_d, s) = store();
        let mut csv = String::new();
        for i in 0..(BATCH + 1500) {
            if i % 5 == 0 {
                csv.push_str(&format!("id{i},true\n")); // unknown id
            } else {
                csv.push_str(&format!("user{i}@x.io,true\n"));
            }
        }
        let r = apply_csv_limited(&s, csv.as_bytes(), 0, BATCH as u64 + 1000).unwrap();
        assert_eq!(r.rows, BATCH as u64 + 1500);
        // Unknown ids among the first BATCH + 1000 rows, then every row past the limit.
        assert_eq!(r.rejected, (BATCH as u64 + 1000) / 5 + 500);
        assert_eq!(r.applied, r.rows - r.rejected);
        assert_eq!(r.errors.len(), MAX_ERRORS);
        assert!(r.errors.windows(2).all(|w| w[0].row < w[1].row));
        assert_eq!(r.errors[0].row, 1);
        assert!(get(&s, &format!("user{}@x.io", BATCH + 999)).is_some());
        assert!(
            get(&s, &format!("user{}@x.io", BATCH + 1001)).is_none(),
            "past the limit"
        );
    }

    #[test]
    fn an_upload_cut_short_keeps_the_batches_written_before() {
        let (_d, s) = store();
        let mut csv = String::new();
        for i in 0..(BATCH + 10) {
            csv.push_str(&format!("user{i}@x.io,true\n"));
        }
        struct Cut<'a>(&'a [u8]);
        impl Read for Cut<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other(BodyError::TooLarge));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let stopped = apply_csv(&s, Cut(csv.as_bytes()), 0).unwrap_err();
        assert!(matches!(
            stopped.cause,
            StopCause::Body(BodyError::TooLarge)
        ));
        assert_eq!(stopped.report.applied, BATCH as u64);
        assert!(get(&s, "user0@x.io").is_some());
        assert!(
            get(&s, &format!("user{}@x.io", BATCH + 5)).is_none(),
            "last batch not applied"
        );
    }
}
