//! Suppression writes under concurrency: concurrent writers to one address lose nothing, and
//! RCPT checks are answered while a write holds the store's writer lock.

use quell::store::{List, Reason, Scope, Suppression, SuppressionKey, Update};

use crate::support::{Quell, API_KEY, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mailgun_tag_writers_to_one_address_lose_no_tag() {
    let q = Quell::start().await;
    let http = reqwest::Client::new();
    let url = q.url("/v3/example.com/unsubscribes");
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                for n in 0..60 {
                    let r = http
                        .post(&url)
                        .basic_auth("api", Some(API_KEY))
                        .json(&serde_json::json!({
                            "address": "race@example.net",
                            "tags": [format!("w{w}-{n}")],
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let key = SuppressionKey::new(
        Scope::Domain("example.com".into()),
        "race@example.net",
        List::Unsubscribes,
    );
    let entry = q.state.store.suppression_get(&key).unwrap().unwrap();
    assert_eq!(entry.tags.len(), 180, "{:?}", entry.tags);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcpt_is_answered_while_a_suppression_write_holds_the_writer_lock() {
    let q = Quell::start().await;
    let store = q.state.store.clone();
    store
        .suppression_put(
            &SuppressionKey::new(Scope::Global, "gone@example.net", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 0),
        )
        .unwrap();
    // A writer that stops in the middle of its write (where a clear scans its scope or an
    // import writes a batch) until told to go on.
    let (held, is_held) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let key = SuppressionKey::new(Scope::Global, "other@example.net", List::Bounces);
        let mut held = Some(held);
        store
            .update(&[key], &[], |_, _, _| {
                if let Some(h) = held.take() {
                    h.send(()).unwrap();
                }
                released.recv().unwrap();
                Ok(Update::Put(Suppression::new(Reason::HardBounce, 0)))
            })
            .unwrap()
    });
    is_held.await.unwrap();
    tokio::time::timeout(WAIT, async {
        let mut c = q.client().await;
        c.expect("EHLO app.test", "250").await;
        c.expect("MAIL FROM:<app@example.com>", "250").await;
        c.expect("RCPT TO:<gone@example.net>", "550 5.7.1").await;
        c.expect("RCPT TO:<fine@example.net>", "250").await;
        c.expect("RSET", "250").await;
    })
    .await
    .expect("RCPT answered while the writer holds its lock");
    release.send(()).unwrap();
    writer.join().unwrap();
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<other@example.net>", "550 5.7.1").await;
}
