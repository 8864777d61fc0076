//! Delivery over TLS to the upstream: STARTTLS with AUTH, implicit TLS, and certificate checks.

use quell::config::UpstreamTls;
use quell::store::Status;

use crate::support::tls::TestCert;
use crate::support::upstream::Options;
use crate::support::{message, queue_id, FakeUpstream, Quell};

async fn quell_with(
    upstream: &FakeUpstream,
    tls: UpstreamTls,
    ca: Option<&TestCert>,
    creds: bool,
) -> Quell {
    let port = upstream.addr.port();
    let ca_file = ca.map(|c| c.cert_file.clone());
    Quell::start_with(move |c| {
        c.upstream.port = port;
        c.upstream.tls = tls;
        c.upstream.ca_file = ca_file;
        if creds {
            c.upstream.credentials = Some(("relay".into(), "pw".into()));
        }
    })
    .await
}

#[tokio::test]
async fn starttls_and_auth_to_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new(dir.path());
    let upstream = FakeUpstream::start_with(Options {
        tls: Some(cert.acceptor()),
        implicit: false,
        credentials: Some(("relay".into(), "pw".into())),
    })
    .await;
    let q = quell_with(&upstream, UpstreamTls::StartTls, Some(&cert), true).await;
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message("", "secret stuff"),
    )
    .await;
    let got = upstream.wait_for(1).await;
    assert!(got[0].tls, "delivered in the clear");
    assert_eq!(got[0].user.as_deref(), Some("relay"));
}

#[tokio::test]
async fn implicit_tls_to_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new(dir.path());
    let upstream = FakeUpstream::start_with(Options {
        tls: Some(cert.acceptor()),
        implicit: true,
        credentials: None,
    })
    .await;
    let q = quell_with(&upstream, UpstreamTls::Tls, Some(&cert), false).await;
    q.send("app@example.com", &["a@example.net"], &message("", "x"))
        .await;
    let got = upstream.wait_for(1).await;
    assert!(got[0].tls);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new(dir.path());
    let upstream = FakeUpstream::start_with(Options {
        tls: Some(cert.acceptor()),
        implicit: true,
        credentials: None,
    })
    .await;
    // No ca_file: the public roots do not include our self-signed certificate.
    let q = quell_with(&upstream, UpstreamTls::Tls, None, false).await;
    let reply = q
        .send("app@example.com", &["a@example.net"], &message("", "x"))
        .await;
    let md = format!("{}.1", queue_id(&reply));
    q.wait_status(&md, Status::Deferred).await;
    let rec = q.state.store.message_get(&md).unwrap().unwrap();
    assert!(
        rec.last_reply.unwrap().contains("TLS"),
        "the reason names TLS"
    );
    assert!(upstream.received().is_empty());
}
