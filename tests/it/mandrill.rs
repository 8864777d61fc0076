//! The Mandrill-compatible rejects and allowlists API (SPEC §6.2) over real HTTP: both API
//! versions, with and without `.json`, the `whitelists/` alias, `null` fields, Mandrill's error
//! shape, and what the entries do to mail at RCPT.

use quell::store::{List, Reason, Scope, Suppression, SuppressionKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{message, queue_id, Quell, Script, API_KEY};

/// Every prefix a client may use: Mandrill's documented base and the current client's.
const VERSIONS: [&str; 2] = ["/api/1.0", "/api/1.3"];

/// A Mandrill API client for one running quell.
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

    /// Posts `body` to `path` as it is; every answer, errors included, must be JSON.
    async fn raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.q.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, value)
    }

    /// Calls `/api/1.0/{call}.json` with `fields` and the API key.
    async fn call(&self, call: &str, fields: Value) -> (StatusCode, Value) {
        self.call_at(&format!("/api/1.0/{call}.json"), fields).await
    }

    /// Calls `path` with `fields` and the API key added as Mandrill clients do.
    async fn call_at(&self, path: &str, mut fields: Value) -> (StatusCode, Value) {
        fields["key"] = json!(API_KEY);
        self.raw(path, fields.to_string()).await
    }

    /// Calls `call` and asserts a 200.
    async fn ok(&self, call: &str, fields: Value) -> Value {
        let (status, body) = self.call(call, fields).await;
        assert_eq!(status, StatusCode::OK, "{call}: {body}");
        body
    }

    /// The addresses `rejects/list` shows.
    async fn rejected(&self) -> Vec<String> {
        emails(&self.ok("rejects/list", json!({})).await)
    }

    /// The reply to `RCPT TO:<rcpt>` in a transaction from `sender`.
    async fn rcpt(&self, sender: &str, rcpt: &str) -> String {
        let mut c = self.q.client().await;
        c.expect("EHLO app.test", "250").await;
        c.expect(&format!("MAIL FROM:<{sender}>"), "250").await;
        c.cmd(&format!("RCPT TO:<{rcpt}>")).await
    }
}

fn emails(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|i| i["email"].as_str().expect("email").to_string())
        .collect()
}

/// Asserts Mandrill's error shape with `status` and `name`.
fn assert_error(got: &(StatusCode, Value), status: StatusCode, name: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["name"], name, "{body}");
    assert!(body["code"].is_i64(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Whether `v` is Mandrill's `YYYY-MM-DD HH:MM:SS`.
fn is_mandrill_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

#[tokio::test]
async fn add_list_delete_a_reject() {
    let api = Api::start().await;
    let body = api
        .ok(
            "rejects/add",
            json!({"email": "Bob@Example.com", "comment": "asked by phone"}),
        )
        .await;
    assert_eq!(body, json!({"email": "Bob@Example.com", "added": true}));

    // Stored as a manual global entry for all mail that never expires.
    let key = SuppressionKey::new(Scope::Global, "bob@example.com", List::Unsubscribes);
    let entry = api.q.state.store.suppression_get(&key).unwrap().unwrap();
    assert_eq!(
        (entry.reason, entry.expires_at, entry.tags.clone()),
        (Reason::Custom, None, vec!["*".to_string()])
    );
    assert_eq!(entry.detail, "asked by phone");

    let list = api.ok("rejects/list", json!({})).await;
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    let mut fields: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "detail",
            "email",
            "expired",
            "expires_at",
            "last_event_at",
            "reason",
            "sender",
            "subaccount"
        ]
    );
    assert_eq!(item["email"], "bob@example.com");
    assert_eq!(item["reason"], "custom");
    assert_eq!(item["detail"], "asked by phone");
    assert!(is_mandrill_time(&item["created_at"]), "{item}");
    assert_eq!(item["last_event_at"], item["created_at"]);
    assert_eq!(item["expires_at"], Value::Null);
    assert_eq!(item["expired"], false);
    assert_eq!(item["sender"], Value::Null);
    assert_eq!(item["subaccount"], Value::Null);

    let body = api
        .ok("rejects/delete", json!({"email": "BOB@example.com"}))
        .await;
    assert_eq!(
        body,
        json!({"email": "BOB@example.com", "deleted": true, "subaccount": null})
    );
    assert!(api.rejected().await.is_empty());
    // Deleting it again is Mandrill's Invalid_Reject.
    let again = api
        .call("rejects/delete", json!({"email": "bob@example.com"}))
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "Invalid_Reject");
}

#[tokio::test]
async fn every_version_and_suffix_is_served() {
    let api = Api::start().await;
    let mut n = 0;
    for version in VERSIONS {
        for suffix in ["", ".json"] {
            n += 1;
            let email = format!("v{n}@example.com");
            let (status, body) = api
                .call_at(
                    &format!("{version}/rejects/add{suffix}"),
                    json!({"email": email}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{version} {suffix}: {body}");
            assert_eq!(body["added"], true);
            let (status, body) = api
                .call_at(
                    &format!("{version}/rejects/list{suffix}"),
                    json!({"email": email}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(emails(&body), [email.as_str()]);
            let (status, body) = api
                .call_at(
                    &format!("{version}/rejects/delete{suffix}"),
                    json!({"email": email}),
                )
                .await;
            assert_eq!((status, &body["deleted"]), (StatusCode::OK, &json!(true)));
            for alias in ["allowlists", "whitelists"] {
                let path = |call: &str| format!("{version}/{alias}/{call}{suffix}");
                let (status, body) = api.call_at(&path("add"), json!({"email": email})).await;
                assert_eq!(status, StatusCode::OK, "{alias}: {body}");
                assert_eq!(body, json!({"email": email, "added": true}));
                let (_, body) = api.call_at(&path("list"), json!({"email": email})).await;
                assert_eq!(emails(&body), [email.as_str()], "{alias}");
                let (_, body) = api.call_at(&path("delete"), json!({"email": email})).await;
                assert_eq!(body, json!({"email": email, "deleted": true}), "{alias}");
            }
        }
    }
}

#[tokio::test]
async fn list_shows_every_global_reason_hides_expired_and_caps_at_1000() {
    let api = Api::start().await;
    let store = &api.q.state.store;
    let now = chrono::Utc::now().timestamp();
    let put = |address: &str, scope: Scope, reason: Reason, expires_at: Option<i64>| {
        let mut e = Suppression::new(reason, now - 60);
        e.expires_at = expires_at;
        e.detail = format!("{} detail", reason.as_str());
        store
            .suppression_put(&SuppressionKey::new(scope, address, reason.list()), &e)
            .unwrap();
    };
    put(
        "a@x.io",
        Scope::Global,
        Reason::HardBounce,
        Some(now + 86_400),
    );
    put("b@x.io", Scope::Global, Reason::SoftBounce, Some(now - 1));
    put("c@x.io", Scope::Global, Reason::Spam, Some(now + 86_400));
    put("d@x.io", Scope::Global, Reason::Unsub, Some(now + 86_400));
    put(
        "e@x.io",
        Scope::Domain("mg.example.com".into()),
        Reason::Unsub,
        None,
    );
    put(
        "f@x.io",
        Scope::Sender("app@example.com".into()),
        Reason::Unsub,
        None,
    );
    api.ok("rejects/add", json!({"email": "g@x.io"})).await;

    assert_eq!(
        api.rejected().await,
        ["a@x.io", "c@x.io", "d@x.io", "g@x.io"]
    );
    let all = api
        .ok(
            "rejects/list",
            json!({"include_expired": true, "subaccount": "cust-1"}),
        )
        .await;
    assert_eq!(
        emails(&all),
        ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "g@x.io"]
    );
    let reasons: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["hard-bounce", "soft-bounce", "spam", "unsub", "custom"]
    );
    let soft = &all[1];
    assert_eq!(soft["expired"], true);
    assert_eq!(soft["detail"], "soft-bounce detail");
    assert!(is_mandrill_time(&soft["expires_at"]), "{soft}");
    assert_eq!(all[0]["expired"], false);
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["subaccount"] == "cust-1" && i["sender"].is_null()));

    // Filtered by address, which is compared case-insensitively.
    let one = api.ok("rejects/list", json!({"email": "A@X.io"})).await;
    assert_eq!(emails(&one), ["a@x.io"]);
    let expired = api.ok("rejects/list", json!({"email": "b@x.io"})).await;
    assert_eq!(expired, json!([]));
    let expired = api
        .ok(
            "rejects/list",
            json!({"email": "b@x.io", "include_expired": true}),
        )
        .await;
    assert_eq!(emails(&expired), ["b@x.io"]);

    // At most 1000.
    let many: Vec<_> = (0..1010)
        .map(|i| {
            (
                SuppressionKey::new(Scope::Global, format!("m{i:04}@y.io"), List::Bounces),
                Suppression::new(Reason::HardBounce, now),
            )
        })
        .collect();
    store.suppression_put_many(&many).unwrap();
    assert_eq!(api.rejected().await.len(), 1000);
}

#[tokio::test]
async fn delete_removes_the_address_from_every_list() {
    let api = Api::start().await;
    let store = &api.q.state.store;
    for reason in [Reason::HardBounce, Reason::Spam] {
        store
            .suppression_put(
                &SuppressionKey::new(Scope::Global, "x@y.io", reason.list()),
                &Suppression::new(reason, 1),
            )
            .unwrap();
    }
    api.ok("rejects/add", json!({"email": "x@y.io"})).await;
    assert_eq!(api.rejected().await.len(), 3);
    let body = api
        .ok(
            "rejects/delete",
            json!({"email": "X@Y.io", "subaccount": "cust-1"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"email": "X@Y.io", "deleted": true, "subaccount": "cust-1"})
    );
    assert!(store
        .suppressions_of(&Scope::Global, "x@y.io")
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn null_fields_count_as_absent() {
    let api = Api::start().await;
    let body = api
        .ok(
            "rejects/add",
            json!({"email": "n@x.io", "comment": null, "subaccount": null}),
        )
        .await;
    assert_eq!(body["added"], true);
    let list = api
        .ok(
            "rejects/list",
            json!({"email": null, "include_expired": null, "subaccount": null}),
        )
        .await;
    assert_eq!(emails(&list), ["n@x.io"]);
    assert_eq!(list[0]["detail"], "");
    let body = api
        .ok(
            "rejects/delete",
            json!({"email": "n@x.io", "subaccount": null}),
        )
        .await;
    assert_eq!(body["subaccount"], Value::Null);
    api.ok(
        "allowlists/add",
        json!({"email": "n@x.io", "comment": null}),
    )
    .await;
    let list = api.ok("allowlists/list", json!({"email": null})).await;
    assert_eq!(
        list,
        json!([{"email": "n@x.io", "detail": "", "created_at": list[0]["created_at"]}])
    );
    // A required field sent as null is missing.
    let got = api.call("rejects/add", json!({"email": null})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "ValidationError");
    // A key sent as null falls back to the Authorization header, here absent.
    let got = api
        .raw(
            "/api/1.0/rejects/list.json",
            json!({"key": null}).to_string(),
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "Invalid_Key");
}

#[tokio::test]
async fn a_bad_or_missing_key_is_invalid_key_on_every_call() {
    let api = Api::start().await;
    for version in VERSIONS {
        for call in [
            "rejects/add",
            "rejects/list",
            "rejects/delete",
            "allowlists/add",
            "allowlists/list",
            "allowlists/delete",
            "whitelists/add",
            "whitelists/list",
            "whitelists/delete",
        ] {
            let path = format!("{version}/{call}.json");
            for body in [
                json!({"key": "wrong-key-0123456789", "email": "a@x.io"}),
                json!({"email": "a@x.io"}),
                json!({"key": 42, "email": "a@x.io"}),
            ] {
                let got = api.raw(&path, body.to_string()).await;
                assert_error(&got, StatusCode::UNAUTHORIZED, "Invalid_Key");
                assert_eq!(got.1["code"], -1);
                assert_eq!(got.1["message"], "Invalid API key");
            }
        }
    }
    // Nothing was applied.
    assert!(api.rejected().await.is_empty());
    assert!(!api.q.state.store.is_allowlisted("a@x.io").unwrap());
}

#[tokio::test]
async fn the_key_may_come_in_the_authorization_header() {
    let api = Api::start().await;
    let resp = api
        .http
        .post(api.q.url("/api/1.3/rejects/add"))
        .bearer_auth(API_KEY)
        .json(&json!({"email": "h@x.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = api
        .http
        .post(api.q.url("/api/1.0/rejects/list.json"))
        .basic_auth("api", Some(API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.unwrap();
    assert_eq!(emails(&list), ["h@x.io"]);
}

#[tokio::test]
async fn without_configured_keys_every_call_is_invalid_key() {
    let api = Api::with(Quell::start_with(|c| c.http.api_keys.clear()).await);
    let got = api.call("rejects/list", json!({})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "Invalid_Key");
    let got = api.call("rejects/list", json!({"key": ""})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "Invalid_Key");
}

#[tokio::test]
async fn bad_input_is_a_validation_error_and_changes_nothing() {
    let api = Api::start().await;
    for (call, fields) in [
        ("rejects/add", json!({})),
        ("rejects/add", json!({"email": "not-an-address"})),
        ("rejects/add", json!({"email": "a@x.io", "comment": 5})),
        (
            "rejects/add",
            json!({"email": "a@x.io", "subaccount": "s".repeat(256)}),
        ),
        (
            "rejects/add",
            json!({"email": "a@x.io", "comment": "c".repeat(5000)}),
        ),
        ("rejects/list", json!({"email": "nope"})),
        ("rejects/list", json!({"include_expired": "perhaps"})),
        ("rejects/delete", json!({"email": ["a@x.io"]})),
        ("allowlists/add", json!({"email": "a b@x.io"})),
        ("allowlists/list", json!({"email": 7})),
        ("allowlists/delete", json!({})),
    ] {
        let got = api.call(call, fields.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "ValidationError");
        assert_eq!(got.1["code"], -2, "{call} {fields}");
    }
    for body in ["not json", "[{\"email\":\"a@x.io\"}]", "{\"key\":"] {
        let got = api.raw("/api/1.0/rejects/add.json", body).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "ValidationError");
    }
    let huge = format!(
        r#"{{"key":"{API_KEY}","email":"a@x.io","comment":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let got = api.raw("/api/1.0/rejects/add.json", huge).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "ValidationError");
    // Other output formats and other methods are refused in the same shape.
    let got = api.call_at("/api/1.0/rejects/list.xml", json!({})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "ValidationError");
    let resp = api
        .http
        .get(api.q.url("/api/1.3/rejects/list.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "ValidationError");

    assert!(api.rejected().await.is_empty());
    assert!(api.ok("allowlists/list", json!({})).await == json!([]));
}

#[tokio::test]
async fn allowlist_add_list_delete() {
    let api = Api::start().await;
    for (email, comment) in [("Boss@Example.com", "the CEO"), ("bot@other.io", "")] {
        let body = api
            .ok(
                "allowlists/add",
                json!({"email": email, "comment": comment}),
            )
            .await;
        assert_eq!(body, json!({"email": email, "added": true}));
    }
    let list = api.ok("allowlists/list", json!({})).await;
    assert_eq!(emails(&list), ["boss@example.com", "bot@other.io"]);
    assert_eq!(list[0]["detail"], "the CEO");
    assert!(is_mandrill_time(&list[0]["created_at"]), "{list}");
    assert_eq!(list[0].as_object().unwrap().len(), 3);
    // `email` is an address or a prefix.
    let list = api.ok("allowlists/list", json!({"email": "BO"})).await;
    assert_eq!(emails(&list), ["boss@example.com", "bot@other.io"]);
    let list = api.ok("allowlists/list", json!({"email": "bos"})).await;
    assert_eq!(emails(&list), ["boss@example.com"]);
    let list = api
        .ok("whitelists/list", json!({"email": "bot@other.io"}))
        .await;
    assert_eq!(emails(&list), ["bot@other.io"]);
    // Adding again keeps the entry and takes the new comment.
    api.ok(
        "allowlists/add",
        json!({"email": "bot@other.io", "comment": "monitoring"}),
    )
    .await;
    let list = api.ok("allowlists/list", json!({"email": "bot"})).await;
    assert_eq!(list[0]["detail"], "monitoring");

    let body = api
        .ok("allowlists/delete", json!({"email": "boss@example.com"}))
        .await;
    assert_eq!(body, json!({"email": "boss@example.com", "deleted": true}));
    let body = api
        .ok("whitelists/delete", json!({"email": "boss@example.com"}))
        .await;
    assert_eq!(body, json!({"email": "boss@example.com", "deleted": false}));
    assert_eq!(
        emails(&api.ok("allowlists/list", json!({})).await),
        ["bot@other.io"]
    );
}

#[tokio::test]
async fn a_reject_refuses_mail_from_every_sender_at_rcpt() {
    let api = Api::start().await;
    assert!(api
        .rcpt("app@example.com", "gone@example.net")
        .await
        .starts_with("250"));
    api.ok("rejects/add", json!({"email": "Gone@Example.net"}))
        .await;
    for sender in ["app@example.com", "news@other.org", ""] {
        let reply = api.rcpt(sender, "gone@example.net").await;
        assert!(reply.starts_with("550 5.7.1"), "<{sender}>: {reply}");
    }
    // Other recipients are unaffected; deleting the reject lets mail through again.
    assert!(api
        .rcpt("app@example.com", "stays@example.net")
        .await
        .starts_with("250"));
    api.ok("rejects/delete", json!({"email": "gone@example.net"}))
        .await;
    assert!(api
        .rcpt("app@example.com", "gone@example.net")
        .await
        .starts_with("250"));
}

#[tokio::test]
async fn allowlisting_removes_the_reject_and_keeps_new_ones_from_applying() {
    let api = Api::start().await;
    let store = &api.q.state.store;
    api.ok("rejects/add", json!({"email": "vip@example.net"}))
        .await;
    store
        .suppression_put(
            &SuppressionKey::new(Scope::Global, "vip@example.net", List::Complaints),
            &Suppression::new(Reason::Spam, 1),
        )
        .unwrap();
    assert!(api
        .rcpt("app@example.com", "vip@example.net")
        .await
        .starts_with("550 5.7.1"));

    api.ok("allowlists/add", json!({"email": "VIP@example.net"}))
        .await;
    assert!(store
        .suppressions_of(&Scope::Global, "vip@example.net")
        .unwrap()
        .is_empty());
    assert!(api.rejected().await.is_empty());
    assert!(api
        .rcpt("app@example.com", "vip@example.net")
        .await
        .starts_with("250"));

    // Denylisting an allowlisted address has no effect (Mandrill's rule).
    let body = api
        .ok("rejects/add", json!({"email": "vip@example.net"}))
        .await;
    assert_eq!(body, json!({"email": "vip@example.net", "added": false}));
    assert!(api.rejected().await.is_empty());
    assert!(api
        .rcpt("app@example.com", "vip@example.net")
        .await
        .starts_with("250"));

    // Once off the allowlist, the address can be denylisted again.
    api.ok("allowlists/delete", json!({"email": "vip@example.net"}))
        .await;
    let body = api
        .ok("rejects/add", json!({"email": "vip@example.net"}))
        .await;
    assert_eq!(body["added"], true);
    assert!(api
        .rcpt("app@example.com", "vip@example.net")
        .await
        .starts_with("550 5.7.1"));
}

#[tokio::test]
async fn a_hard_bounce_does_not_suppress_an_allowlisted_address() {
    let api = Api::start().await;
    api.ok("allowlists/add", json!({"email": "flaky@example.net"}))
        .await;
    api.q
        .upstream
        .script_rcpt("flaky@example.net", Script::Bounce);
    let reply = api
        .q
        .send("app@example.com", &["flaky@example.net"], &message("", "x"))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let md = format!("{}.1", queue_id(&reply));
    api.q.wait_status(&md, quell::store::Status::Bounced).await;
    // The bounce is not on the denylist and mail still goes through.
    assert!(api.rejected().await.is_empty());
    let list = api
        .ok(
            "rejects/list",
            json!({"email": "flaky@example.net", "include_expired": true}),
        )
        .await;
    assert_eq!(list, json!([]));
    assert!(api
        .rcpt("app@example.com", "flaky@example.net")
        .await
        .starts_with("250"));
}
