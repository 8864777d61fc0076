//! The SMTP listener (RFC 5321) applications submit to.
//!
//! | file | concept |
//! |---|---|
//! | [`codec`] | sans-IO command lines and DATA stream (bounded, smuggling-safe) |
//! | [`reply`] | every reply as a typed value |
//! | [`error`] | the session's failures, answered through `Reply::for_error` |
//! | [`session`] | the state machine, one function per verb, the junk-command limit |
//! | [`params`] | MAIL and RCPT parameters: only those advertised, SIZE read exactly |
//! | [`data`] | the end of DATA: tags, trace header, durable enqueue |
//! | [`auth`] | SASL PLAIN/LOGIN against argon2 hashes |
//! | [`connection`] | the I/O driver of one session, generic over the stream; deadlines |
//! | [`listener`] | accept loop, connection caps (total, reserved, per address), STARTTLS upgrade |

pub mod auth;
pub mod codec;
pub mod connection;
pub mod data;
pub mod error;
pub mod listener;
pub mod params;
pub mod reply;
pub mod session;

pub use listener::serve;
