//! `/u/{token}` over real HTTP: confirm page, HEAD, one-click (urlencoded and multipart), the
//! confirm button's redirect, re-subscribe, refused tokens, and the click's effect on SMTP.

use quell::config::Config;
use quell::id::{md_id, new_queue_id, now_secs};
use quell::queue::Scheduler;
use quell::state::AppState;
use quell::store::{
    List, MessageRecord, Reason, Scope, Status, Store, Suppression, SuppressionKey,
};
use quell::unsubscribe::token::{TokenData, Tokens};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::multipart::Form;
use reqwest::{Response, StatusCode, Url};

use crate::support::Quell;

const RCPT: &str = "jane.doe@example.net";
const SENDER: &str = "news@shop.example";

/// An HTTP client that shows redirects instead of following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A message record for `recipient` from `sender`, status `sent`, and its token.
pub(crate) fn message(
    q: &Quell,
    recipient: &str,
    sender: &str,
    url: Option<&str>,
) -> (String, String) {
    message_tagged(q, recipient, sender, url, &[])
}

fn message_tagged(
    q: &Quell,
    recipient: &str,
    sender: &str,
    url: Option<&str>,
    tags: &[&str],
) -> (String, String) {
    let queue_id = new_queue_id();
    let id = md_id(&queue_id, 1);
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    q.state
        .store
        .message_put(&MessageRecord {
            id: id.clone(),
            queue_id,
            sender: sender.to_string(),
            recipient: recipient.to_string(),
            tags: tags.clone(),
            status: Status::Sent,
            created_at: now_secs(),
            updated_at: now_secs(),
            attempts: 1,
            last_reply: None,
        })
        .unwrap();
    let token = q.state.tokens.seal(&TokenData {
        md_id: id.clone(),
        recipient: recipient.to_string(),
        sender: sender.to_string(),
        tags,
        url: url.map(str::to_string),
    });
    (id, token)
}

pub(crate) fn entry(q: &Quell, scope: Scope, recipient: &str) -> Option<Suppression> {
    q.state
        .store
        .suppression_get(&SuppressionKey::new(scope, recipient, List::Unsubscribes))
        .unwrap()
}

fn sender_entry(q: &Quell, sender: &str, recipient: &str) -> Option<Suppression> {
    entry(q, Scope::Sender(sender.to_string()), recipient)
}

fn status(q: &Quell, id: &str) -> Status {
    q.state.store.message_get(id).unwrap().unwrap().status
}

async fn one_click(q: &Quell, token: &str) -> Response {
    http()
        .post(q.url(&format!("/u/{token}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap()
}

async fn button(q: &Quell, token: &str, action: &str) -> Response {
    http()
        .post(q.url(&format!("/u/{token}")))
        .form(&[("action", action)])
        .send()
        .await
        .unwrap()
}

fn assert_html(r: &Response) {
    assert_eq!(
        r.headers()[CONTENT_TYPE],
        "text/html; charset=utf-8",
        "{:?}",
        r.headers()
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn get_with_confirm_shows_the_page_and_records_nothing() {
    let q = Quell::start().await;
    let recipient = "o'brien<x>@example.net";
    let sender = "news&deals@shop.example";
    let (id, token) = message(&q, recipient, sender, Some("https://shop.example/bye"));
    let r = http()
        .get(q.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_html(&r);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("o&#39;brien&#60;x&#62;@example.net"),
        "{page}"
    );
    assert!(page.contains("news&#38;deals@shop.example"), "{page}");
    assert!(
        !page.contains("<x>") && !page.contains("news&deals"),
        "{page}"
    );
    assert!(page.contains(&format!("<form method=\"post\" action=\"{token}\">")));
    assert!(page.contains("value=\"Unsubscribe\""));
    assert_eq!(q.state.store.suppression_count(), 0);
    assert_eq!(status(&q, &id), Status::Sent);
}

#[tokio::test]
async fn head_never_records_even_without_confirm() {
    for confirm in [true, false] {
        let q = Quell::start_with(|c| c.unsubscribe.confirm = confirm).await;
        let (id, token) = message(&q, RCPT, SENDER, None);
        let r = http()
            .head(q.url(&format!("/u/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "confirm = {confirm}");
        assert!(r.headers().get(LOCATION).is_none());
        assert!(r.text().await.unwrap().is_empty());
        assert_eq!(q.state.store.suppression_count(), 0, "confirm = {confirm}");
        assert_eq!(status(&q, &id), Status::Sent);
        let r = http()
            .head(q.url(&format!("/u/{token}x")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn get_without_confirm_unsubscribes_at_once() {
    let q = Quell::start_with(|c| c.unsubscribe.confirm = false).await;
    let (id, token) = message(&q, RCPT, SENDER, None);
    let r = http()
        .get(q.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_html(&r);
    let page = r.text().await.unwrap();
    assert!(page.contains("You have been unsubscribed"), "{page}");
    assert!(page.contains("value=\"Re-subscribe\""), "{page}");
    let e = sender_entry(&q, SENDER, RCPT).expect("recorded");
    assert_eq!(e.reason, Reason::Unsub);
    assert_eq!(e.md_id.as_deref(), Some(id.as_str()));
    assert_eq!(status(&q, &id), Status::Unsub);

    // With an app URL, Mandrill's behaviour: straight on to it.
    let (id, token) = message(
        &q,
        "b@example.net",
        SENDER,
        Some("https://shop.example/bye"),
    );
    let r = http()
        .get(q.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()[LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&format!("https://shop.example/bye?md_id={id}&")),
        "{location}"
    );
    assert!(sender_entry(&q, SENDER, "b@example.net").is_some());
}

#[tokio::test]
async fn one_click_urlencoded_and_multipart_record_and_never_redirect() {
    let q = Quell::start().await;
    let url = Some("https://shop.example/bye");
    let (id, token) = message(&q, RCPT, SENDER, url);
    for _ in 0..2 {
        let r = one_click(&q, &token).await;
        assert_eq!(r.status(), StatusCode::OK, "idempotent");
        assert!(r.headers().get(LOCATION).is_none());
        assert_html(&r);
    }
    let e = sender_entry(&q, SENDER, RCPT).expect("recorded");
    assert_eq!(e.tags, ["*"]);
    assert_eq!(e.md_id.as_deref(), Some(id.as_str()));
    assert_eq!(e.detail, "List-Unsubscribe one-click");
    let year = 365 * 24 * 3600;
    assert!((e.created_at - now_secs()).abs() < 60);
    assert_eq!(e.expires_at, Some(e.created_at + year));
    assert_eq!(status(&q, &id), Status::Unsub);
    assert_eq!(q.state.store.suppression_count(), 1);

    let (id, token) = message(&q, "m@example.net", SENDER, url);
    let form = Form::new().text("List-Unsubscribe", "One-Click");
    let r = http()
        .post(q.url(&format!("/u/{token}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(LOCATION).is_none());
    assert!(sender_entry(&q, SENDER, "m@example.net").is_some());
    assert_eq!(status(&q, &id), Status::Unsub);
}

#[tokio::test]
async fn confirm_button_redirects_to_the_app_with_md_id_and_md_email() {
    let q = Quell::start().await;
    for (url, kept) in [
        ("https://shop.example/bye", vec![]),
        (
            "https://shop.example/bye?list=weekly&x=a%20b",
            vec![("list", "weekly"), ("x", "a b")],
        ),
    ] {
        let recipient = format!("jane+{}@example.net", kept.len());
        let (id, token) = message(&q, &recipient, SENDER, Some(url));
        let r = button(&q, &token, "unsubscribe").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{url}");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        let location = Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert_eq!(location.host_str(), Some("shop.example"));
        assert_eq!(location.path(), "/bye");
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let mut expected: Vec<(String, String)> = kept
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expected.push(("md_id".into(), id.clone()));
        expected.push(("md_email".into(), recipient.clone()));
        assert_eq!(pairs, expected, "{location}");
        assert!(sender_entry(&q, SENDER, &recipient).is_some());
        assert_eq!(status(&q, &id), Status::Unsub);
    }
}

#[tokio::test]
async fn obfuscated_md_email() {
    let q =
        Quell::start_with(|c| c.unsubscribe.md_email = quell::config::MdEmail::Obfuscated).await;
    let (_, token) = message(&q, RCPT, SENDER, Some("https://shop.example/bye"));
    let r = button(&q, &token, "unsubscribe").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    let md_email = location
        .query_pairs()
        .find(|(k, _)| k == "md_email")
        .map(|(_, v)| v.into_owned());
    assert_eq!(md_email.as_deref(), Some("j*******@e******.***"));
}

#[tokio::test]
async fn without_a_url_the_page_offers_resubscribe_which_undoes_the_click() {
    let q = Quell::start().await;
    let (id, token) = message(&q, RCPT, SENDER, None);
    let r = button(&q, &token, "unsubscribe").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(LOCATION).is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("value=\"resubscribe\""), "{page}");
    assert!(page.contains(RCPT) && page.contains(SENDER), "{page}");
    assert!(sender_entry(&q, SENDER, RCPT).is_some());
    assert_eq!(status(&q, &id), Status::Unsub);

    let r = button(&q, &token, "resubscribe").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("subscribed again"));
    assert!(sender_entry(&q, SENDER, RCPT).is_none());
    assert_eq!(status(&q, &id), Status::Sent);
    assert_eq!(q.state.store.suppression_count(), 0);
}

#[tokio::test]
async fn a_non_http_url_is_never_a_redirect_target() {
    let q = Quell::start().await;
    for url in ["javascript:alert(1)", "data:text/html,x", "//evil.example/"] {
        let recipient = format!("r{}@example.net", url.len());
        let (_, token) = message(&q, &recipient, SENDER, Some(url));
        let r = button(&q, &token, "unsubscribe").await;
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert!(r.headers().get(LOCATION).is_none(), "{url}");
        assert!(sender_entry(&q, SENDER, &recipient).is_some());
    }
}

#[tokio::test]
async fn per_tag_records_the_message_tags() {
    let q = Quell::start_with(|c| c.unsubscribe.per_tag = true).await;
    let (_, token) = message_tagged(&q, RCPT, SENDER, None, &["news", "promo"]);
    assert_eq!(one_click(&q, &token).await.status(), StatusCode::OK);
    assert_eq!(
        sender_entry(&q, SENDER, RCPT).unwrap().tags,
        ["news", "promo"]
    );
    // A later click from another campaign adds its tag; it never narrows the entry.
    let (_, token) = message_tagged(&q, RCPT, SENDER, None, &["digest"]);
    assert_eq!(one_click(&q, &token).await.status(), StatusCode::OK);
    assert_eq!(
        sender_entry(&q, SENDER, RCPT).unwrap().tags,
        ["news", "promo", "digest"]
    );
    // Untagged mail: all of it.
    let (_, token) = message(&q, "u@example.net", SENDER, None);
    assert_eq!(one_click(&q, &token).await.status(), StatusCode::OK);
    assert_eq!(
        sender_entry(&q, SENDER, "u@example.net").unwrap().tags,
        ["*"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_per_tag_clicks_for_one_address_keep_every_tag() {
    let q = Quell::start_with(|c| c.unsubscribe.per_tag = true).await;
    for round in 0..200 {
        let rcpt = format!("r{round}@example.net");
        let (_, a) = message_tagged(&q, &rcpt, SENDER, None, &["a"]);
        let (_, b) = message_tagged(&q, &rcpt, SENDER, None, &["b"]);
        let (ra, rb) = tokio::join!(one_click(&q, &a), one_click(&q, &b));
        assert_eq!((ra.status(), rb.status()), (StatusCode::OK, StatusCode::OK));
        let mut tags = sender_entry(&q, SENDER, &rcpt).unwrap().tags;
        tags.sort();
        assert_eq!(tags, ["a", "b"], "round {round}");
    }
}

#[tokio::test]
async fn the_null_sender_unsubscribes_globally() {
    let q = Quell::start().await;
    let (id, token) = message(&q, RCPT, "", None);
    let r = http()
        .get(q.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("this sender"));
    assert_eq!(one_click(&q, &token).await.status(), StatusCode::OK);
    let e = entry(&q, Scope::Global, RCPT).expect("global entry");
    assert_eq!(e.md_id.as_deref(), Some(id.as_str()));
    // Re-subscribing from that message lifts only the entry it made.
    assert_eq!(
        button(&q, &token, "resubscribe").await.status(),
        StatusCode::OK
    );
    assert!(entry(&q, Scope::Global, RCPT).is_none());
    let manual = Suppression::new(Reason::Unsub, now_secs());
    q.state
        .store
        .suppression_put(
            &SuppressionKey::new(Scope::Global, RCPT, List::Unsubscribes),
            &manual,
        )
        .unwrap();
    assert_eq!(
        button(&q, &token, "resubscribe").await.status(),
        StatusCode::OK
    );
    assert_eq!(entry(&q, Scope::Global, RCPT), Some(manual));
}

#[tokio::test]
async fn bad_tokens_get_400_and_record_nothing() {
    let q = Quell::start().await;
    let (id, token) = message(&q, RCPT, SENDER, Some("https://shop.example/bye"));
    let flipped = {
        let mut chars: Vec<char> = token.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let foreign = Tokens::new(b"someone else's secret", &[]).seal(&TokenData {
        md_id: id.clone(),
        recipient: RCPT.into(),
        sender: SENDER.into(),
        tags: vec![],
        url: Some("https://evil.example/".into()),
    });
    let bad = [
        flipped,
        token[..token.len() - 1].to_string(),
        token[..40].to_string(),
        format!("{token}AA"),
        foreign,
        "not-a-token".to_string(),
        "A".repeat(5000),
    ];
    for bad in &bad {
        let r = http()
            .get(q.url(&format!("/u/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_html(&r);
        assert!(r.text().await.unwrap().contains("invalid or has expired"));
        let r = one_click(&q, bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = button(&q, bad, "unsubscribe").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get(LOCATION).is_none());
    }
    assert_eq!(q.state.store.suppression_count(), 0);
    assert_eq!(status(&q, &id), Status::Sent);
}

#[tokio::test]
async fn bodies_are_bounded() {
    let q = Quell::start().await;
    let (id, token) = message(&q, RCPT, SENDER, None);
    let body = format!("List-Unsubscribe=One-Click&pad={}", "x".repeat(64 * 1024));
    let r = http()
        .post(q.url(&format!("/u/{token}")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(q.state.store.suppression_count(), 0);
    assert_eq!(status(&q, &id), Status::Sent);
}

#[tokio::test]
async fn a_record_that_expired_does_not_stop_the_unsubscribe() {
    let q = Quell::start().await;
    let token = q.state.tokens.seal(&TokenData {
        md_id: md_id(&new_queue_id(), 3),
        recipient: RCPT.into(),
        sender: SENDER.into(),
        tags: vec![],
        url: None,
    });
    assert_eq!(one_click(&q, &token).await.status(), StatusCode::OK);
    assert!(sender_entry(&q, SENDER, RCPT).is_some());
}

#[tokio::test]
async fn after_a_click_that_sender_is_refused_and_others_are_not() {
    let q = Quell::start().await;
    let (_, token) = message(&q, RCPT, SENDER, Some("https://shop.example/bye"));
    let mut c = q.client().await;
    c.expect("EHLO x", "250").await;
    c.expect(&format!("MAIL FROM:<{SENDER}>"), "250").await;
    c.expect(&format!("RCPT TO:<{RCPT}>"), "250").await;
    c.expect("RSET", "250").await;

    assert_eq!(
        button(&q, &token, "unsubscribe").await.status(),
        StatusCode::SEE_OTHER
    );

    c.expect(&format!("MAIL FROM:<{SENDER}>"), "250").await;
    let reply = c.expect(&format!("RCPT TO:<{RCPT}>"), "550").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    c.expect("RSET", "250").await;
    c.expect("MAIL FROM:<billing@shop.example>", "250").await;
    c.expect(&format!("RCPT TO:<{RCPT}>"), "250").await;
    c.expect("RSET", "250").await;
    c.expect(&format!("MAIL FROM:<{}>", SENDER.to_uppercase()), "250")
        .await;
    c.expect(&format!("RCPT TO:<{}>", RCPT.to_uppercase()), "550")
        .await;
    c.cmd("QUIT").await;
}

/// Without `unsubscribe.secret`, the generated secret is kept in the store: links survive a
/// restart, and still open after a secret is configured later.
#[tokio::test]
async fn the_generated_secret_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let state = |secret: &str| {
        let mut config = Config::default();
        config.storage.path = path.clone();
        config.unsubscribe.secret = secret.into();
        let store = Store::open(&path).unwrap();
        AppState::new(config, store, Scheduler::channel().0)
    };
    let data = TokenData {
        md_id: md_id(&new_queue_id(), 1),
        recipient: RCPT.into(),
        sender: SENDER.into(),
        tags: vec!["t".into()],
        url: None,
    };
    let first = state("");
    let token = first.tokens.seal(&data);
    first.store.flush().await.unwrap();
    drop(first);

    let second = state("");
    assert_eq!(second.tokens.open(&token).unwrap(), data);
    drop(second);

    let configured = state("a configured secret");
    assert_eq!(configured.tokens.open(&token).unwrap(), data);
    let fresh = configured.tokens.seal(&data);
    drop(configured);

    let other = Tokens::new(b"", &[]);
    assert!(other.open(&token).is_err());
    let rotated = state("a new secret");
    assert!(rotated.tokens.open(&fresh).is_err());
}
