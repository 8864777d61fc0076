//! `/api/suppressions`: list every entry across scopes and lists in key order with a cursor,
//! add a batch, remove one address or a batch. Batches are validated whole before anything is
//! written; additions are one atomic store batch, flushed before the answer.

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

use super::entry::{self, parse_scope, parse_stored_address, Removal};
use super::{
    blocking, cursor, json_array, limit, only_params, param, parse_cursor, query_pairs, read_body,
    render, AdminError,
};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::id::now_secs;
use crate::state::AppState;
use crate::suppression::{Op, Outcome, Rule, When};

/// `GET /api/suppressions?scope=&address=&after=&limit=` → `{"items": [...], "next": cursor}`.
/// `next` is null on the last page; pass it as `after` for the following one.
pub(super) async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(&uri)?;
    only_params(&pairs, &["scope", "address", "after", "limit"])?;
    let scope = param(&pairs, "scope")
        .map(parse_scope)
        .transpose()
        .map_err(AdminError::from)?;
    let address = param(&pairs, "address")
        .map(parse_stored_address)
        .transpose()
        .map_err(AdminError::from)?;
    let after = param(&pairs, "after").map(parse_cursor).transpose()?;
    let limit = limit(&pairs)?;
    let store = state.store.clone();
    // One more than asked says whether another page exists.
    let mut page = blocking(move || {
        store.suppressions_after(
            scope.as_ref(),
            address.as_deref(),
            after.as_ref(),
            limit + 1,
        )
    })
    .await?;
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(k, _)| cursor(k))
    } else {
        None
    };
    let items: Vec<Value> = page.iter().map(|(k, e)| render(k, e)).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

/// `POST /api/suppressions` with a JSON array of up to 1000 entries → `{"added": n}`. An entry
/// replaces what its key held; of two items with the same key, the later wins.
pub(super) async fn add(
    _: ApiKey,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(request.into_body()).await?;
    let now = now_secs();
    let entries = json_array(&body)?
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            entry::new_entry(v, now).map_err(|error| AdminError::Item { index, error })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = entries.len();
    let ops = entries
        .into_iter()
        .map(|(key, entry)| Op::Add {
            key,
            entry,
            rule: Rule::Replace,
            unless_allowlisted: false,
        })
        .collect();
    // The operator is told "added" only once it would survive a crash.
    state.suppressions.apply(ops).await?;
    tracing::info!(count, "admin API: suppressions added");
    Ok(Json(json!({ "added": count })))
}

/// `DELETE /api/suppressions?scope=&address=&list=&reason=` removes one address's entries in
/// one scope (every list unless `list` or `reason` narrows it); 404 when nothing matched.
/// Without a query string, the body is a JSON array of up to 1000 such removals
/// (`{"scope","address","list"?,"reason"?}`), validated whole; items that match nothing are
/// not an error. Either way the answer is `{"removed": n}`, n counting entries.
pub(super) async fn remove(
    _: ApiKey,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(request.uri())?;
    let single = !pairs.is_empty();
    let removals = if single {
        only_params(&pairs, &["scope", "address", "list", "reason"])?;
        vec![Removal::parse(
            param(&pairs, "scope"),
            param(&pairs, "address"),
            param(&pairs, "list"),
            param(&pairs, "reason"),
        )?]
    } else {
        let body = read_body(request.into_body()).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(AdminError::Missing("scope").into());
        }
        json_array(&body)?
            .iter()
            .enumerate()
            .map(|(index, v)| {
                Removal::from_json(v).map_err(|error| AdminError::Item { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let ops = removals
        .iter()
        .flat_map(|removal| {
            let when = removal.reason.map_or(When::Always, When::Reason);
            removal.keys().into_iter().map(move |key| Op::Remove {
                key,
                when: when.clone(),
            })
        })
        .collect();
    let outcomes = state.suppressions.apply(ops).await?;
    let removed = outcomes.iter().filter(|o| **o == Outcome::Removed).count();
    if single && removed == 0 {
        return Err(AdminError::NothingMatched.into());
    }
    tracing::info!(removed, "admin API: suppressions removed");
    Ok(Json(json!({ "removed": removed })))
}
