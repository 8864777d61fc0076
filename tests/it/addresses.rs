//! Addresses at MAIL and RCPT are checked by the rules the upstream path applies, and every
//! spelling of a suppressed address meets its entry (issue 11 §2).

use quell::store::{List, Reason, Scope, Suppression, SuppressionKey};

use crate::support::Quell;

#[tokio::test]
async fn spellings_the_upstream_would_refuse_are_refused_at_mail_and_rcpt() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com.>", "501 5.1.7").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    for rcpt in [
        "victim@example.net.",
        "\"victim@example.net\"@example.net",
        "victim.@example.net",
    ] {
        c.expect(&format!("RCPT TO:<{rcpt}>"), "501 5.1.3").await;
    }
    c.expect("RCPT TO:<fine@example.net>", "250").await;
}

#[tokio::test]
async fn a_quoted_spelling_of_a_suppressed_address_is_refused_too() {
    let q = Quell::start().await;
    q.state
        .store
        .suppression_put(
            &SuppressionKey::new(Scope::Global, "victim@example.net", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 0),
        )
        .unwrap();
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<\"Victim\"@Example.NET>", "550 5.7.1")
        .await;
    c.expect("RCPT TO:<VICTIM@example.net>", "550 5.7.1").await;
}
