//! Header fields added to a message (SPEC §4: `List-Unsubscribe`, RFC 2369, and
//! `List-Unsubscribe-Post`, RFC 8058), and the test for an app's own, which is kept rather
//! than duplicated.

use std::borrow::Cow;

use super::fields::{header_fields, line_ending};

/// Longest line we write when folding, without its line end (RFC 5322 §2.1.1 SHOULD).
const FOLD_AT: usize = 78;

/// Whether the header section of `message` has a field called `name` (ASCII case ignored,
/// RFC 5322 §1.2.2). The body is never read, so a body line that looks like a header does
/// not count.
pub fn has_header(message: &[u8], name: &str) -> bool {
    header_fields(message).any(|field| field.is_named(message, name))
}

/// `message` with `fields` (name, value) inserted, in order, at the top of its header
/// section, where trace and list fields go (RFC 5322 §3.6). Each is folded at white space to
/// lines of at most 78 characters (RFC 5322 §2.2.3): before the `<` of
/// `List-Unsubscribe: <https://…>`, between the items of a comma-separated list. A single
/// word longer than that is left whole, as the 998-character limit of §2.1.1 allows. Line
/// breaks inside a value are removed (unfolded) so a value cannot start a field of its own.
/// Written with the message's own line ending; borrowed when `fields` is empty.
pub fn prepend_headers<'a>(message: &'a [u8], fields: &[(&str, &str)]) -> Cow<'a, [u8]> {
    if fields.is_empty() {
        return Cow::Borrowed(message);
    }
    let line_end = line_ending(message);
    let added: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
    let mut out = Vec::with_capacity(added + message.len());
    for (name, value) in fields {
        write_folded(&mut out, name, value, line_end);
    }
    out.extend_from_slice(message);
    Cow::Owned(out)
}

/// Writes `name: value` and its line end, folded before white space when a line would pass
/// [`FOLD_AT`].
fn write_folded(out: &mut Vec<u8>, name: &str, value: &str, line_end: &[u8]) {
    let value: String = value.chars().filter(|&c| c != '\r' && c != '\n').collect();
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let mut column = name.len() + 1;
    // One space after the colon, part of the first word so a fold may go there too.
    let value = match value.starts_with([' ', '\t']) || value.is_empty() {
        true => value,
        false => format!(" {value}"),
    };
    let mut rest = value.as_str();
    while !rest.is_empty() {
        let (word, tail) = split_word(rest);
        if column + word.len() > FOLD_AT && word.starts_with([' ', '\t']) {
            out.extend_from_slice(line_end);
            column = 0;
        }
        out.extend_from_slice(word.as_bytes());
        column += word.len();
        rest = tail;
    }
    out.extend_from_slice(line_end);
}

/// The leading white space and the word after it, and what follows them.
fn split_word(s: &str) -> (&str, &str) {
    let word_start = s.find(|c| c != ' ' && c != '\t').unwrap_or(s.len());
    let word_end = s[word_start..]
        .find([' ', '\t'])
        .map_or(s.len(), |p| word_start + p);
    s.split_at(word_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepended(message: &[u8], fields: &[(&str, &str)]) -> String {
        String::from_utf8(prepend_headers(message, fields).into_owned()).expect("utf-8")
    }

    #[test]
    fn short_fields_stay_on_one_line() {
        let out = prepended(
            b"From: a@x\r\n\r\nbody\r\n",
            &[
                ("List-Unsubscribe", "<https://q.test/u/abc>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ],
        );
        assert_eq!(
            out,
            "List-Unsubscribe: <https://q.test/u/abc>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
             From: a@x\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn long_url_folds_before_the_angle_bracket_and_stays_whole() {
        let url = format!("<https://q.test/u/{}>", "t".repeat(90));
        let out = prepended(b"From: a@x\n\n", &[("List-Unsubscribe", &url)]);
        assert_eq!(out, format!("List-Unsubscribe:\n {url}\nFrom: a@x\n\n"));
    }

    #[test]
    fn list_folds_between_items() {
        let value = format!(
            "<https://q.test/u/{}>, <mailto:unsub@q.test?subject=unsubscribe>",
            "t".repeat(40)
        );
        let out = prepended(b"From: a@x\r\n\r\n", &[("List-Unsubscribe", &value)]);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[..2],
            [
                format!("List-Unsubscribe: <https://q.test/u/{}>,", "t".repeat(40)).as_str(),
                " <mailto:unsub@q.test?subject=unsubscribe>",
            ]
        );
        assert!(lines.iter().all(|l| l.len() <= FOLD_AT));
    }

    #[test]
    fn line_breaks_in_a_value_cannot_inject_a_field() {
        let out = prepended(b"A: b\r\n\r\n", &[("X-Test", "one\r\nBcc: evil@x")]);
        assert_eq!(out, "X-Test: oneBcc: evil@x\r\nA: b\r\n\r\n");
    }

    #[test]
    fn nothing_to_add_borrows() {
        assert!(matches!(
            prepend_headers(b"A: b\r\n\r\n", &[]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn has_header_reads_only_the_header_section() {
        let msg = b"From: a@x\r\nlist-unsubscribe: <x>\r\n\r\nList-Unsubscribe-Post: y\r\n";
        assert!(has_header(msg, "List-Unsubscribe"));
        assert!(!has_header(msg, "List-Unsubscribe-Post"));
        assert!(!has_header(b"", "From"));
    }
}
