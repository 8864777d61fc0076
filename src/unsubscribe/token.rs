//! Unsubscribe tokens: the `{token}` in `{base_url}/u/{token}`.
//!
//! A token carries everything the landing page needs — the message id, the recipient, the
//! envelope sender, the message's tags and the app's UNSUB URL — so a click needs no lookup
//! and still works after the message record has expired. SPEC §4 asks that a changed byte is
//! rejected and that the address is not readable in the link, so the payload is sealed with
//! XChaCha20-Poly1305: the Poly1305 tag authenticates every byte (its check is constant-time)
//! and the cipher hides the address. XChaCha's 24-byte nonce is large enough to be drawn at
//! random for every token without any risk of reuse.
//!
//! # Format
//!
//! `token = base64url-nopad(nonce[24] || ciphertext || tag[16])`, and the plaintext is
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, [`VERSION`] |
//! | 1 | flags: bits 0–1 md_id form (0 text, 1 packed), bits 2–3 URL form (0 none, 1 `https://` elided, 2 `http://` elided, 3 verbatim); other bits zero |
//! | 10 + varint, or str | md_id: packed, the 20 hex digits of the queue id as 10 bytes and the recipient number as a varint; else the text |
//! | str | recipient |
//! | str | sender (empty for the null sender) |
//! | varint + str… | tags |
//! | str | the URL without its elided scheme, when bits 2–3 are non-zero |
//!
//! where `str` is a LEB128 varint length and UTF-8 bytes. Nothing may follow the last field.
//! A typical token (`jane.doe@example.net` from `news@shop.example`, tag `newsletter`, URL
//! `https://shop.example/bye`) is 121 bytes, 162 characters.
//!
//! Keys are `SHA-256(KEY_CONTEXT || secret)`: the prefix separates this use of the secret from
//! any other. Tokens sealed under an `old_secrets` entry still open, so the secret can be rotated
//! without breaking links in mail already delivered.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// The payload version written in the first plaintext byte; anything else is refused.
pub const VERSION: u8 = 1;
/// Domain-separation prefix of the key derivation.
const KEY_CONTEXT: &[u8] = b"quell unsubscribe token key v1\0";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Longest token [`Tokens::open`] looks at: far above any real link, small enough that a
/// hostile URL costs nothing to refuse.
pub const MAX_TOKEN_LEN: usize = 4096;

const MD_TEXT: u8 = 0;
const MD_PACKED: u8 = 1;
const URL_NONE: u8 = 0;
const URL_HTTPS: u8 = 1;
const URL_HTTP: u8 = 2;
const URL_VERBATIM: u8 = 3;

/// What a token says: the recipient copy it was made for and where to send the reader after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenData {
    /// The message id (`<queue id>.<n>`) of the recipient copy that carried the link.
    pub md_id: String,
    /// The recipient the link unsubscribes.
    pub recipient: String,
    /// The envelope sender whose mail the recipient leaves (empty for `<>`).
    pub sender: String,
    /// The message's tags, for `unsubscribe.per_tag`.
    pub tags: Vec<String>,
    /// The app's URL from `*|UNSUB:url|*`, where the confirm button redirects.
    pub url: Option<String>,
}

/// Why a token was refused. The landing page answers every one the same way (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("token is not unpadded base64url")]
    Encoding,
    #[error("token is too short to hold a nonce and a tag")]
    TooShort,
    /// Changed, truncated, extended, or sealed with a secret quell does not have.
    #[error("token does not authenticate under any configured secret")]
    Forged,
    /// Authentic but unreadable: a payload version this build does not know.
    #[error("token payload is malformed: {0}")]
    Payload(&'static str),
}

/// The token keys: the current one seals, every one opens.
#[derive(Clone)]
pub struct Tokens {
    current: XChaCha20Poly1305,
    old: Vec<XChaCha20Poly1305>,
}

impl fmt::Debug for Tokens {
    /// Says how many keys there are, never what they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("old_keys", &self.old.len())
            .finish_non_exhaustive()
    }
}

fn cipher(secret: &[u8]) -> XChaCha20Poly1305 {
    let mut hash = Sha256::new();
    hash.update(KEY_CONTEXT);
    hash.update(secret);
    let key: Key = hash.finalize();
    XChaCha20Poly1305::new(&key)
}

impl Tokens {
    /// Keys from `secret` (seals and opens) and `old_secrets` (open only).
    pub fn new(secret: &[u8], old_secrets: &[Vec<u8>]) -> Tokens {
        Tokens {
            current: cipher(secret),
            old: old_secrets.iter().map(|s| cipher(s)).collect(),
        }
    }

    /// Seals `data` under the current key with a fresh random nonce.
    pub fn seal(&self, data: &TokenData) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .current
            .encrypt(XNonce::from_slice(&nonce), encode(data).as_slice())
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Opens a token sealed under the current key or one of the old ones.
    pub fn open(&self, token: &str) -> Result<TokenData, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        // The engine refuses padding and non-zero trailing bits, so every token has exactly
        // one spelling: a changed character is a changed byte.
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Encoding)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(TokenError::TooShort);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        let plain = std::iter::once(&self.current)
            .chain(&self.old)
            .find_map(|key| key.decrypt(nonce, sealed).ok())
            .ok_or(TokenError::Forged)?;
        decode(&plain)
    }
}

/// The plaintext layout described in the module docs.
fn encode(data: &TokenData) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + data.recipient.len() + data.sender.len());
    out.push(VERSION);
    let packed = pack_md_id(&data.md_id);
    let (url_form, url_rest) = match data.url.as_deref() {
        None => (URL_NONE, ""),
        Some(u) => match (u.strip_prefix("https://"), u.strip_prefix("http://")) {
            (Some(rest), _) => (URL_HTTPS, rest),
            (_, Some(rest)) => (URL_HTTP, rest),
            _ => (URL_VERBATIM, u),
        },
    };
    let md_form = if packed.is_some() { MD_PACKED } else { MD_TEXT };
    out.push(md_form | (url_form << 2));
    match packed {
        Some((queue, n)) => {
            out.extend_from_slice(&queue);
            put_varint(&mut out, n);
        }
        None => put_str(&mut out, &data.md_id),
    }
    put_str(&mut out, &data.recipient);
    put_str(&mut out, &data.sender);
    put_varint(&mut out, data.tags.len() as u64);
    for tag in &data.tags {
        put_str(&mut out, tag);
    }
    if url_form != URL_NONE {
        put_str(&mut out, url_rest);
    }
    out
}

fn decode(bytes: &[u8]) -> Result<TokenData, TokenError> {
    let mut r = Reader(bytes);
    if r.byte()? != VERSION {
        return Err(TokenError::Payload("unknown version"));
    }
    let flags = r.byte()?;
    if flags & !0b1111 != 0 {
        return Err(TokenError::Payload("unknown flags"));
    }
    let md_id = match flags & 0b11 {
        MD_TEXT => r.string()?,
        MD_PACKED => {
            let queue = r.take(10)?;
            let n = r.varint()?;
            let mut id = String::with_capacity(24);
            for b in queue {
                id.push_str(&format!("{b:02X}"));
            }
            id.push('.');
            id.push_str(&n.to_string());
            id
        }
        _ => return Err(TokenError::Payload("unknown md_id form")),
    };
    let recipient = r.string()?;
    let sender = r.string()?;
    let count = r.varint()?;
    // Every tag takes at least its length byte: a count beyond the bytes left is a lie.
    if count > r.0.len() as u64 {
        return Err(TokenError::Payload("tag count"));
    }
    let tags = (0..count).map(|_| r.string()).collect::<Result<_, _>>()?;
    let url = match (flags >> 2) & 0b11 {
        URL_NONE => None,
        URL_HTTPS => Some(format!("https://{}", r.string()?)),
        URL_HTTP => Some(format!("http://{}", r.string()?)),
        _ => Some(r.string()?),
    };
    if !r.0.is_empty() {
        return Err(TokenError::Payload("trailing bytes"));
    }
    Ok(TokenData {
        md_id,
        recipient,
        sender,
        tags,
        url,
    })
}

/// `<20 uppercase hex digits>.<n>` (what [`crate::id::md_id`] makes) as 10 bytes and `n`.
/// Anything else — other case, leading zeros — is kept as text so it round-trips exactly.
fn pack_md_id(md_id: &str) -> Option<([u8; 10], u64)> {
    let (queue, n) = md_id.split_once('.')?;
    if queue.len() != 20
        || !queue
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
    {
        return None;
    }
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    let mut out = [0u8; 10];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&queue[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((out, n))
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over the plaintext; every read checks what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if n > self.0.len() {
            return Err(TokenError::Payload("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, TokenError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(TokenError::Payload("varint overflow"));
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(TokenError::Payload("varint overflow"))
    }

    fn string(&mut self) -> Result<String, TokenError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| TokenError::Payload("length"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| TokenError::Payload("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typical() -> TokenData {
        TokenData {
            md_id: "0194F3A2B7C1D2E3F4A5.1".into(),
            recipient: "jane.doe@example.net".into(),
            sender: "news@shop.example".into(),
            tags: vec!["newsletter".into()],
            url: Some("https://shop.example/bye".into()),
        }
    }

    fn raw(token: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(token).unwrap()
    }

    fn text(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn round_trips() {
        let t = Tokens::new(b"s3cret", &[]);
        for data in [
            typical(),
            TokenData {
                md_id: "not-a-canonical-id".into(),
                recipient: "Ünïcode@exämple.org".into(),
                sender: String::new(),
                tags: vec![],
                url: None,
            },
            TokenData {
                md_id: "0194f3a2b7c1d2e3f4a5.01".into(),
                recipient: "a@b".into(),
                sender: "s@t".into(),
                tags: vec!["a".into(), "".into(), "c".repeat(300)],
                url: Some("mailto:x@y".into()),
            },
            TokenData {
                md_id: format!("{}.{}", "F".repeat(20), u64::MAX),
                recipient: "a@b".into(),
                sender: "s@t".into(),
                tags: vec![],
                url: Some("http://x/?a=b&c=d#f".into()),
            },
        ] {
            let token = t.seal(&data);
            assert_eq!(t.open(&token).unwrap(), data, "{token}");
        }
    }

    #[test]
    fn typical_token_is_short_and_hides_the_addresses() {
        let t = Tokens::new(b"s3cret", &[]);
        let token = t.seal(&typical());
        // 24 nonce + 16 tag + 81 payload bytes = 121 bytes = 162 base64 characters.
        assert_eq!(token.len(), 162, "{token}");
        assert!(token.len() < 200);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let bytes = raw(&token);
        for needle in ["jane", "example", "shop", "news", "bye"] {
            assert!(!token.contains(needle));
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
        // Random nonces: the same data never gives the same token.
        assert_ne!(token, t.seal(&typical()));
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let t = Tokens::new(b"s3cret", &[]);
        let bytes = raw(&t.seal(&typical()));
        for i in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xFF] {
                let mut changed = bytes.clone();
                changed[i] ^= mask;
                assert_eq!(
                    t.open(&text(&changed)),
                    Err(TokenError::Forged),
                    "byte {i} ^ {mask:#x} accepted"
                );
            }
        }
    }

    #[test]
    fn every_changed_character_is_rejected() {
        let t = Tokens::new(b"s3cret", &[]);
        let token = t.seal(&typical());
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let changed: String = chars.into_iter().collect();
            assert!(t.open(&changed).is_err(), "character {i} changed, accepted");
        }
    }

    #[test]
    fn truncated_and_extended_tokens_are_rejected() {
        let t = Tokens::new(b"s3cret", &[]);
        let token = t.seal(&typical());
        let bytes = raw(&token);
        for n in 0..bytes.len() {
            assert!(t.open(&text(&bytes[..n])).is_err(), "{n} bytes accepted");
        }
        for n in 0..token.len() {
            assert!(t.open(&token[..n]).is_err(), "{n} characters accepted");
        }
        for extra in [&[0u8][..], &[0, 0, 0], b"A"] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(extra);
            assert_eq!(t.open(&text(&longer)), Err(TokenError::Forged));
        }
        for suffix in ["A", "AA", "AAAA", "=", "=="] {
            assert!(t.open(&format!("{token}{suffix}")).is_err(), "{suffix}");
        }
        assert_eq!(t.open(&"A".repeat(5000)), Err(TokenError::TooLong));
        assert_eq!(t.open("not base64!"), Err(TokenError::Encoding));
        assert_eq!(t.open(""), Err(TokenError::TooShort));
    }

    #[test]
    fn a_foreign_secret_is_rejected() {
        let ours = Tokens::new(b"s3cret", &[]);
        let theirs = Tokens::new(b"other", &[]);
        let token = theirs.seal(&typical());
        assert_eq!(ours.open(&token), Err(TokenError::Forged));
        // The empty secret is a secret like any other, not a bypass.
        let empty = Tokens::new(b"", &[]);
        assert_eq!(ours.open(&empty.seal(&typical())), Err(TokenError::Forged));
    }

    #[test]
    fn old_secrets_still_open_after_rotation() {
        let before = Tokens::new(b"first", &[]);
        let token = before.seal(&typical());
        let after = Tokens::new(b"second", &[b"first".to_vec()]);
        assert_eq!(after.open(&token).unwrap(), typical());
        let fresh = after.seal(&typical());
        assert_eq!(before.open(&fresh), Err(TokenError::Forged));
        let dropped = Tokens::new(b"second", &[]);
        assert_eq!(dropped.open(&token), Err(TokenError::Forged));
        assert_eq!(dropped.open(&fresh).unwrap(), typical());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let t = Tokens::new(b"s3cret", &[b"old".to_vec()]);
        let shown = format!("{t:?}");
        assert_eq!(shown, "Tokens { old_keys: 1, .. }");
    }

    #[test]
    fn malformed_payloads_are_refused_even_when_authentic() {
        let good = encode(&typical());
        assert_eq!(decode(&good).unwrap(), typical());
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(decode(&v2), Err(TokenError::Payload("unknown version")));
        let mut flags = good.clone();
        flags[1] |= 0x10;
        assert_eq!(decode(&flags), Err(TokenError::Payload("unknown flags")));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(TokenError::Payload("trailing bytes"))
        );
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "{n}");
        }
        assert!(
            decode(&[VERSION, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
                .is_err()
        );
    }

    #[test]
    fn md_id_packing() {
        assert!(pack_md_id("0194F3A2B7C1D2E3F4A5.1").is_some());
        for text in [
            "0194f3a2b7c1d2e3f4a5.1",
            "0194F3A2B7C1D2E3F4A.1",
            "0194F3A2B7C1D2E3F4A5.",
            "0194F3A2B7C1D2E3F4A5.01",
            "0194F3A2B7C1D2E3F4A5.+1",
            "0194F3A2B7C1D2E3F4A5",
            "0194F3A2B7C1D2E3F4A5.99999999999999999999999",
        ] {
            assert!(pack_md_id(text).is_none(), "{text}");
        }
    }
}
