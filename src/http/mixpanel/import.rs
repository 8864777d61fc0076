//! `POST /engage/import`: a CSV without a header row, `distinct_id,unsubscribed`, up to
//! [`MAX_ROWS`](super::rows::MAX_ROWS) rows, applied in atomic batches while it streams in.
//!
//! Each row is one line. A bad row is reported (its line number and reason) and skipped; it
//! never stops the good ones, and it never takes another line with it: an unterminated quote is
//! that line's error, a line over [`MAX_LINE`](super::lines::MAX_LINE) bytes is skipped as it
//! streams in (never held in memory) and reported the same way. The answer is a report:
//! `{"status":1,"error":null,"applied":N,"rejected":M,"errors":[{"row":R,"reason":"…"},…]}`
//! (the first [`MAX_ERRORS`](super::rows::MAX_ERRORS) errors), a 200 even when rows were
//! rejected; `applied + rejected` is the number of rows (lines but blank ones and a header).
//! This is per-row semantics, as Mixpanel's own `/import` has (it ingests the records that pass
//! and lists the others), and it is so because the rows are applied while the upload streams
//! in, in atomic batches: a row applied is never taken back. Only a request that is bad as a
//! whole (no key, wrong content type, no rows) gets a 4xx before anything is applied; an upload
//! cut short gets its status with the report of the rows through `through_line`.
//!
//! The rows themselves are read and written by [`super::rows`], which fills in a
//! [`super::report::Report`]; this file is the HTTP side.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::report::{StopCause, Stopped};
use super::rows::apply_csv;
use super::upload::{channel, Source};
use super::{failure, header_authorized};
use crate::id::now_secs;
use crate::state::AppState;

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
    if let Err(e) = state.store.ensure_room() {
        tracing::warn!(error = %e, "mixpanel import refused");
        return failure(
            crate::http::error::store_status(&e),
            crate::http::error::store_message(&e),
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
    let suppressions = state.suppressions.clone();
    let now = now_secs();
    // Tracked, so a graceful shutdown waits for the batch being written.
    let worker = state
        .tasks
        .spawn_blocking(move || apply_csv(&suppressions, &store, reader, now));
    let pumped = source.pump(tx).await;
    let outcome = worker.await;
    // The answer (and the count of rows applied it reports) holds only once they would
    // survive a crash of quell.
    if let Err(e) = state.suppressions.sync().await {
        tracing::error!(error = %e, "mixpanel import: the store could not be synced");
        return failure(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None);
    }
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
                    crate::http::error::store_status(e)
                }
            };
            tracing::warn!(rows = report.rows, applied = report.applied, error = %cause, "mixpanel import stopped");
            let cause = match cause {
                StopCause::Body(e) => e.to_string(),
                StopCause::Store(e) => crate::http::error::store_message(&e).to_string(),
            };
            let message = match report.through_line {
                0 => format!("{cause}; no row was applied"),
                line => format!(
                    "{cause}; every row through line {line} is counted in applied or rejected, \
                     and no row after it was applied"
                ),
            };
            let mut fields = report.fields();
            fields.insert("through_line".into(), json!(report.through_line));
            failure(status, &message, Some(fields))
        }
        Err(e) => {
            tracing::error!(error = %e, "mixpanel import task failed");
            failure(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
        }
    }
}
