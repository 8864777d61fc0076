//! `GET /api/suppressions/export[?scope=]`: every entry as CSV, streamed a page at a time, so
//! an export of a million entries holds one page in memory, not the file. Columns:
//! `scope,address,list,reason,tags,created_at,expires_at,detail` (tags joined with `;`, dates
//! RFC 3339, an empty `expires_at` for never). `quell suppress import` reads the same format back.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::entry::parse_scope;
use super::{blocking, list_name, only_params, param, query_pairs, rfc3339, tags_of, AdminError};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{Scope, Store, Suppression, SuppressionKey};

/// The header row.
pub(super) const COLUMNS: [&str; 8] = [
    "scope",
    "address",
    "list",
    "reason",
    "tags",
    "created_at",
    "expires_at",
    "detail",
];

/// Entries read from the store per chunk sent.
const PAGE: usize = 1000;

/// Where the stream stands.
enum Position {
    After(SuppressionKey),
    Done,
}

/// `GET /api/suppressions/export`.
pub(super) async fn export(
    _: ApiKey,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri)?;
    only_params(&pairs, &["scope"])?;
    let scope = param(&pairs, "scope")
        .map(parse_scope)
        .transpose()
        .map_err(AdminError::from)?;
    // The first page is read before answering, so a store failure is still a proper 500.
    let store = state.store.clone();
    let first_scope = scope.clone();
    let first =
        blocking(move || store.suppressions_after(first_scope.as_ref(), None, None, PAGE)).await?;
    let head = Bytes::from(csv_chunk(Some(&COLUMNS), &first));
    let position = next_position(&first);
    drop(first);
    let store = state.store.clone();
    let rest = futures_util::stream::try_unfold(position, move |position| {
        let store = store.clone();
        let scope = scope.clone();
        async move { next_chunk(store, scope, position).await }
    });
    let head = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"suppressions.csv\"",
            ),
        ],
        Body::from_stream(futures_util::StreamExt::chain(head, rest)),
    )
        .into_response())
}

/// The next chunk of CSV after `position`, or the end. A store failure ends the body with an
/// error, so the client sees a truncated transfer rather than a short file that looks whole.
async fn next_chunk(
    store: Store,
    scope: Option<Scope>,
    position: Position,
) -> Result<Option<(Bytes, Position)>, std::io::Error> {
    let Position::After(after) = position else {
        return Ok(None);
    };
    let page = tokio::task::spawn_blocking(move || {
        store.suppressions_after(scope.as_ref(), None, Some(&after), PAGE)
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(|e| {
        tracing::error!(error = %e, "suppression export stopped by a store failure");
        std::io::Error::other(e)
    })?;
    if page.is_empty() {
        return Ok(None);
    }
    let next = next_position(&page);
    Ok(Some((Bytes::from(csv_chunk(None, &page)), next)))
}

/// A full page may have a successor; a short one is the last.
fn next_position(page: &[(SuppressionKey, Suppression)]) -> Position {
    match page.last() {
        Some((key, _)) if page.len() == PAGE => Position::After(key.clone()),
        _ => Position::Done,
    }
}

/// CSV rows for `page`, after `header` when given.
fn csv_chunk(header: Option<&[&str]>, page: &[(SuppressionKey, Suppression)]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(page.len() * 96 + 80));
    // Writing to a Vec cannot fail.
    if let Some(h) = header {
        let _ = w.write_record(h);
    }
    for (key, entry) in page {
        let _ = w.write_record([
            key.scope.key().as_str(),
            key.address.as_str(),
            list_name(key.list),
            entry.reason.as_str(),
            tags_of(entry).join(";").as_str(),
            rfc3339(entry.created_at).as_str(),
            entry.expires_at.map(rfc3339).unwrap_or_default().as_str(),
            entry.detail.as_str(),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Reason};

    #[test]
    fn rows_quote_what_needs_quoting() {
        let mut e = Suppression::new(Reason::HardBounce, 1_319_194_975);
        e.tags = vec!["a".into(), "b".into()];
        e.detail = "550 5.1.1 \"no\", sorry".into();
        e.expires_at = Some(1_319_194_975);
        let key = SuppressionKey::new(Scope::Domain("d.io".into()), "a@x.io", List::Bounces);
        let text = String::from_utf8(csv_chunk(Some(&COLUMNS), &[(key, e)])).unwrap();
        assert_eq!(
            text,
            "scope,address,list,reason,tags,created_at,expires_at,detail\n\
             domain:d.io,a@x.io,bounces,hard-bounce,a;b,2011-10-21T11:02:55Z,2011-10-21T11:02:55Z,\"550 5.1.1 \"\"no\"\", sorry\"\n"
        );
    }
}
