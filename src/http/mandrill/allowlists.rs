//! The allowlist: `allowlists/add`, `allowlists/list`, `allowlists/delete` (and the older
//! clients' `whitelists/…`). An allowlisted address is never suppressed (SPEC §3); adding one
//! also removes its `global` denylist entries, as Mandrill does ("if the address is currently on
//! your denylist, that denylist entry will be removed automatically").

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{mandrill_time, MandrillError, Params};
use crate::state::AppState;
use crate::store::AllowEntry;

/// Mandrill's cap on `allowlists/list`.
const MAX_LIST: usize = 1000;

/// Longest `email` search prefix: an address is at most 254 characters.
const MAX_PREFIX: usize = 254;

/// `allowlists/add`: `{"email", "comment"?}` → `{"email", "added": true}`. Adding an address
/// again keeps its `created_at` and replaces its detail when a comment is given.
pub(super) async fn add(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let (given, address) = params.email()?;
    let comment = params.comment()?;
    // Allowlisted and taken off the denylist in one atomic write, synced.
    let removed = state
        .suppressions
        .allow(address, comment.map(str::to_string))
        .await?;
    tracing::info!(
        call = "allowlists/add",
        denylist_removed = removed,
        "allowlisted"
    );
    Ok(Json(json!({ "email": given, "added": true })))
}

/// `allowlists/list`: `{"email"?}` → up to 1000 `{"email", "detail", "created_at"}` in address
/// order, those starting with `email` (an address or a prefix) when it is given.
pub(super) async fn list(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let prefix = params
        .string("email")?
        .map(|p| p.trim().to_lowercase())
        .unwrap_or_default();
    if prefix.chars().count() > MAX_PREFIX {
        return Err(MandrillError::Validation(format!(
            "email is longer than {MAX_PREFIX} characters"
        )));
    }
    let items: Vec<Value> = state
        .store
        .allowlist_page(&prefix, MAX_LIST)?
        .into_iter()
        .map(|(address, entry)| render(&address, &entry))
        .collect();
    tracing::info!(call = "allowlists/list", count = items.len(), "listed");
    Ok(Json(Value::Array(items)))
}

/// `allowlists/delete`: `{"email"}` → `{"email", "deleted"}`, `false` when the address was not
/// allowlisted (Mandrill documents no error for that).
pub(super) async fn delete(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let (given, address) = params.email()?;
    let deleted = state.suppressions.disallow(address).await?;
    tracing::info!(
        call = "allowlists/delete",
        deleted,
        "allowlist entry removed"
    );
    Ok(Json(json!({ "email": given, "deleted": deleted })))
}

/// One allowlist entry as Mandrill lists it.
fn render(address: &str, entry: &AllowEntry) -> Value {
    json!({
        "email": address,
        "detail": entry.detail,
        "created_at": mandrill_time(entry.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_has_mandrills_fields() {
        let e = AllowEntry {
            detail: "our CEO".into(),
            created_at: 1_357_054_227,
        };
        assert_eq!(
            render("a@x.io", &e),
            json!({"email": "a@x.io", "detail": "our CEO", "created_at": "2013-01-01 15:30:27"})
        );
    }
}
