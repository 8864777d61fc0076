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
    /// The client sent nothing for `smtp.command_timeout` (or `smtp.data_timeout` in DATA).
    #[error("idle for {idle:?}")]
    Timeout { idle: Duration },
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

impl SessionError {
    /// A store failure at step `during`, for `map_err`.
    pub fn store(during: &'static str) -> impl FnOnce(StoreError) -> SessionError {
        move |source| SessionError::Store { during, source }
    }

    /// Whether the client may succeed by trying the same thing again later (its reply is a
    /// 4xx): our store or the connection failed, not the client's request.
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::Store { .. } | SessionError::Io(_) | SessionError::Timeout { .. } => true,
            SessionError::LineTooLong
            | SessionError::MessageTooLarge
            | SessionError::HeaderTooLarge { .. }
            | SessionError::Syntax(_) => false,
        }
    }

    /// Logs the cause in the current span: our own failures as errors, the client's as
    /// information, a connection that went away as debug.
    pub fn log(&self) {
        match self {
            SessionError::Store { during, source } if source.is_full() => {
                tracing::warn!(error = %source, during, "storage below its floor; answered 452");
            }
            SessionError::Store { during, source } => {
                tracing::error!(error = %source, during, "store failure; answered 451");
            }
            SessionError::Io(e) => tracing::debug!(error = %e, "connection error"),
            SessionError::Timeout { idle } => tracing::info!(?idle, "idle timeout"),
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
