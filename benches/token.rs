//! Unsubscribe token speed: `Tokens::seal` and `Tokens::open` (XChaCha20-Poly1305, see
//! `src/unsubscribe/token.rs`). Every tagged recipient copy seals one token at delivery; every
//! click on `/u/{token}` opens one, and so does every hostile or mangled link thrown at it.
//!
//! The payload is the module's "typical" token (`jane.doe@example.net` from
//! `news@shop.example`, tag `newsletter`, URL `https://shop.example/bye`: 121 bytes, 162
//! characters). The keys are those of a rotated deployment, `secret = "second"`,
//! `old_secrets = ["first"]`, unless the name says otherwise. One element is one call:
//!
//! - `seal`: encode, seal under the current key with a fresh random nonce, base64url;
//! - `open_current`: a token sealed under the current key (one AEAD attempt);
//! - `open_old_secret`: a token sealed under the old secret — the current key is tried and
//!   refused first, so this is the cost of rotation (two AEAD attempts);
//! - `open_old_secret_of_4`: four old secrets, the token under the last (five attempts);
//! - `open_forged`: a current-key token with its last tag byte flipped: refused by every key;
//! - `open_garbage_base64`: 121 random bytes in base64url: refused by every key;
//! - `open_garbage_text`: 162 characters that are not base64url: refused before any key.
//!
//! Run: `cargo bench --bench token`. Figures depend on the machine and its load.

use std::hint::black_box;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quell::unsubscribe::token::{TokenData, TokenError, Tokens};

fn typical() -> TokenData {
    TokenData {
        md_id: "0194F3A2B7C1D2E3F4A5.1".into(),
        recipient: "jane.doe@example.net".into(),
        sender: "news@shop.example".into(),
        tags: vec!["newsletter".into()],
        url: Some("https://shop.example/bye".into()),
    }
}

fn bench(c: &mut Criterion) {
    let data = typical();
    let rotated = Tokens::new(b"second", &[b"first".to_vec()]);
    let many_old = Tokens::new(
        b"second",
        &[
            b"zeroth-a".to_vec(),
            b"zeroth-b".to_vec(),
            b"zeroth-c".to_vec(),
            b"first".to_vec(),
        ],
    );
    let before_rotation = Tokens::new(b"first", &[]);

    let current = rotated.seal(&data);
    let old = before_rotation.seal(&data);
    let mut forged = URL_SAFE_NO_PAD
        .decode(&current)
        .expect("a token is base64url");
    *forged.last_mut().expect("a token is not empty") ^= 0x01;
    let forged = URL_SAFE_NO_PAD.encode(forged);
    let garbage_base64 = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 121]>());
    let garbage_text = "!".repeat(current.len());

    // The inputs are what the names say before anything is timed.
    assert_eq!(current.len(), 162, "{current}");
    assert_eq!(rotated.open(&current).as_ref(), Ok(&data));
    assert_eq!(rotated.open(&old).as_ref(), Ok(&data));
    assert_eq!(many_old.open(&old).as_ref(), Ok(&data));
    assert_eq!(rotated.open(&forged), Err(TokenError::Forged));
    assert_eq!(rotated.open(&garbage_base64), Err(TokenError::Forged));
    assert_eq!(rotated.open(&garbage_text), Err(TokenError::Encoding));

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal", |b| b.iter(|| rotated.seal(black_box(&data))));
    group.bench_function("open_current", |b| {
        b.iter(|| rotated.open(black_box(&current)))
    });
    group.bench_function("open_old_secret", |b| {
        b.iter(|| rotated.open(black_box(&old)))
    });
    group.bench_function("open_old_secret_of_4", |b| {
        b.iter(|| many_old.open(black_box(&old)))
    });
    group.bench_function("open_forged", |b| {
        b.iter(|| rotated.open(black_box(&forged)))
    });
    group.bench_function("open_garbage_base64", |b| {
        b.iter(|| rotated.open(black_box(&garbage_base64)))
    });
    group.bench_function("open_garbage_text", |b| {
        b.iter(|| rotated.open(black_box(&garbage_text)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Each call takes about a microsecond: 2 s per function gives millions of calls a sample
    // set and keeps the whole file under 30 s.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
