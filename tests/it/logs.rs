//! What quell logs: the suppression outcome lines name the scope's kind, never the sender
//! address a `sender:` scope holds.

use std::sync::{Arc, Mutex};

use quell::config::OnSuppressed;
use quell::store::{Reason, Scope, Status, Suppression, SuppressionKey};

use crate::support::{message, queue_id, Quell};

/// Everything logged at the default level (`info`) on this test's thread, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn suppress_from_sender(q: &Quell, rcpt: &str, tags: &[&str]) {
    let mut entry = Suppression::new(Reason::Unsub, 0);
    if !tags.is_empty() {
        entry.tags = tags.iter().map(|t| t.to_string()).collect();
    }
    let scope = Scope::Sender("app@example.com".into());
    let key = SuppressionKey::new(scope, rcpt, entry.reason.list());
    q.state.store.suppression_put(&key, &entry).unwrap();
}

#[tokio::test]
async fn suppression_lines_log_the_scope_kind_not_the_sender() {
    let logs = Captured::default();
    let writer = logs.clone();
    // The runtime of this test is single-threaded: quell's tasks log on this thread.
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    for mode in [OnSuppressed::Reject, OnSuppressed::Drop] {
        let q = Quell::start_with(|c| c.suppression.on_suppressed = mode).await;
        suppress_from_sender(&q, "gone@example.net", &[]);
        suppress_from_sender(&q, "tagged@example.net", &["promo"]);
        let reply = q
            .send(
                "app@example.com",
                &["gone@example.net", "tagged@example.net", "ok@example.net"],
                &message("X-MC-Tags: promo\r\n", "x"),
            )
            .await;
        let id = queue_id(&reply);
        // Suppressed at RCPT (refused, or dropped as copy 1), then after DATA by its tag.
        let tagged = if mode == OnSuppressed::Reject { 1 } else { 2 };
        let record = q
            .state
            .store
            .message_get(&format!("{id}.{tagged}"))
            .unwrap();
        assert_eq!(record.map(|r| r.status), Some(Status::Rejected));
    }
    let text = logs.text();
    for (action, at) in [("reject", "rcpt"), ("drop", "rcpt"), ("drop", "tag-scoped")] {
        let line = text.lines().find(|l| {
            l.contains(&format!(": {at} ")) && l.contains(&format!("action=\"{action}\""))
        });
        assert!(
            line.is_some_and(|l| l.contains("scope=\"sender\"")),
            "no {action} {at} line with the scope kind in:\n{text}"
        );
    }
    assert!(
        !text.contains("@example."),
        "an address was logged:\n{text}"
    );
}
