//! Unsubscribe merge tags (SPEC §4): `*|UNSUB|*` and `*|UNSUB:url|*` in the text a reader sees
//! become working links.
//!
//! A tag counts in a `text/plain` or `text/html` part that is not an attachment, at any
//! multipart depth, in any of 7bit, 8bit, binary, quoted-printable (also when a soft line
//! break splits the tag) or base64. The part is decoded, the tags replaced, and the part
//! re-encoded in its own transfer encoding and charset (bytes, never transcoded); only that
//! body's changed bytes are spliced into the message.
//!
//! Outcomes on malformed input, which never panics: a part that cannot be decoded (bad
//! base64, a part mail-parser flags because its closing boundary is missing) is left as it
//! was and the other parts are still rewritten; [`has_unsub_tag`] does not count tags in such
//! parts. [`MimeError`] is returned only for the whole message: no header section, offsets
//! that do not fit, or a link that would contain a multipart boundary.

use std::borrow::Cow;

use super::fields::line_ending;
use super::merge_tag::{may_contain_tag, tags, Tag};
use super::parts::{text_parts, TextKind, TextPart};
use super::splice::{splice, PartPatches};
use super::transfer::{Body, Edit};
use super::{html, MimeError};

/// The first unsubscribe tag of a message: what the `List-Unsubscribe` link's token records
/// as the page to send the reader back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubTag {
    /// The URL of `*|UNSUB:url|*` (HTML character references resolved when it came from an
    /// HTML part); `None` for a bare `*|UNSUB|*`.
    pub url: Option<String>,
}

/// Whether the message has an unsubscribe tag a reader would see: decides between rewriting
/// tags and adding a footer, and whether `list_unsubscribe = "auto"` adds the headers.
pub fn has_unsub_tag(message: &[u8]) -> bool {
    first_unsub_tag(message).is_some()
}

/// The first tag in message order (as [`rewrite_unsub`] meets them), or `None` when there
/// is none or the message cannot be parsed.
pub fn first_unsub_tag(message: &[u8]) -> Option<UnsubTag> {
    if !may_contain_tag(message) {
        return None;
    }
    let found = text_parts(message).ok()?;
    found.parts.iter().find_map(|part| {
        let body = Body::decode(&message[part.body.clone()], part.encoding)?;
        let tag = tags(body.text()).next()?;
        Some(UnsubTag {
            url: tag_url(body.text(), &tag, part.kind),
        })
    })
}

/// Replaces every tag with `link(url)`, where `url` is the tag's URL (`None` for the bare
/// tag), unescaped when the tag is in HTML; the returned link is HTML-escaped where it is
/// written into HTML and written as is into plain text. `link` is called once per tag in
/// message order. Borrowed when no tag was found.
pub fn rewrite_unsub<'a>(
    message: &'a [u8],
    link: &mut dyn FnMut(Option<&str>) -> String,
) -> Result<Cow<'a, [u8]>, MimeError> {
    if !may_contain_tag(message) {
        return Ok(Cow::Borrowed(message));
    }
    let found = text_parts(message)?;
    let line_end = line_ending(message);
    let mut patched = Vec::new();
    for part in &found.parts {
        if let Some(patches) = rewrite_part(message, part, line_end, link) {
            patched.push(patches);
        }
    }
    splice(message, &patched, &found.delimiters)
}

/// The patches that replace the tags of one part, or `None` when it has none or cannot be
/// decoded.
fn rewrite_part(
    message: &[u8],
    part: &TextPart,
    line_end: &[u8],
    link: &mut dyn FnMut(Option<&str>) -> String,
) -> Option<PartPatches> {
    let body = Body::decode(&message[part.body.clone()], part.encoding)?;
    let text = body.text();
    let edits: Vec<Edit> = tags(text)
        .map(|tag| {
            let written = link(tag_url(text, &tag, part.kind).as_deref());
            let written = match part.kind {
                TextKind::Html => html::escape(&written),
                TextKind::Plain => written,
            };
            Edit {
                range: tag.range,
                text: written.into_bytes(),
            }
        })
        .collect();
    if edits.is_empty() {
        return None;
    }
    Some(PartPatches {
        body: part.body.clone(),
        patches: body.patches(&edits, line_end),
    })
}

/// The tag's URL as the app meant it: in HTML, `&amp;` and friends are resolved.
fn tag_url(text: &[u8], tag: &Tag, kind: TextKind) -> Option<String> {
    let url = String::from_utf8_lossy(&text[tag.url.clone()?]);
    Some(match kind {
        TextKind::Html => html::unescape(&url),
        TextKind::Plain => url.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`rewrite_unsub`] returned, and the URLs it passed to `link`.
    type Rewritten<'a> = (Result<Cow<'a, [u8]>, MimeError>, Vec<Option<String>>);

    /// Rewrites with links `L1&x`, `L2&x`, … and returns the output and the URLs seen.
    fn rewrite(message: &[u8]) -> Rewritten<'_> {
        let mut seen = Vec::new();
        let out = rewrite_unsub(message, &mut |url| {
            seen.push(url.map(str::to_owned));
            format!("L{}&x", seen.len())
        });
        (out, seen)
    }

    #[test]
    fn plain_text_tag_becomes_the_link_as_is() {
        let msg = b"Subject: s\r\n\r\nBye: *|UNSUB:https://a/b?x=1&amp;y|*\r\n";
        let (out, seen) = rewrite(msg);
        assert_eq!(
            &out.expect("rewritten")[..],
            b"Subject: s\r\n\r\nBye: L1&x\r\n"
        );
        assert_eq!(seen, [Some("https://a/b?x=1&amp;y".to_owned())]);
    }

    #[test]
    fn html_url_is_unescaped_and_link_escaped() {
        let msg =
            b"Content-Type: text/html\r\n\r\n<a href=\"*|UNSUB:https://a/?x=1&amp;y=2|*\">u</a>";
        let (out, seen) = rewrite(msg);
        assert_eq!(
            &out.expect("rewritten")[..],
            b"Content-Type: text/html\r\n\r\n<a href=\"L1&amp;x\">u</a>"
        );
        assert_eq!(seen, [Some("https://a/?x=1&y=2".to_owned())]);
        assert_eq!(
            first_unsub_tag(msg),
            Some(UnsubTag {
                url: Some("https://a/?x=1&y=2".into())
            })
        );
    }

    #[test]
    fn untagged_message_is_borrowed_without_calling_link() {
        let msg = b"Subject: unsubscribe\r\n\r\nNo tag | here *\r\n";
        let (out, seen) = rewrite(msg);
        assert!(matches!(out, Ok(Cow::Borrowed(_))));
        assert!(seen.is_empty());
        assert!(!has_unsub_tag(msg));
        assert_eq!(first_unsub_tag(msg), None);
    }

    #[test]
    fn tag_only_in_an_attachment_does_not_count() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\n\
Content-Disposition: attachment\r\n\r\n*|UNSUB|*\r\n--b--\r\n";
        assert!(!has_unsub_tag(msg));
        assert!(matches!(rewrite(msg).0, Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn link_containing_the_boundary_is_refused() {
        let msg = b"Content-Type: multipart/alternative; boundary=zz\r\n\r\n--zz\r\n\r\n*|UNSUB|*\r\n--zz--\r\n";
        let out = rewrite_unsub(msg, &mut |_| "https://q/--zz".into());
        assert_eq!(
            out.err(),
            Some(MimeError::BoundaryInText {
                boundary: "zz".into()
            })
        );
    }

    #[test]
    fn qp_line_with_two_tags_and_lf_line_ends() {
        let msg = b"Content-Transfer-Encoding: quoted-printable\n\n\
first line =E9\n*|UNSUB|* and *|UNSUB:https://a/?x=3D1|*=\n tail\nlast *|unsub|*";
        let (out, seen) = rewrite(msg);
        assert_eq!(
            &out.expect("rewritten")[..],
            &b"Content-Transfer-Encoding: quoted-printable\n\n\
first line =E9\nL1&x and L2&x tail\nlast L3&x"[..]
        );
        assert_eq!(seen, [None, Some("https://a/?x=1".to_owned()), None]);
    }

    #[test]
    fn parts_after_an_attached_message_are_still_found() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner *|UNSUB|*\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nouter *|UNSUB:https://a/|*\r\n--b--\r\n";
        let (out, seen) = rewrite(msg);
        let out = out.expect("rewritten");
        assert_eq!(seen, [Some("https://a/".to_owned())]);
        assert!(out.windows(15).any(|w| w == b"inner *|UNSUB|*"));
        assert!(out.windows(11).any(|w| w == b"outer L1&x\r"));
    }

    #[test]
    fn first_tag_is_the_first_in_message_order() {
        let msg = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nno tag here\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<a href=\"*|UNSUB:https://a/?p=1&amp;q=2|*\">x</a> *|UNSUB:https://b/|*\r\n--b--\r\n";
        assert_eq!(
            first_unsub_tag(msg).and_then(|t| t.url),
            Some("https://a/?p=1&q=2".into())
        );
    }

    #[test]
    fn bytes_that_are_no_message_are_left_alone() {
        assert!(matches!(rewrite(b"").0, Ok(Cow::Borrowed(_))));
        // mail-parser reads a first line without a colon as a header field name, so this
        // "message" has no body and no tag.
        assert!(matches!(rewrite(b"*|UNSUB|*").0, Ok(Cow::Borrowed(_))));
        assert!(!has_unsub_tag(b"*|UNSUB|*"));
    }
}
