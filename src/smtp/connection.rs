//! The I/O driver of one session, generic over the stream so tests can use an in-memory
//! duplex and STARTTLS can swap in an encrypted stream. Replies to pipelined commands are
//! written together when the input holds no further complete command (RFC 2920 §3.1).
//!
//! Time limits are deadlines, not limits per read (Postfix's `smtpd_per_request_deadline`):
//! a client sending one byte every few seconds would otherwise hold the connection for ever.
//! A command line must be complete within `smtp.command_timeout` of the previous reply; a
//! reply must be written within `smtp.command_timeout`; message data starts with
//! `smtp.data_timeout` and each block read adds its size divided by `smtp.min_data_rate`,
//! never more than `data_timeout` ahead (Postfix's `smtpd_min_data_rate`). A deadline that
//! passes is answered `421 4.4.2` and the connection closed.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::codec::{DataDecoder, LineReader};
use super::data::SPILL_AT;
use super::error::SessionError;
use super::reply::Reply;
use super::session::{Next, Session};
use crate::shutdown::CancellationToken;

/// How a drive ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// The connection is over (QUIT, EOF, timeout, shutdown).
    Closed,
    /// The client asked for STARTTLS and was told to go ahead.
    StartTls,
}

enum Mode {
    Command,
    Auth,
    Data(DataDecoder),
}

/// Runs `session` over `stream` until the connection ends or switches to TLS. `greet` sends
/// the 220 greeting first (not after STARTTLS). An I/O failure on the stream ends the drive
/// with [`SessionError::Io`]: nothing can be answered on it.
pub async fn drive<S>(
    stream: &mut S,
    session: &mut Session,
    shutdown: &CancellationToken,
    greet: bool,
) -> Result<Exit, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let command_timeout = session.state.config.smtp.command_timeout;
    let data_timeout = session.state.config.smtp.data_timeout;
    let min_data_rate = session.state.config.smtp.min_data_rate;
    let hostname = session.state.config.smtp.hostname.clone();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut lines = LineReader::default();
    let mut mode = Mode::Command;
    if greet {
        session.greeting().write_to(&mut out);
    }
    // Set from each reply: the greeting (or STARTTLS's 220) is the first.
    let mut deadline = Instant::now();
    let mut answered = true;
    loop {
        // Answer everything already received.
        loop {
            if let Mode::Data(decoder) = &mut mode {
                if !decoder.feed(&mut input) {
                    if decoder.buffered() >= SPILL_AT {
                        session.spill(decoder.take()).await;
                    }
                    break;
                }
                let Mode::Data(decoder) = std::mem::replace(&mut mode, Mode::Command) else {
                    unreachable!("mode was Data")
                };
                session
                    .end_of_data(decoder.finish())
                    .await
                    .write_to(&mut out);
                answered = true;
                continue;
            }
            let Some(line) = lines.next_line(&mut input) else {
                break;
            };
            let (reply, next) = match (line, &mode) {
                (Err(_), _) => session.line_too_long(),
                (Ok(line), Mode::Auth) => session.auth_response(&line).await,
                (Ok(line), _) => session.command(&line).await,
            };
            reply.write_to(&mut out);
            answered = true;
            mode = match next {
                Next::Command => Mode::Command,
                Next::AuthResponse => Mode::Auth,
                Next::Data => Mode::Data(DataDecoder::new(session.max_message_size())),
                Next::StartTls => {
                    // Anything pipelined after STARTTLS is discarded (RFC 3207 §4.2).
                    write_all(stream, &mut out, command_timeout).await?;
                    return Ok(Exit::StartTls);
                }
                Next::Close => {
                    write_all(stream, &mut out, command_timeout).await?;
                    return Ok(Exit::Closed);
                }
            };
        }
        write_all(stream, &mut out, command_timeout).await?;

        let in_data = matches!(mode, Mode::Data(_));
        let (during, limit) = if in_data {
            ("data", data_timeout)
        } else {
            ("command", command_timeout)
        };
        if std::mem::take(&mut answered) {
            deadline = Instant::now() + limit;
        }
        input.reserve(16 * 1024);
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(&mut input)) => r,
            // A message being received is finished first; otherwise leave now.
            _ = shutdown.cancelled(), if !in_data => {
                Reply::service_unavailable_shutdown(&hostname).write_to(&mut out);
                write_all(stream, &mut out, command_timeout).await?;
                return Ok(Exit::Closed);
            }
        };
        match read {
            Err(_elapsed) => {
                session
                    .fail(SessionError::Timeout { during, limit })
                    .write_to(&mut out);
                write_all(stream, &mut out, command_timeout).await?;
                return Ok(Exit::Closed);
            }
            Ok(Ok(0)) => return Ok(Exit::Closed),
            Ok(Ok(n)) if in_data => {
                deadline = data_deadline(deadline, Instant::now(), n, min_data_rate, limit);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// The DATA deadline after `n` bytes arrived at `now`: `n / rate` seconds later, but never
/// more than `limit` (`smtp.data_timeout`) after `now`. With `rate` 0 it is `now + limit`:
/// `limit` is then the longest pause between two reads.
fn data_deadline(deadline: Instant, now: Instant, n: usize, rate: u64, limit: Duration) -> Instant {
    let cap = now + limit;
    if rate == 0 {
        return cap;
    }
    let earned = Duration::from_secs_f64(n as f64 / rate as f64);
    (deadline + earned).min(cap)
}

/// Writes and flushes `out` within `limit` (`smtp.command_timeout`): a client that does not
/// read its replies cannot hold the connection either.
async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), SessionError> {
    if out.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(out).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(written) => written?,
        Err(_elapsed) => {
            return Err(SessionError::Timeout {
                during: "reply",
                limit,
            })
        }
    }
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_earns_time_at_the_minimum_rate_up_to_the_limit() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(180);
        let start = t0 + limit;
        let s = Duration::from_secs;
        // (seconds since t0, bytes read, rate, new deadline in seconds after t0)
        let cases: &[(u64, usize, u64, f64)] = &[
            // One byte at 500 B/s earns 2 ms: a drip cannot keep the connection.
            (2, 1, 500, 180.002),
            // 50 KB earns 100 s, but never more than the limit ahead of now.
            (2, 50_000, 500, 182.0),
            (100, 10_000, 500, 200.0),
            // No rate: the limit counts from each read.
            (100, 1, 0, 280.0),
        ];
        for &(at, n, rate, want) in cases {
            let got = (data_deadline(start, t0 + s(at), n, rate, limit) - t0).as_secs_f64();
            assert!((got - want).abs() < 1e-6, "{at} {n} {rate}: {got}");
        }
    }
}
