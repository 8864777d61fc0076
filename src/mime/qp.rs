//! Quoted-printable (RFC 2045 §6.7): decoding that remembers where each logical line came
//! from, and encoding of the few lines a rewrite changes.
//!
//! A logical line is one or more encoded lines joined by soft line breaks (`=` at the end of
//! a line, rule 5) and ended by a hard line break. A merge tag never spans a hard line break
//! but may span a soft one, so rewrites work on logical lines: the ones they change are
//! re-encoded, every other encoded byte of the body is kept as it was.

use super::search::position;

/// Longest encoded line, without its line ending (RFC 2045 §6.7 rule 5).
const MAX_LINE: usize = 76;

/// Where one logical line starts in the encoded body (`raw`) and in the decoded text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineStart {
    pub(super) raw: usize,
    pub(super) text: usize,
}

/// A decoded quoted-printable body.
pub(super) struct Decoded {
    /// The decoded bytes; hard line breaks are kept as written (CRLF or LF).
    pub(super) text: Vec<u8>,
    /// Start of every logical line, then a sentinel at the end of both. Line `i` is
    /// `lines[i]..lines[i + 1]`. A body that ends with a hard break has a last, empty line:
    /// text appended to the body lands there.
    pub(super) lines: Vec<LineStart>,
}

impl Decoded {
    /// The index of the logical line holding decoded position `at` (the last one that starts
    /// at or before it, so an insertion between lines goes to the start of the later line).
    pub(super) fn line_of(&self, at: usize) -> usize {
        let real = &self.lines[..self.lines.len() - 1];
        real.partition_point(|l| l.text <= at).saturating_sub(1)
    }
}

/// Decodes `raw`. Never fails: an `=` not followed by two hex digits or a line end is kept
/// as a literal `=`, as RFC 2045 §6.7 note (2) suggests, and trailing white space on a line
/// is dropped (rule 3).
pub(super) fn decode(raw: &[u8]) -> Decoded {
    let mut text = Vec::with_capacity(raw.len());
    let mut lines = vec![LineStart { raw: 0, text: 0 }];
    let mut pos = 0;
    while pos < raw.len() {
        let (content_end, next) = match position(&raw[pos..], |b| b == b'\n') {
            Some(p) if p > 0 && raw[pos + p - 1] == b'\r' => (pos + p - 1, pos + p + 1),
            Some(p) => (pos + p, pos + p + 1),
            None => (raw.len(), raw.len()),
        };
        let content = trim_end_space_tab(&raw[pos..content_end]);
        if let Some(joined) = content.strip_suffix(b"=") {
            decode_escapes(joined, &mut text);
        } else {
            decode_escapes(content, &mut text);
            text.extend_from_slice(&raw[content_end..next]);
            if next > content_end {
                lines.push(LineStart {
                    raw: next,
                    text: text.len(),
                });
            }
        }
        pos = next;
    }
    // The sentinel. A body that ended with a hard break also keeps the empty line the loop
    // started for it, at the same offsets.
    lines.push(LineStart {
        raw: raw.len(),
        text: text.len(),
    });
    Decoded { text, lines }
}

/// `line` without its trailing spaces and tabs, the white space RFC 2045 §6.7 rule 3 tells
/// decoders to drop (it may have been added in transport).
fn trim_end_space_tab(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    &line[..end]
}

/// Appends the decoding of one encoded line without its line break to `out`, copying the
/// runs between `=` escapes whole.
fn decode_escapes(encoded: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while let Some(p) = position(&encoded[pos..], |b| b == b'=') {
        let at = pos + p;
        out.extend_from_slice(&encoded[pos..at]);
        match escaped_byte(encoded, at) {
            Some(byte) => {
                out.push(byte);
                pos = at + 3;
            }
            None => {
                out.push(b'=');
                pos = at + 1;
            }
        }
    }
    out.extend_from_slice(&encoded[pos..]);
}

/// The byte `=XX` at `at` stands for, if it is one (hex digits in either case: RFC 2045 asks
/// for upper case but tolerant decoders accept both).
pub(super) fn escaped_byte(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at + 1)?)?;
    let lo = hex_value(*bytes.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Appends `text` encoded to `out`. A CRLF or LF in `text` becomes a hard line break written
/// the same way; long lines get soft breaks (`=` + `line_end`) so that no encoded line
/// exceeds 76 characters (rule 5).
pub(super) fn encode(text: &[u8], line_end: &[u8], out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let (segment, hard_break) = if nl > 0 && rest[nl - 1] == b'\r' {
            (&rest[..nl - 1], &rest[nl - 1..=nl])
        } else {
            (&rest[..nl], &rest[nl..=nl])
        };
        encode_segment(segment, line_end, out);
        out.extend_from_slice(hard_break);
        rest = &rest[nl + 1..];
    }
    encode_segment(rest, line_end, out);
}

/// Encodes text without line breaks: printable ASCII but `=` as itself (rule 2), space and
/// tab as themselves except at the end (rule 3), every other byte as `=XX` (rule 1). A
/// soft break comes before any character that would pass column 75, leaving room for the `=`.
fn encode_segment(segment: &[u8], line_end: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut column = 0;
    for (i, &b) in segment.iter().enumerate() {
        let at_end = i + 1 == segment.len();
        let literal = matches!(b, 33..=60 | 62..=126) || (matches!(b, b' ' | b'\t') && !at_end);
        let width = if literal { 1 } else { 3 };
        if column + width > MAX_LINE - 1 {
            out.push(b'=');
            out.extend_from_slice(line_end);
            column = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        column += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(raw: &[u8]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let d = decode(raw);
        (d.text, d.lines.iter().map(|l| (l.raw, l.text)).collect())
    }

    #[test]
    fn joins_soft_breaks_and_maps_lines() {
        let (text, lines) = decoded(b"a=3Db=\r\nc\r\nd =  \r\ne\r\n");
        assert_eq!(text, b"a=bc\r\nd e\r\n");
        assert_eq!(lines, [(0, 0), (11, 6), (21, 11), (21, 11)]);
    }

    #[test]
    fn body_without_final_break_has_no_empty_line() {
        let (text, lines) = decoded(b"x\ny");
        assert_eq!(text, b"x\ny");
        assert_eq!(lines, [(0, 0), (2, 2), (3, 3)]);
        let (text, lines) = decoded(b"");
        assert_eq!(text, b"");
        assert_eq!(lines, [(0, 0), (0, 0)]);
    }

    #[test]
    fn malformed_escapes_stay_literal_and_trailing_space_goes() {
        let (text, _) = decoded(b"a=ZZ=4 b=\r\nc  \r\n=");
        assert_eq!(text, b"a=ZZ=4 bc\r\n");
    }

    #[test]
    fn line_of_prefers_the_later_line_at_a_boundary() {
        let d = decode(b"ab\r\ncd\r\n");
        assert_eq!(d.line_of(0), 0);
        assert_eq!(d.line_of(3), 0);
        assert_eq!(d.line_of(4), 1);
        assert_eq!(d.line_of(8), 2);
    }

    #[test]
    fn encodes_within_76_columns_and_round_trips() {
        let mut text = b"caf\xe9 = ".to_vec();
        text.extend(std::iter::repeat_n(b'x', 200));
        text.extend_from_slice(b" \t\r\nnext line \r\n\rlast\t");
        let mut out = Vec::new();
        encode(&text, b"\r\n", &mut out);
        for line in out.split(|&b| b == b'\n') {
            assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
        }
        assert!(out.starts_with(b"caf=E9 =3D xxx"));
        assert!(out.ends_with(b"=09\r\nnext line=20\r\n=0Dlast=09"));
        assert_eq!(decode(&out).text, text);
    }

    #[test]
    fn escape_is_never_split() {
        let mut text = vec![b'x'; 74];
        text.push(0xff);
        let mut out = Vec::new();
        encode(&text, b"\n", &mut out);
        assert_eq!(&out[74..], b"=\n=FF");
    }
}
