//! Every SMTP reply quell sends, as typed values (RFC 5321 §4.2, enhanced codes RFC 3463).
//! This is the only file with reply text in it.

use std::fmt::Write;

use smtp_proto::Error as ParseError;

use super::error::{AddressRole, SessionError};

/// One reply: code, enhanced status, text (one or more lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 3463), omitted in greetings and EHLO.
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// The bytes on the wire: `250-…` continuation lines, then `250 …`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            match self.status {
                Some(st) => {
                    let _ = write!(s, "{}{}{} {}\r\n", self.code, sep, st, line);
                }
                None => {
                    let _ = write!(s, "{}{}{}\r\n", self.code, sep, line);
                }
            }
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// The reply for a session failure: the one place an error becomes a reply. It says what
    /// the client can do (try later, shorten the line, send less) and nothing about our
    /// internals; the cause goes to the log ([`SessionError::log`]). `hostname` is named in
    /// the 421 that closes an idle connection (RFC 5321 §3.8).
    pub fn for_error(err: &SessionError, hostname: &str) -> Reply {
        match err {
            // An I/O failure on the client stream leaves nothing to answer on; were a reply
            // possible, it would be this one.
            SessionError::Store { source, .. } if source.is_full() => Reply::insufficient_storage(),
            SessionError::Store { .. } | SessionError::Io(_) => Reply::local_error(),
            SessionError::Timeout { .. } => Reply::timeout(hostname),
            SessionError::TooManyJunkCommands { .. } => Reply::too_many_junk_commands(hostname),
            SessionError::UnsupportedParameter(param) if param == "SMTPUTF8" => {
                Reply::smtputf8_not_supported()
            }
            SessionError::UnsupportedParameter(param) => Reply::parameter_not_implemented(param),
            SessionError::NotAscii(AddressRole::Sender) => Reply::sender_not_ascii(),
            SessionError::NotAscii(AddressRole::Recipient) => Reply::recipient_not_ascii(),
            SessionError::LineTooLong => Reply::line_too_long(),
            SessionError::MessageTooLarge => Reply::message_too_big(),
            SessionError::HeaderTooLarge { limit } => Reply::header_too_big(*limit),
            SessionError::Syntax(e) => match e {
                ParseError::UnknownCommand => Reply::unknown_command(),
                ParseError::InvalidSenderAddress => Reply::bad_sender_address(),
                ParseError::InvalidRecipientAddress => Reply::bad_address(),
                ParseError::SyntaxError { syntax } => Reply::syntax_error(syntax),
                ParseError::InvalidParameter { param } => Reply::bad_parameter(param),
                ParseError::UnsupportedParameter { param } => {
                    Reply::parameter_not_implemented(param)
                }
                ParseError::ResponseTooLong => Reply::line_too_long(),
                ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                    Reply::syntax_error("incomplete command")
                }
            },
        }
    }

    /// Whether this reply ends the connection (421).
    pub fn closes(&self) -> bool {
        self.code == 421
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn greeting(hostname: &str) -> Reply {
        Reply {
            code: 220,
            status: None,
            lines: vec![format!("{hostname} ESMTP quell")],
        }
    }

    /// The EHLO reply with our extensions (RFC 1870 SIZE, 6152 8BITMIME, 2920 PIPELINING,
    /// 2034 ENHANCEDSTATUSCODES, 3207 STARTTLS, 4954 AUTH).
    pub fn ehlo(
        hostname: &str,
        peer_name: &str,
        max_size: usize,
        starttls: bool,
        auth: bool,
    ) -> Reply {
        let mut lines = vec![
            format!("{hostname} greets {peer_name}"),
            format!("SIZE {max_size}"),
            "8BITMIME".to_string(),
            "PIPELINING".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if starttls {
            lines.push("STARTTLS".to_string());
        }
        if auth {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        Reply {
            code: 250,
            status: None,
            lines,
        }
    }

    pub fn helo(hostname: &str) -> Reply {
        Reply {
            code: 250,
            status: None,
            lines: vec![hostname.to_string()],
        }
    }

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }

    pub fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0", "Ok")
    }

    pub fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5", "Ok")
    }

    pub fn queued(id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
    }

    pub fn vrfy() -> Reply {
        Reply::new(252, "2.5.0", "Cannot VRFY user, but will accept message")
    }

    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }

    pub fn start_data() -> Reply {
        Reply {
            code: 354,
            status: None,
            lines: vec!["End data with <CR><LF>.<CR><LF>".to_string()],
        }
    }

    pub fn ready_to_start_tls() -> Reply {
        Reply::new(220, "2.0.0", "Ready to start TLS")
    }

    pub fn auth_challenge(challenge_b64: &str) -> Reply {
        Reply {
            code: 334,
            status: None,
            lines: vec![challenge_b64.to_string()],
        }
    }

    pub fn auth_ok() -> Reply {
        Reply::new(235, "2.7.0", "Authentication successful")
    }

    pub fn service_unavailable_shutdown(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, closing connection"),
        )
    }

    pub fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Too many connections, try again later"),
        )
    }

    /// One address holds `smtp.max_connections_per_ip` connections already.
    pub fn too_many_connections_from_address(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Too many connections from your address"),
        )
    }

    /// A deadline ran out (Postfix's wording); the connection is closed.
    fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }

    fn too_many_junk_commands(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Too many junk commands, closing connection"),
        )
    }

    /// RFC 6531 is not offered, so its MAIL parameter is refused like any other not
    /// advertised (RFC 5321 §4.1.1.11).
    fn smtputf8_not_supported() -> Reply {
        Reply::new(555, "5.5.4", "SMTPUTF8 not supported")
    }

    fn sender_not_ascii() -> Reply {
        Reply::new(
            501,
            "5.1.7",
            "Sender address must be ASCII (SMTPUTF8 not supported)",
        )
    }

    fn recipient_not_ascii() -> Reply {
        Reply::new(
            501,
            "5.1.3",
            "Recipient address must be ASCII (SMTPUTF8 not supported)",
        )
    }

    /// The store's disk is below `storage.min_free` (RFC 3463 4.3.1): a temporary refusal the
    /// client retries, given at MAIL before it sends the data.
    fn insufficient_storage() -> Reply {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    }

    fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }

    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Too many recipients")
    }

    fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }

    fn syntax_error(what: &str) -> Reply {
        Reply::new(500, "5.5.2", format!("Syntax error: {what}"))
    }

    pub fn unknown_command() -> Reply {
        Reply::new(500, "5.5.1", "Command unrecognized")
    }

    pub fn not_implemented() -> Reply {
        Reply::new(502, "5.5.1", "Command not implemented")
    }

    pub fn bad_sequence(what: &str) -> Reply {
        Reply::new(503, "5.5.1", format!("Bad sequence of commands: {what}"))
    }

    /// A MAIL or RCPT parameter that is not recognised or not offered (RFC 5321 §4.1.1.11).
    fn parameter_not_implemented(param: &str) -> Reply {
        Reply::new(555, "5.5.4", format!("Parameter not supported: {param}"))
    }

    fn bad_parameter(what: &str) -> Reply {
        Reply::new(501, "5.5.4", format!("Invalid parameter: {what}"))
    }

    pub fn bad_address() -> Reply {
        Reply::new(501, "5.1.3", "Bad address syntax")
    }

    pub fn bad_sender_address() -> Reply {
        Reply::new(501, "5.1.7", "Bad sender address syntax")
    }

    pub fn auth_mechanism_unsupported() -> Reply {
        Reply::new(504, "5.5.4", "Unrecognized authentication type")
    }

    pub fn auth_cancelled() -> Reply {
        Reply::new(501, "5.0.0", "Authentication cancelled")
    }

    pub fn auth_malformed() -> Reply {
        Reply::new(501, "5.5.2", "Cannot decode AUTH response")
    }

    pub fn auth_failed() -> Reply {
        Reply::new(535, "5.7.8", "Authentication credentials invalid")
    }

    pub fn auth_needs_tls() -> Reply {
        Reply::new(
            538,
            "5.7.11",
            "Encryption required for requested authentication mechanism",
        )
    }

    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "Authentication required")
    }

    pub fn tls_not_available() -> Reply {
        Reply::new(454, "4.7.0", "TLS not available")
    }

    pub fn relay_denied() -> Reply {
        Reply::new(554, "5.7.1", "Relay access denied")
    }

    pub fn suppressed(rcpt: &str, reason: &str) -> Reply {
        Reply::new(
            550,
            "5.7.1",
            format!("<{rcpt}>: recipient suppressed ({reason})"),
        )
    }

    fn message_too_big() -> Reply {
        Reply::new(
            552,
            "5.3.4",
            "Message size exceeds fixed maximum message size",
        )
    }

    fn header_too_big(limit: usize) -> Reply {
        Reply::new(
            552,
            "5.3.4",
            format!("Header section exceeds {} KiB", limit / 1024),
        )
    }

    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1", "No valid recipients")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &Reply) -> String {
        let mut v = Vec::new();
        r.write_to(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn single_and_multiline() {
        assert_eq!(
            bytes(&Reply::queued("ABC")),
            "250 2.0.0 Ok: queued as ABC\r\n"
        );
        assert_eq!(
            bytes(&Reply::ehlo("q", "c", 10, false, false)),
            "250-q greets c\r\n250-SIZE 10\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
        );
        assert_eq!(bytes(&Reply::greeting("q")), "220 q ESMTP quell\r\n");
        assert!(Reply::timeout("q").closes());
    }

    #[test]
    fn session_errors_map_to_replies_that_reveal_nothing_internal() {
        let store = || SessionError::Store {
            during: "flush",
            source: crate::store::StoreError::Io(std::io::Error::other("/var/lib/quell: EIO")),
        };
        let cases: Vec<(SessionError, &str)> = vec![
            (
                store(),
                "451 4.3.0 Local error in processing, try again later\r\n",
            ),
            (
                SessionError::Io(std::io::ErrorKind::BrokenPipe.into()),
                "451 4.3.0 Local error in processing, try again later\r\n",
            ),
            (
                SessionError::Timeout {
                    during: "command",
                    limit: std::time::Duration::from_secs(300),
                },
                "421 4.4.2 q Error: timeout exceeded\r\n",
            ),
            (
                SessionError::TooManyJunkCommands { limit: 100 },
                "421 4.7.0 q Too many junk commands, closing connection\r\n",
            ),
            (
                SessionError::UnsupportedParameter("SMTPUTF8".into()),
                "555 5.5.4 SMTPUTF8 not supported\r\n",
            ),
            (
                SessionError::UnsupportedParameter("REQUIRETLS".into()),
                "555 5.5.4 Parameter not supported: REQUIRETLS\r\n",
            ),
            (
                SessionError::NotAscii(AddressRole::Sender),
                "501 5.1.7 Sender address must be ASCII (SMTPUTF8 not supported)\r\n",
            ),
            (
                SessionError::NotAscii(AddressRole::Recipient),
                "501 5.1.3 Recipient address must be ASCII (SMTPUTF8 not supported)\r\n",
            ),
            (SessionError::LineTooLong, "500 5.5.2 Line too long\r\n"),
            (
                SessionError::MessageTooLarge,
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            ),
            (
                SessionError::HeaderTooLarge { limit: 256 * 1024 },
                "552 5.3.4 Header section exceeds 256 KiB\r\n",
            ),
            (
                SessionError::Syntax(ParseError::UnknownCommand),
                "500 5.5.1 Command unrecognized\r\n",
            ),
            (
                SessionError::Syntax(ParseError::ResponseTooLong),
                "500 5.5.2 Line too long\r\n",
            ),
            (
                SessionError::Syntax(ParseError::SyntaxError {
                    syntax: "MAIL FROM:<address>",
                }),
                "500 5.5.2 Syntax error: MAIL FROM:<address>\r\n",
            ),
            (
                SessionError::Syntax(ParseError::InvalidParameter { param: "SIZE" }),
                "501 5.5.4 Invalid parameter: SIZE\r\n",
            ),
            (
                SessionError::Syntax(ParseError::UnsupportedParameter {
                    param: "FOO".into(),
                }),
                "555 5.5.4 Parameter not supported: FOO\r\n",
            ),
            (
                SessionError::Syntax(ParseError::InvalidSenderAddress),
                "501 5.1.7 Bad sender address syntax\r\n",
            ),
            (
                SessionError::Syntax(ParseError::InvalidRecipientAddress),
                "501 5.1.3 Bad address syntax\r\n",
            ),
            (
                SessionError::Syntax(ParseError::NeedsMoreData { bytes_left: 1 }),
                "500 5.5.2 Syntax error: incomplete command\r\n",
            ),
        ];
        for (err, want) in cases {
            let reply = Reply::for_error(&err, "q");
            assert_eq!(bytes(&reply), want, "{err:?}");
            // A transient failure is a 4xx: the client keeps the message and tries later.
            assert_eq!(err.is_transient(), reply.code / 100 == 4, "{err:?}");
        }
        // The cause stays in the log.
        let text = bytes(&Reply::for_error(&store(), "q"));
        assert!(!text.contains("EIO") && !text.contains("flush"), "{text}");
    }
}
