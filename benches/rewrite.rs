//! MIME rewrite speed (SPEC §7: ≥ 200 MB/s for a 1 MiB quoted-printable text/html part).
//!
//! Generates one message: a single `text/html; charset=utf-8` part, quoted-printable, about
//! 1 MiB encoded, of newsletter-like HTML (inline styles, so plenty of `=3D`; UTF-8 text, so
//! `=C3=A9`; soft line breaks every 76 columns) with five `*|UNSUB:url|*` tags spread through
//! it, some of which the encoder splits with a soft line break. Throughput is the message
//! size over the time of one call:
//!
//! - `rewrite_unsub`: parse, decode, replace the five tags, re-encode their lines, splice;
//! - `has_unsub_tag`: the question asked of every message, on the same message;
//! - `has_unsub_tag_untagged`: the same message without tags (the quick scan, no parse);
//! - `append_footer`: the footer for a message without tags.
//!
//! Run: `cargo bench --bench rewrite`. Figures depend on the machine and its load.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quell::mime::footer::append_footer;
use quell::mime::unsub::{has_unsub_tag, rewrite_unsub};

const TARGET_SIZE: usize = 1 << 20;
const TAGS: usize = 5;
const LINK: &str = "https://quell.example/u/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";

/// A paragraph of newsletter HTML; `n` varies the text so lines do not repeat exactly.
fn paragraph(n: usize) -> String {
    format!(
        "<tr><td style=\"padding: 8px 16px; font-family: Helvetica, Arial, sans-serif; \
         font-size: 15px; color: #333333\"><p>Item {n}: the café on the corner now serves \
         crème brûlée every day — <a href=\"https://app.example/items/{n}?utm_source=news&amp;\
         utm_medium=email\" style=\"color: #0066cc\">read more</a>.</p></td></tr>\r\n"
    )
}

fn tag_paragraph(n: usize) -> String {
    format!(
        "<tr><td style=\"font-size: 12px\"><a href=\"*|UNSUB:https://app.example/unsub?u={n}\
         &amp;list=news|*\">Unsubscribe</a></td></tr>\r\n"
    )
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line ends, enough for the benchmark input.
fn qp_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 11 / 10);
    for line in text.split_inclusive("\r\n") {
        let (content, hard_break) = match line.strip_suffix("\r\n") {
            Some(c) => (c, "\r\n"),
            None => (line, ""),
        };
        let mut column = 0;
        for &b in content.as_bytes() {
            let piece = match b {
                b'=' | 128.. => format!("={b:02X}"),
                _ => char::from(b).to_string(),
            };
            if column + piece.len() > 75 {
                out.push_str("=\r\n");
                column = 0;
            }
            column += piece.len();
            out.push_str(&piece);
        }
        out.push_str(hard_break);
    }
    out
}

/// The benchmark message, with `tags` tags spread evenly through the body.
fn message(tags: usize) -> Vec<u8> {
    let mut html = String::from("<!DOCTYPE html>\r\n<html><body><table>\r\n");
    let per_tag = (TARGET_SIZE / paragraph(0).len()) / (tags + 1);
    let mut body = qp_encode(&html);
    let mut n = 0;
    while body.len() < TARGET_SIZE {
        n += 1;
        html.clear();
        html.push_str(&paragraph(n));
        if tags > 0 && n % per_tag == 0 && n / per_tag <= tags {
            html.push_str(&tag_paragraph(n));
        }
        body.push_str(&qp_encode(&html));
    }
    body.push_str("</table></body></html>\r\n");
    let headers = "From: News <news@app.example>\r\nTo: reader@example.org\r\n\
        Subject: Weekly\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    format!("{headers}{body}").into_bytes()
}

fn bench(c: &mut Criterion) {
    let tagged = message(TAGS);
    let untagged = message(0);
    let mut group = c.benchmark_group("mime_1mib_qp_html");
    group.throughput(Throughput::Bytes(tagged.len() as u64));

    let mut calls = 0;
    let out = rewrite_unsub(&tagged, &mut |_| {
        calls += 1;
        LINK.to_owned()
    })
    .expect("benchmark message rewrites");
    assert_eq!(calls, TAGS, "every tag found");
    assert!(!has_unsub_tag(&out));

    group.bench_function("rewrite_unsub", |b| {
        b.iter(|| rewrite_unsub(black_box(&tagged), &mut |_| LINK.to_owned()).map(|out| out.len()))
    });
    group.bench_function("has_unsub_tag", |b| {
        b.iter(|| has_unsub_tag(black_box(&tagged)))
    });
    group.throughput(Throughput::Bytes(untagged.len() as u64));
    group.bench_function("has_unsub_tag_untagged", |b| {
        b.iter(|| has_unsub_tag(black_box(&untagged)))
    });
    group.bench_function("append_footer", |b| {
        b.iter(|| append_footer(black_box(&untagged), LINK).map(|out| out.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
