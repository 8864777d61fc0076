//! Mailgun-compatible suppressions API (SPEC §6.1). Placeholder until written.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
