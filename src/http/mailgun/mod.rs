//! Mailgun-compatible suppressions API (SPEC §6.1): `/v3/{domain}/unsubscribes`, `/bounces` and
//! `/complaints` with Mailgun's paths, fields, status codes and message strings, so that
//! Mailgun's client libraries work against quell with only their base URL changed. Every entry
//! lives in scope `domain:{domain}` and never expires.
//!
//! The three resources share one shape, so the handlers are written once, generic over
//! [`Resource`]; each resource's file says only what differs (its list, reason, own fields and
//! messages).
//!
//! | file | concern |
//! |---|---|
//! | [`list`] | `GET /v3/{domain}/{resource}`: alphabetical pages and their paging URLs |
//! | [`entry`] | `GET`/`DELETE /v3/{domain}/{resource}/{address}`, `DELETE /v3/{domain}/{resource}` |
//! | [`add`] | `POST /v3/{domain}/{resource}`: a JSON array or object, or one form record |
//! | [`import`] | `POST /v3/{domain}/{resource}/import`: a CSV upload applied in the background |
//! | [`record`] | one submitted record, validated into a suppression entry; dates |
//! | [`unsubscribes`], [`bounces`], [`complaints`] | what differs between the three resources |

mod add;
mod bounces;
mod complaints;
mod entry;
mod import;
mod list;
mod record;
mod unsubscribes;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::state::AppState;
use crate::store::{List, Reason, Scope, StoreError, Suppression, SuppressionKey};
use crate::suppression::{Op, Rule, Suppressions};
use bounces::Bounces;
use complaints::Complaints;
use record::{RawRecord, RecordError};
use unsubscribes::Unsubscribes;

pub use import::resume as resume_imports;

/// The Mailgun suppression routes, merged into the HTTP router by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(routes::<Unsubscribes>())
        .merge(routes::<Bounces>())
        .merge(routes::<Complaints>())
}

/// Every route of one resource, with Mailgun's paths.
fn routes<R: Resource>() -> Router<AppState> {
    let base = format!("/v3/{{domain}}/{}", R::NAME);
    Router::new()
        .route(
            &base,
            get(list::list::<R>)
                .post(add::add::<R>)
                .delete(entry::clear::<R>),
        )
        .route(&format!("{base}/import"), post(import::import::<R>))
        .route(
            &format!("{base}/{{address}}"),
            get(entry::get::<R>).delete(entry::remove::<R>),
        )
}

/// What differs between Mailgun's three suppression resources. The handlers are generic over
/// it so that the resources cannot drift apart in paging, validation or atomicity.
trait Resource: Send + Sync + 'static {
    /// The store list the resource maps to.
    const LIST: List;
    /// The path segment (`unsubscribes`), also used in log lines.
    const NAME: &'static str;
    /// The reason given to entries created through the API.
    const REASON: Reason;
    /// CSV import columns, `address` first (Mailgun's documented header row).
    const CSV_COLUMNS: &'static [&'static str];
    /// 404 message for an address that is not on the list.
    const NOT_FOUND: &'static str;
    /// Message after adding one record.
    const ADDED_ONE: &'static str;
    /// Message after adding a batch, after the count: `"4 addresses have been added …"`.
    const ADDED_MANY: &'static str;
    /// Message after removing one address.
    const REMOVED_ONE: &'static str;
    /// Message after clearing the list for the domain.
    const REMOVED_ALL: &'static str;
    /// Whether entries carry tags that `DELETE …/{address}?tag=` may remove one by one.
    const TAGGED: bool = false;

    /// Copies the resource's own fields of `raw` into `entry`, or says which is wrong.
    fn fill(raw: &RawRecord, entry: &mut Suppression) -> Result<(), RecordError>;

    /// Adds the resource's own fields of `entry` to a rendered item.
    fn render_fields(entry: &Suppression, item: &mut Map<String, Value>);

    /// How a new entry combines with the one already stored for the address. Mailgun updates
    /// the existing record, so by default the new entry replaces it.
    const RULE: Rule = Rule::Replace;
}

/// One entry as Mailgun renders it: `address`, the resource's fields, `created_at`.
fn render<R: Resource>(address: &str, entry: &Suppression) -> Value {
    let mut item = Map::new();
    item.insert("address".into(), Value::String(address.to_string()));
    R::render_fields(entry, &mut item);
    item.insert(
        "created_at".into(),
        Value::String(crate::time::rfc2822(entry.created_at)),
    );
    Value::Object(item)
}

/// Writes validated entries in one atomic batch, each combined by the resource's rule with what
/// is already stored for its address (and with earlier entries for the same address in the
/// batch). Not synced: the caller syncs before it answers.
fn write_batch<R: Resource>(
    suppressions: &Suppressions,
    scope: &Scope,
    entries: Vec<(String, Suppression)>,
) -> Result<(), StoreError> {
    let ops: Vec<Op> = entries
        .into_iter()
        .map(|(address, entry)| Op::Add {
            key: SuppressionKey::new(scope.clone(), address, R::LIST),
            entry,
            rule: R::RULE,
            unless_allowlisted: false,
        })
        .collect();
    suppressions.apply_blocking(&ops, &[], crate::id::now_secs())?;
    Ok(())
}

/// The `{domain}` (and `{address}`, where the route has one) of a Mailgun path, validated.
/// Axum's own `Path` rejection is plain text; this answers in Mailgun's JSON shape.
struct Target {
    /// The domain as written in the path (for URLs).
    pub domain: String,
    /// `domain:{domain}`.
    pub scope: Scope,
    /// The percent-decoded `{address}` segment, as given.
    pub address: Option<String>,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let domain = params.remove("domain").unwrap_or_default();
        check_domain(&domain)?;
        Ok(Target {
            scope: Scope::Domain(domain.to_ascii_lowercase()),
            domain,
            address: params.remove("address"),
        })
    }
}

/// A domain must be usable as a scope key: bounded, no whitespace or control characters (a NUL
/// would break the store's key layout), no `/` or `@`.
fn check_domain(domain: &str) -> Result<(), ApiError> {
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '/' || c == '@';
    if domain.is_empty() || domain.len() > 253 || domain.chars().any(bad_char) {
        return Err(ApiError::bad_request(format!("invalid domain {domain:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_that_would_break_keys_are_refused() {
        for bad in ["", "a b.io", "a\0b.io", "a/b", "x@y", &"d".repeat(254)] {
            assert!(check_domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_domain("mg.Example.com").is_ok());
    }

    #[test]
    fn rendering_puts_address_fields_and_date() {
        let mut e = Suppression::new(Reason::HardBounce, 1_319_194_975);
        e.code = Some(551);
        e.detail = "No such mailbox".into();
        let v = render::<Bounces>("a@x.io", &e);
        assert_eq!(
            v,
            serde_json::json!({
                "address": "a@x.io",
                "code": "551",
                "error": "No such mailbox",
                "created_at": "Fri, 21 Oct 2011 11:02:55 UTC",
            })
        );
        let v = render::<Complaints>("a@x.io", &e);
        assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    }

    #[test]
    fn batch_merges_duplicates_and_stored_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let suppressions = Suppressions::new(store.clone());
        let scope = Scope::Domain("d.io".into());
        let tagged = |t: &str| {
            let mut e = Suppression::new(Reason::Unsub, 1);
            e.tags = vec![t.to_string()];
            e
        };
        write_batch::<Unsubscribes>(&suppressions, &scope, vec![("a@x".into(), tagged("one"))])
            .unwrap();
        write_batch::<Unsubscribes>(
            &suppressions,
            &scope,
            vec![
                ("a@x".into(), tagged("two")),
                ("a@x".into(), tagged("three")),
            ],
        )
        .unwrap();
        let key = SuppressionKey::new(scope.clone(), "a@x", List::Unsubscribes);
        let got = store.suppression_get(&key).unwrap().unwrap();
        assert_eq!(got.tags, ["one", "two", "three"]);

        // Bounces replace rather than merge.
        let mut b = Suppression::new(Reason::HardBounce, 1);
        b.code = Some(550);
        write_batch::<Bounces>(&suppressions, &scope, vec![("a@x".into(), b.clone())]).unwrap();
        b.code = Some(554);
        write_batch::<Bounces>(&suppressions, &scope, vec![("a@x".into(), b)]).unwrap();
        let key = SuppressionKey::new(scope, "a@x", List::Bounces);
        assert_eq!(
            store.suppression_get(&key).unwrap().unwrap().code,
            Some(554)
        );
    }
}
