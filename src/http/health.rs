//! `/healthz` (the process answers), `/readyz` (store open and listeners up) and `/metrics`
//! (Prometheus text), SPEC §6.4.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Ready once every listener is up, and not while the store's disk is below
/// `storage.min_free` (new mail is refused then).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
    }
    match state.store.ensure_room() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .queue_depth
        .store(state.store.queue_len() as u64, Ordering::Relaxed);
    state
        .metrics
        .index_complete
        .store(u64::from(state.store.index_complete()), Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
