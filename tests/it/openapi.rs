//! `/openapi.json` in step with the code: the document's operations (with their
//! `x-quell-aliases`) are exactly `quell::http::openapi::ROUTES`, every one of them answers on a
//! running quell with a status the document names, and every method the document does not name
//! on its paths answers 405.

use std::collections::BTreeSet;

use quell::http::openapi::{DOCUMENT, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Quell, API_KEY};

/// The methods an OpenAPI path item may hold that quell could route.
const METHODS: [&str; 6] = ["get", "head", "post", "put", "delete", "patch"];

/// One documented operation at one served path (a documented path or one of its aliases).
struct Route {
    method: String,
    /// The path as written in the document (an alias, or the documented path).
    path: String,
    /// The path item that documents it.
    item: Value,
}

impl Route {
    fn operation(&self) -> &Value {
        &self.item[self.method.to_lowercase()]
    }
}

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// Every (method, path) the document describes, aliases included.
fn documented(doc: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let mut served = vec![path.clone()];
        if let Some(aliases) = item["x-quell-aliases"].as_array() {
            served.extend(
                aliases
                    .iter()
                    .map(|a| a.as_str().expect("alias").to_string()),
            );
        }
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            for p in &served {
                routes.push(Route {
                    method: method.to_uppercase(),
                    path: p.clone(),
                    item: item.clone(),
                });
            }
        }
    }
    routes
}

/// The path parameters of a path item (its own and its operations'), by name.
fn path_parameter<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    let own = item["parameters"].as_array().into_iter().flatten();
    let ops = METHODS
        .iter()
        .filter_map(|m| item[*m]["parameters"].as_array())
        .flatten();
    own.chain(ops)
        .find(|p| p["in"] == "path" && p["name"] == name)
}

/// The concrete paths to probe for `route`: each `{name}` filled with each value of its `enum`,
/// or with a sample value of the right kind.
fn concrete(route: &Route) -> Vec<String> {
    let mut paths = vec![route.path.clone()];
    while let Some(start) = paths[0].find('{') {
        let end = start + paths[0][start..].find('}').expect("closing brace");
        let name = paths[0][start + 1..end].to_string();
        let param = path_parameter(&route.item, &name).unwrap_or_else(|| {
            panic!(
                "{}: {{{name}}} is not a documented path parameter",
                route.path
            )
        });
        let values: Vec<String> = match param["schema"]["enum"].as_array() {
            Some(values) => values
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            None => vec![match name.as_str() {
                "domain" => "example.com",
                "address" => "someone@example.net",
                "token" => "not-a-token",
                "id" | "task_id" => "0123456789ABCDEF0123",
                other => panic!("no sample value for path parameter {other:?}: add one here"),
            }
            .to_string()],
        };
        let placeholder = format!("{{{name}}}");
        let placeholder = placeholder.as_str();
        paths = paths
            .iter()
            .flat_map(|p| values.iter().map(move |v| p.replacen(placeholder, v, 1)))
            .collect();
    }
    paths
}

#[test]
fn routes_and_document_list_the_same_operations() {
    let doc = document();
    let routes = documented(&doc);
    let in_doc: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        routes.len(),
        in_doc.len(),
        "an alias repeats a documented path"
    );
    let in_code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(ROUTES.len(), in_code.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = in_code.difference(&in_doc).collect();
    assert!(
        undocumented.is_empty(),
        "in ROUTES but not in openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = in_doc.difference(&in_code).collect();
    assert!(
        unrouted.is_empty(),
        "in openapi.json but not in ROUTES: {unrouted:?}"
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let q = Quell::start().await;
    let r = reqwest::get(q.url("/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    assert_eq!(served, document());
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_a_documented_status() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let doc = document();
    let mut probed = 0;
    for route in documented(&doc) {
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        for path in concrete(&route) {
            let r = http
                .request(method.clone(), q.url(&path))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.bytes().await.unwrap();
            let what = format!("{} {path} -> {status}", route.method);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}: not routed");
            // The router's own 404 has no body; a handler's "not found" always has one.
            let routed = status != StatusCode::NOT_FOUND || !body.is_empty() || method == "HEAD";
            assert!(routed, "{what}: no such route");
            let responses = &route.operation()["responses"];
            assert!(
                responses.get(status.as_str()).is_some() || responses.get("default").is_some(),
                "{what}: status not documented ({})",
                String::from_utf8_lossy(&body)
            );
            probed += 1;
        }
    }
    assert!(probed >= ROUTES.len(), "{probed} probes");
}

#[tokio::test]
async fn methods_the_document_does_not_name_are_refused() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let doc = document();
    let mut by_path: std::collections::BTreeMap<String, (Value, BTreeSet<String>)> =
        Default::default();
    for route in documented(&doc) {
        by_path
            .entry(route.path.clone())
            .or_insert_with(|| (route.item.clone(), BTreeSet::new()))
            .1
            .insert(route.method);
    }
    for (path, (item, methods)) in by_path {
        let route = Route {
            method: String::new(),
            path,
            item,
        };
        for method in METHODS.map(str::to_uppercase) {
            // axum answers HEAD wherever GET is routed.
            let implied = method == "HEAD" && methods.contains("GET");
            if methods.contains(&method) || implied {
                continue;
            }
            for path in concrete(&route) {
                let r = http
                    .request(Method::from_bytes(method.as_bytes()).unwrap(), q.url(&path))
                    .bearer_auth(API_KEY)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
}
