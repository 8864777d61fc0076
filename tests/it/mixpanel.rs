//! The Mixpanel-style `$unsubscribed` API (SPEC §6.3) over real HTTP: the body shapes the
//! official clients send, `$token` and header auth, whole-request validation, profiles, and the
//! effect at RCPT; the CSV import's report, batches and re-subscribes.

use base64::Engine;
use quell::store::{List, Reason, Scope, Suppression, SuppressionKey};
use reqwest::multipart::{Form, Part};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::support::{Quell, API_KEY};

/// A Mixpanel client for one running quell.
struct Mp {
    q: Quell,
    http: reqwest::Client,
}

impl Mp {
    async fn start() -> Mp {
        // reqwest is built without a rustls provider of its own (it is shared with the admin
        // CLI); already installed is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Mp {
            q: Quell::start().await,
            http: reqwest::Client::new(),
        }
    }

    /// Sends `req`; answers are JSON (`{"status":…}`) except the terse `1`.
    async fn send(req: RequestBuilder) -> (StatusCode, String) {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    /// Sends `req` and parses the JSON answer.
    async fn send_json(req: RequestBuilder) -> (StatusCode, Value) {
        let (status, text) = Mp::send(req).await;
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, value)
    }

    /// `POST /engage` with a raw JSON body, as Mixpanel's HTTP docs show.
    async fn engage(&self, body: Value) -> (StatusCode, Value) {
        Mp::send_json(
            self.http
                .post(self.q.url("/engage"))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `POST /engage` as a form, as mixpanel-python sends it.
    async fn engage_form(&self, form: &[(&str, &str)]) -> (StatusCode, String) {
        Mp::send(self.http.post(self.q.url("/engage")).form(form)).await
    }

    /// `POST /engage/import` with a raw CSV body.
    async fn import(&self, csv: &str) -> (StatusCode, Value) {
        Mp::send_json(
            self.http
                .post(self.q.url("/engage/import"))
                .bearer_auth(API_KEY)
                .header("content-type", "text/csv")
                .body(csv.to_string()),
        )
        .await
    }

    /// The global unsubscribe entry of `address`.
    fn entry(&self, address: &str) -> Option<Suppression> {
        self.q
            .state
            .store
            .suppression_get(&SuppressionKey::new(
                Scope::Global,
                address,
                List::Unsubscribes,
            ))
            .expect("store")
    }

    fn put(&self, address: &str, e: Suppression) {
        self.q
            .state
            .store
            .suppression_put(
                &SuppressionKey::new(Scope::Global, address, e.reason.list()),
                &e,
            )
            .expect("store");
    }

    /// The RCPT reply for `rcpt` in mail from `sender`.
    async fn rcpt(&self, sender: &str, rcpt: &str) -> String {
        let mut c = self.q.client().await;
        c.expect("EHLO app.test", "250").await;
        c.expect(&format!("MAIL FROM:<{sender}>"), "250").await;
        let reply = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        c.cmd("QUIT").await;
        reply
    }
}

fn ok() -> Value {
    json!({"status": 1, "error": null})
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn set(id: &str, props: Value) -> Value {
    json!({"$token": API_KEY, "$distinct_id": id, "$set": props})
}

fn unset(id: &str) -> Value {
    json!({"$token": API_KEY, "$distinct_id": id, "$unset": ["$unsubscribed"]})
}

#[tokio::test]
async fn raw_json_object_refuses_mail_from_every_sender_until_unset() {
    let mp = Mp::start().await;
    let rcpt = "gone@example.net";
    assert!(mp.rcpt("app@example.com", rcpt).await.starts_with("250"));
    let (status, body) = mp
        .engage(set("Gone@Example.NET", json!({"$unsubscribed": true})))
        .await;
    assert_eq!((status, body), (StatusCode::OK, ok()));
    let e = mp.entry(rcpt).expect("suppressed");
    assert_eq!(
        (e.reason, e.tags.clone(), e.expires_at),
        (Reason::Unsub, vec!["*".to_string()], None)
    );
    assert_eq!(e.detail, "mixpanel $unsubscribed");
    for sender in ["app@example.com", "news@other.example", ""] {
        let reply = mp.rcpt(sender, rcpt).await;
        assert!(reply.starts_with("550 5.7.1"), "{sender:?}: {reply}");
    }
    let (status, body) = mp.engage(unset("gone@example.net")).await;
    assert_eq!((status, body), (StatusCode::OK, ok()));
    assert!(mp.entry(rcpt).is_none());
    assert!(mp.rcpt("app@example.com", rcpt).await.starts_with("250"));
}

#[tokio::test]
async fn raw_json_array_and_profiles_for_later_updates_by_id() {
    let mp = Mp::start().await;
    let (status, body) = mp
        .engage(json!([
            set("u1", json!({"$email": "One@Example.net", "plan": "pro"})),
            set("u2", json!({"$email": "two@example.net", "$unsubscribed": true})),
            {"$token": API_KEY, "$distinct_id": "u3", "$add": {"logins": 1}},
        ]))
        .await;
    assert_eq!((status, body), (StatusCode::OK, ok()));
    assert!(mp.entry("one@example.net").is_none(), "only mapped");
    assert!(mp.entry("two@example.net").is_some());
    let store = &mp.q.state.store;
    assert_eq!(
        store.profile_get("u1").unwrap().as_deref(),
        Some("one@example.net")
    );
    // Later, by id alone.
    let (status, _) = mp.engage(set("u1", json!({"$unsubscribed": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mp.entry("one@example.net").is_some());
    assert!(mp
        .rcpt("app@example.com", "one@example.net")
        .await
        .starts_with("550 5.7.1"));
    let (status, _) = mp.engage(unset("u1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(mp.entry("one@example.net").is_none());
}

#[tokio::test]
async fn python_form_with_json_or_base64_data_and_verbose() {
    let mp = Mp::start().await;
    // mixpanel-python: data=<JSON>&verbose=1&ip=0, $time as a float.
    let record = json!({"$token": API_KEY, "$time": 1_714_521_600.25, "$distinct_id": "py@example.net",
        "$set": {"$unsubscribed": true}});
    let (status, text) = mp
        .engage_form(&[("data", &record.to_string()), ("verbose", "1"), ("ip", "0")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), ok());
    assert!(mp.entry("py@example.net").is_some());
    // A BufferedConsumer's array, base64-encoded (older clients, mixpanel-node's POST).
    let batch = json!([
        set("b64@example.net", json!({"$unsubscribed": true})),
        unset("py@example.net")
    ]);
    let (status, text) = mp
        .engage_form(&[("data", &b64(&batch.to_string())), ("verbose", "1")])
        .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, ok().to_string().as_str())
    );
    assert!(mp.entry("b64@example.net").is_some());
    assert!(mp.entry("py@example.net").is_none());
}

#[tokio::test]
async fn node_get_with_base64_query_gets_the_terse_answer() {
    let mp = Mp::start().await;
    let record = set("node@example.net", json!({"$unsubscribed": true}));
    let url = format!(
        "/engage?ip=0&verbose=0&data={}",
        percent_encode(&b64(&record.to_string()))
    );
    let (status, text) = Mp::send(mp.http.get(mp.q.url(&url))).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "1"));
    assert!(mp.entry("node@example.net").is_some());
    // A failure is never the bare "1", so the client reports it.
    let bad = format!(
        "/engage?verbose=0&data={}",
        percent_encode(&b64(
            &json!({"$distinct_id": "x@example.net", "$set": {}}).to_string()
        ))
    );
    let (status, text) = Mp::send(mp.http.get(mp.q.url(&bad))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("\"status\":0"), "{text}");
}

fn percent_encode(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test]
async fn false_resubscribes_and_a_date_becomes_created_at() {
    let mp = Mp::start().await;
    let (status, _) = mp
        .engage(json!([
            set(
                "dated@example.net",
                json!({"$unsubscribed": "2024-05-01T10:00:00Z"})
            ),
            set(
                "py-dt@example.net",
                json!({"$unsubscribed": "2024-05-01T10:00:00"})
            ),
            set("unix@example.net", json!({"$unsubscribed": 1_714_521_600})),
            set("f@example.net", json!({"$unsubscribed": true})),
        ]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let at = |a: &str| mp.entry(a).map(|e| e.created_at);
    assert_eq!(at("dated@example.net"), Some(1_714_557_600));
    assert_eq!(at("py-dt@example.net"), Some(1_714_557_600));
    assert_eq!(at("unix@example.net"), Some(1_714_521_600));
    let (status, _) = mp
        .engage(set("f@example.net", json!({"$unsubscribed": false})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(mp.entry("f@example.net").is_none());
    assert!(mp
        .rcpt("app@example.com", "f@example.net")
        .await
        .starts_with("250"));
}

#[tokio::test]
async fn over_2000_records_is_refused_whole() {
    let mp = Mp::start().await;
    let records: Vec<Value> = (0..2001)
        .map(|i| set(&format!("u{i}@example.net"), json!({"$unsubscribed": true})))
        .collect();
    let (status, body) = mp.engage(Value::Array(records.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 0);
    assert!(
        body["error"].as_str().unwrap().contains("2001 records"),
        "{body}"
    );
    assert_eq!(mp.q.state.store.suppression_count(), 0);
    // 2000 is fine.
    let (status, _) = mp.engage(Value::Array(records[..2000].to_vec())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mp.q.state.store.suppression_count(), 2000);
}

#[tokio::test]
async fn one_bad_record_fails_the_request_and_nothing_is_applied() {
    let mp = Mp::start().await;
    for (bad, want) in [
        (
            set("u9", json!({"$unsubscribed": true})),
            "records[2]: unknown $distinct_id \"u9\"",
        ),
        (
            set("x@example.net", json!({"$email": "not-an-address"})),
            "records[2]: $email \"not-an-address\"",
        ),
        (
            set("x@example.net", json!({"$unsubscribed": null})),
            "records[2]: $unsubscribed is null",
        ),
        (
            json!({"$token": API_KEY, "$distinct_id": "x@example.net", "$add": {"$unsubscribed": 1}}),
            "records[2]: $add cannot change $unsubscribed",
        ),
    ] {
        let (status, body) = mp
            .engage(json!([
                set("good@example.net", json!({"$unsubscribed": true})),
                set("u1", json!({"$email": "mapped@example.net"})),
                bad,
            ]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["status"], 0);
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(want), "{error}");
        assert!(mp.entry("good@example.net").is_none());
        assert!(mp.q.state.store.profile_get("u1").unwrap().is_none());
    }
}

#[tokio::test]
async fn bad_or_missing_token_is_401_and_header_keys_work() {
    let mp = Mp::start().await;
    let mut wrong = set("t@example.net", json!({"$unsubscribed": true}));
    wrong["$token"] = json!("not-the-key");
    let mut missing = wrong.clone();
    missing.as_object_mut().unwrap().remove("$token");
    for (record, want) in [
        (wrong, "records[1]: $token is not a valid API key"),
        (missing.clone(), "records[1]: $token is missing"),
    ] {
        let (status, body) = mp
            .engage(json!([
                set("ok@example.net", json!({"$unsubscribed": true})),
                record
            ]))
            .await;
        assert_eq!(
            (status, body["status"].clone()),
            (StatusCode::UNAUTHORIZED, json!(0))
        );
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(want), "{error}");
    }
    assert_eq!(mp.q.state.store.suppression_count(), 0);
    // A key in the Authorization header admits records without $token.
    let basic_mixpanel_style = format!("Basic {}", b64(&format!("{API_KEY}:")));
    for auth in [format!("Bearer {API_KEY}"), basic_mixpanel_style] {
        let (status, body) = Mp::send_json(
            mp.http
                .post(mp.q.url("/engage"))
                .header("authorization", auth)
                .json(&missing),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, ok()));
    }
    assert!(mp.entry("t@example.net").is_some());
}

#[tokio::test]
async fn resubscribe_never_removes_a_bounce_or_a_manual_reject() {
    let mp = Mp::start().await;
    mp.put(
        "bounced@example.net",
        Suppression::new(Reason::HardBounce, 1),
    );
    mp.put("manual@example.net", Suppression::new(Reason::Custom, 1));
    // Suppressing over a manual reject leaves it manual.
    let (status, _) = mp
        .engage(json!([
            set("bounced@example.net", json!({"$unsubscribed": true})),
            set("manual@example.net", json!({"$unsubscribed": true})),
        ]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        mp.entry("manual@example.net").map(|e| e.reason),
        Some(Reason::Custom)
    );
    let (status, _) = mp
        .engage(json!([
            unset("bounced@example.net"),
            unset("manual@example.net")
        ]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(mp.entry("bounced@example.net").is_none(), "the unsub goes");
    assert_eq!(
        mp.entry("manual@example.net").map(|e| e.reason),
        Some(Reason::Custom)
    );
    for rcpt in ["bounced@example.net", "manual@example.net"] {
        let reply = mp.rcpt("app@example.com", rcpt).await;
        assert!(reply.starts_with("550 5.7.1"), "{rcpt}: {reply}");
    }
}

#[tokio::test]
async fn import_applies_good_rows_and_reports_bad_ones_by_row() {
    let mp = Mp::start().await;
    mp.q.state
        .store
        .profile_put("u-7", "profiled@example.net")
        .unwrap();
    let csv = "a@example.net,true\n\
               u-7,2024-05-01\n\
               unknown-id,true\n\
               b@example.net,\n\
               c@example.net,true,3\n\
               \"d@example.net\",1714521600\n";
    let (status, body) = mp.import(csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], 1);
    assert_eq!(body["error"], Value::Null);
    assert_eq!(
        (body["applied"].clone(), body["rejected"].clone()),
        (json!(3), json!(3))
    );
    let rows: Vec<u64> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [3, 4, 5]);
    assert!(body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("unknown distinct_id \"unknown-id\""));
    assert!(mp.entry("a@example.net").is_some());
    assert_eq!(
        mp.entry("profiled@example.net").map(|e| e.created_at),
        Some(1_714_521_600)
    );
    assert_eq!(
        mp.entry("d@example.net").map(|e| e.created_at),
        Some(1_714_521_600)
    );
    assert!(mp.entry("b@example.net").is_none() && mp.entry("c@example.net").is_none());
    assert!(mp
        .rcpt("x@any.example", "a@example.net")
        .await
        .starts_with("550 5.7.1"));
}

#[tokio::test]
async fn import_false_resubscribes_but_never_removes_a_bounce() {
    let mp = Mp::start().await;
    mp.put(
        "bounced@example.net",
        Suppression::new(Reason::HardBounce, 1),
    );
    let (status, body) = mp
        .import("back@example.net,true\nbounced@example.net,true\n")
        .await;
    assert_eq!(
        (status, body["applied"].clone()),
        (StatusCode::OK, json!(2))
    );
    assert!(mp.entry("back@example.net").is_some());
    // Multipart, the CSV in the first file part; a header row is tolerated.
    let form = Form::new().text("note", "not the file").part(
        "file",
        Part::bytes(
            b"distinct_id,unsubscribed\nback@example.net,False\nbounced@example.net,false\n"
                .to_vec(),
        )
        .file_name("list.csv"),
    );
    let (status, body) = Mp::send_json(
        mp.http
            .post(mp.q.url("/engage/import"))
            .bearer_auth(API_KEY)
            .multipart(form),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["applied"].clone(), body["rejected"].clone()),
        (json!(2), json!(0))
    );
    assert!(mp.entry("back@example.net").is_none());
    assert!(mp
        .rcpt("app@example.com", "back@example.net")
        .await
        .starts_with("250"));
    let reply = mp.rcpt("app@example.com", "bounced@example.net").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
}

#[tokio::test]
async fn import_refuses_bad_requests_as_a_whole() {
    let mp = Mp::start().await;
    let url = mp.q.url("/engage/import");
    let csv = "a@example.net,true\n";
    let (status, body) = Mp::send_json(mp.http.post(&url).body(csv)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 0);
    let (status, _) = Mp::send_json(
        mp.http
            .post(&url)
            .bearer_auth("wrong")
            .header("content-type", "text/csv")
            .body(csv),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = Mp::send_json(
        mp.http
            .post(&url)
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body(csv),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, body) = mp.import("").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("no rows"),
        "{body}"
    );
    let (status, body) = Mp::send_json(
        mp.http
            .post(&url)
            .bearer_auth(API_KEY)
            .multipart(Form::new().text("only", "text")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("no file part"),
        "{body}"
    );
    assert_eq!(mp.q.state.store.suppression_count(), 0);
}
