//! DKIM signing (RFC 6376) of each forwarded copy, after every rewrite, with mail-auth.
//!
//! `h=` covers From, To, Cc, Subject, Date, Message-ID, MIME-Version, Content-Type,
//! Reply-To, and List-Unsubscribe / List-Unsubscribe-Post, as RFC 8058 §4 requires for
//! one-click unsubscription to be trusted. Canonicalisation is relaxed/relaxed (§3.4.2,
//! §3.4.4): it survives the header re-folding and trailing-whitespace changes that relays
//! make.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

/// The header fields the signature covers, when present.
pub const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Why a key cannot be used or a message cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("no private key in the PEM data")]
    NoKey,
    #[error("unsupported key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A signer for one domain and selector.
pub struct Dkim {
    signer: Signer,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkim").finish_non_exhaustive()
    }
}

impl Dkim {
    /// A signer from a PEM private key: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8) or Ed25519
    /// (PKCS#8).
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<Dkim, DkimError> {
        use rustls::pki_types::pem::{self, PemObject};
        let key = match rustls::pki_types::PrivateKeyDer::from_pem_slice(pem) {
            Ok(key) => key,
            Err(pem::Error::NoItemsFound) => return Err(DkimError::NoKey),
            Err(e) => return Err(DkimError::Key(e.to_string())),
        };
        let signer = match RsaKey::<Sha256>::from_key_der(key.clone_key()) {
            Ok(rsa) => Signer::Rsa(configure(DkimSigner::from_key(rsa), domain, selector)),
            Err(rsa_error) => match &key {
                rustls::pki_types::PrivateKeyDer::Pkcs8(der) => {
                    let ed = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
                        .map_err(|e| {
                            DkimError::Key(format!("neither RSA ({rsa_error}) nor Ed25519 ({e})"))
                        })?;
                    Signer::Ed25519(configure(DkimSigner::from_key(ed), domain, selector))
                }
                _ => return Err(DkimError::Key(rsa_error.to_string())),
            },
        };
        Ok(Dkim { signer })
    }

    /// The `DKIM-Signature:` field (with its CRLF) to put on top of `message`.
    pub fn signature(&self, message: &[u8]) -> Result<String, DkimError> {
        let signature = match &self.signer {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }

    /// `message` with its signature prepended.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let header = self.signature(message)?;
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn configure<T: SigningKey>(
    signer: DkimSigner<T, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, Done> {
    signer
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: app@example.com\r\nTo: user@example.net\r\nSubject: hi\r\nList-Unsubscribe: <https://q.test/u/x>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n";

    fn ed25519_pem() -> Vec<u8> {
        let der = Ed25519Key::generate_pkcs8().unwrap();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n").into_bytes()
    }

    #[test]
    fn ed25519_signature_covers_the_unsubscribe_headers() {
        let dkim = Dkim::from_pem("example.com", "sel", &ed25519_pem()).unwrap();
        let header = dkim.signature(MESSAGE).unwrap();
        assert!(header.starts_with("DKIM-Signature:"), "{header}");
        let unfolded: String = header.split_whitespace().collect();
        assert!(unfolded.contains("d=example.com;"), "{unfolded}");
        assert!(unfolded.contains("s=sel;"));
        assert!(unfolded.contains("a=ed25519-sha256"));
        let h = unfolded
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            h.contains("list-unsubscribe:list-unsubscribe-post")
                || (h.contains("list-unsubscribe") && h.contains("list-unsubscribe-post")),
            "{h}"
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            Dkim::from_pem("d", "s", b"not a key"),
            Err(DkimError::NoKey)
        ));
        let junk = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(Dkim::from_pem("d", "s", junk).is_err());
    }
}
