//! quell's own admin API over real HTTP: `/api/suppressions` (cursor listing across scopes,
//! atomic batch add, removal, streamed CSV export) and `/api/queue` (list, retry, delete), with
//! bad input refused whole and every route behind the key.

use std::time::Duration;

use quell::store::{List, Reason, Scope, Status, SuppressionKey};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::support::{message, queue_id, Quell, Script, API_KEY};

/// An admin API client for one running quell.
struct Api {
    q: Quell,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api::with(Quell::start().await)
    }

    fn with(q: Quell) -> Api {
        Api {
            q,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.q.url(path))
            .bearer_auth(API_KEY)
    }

    /// Sends `req`; every answer, errors included, must be JSON.
    async fn send(req: RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        Api::send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Api::send(self.request(Method::POST, path).json(&body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Api::send(self.request(Method::DELETE, path)).await
    }

    /// `"scope address list"` of every item of a listing.
    fn names(v: &Value) -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| format!("{} {} {}", i["scope"], i["address"], i["list"]).replace('"', ""))
            .collect()
    }

    fn count(&self) -> usize {
        self.q.state.store.suppression_count()
    }
}

#[tokio::test]
async fn add_then_list_across_scopes_with_a_cursor() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/api/suppressions",
            json!([
                {"scope": "global", "address": "B@example.net", "reason": "unsub"},
                {"scope": "global", "address": "b@example.net", "reason": "hard-bounce",
                 "detail": "550 5.1.1 gone", "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"},
                {"scope": "domain:Mg.Example.com", "address": "a@example.net", "tags": ["news", "promo"],
                 "created_at": "2011-10-21T11:02:55Z", "expires_at": "2030-01-01T00:00:00+01:00"},
                {"scope": "sender:App@Example.com", "address": "c@example.net", "reason": "spam"},
            ]),
        )
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"added": 4})));

    // Stored as given: normalised addresses and scopes, the reason's list, dates, tags.
    let store = &api.q.state.store;
    let key = SuppressionKey::new(
        Scope::Domain("mg.example.com".into()),
        "a@example.net",
        List::Unsubscribes,
    );
    let e = store.suppression_get(&key).unwrap().expect("domain entry");
    assert_eq!(e.reason, Reason::Custom, "custom is the default reason");
    assert_eq!(e.tags, ["news", "promo"]);
    assert_eq!(
        (e.created_at, e.expires_at),
        (1_319_194_975, Some(1_893_452_400))
    );

    let (status, all) = api.get("/api/suppressions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        Api::names(&all),
        [
            "domain:mg.example.com a@example.net unsubscribes",
            "global b@example.net bounces",
            "global b@example.net unsubscribes",
            "sender:app@example.com c@example.net complaints",
        ]
    );
    assert_eq!(all["next"], Value::Null);
    let bounce = &all["items"][1];
    assert_eq!(bounce["reason"], "hard-bounce");
    assert_eq!(bounce["detail"], "550 5.1.1 gone");
    assert_eq!(bounce["created_at"], "2011-10-21T11:02:55Z");
    assert_eq!(bounce["expires_at"], Value::Null);
    assert_eq!(bounce["tags"], json!(["*"]));
    assert_eq!(all["items"][0]["expires_at"], "2029-12-31T23:00:00Z");

    // Pages of 1, followed by cursor, give the same entries in the same order.
    let mut paged = Vec::new();
    let mut path = "/api/suppressions?limit=1".to_string();
    loop {
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(Api::names(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/suppressions?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, Api::names(&all));

    // Filters: one scope, one address (across scopes), both.
    let (_, global) = api.get("/api/suppressions?scope=global").await;
    assert_eq!(Api::names(&global).len(), 2);
    let (_, b) = api.get("/api/suppressions?address=B%40Example.net").await;
    assert_eq!(Api::names(&b).len(), 2);
    let (_, none) = api
        .get("/api/suppressions?scope=domain:mg.example.com&address=b@example.net")
        .await;
    assert_eq!(none["items"], json!([]));

    // A listing can be posted back as it is.
    let before = api.count();
    let (status, body) = api.post("/api/suppressions", all["items"].clone()).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"added": 4})));
    assert_eq!(api.count(), before);
    let (_, again) = api.get("/api/suppressions").await;
    assert_eq!(again, all);
}

#[tokio::test]
async fn bad_input_is_refused_whole_and_named() {
    let api = Api::start().await;
    let good = json!({"scope": "global", "address": "ok@example.net"});
    let cases = [
        (
            json!([good, {"scope": "global", "address": "nope"}]),
            "item 1: address \"nope\"",
        ),
        (
            json!([good, {"scope": "galactic", "address": "a@x.io"}]),
            "item 1: scope \"galactic\"",
        ),
        (
            json!([good, {"scope": "global", "address": "a@x.io", "reason": "bored"}]),
            "reason \"bored\"",
        ),
        (
            json!([good, {"scope": "global", "address": "a@x.io", "created_at": "yesterday"}]),
            "created_at \"yesterday\"",
        ),
        (
            json!([good, {"scope": "global", "address": "a@x.io", "reson": "spam"}]),
            "unknown field `reson`",
        ),
        (
            json!([good, {"address": "a@x.io"}]),
            "missing field `scope`",
        ),
        (json!([]), "empty"),
        (json!(good), "JSON array"),
    ];
    for (body, want) in cases {
        let (status, answer) = api.post("/api/suppressions", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{body}: {message}");
        assert_eq!(api.count(), 0, "{body} wrote something");
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"scope": "global", "address": format!("u{i}@example.net")}))
        .collect();
    let (status, answer) = api.post("/api/suppressions", json!(too_many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("1001 entries"));
    let (status, answer) = Api::send(
        api.request(Method::POST, "/api/suppressions")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(api.count(), 0);

    for (path, want) in [
        ("/api/suppressions?limit=0", "limit \"0\""),
        ("/api/suppressions?limit=1001", "limit \"1001\""),
        ("/api/suppressions?after=garbage", "after \"garbage\""),
        ("/api/suppressions?scope=everyone", "scope \"everyone\""),
        ("/api/suppressions?address=nope", "address \"nope\""),
        (
            "/api/suppressions?adress=a@x.io",
            "unknown parameter \"adress\"",
        ),
        ("/api/suppressions/export?scope=x", "scope \"x\""),
        ("/api/queue?limit=5000", "limit \"5000\""),
    ] {
        let (status, answer) = api.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{path}: {message}");
    }
    // A queue id that is not UTF-8 is refused in JSON too.
    let (status, answer) = api.post("/api/queue/%FF/retry", json!(null)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = api.delete("/api/queue/%FF").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    for (path, want) in [
        ("/api/suppressions?address=a@x.io", "scope is required"),
        ("/api/suppressions?scope=global", "address is required"),
        (
            "/api/suppressions?scope=global&address=a@x.io&list=spam",
            "list \"spam\"",
        ),
        (
            "/api/suppressions?scope=global&address=a@x.io&list=bounces&reason=unsub",
            "belongs on",
        ),
    ] {
        let (status, answer) = api.delete(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{path}: {message}");
    }
}

#[tokio::test]
async fn remove_one_address_or_a_batch() {
    let api = Api::start().await;
    let (status, _) = api
        .post(
            "/api/suppressions",
            json!([
                {"scope": "global", "address": "a@example.net", "reason": "unsub"},
                {"scope": "global", "address": "a@example.net", "reason": "spam"},
                {"scope": "global", "address": "b@example.net", "reason": "unsub"},
                {"scope": "global", "address": "c@example.net", "reason": "custom"},
                {"scope": "domain:d.io", "address": "a@example.net"},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // One list of one address in one scope.
    let (status, body) = api
        .delete("/api/suppressions?scope=global&address=A@example.net&list=complaints")
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"removed": 1})));
    // Nothing left to match there: 404.
    let (status, body) = api
        .delete("/api/suppressions?scope=global&address=a@example.net&list=complaints")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Every list, only in that scope.
    let (status, body) = api
        .delete("/api/suppressions?scope=global&address=a@example.net")
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"removed": 1})));
    let (_, left) = api.get("/api/suppressions?address=a@example.net").await;
    assert_eq!(
        Api::names(&left),
        ["domain:d.io a@example.net unsubscribes"]
    );

    // A batch in the body; a reason filter spares a manual entry on the same list; items that
    // match nothing are no error.
    let (status, body) = Api::send(
        api.request(Method::DELETE, "/api/suppressions")
            .json(&json!([
                {"scope": "global", "address": "b@example.net", "reason": "unsub"},
                {"scope": "global", "address": "c@example.net", "reason": "unsub"},
                {"scope": "global", "address": "nobody@example.net"},
            ])),
    )
    .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"removed": 1})));
    let (_, left) = api.get("/api/suppressions?scope=global").await;
    assert_eq!(Api::names(&left), ["global c@example.net unsubscribes"]);

    // A bad item refuses the whole batch.
    let (status, body) = Api::send(
        api.request(Method::DELETE, "/api/suppressions")
            .json(&json!([
                {"scope": "global", "address": "c@example.net"},
                {"scope": "global", "address": "not an address"},
            ])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("item 1: address"));
    assert_eq!(api.count(), 2);
}

#[tokio::test]
async fn export_streams_every_entry_as_csv() {
    let api = Api::start().await;
    // More than one store page (1000), so the stream has several chunks.
    for chunk in 0..3 {
        let items: Vec<Value> = (0..900)
            .map(|i| json!({"scope": "global", "address": format!("u{chunk}-{i:03}@example.net"), "reason": "unsub"}))
            .collect();
        let (status, _) = api.post("/api/suppressions", json!(items)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = api
        .post(
            "/api/suppressions",
            json!([{"scope": "domain:d.io", "address": "t@example.net", "reason": "hard-bounce",
                    "tags": ["a", "b"], "detail": "550 \"gone\", sorry",
                    "created_at": "2011-10-21T11:02:55Z", "expires_at": "2031-10-21T11:02:55Z"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let resp = api
        .request(Method::GET, "/api/suppressions/export")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "scope",
            "address",
            "list",
            "reason",
            "tags",
            "created_at",
            "expires_at",
            "detail"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2701);
    assert_eq!(
        &rows[0],
        vec![
            "domain:d.io",
            "t@example.net",
            "bounces",
            "hard-bounce",
            "a;b",
            "2011-10-21T11:02:55Z",
            "2031-10-21T11:02:55Z",
            "550 \"gone\", sorry"
        ]
    );
    assert_eq!(&rows[1][1], "u0-000@example.net");
    assert_eq!(&rows[2700][1], "u2-899@example.net");
    let addresses: std::collections::HashSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(addresses.len(), 2701, "no entry twice across chunks");

    let text = api
        .request(Method::GET, "/api/suppressions/export?scope=domain:d.io")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[tokio::test]
async fn every_route_needs_the_key() {
    let api = Api::start().await;
    let http = reqwest::Client::new();
    let routes = [
        (Method::GET, "/api/suppressions"),
        (Method::POST, "/api/suppressions"),
        (
            Method::DELETE,
            "/api/suppressions?scope=global&address=a@x.io",
        ),
        (Method::GET, "/api/suppressions/export"),
        (Method::GET, "/api/queue"),
        (Method::POST, "/api/queue/X/retry"),
        (Method::DELETE, "/api/queue/X"),
    ];
    for (method, path) in routes {
        for req in [
            http.request(method.clone(), api.q.url(path)),
            http.request(method.clone(), api.q.url(path))
                .bearer_auth("wrong-key-0123456789abcdef"),
            http.request(method.clone(), api.q.url(path))
                .basic_auth("api", Some("wrong-key-0123456789abcdef")),
        ] {
            let req = req.json(&json!([{"scope": "global", "address": "a@x.io"}]));
            let (status, body) = Api::send(req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(body["message"].is_string());
        }
    }
    assert_eq!(api.count(), 0);
    // Mailgun-style Basic auth works too.
    let (status, _) = Api::send(
        http.get(api.q.url("/api/suppressions"))
            .basic_auth("api", Some(API_KEY)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// quell whose deferred messages are not retried on their own within a test's life.
async fn slow_retries() -> Api {
    Api::with(
        Quell::start_with(|c| {
            c.queue.retry_initial = Duration::from_secs(3600);
            c.queue.retry_max = Duration::from_secs(3600);
        })
        .await,
    )
}

#[tokio::test]
async fn queue_retry_delivers_a_deferred_message_now() {
    let api = slow_retries().await;
    api.q.upstream.script(Script::Defer);
    let reply = api
        .q
        .send("app@example.com", &["later@example.net"], &message("", "x"))
        .await;
    let id = queue_id(&reply);
    let md = format!("{id}.1");
    api.q.wait_status(&md, Status::Deferred).await;

    let (status, list) = api.get("/api/queue").await;
    assert_eq!(status, StatusCode::OK);
    let item = &list["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["sender"], "app@example.com");
    assert_eq!(item["recipients"], json!(["later@example.net"]));
    assert_eq!(item["attempts"], 1);
    assert!(item["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(item["next_attempt_at"].is_string(), "{item}");
    assert_eq!(list["next"], Value::Null);

    api.q.upstream.script(Script::Accept);
    let (status, body) = api
        .post(&format!("/api/queue/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id.as_str());
    api.q.upstream.wait_for(1).await;
    api.q.wait_status(&md, Status::Sent).await;
    let (_, list) = api.get("/api/queue").await;
    assert_eq!(list["items"], json!([]));

    let (status, body) = api
        .post(&format!("/api/queue/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&id));
}

#[tokio::test]
async fn queue_delete_bounces_the_waiting_copies() {
    let api = slow_retries().await;
    api.q.upstream.script(Script::Defer);
    api.q.upstream.script_rcpt("ok@example.net", Script::Accept);
    let reply = api
        .q
        .send(
            "app@example.com",
            &["ok@example.net", "a@example.net", "b@example.net"],
            &message("", "x"),
        )
        .await;
    let id = queue_id(&reply);
    api.q.wait_status(&format!("{id}.1"), Status::Sent).await;
    api.q
        .wait_status(&format!("{id}.3"), Status::Deferred)
        .await;
    // Paging: a second message, listed after the first.
    let second = queue_id(
        &api.q
            .send("app@example.com", &["c@example.net"], &message("", "y"))
            .await,
    );
    api.q
        .wait_status(&format!("{second}.1"), Status::Deferred)
        .await;
    let (_, page) = api.get("/api/queue?limit=1").await;
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert_eq!(
        page["items"][0]["recipients"],
        json!(["a@example.net", "b@example.net"])
    );
    let next = page["next"].as_str().expect("a next page");
    let (_, page) = api.get(&format!("/api/queue?limit=1&after={next}")).await;
    assert_eq!(page["items"][0]["id"], second.as_str());
    assert_eq!(page["next"], Value::Null);

    let (status, body) = api.delete(&format!("/api/queue/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bounced"], 2);
    let store = &api.q.state.store;
    assert!(store.queue_get(&id).unwrap().is_none());
    assert!(
        store.spool_read(&id).await.unwrap().is_none(),
        "the bytes go too"
    );
    for n in [2, 3] {
        let r = store.message_get(&format!("{id}.{n}")).unwrap().unwrap();
        assert_eq!(r.status, Status::Bounced);
        assert_eq!(
            r.last_reply.as_deref(),
            Some("deleted from the queue by the operator")
        );
    }
    let sent = store.message_get(&format!("{id}.1")).unwrap().unwrap();
    assert_eq!(
        sent.status,
        Status::Sent,
        "a delivered copy stays delivered"
    );
    let (_, list) = api.get("/api/queue").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let (status, _) = api.delete(&format!("/api/queue/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
