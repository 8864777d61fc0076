//! Why a MIME rewrite was refused. The caller forwards the message unchanged and logs the
//! reason: a message we cannot rewrite safely is still delivered, never mangled.

/// A message the rewrites of this module will not touch, with the reason.
///
/// Only whole-message problems are errors. A single part that cannot be decoded (bad
/// base64, a quoted-printable body mail-parser flags, a part cut off before its closing
/// boundary) is left byte for byte as it was while the other parts are still rewritten: one
/// broken attachment must not cost the reader a working unsubscribe link in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    /// mail-parser found no message at all (RFC 5322 §2.1). In practice only empty input:
    /// mail-parser reads any other bytes as some header section, possibly with no body.
    #[error("not an RFC 5322 message: no header section")]
    NoHeaders,
    /// mail-parser 0.11 panicked on it (e.g. "Invalid part ID, could not find multipart" for
    /// some broken multipart structures, found by `cargo fuzz`): malformed MIME, forwarded as
    /// it is.
    #[error("malformed MIME: the parser gave up")]
    ParserPanicked,
    /// A part's byte range lies outside the message or overlaps the previous one. mail-parser
    /// should never report this; splicing at such offsets could lose bytes, so we refuse.
    #[error("MIME part offsets {start}..{end} are not inside the {len}-byte message in order")]
    BadOffsets {
        /// First byte of the offending range.
        start: usize,
        /// One past its last byte.
        end: usize,
        /// Length of the message.
        len: usize,
    },
    /// The rewritten text would contain `--boundary` of an enclosing multipart, which ends the
    /// part early for every reader (RFC 2046 §5.1.1: the boundary must not occur in the
    /// encapsulated material). Only a link that happens to contain the boundary does this.
    #[error("the rewritten part would contain its multipart boundary {boundary:?}")]
    BoundaryInText {
        /// The boundary parameter, lossily decoded for the log.
        boundary: String,
    },
}
