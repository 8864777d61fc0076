//! API key checks (SPEC §6): HTTP Basic `api:<key>` (Mailgun) or `Authorization: Bearer <key>`;
//! the Mandrill and Mixpanel modules pass keys found in their bodies to [`key_is_valid`].
//! Keys are compared in constant time. With no `http.api_keys`, the management API is off.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

/// Whether `candidate` is one of the configured keys, compared in constant time.
pub fn key_is_valid(state: &AppState, candidate: &str) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for key in &state.config.http.api_keys {
        ok |= key.expose().as_bytes().ct_eq(candidate.as_bytes());
    }
    bool::from(ok)
}

/// The key from `Authorization: Basic base64(user:key)` or `Authorization: Bearer key`.
pub fn key_from_header(parts: &Parts) -> Option<String> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, key) = text.split_once(':')?;
        return Some(key.to_string());
    }
    None
}

/// What a client is told when quell has no `http.api_keys`: not that its key is wrong (it
/// cannot be right), but that the management API is off and which key turns it on.
pub const DISABLED: &str =
    "the management API is disabled: set http.api_keys in quell's config to enable it";

/// Extractor that admits only requests carrying a valid key in the Authorization header;
/// others get `401` (saying the API is disabled when no key is configured).
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.http.api_keys.is_empty() {
            return Err(ApiError {
                status: axum::http::StatusCode::UNAUTHORIZED,
                message: DISABLED.into(),
            });
        }
        match key_from_header(parts) {
            Some(key) if key_is_valid(state, &key) => Ok(ApiKey),
            _ => Err(ApiError::unauthorized()),
        }
    }
}
