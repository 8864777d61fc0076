//! Header fields (RFC 5322 §2.2): where each field of a header section starts and ends, read
//! by bytes so that callers can splice fields in and out without re-serialising the others.

/// One header field: `start..end` spans the whole field with its folded lines and final line
/// end; `colon` is the position of the `:` that ends the name.
pub(super) struct Field {
    pub(super) start: usize,
    pub(super) colon: usize,
    pub(super) end: usize,
}

impl Field {
    /// Whether the field is called `name`; field names compare without regard to ASCII case
    /// (RFC 5322 §1.2.2).
    pub(super) fn is_named(&self, message: &[u8], name: &str) -> bool {
        message[self.start..self.colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The header fields of `message` up to the empty line that ends the header section (RFC 5322
/// §2.2, folding §2.2.3). Lazy, so a caller looking for one field stops at it.
pub(super) fn header_fields(message: &[u8]) -> impl Iterator<Item = Field> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= message.len() {
            return None;
        }
        let line_end = next_line_end(message, pos);
        let line = &message[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return None;
        }
        // A line without a colon is not a header line: the header section is malformed here;
        // stop reading it rather than guess.
        let colon = pos + line.iter().position(|&b| b == b':')?;
        let mut end = line_end;
        while end < message.len() && matches!(message[end], b' ' | b'\t') {
            end = next_line_end(message, end);
        }
        let field = Field {
            start: pos,
            colon,
            end,
        };
        pos = end;
        Some(field)
    })
}

/// One past the `\n` that ends the line starting at `from`, or the end of `message`.
pub(super) fn next_line_end(message: &[u8], from: usize) -> usize {
    message[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| from + p + 1)
        .unwrap_or(message.len())
}

/// The line ending the message writes, judged by its first line: CRLF as RFC 5322 §2.1
/// requires, or a bare LF for messages stored the Unix way. Text we add uses the same, so a
/// message never ends up with both.
pub(super) fn line_ending(message: &[u8]) -> &'static [u8] {
    first_line_end(message).unwrap_or(b"\r\n")
}

/// The line ending of the first line of `text`, if it has a line end at all.
pub(super) fn first_line_end(text: &[u8]) -> Option<&'static [u8]> {
    let p = text.iter().position(|&b| b == b'\n')?;
    Some(if p > 0 && text[p - 1] == b'\r' {
        b"\r\n"
    } else {
        b"\n"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_span_folded_lines() {
        let msg = b"A: 1\r\nB: 2\r\n  more\r\nC: 3\r\n\r\nD: body\r\n";
        let spans: Vec<_> = header_fields(msg).map(|f| &msg[f.start..f.end]).collect();
        assert_eq!(
            spans,
            [&b"A: 1\r\n"[..], b"B: 2\r\n  more\r\n", b"C: 3\r\n"]
        );
    }

    #[test]
    fn stops_at_a_line_without_colon() {
        let msg = b"A: 1\nnot a header\nB: 2\n\n";
        assert_eq!(header_fields(msg).count(), 1);
    }

    #[test]
    fn names_compare_without_case() {
        let msg = b"list-UNSUBSCRIBE : <x>\r\n\r\n";
        let field = header_fields(msg).next().expect("one field");
        assert!(field.is_named(msg, "List-Unsubscribe"));
        assert!(!field.is_named(msg, "List-Unsubscribe-Post"));
    }

    #[test]
    fn line_ending_follows_the_first_line() {
        assert_eq!(line_ending(b"A: 1\r\n\r\n"), b"\r\n");
        assert_eq!(line_ending(b"A: 1\n\n"), b"\n");
        assert_eq!(line_ending(b"\n"), b"\n");
        assert_eq!(line_ending(b"no line end"), b"\r\n");
    }
}
