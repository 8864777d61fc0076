//! MAIL and RCPT parameters (RFC 5321 §4.1.1.11), read from the command line's bytes after
//! smtp-proto has parsed it. quell takes only the parameters of extensions it advertises —
//! `SIZE` (RFC 1870), `BODY=7BIT` and `BODY=8BITMIME` (RFC 6152), and `AUTH=` (RFC 4954 §5)
//! when AUTH is offered — and answers any other with 555 (RFC 5321 §3.3: a server does not
//! accept a parameter of an extension it did not advertise). `SMTPUTF8` is one of those: quell
//! does not implement RFC 6531, so it must not take mail that needs it.
//!
//! `SIZE` is read here rather than from smtp-proto 0.2.5, which reads numbers of more than 19
//! digits wrongly: `SIZE=99999999999999999999999` came out as 999 and the MAIL got 250.

use smtp_proto::Error as ParseError;

use super::error::SessionError;

/// The parameters of a MAIL line, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailParams {
    /// The size declared with `SIZE=`, exactly; `u64::MAX` for a number past it.
    pub size: Option<u64>,
}

/// Checks the parameters of a MAIL `line`; `auth_offered` when the session advertised AUTH
/// (and so must take `AUTH=`).
pub fn mail(line: &[u8], auth_offered: bool) -> Result<MailParams, SessionError> {
    let mut params = MailParams::default();
    for (keyword, value) in parameters(line)? {
        match (keyword.as_str(), value) {
            ("SIZE", Some(v)) => params.size = Some(size(v)?),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case(b"7BIT") => {}
            ("BODY", Some(v)) if v.eq_ignore_ascii_case(b"8BITMIME") => {}
            ("AUTH", Some(_)) if auth_offered => {}
            ("BODY", Some(v)) if v.eq_ignore_ascii_case(b"BINARYMIME") => {
                return Err(SessionError::UnsupportedParameter("BODY=BINARYMIME".into()));
            }
            _ => return Err(SessionError::UnsupportedParameter(keyword)),
        }
    }
    Ok(params)
}

/// Checks the parameters of a RCPT `line`: quell offers none (no DSN, RFC 3461).
pub fn rcpt(line: &[u8]) -> Result<(), SessionError> {
    match parameters(line)?.into_iter().next() {
        Some((keyword, _)) => Err(SessionError::UnsupportedParameter(keyword)),
        None => Ok(()),
    }
}

/// The `SIZE=` of a MAIL `line`, when it is a number (saturating at `u64::MAX`): a size too
/// large for smtp-proto to read is still a size too large to accept (552, not 501).
pub fn declared_size(line: &[u8]) -> Option<u64> {
    parameters(line)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "SIZE")
        .and_then(|(_, v)| size(v?).ok())
}

/// The keyword of a `keyword[=value]` parameter as a reply may name it: uppercased, and only
/// when it is an esmtp-keyword (RFC 5321 §4.1.2), so a reply never echoes arbitrary bytes.
pub fn keyword(param: &str) -> String {
    let keyword = param.split('=').next().unwrap_or_default();
    if is_keyword(keyword.as_bytes()) {
        keyword.to_ascii_uppercase()
    } else {
        "(unrecognised)".to_string()
    }
}

fn is_keyword(k: &[u8]) -> bool {
    k.first().is_some_and(u8::is_ascii_alphanumeric)
        && k.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A SIZE value: digits only.
fn size(value: &[u8]) -> Result<u64, SessionError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(SessionError::Syntax(ParseError::InvalidParameter {
            param: "SIZE",
        }));
    }
    Ok(value.iter().fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX)
    }))
}

/// One `keyword[=value]` parameter: the keyword uppercased, the value as sent.
type Parameter<'a> = (String, Option<&'a [u8]>);

/// The `keyword[=value]` parameters after the path of a MAIL or RCPT line, keywords
/// uppercased. A keyword that is not an esmtp-keyword (RFC 5321 §4.1.2) is a syntax error, so
/// a reply never echoes arbitrary bytes.
fn parameters(line: &[u8]) -> Result<Vec<Parameter<'_>>, SessionError> {
    after_path(line)
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .map(|token| {
            let (keyword, value) = match token.iter().position(|&b| b == b'=') {
                Some(i) => (&token[..i], Some(&token[i + 1..])),
                None => (token, None),
            };
            if !is_keyword(keyword) {
                return Err(SessionError::Syntax(ParseError::SyntaxError {
                    syntax: "parameters: keyword[=value] ...",
                }));
            }
            Ok((String::from_utf8_lossy(keyword).to_ascii_uppercase(), value))
        })
        .collect()
}

/// The bytes after the `>` that closes the path (one inside a quoted local part does not).
fn after_path(line: &[u8]) -> &[u8] {
    let Some(open) = line.iter().position(|&b| b == b'<') else {
        return &[];
    };
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in line.iter().enumerate().skip(open + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return &line[i + 1..],
            _ => {}
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<impl std::fmt::Debug, SessionError>) -> String {
        match r {
            Err(SessionError::UnsupportedParameter(p)) => p,
            Err(e) => format!("error: {e}"),
            Ok(v) => format!("ok: {v:?}"),
        }
    }

    #[test]
    fn mail_parameters_table() {
        // (line, AUTH offered, the SIZE read or the error's text)
        type Case<'a> = (&'a str, bool, Result<Option<u64>, &'a str>);
        let cases: &[Case] = &[
            ("MAIL FROM:<a@b>\r\n", false, Ok(None)),
            ("MAIL FROM:<a@b> SIZE=1000\r\n", false, Ok(Some(1000))),
            (
                "MAIL FROM:<a@b> size=000000000000000000000000001000 body=8bitmime\r\n",
                false,
                Ok(Some(1000)),
            ),
            (
                "MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n",
                false,
                Ok(Some(u64::MAX)),
            ),
            (
                "MAIL FROM:<a@b> SIZE=18446744073709551615\r\n",
                false,
                Ok(Some(u64::MAX)),
            ),
            (
                "MAIL FROM:<a@b> SIZE=18446744073709551616\r\n",
                false,
                Ok(Some(u64::MAX)),
            ),
            ("MAIL FROM:<a@b> BODY=7BIT\r\n", false, Ok(None)),
            ("MAIL FROM:<> AUTH=<>\r\n", true, Ok(None)),
            ("MAIL FROM:<> AUTH=<>\r\n", false, Err("AUTH")),
            ("MAIL FROM:<a@b> SMTPUTF8\r\n", false, Err("SMTPUTF8")),
            ("MAIL FROM:<a@b> smtputf8\r\n", false, Err("SMTPUTF8")),
            ("MAIL FROM:<a@b> REQUIRETLS\r\n", false, Err("REQUIRETLS")),
            ("MAIL FROM:<a@b> RET=HDRS\r\n", false, Err("RET")),
            (
                "MAIL FROM:<a@b> MT-PRIORITY=0\r\n",
                false,
                Err("MT-PRIORITY"),
            ),
            (
                "MAIL FROM:<a@b> BODY=BINARYMIME\r\n",
                false,
                Err("BODY=BINARYMIME"),
            ),
            // A `>` inside a quoted local part does not end the path.
            (
                "MAIL FROM:<\"x> SMTPUTF8\"@b> SIZE=5\r\n",
                false,
                Ok(Some(5)),
            ),
            ("MAIL FROM:<\"x\\\"> y\"@b> FOO\r\n", false, Err("FOO")),
        ];
        for (line, auth, want) in cases {
            let got = mail(line.as_bytes(), *auth);
            match want {
                Ok(size) => assert_eq!(
                    got.as_ref().ok(),
                    Some(&MailParams { size: *size }),
                    "{line:?}: {got:?}"
                ),
                Err(param) => assert_eq!(refused(got), *param, "{line:?}"),
            }
        }
        assert!(matches!(
            mail(b"MAIL FROM:<a@b> SIZE=12x\r\n", false),
            Err(SessionError::Syntax(ParseError::InvalidParameter {
                param: "SIZE"
            }))
        ));
        assert!(matches!(
            mail("MAIL FROM:<a@b> \u{e9}T\u{e9}=1\r\n".as_bytes(), false),
            Err(SessionError::Syntax(ParseError::SyntaxError { .. }))
        ));
    }

    #[test]
    fn replies_name_a_keyword_never_arbitrary_bytes() {
        assert_eq!(keyword("X-UNKNOWN=1"), "X-UNKNOWN");
        assert_eq!(keyword("smtputf8"), "SMTPUTF8");
        assert_eq!(keyword("\u{fffd}\u{fffd}=x"), "(unrecognised)");
        assert_eq!(keyword(""), "(unrecognised)");
    }

    #[test]
    fn rcpt_takes_no_parameters() {
        assert!(rcpt(b"RCPT TO:<a@b>\r\n").is_ok());
        assert!(rcpt(b"RCPT TO:<a@b>  \r\n").is_ok());
        assert_eq!(refused(rcpt(b"RCPT TO:<a@b> NOTIFY=NEVER\r\n")), "NOTIFY");
        assert_eq!(
            refused(rcpt(b"RCPT TO:<a@b> orcpt=rfc822;x@y\r\n")),
            "ORCPT"
        );
    }

    #[test]
    fn declared_size_reads_any_length() {
        assert_eq!(declared_size(b"MAIL FROM:<a@b> SIZE=42\r\n"), Some(42));
        assert_eq!(
            declared_size(b"MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n"),
            Some(u64::MAX)
        );
        assert_eq!(declared_size(b"MAIL FROM:<a@b> SIZE=abc\r\n"), None);
        assert_eq!(declared_size(b"MAIL FROM:<a@b>\r\n"), None);
    }
}
