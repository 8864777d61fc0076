//! The real binary: config errors exit 2, SIGTERM drains and exits 0, and a `kill -9` with
//! messages queued loses nothing and duplicates nothing.

use tokio::process::Command;

use crate::support::process::{spawn, write_config, BIN};
use crate::support::{message, FakeUpstream, Script, SmtpClient, WAIT};

#[tokio::test]
async fn check_config_accepts_the_default_and_names_the_bad_key() {
    // $QUELL_CONFIG names the file (and is not read as a key).
    let out = Command::new(BIN)
        .arg("check-config")
        .env("QUELL_CONFIG", "config/quell.toml")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["check-config", "-c", "config/quell.toml"])
        .env_remove("QUELL_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[smtp]\nlisten = \"127.0.0.1:2525\"\nmax_recipientz = 5\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_recipientz"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&bad, "[upstream]\ntls = \"sometimes\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.tls"));

    // Environment overrides are validated too, and a failure names the variable, not the file.
    std::fs::write(&bad, "").unwrap();
    for (name, value, said) in [
        (
            "QUELL_SMTP__LISTEN",
            "nowhere",
            "environment variable QUELL_SMTP__LISTEN: invalid socket address syntax",
        ),
        (
            "QUELL_UPSTREM__PORT",
            "2600",
            "environment variable QUELL_UPSTREM__PORT: unknown field `upstrem`",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["check-config", "-c"])
            .arg(&bad)
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(said), "{stderr}");
        assert!(!stderr.contains("bad.toml"), "{stderr}");
    }

    // A DKIM key file that is not a key: exit 2 naming the key.
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    std::fs::write(
        &bad,
        format!(
            "[dkim]\ndomain = \"example.com\"\nselector = \"s\"\nkey_file = {:?}\n",
            not_a_key
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&bad)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dkim.key_file"));

    let out = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("frobnicate").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), upstream.addr.port(), "");
    let mut q = spawn(&config).await;
    let ready = reqwest::get(format!("http://{}/readyz", q.http))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    let pid = q.child.id().unwrap() as i32;
    assert_eq!(unsafe_kill(pid, "TERM"), 0);
    // The idle session is told the service is going away.
    assert!(c.reply().await.starts_with("421 4.3.2"));
    let status = tokio::time::timeout(WAIT, q.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A second `quell serve` on a store in use stops at once, before binding anything, and names
/// the process that has the store; once that one is gone, the store opens again.
#[tokio::test]
async fn a_second_quell_on_the_same_store_names_the_first_and_binds_nothing() {
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), upstream.addr.port(), "");
    let first = spawn(&config).await;
    let pid = first.child.id().unwrap();
    let out = tokio::time::timeout(
        WAIT,
        Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("QUELL_CONFIG")
            .output(),
    )
    .await
    .expect("the second quell exits")
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = format!(
        "another quell (pid {pid}) is using {}",
        dir.path().join("data").display()
    );
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    assert!(
        !stderr.contains("listening"),
        "it bound its ports: {stderr}"
    );
    assert!(!stderr.contains("could not acquire lock"), "{stderr}");
    // The first one is unharmed, and after it is gone the store is free again (its pid file
    // left behind by the crash holds no lock).
    let ready = reqwest::get(first.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    first.kill_9().await;
    let again = spawn(&config).await;
    again.kill_9().await;
}

fn unsafe_kill(pid: i32, signal: &str) -> i32 {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.code().unwrap_or(1))
        .unwrap_or(1)
}

#[tokio::test]
async fn kill_9_with_100_queued_then_restart_delivers_each_exactly_once() {
    let upstream = FakeUpstream::start().await;
    upstream.script(Script::Defer);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), upstream.addr.port(), "");
    let mut q = spawn(&config).await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    for i in 0..100 {
        c.expect("MAIL FROM:<app@example.com>", "250").await;
        c.expect(&format!("RCPT TO:<user{i}@example.net>"), "250")
            .await;
        c.expect("DATA", "354").await;
        let r = c
            .data(&message(&format!("Message-ID: <m{i}@test>\r\n"), "x"))
            .await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    // Every message has been tried (and deferred) at least once.
    for i in [0, 50, 99] {
        upstream
            .wait_attempts(&format!("user{i}@example.net"), 1)
            .await;
    }
    q.child.start_kill().unwrap();
    q.child.wait().await.unwrap();
    assert!(upstream.received().is_empty());

    upstream.script(Script::Accept);
    let q = spawn(&config).await;
    let got = upstream.wait_for(100).await;
    // Wait for the queue to drain, then make sure nothing more arrives.
    let http = reqwest::Client::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let m = http
                .get(format!("http://{}/metrics", q.http))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if m.contains("quell_queue_depth 0\n") {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("queue drained");
    let got_after = upstream.received();
    assert_eq!(got_after.len(), 100, "duplicates delivered");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| {
            r.text()
                .lines()
                .find(|l| l.starts_with("Message-ID"))
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_message_never_sends_an_accepted_copy_again() {
    let upstream = FakeUpstream::start().await;
    let rcpts: Vec<String> = (1..=10).map(|i| format!("r{i}@example.net")).collect();
    // Copies 1-4 are accepted; the 5th transaction hangs after its message.
    upstream.script_rcpt(&rcpts[4], Script::Stall);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), upstream.addr.port(), "");
    let mut q = spawn(&config).await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    for rcpt in &rcpts {
        c.expect(&format!("RCPT TO:<{rcpt}>"), "250").await;
    }
    c.expect("DATA", "354").await;
    // An unsubscribe link per recipient: one rendered copy, one transaction each.
    let reply = c
        .data(&message("", "Bye: *|UNSUB:https://x.example/bye|*"))
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let id = crate::support::queue_id(&reply);
    c.cmd("QUIT").await;

    let first = upstream.wait_for(4).await;
    upstream.wait_stalled(1).await;
    let to: Vec<&str> = first.iter().map(|r| r.to[0].as_str()).collect();
    assert_eq!(
        to,
        rcpts[..4].iter().map(String::as_str).collect::<Vec<_>>()
    );
    q.child.start_kill().unwrap();
    q.child.wait().await.unwrap();

    upstream.script_rcpt(&rcpts[4], Script::Accept);
    let mut q = spawn(&config).await;
    upstream.wait_for(10).await;
    // A clean stop ends the attempt in progress; after it nothing more can arrive.
    assert_eq!(unsafe_kill(q.child.id().unwrap() as i32, "TERM"), 0);
    let status = tokio::time::timeout(WAIT, q.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let counts: Vec<(&str, usize)> = rcpts
        .iter()
        .map(|r| (r.as_str(), upstream.deliveries_to(r)))
        .collect();
    let once: Vec<(&str, usize)> = rcpts.iter().map(|r| (r.as_str(), 1)).collect();
    assert_eq!(counts, once, "copies delivered per recipient");
    for r in &rcpts[..4] {
        assert_eq!(upstream.attempts(r), 1, "{r} was tried again");
    }
    for copy in upstream.received() {
        let text = copy.text();
        assert!(text.contains("/u/") && !text.contains("*|UNSUB"), "{text}");
    }
    let store = quell::store::Store::open(&dir.path().join("data")).unwrap();
    assert_eq!(store.queue_len(), 0);
    for n in 1..=10 {
        let record = store.message_get(&format!("{id}.{n}")).unwrap().unwrap();
        assert_eq!(record.status, quell::store::Status::Sent, "{record:?}");
    }
}

#[tokio::test]
async fn out_of_file_descriptors_the_smtp_listener_backs_off_and_recovers() {
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), upstream.addr.port(), "");
    let q = crate::support::process::spawn_under(&["prlimit", "--nofile=64:64"], &config).await;
    // Each accepted connection costs quell a descriptor: past its limit, accept fails (EMFILE)
    // while the rest wait in the listen backlog.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(tokio::net::TcpStream::connect(q.smtp).await.unwrap());
    }
    const FAILED: &str = "accept failed";
    // The first failure is logged at once; the next line only a second later.
    tokio::time::timeout(WAIT, async {
        while q.logged(FAILED) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("accept failures are logged");
    assert!(
        q.logged(FAILED) <= 3,
        "{} accept-failure lines: the loop spins",
        q.logged(FAILED)
    );
    // Descriptors back: the listener serves again by itself.
    drop(held);
    let c = tokio::time::timeout(WAIT, SmtpClient::connect(q.smtp))
        .await
        .expect("greeted again once descriptors are free");
    assert!(c.greeting.starts_with("220"), "{}", c.greeting);
    q.kill_9().await;
}
