//! Content-Transfer-Encoding (RFC 2045 §6): a text part's body decoded, and edits of the
//! decoded text written back in the same encoding as patches of the encoded bytes.
//!
//! Identity bodies (7bit, 8bit, binary) are patched where the edit is; quoted-printable
//! bodies re-encode only the logical lines an edit touches; base64 has no lines to keep, so
//! its whole body is re-encoded (§6.8, 76-character lines).

use std::ops::Range;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};

use super::fields::first_line_end;
use super::qp;

/// Base64 characters per encoded line (RFC 2045 §6.8).
const BASE64_LINE: usize = 76;

/// Standard alphabet; padding optional on input (some senders drop it), written on output.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// How a text part's body is encoded, as far as rewriting it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransferEncoding {
    /// 7bit, 8bit or binary (RFC 2045 §6.2): the bytes are the text.
    Identity,
    /// RFC 2045 §6.7.
    QuotedPrintable,
    /// RFC 2045 §6.8.
    Base64,
}

/// A change to a body's decoded text: `range` (empty for an insertion) becomes `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub(super) range: Range<usize>,
    pub(super) text: Vec<u8>,
}

/// A change to a body's encoded bytes, relative to the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Patch {
    pub(super) range: Range<usize>,
    pub(super) bytes: Vec<u8>,
}

/// A body with its decoded text, able to turn edits of that text into patches.
pub(super) enum Body<'a> {
    Identity(&'a [u8]),
    QuotedPrintable(qp::Decoded),
    Base64 { raw: &'a [u8], text: Vec<u8> },
}

impl<'a> Body<'a> {
    /// Decodes `raw`; `None` when it is not valid in its encoding (only base64 can fail).
    pub(super) fn decode(raw: &'a [u8], encoding: TransferEncoding) -> Option<Self> {
        match encoding {
            TransferEncoding::Identity => Some(Body::Identity(raw)),
            TransferEncoding::QuotedPrintable => Some(Body::QuotedPrintable(qp::decode(raw))),
            TransferEncoding::Base64 => decode_base64(raw).map(|text| Body::Base64 { raw, text }),
        }
    }

    /// The decoded text.
    pub(super) fn text(&self) -> &[u8] {
        match self {
            Body::Identity(raw) => raw,
            Body::QuotedPrintable(decoded) => &decoded.text,
            Body::Base64 { text, .. } => text,
        }
    }

    /// The line ending for lines added to the decoded text: the one the text already uses;
    /// for a text without one, the canonical CRLF inside base64 (RFC 2046 §4.1.1) and the
    /// message's own (`message_line_end`) where the encoded line ends are the text's.
    pub(super) fn text_line_end(&self, message_line_end: &'static [u8]) -> &'static [u8] {
        first_line_end(self.text()).unwrap_or(match self {
            Body::Base64 { .. } => b"\r\n",
            _ => message_line_end,
        })
    }

    /// The patches that apply `edits` (sorted, not overlapping) to the encoded body. New line
    /// breaks (soft breaks, base64 lines) are written as `line_end`.
    pub(super) fn patches(&self, edits: &[Edit], line_end: &[u8]) -> Vec<Patch> {
        if edits.is_empty() {
            return Vec::new();
        }
        match self {
            Body::Identity(_) => edits
                .iter()
                .map(|e| Patch {
                    range: e.range.clone(),
                    bytes: e.text.clone(),
                })
                .collect(),
            Body::QuotedPrintable(decoded) => qp_patches(decoded, edits, line_end),
            Body::Base64 { raw, text } => {
                let edited = apply(text, 0..text.len(), edits);
                let ends_with_break = raw.last() == Some(&b'\n');
                vec![Patch {
                    range: 0..raw.len(),
                    bytes: encode_base64(&edited, line_end, ends_with_break),
                }]
            }
        }
    }
}

/// The decoded base64 body, ignoring the line breaks and white space around the encoded
/// characters; `None` for any other character or a bad length.
fn decode_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    BASE64.decode(compact).ok()
}

/// `text` in base64, 76 characters a line joined by `line_end`, with a final line end when
/// the original body had one.
fn encode_base64(text: &[u8], line_end: &[u8], ends_with_break: bool) -> Vec<u8> {
    let encoded = BASE64.encode(text);
    let lines = encoded.len().div_ceil(BASE64_LINE);
    let mut out = Vec::with_capacity(encoded.len() + (lines + 1) * line_end.len());
    for (i, line) in encoded.as_bytes().chunks(BASE64_LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(line_end);
        }
        out.extend_from_slice(line);
    }
    if ends_with_break {
        out.extend_from_slice(line_end);
    }
    out
}

/// One patch per run of logical lines that edits touch: those lines decoded, edited and
/// encoded again; the encoded bytes of all other lines stay as they were.
fn qp_patches(decoded: &qp::Decoded, edits: &[Edit], line_end: &[u8]) -> Vec<Patch> {
    let mut patches = Vec::new();
    let mut i = 0;
    while i < edits.len() {
        let first_line = decoded.line_of(edits[i].range.start);
        let mut last_line = decoded.line_of(edits[i].range.end.max(edits[i].range.start));
        let mut j = i + 1;
        while j < edits.len() && decoded.line_of(edits[j].range.start) <= last_line {
            last_line = last_line.max(decoded.line_of(edits[j].range.end));
            j += 1;
        }
        let start = decoded.lines[first_line];
        let end = decoded.lines[last_line + 1];
        let edited = apply(&decoded.text, start.text..end.text, &edits[i..j]);
        let mut bytes = Vec::with_capacity(edited.len() + edited.len() / 16);
        qp::encode(&edited, line_end, &mut bytes);
        patches.push(Patch {
            range: start.raw..end.raw,
            bytes,
        });
        i = j;
    }
    patches
}

/// `text[span]` with `edits` (which lie inside `span`) applied.
fn apply(text: &[u8], span: Range<usize>, edits: &[Edit]) -> Vec<u8> {
    let grown: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(span.len() + grown);
    let mut pos = span.start;
    for edit in edits {
        out.extend_from_slice(&text[pos..edit.range.start]);
        out.extend_from_slice(&edit.text);
        pos = edit.range.end;
    }
    out.extend_from_slice(&text[pos..span.end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(range: Range<usize>, text: &str) -> Edit {
        Edit {
            range,
            text: text.as_bytes().to_vec(),
        }
    }

    /// `raw` with `patches` applied, as the splice would.
    fn patched(raw: &[u8], patches: &[Patch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = 0;
        for p in patches {
            out.extend_from_slice(&raw[pos..p.range.start]);
            out.extend_from_slice(&p.bytes);
            pos = p.range.end;
        }
        out.extend_from_slice(&raw[pos..]);
        out
    }

    #[test]
    fn identity_patches_are_the_edits() {
        let body = Body::decode(b"say X now", TransferEncoding::Identity).expect("identity");
        let patches = body.patches(&[edit(4..5, "hello")], b"\r\n");
        assert_eq!(patched(b"say X now", &patches), b"say hello now");
    }

    #[test]
    fn qp_reencodes_only_the_edited_line() {
        let raw = b"keep =E9 this=20=\r\nline\r\nedit T=\r\nAG here\r\nkeep too\r\n";
        let body = Body::decode(raw, TransferEncoding::QuotedPrintable).expect("qp");
        let text = body.text().to_vec();
        assert_eq!(
            text,
            b"keep \xe9 this line\r\nedit TAG here\r\nkeep too\r\n"
        );
        let at = text.windows(3).position(|w| w == b"TAG").expect("tag");
        let patches = body.patches(&[edit(at..at + 3, "a=b")], b"\r\n");
        assert_eq!(
            patched(raw, &patches),
            b"keep =E9 this=20=\r\nline\r\nedit a=3Db here\r\nkeep too\r\n"
        );
    }

    #[test]
    fn qp_insertion_at_the_end_appends() {
        let raw = b"one\r\n";
        let body = Body::decode(raw, TransferEncoding::QuotedPrintable).expect("qp");
        let patches = body.patches(&[edit(5..5, "two=\r\n")], b"\r\n");
        assert_eq!(patched(raw, &patches), b"one\r\ntwo=3D\r\n");
        let raw = b"one";
        let body = Body::decode(raw, TransferEncoding::QuotedPrintable).expect("qp");
        let patches = body.patches(&[edit(3..3, " ")], b"\n");
        assert_eq!(patched(raw, &patches), b"one=20");
    }

    #[test]
    fn base64_round_trip_with_line_ends() {
        let text = "x".repeat(100);
        let raw = format!("{}\n", BASE64.encode(&text));
        let body = Body::decode(raw.as_bytes(), TransferEncoding::Base64).expect("b64");
        assert_eq!(body.text(), text.as_bytes());
        let patches = body.patches(&[edit(0..1, "y")], b"\n");
        let out = patched(raw.as_bytes(), &patches);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), 76);
        assert!(lines[2].is_empty());
        let again = Body::decode(&out, TransferEncoding::Base64).expect("b64");
        assert_eq!(again.text(), format!("y{}", &text[1..]).as_bytes());
    }

    #[test]
    fn bad_base64_is_not_decoded() {
        assert!(Body::decode(b"aGVsbG8*\r\n", TransferEncoding::Base64).is_none());
        assert!(Body::decode(b"aGVsbG8=aGVs\r\n", TransferEncoding::Base64).is_none());
        assert!(Body::decode(b"aGVsbG8\r\n", TransferEncoding::Base64).is_some());
    }
}
