//! The public HTTP listener bounds what one client can hold (issue 11 §1): a header-read
//! timeout that also ends idle kept-alive connections, a cap per client address and a total
//! cap.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Quell, WAIT};

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: quell\r\n\r\n";

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends one request and reads its response (the listener answers `/healthz` with `ok`).
async fn healthz(stream: &mut TcpStream) -> String {
    stream.write_all(REQUEST).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn connect_from(local: &str, q: &Quell) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(q.http).await.unwrap()
}

#[tokio::test]
async fn half_sent_headers_and_idle_kept_alive_connections_are_closed() {
    let q = Quell::start_with(|c| c.http.header_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(q.http).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: qu")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(q.http).await.unwrap();
    assert!(healthz(&mut idle).await.starts_with("HTTP/1.1 200"));
    let (slow, idle) = tokio::time::timeout(WAIT, async {
        tokio::join!(until_closed(&mut slow), until_closed(&mut idle))
    })
    .await
    .expect("the listener closes both");
    // The half-sent request may get a 408 before the close, never a 200.
    assert!(!String::from_utf8_lossy(&slow).contains("200 OK"));
    assert!(idle.is_empty());
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let q = Quell::start_with(|c| {
        c.http.max_connections_per_ip = 3;
        c.http.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", &q).await;
        assert!(healthz(&mut c).await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut fourth = connect_from("127.0.0.1", &q).await;
    let _ = fourth.write_all(REQUEST).await;
    let answer = tokio::time::timeout(WAIT, until_closed(&mut fourth))
        .await
        .expect("the fourth connection is closed");
    assert!(
        answer.is_empty(),
        "served: {}",
        String::from_utf8_lossy(&answer)
    );
    // Another address is served meanwhile, and the first gets its slot back.
    let mut other = connect_from("127.0.0.2", &q).await;
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"));
    held.pop();
    let mut again = tokio::time::timeout(WAIT, async {
        loop {
            let mut c = connect_from("127.0.0.1", &q).await;
            if c.write_all(REQUEST).await.is_ok() {
                let mut buf = [0u8; 64];
                if matches!(c.read(&mut buf).await, Ok(n) if n > 0) {
                    return c;
                }
            }
        }
    })
    .await
    .expect("a slot comes back when a connection closes");
    drop(again.shutdown().await);
}

#[tokio::test]
async fn past_the_total_cap_connections_wait_for_a_slot() {
    let q = Quell::start_with(|c| {
        c.http.max_connections = 2;
        c.http.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut a = TcpStream::connect(q.http).await.unwrap();
    assert!(healthz(&mut a).await.starts_with("HTTP/1.1 200"));
    let mut b = connect_from("127.0.0.2", &q).await;
    assert!(healthz(&mut b).await.starts_with("HTTP/1.1 200"));
    let mut third = connect_from("127.0.0.3", &q).await;
    third.write_all(REQUEST).await.unwrap();
    let mut buf = [0u8; 4096];
    // Not served while both slots are held (it waits in the backlog) ...
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap");
    // ... and served once one is free.
    drop(a);
    let n = tokio::time::timeout(WAIT, third.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
