//! Health, readiness, metrics and message records over real HTTP.

use crate::support::{message, queue_id, Quell, API_KEY};

#[tokio::test]
async fn health_ready_and_metrics() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let r = http.get(q.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(q.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    q.send("app@example.com", &["a@example.net"], &message("", "x"))
        .await;
    q.upstream.wait_for(1).await;
    let text = http
        .get(q.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("quell_messages_accepted_total 1\n"), "{text}");
    assert!(text.contains("# TYPE quell_queue_depth gauge"), "{text}");
}

#[tokio::test]
async fn message_records_by_queue_id_and_md_id() {
    let q = Quell::start().await;
    let reply = q
        .send(
            "App@example.com",
            &["a@example.net", "b@example.net"],
            &message("X-MC-Tags: t1\r\n", "x"),
        )
        .await;
    let id = queue_id(&reply);
    q.upstream.wait_for(2).await;
    let http = reqwest::Client::new();
    let r = http
        .get(q.url(&format!("/api/messages/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "needs a key");
    let r = http
        .get(q.url(&format!("/api/messages/{id}.2")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["recipient"], "b@example.net");
    assert_eq!(v["sender"], "app@example.com");
    assert_eq!(v["tags"], serde_json::json!(["t1"]));
    assert!(
        ["queued", "sent"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    let r = http
        .get(q.url(&format!("/api/messages/{id}")))
        .basic_auth("api", Some(API_KEY))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["recipients"].as_array().unwrap().len(), 2);
    let r = http
        .get(q.url("/api/messages/NOPE.1"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(q.url(&format!("/api/messages/{id}")))
        .bearer_auth("wrong-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn non_utf8_path_segments_get_the_documented_error_shapes() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let r = http
        .get(q.url("/api/messages/%FF"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["message"].is_string(), "{v}");
    let r = http.get(q.url("/u/%FF")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("<html"));
}
