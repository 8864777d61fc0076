//! Unsubscribe links (SPEC §4): the per-recipient tokens in `{base_url}/u/{token}`, the pages a
//! reader sees there, and the redirect back to the app.
//!
//! The same URL serves two audiences. A person follows the link from the message body
//! (`*|UNSUB:url|*`) or the RFC 2369 `List-Unsubscribe` header and gets a confirm page; a mail
//! provider's robot POSTs `List-Unsubscribe=One-Click` to it (RFC 8058) and gets a short `200`.
//! This module is pure (no store, no HTTP): [`crate::http::landing`] wires it to requests.
//!
//! | module | concept |
//! |---|---|
//! | [`token`] | sealing and opening tokens (XChaCha20-Poly1305), key rotation |
//! | [`pages`] | the HTML pages, escaped and self-contained |
//! | [`redirect`] | the UNSUB URL with `md_id` / `md_email` appended; md_email obfuscation |

pub mod pages;
pub mod redirect;
pub mod token;
