//! Message tags (SPEC §2): `X-MC-Tags` (Mandrill, comma-separated) and `X-Mailgun-Tag`
//! (repeatable). They decide tag-scoped suppressions and are removed before forwarding.

use std::borrow::Cow;

use super::fields::header_fields;

/// The header names that carry tags, lowercase.
const TAG_HEADERS: [&str; 2] = ["x-mc-tags", "x-mailgun-tag"];

/// The message's tags (trimmed, deduplicated, in order) and the message without the tag
/// headers. Only the header section is read; the body is never touched. Borrowed when the
/// message has no tag header.
pub fn take_tags(message: &[u8]) -> (Vec<String>, Cow<'_, [u8]>) {
    let mut tags: Vec<String> = Vec::new();
    let mut removed: Vec<(usize, usize)> = Vec::new();
    for field in header_fields(message) {
        if !TAG_HEADERS.iter().any(|h| field.is_named(message, h)) {
            continue;
        }
        let value = String::from_utf8_lossy(&message[field.colon + 1..field.end]);
        for tag in value.split(',') {
            let tag: String = tag.split_whitespace().collect::<Vec<_>>().join(" ");
            if !tag.is_empty() && !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                tags.push(tag);
            }
        }
        removed.push((field.start, field.end));
    }
    if removed.is_empty() {
        return (tags, Cow::Borrowed(message));
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for (start, end) in removed {
        out.extend_from_slice(&message[pos..start]);
        pos = end;
    }
    out.extend_from_slice(&message[pos..]);
    (tags, Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_and_removes_both_headers() {
        let msg = b"From: a@x\r\nX-MC-Tags: news, Promo\r\nX-Mailgun-Tag: weekly\r\nX-Mailgun-Tag: news\r\nSubject: s\r\n\r\nX-MC-Tags: body stays\r\n";
        let (tags, out) = take_tags(msg);
        assert_eq!(tags, ["news", "Promo", "weekly"]);
        assert_eq!(
            &out[..],
            b"From: a@x\r\nSubject: s\r\n\r\nX-MC-Tags: body stays\r\n"
        );
    }

    #[test]
    fn folded_header_is_removed_whole() {
        let msg = b"X-MC-Tags: a,\r\n b\r\nSubject: s\r\n\r\nbody\r\n";
        let (tags, out) = take_tags(msg);
        assert_eq!(tags, ["a", "b"]);
        assert_eq!(&out[..], b"Subject: s\r\n\r\nbody\r\n");
    }

    #[test]
    fn untagged_message_is_borrowed() {
        let msg = b"Subject: s\r\n\r\nbody\r\n";
        let (tags, out) = take_tags(msg);
        assert!(tags.is_empty());
        assert!(matches!(out, Cow::Borrowed(_)));
    }
}
