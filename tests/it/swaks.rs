//! swaks, the operator's SMTP test tool, against quell: a delivery and a refusal, as the
//! README shows them. Needs `swaks` on PATH (`apt-get install swaks`; .ci/run installs it).

use tokio::process::Command;

use crate::support::{Quell, Script};

async fn swaks(q: &Quell, to: &str) -> (bool, String) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &q.smtp.ip().to_string(),
            "--port",
            &q.smtp.port().to_string(),
        ])
        .args([
            "--from",
            "app@example.com",
            "--to",
            to,
            "--helo",
            "app.test",
        ])
        .args([
            "--header",
            "Subject: swaks test",
            "--body",
            "hello from swaks",
        ])
        .output()
        .await
        .expect("swaks is installed (apt-get install swaks)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn swaks_delivery_and_refusal() {
    let q = Quell::start().await;
    q.upstream.script(Script::Accept);
    let (ok, transcript) = swaks(&q, "user@example.net").await;
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("<-  250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let got = q.upstream.wait_for(1).await;
    assert!(got[0].text().contains("hello from swaks"));

    // Suppress through the Mailgun-compatible API, as an operator would with curl.
    let r = reqwest::Client::new()
        .post(q.url("/v3/example.com/unsubscribes"))
        .basic_auth("api", Some(crate::support::API_KEY))
        .form(&[("address", "user@example.net")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (ok, transcript) = swaks(&q, "user@example.net").await;
    assert!(!ok, "swaks must fail on a refused recipient");
    assert!(
        transcript.contains("<** 550 5.7.1 <user@example.net>: recipient suppressed"),
        "{transcript}"
    );
    assert_eq!(q.upstream.received().len(), 1);
}
