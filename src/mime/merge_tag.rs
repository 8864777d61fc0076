//! The Mandrill unsubscribe merge tag: `*|UNSUB|*` or `*|UNSUB:url|*`, `UNSUB` in any case
//! (SPEC §4). Where tags are in decoded text, and a quick test of whether a raw message could
//! hold one at all, so that most messages are never parsed.

use std::ops::Range;

use super::qp;
use super::search::position;

/// What every tag starts with, compared without regard to ASCII case.
const PREFIX: &[u8] = b"*|unsub";

/// Longest URL accepted inside a tag; a longer "URL" is more likely a stray `*|UNSUB:` whose
/// `|*` is far away, and the bound keeps the scan linear.
const MAX_URL: usize = 2048;

/// One tag in decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tag {
    /// The whole tag, `*|` to `|*`.
    pub(super) range: Range<usize>,
    /// The URL after `UNSUB:`, if there is a non-empty one.
    pub(super) url: Option<Range<usize>>,
}

/// The tags in `text`, in order. A URL is one or more visible ASCII characters (RFC 3986
/// URLs are ASCII; anything with white space, control or 8-bit bytes is not a tag).
pub(super) fn tags(text: &[u8]) -> impl Iterator<Item = Tag> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while from < text.len() {
            let at = from + position(&text[from..], |b| b == b'*')?;
            match tag_at(text, at) {
                Some(tag) => {
                    from = tag.range.end;
                    return Some(tag);
                }
                None => from = at + 1,
            }
        }
        None
    })
}

/// The tag starting at `at`, if one does.
fn tag_at(text: &[u8], at: usize) -> Option<Tag> {
    let rest = text.get(at..)?;
    if rest.len() < PREFIX.len() + 2 || !rest[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    match &rest[PREFIX.len()..PREFIX.len() + 2] {
        b"|*" => Some(Tag {
            range: at..at + PREFIX.len() + 2,
            url: None,
        }),
        [b':', ..] => {
            let url_start = at + PREFIX.len() + 1;
            let url_len = url_length(&text[url_start..])?;
            let url = (url_len > 0).then_some(url_start..url_start + url_len);
            Some(Tag {
                range: at..url_start + url_len + 2,
                url,
            })
        }
        _ => None,
    }
}

/// Length of the URL at the start of `rest`, which must be followed by the closing `|*`.
fn url_length(rest: &[u8]) -> Option<usize> {
    for (i, &b) in rest.iter().enumerate().take(MAX_URL + 1) {
        if b == b'|' && rest.get(i + 1) == Some(&b'*') {
            return Some(i);
        }
        if !b.is_ascii_graphic() {
            return None;
        }
    }
    None
}

/// False only when no text part of `message` can contain a tag, whatever its encoding: the
/// raw bytes hold no `*|UNSUB` even when read as quoted-printable (`=2A`, soft line breaks
/// inside the tag), and no `base64` either, which could hide one. One pass over the bytes
/// that lets the common untagged message skip MIME parsing, and stops at the first hit.
pub(super) fn may_contain_tag(message: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = position(&message[from..], |b| b == b'*' || b == b'=' || b == b'6') {
        let at = from + p;
        let hit = match message[at] {
            b'6' => at >= 4 && starts_base64(&message[at - 4..]),
            // Quoted-printable text is full of `=`; only `=2A` can start a tag.
            b'=' => qp::escaped_byte(message, at) == Some(b'*') && qp_prefix_at(message, at),
            _ => qp_prefix_at(message, at),
        };
        if hit {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Whether `bytes` starts with `base64`, any case (found by its `6`, the rarer byte).
fn starts_base64(bytes: &[u8]) -> bool {
    bytes
        .get(..6)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"base64"))
}

/// Whether `PREFIX` starts at `pos` in `message` read as quoted-printable (which also finds
/// it in plain text).
fn qp_prefix_at(message: &[u8], mut pos: usize) -> bool {
    for want in PREFIX {
        match qp_unit(message, pos) {
            Some((b, next)) if b.eq_ignore_ascii_case(want) => pos = next,
            _ => return false,
        }
    }
    true
}

/// The decoded byte at `pos` and where the next one starts, skipping soft line breaks
/// (`=`, optional spaces or tabs, a line end: RFC 2045 §6.7 rules 3 and 5) as the decoder does.
fn qp_unit(message: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        let b = *message.get(pos)?;
        if b != b'=' {
            return Some((b, pos + 1));
        }
        if let Some(decoded) = qp::escaped_byte(message, pos) {
            return Some((decoded, pos + 3));
        }
        match soft_break_end(message, pos) {
            Some(next) => pos = next,
            None => return Some((b'=', pos + 1)),
        }
    }
}

/// If the `=` at `pos` is a soft line break, where the next line starts.
fn soft_break_end(message: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    while matches!(message.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match (message.get(i), message.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => Some(i + 2),
        (Some(b'\n'), _) => Some(i + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&str, Option<&str>)> {
        tags(text.as_bytes())
            .map(|t| (&text[t.range], t.url.map(|u| &text[u])))
            .collect()
    }

    #[test]
    fn finds_bare_and_url_tags_in_any_case() {
        assert_eq!(
            found("a *|UNSUB|* b *|unsub:https://x/y?a=1&b=*|* c *|Unsub:|*"),
            [
                ("*|UNSUB|*", None),
                ("*|unsub:https://x/y?a=1&b=*|*", Some("https://x/y?a=1&b=*")),
                ("*|Unsub:|*", None),
            ]
        );
    }

    #[test]
    fn rejects_near_misses() {
        for text in [
            "*|UNSUB",
            "*|UNSUB*",
            "*|UNSUBSCRIBE|*",
            "*|UNSUB:has space|*",
            "*|UNSUB:https://x\r\n|*",
            "*|UNSUB:caf\u{e9}|*",
            "* |UNSUB|*",
            "*|UNSUB:https://x",
        ] {
            assert_eq!(found(text), [], "{text}");
        }
        let long = format!("*|UNSUB:https://x/{}|*", "a".repeat(MAX_URL));
        assert_eq!(found(&long), []);
        let longest = format!("*|UNSUB:{}|*", "a".repeat(MAX_URL));
        assert_eq!(found(&longest).len(), 1);
    }

    #[test]
    fn precheck_sees_through_quoted_printable() {
        assert!(may_contain_tag(b"x *|UNSUB|*"));
        assert!(may_contain_tag(b"x =2A|uns=\r\nub:"));
        assert!(may_contain_tag(b"x *=7CUN=  \nSUB"));
        assert!(may_contain_tag(b"Content-Transfer-Encoding: BASE64\r\n"));
        assert!(!may_contain_tag(
            b"Subject: unsub\r\n\r\n* | UNSUB = =\r\nno"
        ));
        assert!(!may_contain_tag(b"*|UN=\r\r\nSUB"));
        assert!(!may_contain_tag(b"*|UN"));
    }
}
