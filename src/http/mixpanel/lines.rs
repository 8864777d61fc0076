//! Line ends made uniform, so that each CSV row can be reported with the line it starts on.
//!
//! The `csv` crate counts lines by `\n` and gives a row the position where its read began; with
//! CRLF it consumes a row's `\n` while reading the next row, and a row after blank lines gets
//! the blank lines' position. Only the position *after* a row is reliable, and only when every
//! row ends in exactly one `\n`. [`LfOnly`] provides that: `\r\n` and a bare `\r` both become
//! `\n`, and a missing final `\n` is added. None of this changes what the rows hold: a distinct
//! id or a value with a line break in it is refused anyway.

use std::io::{self, Read};

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
}
