//! Delivery attempts: every attempt, first or retry, checks each recipient against the
//! suppression list as it is then (SPEC §2).

use std::sync::atomic::Ordering;

use quell::store::Status;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{message, queue_id, Quell, Script, API_KEY};

#[tokio::test]
async fn recipients_suppressed_while_their_copies_wait_are_not_sent_at_the_retry() {
    let q = Quell::start().await;
    q.upstream.script(Script::Defer);
    let rcpts = [
        "gone@example.net",
        "tagged@example.net",
        "sender@example.net",
        "stays@example.net",
    ];
    let reply = q
        .send(
            "App@Example.com",
            &rcpts,
            &message("X-MC-Tags: promo, newsletter\r\n", "x"),
        )
        .await;
    let id = queue_id(&reply);
    let md = |n: usize| format!("{id}.{n}");
    // The first attempt deferred every copy.
    q.wait_status(&md(4), Status::Deferred).await;

    // Meanwhile: an unsubscribe for all mail, one for a tag of this message, one from this
    // sender only, and one for a tag this message does not carry.
    let answer = reqwest::Client::new()
        .post(q.url("/api/suppressions"))
        .bearer_auth(API_KEY)
        .json(&json!([
            {"scope": "global", "address": "Gone@example.net", "reason": "unsub"},
            {"scope": "global", "address": "tagged@example.net", "reason": "unsub",
             "tags": ["newsletter"]},
            {"scope": "sender:app@example.com", "address": "sender@example.net", "reason": "unsub"},
            {"scope": "global", "address": "stays@example.net", "reason": "unsub",
             "tags": ["other"]},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // An attempt may have checked a recipient just before the entries were added: let one
    // that started after them go by before the upstream accepts.
    let tried = q.upstream.attempts("stays@example.net");
    q.upstream
        .wait_attempts("stays@example.net", tried + 2)
        .await;
    q.upstream.script(Script::Accept);

    q.wait_status(&md(4), Status::Sent).await;
    let to: Vec<Vec<String>> = q.upstream.received().into_iter().map(|r| r.to).collect();
    assert_eq!(
        to,
        [["stays@example.net"]],
        "copies sent to suppressed recipients"
    );
    for (n, scope) in [(1, "global"), (2, "global"), (3, "sender:app@example.com")] {
        q.wait_status(&md(n), Status::Rejected).await;
        let record = q.state.store.message_get(&md(n)).unwrap().unwrap();
        let why = record.last_reply.unwrap_or_default();
        assert!(why.contains(scope) && why.contains("unsub"), "{why}");
    }
    assert_eq!(q.state.store.queue_len(), 0);
    let metrics = &q.state.metrics;
    assert_eq!(metrics.recipients_dropped.load(Ordering::Relaxed), 3);
    assert_eq!(metrics.suppression_hits.load(Ordering::Relaxed), 3);
}
