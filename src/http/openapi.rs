//! `GET /openapi.json`: the OpenAPI 3.0.3 description of every HTTP endpoint, so that API
//! clients can be generated and tools such as schemathesis can test quell against what it
//! promises. No key is needed: the document holds no secret.
//!
//! The document is written by hand in `openapi.json` beside this file, where a reviewer reads
//! it as one piece, and compiled in. [`ROUTES`] is the list of routes the router serves; the
//! integration test `tests/it/openapi.rs` keeps the three in step: every route of [`ROUTES`] is
//! in the document and the other way round, and each answers on a running quell with a status
//! the document names (and every method the document does not name answers 405).
//!
//! Paths in [`ROUTES`] are written as in the document; a path item's `x-quell-aliases` lists
//! the other paths served by the same handlers (Mandrill's calls without `.json` and under
//! `whitelists/`, `/engage/`). Mandrill's `.xml`, `.php` and `.yaml` suffixes only refuse the
//! call and are described in the document's `mandrill` tag, not listed here.

use axum::http::header;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Every `(method, path)` the router serves, paths written as in [`DOCUMENT`]. Add a route
/// here and to the document when adding it to a router; the integration test fails until both
/// agree with each other and with the running server.
pub const ROUTES: &[(&str, &str)] = &[
    // health
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    // messages
    ("GET", "/api/messages/{id}"),
    // landing
    ("GET", "/u/{token}"),
    ("HEAD", "/u/{token}"),
    ("POST", "/u/{token}"),
    // mailgun
    ("GET", "/v3/{domain}/unsubscribes"),
    ("POST", "/v3/{domain}/unsubscribes"),
    ("DELETE", "/v3/{domain}/unsubscribes"),
    ("POST", "/v3/{domain}/unsubscribes/import"),
    ("GET", "/v3/{domain}/unsubscribes/{address}"),
    ("DELETE", "/v3/{domain}/unsubscribes/{address}"),
    ("GET", "/v3/{domain}/bounces"),
    ("POST", "/v3/{domain}/bounces"),
    ("DELETE", "/v3/{domain}/bounces"),
    ("POST", "/v3/{domain}/bounces/import"),
    ("GET", "/v3/{domain}/bounces/{address}"),
    ("DELETE", "/v3/{domain}/bounces/{address}"),
    ("GET", "/v3/{domain}/complaints"),
    ("POST", "/v3/{domain}/complaints"),
    ("DELETE", "/v3/{domain}/complaints"),
    ("POST", "/v3/{domain}/complaints/import"),
    ("GET", "/v3/{domain}/complaints/{address}"),
    ("DELETE", "/v3/{domain}/complaints/{address}"),
    // mandrill
    ("POST", "/api/1.0/rejects/add.json"),
    ("POST", "/api/1.0/rejects/add"),
    ("POST", "/api/1.0/rejects/list.json"),
    ("POST", "/api/1.0/rejects/list"),
    ("POST", "/api/1.0/rejects/delete.json"),
    ("POST", "/api/1.0/rejects/delete"),
    ("POST", "/api/1.0/allowlists/add.json"),
    ("POST", "/api/1.0/allowlists/add"),
    ("POST", "/api/1.0/allowlists/list.json"),
    ("POST", "/api/1.0/allowlists/list"),
    ("POST", "/api/1.0/allowlists/delete.json"),
    ("POST", "/api/1.0/allowlists/delete"),
    ("POST", "/api/1.0/whitelists/add.json"),
    ("POST", "/api/1.0/whitelists/add"),
    ("POST", "/api/1.0/whitelists/list.json"),
    ("POST", "/api/1.0/whitelists/list"),
    ("POST", "/api/1.0/whitelists/delete.json"),
    ("POST", "/api/1.0/whitelists/delete"),
    ("POST", "/api/1.3/rejects/add.json"),
    ("POST", "/api/1.3/rejects/add"),
    ("POST", "/api/1.3/rejects/list.json"),
    ("POST", "/api/1.3/rejects/list"),
    ("POST", "/api/1.3/rejects/delete.json"),
    ("POST", "/api/1.3/rejects/delete"),
    ("POST", "/api/1.3/allowlists/add.json"),
    ("POST", "/api/1.3/allowlists/add"),
    ("POST", "/api/1.3/allowlists/list.json"),
    ("POST", "/api/1.3/allowlists/list"),
    ("POST", "/api/1.3/allowlists/delete.json"),
    ("POST", "/api/1.3/allowlists/delete"),
    ("POST", "/api/1.3/whitelists/add.json"),
    ("POST", "/api/1.3/whitelists/add"),
    ("POST", "/api/1.3/whitelists/list.json"),
    ("POST", "/api/1.3/whitelists/list"),
    ("POST", "/api/1.3/whitelists/delete.json"),
    ("POST", "/api/1.3/whitelists/delete"),
    // mixpanel
    ("GET", "/engage"),
    ("POST", "/engage"),
    ("GET", "/engage/"),
    ("POST", "/engage/"),
    ("POST", "/engage/import"),
    ("POST", "/api/app/data-deletions/v3.0/"),
    ("GET", "/api/app/data-deletions/v3.0/{task_id}"),
    // admin
    ("GET", "/api/suppressions"),
    ("POST", "/api/suppressions"),
    ("DELETE", "/api/suppressions"),
    ("GET", "/api/suppressions/export"),
    ("GET", "/api/queue"),
    ("POST", "/api/queue/{id}/retry"),
    ("DELETE", "/api/queue/{id}"),
];

/// The `/openapi.json` route, merged into the HTTP router by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], DOCUMENT) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.0.3");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external {r}"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn operations_have_unique_ids_and_responses() {
        let doc = document();
        let mut ids = HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if !["get", "head", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    continue;
                }
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(ids.insert(id.to_string()), "{method} {path}: id {id:?}");
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('2') || s == "303"),
                    "{method} {path} has no success response"
                );
            }
        }
    }
}
