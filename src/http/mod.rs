//! The HTTP side (axum): health and metrics, message records, and the management APIs.
//!
//! | path | module |
//! |---|---|
//! | `/healthz`, `/readyz`, `/metrics` | [`health`] |
//! | `/api/messages/{id}` | [`messages`] |
//! | `/u/{token}` (unsubscribe pages, RFC 8058 one-click) | [`landing`] |
//! | `/v3/{domain}/unsubscribes`, `/bounces`, `/complaints` | [`mailgun`] |
//! | `/api/{1.0,1.3}/rejects/…`, `/allowlists/…`, `/whitelists/…` | [`mandrill`] |
//! | `/engage` (`$unsubscribed`, profiles), `/engage/import` (CSV) | [`mixpanel`] |
//! | `/api/suppressions` (all scopes, CSV export), `/api/queue` (list, retry, delete) | [`admin`] |
//! | `/openapi.json` (the OpenAPI description of all of the above) | [`openapi`] |

pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod form;
pub mod health;
pub mod landing;
mod listener;
pub mod mailgun;
pub mod mandrill;
pub mod messages;
pub mod mixpanel;
pub mod openapi;

use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::CancellationToken;
use crate::state::AppState;

/// Largest request body accepted anywhere (the Mailgun CSV import allows 25 MB).
pub const MAX_BODY: usize = 26 * 1024 * 1024;

/// Every route quell serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(landing::router())
        .merge(messages::router())
        .merge(mailgun::router())
        .merge(mandrill::router())
        .merge(mixpanel::router())
        .merge(admin::router())
        .merge(openapi::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Unix seconds as RFC 3339 UTC (`2026-11-27T15:58:16Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Serves `router(state)` on an already-bound listener until `shutdown` is cancelled, over
/// https when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = state.config.http.clone();
    listener::serve(listener, tls, router(state), &limits, shutdown).await
}
