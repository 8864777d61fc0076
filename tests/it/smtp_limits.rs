//! One SMTP client must not take the relay down, and nothing is accepted that would be
//! dropped later (issue 11 §1–§2): connections per address, slots reserved for
//! `relay_networks`, deadlines per command and a minimum data rate, the junk-command limit,
//! SIZE past 64 bits, unadvertised parameters (SMTPUTF8), addresses that are not ASCII.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quell::shutdown::CancellationToken;
use quell::smtp::connection::drive;
use quell::smtp::session::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{message, Quell, SmtpClient, WAIT};

/// 127.0.0.1 may relay; 127.0.0.2 and up are outsiders.
fn only_localhost_relays(c: &mut quell::config::Config) {
    c.smtp.relay_networks = vec!["127.0.0.1/32".parse().unwrap()];
}

/// Reads everything until the server closes the connection.
async fn until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn an_outside_address_gets_421_past_its_connection_limit() {
    let q = Quell::start_with(|c| {
        only_localhost_relays(c);
        c.smtp.max_connections_per_ip = Some(3);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = SmtpClient::connect_from("127.0.0.2", q.smtp).await;
        assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
        held.push(c);
    }
    let mut fourth = SmtpClient::connect_from("127.0.0.2", q.smtp).await;
    assert_eq!(
        fourth.greeting,
        "421 4.7.0 quell.localhost Too many connections from your address\r\n"
    );
    assert_eq!(fourth.reply().await, "", "closed after the 421");
    // Another outsider is served, and so is the relay client, however many it opens
    // (relay_networks are exempt, as Postfix exempts mynetworks).
    let other = SmtpClient::connect_from("127.0.0.3", q.smtp).await;
    assert!(other.greeting.starts_with("220 "), "{}", other.greeting);
    let mut relay = Vec::new();
    for _ in 0..5 {
        let c = SmtpClient::connect_from("127.0.0.1", q.smtp).await;
        assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
        relay.push(c);
    }
    // A slot freed is a slot back.
    held.pop();
    tokio::time::timeout(WAIT, async {
        while !SmtpClient::connect_from("127.0.0.2", q.smtp)
            .await
            .greeting
            .starts_with("220 ")
        {}
    })
    .await
    .expect("the address gets its slot back");
}

#[tokio::test]
async fn outsiders_cannot_take_the_slots_reserved_for_relay_clients() {
    let q = Quell::start_with(|c| {
        only_localhost_relays(c);
        c.smtp.max_connections = 6;
        c.smtp.reserved_connections = 2;
        c.smtp.max_connections_per_ip = None;
    })
    .await;
    // A flood from an address that may not relay takes what it can get.
    let mut flood = Vec::new();
    let refused = loop {
        let c = SmtpClient::connect_from("127.0.0.2", q.smtp).await;
        if !c.greeting.starts_with("220 ") {
            break c.greeting;
        }
        flood.push(c);
        assert!(flood.len() <= 6, "more connections than max_connections");
    };
    assert_eq!(flood.len(), 4, "max_connections - reserved_connections");
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
    // The relay client still gets in and sends.
    let mut c = SmtpClient::connect_from("127.0.0.1", q.smtp).await;
    assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<user@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let r = c.data(&message("", "through the reserved slot")).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(q.upstream.wait_for(1).await[0].to, ["user@example.net"]);
}

/// Sends `bytes` one at a time, `every` apart, counting them in `sent`, until done or the
/// connection fails; sets `finished` when it has sent them all.
fn drip(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
    every: Duration,
) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, f) = (sent.clone(), finished.clone());
    tokio::spawn(async move {
        for b in bytes {
            tokio::time::sleep(every).await;
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            s.fetch_add(1, Ordering::SeqCst);
        }
        f.store(true, Ordering::SeqCst);
        // Keep the connection open: only the server's deadline may end it.
        std::future::pending::<()>().await;
    });
    (sent, finished)
}

#[tokio::test]
async fn a_command_dripped_byte_by_byte_ends_at_the_command_deadline() {
    let q = Quell::start_with(|c| c.smtp.command_timeout = Duration::from_secs(1)).await;
    let stream = TcpStream::connect(q.smtp).await.unwrap();
    let (mut r, w) = stream.into_split();
    let mut greeting = [0u8; 64];
    let n = r.read(&mut greeting).await.unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    // 60 bytes 200 ms apart: 12 s of a line that is never finished, each byte well within
    // the 1 s command_timeout of the one before.
    let line = format!("NOOP {}", "x".repeat(55)).into_bytes();
    let (sent, finished) = drip(w, line, Duration::from_millis(200));
    let answer = tokio::time::timeout(WAIT, until_closed(&mut r))
        .await
        .expect("quell closes the connection");
    assert_eq!(
        answer,
        "421 4.4.2 quell.localhost Error: timeout exceeded\r\n"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "closed only after the client stopped ({} bytes sent): a limit per read, not a deadline",
        sent.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn message_data_dripped_below_the_minimum_rate_is_cut_off() {
    let q = Quell::start_with(|c| {
        c.smtp.data_timeout = Duration::from_secs(1);
        c.smtp.min_data_rate = 500;
    })
    .await;
    let stream = TcpStream::connect(q.smtp).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    w.write_all(
        b"EHLO app.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.net>\r\nDATA\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("354 ") {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // 60 bytes 200 ms apart: each read comes well within data_timeout of the last, but 5
    // bytes a second is far below 500.
    let (sent, finished) = drip(w, vec![b'x'; 60], Duration::from_millis(200));
    let answer = tokio::time::timeout(WAIT, until_closed(&mut r))
        .await
        .expect("quell closes the connection");
    assert_eq!(
        answer,
        "421 4.4.2 quell.localhost Error: timeout exceeded\r\n"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "closed only after the client stopped ({} bytes sent)",
        sent.load(Ordering::SeqCst)
    );
    assert_eq!(q.state.store.queue_len(), 0);
}

/// A session over an in-memory pipe, on paused time (the test controls the clock).
async fn piped_session(
    change: impl FnOnce(&mut quell::config::Config),
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<()>,
    quell::app::App,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = quell::config::Config::default();
    config.storage.path = dir.path().join("data");
    change(&mut config);
    let app = quell::app::App::open(config).unwrap();
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let mut session = Session::new(app.state.clone(), "127.0.0.1:1".parse().unwrap(), false);
    let task = tokio::spawn(async move {
        let _ = drive(&mut server, &mut session, &CancellationToken::new(), true).await;
    });
    (client, task, app, dir)
}

#[tokio::test(start_paused = true)]
async fn a_client_above_the_minimum_rate_may_take_longer_than_data_timeout() {
    let (client, task, app, _dir) = piped_session(|c| {
        c.smtp.data_timeout = Duration::from_secs(10);
        c.smtp.min_data_rate = 500;
    })
    .await;
    let (mut r, mut w) = tokio::io::split(client);
    w.write_all(b"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("354 ") {
        let n = r.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    // 60 s of data, 4 s apart (within data_timeout each) at 1,000 bytes a second: six times
    // data_timeout in all, above the minimum rate throughout.
    w.write_all(b"Subject: slow\r\n\r\n").await.unwrap();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        w.write_all(&[b'y'; 3998]).await.unwrap();
        w.write_all(b"\r\n").await.unwrap();
    }
    w.write_all(b".\r\nQUIT\r\n").await.unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).await.unwrap();
    assert!(rest.starts_with("250 2.0.0 Ok: queued as"), "{rest}");
    task.await.unwrap();
    assert_eq!(app.state.store.queue_len(), 1);
}

#[tokio::test]
async fn junk_commands_past_the_limit_close_the_session_until_a_message_is_accepted() {
    let q = Quell::start_with(|c| c.smtp.junk_command_limit = 5).await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    for junk in ["NOOP", "RSET", "VRFY x", "FOO"] {
        let r = c.cmd(junk).await;
        assert!(!r.starts_with("421"), "{junk}: {r}");
    }
    // An accepted message forgives the junk before it.
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<user@example.net>", "250").await;
    c.expect("DATA", "354").await;
    assert!(c.data(&message("", "x")).await.starts_with("250 2.0.0"));
    for junk in [
        "NOOP",
        "HELP",
        "EXPN list",
        "NOOP",
        "MAIL FROM:<a@b> SIZE=x",
    ] {
        let r = c.cmd(junk).await;
        assert!(!r.starts_with("421"), "{junk}: {r}");
    }
    let r = c.cmd("NOOP").await;
    assert_eq!(
        r,
        "421 4.7.0 quell.localhost Too many junk commands, closing connection\r\n"
    );
    assert_eq!(c.reply().await, "", "closed after the 421");
}

#[tokio::test]
async fn a_size_past_64_bits_is_too_large() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    for size in [
        "99999999999999999999999",
        "18446744073709551616",
        "18446744073709551615",
        "26214401",
    ] {
        let r = c
            .cmd(&format!("MAIL FROM:<app@example.com> SIZE={size}"))
            .await;
        assert_eq!(
            r, "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            "SIZE={size}"
        );
    }
    c.expect(
        "MAIL FROM:<app@example.com> SIZE=0000000000000000000000001000",
        "250",
    )
    .await;
}

#[tokio::test]
async fn parameters_not_advertised_are_refused_with_555() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    let ehlo = c.expect("EHLO app.test", "250").await;
    assert!(!ehlo.contains("SMTPUTF8"), "{ehlo}");
    assert_eq!(
        c.cmd("MAIL FROM:<app@example.com> SMTPUTF8").await,
        "555 5.5.4 SMTPUTF8 not supported\r\n"
    );
    for (param, name) in [
        ("REQUIRETLS", "REQUIRETLS"),
        ("RET=HDRS", "RET"),
        ("BODY=BINARYMIME", "BODY=BINARYMIME"),
        ("AUTH=<>", "AUTH"),
        ("X-UNKNOWN=1", "X-UNKNOWN"),
    ] {
        assert_eq!(
            c.cmd(&format!("MAIL FROM:<app@example.com> {param}")).await,
            format!("555 5.5.4 Parameter not supported: {name}\r\n"),
            "{param}"
        );
    }
    c.expect("MAIL FROM:<app@example.com> BODY=8BITMIME SIZE=100", "250")
        .await;
    assert_eq!(
        c.cmd("RCPT TO:<user@example.net> NOTIFY=NEVER").await,
        "555 5.5.4 Parameter not supported: NOTIFY\r\n"
    );
    c.expect("RCPT TO:<user@example.net>", "250").await;
}

#[tokio::test]
async fn addresses_that_are_not_ascii_are_refused() {
    let q = Quell::start().await;
    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    let sender = "501 5.1.7 Sender address must be ASCII (SMTPUTF8 not supported)\r\n";
    let recipient = "501 5.1.3 Recipient address must be ASCII (SMTPUTF8 not supported)\r\n";
    for line in [
        &b"MAIL FROM:<\xff@example.com>\r\n"[..],
        b"MAIL FROM:<app\xc3@example.com>\r\n",
        "MAIL FROM:<jos\u{e9}@example.com>\r\n".as_bytes(),
        "MAIL FROM:<app@ex\u{e4}mple.com>\r\n".as_bytes(),
    ] {
        c.send_raw(line).await;
        assert_eq!(c.reply().await, sender, "{}", String::from_utf8_lossy(line));
    }
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    for line in [
        &b"RCPT TO:<\xff\xfe@example.net>\r\n"[..],
        "RCPT TO:<m\u{fc}ller@example.net>\r\n".as_bytes(),
    ] {
        c.send_raw(line).await;
        assert_eq!(
            c.reply().await,
            recipient,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    c.expect("RCPT TO:<user@example.net>", "250").await;
    c.expect("DATA", "354").await;
    assert!(c.data(&message("", "x")).await.starts_with("250 2.0.0"));
    let got = q.upstream.wait_for(1).await;
    assert_eq!(got[0].to, ["user@example.net"]);
    assert_eq!(got[0].from, "app@example.com");
}

#[tokio::test]
async fn a_client_that_does_not_read_its_replies_is_closed() {
    let q = Quell::start_with(|c| c.smtp.command_timeout = Duration::from_secs(1)).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(q.smtp).await.unwrap();
    let (_r, mut w) = stream.into_split();
    // Commands whose replies (503, four times their size) are never read: quell's writes
    // block once the buffers are full.
    let writer = tokio::spawn(async move {
        let chunk = b"RCPT TO:<a@b.example>\r\n".repeat(4096);
        for _ in 0..2000 {
            if w.write_all(&chunk).await.is_err() {
                return true;
            }
        }
        false
    });
    let closed = tokio::time::timeout(WAIT, writer)
        .await
        .expect("quell closes a connection whose replies are not read")
        .unwrap();
    assert!(closed, "190 MB written and never closed");
    // The listener serves others meanwhile.
    assert!(q.client().await.greeting.starts_with("220 "));
}
