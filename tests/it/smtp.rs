//! SMTP session transcripts: pipelining, null sender, SIZE, limits, smuggling, timeouts,
//! STARTTLS and AUTH.

use std::time::Duration;

use quell::shutdown::CancellationToken;
use quell::smtp::connection::drive;
use quell::smtp::session::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{message, Quell, SmtpClient};

#[tokio::test]
async fn ehlo_advertises_the_extensions() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    assert!(
        c.greeting.starts_with("220 quell.localhost ESMTP"),
        "{}",
        c.greeting
    );
    let r = c.expect("EHLO app.test", "250").await;
    for ext in [
        "SIZE 26214400",
        "8BITMIME",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(r.contains(ext), "{ext} missing in {r}");
    }
    assert!(!r.contains("STARTTLS") && !r.contains("AUTH"), "{r}");
    c.expect("QUIT", "221").await;
}

#[tokio::test]
async fn pipelined_transaction_gets_every_reply_in_order() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.send_raw(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<bad address>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n").await;
    assert!(c.reply().await.starts_with("250 2.1.0"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("501"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("354"));
    // The message and the next commands in one write.
    c.send_raw(
        format!(
            "{}.\r\nMAIL FROM:<>\r\nRCPT TO:<c@example.net>\r\nQUIT\r\n",
            message("", "x")
        )
        .as_bytes(),
    )
    .await;
    assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as"));
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("221"));
    let got = q.upstream.wait_for(2).await;
    let mut to: Vec<_> = got.iter().flat_map(|r| r.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["a@example.net", "b@example.net"]);
}

#[tokio::test]
async fn size_is_checked_at_mail_and_enforced_in_data() {
    let q = Quell::start_with(|c| c.smtp.max_message_size = 1000).await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com> SIZE=1001", "552 5.3.4")
        .await;
    c.expect("MAIL FROM:<app@example.com> SIZE=500", "250")
        .await;
    c.expect("RCPT TO:<a@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let big = message("", &"x".repeat(2000));
    let r = c.data(&big).await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // The session goes on.
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    assert_eq!(q.state.store.queue_len(), 0);
    assert!(q.upstream.received().is_empty());
}

#[tokio::test]
async fn recipients_are_capped() {
    let q = Quell::start_with(|c| c.smtp.max_recipients = 2).await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<a@example.net>", "250").await;
    c.expect("RCPT TO:<b@example.net>", "250").await;
    c.expect("RCPT TO:<c@example.net>", "452 4.5.3").await;
}

#[tokio::test]
async fn command_lines_are_bounded() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    let long = format!("NOOP {}", "a".repeat(600));
    c.expect(&long, "500 5.5.2").await;
    // Far past any buffer: discarded, one error, the session survives.
    let huge = format!("NOOP {}", "a".repeat(100_000));
    c.expect(&huge, "500 5.5.2").await;
    c.expect("NOOP", "250").await;
    c.expect("MAIL FROM:<not an address>", "501").await;
}

#[tokio::test]
async fn sequence_errors() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("MAIL FROM:<app@example.com>", "503").await;
    c.expect("EHLO app.test", "250").await;
    c.expect("RCPT TO:<a@example.net>", "503").await;
    c.expect("DATA", "503").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("DATA", "554").await;
    c.expect("BDAT 10 LAST", "502").await;
    c.expect("FOO", "500 5.5.1").await;
}

#[tokio::test]
async fn bare_lf_dot_does_not_end_data_and_cannot_smuggle() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<a@example.net>", "250").await;
    c.expect("DATA", "354").await;
    // A smuggling attempt: "\n.\r\n" then a second transaction inside the first message.
    let payload = "Subject: one\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n";
    c.send_raw(payload.as_bytes()).await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    c.expect("QUIT", "221").await;
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["a@example.net"]);
    let text = got[0].text();
    // The bare LF became CRLF and the lone dot line is content, not an end.
    assert!(
        text.contains("first\r\n.\r\nMAIL FROM:<evil@example.com>\r\n"),
        "{text:?}"
    );
    assert_eq!(q.upstream.attempts("victim@example.net"), 0);
}

#[tokio::test]
async fn too_many_connections_get_421() {
    let q = Quell::start_with(|c| c.smtp.max_connections = 1).await;
    let _first = q.client().await;
    let second = SmtpClient::connect(q.smtp).await;
    assert!(
        second.greeting.starts_with("421 4.7.0"),
        "{}",
        second.greeting
    );
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_time_out_with_421() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = quell::config::Config::default();
    config.storage.path = dir.path().join("data");
    config.smtp.command_timeout = Duration::from_secs(300);
    config.smtp.data_timeout = Duration::from_secs(180);
    let app = quell::app::App::open(config).unwrap();
    let (mut client, mut server) = tokio::io::duplex(4096);
    let mut session = Session::new(app.state.clone(), "127.0.0.1:1".parse().unwrap(), false);
    let task = tokio::spawn(async move {
        drive(&mut server, &mut session, &CancellationToken::new(), true).await
    });
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"220"));
    client
        .write_all(b"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\npartial")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("354") {
        let n = client.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    // Inside DATA the data timeout (3 min) applies, not the command timeout.
    tokio::time::advance(Duration::from_secs(181)).await;
    let n = client.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("421 4.4.2"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    task.await.unwrap().unwrap();
    assert_eq!(app.state.store.queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_421_between_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = quell::config::Config::default();
    config.storage.path = dir.path().join("data");
    let app = quell::app::App::open(config).unwrap();
    let (mut client, mut server) = tokio::io::duplex(4096);
    let mut session = Session::new(app.state.clone(), "127.0.0.1:1".parse().unwrap(), false);
    let token = CancellationToken::new();
    let stop = token.clone();
    let task = tokio::spawn(async move { drive(&mut server, &mut session, &stop, true).await });
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"220"));
    token.cancel();
    let n = client.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"421 4.3.2"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    task.await.unwrap().unwrap();
}

mod tls {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::Argon2;
    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, BufReader};

    async fn line_reply<S: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<S>) -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).await.unwrap();
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn send<S: tokio::io::AsyncWrite + tokio::io::AsyncRead + Unpin>(
        t: &mut BufReader<S>,
        line: &str,
    ) {
        t.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn starttls_then_auth_allows_relay_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        let cert = crate::support::tls::TestCert::new(dir.path());
        let (cert_file, key_file) = (cert.cert_file.clone(), cert.key_file.clone());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        let q = Quell::start_with(|c| {
            c.smtp.relay_networks = vec!["10.0.0.0/8".parse().unwrap()];
            c.smtp.tls = Some(quell::config::TlsFiles {
                cert_file,
                key_file,
            });
            c.smtp.users = vec![quell::config::SmtpUser {
                name: "app".into(),
                password_hash: hash.into(),
            }];
        })
        .await;
        let mut c = q.client().await;
        let r = c.expect("EHLO app.test", "250").await;
        assert!(
            r.contains("STARTTLS") && !r.contains("AUTH"),
            "AUTH only after TLS: {r}"
        );
        c.expect("AUTH PLAIN AGFwcABzM2NyZXQ=", "538").await;
        c.expect("MAIL FROM:<app@example.com>", "530 5.7.0").await;
        c.expect("STARTTLS", "220").await;

        // Upgrade a fresh raw connection (the helper client owns its halves).
        drop(c);
        let tcp = tokio::net::TcpStream::connect(q.smtp).await.unwrap();
        let mut r = BufReader::new(tcp);
        line_reply(&mut r).await;
        r.get_mut()
            .write_all(b"EHLO app.test\r\nSTARTTLS\r\n")
            .await
            .unwrap();
        line_reply(&mut r).await;
        assert!(line_reply(&mut r).await.starts_with("220"));
        let connector = cert.connector();
        let tls = connector
            .connect("localhost".try_into().unwrap(), r.into_inner())
            .await
            .unwrap();
        let mut t = BufReader::new(tls);
        send(&mut t, "EHLO app.test").await;
        let r = line_reply(&mut t).await;
        assert!(
            r.contains("AUTH PLAIN LOGIN") && !r.contains("STARTTLS"),
            "{r}"
        );
        let bad = base64::engine::general_purpose::STANDARD.encode("\0app\0wrong");
        send(&mut t, &format!("AUTH PLAIN {bad}")).await;
        assert!(line_reply(&mut t).await.starts_with("535 5.7.8"));
        let good = base64::engine::general_purpose::STANDARD.encode("\0app\0s3cret");
        send(&mut t, &format!("AUTH PLAIN {good}")).await;
        assert!(line_reply(&mut t).await.starts_with("235"));
        send(&mut t, "MAIL FROM:<app@example.com>").await;
        assert!(line_reply(&mut t).await.starts_with("250"));
        send(&mut t, "RCPT TO:<user@example.net>").await;
        assert!(line_reply(&mut t).await.starts_with("250"));
    }
}

/// A store that fails every decision, through the policy's seam.
#[derive(Debug)]
struct FailingStore;

impl quell::policy::Verdicts for FailingStore {
    fn verdict(
        &self,
        _: &quell::policy::Query<'_>,
    ) -> Result<quell::policy::Verdict, quell::store::StoreError> {
        Err(quell::store::StoreError::Io(std::io::Error::other(
            "disk on fire at /secret/path",
        )))
    }
}

#[tokio::test]
async fn a_store_failure_at_rcpt_is_a_451_that_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = quell::config::Config::default();
    config.storage.path = dir.path().join("data");
    let app = quell::app::App::open(config.clone()).unwrap();
    let mut state = app.state.clone();
    state.policy =
        quell::policy::Policy::with_source(std::sync::Arc::new(FailingStore), config.suppression);
    let (mut client, mut server) = tokio::io::duplex(4096);
    let mut session = Session::new(state, "127.0.0.1:1".parse().unwrap(), false);
    let task = tokio::spawn(async move {
        drive(&mut server, &mut session, &CancellationToken::new(), true).await
    });
    client
        .write_all(b"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("\r\n451 4.3.0"), "{text}");
    assert!(
        !text.contains("fire") && !text.contains("/secret"),
        "{text}"
    );
    task.await.unwrap().unwrap();
}
