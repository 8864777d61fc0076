//! One line of the import's CSV split into its fields (RFC 4180 §2 within one line).
//!
//! The import is read line by line (see [`super::lines`]): a row is one line, so that every
//! line is accounted for and a broken row cannot swallow the rows after it. A quoted field may
//! hold commas and doubled quotes but not a line break: neither a distinct id nor an
//! `unsubscribed` value may contain one, so a quote left open is that line's error, and the
//! next line is the next row.

/// Why a line is not a CSV row. Columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FieldError {
    #[error("unterminated quoted field: the quote opening column {0} is not closed on this line")]
    Unterminated(usize),
    #[error("a quote inside unquoted column {0}: quote the whole field and double the quote")]
    StrayQuote(usize),
    #[error("text after the closing quote of column {0}")]
    AfterQuote(usize),
}

/// The fields of `line` (without its line end). Spaces and tabs around a quoted field are
/// ignored; an unquoted field is kept as it is (the row checks trim it).
pub(super) fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, FieldError> {
    let mut fields = Vec::with_capacity(2);
    let mut rest = line;
    loop {
        let column = fields.len() + 1;
        let start = rest.trim_ascii_start();
        if let Some(quoted) = start.strip_prefix(b"\"") {
            let mut field = Vec::new();
            let mut i = 0;
            loop {
                match quoted[i..].iter().position(|&b| b == b'"') {
                    None => return Err(FieldError::Unterminated(column)),
                    Some(at) => {
                        field.extend_from_slice(&quoted[i..i + at]);
                        i += at + 1;
                        if quoted.get(i) == Some(&b'"') {
                            field.push(b'"');
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            fields.push(field);
            let after = quoted[i..].trim_ascii_start();
            match after.split_first() {
                None => return Ok(fields),
                Some((b',', more)) => rest = more,
                Some(_) => return Err(FieldError::AfterQuote(column)),
            }
        } else {
            let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            let field = &rest[..end];
            if field.contains(&b'"') {
                return Err(FieldError::StrayQuote(column));
            }
            fields.push(field.to_vec());
            if end == rest.len() {
                return Ok(fields);
            }
            rest = &rest[end + 1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|f| String::from_utf8(f).unwrap())
            .collect()
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(ok("a@x.io,true"), ["a@x.io", "true"]);
        assert_eq!(ok(""), [""]);
        assert_eq!(ok("a,"), ["a", ""]);
        assert_eq!(ok(",,"), ["", "", ""]);
        assert_eq!(ok(" a@x.io , true "), [" a@x.io ", " true "]);
        assert_eq!(ok("\"a@x.io\",\"2024-05-01\""), ["a@x.io", "2024-05-01"]);
        assert_eq!(ok(" \"a,b\" ,x"), ["a,b", "x"]);
        assert_eq!(ok("\"say \"\"hi\"\"\",1"), ["say \"hi\"", "1"]);
        assert_eq!(ok("\"\",\"\""), ["", ""]);
        assert_eq!(ok("x,\"\""), ["x", ""]);
    }

    #[test]
    fn broken_quotes_are_named_by_column() {
        for (line, error) in [
            ("\"a@x.io,true", FieldError::Unterminated(1)),
            ("a@x.io,\"true", FieldError::Unterminated(2)),
            ("a@x.io,\"tr\"\"ue", FieldError::Unterminated(2)),
            ("a\"b@x.io,true", FieldError::StrayQuote(1)),
            ("a@x.io,tr\"ue\"", FieldError::StrayQuote(2)),
            ("\"a@x.io\"x,true", FieldError::AfterQuote(1)),
        ] {
            assert_eq!(split(line.as_bytes()), Err(error), "{line}");
        }
    }
}
