//! A line-oriented SMTP client for tests: sends commands, reads whole (multi-line) replies.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    pub greeting: String,
}

impl SmtpClient {
    pub async fn connect(addr: SocketAddr) -> SmtpClient {
        let stream = TcpStream::connect(addr).await.expect("connect to quell");
        SmtpClient::from_stream(stream).await
    }

    /// Connects from a chosen local address (e.g. 127.0.0.2, outside `relay_networks`).
    pub async fn connect_from(local: &str, addr: SocketAddr) -> SmtpClient {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{local}:0").parse().unwrap())
            .expect("bind client");
        let stream = socket.connect(addr).await.expect("connect to quell");
        SmtpClient::from_stream(stream).await
    }

    async fn from_stream(stream: TcpStream) -> SmtpClient {
        let (r, w) = stream.into_split();
        let mut c = SmtpClient {
            reader: BufReader::new(r),
            writer: w,
            greeting: String::new(),
        };
        c.greeting = c.reply().await;
        c
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Reads one whole reply ("250-a\r\n250 b\r\n"); empty at EOF.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
                .await
                .expect("reply within 30 s")
                .expect("read");
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends a command and asserts the reply starts with `code`.
    pub async fn expect(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with(code), "{line:?}: expected {code}, got {r:?}");
        r
    }

    /// Sends a message body (dot-stuffed here) and the end marker; returns the reply.
    pub async fn data(&mut self, body: &str) -> String {
        let mut out = String::new();
        for line in body.split_inclusive("\r\n") {
            if line.starts_with('.') {
                out.push('.');
            }
            out.push_str(line);
        }
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        self.send_raw(out.as_bytes()).await;
        self.reply().await
    }
}
