//! Golden files for the MIME rewrites (STYLE convention 7): every `tests/fixtures/mime/NAME.eml`
//! is rewritten and compared with `NAME.expected.eml`, once as stored (CRLF) and once with
//! every CRLF turned into LF, against the expected file converted the same way.
//!
//! Besides the bytes, each case checks the URLs handed to `link`, `has_unsub_tag` and
//! `first_unsub_tag`, that no byte outside a text body changed (mail-parser's offsets on
//! input and output, compared independently of the code under test), that quoted-printable
//! and base64 lines stay within 76 characters, and that a changed text part has no tag left.
//!
//! `QUELL_BLESS_MIME=1 cargo test --test mime_golden` writes the expected files from the
//! current output instead of comparing; review every byte of the diff before committing.
//!
//! The last two tests feed mutated fixtures and arbitrary bytes to every function and only
//! ask that nothing panics and that the answers agree with each other.

use std::borrow::Cow;
use std::ops::Range;
use std::path::PathBuf;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use quell::mime::footer::append_footer;
use quell::mime::headers::{has_header, prepend_headers};
use quell::mime::tags::take_tags;
use quell::mime::unsub::{first_unsub_tag, has_unsub_tag, rewrite_unsub};
use quell::mime::MimeError;

/// What a case runs.
#[derive(Clone, Copy)]
enum Op {
    /// `rewrite_unsub`; the URLs `link` must be given, in order.
    Unsub(&'static [Option<&'static str>]),
    /// `append_footer` with [`FOOTER_LINK`].
    Footer,
}

const FOOTER_LINK: &str = "https://q.test/u/FOOTER?m=1&r=2";

/// Every fixture and what it covers.
const CASES: &[(&str, Op)] = &[
    // 7bit text/plain, one tag with a URL.
    (
        "plain_7bit",
        Op::Unsub(&[Some("https://app.example/unsubscribe?list=weekly")]),
    ),
    // 8bit UTF-8 HTML, the tag in href with `&amp;` in its URL: unescaped for `link`, the
    // link escaped when written.
    (
        "html_href",
        Op::Unsub(&[Some("https://app.example/unsub?u=42&list=news")]),
    ),
    // quoted-printable HTML: the tag split by a soft line break, `=3D` and `&amp;` in the URL;
    // only that logical line is re-encoded.
    (
        "qp_html_split",
        Op::Unsub(&[Some("https://app.example/unsub?u=42&list=news")]),
    ),
    // base64 UTF-8 text/plain, lower-case `unsub`: the body is re-encoded in 76-char lines.
    (
        "base64_text",
        Op::Unsub(&[Some("https://app.example/u?id=7")]),
    ),
    // multipart/alternative (QP latin-1 text + 7bit HTML) inside multipart/mixed with a
    // text/plain attachment holding a tag (untouched), a base64 image, preamble, epilogue.
    (
        "nested_alternative_attachment",
        Op::Unsub(&[
            Some("https://app.example/bye"),
            Some("https://app.example/bye?from=html"),
        ]),
    ),
    // `*|UNSUB|*` and `*|unsub|*` (no URL), and near misses that are not tags.
    ("bare_tag", Op::Unsub(&[None, None])),
    // other merge tags, `unsub` in words, `|` and `*` alone: returned borrowed.
    ("no_tag", Op::Unsub(&[])),
    // footer after the text of a 7bit text/plain message.
    ("footer_text", Op::Footer),
    // footer before `</body>` of quoted-printable HTML.
    ("footer_html", Op::Footer),
    // footer in base64 text and in HTML without `</body>`; the attachment untouched.
    ("footer_alternative", Op::Footer),
    // closing boundary missing: the complete text part is rewritten, the unterminated HTML
    // part (which may be cut off) is left as it was.
    (
        "malformed_missing_boundary",
        Op::Unsub(&[Some("https://app.example/bye")]),
    ),
    // one base64 part with characters outside the alphabet, one with padding in the middle:
    // both left alone; the HTML part is still rewritten.
    (
        "malformed_bad_base64",
        Op::Unsub(&[Some("https://app.example/html")]),
    ),
];

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mime")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// The deterministic link: `https://q.test/u/TOKEN{n}?m=1&r=2`, with `&` and `=` so that
/// HTML escaping and quoted-printable encoding of the link are exercised.
fn token_link(n: usize) -> String {
    format!("https://q.test/u/TOKEN{n}?m=1&r=2")
}

/// Runs `op` on `input`; the output (the input when borrowed), whether it was borrowed, and
/// the URLs `link` was given.
fn run(op: Op, input: &[u8]) -> (Vec<u8>, bool, Vec<Option<String>>) {
    let mut seen: Vec<Option<String>> = Vec::new();
    let out = match op {
        Op::Unsub(_) => rewrite_unsub(input, &mut |url| {
            seen.push(url.map(str::to_owned));
            token_link(seen.len())
        }),
        Op::Footer => append_footer(input, FOOTER_LINK),
    };
    let out = out.unwrap_or_else(|e| panic!("rewrite refused: {e}"));
    let borrowed = matches!(out, Cow::Borrowed(_));
    (out.into_owned(), borrowed, seen)
}

#[test]
fn golden_files_with_crlf_and_lf() {
    let bless = std::env::var_os("QUELL_BLESS_MIME").is_some();
    for &(name, op) in CASES {
        let input = read(&format!("{name}.eml"));
        assert!(
            input.windows(2).any(|w| w == b"\r\n"),
            "{name}: fixtures are stored with CRLF"
        );
        if bless {
            let (out, _, _) = run(op, &input);
            std::fs::write(fixture_path(&format!("{name}.expected.eml")), out).expect("bless");
            continue;
        }
        let expected = read(&format!("{name}.expected.eml"));
        check_case(name, op, &input, &expected);
        check_case(
            &format!("{name} (LF)"),
            op,
            &crlf_to_lf(&input),
            &crlf_to_lf(&expected),
        );
    }
}

fn check_case(name: &str, op: Op, input: &[u8], expected: &[u8]) {
    let (out, borrowed, seen) = run(op, input);
    assert!(
        out == expected,
        "{name}: output differs from the expected file\n--- got ---\n{}\n--- expected ---\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(borrowed, out == input, "{name}: borrowed iff unchanged");
    if let Op::Unsub(urls) = op {
        let urls: Vec<Option<String>> = urls.iter().map(|u| u.map(str::to_owned)).collect();
        assert_eq!(seen, urls, "{name}: URLs given to link");
        assert_eq!(
            has_unsub_tag(input),
            !urls.is_empty(),
            "{name}: has_unsub_tag"
        );
        assert_eq!(
            first_unsub_tag(input).map(|t| t.url),
            urls.first().cloned(),
            "{name}: first_unsub_tag"
        );
        assert!(
            !has_unsub_tag(&out),
            "{name}: a tag is left after rewriting"
        );
    }
    assert_only_text_bodies_changed(name, input, &out);
}

/// A leaf part's body range, and whether a rewrite may change it: text/plain or text/html
/// (or no Content-Type) that is not an attachment and that mail-parser decoded cleanly.
struct Leaf {
    body: Range<usize>,
    rewritable: bool,
    /// The decoded text, for text parts.
    text: Option<String>,
}

fn leaves(message: &[u8]) -> Vec<Leaf> {
    let parsed = MessageParser::default()
        .parse(message)
        .expect("golden messages parse");
    parsed
        .parts
        .iter()
        .filter(|p| !matches!(p.body, PartType::Multipart(_)))
        .map(|p| {
            let texty = p.content_type().is_none_or(|ct| {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("plain") || s.eq_ignore_ascii_case("html")
                    })
            });
            let attachment = p.content_disposition().is_some_and(|d| d.is_attachment());
            let text = match &p.body {
                PartType::Text(t) | PartType::Html(t) => Some(t.to_string()),
                _ => None,
            };
            Leaf {
                body: p.offset_body as usize..p.offset_end as usize,
                rewritable: texty && !attachment && !p.is_encoding_problem && text.is_some(),
                text,
            }
        })
        .collect()
}

/// Cuts the rewritable bodies out of input and output: what remains (headers, boundaries,
/// preamble, epilogue, other parts) must be identical. Rewritten bodies must keep legal line
/// lengths and hold no tag; bodies left alone must be byte-identical.
fn assert_only_text_bodies_changed(name: &str, input: &[u8], output: &[u8]) {
    let before = leaves(input);
    let after = leaves(output);
    assert_eq!(before.len(), after.len(), "{name}: part structure changed");
    let (mut pos_in, mut pos_out) = (0, 0);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.rewritable, a.rewritable, "{name}: part kind changed");
        if !b.rewritable {
            continue;
        }
        assert_eq!(
            &input[pos_in..b.body.start],
            &output[pos_out..a.body.start],
            "{name}: bytes outside the text bodies changed"
        );
        pos_in = b.body.end;
        pos_out = a.body.end;
        let (old, new) = (&input[b.body.clone()], &output[a.body.clone()]);
        if old != new {
            for line in new.split(|&c| c == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert!(line.len() <= 998, "{name}: line over 998 octets");
            }
            let text = a.text.as_deref().unwrap_or_default().to_ascii_lowercase();
            assert!(
                !text.contains("*|unsub|*") && !text.contains("*|unsub:"),
                "{name}: tag left in a changed part"
            );
        }
    }
    assert_eq!(&input[pos_in..], &output[pos_out..], "{name}: tail changed");
    assert_encoded_line_lengths(name, output);
}

/// The checker above must catch a changed byte anywhere outside a text body: a header, a
/// boundary line, an attachment, the epilogue. Otherwise the golden test could not fail on one.
#[test]
fn a_change_outside_the_text_bodies_is_caught() {
    let input = read("nested_alternative_attachment.eml");
    let (output, _, _) = run(Op::Unsub(&[]), &input);
    assert_only_text_bodies_changed("sanity", &input, &output);
    for needle in [
        &b"Subject"[..],
        b"--inner-19c2\r\nContent-Type: text/html",
        b"Template kept",
        b"Epilogue",
    ] {
        let at = output
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle in fixture");
        let mut changed = output.clone();
        changed[at + 2] ^= 0x20;
        let caught = std::panic::catch_unwind(|| {
            assert_only_text_bodies_changed("mutated", &input, &changed);
        });
        assert!(caught.is_err(), "change at {at} not caught");
    }
}

/// Quoted-printable and base64 lines of every part are at most 76 characters (RFC 2045
/// §6.7 rule 5, §6.8).
fn assert_encoded_line_lengths(name: &str, message: &[u8]) {
    let parsed = MessageParser::default().parse(message).expect("parses");
    for part in &parsed.parts {
        let cte = part
            .content_transfer_encoding()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if cte != "quoted-printable" && cte != "base64" {
            continue;
        }
        let body = &message[part.offset_body as usize..part.offset_end as usize];
        for line in body.split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                line.len() <= 76,
                "{name}: {cte} line of {} characters: {}",
                line.len(),
                String::from_utf8_lossy(line)
            );
        }
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte strings that steer a mutation towards the parser's and encoders' edge cases.
const TOKENS: &[&[u8]] = &[
    b"*|UNSUB|*",
    b"*|UNSUB:https://x/?a=1&amp;b|*",
    b"*|UNS=\r\nUB:",
    b"|*",
    b"=",
    b"=\r\n",
    b"=\n",
    b"=2A",
    b"\r\n",
    b"\n",
    b"\r",
    b"--",
    b"\r\n--b1\r\n",
    b"\r\n--outer-7f3a--\r\n",
    b"\r\n\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
    b"Content-Type: text/html\r\n",
    b"Content-Disposition: attachment\r\n",
    b"</body>",
    b"\xff\xfe",
    b"\0",
];

fn mutate(rng: &mut Rng, message: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(message.len() + 1);
        match rng.below(5) {
            0 if !message.is_empty() => {
                let i = rng.below(message.len());
                message[i] = rng.next() as u8;
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                message.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(64)).min(message.len());
                message.drain(at..end);
            }
            3 => message.truncate(at),
            _ => {
                let from = rng.below(message.len() + 1);
                let end = (from + rng.below(128)).min(message.len());
                let copy = message[from..end].to_vec();
                message.splice(at..at, copy);
            }
        }
    }
}

/// Calls everything on `message`; panics only on a disagreement between the answers.
fn exercise(message: &[u8]) {
    let has = has_unsub_tag(message);
    assert_eq!(has, first_unsub_tag(message).is_some());
    let mut calls = 0;
    let rewritten = rewrite_unsub(message, &mut |_| {
        calls += 1;
        token_link(calls)
    });
    match &rewritten {
        Ok(Cow::Owned(out)) => {
            assert!(has, "rewrote a message without a tag");
            assert!(calls > 0);
            assert_ne!(out.as_slice(), message);
        }
        Ok(Cow::Borrowed(_)) => assert!(!has && calls == 0, "tag found but not rewritten"),
        Err(MimeError::BoundaryInText { .. }) => {}
        Err(_) => assert!(!has, "tag found in a message rewrite refuses"),
    }
    let _ = append_footer(message, FOOTER_LINK);
    let _ = has_header(message, "List-Unsubscribe");
    let _ = take_tags(message);
    let out = prepend_headers(message, &[("List-Unsubscribe", "<https://q.test/u/x>")]);
    assert!(out.ends_with(message));
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for &(name, _) in CASES {
        let original = read(&format!("{name}.eml"));
        for base in [original.clone(), crlf_to_lf(&original)] {
            for _ in 0..150 {
                let mut message = base.clone();
                mutate(&mut rng, &mut message);
                exercise(&message);
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..3000 {
        let mut message = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.below(2) == 0 {
                message.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            } else {
                message.extend((0..rng.below(12)).map(|_| rng.next() as u8));
            }
        }
        exercise(&message);
    }
}
