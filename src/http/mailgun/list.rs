//! `GET /v3/{domain}/{resource}`: one page of the list in address order, and the paging URLs
//! that lead to the neighbouring pages.
//!
//! Paging is by pivot, as Mailgun's: `page=next&address=X` is the page after `X`,
//! `page=previous&address=X` the page before it, `page=last` the end. Every URL repeats `limit`
//! and `term`, so a client only ever follows URLs. A page past either end is empty; its
//! `previous` (after the end) or `next` (before the start) leads back into the list.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};

use super::{render, Resource, Target};
use crate::http::auth::ApiKey;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{List, Page, Scope, Store, StoreError, Suppression};

/// Mailgun's default page size.
const DEFAULT_LIMIT: usize = 100;
/// Mailgun's largest page size.
const MAX_LIMIT: usize = 1000;

/// Where a page starts or ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
    First,
    /// Addresses after this one.
    After(String),
    /// Addresses before this one.
    Before(String),
    Last,
}

/// The paging state a list request carries in its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListQuery {
    pub position: Position,
    pub limit: usize,
    /// Address prefix filter, lowercased like the stored addresses.
    pub term: String,
}

impl ListQuery {
    /// Parses `limit`, `page`, `address` and `term`; other parameters (an old client's `skip`)
    /// are ignored. `next` without an address is the first page, `previous` without one the last.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, ApiError> {
        let pairs = crate::http::form::pairs(query.unwrap_or("").as_bytes())
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let get = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
        };
        let limit = match get("limit").filter(|v| !v.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "limit {v:?} must be an integer from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let term = checked("term", get("term").unwrap_or(""))?;
        let pivot = checked("address", get("address").unwrap_or(""))?;
        let position = match (get("page").unwrap_or("first"), pivot.is_empty()) {
            ("" | "first", _) | ("next", true) => Position::First,
            ("last", _) | ("previous" | "prev", true) => Position::Last,
            ("next", false) => Position::After(pivot),
            ("previous" | "prev", false) => Position::Before(pivot),
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "page {other:?} must be first, next, previous or last"
                )))
            }
        };
        Ok(ListQuery {
            position,
            limit,
            term,
        })
    }
}

/// A query value compared with stored addresses: lowercased; control characters (which
/// cannot occur in a stored address) refused.
fn checked(name: &str, value: &str) -> Result<String, ApiError> {
    if value.chars().any(char::is_control) || value.len() > 254 {
        return Err(ApiError::bad_request(format!(
            "{name} {value:?} is not a valid address prefix"
        )));
    }
    Ok(value.to_lowercase())
}

/// `paging.first/next/previous/last` for a page of `addresses` fetched at `q`, each a full URL
/// on `base` (`http://host/v3/{domain}/{resource}`), in Mailgun's parameter order.
pub(super) fn paging(base: &str, q: &ListQuery, addresses: &[&str]) -> Value {
    let url = |page: Option<&str>, address: Option<&str>| {
        let mut params: Vec<(&str, String)> = Vec::with_capacity(4);
        if let Some(p) = page {
            params.push(("page", p.to_string()));
        }
        if let Some(a) = address {
            params.push(("address", a.to_string()));
        }
        params.push(("limit", q.limit.to_string()));
        params.push(("term", q.term.clone()));
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        format!("{base}?{query}")
    };
    let (next, previous) = match (addresses.first(), addresses.last(), &q.position) {
        (Some(first), Some(last), _) => (Some(*last), Some(*first)),
        // Past the end: nothing after the pivot, so "previous" is the last page.
        (_, _, Position::After(a)) => (Some(a.as_str()), None),
        // Before the start: nothing before the pivot, so "next" is the first page.
        (_, _, Position::Before(a)) => (None, Some(a.as_str())),
        _ => (None, None),
    };
    json!({
        "first": url(None, None),
        "last": url(Some("last"), None),
        "next": url(Some("next"), next),
        "previous": url(Some("previous"), previous),
    })
}

/// The scheme and authority clients reached us at: `https` when the listener serves TLS or a
/// proxy says so (`X-Forwarded-Proto`), the `Host` header when it is a plain host\[:port\],
/// else the configured listen address.
pub(super) fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let scheme = if state.config.http.tls.is_some() || forwarded_https {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| state.config.http.listen.to_string());
    format!("{scheme}://{host}")
}

/// Characters escaped in a path segment (RFC 3986 §3.3): controls, space, delimiters, `%`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `{origin}/v3/{domain}/{resource}`, the domain escaped as a path segment.
pub(super) fn base_url(origin: &str, domain: &str, resource: &str) -> String {
    format!(
        "{origin}/v3/{}/{resource}",
        utf8_percent_encode(domain, SEGMENT)
    )
}

/// Up to `limit` entries of `list` in `scope` whose address starts with `term`, in address
/// order, positioned by `position`: one range scan of the store.
pub(super) fn fetch(
    store: &Store,
    scope: &Scope,
    list: List,
    position: &Position,
    term: &str,
    limit: usize,
) -> Result<Vec<(String, Suppression)>, StoreError> {
    let page = match position {
        Position::First => Page::First,
        Position::After(a) => Page::After(a),
        Position::Before(a) => Page::Before(a),
        Position::Last => Page::Last,
    };
    store.suppression_page(scope, list, page, term, limit)
}

/// `GET /v3/{domain}/{resource}`.
pub(super) async fn list<R: Resource>(
    _: ApiKey,
    State(state): State<AppState>,
    target: Target,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(uri.query())?;
    let rows = fetch(
        &state.store,
        &target.scope,
        R::LIST,
        &q.position,
        &q.term,
        q.limit,
    )?;
    let now = chrono::Utc::now().timestamp();
    let items: Vec<Value> = rows
        .iter()
        .filter(|(_, e)| !e.is_expired(now))
        .map(|(a, e)| render::<R>(a, e))
        .collect();
    let base = base_url(&origin(&state, &headers), &target.domain, R::NAME);
    let addresses: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
    Ok(Json(
        json!({ "items": items, "paging": paging(&base, &q, &addresses) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Reason, SuppressionKey};

    fn parse(q: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(Some(q))
    }

    #[test]
    fn query_defaults_and_positions() {
        let q = ListQuery::parse(None).unwrap();
        assert_eq!(
            (q.position, q.limit, q.term.as_str()),
            (Position::First, 100, "")
        );
        assert_eq!(
            parse("page=next&address=B%40x").unwrap().position,
            Position::After("b@x".into())
        );
        assert_eq!(
            parse("page=previous&address=b@x").unwrap().position,
            Position::Before("b@x".into())
        );
        assert_eq!(
            parse("page=prev&address=b@x").unwrap().position,
            Position::Before("b@x".into())
        );
        assert_eq!(
            parse("page=last&address=b@x").unwrap().position,
            Position::Last
        );
        assert_eq!(parse("page=next").unwrap().position, Position::First);
        assert_eq!(
            parse("page=previous&address=").unwrap().position,
            Position::Last
        );
        assert_eq!(parse("limit=1000&term=Al&skip=5").unwrap().limit, 1000);
        assert_eq!(parse("term=Al").unwrap().term, "al");
    }

    #[test]
    fn bad_queries_are_400() {
        for bad in [
            "limit=1001",
            "limit=0",
            "limit=-1",
            "limit=ten",
            "page=sideways",
            "term=a%00",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(parse("limit=1001").unwrap_err().message.contains("limit"));
    }

    #[test]
    fn paging_urls_carry_all_state() {
        let base = "http://h:1/v3/d.io/unsubscribes";
        let q = parse("page=next&address=a@x&limit=2&term=b c").unwrap();
        let p = paging(base, &q, &["b c@x", "b d@x"]);
        assert_eq!(
            p["first"],
            "http://h:1/v3/d.io/unsubscribes?limit=2&term=b+c"
        );
        assert_eq!(
            p["last"],
            "http://h:1/v3/d.io/unsubscribes?page=last&limit=2&term=b+c"
        );
        assert_eq!(
            p["next"],
            "http://h:1/v3/d.io/unsubscribes?page=next&address=b+d%40x&limit=2&term=b+c"
        );
        assert_eq!(
            p["previous"],
            "http://h:1/v3/d.io/unsubscribes?page=previous&address=b+c%40x&limit=2&term=b+c"
        );
        // Every URL parses back into the state it names.
        let back = |u: &Value| {
            ListQuery::parse(u.as_str().and_then(|s| s.split_once('?')).map(|(_, q)| q)).unwrap()
        };
        assert_eq!(
            back(&p["next"]),
            ListQuery {
                position: Position::After("b d@x".into()),
                ..q.clone()
            }
        );
        assert_eq!(back(&p["first"]).position, Position::First);
    }

    #[test]
    fn base_urls_keep_the_domain_readable() {
        assert_eq!(
            base_url("http://h:1", "mg.example.com", "bounces"),
            "http://h:1/v3/mg.example.com/bounces"
        );
        assert_eq!(
            base_url("https://h", "a?b#c", "complaints"),
            "https://h/v3/a%3Fb%23c/complaints"
        );
    }

    #[test]
    fn empty_pages_lead_back_into_the_list() {
        let q = parse("page=next&address=e@x&limit=2").unwrap();
        let p = paging("http://h", &q, &[]);
        assert_eq!(p["next"], "http://h?page=next&address=e%40x&limit=2&term=");
        assert_eq!(p["previous"], "http://h?page=previous&limit=2&term=");
        let q = parse("page=previous&address=a@x&limit=2").unwrap();
        let p = paging("http://h", &q, &[]);
        assert_eq!(
            p["previous"],
            "http://h?page=previous&address=a%40x&limit=2&term="
        );
        assert_eq!(p["next"], "http://h?page=next&limit=2&term=");
    }

    #[test]
    fn fetch_positions_within_scope_list_and_term() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let sc = Scope::Domain("d.io".into());
        let put = |scope: &Scope, a: &str, l: List| {
            s.suppression_put(
                &SuppressionKey::new(scope.clone(), a, l),
                &Suppression::new(Reason::Unsub, 1),
            )
            .unwrap()
        };
        for a in ["e@x", "a@x", "c@x", "b@x", "d@x"] {
            put(&sc, a, List::Unsubscribes);
        }
        put(&sc, "bb@x", List::Bounces);
        put(&Scope::Domain("c.io".into()), "z@x", List::Unsubscribes);
        put(&Scope::Domain("e.io".into()), "a@x", List::Unsubscribes);
        let u = List::Unsubscribes;
        let f = |p: Position, term: &str, n: usize| {
            fetch(&s, &sc, u, &p, term, n)
                .unwrap()
                .into_iter()
                .map(|(a, _)| a)
                .collect::<Vec<_>>()
        };
        assert_eq!(f(Position::First, "", 2), ["a@x", "b@x"]);
        assert_eq!(f(Position::After("b@x".into()), "", 2), ["c@x", "d@x"]);
        assert_eq!(
            f(Position::After("e@x".into()), "", 2),
            Vec::<String>::new()
        );
        assert_eq!(f(Position::Before("d@x".into()), "", 2), ["b@x", "c@x"]);
        assert_eq!(f(Position::Before("b@x".into()), "", 2), ["a@x"]);
        assert_eq!(f(Position::Last, "", 2), ["d@x", "e@x"]);
        assert_eq!(f(Position::First, "c", 10), ["c@x"]);
        assert_eq!(f(Position::Last, "", 10).len(), 5);
        let b = fetch(&s, &sc, List::Bounces, &Position::First, "", 10).unwrap();
        assert_eq!(b.len(), 1);
    }
}
