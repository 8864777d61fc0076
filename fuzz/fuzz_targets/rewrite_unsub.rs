//! Arbitrary bytes through every MIME rewrite: nothing may panic, and the answers must agree
//! (a message is rewritten exactly when `has_unsub_tag` says it has a tag; a rewrite keeps
//! everything before the first changed body).

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use quell::mime::footer::append_footer;
use quell::mime::unsub::{first_unsub_tag, has_unsub_tag, rewrite_unsub};
use quell::mime::MimeError;

fuzz_target!(init: {
    // libfuzzer-sys aborts in its panic hook, before any unwinding; quell catches the panics
    // mail-parser raises on some malformed multiparts (MimeError::ParserPanicked), so keep the
    // default hook. A panic quell does not catch still reaches libfuzzer-sys, which aborts.
    let _ = std::panic::take_hook();
}, |message: &[u8]| {
    let has = has_unsub_tag(message);
    assert_eq!(has, first_unsub_tag(message).is_some());

    let mut calls = 0;
    let rewritten = rewrite_unsub(message, &mut |_| {
        calls += 1;
        format!("https://q.test/u/TOKEN{calls}?m=1&r=2")
    });
    match rewritten {
        Ok(Cow::Owned(out)) => {
            assert!(has && calls > 0, "rewrote a message without a tag");
            assert_ne!(out.as_slice(), message);
        }
        Ok(Cow::Borrowed(out)) => {
            assert!(!has && calls == 0, "tag found but not rewritten");
            assert_eq!(out, message);
        }
        Err(MimeError::BoundaryInText { .. } | MimeError::ParserPanicked) => {}
        Err(_) => assert!(!has, "tag found in a message the rewrite refuses"),
    }

    // The footer must not panic. (Its output can be shorter than the input: a base64 body is
    // re-encoded in 76-character lines, which drops stray whitespace the input had.)
    let _ = append_footer(message, "https://q.test/u/FOOTER");
});
