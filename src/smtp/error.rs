//! Why a session could not do what the client asked. Every failure the session answers goes
//! through [`Reply::for_error`](super::reply::Reply::for_error), which reveals nothing internal;
//! the cause goes to the log ([`SessionError::log`]) inside the session's span, which carries
//! `session_id` and `peer`.

use std::time::Duration;

use smtp_proto::Error as ParseError;

use crate::store::StoreError;

/// A failure inside one SMTP session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store could not answer a suppression lookup or keep an accepted message.
    #[error("store failed during {during}: {source}")]
    Store {
        /// The step that failed, for the log: `suppression lookup`, `enqueue`, `flush`.
        during: &'static str,
        #[source]
        source: StoreError,
    },
    /// Reading from or writing to the client failed: the connection is gone.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The client did not finish what it was sending in time: a command line within
    /// `smtp.command_timeout` of the previous reply, message data within its deadline
    /// (`smtp.data_timeout`, extended by what arrives at `smtp.min_data_rate`), or it did
    /// not read a reply within `smtp.command_timeout`.
    #[error("{during} deadline of {limit:?} exceeded")]
    Timeout {
        /// What quell was waiting for: `command`, `data`, `reply`.
        during: &'static str,
        /// The configured limit that ran out.
        limit: Duration,
    },
    /// More than `smtp.junk_command_limit` NOOP/RSET/VRFY/unknown/unparsable commands since
    /// the session started or last had a message accepted.
    #[error("more than {limit} junk commands")]
    TooManyJunkCommands { limit: usize },
    /// A MAIL or RCPT parameter of an extension quell does not offer (RFC 5321 §4.1.1.11:
    /// 555); SMTPUTF8 (RFC 6531) has its own reply.
    #[error("parameter not offered: {0}")]
    UnsupportedParameter(String),
    /// An address in MAIL or RCPT that is not ASCII — invalid UTF-8 included. Without
    /// SMTPUTF8 (not offered) a mailbox is ASCII (RFC 5321 §4.1.2, RFC 6531 §3.2).
    #[error("{0} address is not ASCII")]
    NotAscii(AddressRole),
    /// A command line longer than RFC 5321 §4.5.3.1.4 allows (or than smtp-proto reads).
    #[error("command line too long")]
    LineTooLong,
    /// The message, or the size announced with `MAIL FROM … SIZE=` (RFC 1870), exceeds
    /// `smtp.max_message_size`.
    #[error("message too large")]
    MessageTooLarge,
    /// The message's header section did not end within the bytes a session keeps in memory
    /// (the tag headers are read and removed there).
    #[error("header section longer than {limit} bytes")]
    HeaderTooLarge { limit: usize },
    /// A command line smtp-proto could not parse.
    #[error("unparsable command: {0}")]
    Syntax(ParseError),
}

/// Which address of the envelope an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRole {
    /// `MAIL FROM` (RFC 3463 5.1.7).
    Sender,
    /// `RCPT TO` (RFC 3463 5.1.3).
    Recipient,
}

impl std::fmt::Display for AddressRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressRole::Sender => "sender",
            AddressRole::Recipient => "recipient",
        })
    }
}

impl SessionError {
    /// A store failure at step `during`, for `map_err`.
    pub fn store(during: &'static str) -> impl FnOnce(StoreError) -> SessionError {
        move |source| SessionError::Store { during, source }
    }

    /// Whether the client may succeed by trying the same thing again later (its reply is a
    /// 4xx): our store or the connection failed, not the client's request.
    pub fn is_transient(&self) -> bool {
        match self {
            // A 421 closes the connection; the client may come back.
            SessionError::Store { .. }
            | SessionError::Io(_)
            | SessionError::Timeout { .. }
            | SessionError::TooManyJunkCommands { .. } => true,
            SessionError::LineTooLong
            | SessionError::MessageTooLarge
            | SessionError::HeaderTooLarge { .. }
            | SessionError::Syntax(_)
            | SessionError::UnsupportedParameter(_)
            | SessionError::NotAscii(_) => false,
        }
    }

    /// Logs the cause in the current span: our own failures as errors, the client's as
    /// information, a connection that went away as debug.
    pub fn log(&self) {
        match self {
            SessionError::Store { during, source } if source.is_full() => {
                tracing::warn!(error = %source, during, "storage full or below its floor; answered 452");
            }
            SessionError::Store { during, source } => {
                tracing::error!(error = %source, during, "store failure; answered 451");
            }
            SessionError::Io(e) => tracing::debug!(error = %e, "connection error"),
            SessionError::Timeout { during, limit } => {
                tracing::info!(during, ?limit, "deadline exceeded; closing");
            }
            SessionError::TooManyJunkCommands { limit } => {
                tracing::info!(limit, "too many junk commands; closing");
            }
            SessionError::UnsupportedParameter(param) => {
                tracing::debug!(param = %param, "parameter not offered");
            }
            SessionError::NotAscii(role) => tracing::debug!(%role, "address not ASCII"),
            SessionError::LineTooLong => tracing::debug!("command line too long"),
            SessionError::MessageTooLarge => {
                tracing::info!(outcome = "refused", reason = "too big", "message");
            }
            SessionError::HeaderTooLarge { limit } => {
                tracing::info!(
                    outcome = "refused",
                    reason = "header too large",
                    limit,
                    "message"
                );
            }
            SessionError::Syntax(e) => tracing::debug!(error = %e, "unparsable command"),
        }
    }
}
