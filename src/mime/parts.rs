//! Which parts a rewrite may touch: the `text/plain` and `text/html` bodies a reader sees,
//! located with mail-parser's byte offsets so the rewrite can splice instead of rebuilding
//! the message (RFC 2045, RFC 2046).
//!
//! Left alone: attachments (`Content-Disposition: attachment`, RFC 2183), other text types,
//! parts of an attached message (`message/rfc822`: somebody else's mail), bodies mail-parser
//! could not decode (`is_encoding_problem`: bad encoding, or cut off before the closing
//! boundary), unknown transfer encodings (RFC 2045 §6.4 says to treat those as opaque), and
//! charsets in which ASCII text is not ASCII bytes (UTF-16/32, UTF-7): the tag would not be
//! found in them and a link written into them would be garbage.

use std::ops::Range;

use mail_parser::{Encoding, MessageParser, MessagePart, MimeHeaders, PartType};

use super::transfer::TransferEncoding;
use super::MimeError;

/// The two kinds of text a rewrite handles; HTML needs its URLs escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextKind {
    Plain,
    Html,
}

/// One body a rewrite may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TextPart {
    pub(super) kind: TextKind,
    pub(super) encoding: TransferEncoding,
    /// The encoded body in the message, without the line end before the next boundary.
    pub(super) body: Range<usize>,
}

/// The text parts of a message, in message order, and every multipart boundary in it.
#[derive(Debug, Default)]
pub(super) struct TextParts {
    pub(super) parts: Vec<TextPart>,
    /// `--` followed by each boundary parameter: none of these may appear in rewritten text.
    pub(super) delimiters: Vec<Vec<u8>>,
}

/// Charsets whose text is not ASCII-compatible bytes, by lowercase name prefix.
const NOT_ASCII_COMPATIBLE: [&str; 5] = ["utf-16", "utf-32", "ucs-2", "ucs-4", "utf-7"];

/// Parses `message` and lists the parts a rewrite may change.
pub(super) fn text_parts(message: &[u8]) -> Result<TextParts, MimeError> {
    let parser = MessageParser::new()
        .with_mime_headers()
        .default_header_ignore();
    // A panic inside mail-parser must not take a delivery worker down with it.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(message)))
        .map_err(|_| MimeError::ParserPanicked)?
        .ok_or(MimeError::NoHeaders)?;
    let mut found = TextParts::default();
    for part in &parsed.parts {
        if let PartType::Multipart(_) = part.body {
            if let Some(boundary) = part.content_type().and_then(|ct| ct.attribute("boundary")) {
                found.delimiters.push([b"--", boundary.as_bytes()].concat());
            }
            continue;
        }
        let Some((kind, encoding)) = classify(message, part) else {
            continue;
        };
        let body = checked_range(message, part, found.parts.last())?;
        found.parts.push(TextPart {
            kind,
            encoding,
            body,
        });
    }
    Ok(found)
}

/// What kind of text `part` is and how it is encoded, or `None` when it is to be left alone.
fn classify(message: &[u8], part: &MessagePart<'_>) -> Option<(TextKind, TransferEncoding)> {
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) || part.is_encoding_problem {
        return None;
    }
    if part
        .content_disposition()
        .is_some_and(|d| d.is_attachment())
    {
        return None;
    }
    // No Content-Type means text/plain; us-ascii (RFC 2045 §5.2).
    let kind = match part.content_type() {
        None => TextKind::Plain,
        Some(ct) if ct.ctype().eq_ignore_ascii_case("text") => match ct.subtype() {
            Some(s) if s.eq_ignore_ascii_case("plain") => TextKind::Plain,
            Some(s) if s.eq_ignore_ascii_case("html") => TextKind::Html,
            _ => return None,
        },
        Some(_) => return None,
    };
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    if charset.is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        NOT_ASCII_COMPATIBLE.iter().any(|p| c.starts_with(p))
    }) {
        return None;
    }
    let encoding = transfer_encoding(message, part)?;
    Some((kind, encoding))
}

/// The part's transfer encoding read from the raw header bytes, and only when mail-parser
/// (whose offsets we splice at) read it the same way. mail-parser decodes RFC 2047 encoded
/// words even here, where RFC 2047 §5 does not allow them; such a part is left alone.
fn transfer_encoding(message: &[u8], part: &MessagePart<'_>) -> Option<TransferEncoding> {
    let header = part
        .headers
        .iter()
        .rfind(|h| h.name == mail_parser::HeaderName::ContentTransferEncoding);
    let ours = match header {
        None => TransferEncoding::Identity,
        Some(h) => {
            let raw = message.get(h.offset_start as usize..h.offset_end as usize)?;
            match raw.trim_ascii().to_ascii_lowercase().as_slice() {
                b"7bit" | b"8bit" | b"binary" => TransferEncoding::Identity,
                b"quoted-printable" => TransferEncoding::QuotedPrintable,
                b"base64" => TransferEncoding::Base64,
                _ => return None,
            }
        }
    };
    let theirs = match part.encoding {
        Encoding::None => TransferEncoding::Identity,
        Encoding::QuotedPrintable => TransferEncoding::QuotedPrintable,
        Encoding::Base64 => TransferEncoding::Base64,
    };
    (ours == theirs).then_some(ours)
}

/// The part's body range, checked to lie inside the message after the previous text part.
fn checked_range(
    message: &[u8],
    part: &MessagePart<'_>,
    previous: Option<&TextPart>,
) -> Result<Range<usize>, MimeError> {
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let after = previous.map_or(0, |p| p.body.end);
    if start < after || start > end || end > message.len() {
        return Err(MimeError::BadOffsets {
            start,
            end,
            len: message.len(),
        });
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_mail_parser_panics_on_is_refused_not_a_crash() {
        // Found by cargo fuzz: mail-parser 0.11.9 panics "Invalid part ID, could not find
        // multipart" on it.
        let message = include_bytes!("testdata/mail-parser-panic.eml");
        assert_eq!(text_parts(message).err(), Some(MimeError::ParserPanicked));
    }

    fn kinds(message: &[u8]) -> Vec<(TextKind, TransferEncoding, String)> {
        text_parts(message)
            .expect("parses")
            .parts
            .into_iter()
            .map(|p| {
                let body = String::from_utf8_lossy(&message[p.body]).into_owned();
                (p.kind, p.encoding, body)
            })
            .collect()
    }

    #[test]
    fn single_part_defaults_to_plain() {
        let msg = b"Subject: s\r\n\r\nhello\r\n";
        assert_eq!(
            kinds(msg),
            [(
                TextKind::Plain,
                TransferEncoding::Identity,
                "hello\r\n".into()
            )]
        );
    }

    #[test]
    fn skips_attachments_other_types_and_odd_charsets() {
        let msg = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>x</p>\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nfile\r\n\
--b\r\nContent-Type: text/calendar\r\n\r\ncal\r\n\
--b\r\nContent-Type: text/plain; charset=UTF-16LE\r\n\r\nw\0i\0d\0e\0\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: =?us-ascii?Q?base64?=\r\n\r\naGk=\r\n\
--b--\r\n";
        assert_eq!(
            kinds(msg),
            [(
                TextKind::Html,
                TransferEncoding::QuotedPrintable,
                "<p>x</p>".into()
            )]
        );
        assert_eq!(
            text_parts(msg).expect("parses").delimiters,
            [b"--b".to_vec()]
        );
    }

    #[test]
    fn attached_message_is_not_entered() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n--b--\r\n";
        assert!(kinds(msg).is_empty());
    }

    #[test]
    fn no_header_section_is_an_error() {
        assert_eq!(text_parts(b"").err(), Some(MimeError::NoHeaders));
    }
}
