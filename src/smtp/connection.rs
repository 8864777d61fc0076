//! The I/O driver of one session, generic over the stream so tests can use an in-memory
//! duplex and STARTTLS can swap in an encrypted stream. Replies to pipelined commands are
//! written together when the input holds no further complete command (RFC 2920 §3.1).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    let hostname = session.state.config.smtp.hostname.clone();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut lines = LineReader::default();
    let mut mode = Mode::Command;
    if greet {
        session.greeting().write_to(&mut out);
    }
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
                session.message(decoder.finish()).await.write_to(&mut out);
                continue;
            }
            let Some(line) = lines.next_line(&mut input) else {
                break;
            };
            let (reply, next) = match (line, &mode) {
                (Err(_), _) => {
                    session.auth = None;
                    (session.fail(SessionError::LineTooLong), Next::Command)
                }
                (Ok(line), Mode::Auth) => session.auth_response(&line).await,
                (Ok(line), _) => session.command(&line).await,
            };
            reply.write_to(&mut out);
            mode = match next {
                Next::Command => Mode::Command,
                Next::AuthResponse => Mode::Auth,
                Next::Data => Mode::Data(DataDecoder::new(session.max_message_size())),
                Next::StartTls => {
                    // Anything pipelined after STARTTLS is discarded (RFC 3207 §4.2).
                    write_all(stream, &mut out).await?;
                    return Ok(Exit::StartTls);
                }
                Next::Close => {
                    write_all(stream, &mut out).await?;
                    return Ok(Exit::Closed);
                }
            };
        }
        write_all(stream, &mut out).await?;

        let in_data = matches!(mode, Mode::Data(_));
        let timeout = if in_data {
            data_timeout
        } else {
            command_timeout
        };
        input.reserve(16 * 1024);
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, stream.read_buf(&mut input)) => r,
            // A message being received is finished first; otherwise leave now.
            _ = shutdown.cancelled(), if !in_data => {
                Reply::service_unavailable_shutdown(&hostname).write_to(&mut out);
                write_all(stream, &mut out).await?;
                return Ok(Exit::Closed);
            }
        };
        match read {
            Err(_elapsed) => {
                session
                    .fail(SessionError::Timeout { idle: timeout })
                    .write_to(&mut out);
                write_all(stream, &mut out).await?;
                return Ok(Exit::Closed);
            }
            Ok(Ok(0)) => return Ok(Exit::Closed),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}
