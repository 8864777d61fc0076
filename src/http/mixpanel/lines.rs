//! The import's lines: line ends made uniform, and each line bounded.
//!
//! A row of the import is one line (see [`super::fields`]), numbered as the client counts them.
//! [`LfOnly`] turns `\r\n` and a bare `\r` into `\n` (and adds a missing final `\n`);
//! [`Lines`] hands out one line at a time, holding at most [`MAX_LINE`] bytes of it: a longer
//! line is read past, not kept, so a 100 MB line costs no more memory than a short one.

use std::io::{self, BufRead, BufReader, Read};

/// Reads `inner` with every line end turned into `\n` and a final `\n` guaranteed.
#[derive(Debug)]
pub(super) struct LfOnly<R> {
    inner: R,
    /// A byte read ahead to look past a `\r` at the end of a read.
    pending: Option<u8>,
    /// The last byte handed out.
    last: Option<u8>,
    finished: bool,
}

impl<R: Read> LfOnly<R> {
    pub fn new(inner: R) -> LfOnly<R> {
        LfOnly {
            inner,
            pending: None,
            last: None,
            finished: false,
        }
    }

    /// Reads one byte from `inner`, or `None` at its end.
    fn next_byte(&mut self) -> io::Result<Option<u8>> {
        let mut one = [0u8];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(one[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for LfOnly<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.finished {
            return Ok(0);
        }
        let n = match self.pending.take() {
            Some(b) => {
                out[0] = b;
                1
            }
            None => self.inner.read(out)?,
        };
        if n == 0 {
            self.finished = true;
            if self.last.is_some_and(|b| b != b'\n') {
                out[0] = b'\n';
                self.last = Some(b'\n');
                return Ok(1);
            }
            return Ok(0);
        }
        let mut w = 0;
        let mut i = 0;
        while i < n {
            let b = out[i];
            i += 1;
            if b == b'\r' {
                let next = if i < n {
                    Some(out[i])
                } else {
                    let ahead = self.next_byte()?;
                    self.pending = ahead;
                    ahead
                };
                if next == Some(b'\n') {
                    // `\r\n`: keep only the `\n`.
                    if i < n {
                        continue;
                    }
                    self.pending = None;
                }
                out[w] = b'\n';
            } else {
                out[w] = b;
            }
            w += 1;
        }
        self.last = Some(out[w - 1]);
        Ok(w)
    }
}

/// Longest line read as a row: a distinct id and a date fit many times over. A longer line is
/// skipped as it streams in (never held), and reported as its row's error.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// One line of the input (its `\n` removed).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line<'a> {
    Text(&'a [u8]),
    /// Longer than [`MAX_LINE`]: only its length was kept.
    TooLong(u64),
}

/// The lines of `inner` (after [`LfOnly`]), numbered from 1, each held only up to
/// [`MAX_LINE`] bytes: memory stays at the read buffer and one line, whatever the input.
#[derive(Debug)]
pub(super) struct Lines<R> {
    inner: BufReader<LfOnly<R>>,
    line: Vec<u8>,
    number: u64,
}

impl<R: Read> Lines<R> {
    pub fn new(inner: R) -> Lines<R> {
        Lines {
            inner: BufReader::with_capacity(MAX_LINE, LfOnly::new(inner)),
            line: Vec::new(),
            number: 0,
        }
    }

    /// The next line and its number, or `None` at the end of the input. A UTF-8 byte order
    /// mark at the start of line 1 is dropped.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.line.clear();
        let mut length = 0u64;
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (take, ends) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            length += take as u64;
            if length <= MAX_LINE as u64 {
                self.line.extend_from_slice(&available[..take]);
            }
            self.inner.consume(take + usize::from(ends));
            if ends {
                break;
            }
        }
        self.number += 1;
        if length > MAX_LINE as u64 {
            return Ok(Some((self.number, Line::TooLong(length))));
        }
        let mut text = &self.line[..];
        if self.number == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        Ok(Some((self.number, Line::Text(text))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `step` bytes at a time, to cross every boundary.
    struct Steps<'a>(&'a [u8], usize);

    impl Read for Steps<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn normalised(input: &str, step: usize, buf: usize) -> String {
        let mut r = LfOnly::new(Steps(input.as_bytes(), step));
        let mut out = Vec::new();
        let mut chunk = vec![0u8; buf];
        loop {
            let n = r.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_line_end_becomes_one_lf() {
        for step in [1, 2, 3, 64] {
            for buf in [1, 2, 5, 64] {
                assert_eq!(normalised("a\r\nb\rc\n\r\nd", step, buf), "a\nb\nc\n\nd\n");
                assert_eq!(normalised("a\n", step, buf), "a\n");
                assert_eq!(normalised("a\r", step, buf), "a\n");
                assert_eq!(normalised("\r\r\n", step, buf), "\n\n");
                assert_eq!(normalised("", step, buf), "");
            }
        }
    }

    fn lines(input: &[u8], step: usize) -> Vec<(u64, Result<String, u64>)> {
        let mut lines = Lines::new(Steps(input, step));
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => Ok(String::from_utf8(t.to_vec()).unwrap()),
                    Line::TooLong(len) => Err(len),
                },
            ));
        }
        out
    }

    #[test]
    fn lines_are_numbered_and_bounded() {
        let long = "x".repeat(MAX_LINE + 1);
        let fits = "y".repeat(MAX_LINE);
        let input = format!("\u{feff}a\r\n\n{long}\r{fits}\nlast");
        for step in [1, 7, 4096, MAX_LINE + 5] {
            let got = lines(input.as_bytes(), step);
            assert_eq!(
                got,
                [
                    (1, Ok("a".to_string())),
                    (2, Ok(String::new())),
                    (3, Err(MAX_LINE as u64 + 1)),
                    (4, Ok(fits.clone())),
                    (5, Ok("last".to_string())),
                ],
                "step {step}"
            );
        }
        assert!(lines(b"", 3).is_empty());
        // Only line 1 loses a byte order mark.
        assert_eq!(
            lines("a\n\u{feff}b".as_bytes(), 3)[1].1,
            Ok("\u{feff}b".into())
        );
    }

    #[test]
    fn a_long_line_is_not_held() {
        let mut input = vec![b'z'; 10 * MAX_LINE];
        input.extend_from_slice(b"\nnext\n");
        let mut lines = Lines::new(&input[..]);
        let (n, line) = lines.next_line().unwrap().unwrap();
        assert_eq!((n, line), (1, Line::TooLong(10 * MAX_LINE as u64)));
        assert!(
            lines.line.capacity() <= 2 * MAX_LINE,
            "{}",
            lines.line.capacity()
        );
        assert_eq!(lines.next_line().unwrap(), Some((2, Line::Text(b"next"))));
        assert_eq!(lines.next_line().unwrap(), None);
    }
}
