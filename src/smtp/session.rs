//! The SMTP session state machine: one value per connection, one function per verb. It takes
//! parsed command lines and returns typed replies; the I/O lives in [`super::connection`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use smtp_proto::{Error as ParseError, Request};

use super::auth::{AuthExchange, AuthStep};
use super::codec::{TooBig, MAX_COMMAND_LINE};
use super::error::{AddressRole, SessionError};
use super::params;
use super::reply::Reply;
use crate::address;
use crate::config::OnSuppressed;
use crate::metrics::Metrics;
use crate::policy::Verdict;
use crate::state::AppState;

/// What the connection driver must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Command,
    /// Read the message: the DATA decoder takes over the input.
    Data,
    /// Read a SASL response line.
    AuthResponse,
    /// Upgrade the stream to TLS, then start over (RFC 3207 §4.2).
    StartTls,
    /// Close the connection.
    Close,
}

/// One accepted recipient of the transaction.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// Normalised address.
    pub address: String,
    /// Suppressed at RCPT under `on_suppressed = "drop"`: accepted, recorded, never forwarded.
    pub dropped: bool,
}

/// The envelope being built between MAIL and the end of DATA.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Normalised sender, empty for `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
}

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    pub(super) state: AppState,
    pub(super) peer: SocketAddr,
    pub(super) helo: Option<String>,
    pub(super) tls: bool,
    pub(super) tls_available: bool,
    pub(super) user: Option<String>,
    pub(super) transaction: Option<Transaction>,
    pub(super) auth: Option<AuthExchange>,
    /// The message being received, once it outgrew memory (see [`super::data`]).
    pub(super) spill: Option<super::data::Spill>,
    /// Junk commands since the session started or last had a message accepted.
    junk: usize,
}

impl Session {
    /// A session for a client at `peer`; `tls_available` when STARTTLS can be offered.
    pub fn new(state: AppState, peer: SocketAddr, tls_available: bool) -> Session {
        Session {
            state,
            peer,
            helo: None,
            tls: false,
            tls_available,
            user: None,
            transaction: None,
            auth: None,
            spill: None,
            junk: 0,
        }
    }

    pub fn greeting(&self) -> Reply {
        Reply::greeting(&self.state.config.smtp.hostname)
    }

    /// Called once the stream is encrypted: the session starts over (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.transaction = None;
    }

    fn auth_offered(&self) -> bool {
        self.tls && !self.state.config.smtp.users.is_empty()
    }

    fn may_relay(&self) -> bool {
        self.user.is_some() || self.state.config.smtp.in_relay_networks(self.peer.ip())
    }

    /// Handles one command line (with its line end).
    pub async fn command(&mut self, line: &[u8]) -> (Reply, Next) {
        let is_auth = line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ");
        if line.len() > MAX_COMMAND_LINE && !is_auth {
            return self.line_too_long();
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            // smtp-proto refuses a SIZE of 20 digits or more that it reads as usize::MAX: a
            // number that large is a message too large (RFC 1870), not a syntax error.
            Err(ParseError::InvalidParameter { param: "SIZE" })
                if params::declared_size(line).is_some() =>
            {
                return (self.fail(SessionError::MessageTooLarge), Next::Command);
            }
            // A MAIL or RCPT parameter smtp-proto does not know: 555, named by its keyword.
            Err(ParseError::UnsupportedParameter { param }) => {
                let keyword = params::keyword(&param);
                return (
                    self.fail(SessionError::UnsupportedParameter(keyword)),
                    Next::Command,
                );
            }
            Err(e) => {
                let reply = self.fail(SessionError::Syntax(e));
                return self.junk(reply);
            }
        };
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Mail { from } => (self.mail(&from.address, line), Next::Command),
            Request::Rcpt { to } => (self.rcpt(&to.address, line), Next::Command),
            Request::Data => self.data(),
            Request::Rset => {
                self.transaction = None;
                self.junk(Reply::ok())
            }
            Request::Noop { .. } => self.junk(Reply::ok()),
            Request::Quit => (Reply::bye(), Next::Close),
            Request::Vrfy { .. } => self.junk(Reply::vrfy()),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth_start(mechanism, &initial_response).await,
            Request::Lhlo { .. } => self.junk(Reply::unknown_command()),
            // BDAT, EXPN, HELP, ETRN, ATRN, BURL: not offered.
            _ => self.junk(Reply::not_implemented()),
        }
    }

    /// Answers a command line longer than allowed (a junk command).
    pub fn line_too_long(&mut self) -> (Reply, Next) {
        self.auth = None;
        let reply = self.fail(SessionError::LineTooLong);
        self.junk(reply)
    }

    /// Counts a junk command (NOOP, RSET, VRFY, unrecognised, unimplemented, unparsable)
    /// answered with `reply`. Past `smtp.junk_command_limit` the session is closed instead
    /// with `421 4.7.0`, as Postfix's `smtpd_junk_command_limit`: a client that sends no mail
    /// does not hold a slot forever.
    fn junk(&mut self, reply: Reply) -> (Reply, Next) {
        self.junk += 1;
        let limit = self.state.config.smtp.junk_command_limit;
        if self.junk > limit {
            (
                self.fail(SessionError::TooManyJunkCommands { limit }),
                Next::Close,
            )
        } else {
            (reply, Next::Command)
        }
    }

    /// Handles the decoded message (see [`Session::message`]); an accepted message forgives
    /// the junk commands before it (Postfix does the same).
    pub async fn end_of_data(&mut self, content: Result<Vec<u8>, TooBig>) -> Reply {
        let reply = self.message(content).await;
        if reply.is_positive() {
            self.junk = 0;
        }
        reply
    }

    fn ehlo(&mut self, host: &str, extended: bool) -> (Reply, Next) {
        self.helo = Some(host.to_string());
        self.transaction = None;
        let c = &self.state.config.smtp;
        let reply = if extended {
            Reply::ehlo(
                &c.hostname,
                host,
                c.max_message_size,
                self.tls_available && !self.tls,
                self.auth_offered(),
            )
        } else {
            Reply::helo(&c.hostname)
        };
        (reply, Next::Command)
    }

    /// MAIL FROM `from`, as parsed from `line` (whose parameters are read again here).
    fn mail(&mut self, from: &str, line: &[u8]) -> Reply {
        if self.helo.is_none() {
            return Reply::bad_sequence("send EHLO first");
        }
        if self.transaction.is_some() {
            return Reply::bad_sequence("nested MAIL command");
        }
        if !self.may_relay() && !self.state.config.smtp.users.is_empty() {
            tracing::info!(outcome = "refused", reason = "auth required", "mail from");
            return Reply::auth_required();
        }
        let params = match params::mail(line, self.auth_offered()) {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        let max = self.state.config.smtp.max_message_size;
        if params.size.is_some_and(|size| size > max as u64) {
            return self.fail(SessionError::MessageTooLarge);
        }
        // Below `storage.min_free`: 452 4.3.1 before the client sends its data.
        if let Err(e) = self.state.store.ensure_room() {
            return self.fail(SessionError::store("room check")(e));
        }
        // smtp-proto turns invalid UTF-8 into U+FFFD, which is not ASCII either.
        if !from.is_ascii() {
            return self.fail(SessionError::NotAscii(AddressRole::Sender));
        }
        let sender = if from.is_empty() {
            String::new()
        } else {
            match address::normalize(from) {
                Ok(a) => a,
                Err(_) => return Reply::bad_sender_address(),
            }
        };
        self.transaction = Some(Transaction {
            sender,
            recipients: Vec::new(),
        });
        Reply::sender_ok()
    }

    /// RCPT TO `to`, as parsed from `line`.
    fn rcpt(&mut self, to: &str, line: &[u8]) -> Reply {
        if self.transaction.is_none() {
            return Reply::bad_sequence("need MAIL before RCPT");
        }
        if !self.may_relay() {
            tracing::info!(outcome = "refused", reason = "relay denied", "rcpt");
            return Reply::relay_denied();
        }
        if let Err(e) = params::rcpt(line) {
            return self.fail(e);
        }
        if !to.is_ascii() {
            return self.fail(SessionError::NotAscii(AddressRole::Recipient));
        }
        let Some(tx) = self.transaction.as_mut() else {
            return Reply::bad_sequence("need MAIL before RCPT");
        };
        let Ok(rcpt) = address::normalize(to) else {
            return Reply::bad_address();
        };
        if tx.recipients.len() >= self.state.config.smtp.max_recipients {
            return Reply::too_many_recipients();
        }
        match self.state.policy.check(&tx.sender, &rcpt, None) {
            Ok(Verdict::Allow) => {
                tx.recipients.push(Recipient {
                    address: rcpt,
                    dropped: false,
                });
                Reply::recipient_ok()
            }
            Ok(Verdict::Suppressed { scope, reason }) => {
                Metrics::inc(&self.state.metrics.suppression_hits);
                match self.state.config.suppression.on_suppressed {
                    OnSuppressed::Reject => {
                        Metrics::inc(&self.state.metrics.recipients_rejected);
                        tracing::info!(
                            outcome = "suppressed",
                            action = "reject",
                            scope = scope.kind(),
                            reason = reason.as_str(),
                            "rcpt"
                        );
                        Reply::suppressed(&rcpt, reason.as_str())
                    }
                    OnSuppressed::Drop => {
                        tracing::info!(
                            outcome = "suppressed",
                            action = "drop",
                            scope = scope.kind(),
                            reason = reason.as_str(),
                            "rcpt"
                        );
                        tx.recipients.push(Recipient {
                            address: rcpt,
                            dropped: true,
                        });
                        Reply::recipient_ok()
                    }
                }
            }
            Err(e) => self.fail(SessionError::store("suppression lookup")(e)),
        }
    }

    fn data(&mut self) -> (Reply, Next) {
        match &self.transaction {
            None => (Reply::bad_sequence("need MAIL before DATA"), Next::Command),
            Some(tx) if tx.recipients.is_empty() => (Reply::no_valid_recipients(), Next::Command),
            Some(_) => (Reply::start_data(), Next::Data),
        }
    }

    fn starttls(&mut self) -> (Reply, Next) {
        if !self.tls_available || self.tls {
            return (Reply::tls_not_available(), Next::Command);
        }
        (Reply::ready_to_start_tls(), Next::StartTls)
    }

    async fn auth_start(&mut self, mechanism: u64, initial: &str) -> (Reply, Next) {
        if self.state.config.smtp.users.is_empty() {
            return (Reply::not_implemented(), Next::Command);
        }
        if !self.tls {
            return (Reply::auth_needs_tls(), Next::Command);
        }
        if self.user.is_some() || self.transaction.is_some() {
            return (
                Reply::bad_sequence("already authenticated or in a transaction"),
                Next::Command,
            );
        }
        match AuthExchange::start(mechanism, initial) {
            Err(reply) => (reply, Next::Command),
            Ok((exchange, step)) => {
                self.auth = Some(exchange);
                self.auth_step(step).await
            }
        }
    }

    /// Handles one SASL response line.
    pub async fn auth_response(&mut self, line: &[u8]) -> (Reply, Next) {
        let Some(exchange) = self.auth.as_mut() else {
            return (Reply::bad_sequence("no AUTH in progress"), Next::Command);
        };
        let step = exchange.respond(line);
        self.auth_step(step).await
    }

    async fn auth_step(&mut self, step: AuthStep) -> (Reply, Next) {
        match step {
            AuthStep::Challenge(c) => (Reply::auth_challenge(&c), Next::AuthResponse),
            AuthStep::Failed(reply) => {
                self.auth = None;
                (reply, Next::Command)
            }
            AuthStep::Credentials { user, password } => {
                self.auth = None;
                if super::auth::verify(&self.state.config.smtp.users, &user, &password).await {
                    tracing::info!(user = %user, "authenticated");
                    self.user = Some(user);
                    (Reply::auth_ok(), Next::Command)
                } else {
                    tracing::warn!("authentication failed");
                    (Reply::auth_failed(), Next::Command)
                }
            }
        }
    }

    /// The reply for `err`, its cause logged in the session's span.
    pub(super) fn fail(&self, err: SessionError) -> Reply {
        err.log();
        Reply::for_error(&err, &self.state.config.smtp.hostname)
    }

    /// Size limit for the DATA decoder.
    pub fn max_message_size(&self) -> usize {
        self.state.config.smtp.max_message_size
    }

    /// Counts a new connection.
    pub fn count_connection(&self) {
        self.state
            .metrics
            .smtp_connections
            .fetch_add(1, Ordering::Relaxed);
    }
}
