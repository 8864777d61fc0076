//! `/u/{token}`: where unsubscribe links land (SPEC §4). No API key: the token is the
//! credential, and one that does not open under our secrets gets the `400` page and changes
//! nothing.
//!
//! | request | effect |
//! |---|---|
//! | `GET`, `unsubscribe.confirm = true` | the confirm page; nothing recorded, because mail scanners and link previewers fetch every link in a message |
//! | `GET`, `confirm = false` | unsubscribes at once, then as the confirm button |
//! | `HEAD` | the status `GET` would have with confirm on; never records |
//! | `POST List-Unsubscribe=One-Click` (urlencoded or multipart, RFC 8058 §3.1) | unsubscribes; `200` short page, never a redirect (RFC 8058 §3.2) |
//! | `POST action=unsubscribe` (the confirm button) | unsubscribes; `303` to the app's UNSUB URL with `md_id` / `md_email`, or the "unsubscribed" page |
//! | `POST action=resubscribe` | undoes the click; the "subscribed again" page |
//!
//! Any other POST body counts as one-click: whoever POSTs to the URL of an RFC 2369
//! `List-Unsubscribe` header means to unsubscribe, and a robot should not be redirected.
//!
//! An unsubscribe is a `sender:<envelope sender>` entry (`global` for the null sender) with
//! reason `unsub`, flushed to disk before the answer, and the message record marked `unsub`.
//! The only redirect target is the `http`/`https` URL sealed inside a valid token, so the
//! endpoint is no open redirect.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::address;
use crate::id::now_secs;
use crate::state::AppState;
use crate::store::{Reason, Scope, Status, StoreError, Suppression, SuppressionKey};
use crate::suppression::{Op, Rule, When};
use crate::unsubscribe::pages;
use crate::unsubscribe::redirect::redirect_url;
use crate::unsubscribe::token::TokenData;

/// Largest POST body read: a one-click or button form is a few dozen bytes; multipart framing
/// from a mail provider adds a few hundred.
pub const MAX_FORM: usize = 8 * 1024;

/// The `/u/{token}` routes. `HEAD` is routed explicitly so it never reaches the `GET` handler,
/// which records an unsubscribe when `confirm = false`.
pub fn router() -> Router<AppState> {
    Router::new().route("/u/{token}", get(show).head(probe).post(submit))
}

/// What a POST asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// RFC 8058 `List-Unsubscribe=One-Click`, or any POST that names nothing else.
    OneClick,
    /// The confirm page's button (`action=unsubscribe`).
    Button,
    /// The unsubscribed page's button (`action=resubscribe`).
    Resubscribe,
}

impl Intent {
    /// One-click wins over anything else in the same body: unsubscribing is the safe side.
    fn of(fields: &[(String, String)]) -> Intent {
        let has = |name: &str, value: &str| {
            fields
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value))
        };
        if has("List-Unsubscribe", "One-Click") {
            Intent::OneClick
        } else if has("action", "resubscribe") {
            Intent::Resubscribe
        } else if has("action", "unsubscribe") {
            Intent::Button
        } else {
            Intent::OneClick
        }
    }
}

/// `GET /u/{token}`.
async fn show(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = token else {
        return page(StatusCode::BAD_REQUEST, pages::invalid());
    };
    let Some(data) = open(&state, &token) else {
        return page(StatusCode::BAD_REQUEST, pages::invalid());
    };
    if state.config.unsubscribe.confirm {
        return page(
            StatusCode::OK,
            pages::confirm(&token, &data.recipient, &data.sender),
        );
    }
    match unsubscribe(&state, &data, "unsubscribe link").await {
        Ok(()) => after_button(&state, &token, &data),
        Err(e) => failed(&data, e),
    }
}

/// `HEAD /u/{token}`: link checkers learn whether the link works; nothing is recorded.
async fn probe(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = token else {
        return page(StatusCode::BAD_REQUEST, pages::invalid());
    };
    match open(&state, &token) {
        Some(data) => page(
            StatusCode::OK,
            pages::confirm(&token, &data.recipient, &data.sender),
        ),
        None => page(StatusCode::BAD_REQUEST, pages::invalid()),
    }
}

/// `POST /u/{token}`.
async fn submit(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // A segment that is not UTF-8 is a bad link like any other (axum would answer plain text).
    let Ok(Path(token)) = token else {
        return page(StatusCode::BAD_REQUEST, pages::invalid());
    };
    let Some(data) = open(&state, &token) else {
        return page(StatusCode::BAD_REQUEST, pages::invalid());
    };
    let fields = match form_fields(request).await {
        Ok(fields) => fields,
        Err(status) => return page(status, pages::unreadable()),
    };
    match Intent::of(&fields) {
        Intent::OneClick => match unsubscribe(&state, &data, "List-Unsubscribe one-click").await {
            Ok(()) => page(StatusCode::OK, pages::one_click()),
            Err(e) => failed(&data, e),
        },
        Intent::Button => match unsubscribe(&state, &data, "unsubscribe link").await {
            Ok(()) => after_button(&state, &token, &data),
            Err(e) => failed(&data, e),
        },
        Intent::Resubscribe => match resubscribe(&state, &data).await {
            Ok(()) => page(
                StatusCode::OK,
                pages::resubscribed(&data.recipient, &data.sender),
            ),
            Err(e) => failed(&data, e),
        },
    }
}

fn open(state: &AppState, token: &str) -> Option<TokenData> {
    match state.tokens.open(token) {
        Ok(data) => Some(data),
        Err(e) => {
            tracing::debug!(error = %e, "unsubscribe token refused");
            None
        }
    }
}

/// The form's fields, from `multipart/form-data` or (any other or no `Content-Type`)
/// `application/x-www-form-urlencoded`, the two encodings RFC 8058 §3.1 allows. The body is
/// read whole, bounded by [`MAX_FORM`], before either parser sees it.
async fn form_fields(request: Request) -> Result<Vec<(String, String)>, StatusCode> {
    let (parts, body) = request.into_parts();
    let bytes = crate::http::extract::read_body(body, MAX_FORM)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let multipart =
        crate::http::extract::media_type(&parts.headers).as_deref() == Some("multipart/form-data");
    if !multipart {
        return crate::http::form::pairs(&bytes).map_err(|_| StatusCode::BAD_REQUEST);
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut fields = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|_| StatusCode::BAD_REQUEST)?;
        let value = crate::http::form::text(&name, &bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
        fields.push((name, value));
    }
    Ok(fields)
}

/// After the button (or a `GET` with `confirm = false`): Mandrill's redirect to the app's
/// UNSUB URL when the token has a usable one, else the unsubscribed page.
fn after_button(state: &AppState, token: &str, data: &TokenData) -> Response {
    if let Some(url) = data.url.as_deref() {
        let md_email = state.config.unsubscribe.md_email.render(&data.recipient);
        let target =
            redirect_url(url, &data.md_id, &md_email).and_then(|l| HeaderValue::from_str(&l).ok());
        if let Some(location) = target {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            secure(&mut response);
            return response;
        }
    }
    page(
        StatusCode::OK,
        pages::unsubscribed(token, &data.recipient, &data.sender),
    )
}

/// The suppression entry a click from `data` creates or removes.
fn key_of(data: &TokenData) -> SuppressionKey {
    let recipient = address::normalize(&data.recipient)
        .unwrap_or_else(|_| data.recipient.trim().to_lowercase());
    let sender = data.sender.trim();
    let scope = if sender.is_empty() {
        Scope::Global
    } else {
        Scope::Sender(sender.to_lowercase())
    };
    SuppressionKey::new(scope, recipient, Reason::Unsub.list())
}

/// Records the unsubscribe and makes it durable before the caller answers.
async fn unsubscribe(state: &AppState, data: &TokenData, detail: &str) -> Result<(), StoreError> {
    let now = now_secs();
    let config = &state.config;
    let tags = if config.unsubscribe.per_tag && !data.tags.is_empty() {
        data.tags.clone()
    } else {
        vec!["*".to_string()]
    };
    let expires_at = config
        .suppression
        .expiry
        .unsub
        .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let fresh = Suppression {
        reason: Reason::Unsub,
        tags,
        created_at: now,
        expires_at,
        detail: detail.to_string(),
        md_id: Some(data.md_id.clone()),
        code: None,
    };
    state.store.message_update(&data.md_id, |r| {
        r.status = Status::Unsub;
        r.updated_at = now;
    })?;
    // A click never weakens an entry (rules::Rule::Strengthen). Durability point: the reader
    // is told they are unsubscribed only once a crash can no longer lose it.
    let op = Op::Add {
        key: key_of(data),
        entry: fresh,
        rule: Rule::Strengthen,
        unless_allowlisted: false,
    };
    state.suppressions.apply(vec![op]).await?;
    tracing::info!(md_id = %data.md_id, via = detail, "unsubscribe recorded");
    Ok(())
}

/// Undoes a click: removes the entry if a click made it. In the `global` scope (null sender),
/// only the entry this very message created, so a link never lifts an unsubscribe made
/// through the APIs.
async fn resubscribe(state: &AppState, data: &TokenData) -> Result<(), StoreError> {
    let key = key_of(data);
    let when = match key.scope {
        Scope::Global => When::ClickOf(data.md_id.clone()),
        _ => When::Reason(Reason::Unsub),
    };
    let now = now_secs();
    state.store.message_update(&data.md_id, |r| {
        if r.status == Status::Unsub {
            r.status = Status::Sent;
            r.updated_at = now;
        }
    })?;
    state
        .suppressions
        .apply(vec![Op::Remove { key, when }])
        .await?;
    tracing::info!(md_id = %data.md_id, "resubscribe recorded");
    Ok(())
}

/// A store failure: the cause goes to the log, the reader is asked to try again (a `5xx`
/// also makes a one-click sender retry).
fn failed(data: &TokenData, e: StoreError) -> Response {
    tracing::error!(md_id = %data.md_id, error = %e, "cannot record unsubscribe");
    page(StatusCode::INTERNAL_SERVER_ERROR, pages::unavailable())
}

/// An HTML page with the headers every landing response carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(&mut response);
    response
}

/// Not cached (the page is per reader), not indexed, not framed (a framed button could be
/// clicked unawares), nothing loaded from elsewhere, and no `Referer` carrying the token to
/// the app's page after the redirect.
fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn intent_of_a_form() {
        assert_eq!(
            Intent::of(&fields(&[("List-Unsubscribe", "One-Click")])),
            Intent::OneClick
        );
        assert_eq!(
            Intent::of(&fields(&[("action", "unsubscribe")])),
            Intent::Button
        );
        assert_eq!(
            Intent::of(&fields(&[("action", "resubscribe")])),
            Intent::Resubscribe
        );
        assert_eq!(
            Intent::of(&fields(&[
                ("action", "resubscribe"),
                ("list-unsubscribe", "one-click")
            ])),
            Intent::OneClick
        );
        assert_eq!(Intent::of(&[]), Intent::OneClick);
        assert_eq!(
            Intent::of(&fields(&[("action", "other")])),
            Intent::OneClick
        );
    }

    #[test]
    fn keys_are_normalised_and_the_null_sender_is_global() {
        let data = TokenData {
            md_id: "1".into(),
            recipient: " Jane@Example.NET ".into(),
            sender: "News@Shop.Example".into(),
            tags: vec![],
            url: None,
        };
        let key = key_of(&data);
        assert_eq!(key.scope, Scope::Sender("news@shop.example".into()));
        assert_eq!(key.address, "jane@example.net");
        let null = TokenData {
            sender: String::new(),
            ..data
        };
        assert_eq!(key_of(&null).scope, Scope::Global);
    }
}
