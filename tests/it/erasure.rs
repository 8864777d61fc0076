//! GDPR/CCPA erasure (SPEC §6.5) over real HTTP and SMTP: the task API, what is erased, the
//! tombstones that keep the person suppressed, the plain-text scan of the store's files, and
//! tasks surviving a restart.

use std::path::{Path, PathBuf};

use quell::store::{Compliance, DeletionTask, List, Reason, Scope, Status, Store, Suppression};
use quell::store::{SuppressionKey, TaskStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{queue_id, Quell, Script, API_KEY, WAIT};

const DELETIONS: &str = "/api/app/data-deletions/v3.0/";

/// A request with the API key as a bearer token.
fn authed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.bearer_auth(API_KEY)
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text:?}"));
    (status, value)
}

async fn create(q: &Quell, body: Value) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    json_of(
        authed(http.post(q.url(DELETIONS)))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Reads the task over HTTP each time a task changes, until it is final; its `results`.
async fn wait_final(q: &Quell, task_id: &str) -> Value {
    let http = reqwest::Client::new();
    let url = q.url(&format!("{DELETIONS}{task_id}"));
    // Subscribed before each read, so no change is missed in between.
    let mut changes = q.state.store.deletion_changes();
    tokio::time::timeout(WAIT, async {
        loop {
            let (status, body) = json_of(authed(http.get(&url)).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let results = body["results"].clone();
            if results["status"] == "SUCCESS" || results["status"] == "FAILURE" {
                return results;
            }
            match changes.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("deletion changes: {e}"),
            }
        }
    })
    .await
    .expect("the task finishes")
}

/// Whether any file under `dir` contains `needle`.
fn files_contain(dir: &Path, needle: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return Some(path);
            }
        }
    }
    None
}

/// The RCPT reply code for `rcpt` from `from`.
async fn rcpt_code(q: &Quell, from: &str, rcpt: &str) -> String {
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect(&format!("MAIL FROM:<{from}>"), "250").await;
    let reply = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    c.cmd("QUIT").await;
    reply[..3].to_string()
}

const PERSON: &str = "erase-me-5d1c@example.net";
const PERSON_ID: &str = "user-77-e1a9";
const ALLOWED: &str = "allow-me-93be@example.net";
const OTHER: &str = "other-4b2f@example.net";

#[tokio::test]
async fn erasure_keeps_the_person_suppressed_and_leaves_no_address_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.clone();
    let q = Quell::start_with(move |c| {
        c.storage.path = path;
        // The deferred copy must still be queued when the erasure runs: a retry would re-check
        // the recipient, find them suppressed by then, and take the copy off the queue.
        c.queue.retry_initial = std::time::Duration::from_secs(3600);
        c.queue.retry_max = std::time::Duration::from_secs(3600);
    })
    .await;
    let http = reqwest::Client::new();

    // Mail to the person: one delivered (records), one still queued (deferred).
    let reply = q
        .send(
            "app@example.com",
            &[PERSON, OTHER],
            "Subject: one\r\n\r\nhi\r\n",
        )
        .await;
    let first = queue_id(&reply);
    q.wait_status(&format!("{first}.1"), Status::Sent).await;
    q.wait_status(&format!("{first}.2"), Status::Sent).await;
    q.upstream.script_rcpt(PERSON, Script::Defer);
    let reply = q
        .send("app@example.com", &[PERSON], "Subject: two\r\n\r\nhi\r\n")
        .await;
    let second = queue_id(&reply);
    q.wait_status(&format!("{second}.1"), Status::Deferred)
        .await;

    // Entries in three scopes, through three APIs; a profile; an allowlisted second person.
    let resp = http
        .post(q.url("/v3/example.com/unsubscribes"))
        .basic_auth("api", Some(API_KEY))
        .form(&[("address", PERSON), ("tag", "news")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http
        .post(q.url("/api/1.0/rejects/add.json"))
        .json(&json!({"key": API_KEY, "email": PERSON, "comment": format!("complained: {PERSON}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http
        .post(q.url("/engage"))
        .json(&json!([{"$token": API_KEY, "$distinct_id": PERSON_ID,
            "$set": {"$email": PERSON, "$unsubscribed": true}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http
        .post(q.url("/api/1.0/allowlists/add.json"))
        .json(&json!({"key": API_KEY, "email": ALLOWED}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "550");

    // Erase: the person by profile id, the other by address.
    let (status, body) = create(
        &q,
        json!({"compliance_type": "GDPR", "distinct_ids": [PERSON_ID, ALLOWED]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    let task_id = body["results"]["task_id"].as_str().unwrap().to_string();
    let results = wait_final(&q, &task_id).await;
    assert_eq!(results["status"], "SUCCESS", "{results}");
    assert_eq!(results["compliance_type"], "GDPR");
    assert_eq!(results["distinct_ids_count"], 2);
    let erased = &results["erased"];
    assert_eq!(erased["suppressions"], 2, "{erased}"); // domain unsub + global reject/unsub
    assert_eq!(erased["profiles"], 1);
    assert_eq!(erased["allowlist"], 1);
    assert_eq!(erased["messages"], 2);
    assert_eq!(erased["queued"], 1);

    // Nothing of them is left in the store's files.
    for needle in [PERSON, "erase-me-5d1c", PERSON_ID, ALLOWED] {
        assert_eq!(files_contain(&data, needle), None, "{needle} found");
    }
    // The other recipient's record and the queue are as they should be.
    let store = &q.state.store;
    assert_eq!(
        store
            .message_get(&format!("{first}.2"))
            .unwrap()
            .unwrap()
            .recipient,
        OTHER
    );
    assert!(store.message_get(&format!("{first}.1")).unwrap().is_none());
    assert!(store.queue_get(&second).unwrap().is_none());

    // Still suppressed, for every sender and for tagged mail; re-subscribing cannot lift it.
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "550");
    assert_eq!(rcpt_code(&q, "x@elsewhere.org", PERSON).await, "550");
    let resp = http
        .post(q.url("/engage"))
        .json(&json!([{"$token": API_KEY, "$distinct_id": PERSON, "$unset": ["$unsubscribed"]}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http
        .delete(q.url(&format!("/v3/example.com/unsubscribes/{PERSON}")))
        .basic_auth("api", Some(API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(rcpt_code(&q, "x@elsewhere.org", PERSON).await, "550");

    // Listings show the tombstones, by hash.
    let (status, list) = json_of(
        authed(http.get(q.url("/api/suppressions")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    assert!(!text.contains("erase-me"), "{text}");
    let tombstones: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["address"].as_str().unwrap().starts_with('#'))
        .collect();
    assert_eq!(tombstones.len(), 2, "{text}");
    let (_, rejects) = json_of(
        http.post(q.url("/api/1.0/rejects/list.json"))
            .json(&json!({"key": API_KEY}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        rejects
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["email"].as_str().unwrap().starts_with('#')),
        "{rejects}"
    );

    // After a restart: the task is still there, the person still suppressed.
    q.stop().await;
    let path = data.clone();
    let q = Quell::start_with(move |c| c.storage.path = path).await;
    let results = wait_final(&q, &task_id).await;
    assert_eq!(results["status"], "SUCCESS");
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "550");
    assert_eq!(rcpt_code(&q, "app@example.com", OTHER).await, "250");
    q.stop().await;
}

#[tokio::test]
async fn a_pending_task_runs_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        store
            .suppression_put(
                &SuppressionKey::new(Scope::Global, PERSON, List::Bounces),
                &Suppression::new(Reason::HardBounce, 1),
            )
            .unwrap();
        store
            .deletion_put(&DeletionTask {
                id: "0000000000010000abcd".into(),
                compliance_type: Compliance::Ccpa,
                status: TaskStatus::Pending,
                distinct_ids: vec![PERSON.into()],
                requested: 1,
                erased: None,
                created_at: 1,
                updated_at: 1,
                error: None,
            })
            .unwrap();
        store.flush().await.unwrap();
    }
    let path = data.clone();
    let q = Quell::start_with(move |c| c.storage.path = path).await;
    let results = wait_final(&q, "0000000000010000abcd").await;
    assert_eq!(results["status"], "SUCCESS", "{results}");
    assert_eq!(results["compliance_type"], "CCPA");
    assert_eq!(results["erased"]["suppressions"], 1);
    assert_eq!(files_contain(&data, PERSON), None);
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "550");
    q.stop().await;
}

#[tokio::test]
async fn requests_are_authorised_and_validated_whole() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(q.url(DELETIONS))
        .json(&json!({"compliance_type": "GDPR", "distinct_ids": ["a@x.io"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");
    let resp = http
        .post(q.url(DELETIONS))
        .bearer_auth("wrong")
        .json(&json!({"compliance_type": "GDPR", "distinct_ids": ["a@x.io"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    for (body, message) in [
        (json!({"distinct_ids": ["a"]}), "compliance_type is missing"),
        (
            json!({"compliance_type": "HIPAA", "distinct_ids": ["a"]}),
            "compliance_type must be",
        ),
        (
            json!({"compliance_type": "GDPR", "distinct_ids": []}),
            "distinct_ids is empty",
        ),
        (
            json!({"compliance_type": "GDPR", "distinct_ids": (0..2001).map(|i| format!("u{i}")).collect::<Vec<_>>()}),
            "at most 2000",
        ),
        (
            json!({"compliance_type": "GDPR", "distinct_ids": ["a", {"b": 1}]}),
            "distinct_ids[1]",
        ),
    ] {
        let (status, answer) = create(&q, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["status"], "error");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{answer}"
        );
    }
    assert!(
        q.state.store.deletions_unfinished().unwrap().is_empty(),
        "no task recorded"
    );

    let (status, body) = json_of(
        authed(http.get(q.url(&format!("{DELETIONS}nope"))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], "error");
    q.stop().await;
}

#[tokio::test]
async fn an_operator_finds_and_removes_a_tombstone_by_its_name() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let resp = authed(http.post(q.url("/api/suppressions")))
        .json(&json!([{"scope": "global", "address": PERSON, "reason": "unsub"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, body) = create(
        &q,
        json!({"compliance_type": "GDPR", "distinct_ids": [PERSON]}),
    )
    .await;
    let task_id = body["results"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&q, &task_id).await["status"], "SUCCESS");
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "550");

    let name = q.state.store.tombstone_of(PERSON);
    let (status, list) = json_of(
        authed(http.get(q.url("/api/suppressions")))
            .query(&[("address", name.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (status, removed) = json_of(
        authed(http.delete(q.url("/api/suppressions")))
            .query(&[("scope", "global"), ("address", name.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["removed"], 1);
    assert_eq!(rcpt_code(&q, "app@example.com", PERSON).await, "250");
    // A tombstone name is not an address to add entries for.
    let resp = authed(http.post(q.url("/api/suppressions")))
        .json(&json!([{"scope": "global", "address": name, "reason": "unsub"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    q.stop().await;
}

#[tokio::test]
async fn an_oversized_deletion_request_is_refused_in_json() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let body = format!(
        "{{\"compliance_type\":\"GDPR\",\"distinct_ids\":[\"{}\"]}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let (status, json) = json_of(
        authed(http.post(q.url(DELETIONS)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["status"], "error", "{json}");
}
