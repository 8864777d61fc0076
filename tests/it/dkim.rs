//! DKIM: every forwarded copy is signed after rewriting, and verifies with mail-auth against a
//! preloaded key record (no DNS), with `h=` covering the List-Unsubscribe headers.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use crate::support::{message, Quell};

/// A TXT cache holding our selector's key record.
struct Records(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _: Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// Signs with `pem` and checks the forwarded copy against `record` (a `v=DKIM1` TXT value).
async fn signed_and_verified(pem: &[u8], record: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.pem");
    std::fs::write(&key_file, pem).unwrap();
    let q = Quell::start_with(|c| {
        c.dkim = Some(quell::config::DkimConfig {
            domain: "example.com".into(),
            selector: "quell".into(),
            key_file,
        });
    })
    .await;
    let body = message(
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <d1@example.com>\r\n",
        "Bye: *|UNSUB:https://app.example/bye|*",
    );
    q.send("app@example.com", &["user@example.net"], &body)
        .await;
    let got = q.upstream.wait_for(1).await;
    let raw = got[0].data.clone();
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("DKIM-Signature:"), "{text}");
    assert!(text.contains("List-Unsubscribe:"), "{text}");

    let records = Records(Mutex::new(HashMap::new()));
    records.insert(
        "quell._domainkey.example.com.".into(),
        DomainKey::parse(record.as_bytes()).unwrap().into(),
        Instant::now(),
    );
    let auth = MessageAuthenticator::new_cloudflare().unwrap();
    let parsed = AuthenticatedMessage::parse(&raw).expect("parse signed copy");
    let results = auth
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&records))
        .await;
    assert!(!results.is_empty());
    assert_eq!(results[0].result(), &DkimResult::Pass, "{text}");
    let h = results[0]
        .signature()
        .unwrap()
        .h
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect::<Vec<_>>();
    for name in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(h.iter().any(|x| x == name), "{name} not signed: {h:?}");
    }
}

#[tokio::test]
async fn ed25519_signature_verifies() {
    let der = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&der).unwrap();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        b64(&der)
    );
    let record = format!("v=DKIM1; k=ed25519; p={}", b64(&key.public_key()));
    signed_and_verified(pem.as_bytes(), &record).await;
}

#[tokio::test]
async fn rsa_signature_verifies() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let record = format!("v=DKIM1; k=rsa; p={}", b64(&key.public_key_der()));
    signed_and_verified(key.serialize_pem().as_bytes(), &record).await;
}
