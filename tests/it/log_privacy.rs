//! No addresses in the log (issue 11 §3): `quell forget` cannot reach log files, so the log
//! names md_ids, scope kinds and counts only. The real binary at its default level relays,
//! delivers, refuses, bounces, takes every kind of API write and a click; then its whole log is
//! searched for every address used.

use reqwest::StatusCode;
use serde_json::json;

use crate::durability::{http, mailgun, mandrill, ok, unsubscribe_path};
use crate::support::process::{spawn, write_config};
use crate::support::{message, FakeUpstream, Script, SmtpClient, API_KEY};

const SENDER: &str = "leak-sender@apps.example";
const READER: &str = "leak-reader@example.net";
const BOUNCER: &str = "leak-bouncer@example.net";
const REFUSED: &str = "leak-refused@example.net";
const MAILGUN: &str = "leak-mailgun@example.net";
const ALLOWED: &str = "leak-allowed@example.net";
const MIXPANEL: &str = "leak-mixpanel@example.net";
const IMPORTED: &str = "leak-imported@example.net";
const ADMIN: &str = "leak-admin@example.net";

#[tokio::test]
async fn the_log_names_no_address_of_a_delivery_a_refusal_a_bounce_an_api_write_or_a_click() {
    let upstream = FakeUpstream::start().await;
    upstream.script_rcpt(BOUNCER, Script::Bounce);
    let dir = tempfile::tempdir().unwrap();
    let q = spawn(&write_config(dir.path(), upstream.addr.port(), "")).await;

    // A delivery with an unsubscribe link, and a hard bounce.
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect(&format!("MAIL FROM:<{SENDER}>"), "250").await;
    c.expect(&format!("RCPT TO:<{READER}>"), "250").await;
    c.expect(&format!("RCPT TO:<{BOUNCER}>"), "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "Bye: *|UNSUB|*")).await;
    assert!(reply.starts_with("250"), "{reply}");
    let copy = upstream.wait_for(1).await;
    // The click.
    let r = http()
        .post(q.url(&unsubscribe_path(&copy[0].text())))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Every API's writes.
    let r = mandrill(&q, "rejects/add", json!({"key": API_KEY, "email": REFUSED}));
    ok(r.send().await.unwrap(), "rejects/add").await;
    let r = mandrill(
        &q,
        "allowlists/add",
        json!({"key": API_KEY, "email": ALLOWED}),
    );
    ok(r.send().await.unwrap(), "allowlists/add").await;
    let r = mandrill(
        &q,
        "allowlists/delete",
        json!({"key": API_KEY, "email": ALLOWED}),
    );
    ok(r.send().await.unwrap(), "allowlists/delete").await;
    let r = mailgun(&q, "unsubscribes")
        .await
        .form(&[("address", MAILGUN), ("tag", "news")]);
    ok(r.send().await.unwrap(), "mailgun add").await;
    let r = http()
        .delete(q.url(&format!("/v3/example.com/unsubscribes/{MAILGUN}")))
        .basic_auth("api", Some(API_KEY));
    ok(r.send().await.unwrap(), "mailgun delete").await;
    let r = http()
        .post(q.url("/engage"))
        .json(&json!([{"$token": API_KEY,
        "$distinct_id": MIXPANEL, "$set": {"$unsubscribed": true}}]));
    ok(r.send().await.unwrap(), "engage").await;
    let r = http()
        .post(q.url("/engage/import"))
        .bearer_auth(API_KEY)
        .header("content-type", "text/csv")
        .body(format!("{IMPORTED},true\nnot-an-address,true\n"));
    ok(r.send().await.unwrap(), "engage/import").await;
    let r = http()
        .post(q.url("/api/suppressions"))
        .bearer_auth(API_KEY)
        .json(
            &json!([{"scope": format!("sender:{SENDER}"), "address": ADMIN, "reason": "custom"}]),
        );
    ok(r.send().await.unwrap(), "admin add").await;

    // Refusals at RCPT: global and sender-scoped.
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect(&format!("MAIL FROM:<{SENDER}>"), "250").await;
    c.expect(&format!("RCPT TO:<{REFUSED}>"), "550").await;
    c.expect(&format!("RCPT TO:<{ADMIN}>"), "550").await;
    c.expect(&format!("RCPT TO:<{READER}>"), "550").await;
    c.expect("QUIT", "221").await;

    let r = http()
        .delete(q.url("/api/suppressions"))
        .query(&[
            ("scope", format!("sender:{SENDER}")),
            ("address", ADMIN.into()),
        ])
        .bearer_auth(API_KEY);
    ok(r.send().await.unwrap(), "admin delete").await;
    // The bounce's suppression is in place (logged when added).
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while q.logged("suppression added") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hard bounce recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let log = q.log.lock().unwrap().join("\n");
    assert!(log.contains("md_id"), "the log says something: {log}");
    for address in [
        SENDER, READER, BOUNCER, REFUSED, MAILGUN, ALLOWED, MIXPANEL, IMPORTED, ADMIN,
    ] {
        let local = address.split('@').next().unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(local)).collect();
        assert!(
            lines.is_empty(),
            "{address} in the log:\n{}",
            lines.join("\n")
        );
    }
    q.kill_9().await;
}
