//! `application/x-www-form-urlencoded` (forms and query strings) and multipart text fields,
//! decoded strictly.
//!
//! `serde_urlencoded` (and the WHATWG algorithm it follows) is lossy: `%ZZ` is kept as the three
//! characters `%ZZ`, and bytes that are not UTF-8 become U+FFFD, so `address=%ff%fe%40example.net`
//! would be stored as `��@example.net`. An address that was not what the client meant must not be
//! written, so here both are errors naming the field, and each API answers them with a 400 in
//! its own error shape before anything is written. `+` is a space, as in every form encoder.

use percent_encoding::percent_decode;

/// Longest field name repeated in an error message.
const NAME_IN_ERROR: usize = 64;

/// Why a form (or query string, or multipart text field) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("bad percent-encoding in field {0}")]
    Percent(Field),
    /// The decoded bytes are not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    Utf8(Field),
}

/// A field named in an error: its name when that decodes (`'address'`), else its position
/// (`#2`, counting from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name(String),
    Position(usize),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Name(name) => {
                let shown: String = name.chars().take(NAME_IN_ERROR).collect();
                let more = if shown.len() < name.len() { "…" } else { "" };
                write!(f, "'{shown}{more}'")
            }
            Field::Position(n) => write!(f, "#{n}"),
        }
    }
}

/// Every `name=value` pair of a urlencoded body or query string, in order; empty pairs
/// (`a=1&&b=2`) are skipped, a pair without `=` has an empty value.
pub fn pairs(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut out = Vec::new();
    for (index, pair) in input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let position = Field::Position(index + 1);
        let name = decode(name).map_err(|e| e.at(position))?;
        let value = decode(value).map_err(|e| e.at(Field::Name(name.clone())))?;
        out.push((name, value));
    }
    Ok(out)
}

/// The text of a multipart field named `name`: its bytes as they came, which must be UTF-8
/// (multer's own `text()` replaces bad bytes with U+FFFD).
pub fn text(name: &str, bytes: &[u8]) -> Result<String, FormError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| FormError::Utf8(Field::Name(name.to_string())))
}

/// What went wrong with one component, before the field is known.
enum Bad {
    Percent,
    Utf8,
}

impl Bad {
    fn at(self, field: Field) -> FormError {
        match self {
            Bad::Percent => FormError::Percent(field),
            Bad::Utf8 => FormError::Utf8(field),
        }
    }
}

/// One name or value: `+` to space, every `%` followed by two hex digits, UTF-8 after decoding.
fn decode(raw: &[u8]) -> Result<String, Bad> {
    let mut i = 0;
    while let Some(at) = raw[i..].iter().position(|&b| b == b'%') {
        let at = i + at;
        let hex = raw.get(at + 1..at + 3).ok_or(Bad::Percent)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(Bad::Percent);
        }
        i = at + 3;
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| Bad::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &[u8]) -> Vec<(String, String)> {
        pairs(input).unwrap()
    }

    fn named(name: &str) -> Field {
        Field::Name(name.to_string())
    }

    #[test]
    fn good_forms_decode_like_serde_urlencoded() {
        for input in [
            &b"address=bob%40example.net&tag=a+b&tag=%C3%A9t%C3%A9"[..],
            b"a=1&&b=&c",
            b"",
            b"x=%2B%25%26%3D",
            b"caf%C3%A9=1",
            b"data=%7B%22%24token%22%3A%22k%22%7D&verbose=1",
        ] {
            let expected: Vec<(String, String)> = serde_urlencoded::from_bytes(input).unwrap();
            assert_eq!(ok(input), expected, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bad_percent_encoding_names_the_field() {
        for (input, field) in [
            (&b"address=%ZZ@example.net"[..], named("address")),
            (b"address=bob%4", named("address")),
            (b"address=bob%", named("address")),
            (b"tag=x&address=%G0", named("address")),
            (b"a=1&%zz=1", Field::Position(2)),
        ] {
            assert_eq!(
                pairs(input),
                Err(FormError::Percent(field)),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            pairs(b"address=%ZZ").unwrap_err().to_string(),
            "bad percent-encoding in field 'address'"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_encoded_or_raw() {
        for (input, field) in [
            (&b"address=%ff%fe%40example.net"[..], named("address")),
            (b"address=\xff\xfe@example.net", named("address")),
            (b"%C3=1", Field::Position(1)),
            (b"a=1&\xff=2", Field::Position(2)),
        ] {
            assert_eq!(
                pairs(input),
                Err(FormError::Utf8(field)),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            pairs(b"address=%ff").unwrap_err().to_string(),
            "field 'address' is not valid UTF-8"
        );
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let name = "n".repeat(500);
        let e = pairs(format!("{name}=%zz").as_bytes()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.ends_with("…'"), "{shown}");
    }

    #[test]
    fn multipart_text_must_be_utf8() {
        assert_eq!(text("address", b"a@b.io").unwrap(), "a@b.io");
        assert_eq!(
            text("address", b"\xff\xfe@b.io"),
            Err(FormError::Utf8(named("address")))
        );
    }
}
