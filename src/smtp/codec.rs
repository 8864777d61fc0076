//! The sans-IO byte codec under the session: command lines and the DATA stream. No tokio
//! here; the session feeds bytes in and acts on what comes out.
//!
//! DATA ends only at `CRLF . CRLF` (RFC 5321 §4.1.1.4). A bare LF or a bare CR never ends it
//! and never starts a line for dot-unstuffing: it is normalised to CRLF in the content, so the
//! message cannot be split by a lenient upstream (the `\n.\r\n` "SMTP smuggling" pattern).
//! The content is counted as it arrives and dropped past the size limit.

use bytes::{Buf, BytesMut};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest AUTH command or SASL response line (RFC 4954 §4).
pub const MAX_AUTH_LINE: usize = 12_288;

/// A command line was longer than allowed; its bytes were discarded up to its LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Splits command lines off the input buffer, never holding more than [`MAX_AUTH_LINE`] bytes
/// of an unfinished line.
#[derive(Debug, Default)]
pub struct LineReader {
    /// Inside an over-long line: drop bytes until its LF.
    discarding: bool,
}

impl LineReader {
    /// The next complete line (with its line end) from `buf`, or `None` if more bytes are
    /// needed. A line longer than [`MAX_AUTH_LINE`] yields `Err(LineTooLong)` once, when its LF
    /// arrives; the caller applies the tighter per-command limit.
    pub fn next_line(&mut self, buf: &mut BytesMut) -> Option<Result<BytesMut, LineTooLong>> {
        match buf.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let line = buf.split_to(pos + 1);
                if std::mem::take(&mut self.discarding) || line.len() > MAX_AUTH_LINE {
                    Some(Err(LineTooLong))
                } else {
                    Some(Ok(line))
                }
            }
            None => {
                if buf.len() > MAX_AUTH_LINE {
                    buf.clear();
                    self.discarding = true;
                }
                None
            }
        }
    }
}

/// Where the DATA decoder is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a CRLF (or the first line).
    LineStart,
    /// Read a `.` at [`State::LineStart`].
    Dot,
    /// Read `.` CR at a line start: LF ends the data.
    DotCr,
    /// Inside a line.
    Mid,
    /// Read a CR inside a line.
    Cr,
}

/// The message was larger than the limit; its bytes were read and discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig;

/// Decodes the DATA stream: un-stuffs dots, normalises line ends to CRLF, enforces the size.
/// The decoded content collects in memory; the caller may [`DataDecoder::take`] it piecewise
/// to write a large message out while it arrives.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    out: Vec<u8>,
    /// Content bytes decoded so far, taken or not.
    len: usize,
    max: usize,
    overflow: bool,
}

impl DataDecoder {
    /// A decoder that accepts at most `max` bytes of content.
    pub fn new(max: usize) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            out: Vec::with_capacity(max.min(64 * 1024)),
            len: 0,
            max,
            overflow: false,
        }
    }

    /// Consumes bytes from `buf` until the end-of-data marker (consumed too, returns `true`)
    /// or until `buf` is empty (returns `false`). Bytes after the marker stay in `buf`: with
    /// PIPELINING they are the next commands.
    pub fn feed(&mut self, buf: &mut BytesMut) -> bool {
        let mut i = 0;
        let input = &buf[..];
        let mut done = false;
        while i < input.len() {
            if self.state == State::Mid {
                // Fast path: copy up to the next CR or LF.
                let rest = &input[i..];
                let n = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                self.push(&rest[..n]);
                i += n;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            match (self.state, b) {
                (State::LineStart, b'.') => self.state = State::Dot,
                (State::LineStart | State::Mid, b'\r') => self.state = State::Cr,
                (State::LineStart | State::Mid, b'\n') => {
                    // Bare LF: a line end in the content, but not a line start for the protocol.
                    self.push(b"\r\n");
                    self.state = State::Mid;
                }
                (State::LineStart | State::Mid, _) => {
                    self.push(&[b]);
                    self.state = State::Mid;
                }
                (State::Dot, b'\r') => self.state = State::DotCr,
                (State::Dot, b'\n') => {
                    self.push(b".\r\n");
                    self.state = State::Mid;
                }
                (State::Dot, _) => {
                    // A stuffed dot: the first one is removed (RFC 5321 §4.5.2).
                    self.push(&[b]);
                    self.state = State::Mid;
                }
                (State::DotCr, b'\n') => {
                    done = true;
                    break;
                }
                (State::DotCr, _) => {
                    // ".\r" then something else: a bare CR after a lone dot.
                    self.push(b".\r\n");
                    self.state = State::Mid;
                    i -= 1;
                }
                (State::Cr, b'\n') => {
                    self.push(b"\r\n");
                    self.state = State::LineStart;
                }
                (State::Cr, _) => {
                    // Bare CR: normalised, then the byte is read again inside the new line.
                    self.push(b"\r\n");
                    self.state = State::Mid;
                    i -= 1;
                }
            }
        }
        buf.advance(i);
        done
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.len + bytes.len() > self.max {
            self.overflow = true;
            self.out = Vec::new();
            return;
        }
        self.len += bytes.len();
        self.out.extend_from_slice(bytes);
    }

    /// Bytes decoded and not yet taken.
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes decoded so far (none once the message is too big).
    pub fn take(&mut self) -> Vec<u8> {
        let capacity = self.out.capacity();
        std::mem::replace(&mut self.out, Vec::with_capacity(capacity))
    }

    /// The content (after what was taken) once [`DataDecoder::feed`] returned `true`.
    pub fn finish(self) -> Result<Vec<u8>, TooBig> {
        if self.overflow {
            Err(TooBig)
        } else {
            Ok(self.out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoded message (if the end was seen) and the bytes left after it.
    type Decoded = (Option<Result<Vec<u8>, TooBig>>, Vec<u8>);

    fn decode(input: &[u8], max: usize) -> Decoded {
        let mut d = DataDecoder::new(max);
        let mut buf = BytesMut::from(input);
        let done = d.feed(&mut buf);
        (done.then(|| d.finish()), buf.to_vec())
    }

    #[test]
    fn data_table() {
        // (input, content if the end is seen, bytes left after the end)
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);
        let cases: &[Case] = &[
            (
                b"Subject: x\r\n\r\nhi\r\n.\r\n",
                Some(b"Subject: x\r\n\r\nhi\r\n"),
                b"",
            ),
            (b".\r\n", Some(b""), b""),
            (
                b"a\r\n..b\r\n.\r\nQUIT\r\n",
                Some(b"a\r\n.b\r\n"),
                b"QUIT\r\n",
            ),
            // bare LF before the dot: not an end, normalised, dot kept as content
            (b"a\n.\r\nb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b""),
            // bare LF line end then dot-LF: neither ends
            (b"a\r\n.\nb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b""),
            // bare CR variants
            (b"a\r.\r\nb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b""),
            (b"a\r\n.\rb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b""),
            (b"x\ny\r\n.\r\n", Some(b"x\r\ny\r\n"), b""),
            // no end yet
            (b"a\r\nb\n.\n", None, b""),
        ];
        for (input, want, rest) in cases {
            let (got, left) = decode(input, 1000);
            match want {
                Some(w) => assert_eq!(
                    got,
                    Some(Ok(w.to_vec())),
                    "input {:?}",
                    String::from_utf8_lossy(input)
                ),
                None => assert!(
                    got.is_none(),
                    "input {:?} ended",
                    String::from_utf8_lossy(input)
                ),
            }
            assert_eq!(&left[..], *rest);
        }
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let input = b"H: v\r\n\r\n..x\r\nline\nnext\r\n.\r\nNOOP\r\n";
        let mut d = DataDecoder::new(1000);
        let mut done = false;
        let mut consumed = 0;
        for &b in input.iter() {
            let mut buf = BytesMut::from(&[b][..]);
            consumed += 1;
            if d.feed(&mut buf) {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(&input[consumed..], b"NOOP\r\n");
        assert_eq!(d.finish().unwrap(), b"H: v\r\n\r\n.x\r\nline\r\nnext\r\n");
    }

    #[test]
    fn size_is_enforced_but_stream_is_consumed() {
        let (got, rest) = decode(b"0123456789\r\n.\r\nRSET\r\n", 5);
        assert_eq!(got, Some(Err(TooBig)));
        assert_eq!(rest, b"RSET\r\n");
        let (got, _) = decode(b"0123\r\n.\r\n", 6);
        assert_eq!(got, Some(Ok(b"0123\r\n".to_vec())));
    }

    #[test]
    fn taken_parts_count_toward_the_size() {
        let mut d = DataDecoder::new(10);
        let mut buf = BytesMut::from(&b"01234\r\n"[..]);
        assert!(!d.feed(&mut buf));
        assert_eq!(d.take(), b"01234\r\n");
        assert_eq!(d.buffered(), 0);
        let mut buf = BytesMut::from(&b"5678\r\n.\r\n"[..]);
        assert!(d.feed(&mut buf));
        assert_eq!(d.finish(), Err(TooBig));
    }

    #[test]
    fn lines_are_bounded() {
        let mut r = LineReader::default();
        let mut buf = BytesMut::from(&b"NOOP\r\nQU"[..]);
        assert_eq!(&r.next_line(&mut buf).unwrap().unwrap()[..], b"NOOP\r\n");
        assert!(r.next_line(&mut buf).is_none());
        buf.extend_from_slice(b"IT\r\n");
        assert_eq!(&r.next_line(&mut buf).unwrap().unwrap()[..], b"QUIT\r\n");

        let mut buf = BytesMut::from(&vec![b'a'; MAX_AUTH_LINE + 10][..]);
        assert!(r.next_line(&mut buf).is_none());
        assert!(buf.is_empty(), "an over-long line is not kept");
        buf.extend_from_slice(b"aaa\r\nNOOP\r\n");
        assert_eq!(r.next_line(&mut buf).unwrap(), Err(LineTooLong));
        assert_eq!(&r.next_line(&mut buf).unwrap().unwrap()[..], b"NOOP\r\n");
    }
}
