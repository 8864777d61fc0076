//! Pure byte rewrites of messages: bytes in, bytes out, nothing else of quell imported.
//!
//! Rewrites splice only the ranges they change and borrow the input when nothing applies
//! (STYLE convention 7): mail-parser finds each part's byte range, and every byte outside the
//! bodies a rewrite changes (headers, boundaries, preamble and epilogue, other parts,
//! attachments) is copied as it was. Messages arrive with CRLF line ends; LF-only input is
//! handled the same way, with added lines written in the line ending the message uses.
//!
//! | module | concept |
//! |---|---|
//! | [`unsub`] | `*|UNSUB|*` / `*|UNSUB:url|*` merge tags: found, and replaced by links |
//! | [`footer`] | the unsubscribe footer for messages without a tag |
//! | [`headers`] | `List-Unsubscribe` and friends: test for a field, prepend folded fields |
//! | [`dkim`] | DKIM signing of each forwarded copy (RFC 6376, RFC 8058 §4) |
//! | [`tags`] | `X-MC-Tags` / `X-Mailgun-Tag` read and removed |
//! | [`lines`] | lines longer than SMTP allows, folded before sending |
//! | `parts` | which parts are text a reader sees, at which offsets (mail-parser) |
//! | `transfer`, `qp` | decoding a body and writing edits back in its transfer encoding |
//! | `merge_tag` | the tag grammar, and the quick scan that spares most messages a parse |
//! | `splice` | patches written into the message; the multipart boundary check |
//! | `fields`, `search`, `html` | header field spans; byte search; HTML (un)escaping |

pub mod dkim;
mod error;
mod fields;
pub mod footer;
pub mod headers;
mod html;
pub mod lines;
mod merge_tag;
mod parts;
mod qp;
mod search;
mod splice;
pub mod tags;
mod transfer;
pub mod unsub;

pub use error::MimeError;
