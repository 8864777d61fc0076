//! Lines no longer than SMTP allows (RFC 5321 §4.5.3.1.6: 998 octets before the CRLF). An
//! upstream refuses a longer line (`500 Line too long`) after quell has acknowledged the
//! message, so every copy is folded before it is signed and sent, as Postfix does with
//! `smtp_line_length_limit = 998`: a long line is broken before a space or tab near the limit
//! where it has one (header folding, invisible in text and HTML), otherwise at the limit, on a
//! UTF-8 character boundary, with CRLF and a space inserted.

use std::borrow::Cow;

/// The longest line sent, its line end not counted.
pub const MAX_LINE: usize = 998;

/// How far back from the limit a space or tab is looked for.
const WHITESPACE_WINDOW: usize = MAX_LINE / 2;

/// `message` with every line of more than [`MAX_LINE`] octets folded; borrowed when none is.
pub fn fold_long_lines(message: &[u8]) -> Cow<'_, [u8]> {
    if !message
        .split(|&b| b == b'\n')
        .any(|line| content(line).len() > MAX_LINE)
    {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / MAX_LINE * 3 + 3);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let text = content(line);
        fold_line(text, &mut out);
        out.extend_from_slice(&line[text.len()..]);
    }
    Cow::Owned(out)
}

/// The line without its line end (CRLF or LF).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes `text` as lines of at most [`MAX_LINE`] octets joined by folds.
fn fold_line(mut text: &[u8], out: &mut Vec<u8>) {
    // Octets the current output line already holds (an inserted space).
    let mut used = 0;
    while used + text.len() > MAX_LINE {
        let room = MAX_LINE - used;
        if let Some(cut) = (room - WHITESPACE_WINDOW..=room)
            .rev()
            .find(|&i| i > 0 && matches!(text[i], b' ' | b'\t'))
        {
            // The whitespace starts the continuation line, as in header folding.
            out.extend_from_slice(&text[..cut]);
            out.extend_from_slice(b"\r\n");
            text = &text[cut..];
            used = 0;
        } else {
            let cut = (1..=room)
                .rev()
                .find(|&i| !is_continuation(text[i]))
                .unwrap_or(room);
            out.extend_from_slice(&text[..cut]);
            out.extend_from_slice(b"\r\n ");
            text = &text[cut..];
            used = 1;
        }
    }
    out.extend_from_slice(text);
}

/// A byte inside a UTF-8 sequence, not at its start.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(message: &[u8]) -> Vec<&[u8]> {
        message
            .split(|&b| b == b'\n')
            .map(content)
            .collect::<Vec<_>>()
    }

    #[test]
    fn short_lines_are_borrowed() {
        let msg = format!("Subject: s\r\n\r\n{}\r\n", "a".repeat(MAX_LINE));
        assert!(matches!(fold_long_lines(msg.as_bytes()), Cow::Borrowed(_)));
    }

    #[test]
    fn a_line_without_spaces_is_cut_at_the_limit_with_a_space_inserted() {
        let long = "x".repeat(3 * MAX_LINE);
        let msg = format!("Subject: s\r\n\r\n{long}\r\nend\r\n");
        let folded = fold_long_lines(msg.as_bytes()).into_owned();
        for line in lines(&folded) {
            assert!(line.len() <= MAX_LINE, "{} octets", line.len());
        }
        // Unfolding (removing CRLF SP) gives the line back.
        let unfolded = String::from_utf8(folded).unwrap().replace("\r\n ", "");
        assert_eq!(unfolded, msg);
    }

    #[test]
    fn a_line_with_spaces_is_folded_before_one_and_loses_nothing() {
        let words = "word ".repeat(1000);
        let msg = format!("To: a@example.net\r\nX-Long: {words}\r\n\r\n<p>{words}</p>\r\n");
        let folded = fold_long_lines(msg.as_bytes()).into_owned();
        for line in lines(&folded) {
            assert!(line.len() <= MAX_LINE);
        }
        // Header unfolding (RFC 5322 §2.2.3) removes the CRLF only.
        let unfolded = String::from_utf8(folded).unwrap().replace("\r\n ", " ");
        assert_eq!(unfolded, msg);
    }

    #[test]
    fn utf8_characters_are_never_split() {
        let long = "é".repeat(MAX_LINE);
        let msg = format!("\r\n{long}\r\n");
        let folded = fold_long_lines(msg.as_bytes()).into_owned();
        let text = String::from_utf8(folded).expect("still UTF-8");
        assert!(text.lines().all(|l| l.len() <= MAX_LINE));
        assert_eq!(text.replace("\r\n ", ""), msg);
    }

    #[test]
    fn lf_only_lines_and_a_last_line_without_end_are_kept() {
        let msg = format!("a\n{}", "y".repeat(MAX_LINE + 5));
        let folded = fold_long_lines(msg.as_bytes()).into_owned();
        assert!(folded.starts_with(b"a\n"));
        assert_eq!(String::from_utf8(folded).unwrap().replace("\r\n ", ""), msg);
    }
}
