//! Mandrill's automatic unsubscribe footer (SPEC §4, `unsubscribe.footer`): a message without
//! a merge tag still gets a visible link, in every text the reader might see.

use std::borrow::Cow;

use super::fields::line_ending;
use super::parts::{text_parts, TextKind};
use super::search::rfind_ci;
use super::splice::{splice, PartPatches};
use super::transfer::{Body, Edit};
use super::{html, MimeError};

/// Appends an unsubscribe footer pointing at `link` to every `text/plain` and `text/html`
/// part that is not an attachment: `Unsubscribe: <link>` on its own line after a blank line
/// in text (angle brackets delimit a URL in plain text, RFC 3986 appendix C), a paragraph
/// with an `Unsubscribe` link before `</body>` (or at the end) in HTML. Each part keeps its
/// transfer encoding; parts that cannot be decoded are left alone, as in
/// [`super::unsub::rewrite_unsub`]. The caller decides whether a footer is wanted: this does
/// not look for tags.
pub fn append_footer<'a>(message: &'a [u8], link: &str) -> Result<Cow<'a, [u8]>, MimeError> {
    let found = text_parts(message)?;
    let line_end = line_ending(message);
    let mut patched = Vec::new();
    for part in &found.parts {
        let Some(body) = Body::decode(&message[part.body.clone()], part.encoding) else {
            continue;
        };
        let text_line_end = body.text_line_end(line_end);
        let edit = match part.kind {
            TextKind::Plain => text_footer(body.text(), link, text_line_end),
            TextKind::Html => html_footer(body.text(), link, text_line_end),
        };
        patched.push(PartPatches {
            body: part.body.clone(),
            patches: body.patches(&[edit], line_end),
        });
    }
    splice(message, &patched, &found.delimiters)
}

/// The text footer, after the last line of `text` and one blank line.
fn text_footer(text: &[u8], link: &str, line_end: &[u8]) -> Edit {
    let mut footer = Vec::with_capacity(link.len() + 24);
    if !text.is_empty() {
        if !text.ends_with(b"\n") {
            footer.extend_from_slice(line_end);
        }
        footer.extend_from_slice(line_end);
    }
    footer.extend_from_slice(b"Unsubscribe: <");
    footer.extend_from_slice(link.as_bytes());
    footer.push(b'>');
    footer.extend_from_slice(line_end);
    Edit {
        range: text.len()..text.len(),
        text: footer,
    }
}

/// The HTML footer, inserted before the last `</body` so it stays inside the document, or
/// appended on a line of its own when there is none.
fn html_footer(text: &[u8], link: &str, line_end: &[u8]) -> Edit {
    let paragraph = format!("<p><a href=\"{}\">Unsubscribe</a></p>", html::escape(link));
    let mut footer = Vec::with_capacity(paragraph.len() + 4);
    let at = match rfind_ci(text, b"</body") {
        Some(at) => at,
        None => {
            if !text.is_empty() && !text.ends_with(b"\n") {
                footer.extend_from_slice(line_end);
            }
            text.len()
        }
    };
    footer.extend_from_slice(paragraph.as_bytes());
    footer.extend_from_slice(line_end);
    Edit {
        range: at..at,
        text: footer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_a_line_after_a_blank_line() {
        let msg = b"Subject: s\r\n\r\nHello";
        let out = append_footer(msg, "https://q/u/1").expect("footer");
        assert_eq!(
            &out[..],
            b"Subject: s\r\n\r\nHello\r\n\r\nUnsubscribe: <https://q/u/1>\r\n"
        );
        let msg = b"Subject: s\n\nHello\n";
        let out = append_footer(msg, "https://q/u/1").expect("footer");
        assert_eq!(
            &out[..],
            b"Subject: s\n\nHello\n\nUnsubscribe: <https://q/u/1>\n"
        );
    }

    #[test]
    fn html_footer_goes_before_the_last_body_end_tag() {
        let msg = b"Content-Type: text/html\r\n\r\n<html><BODY>x</Body></html>\r\n";
        let out = append_footer(msg, "https://q/u?a&b").expect("footer");
        assert_eq!(
            &out[..],
            &b"Content-Type: text/html\r\n\r\n<html><BODY>x<p><a href=\"https://q/u?a&amp;b\">Unsubscribe</a></p>\r\n</Body></html>\r\n"[..]
        );
    }

    #[test]
    fn html_without_body_tag_gets_it_at_the_end() {
        let msg = b"Content-Type: text/html\r\n\r\n<p>x</p>";
        let out = append_footer(msg, "L").expect("footer");
        assert_eq!(
            &out[..],
            b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n<p><a href=\"L\">Unsubscribe</a></p>\r\n"
        );
    }

    #[test]
    fn empty_input_is_not_a_message() {
        assert_eq!(append_footer(b"", "L").err(), Some(MimeError::NoHeaders));
    }

    #[test]
    fn message_without_text_parts_is_borrowed() {
        let msg =
            b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n";
        assert!(matches!(append_footer(msg, "L"), Ok(Cow::Borrowed(_))));
    }
}
