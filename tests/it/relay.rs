//! End to end through real sockets: quell relays to a fake upstream and enforces the list.

use quell::config::OnSuppressed;
use quell::store::{Reason, Scope, Status, Suppression, SuppressionKey};

use crate::support::{message, queue_id, Quell, Script, SmtpClient};

fn suppress(q: &Quell, scope: Scope, rcpt: &str, entry: Suppression) {
    let key = SuppressionKey::new(scope, rcpt, entry.reason.list());
    q.state.store.suppression_put(&key, &entry).unwrap();
}

#[tokio::test]
async fn relays_a_message_upstream_with_envelope_and_trace_header() {
    let q = Quell::start().await;
    let reply = q
        .send(
            "App@Example.com",
            &["user@example.net"],
            &message("", "hello\r\n.leading dot"),
        )
        .await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].from, "app@example.com");
    assert_eq!(got[0].to, ["user@example.net"]);
    let text = got[0].text();
    assert!(
        text.starts_with("Received: from app.test ([127.0.0.1])"),
        "{text}"
    );
    assert!(
        text.contains("Subject: test\r\n\r\nhello\r\n.leading dot\r\n"),
        "{text}"
    );
    assert!(
        !text.ends_with("\r\n\r\n"),
        "no blank line appended: {text:?}"
    );
    let id = queue_id(&reply);
    q.wait_status(&format!("{id}.1"), Status::Sent).await;
}

#[tokio::test]
async fn suppressed_recipient_is_refused_at_rcpt_and_others_pass() {
    let q = Quell::start().await;
    suppress(
        &q,
        Scope::Global,
        "gone@example.net",
        Suppression::new(Reason::Unsub, 0),
    );
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    let r = c.cmd("RCPT TO:<Gone@Example.net>").await;
    assert!(
        r.starts_with("550 5.7.1 <gone@example.net>: recipient suppressed"),
        "{r}"
    );
    c.expect("RCPT TO:<ok@example.net>", "250").await;
    c.expect("DATA", "354").await;
    assert!(c.data(&message("", "hi")).await.starts_with("250"));
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].to, ["ok@example.net"]);
    assert_eq!(q.upstream.attempts("gone@example.net"), 0);
}

#[tokio::test]
async fn sender_and_domain_scopes_apply_only_to_their_senders() {
    let q = Quell::start().await;
    suppress(
        &q,
        Scope::Sender("news@a.example".into()),
        "r@x.example",
        Suppression::new(Reason::Unsub, 0),
    );
    suppress(
        &q,
        Scope::Domain("b.example".into()),
        "r@x.example",
        Suppression::new(Reason::Unsub, 0),
    );
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    for (sender, code) in [
        ("news@a.example", "550"),
        ("other@a.example", "250"),
        ("any@b.example", "550"),
        ("x@c.example", "250"),
    ] {
        c.expect(&format!("MAIL FROM:<{sender}>"), "250").await;
        c.expect("RCPT TO:<r@x.example>", code).await;
        c.expect("RSET", "250").await;
    }
}

#[tokio::test]
async fn drop_mode_accepts_but_never_forwards_and_records_rejected() {
    let q = Quell::start_with(|c| c.suppression.on_suppressed = OnSuppressed::Drop).await;
    suppress(
        &q,
        Scope::Global,
        "gone@example.net",
        Suppression::new(Reason::HardBounce, 0),
    );
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<gone@example.net>", "250").await;
    c.expect("RCPT TO:<ok@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "hi")).await;
    let id = queue_id(&reply);
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].to, ["ok@example.net"]);
    let dropped = q
        .state
        .store
        .message_get(&format!("{id}.1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (dropped.recipient.as_str(), dropped.status),
        ("gone@example.net", Status::Rejected)
    );
    q.wait_status(&format!("{id}.2"), Status::Sent).await;
    assert_eq!(q.upstream.attempts("gone@example.net"), 0);
}

#[tokio::test]
async fn tag_scoped_entries_apply_after_data_and_tag_headers_are_removed() {
    let q = Quell::start().await;
    let mut entry = Suppression::new(Reason::Unsub, 0);
    entry.tags = vec!["newsletter".into()];
    suppress(&q, Scope::Global, "t@example.net", entry);
    // Tagged with the suppressed tag: accepted at RCPT, dropped after DATA.
    let reply = q
        .send(
            "app@example.com",
            &["t@example.net", "u@example.net"],
            &message("X-MC-Tags: promo, Newsletter\r\n", "a"),
        )
        .await;
    let id = queue_id(&reply);
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].to, ["u@example.net"]);
    assert!(!got[0].text().contains("X-MC-Tags"), "tag header forwarded");
    let rec = q
        .state
        .store
        .message_get(&format!("{id}.1"))
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, Status::Rejected);
    assert_eq!(rec.tags, ["promo", "Newsletter"]);
    // Another tag: delivered, and X-Mailgun-Tag is removed too.
    q.send(
        "app@example.com",
        &["t@example.net"],
        &message("X-Mailgun-Tag: receipts\r\n", "b"),
    )
    .await;
    let got = q.upstream.wait_for(2).await;
    assert_eq!(got[1].to, ["t@example.net"]);
    assert!(!got[1].text().contains("X-Mailgun-Tag"));
}

#[tokio::test]
async fn transactional_senders_ignore_unsubscribes_but_not_bounces() {
    let q = Quell::start_with(|c| {
        c.suppression.transactional_senders = vec!["receipts@example.com".into()]
    })
    .await;
    suppress(
        &q,
        Scope::Global,
        "u@example.net",
        Suppression::new(Reason::Unsub, 0),
    );
    suppress(
        &q,
        Scope::Global,
        "b@example.net",
        Suppression::new(Reason::HardBounce, 0),
    );
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<receipts@example.com>", "250").await;
    c.expect("RCPT TO:<u@example.net>", "250").await;
    c.expect("RCPT TO:<b@example.net>", "550 5.7.1").await;
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<news@example.com>", "250").await;
    c.expect("RCPT TO:<u@example.net>", "550 5.7.1").await;
}

#[tokio::test]
async fn deferred_by_upstream_is_retried_until_delivered() {
    let q = Quell::start().await;
    q.upstream.script(Script::Defer);
    let reply = q
        .send("app@example.com", &["later@example.net"], &message("", "x"))
        .await;
    let md = format!("{}.1", queue_id(&reply));
    q.upstream.wait_attempts("later@example.net", 2).await;
    q.wait_status(&md, Status::Deferred).await;
    let rec = q.state.store.message_get(&md).unwrap().unwrap();
    assert!(
        rec.last_reply.as_deref().unwrap_or("").contains("451"),
        "{rec:?}"
    );
    q.upstream.script(Script::Accept);
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got.len(), 1);
    q.wait_status(&md, Status::Sent).await;
    assert!(q.state.store.message_get(&md).unwrap().unwrap().attempts >= 2);
}

#[tokio::test]
async fn hard_bounce_fails_the_recipient_and_suppresses_it_globally() {
    let q = Quell::start().await;
    q.upstream.script_rcpt("nobody@example.net", Script::Bounce);
    q.upstream.script_rcpt("policy@example.net", Script::Refuse);
    let reply = q
        .send(
            "app@example.com",
            &["nobody@example.net", "policy@example.net", "ok@example.net"],
            &message("", "x"),
        )
        .await;
    let id = queue_id(&reply);
    q.upstream.wait_for(1).await;
    q.wait_status(&format!("{id}.1"), Status::Bounced).await;
    q.wait_status(&format!("{id}.2"), Status::Bounced).await;
    let key = SuppressionKey::new(
        Scope::Global,
        "nobody@example.net",
        quell::store::List::Bounces,
    );
    let entry = q
        .state
        .store
        .suppression_get(&key)
        .unwrap()
        .expect("hard bounce suppression");
    assert_eq!(entry.reason, Reason::HardBounce);
    assert_eq!(entry.md_id.as_deref(), Some(format!("{id}.1").as_str()));
    assert!(entry.expires_at.is_some(), "hard bounces expire (SPEC §3)");
    // 5.7.1 is permanent but not a hard bounce: no suppression.
    let key = SuppressionKey::new(
        Scope::Global,
        "policy@example.net",
        quell::store::List::Bounces,
    );
    assert!(q.state.store.suppression_get(&key).unwrap().is_none());
    // The next message to the bounced address is refused at RCPT.
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<nobody@example.net>", "550 5.7.1").await;
}

#[tokio::test]
async fn expired_messages_fail_permanently() {
    let q = Quell::start_with(|c| c.queue.max_age = std::time::Duration::from_secs(0)).await;
    q.upstream.script(Script::Defer);
    let reply = q
        .send("app@example.com", &["later@example.net"], &message("", "x"))
        .await;
    let md = format!("{}.1", queue_id(&reply));
    q.wait_status(&md, Status::Bounced).await;
    let rec = q.state.store.message_get(&md).unwrap().unwrap();
    assert!(rec.last_reply.unwrap().contains("queue.max_age"));
    assert_eq!(q.state.store.queue_len(), 0);
}

#[tokio::test]
async fn client_outside_relay_networks_cannot_relay() {
    let q =
        Quell::start_with(|c| c.smtp.relay_networks = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let mut c = SmtpClient::connect_from("127.0.0.2", q.smtp).await;
    c.expect("EHLO outsider.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<user@example.net>", "554 5.7.1").await;
    c.expect("DATA", "554").await;
    // The same server relays for 127.0.0.1.
    let mut inside = q.client().await;
    inside.expect("EHLO app.test", "250").await;
    inside.expect("MAIL FROM:<app@example.com>", "250").await;
    inside.expect("RCPT TO:<user@example.net>", "250").await;
}

#[tokio::test]
async fn null_sender_is_relayed() {
    let q = Quell::start().await;
    let reply = q
        .send("", &["user@example.net"], &message("", "bounce notice"))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].from, "");
}

#[tokio::test]
async fn allowlisted_address_is_never_suppressed() {
    let q = Quell::start().await;
    suppress(
        &q,
        Scope::Global,
        "vip@example.net",
        Suppression::new(Reason::Spam, 0),
    );
    q.state
        .store
        .allowlist_put(
            "vip@example.net",
            &quell::store::AllowEntry {
                detail: String::new(),
                created_at: 0,
            },
        )
        .unwrap();
    let reply = q
        .send("app@example.com", &["vip@example.net"], &message("", "x"))
        .await;
    assert!(reply.starts_with("250"));
    q.upstream.wait_for(1).await;
}

/// Many sessions finishing DATA at once all get their 250: the durability flush must not stall
/// under concurrency (sled 0.34's `flush_async` deadlocked with 7 or more in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sessions_all_get_their_250() {
    let q = std::sync::Arc::new(Quell::start_with(|c| c.upstream.connections = 4).await);
    let mut tasks = Vec::new();
    for s in 0..24 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = q.client().await;
            c.expect("EHLO app.test", "250").await;
            for m in 0..5 {
                c.expect("MAIL FROM:<app@example.com>", "250").await;
                c.expect(&format!("RCPT TO:<s{s}m{m}@example.net>"), "250")
                    .await;
                c.expect("DATA", "354").await;
                let r = c.data(&message("", "x")).await;
                assert!(r.starts_with("250 2.0.0"), "{r}");
            }
        }));
    }
    tokio::time::timeout(crate::support::WAIT, async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("every session answered in time");
    assert_eq!(q.upstream.wait_for(120).await.len(), 120);
}
