//! Unsubscribe links end to end: SMTP in, per-recipient copies out with their own links and
//! List-Unsubscribe headers, a click over HTTP, and the sender-level refusal that follows.

use base64::Engine;
use mail_parser::MessageParser;
use quell::config::ListUnsubscribe;
use quell::unsubscribe::token::TokenData;

use crate::support::{message, Quell, Received};

/// Every `http://…/u/<token>` link in `text`.
fn links(text: &str, base: &str) -> Vec<String> {
    let prefix = format!("{base}/u/");
    text.match_indices(&prefix)
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| c == '"' || c == '>' || c == '<' || c.is_whitespace())
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// The decoded text of the first text part, and the List-Unsubscribe header value.
fn view(copy: &Received) -> (String, Option<String>, bool) {
    let parsed = MessageParser::new().parse(&copy.data).expect("parse copy");
    let body = parsed
        .body_text(0)
        .or_else(|| parsed.body_html(0))
        .map(|b| b.into_owned())
        .unwrap_or_default();
    let header = parsed
        .header_raw("List-Unsubscribe")
        .map(|h| h.split_whitespace().collect::<String>());
    let post = parsed
        .header_raw("List-Unsubscribe-Post")
        .is_some_and(|v| v.trim() == "List-Unsubscribe=One-Click");
    (body, header, post)
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn each_recipient_gets_its_own_link_and_headers() {
    let q = Quell::start().await;
    let base = q.url("");
    let body = message(
        "X-MC-Tags: news\r\n",
        "Hello\r\nLeave: *|UNSUB:https://app.example/bye?list=1|*\r\n",
    );
    q.send(
        "news@shop.example",
        &["a@example.net", "b@example.net"],
        &body,
    )
    .await;
    let got = q.upstream.wait_for(2).await;
    let mut seen = Vec::new();
    for copy in &got {
        let (text, header, post) = view(copy);
        assert!(!text.contains("*|UNSUB"), "tag left in {text}");
        let found = links(&text, &base);
        assert_eq!(found.len(), 1, "{text}");
        let data = q
            .state
            .tokens
            .open(token_of(&found[0]))
            .expect("valid token");
        assert_eq!(data.recipient, copy.to[0]);
        assert_eq!(data.sender, "news@shop.example");
        assert_eq!(data.url.as_deref(), Some("https://app.example/bye?list=1"));
        assert_eq!(data.tags, ["news"]);
        assert!(
            found[0].len() < base.len() + 200,
            "link too long: {}",
            found[0]
        );
        let header = header.expect("List-Unsubscribe added");
        assert!(
            header.starts_with(&format!("<{base}/u/")) && header.ends_with('>'),
            "{header}"
        );
        assert!(post, "List-Unsubscribe-Post added");
        seen.push(found[0].clone());
    }
    assert_ne!(seen[0], seen[1], "copies share a link");
}

#[tokio::test]
async fn one_click_from_the_header_refuses_that_sender_only() {
    let q = Quell::start().await;
    let base = q.url("");
    q.send(
        "news@shop.example",
        &["a@example.net", "b@example.net"],
        &message("", "*|UNSUB|*"),
    )
    .await;
    let got = q.upstream.wait_for(2).await;
    let copy_a = got.iter().find(|r| r.to == ["a@example.net"]).unwrap();
    let (_, header, _) = view(copy_a);
    let url = header
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    assert!(url.starts_with(&base));
    // What a mailbox provider does for RFC 8058.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&url)
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    let data: TokenData = q.state.tokens.open(token_of(&url)).unwrap();
    let record = q.state.store.message_get(&data.md_id).unwrap().unwrap();
    assert_eq!(record.status, quell::store::Status::Unsub);

    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<news@shop.example>", "250").await;
    c.expect("RCPT TO:<a@example.net>", "550 5.7.1").await;
    c.expect("RCPT TO:<b@example.net>", "250").await;
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<billing@shop.example>", "250").await;
    c.expect("RCPT TO:<a@example.net>", "250").await;
}

#[tokio::test]
async fn list_unsubscribe_modes_and_the_apps_own_header() {
    // auto: no tag, no footer -> no header, message untouched but for the trace field.
    let q = Quell::start().await;
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message("", "plain receipt"),
    )
    .await;
    let got = q.upstream.wait_for(1).await;
    assert!(view(&got[0]).1.is_none());

    // The app's own List-Unsubscribe is kept, not duplicated; its tag is still rewritten.
    let own = "List-Unsubscribe: <mailto:leave@app.example>\r\n";
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message(own, "*|UNSUB|*"),
    )
    .await;
    let got = q.upstream.wait_for(2).await;
    let text = got[1].text();
    assert_eq!(text.matches("List-Unsubscribe:").count(), 1, "{text}");
    assert!(text.contains("<mailto:leave@app.example>"));
    assert!(!text.contains("List-Unsubscribe-Post"));
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(links(body, &q.url("")).len(), 1);

    // always: headers even without a tag.
    let q = Quell::start_with(|c| c.unsubscribe.list_unsubscribe = ListUnsubscribe::Always).await;
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message("", "no tag"),
    )
    .await;
    let got = q.upstream.wait_for(1).await;
    let (text, header, post) = view(&got[0]);
    assert!(header.is_some() && post);
    assert_eq!(text.trim_end(), "no tag");

    // never: the tag becomes a link, but no header.
    let q = Quell::start_with(|c| c.unsubscribe.list_unsubscribe = ListUnsubscribe::Never).await;
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message("", "*|UNSUB|*"),
    )
    .await;
    let got = q.upstream.wait_for(1).await;
    let (text, header, _) = view(&got[0]);
    assert!(header.is_none());
    assert_eq!(links(&text, &q.url("")).len(), 1);
}

#[tokio::test]
async fn footer_is_added_to_untagged_messages_when_enabled() {
    let q = Quell::start_with(|c| c.unsubscribe.footer = true).await;
    q.send(
        "app@example.com",
        &["a@example.net"],
        &message("", "news without a tag"),
    )
    .await;
    let got = q.upstream.wait_for(1).await;
    let (text, header, _) = view(&got[0]);
    assert!(text.starts_with("news without a tag"), "{text}");
    assert_eq!(links(&text, &q.url("")).len(), 1, "{text}");
    assert!(header.is_some());
}

#[tokio::test]
async fn quoted_printable_and_base64_parts_are_rewritten_in_their_encoding() {
    let q = Quell::start().await;
    let base = q.url("");
    // QP HTML with the tag split by a soft line break and =3D in the URL.
    let qp = "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Caf=C3=A9</p><a href=3D\"*|UNSUB:https://app.example/bye?a=3D1&amp;b=3D2|=\r\n*\">leave</a>\r\n";
    q.send("app@example.com", &["a@example.net"], &message_raw(qp))
        .await;
    // base64 text.
    let b64 = base64::engine::general_purpose::STANDARD
        .encode("Bye: *|UNSUB:https://app.example/x|*\r\n");
    let part = format!("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n");
    q.send("app@example.com", &["b@example.net"], &message_raw(&part))
        .await;
    let got = q.upstream.wait_for(2).await;

    let html = got.iter().find(|r| r.to == ["a@example.net"]).unwrap();
    let raw = html.text();
    assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"));
    let qp_body = raw.split_once("\r\n\r\n").unwrap().1;
    assert!(
        qp_body.lines().all(|l| l.len() <= 76),
        "QP line too long: {raw}"
    );
    let parsed = MessageParser::new().parse(&html.data).unwrap();
    let decoded = parsed.body_html(0).unwrap().into_owned();
    assert!(decoded.contains("Café"), "{decoded}");
    let found = links(&decoded, &base);
    assert_eq!(found.len(), 1, "{decoded}");
    let data = q.state.tokens.open(token_of(&found[0])).unwrap();
    assert_eq!(data.url.as_deref(), Some("https://app.example/bye?a=1&b=2"));

    let text = got.iter().find(|r| r.to == ["b@example.net"]).unwrap();
    assert!(text.text().contains("Content-Transfer-Encoding: base64"));
    let decoded = view(text).0;
    assert!(decoded.starts_with(&format!("Bye: {base}/u/")), "{decoded}");
}

#[tokio::test]
async fn attachments_and_other_parts_are_untouched() {
    let q = Quell::start().await;
    let attachment = base64::engine::general_purpose::STANDARD
        .encode("*|UNSUB:https://app.example/keep|* in an attachment");
    let mime = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\ntext *|UNSUB|*\r\n--inner\r\nContent-Type: text/html\r\n\r\n<a href=\"*|UNSUB|*\">x</a>\r\n--inner--\r\n--outer\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--outer--\r\nepilogue\r\n"
    );
    q.send("app@example.com", &["a@example.net"], &message_raw(&mime))
        .await;
    let got = q.upstream.wait_for(1).await;
    let text = got[0].text();
    assert!(text.contains(&attachment), "attachment changed");
    assert!(
        text.contains("preamble\r\n--outer\r\n") && text.ends_with("--outer--\r\nepilogue\r\n"),
        "{text}"
    );
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(links(body, &q.url("")).len(), 2, "{text}");
}

/// A message whose MIME headers and body are `mime` (From/To/Subject prepended).
fn message_raw(mime: &str) -> String {
    format!("From: app@example.com\r\nTo: user@example.net\r\nSubject: test\r\n{mime}")
}
