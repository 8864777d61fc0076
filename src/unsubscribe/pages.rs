//! The landing pages behind `{base_url}/u/{token}`.
//!
//! They are deliberately plain: one language-tagged HTML document each, a title, a heading,
//! a sentence and at most one form with one labelled submit button. No scripts, no images, no
//! external style sheets or fonts (the reader's mail client may have sent them here from an
//! untrusted context, and nothing should load from elsewhere), so they work the same in a
//! text browser and a screen reader.
//!
//! They are one askama template, `Page`, compiled into the binary: every interpolated value
//! is HTML-escaped by the template (`&`, `<`, `>`, `"` and `'` become numeric character
//! references), and none is ever marked safe.
//!
//! Forms post to `action="{token}"`: a relative URL that resolves to the page's own
//! `/u/{token}` whatever path prefix a reverse proxy puts in front of quell.

use askama::Template;

/// A landing page: the document around one of the [`Body`] sentences. `who` names the sender
/// (or "this sender" for the null sender); `form` is the one button, posting `action` back to
/// the page's URL.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em;line-height:1.5}input[type=submit]{font-size:1em;padding:.4em 1.2em}</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{%- macro who(sender) -%}
{% if sender.is_empty() %}this sender{% else %}<strong>{{ sender }}</strong>{% endif %}
{%- endmacro -%}
{%- macro form(token, action, label) %}
<form method="post" action="{{ token }}">
<input type="hidden" name="action" value="{{ action }}">
<input type="submit" value="{{ label }}">
</form>
{%- endmacro %}
{% match body -%}
{% when Body::Confirm { token, recipient, sender } -%}
<p>Stop mail from {% call who(sender) %}{% endcall %} to <strong>{{ recipient }}</strong>?</p>
{%- call form(token, "unsubscribe", "Unsubscribe") %}{% endcall %}
{% when Body::Unsubscribed { token, recipient, sender } -%}
<p><strong>{{ recipient }}</strong> will no longer receive mail from {% call who(sender) %}{% endcall %}.</p>
<p>Unsubscribed by mistake?</p>
{%- call form(token, "resubscribe", "Re-subscribe") %}{% endcall %}
{% when Body::Resubscribed { recipient, sender } -%}
<p><strong>{{ recipient }}</strong> will receive mail from {% call who(sender) %}{% endcall %} again.</p>
{% when Body::OneClick -%}
<p>This address will no longer receive this mail.</p>
{% when Body::Invalid -%}
<p>This unsubscribe link is invalid or has expired. Please use the link in a more recent message.</p>
{% when Body::Unreadable -%}
<p>The request could not be read. Please use the button on the unsubscribe page.</p>
{% when Body::Unavailable -%}
<p>Your request could not be recorded just now. Please try again in a few minutes.</p>
{% endmatch -%}
</main>
</body>
</html>
"#
)]
struct Page<'a> {
    title: &'a str,
    body: Body<'a>,
}

/// What a page says, with the values it shows.
enum Body<'a> {
    Confirm {
        token: &'a str,
        recipient: &'a str,
        sender: &'a str,
    },
    Unsubscribed {
        token: &'a str,
        recipient: &'a str,
        sender: &'a str,
    },
    Resubscribed {
        recipient: &'a str,
        sender: &'a str,
    },
    OneClick,
    Invalid,
    Unreadable,
    Unavailable,
}

/// The page as HTML. Rendering into a `String` cannot fail: the template calls nothing that
/// returns an error.
fn render(title: &str, body: Body<'_>) -> String {
    Page { title, body }.to_string()
}

/// `GET /u/{token}` with `confirm = true`: asks before recording anything, because mail
/// scanners and link previewers fetch every link in a message (RFC 8058 §1).
pub fn confirm(token: &str, recipient: &str, sender: &str) -> String {
    render(
        "Unsubscribe",
        Body::Confirm {
            token,
            recipient,
            sender,
        },
    )
}

/// After an unsubscribe without an app URL to go to: unbranded, with a way back for the
/// reader who clicked by mistake.
pub fn unsubscribed(token: &str, recipient: &str, sender: &str) -> String {
    render(
        "You have been unsubscribed",
        Body::Unsubscribed {
            token,
            recipient,
            sender,
        },
    )
}

/// The answer to an RFC 8058 one-click POST: read by a mail provider's robot, not a person,
/// so it names no one and offers nothing.
pub fn one_click() -> String {
    render("You have been unsubscribed", Body::OneClick)
}

/// After `action=resubscribe`.
pub fn resubscribed(recipient: &str, sender: &str) -> String {
    render(
        "You are subscribed again",
        Body::Resubscribed { recipient, sender },
    )
}

/// `400` for a token that does not open: it says nothing about why.
pub fn invalid() -> String {
    render("Invalid or expired link", Body::Invalid)
}

/// `400`/`413` for a POST body that cannot be read as a form (or is too large to be one).
pub fn unreadable() -> String {
    render("Request not understood", Body::Unreadable)
}

/// `500` when the unsubscribe could not be stored: the reader should try again.
pub fn unavailable() -> String {
    render("Please try again", Body::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<script>alert('x')</script>\"&";
    const ESCAPED: &str = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#34;&#38;";

    #[test]
    fn an_address_and_sender_with_script_and_quotes_are_escaped() {
        let recipient = "\"<script>alert(1)</script>\"@x.io";
        let sender = "o'brien\"><script>alert('s')</script>@shop.example";
        let token = "T\" onmouseover=\"alert(2)";
        for page in [
            confirm(token, recipient, sender),
            unsubscribed(token, recipient, sender),
            resubscribed(recipient, sender),
        ] {
            assert!(
                page.contains(
                    "<strong>&#34;&#60;script&#62;alert(1)&#60;/script&#62;&#34;@x.io</strong>"
                ),
                "{page}"
            );
            assert!(
                page.contains(
                    "<strong>o&#39;brien&#34;&#62;&#60;script&#62;alert(&#39;s&#39;)&#60;/script&#62;@shop.example</strong>"
                ),
                "{page}"
            );
            assert!(!page.contains("<script"), "{page}");
            assert!(
                !page.contains("o'brien") && !page.contains("\"@x.io"),
                "{page}"
            );
            // Every attribute is the template's own: none was opened by a value.
            assert!(!page.contains("onmouseover=\""), "{page}");
        }
        let page = confirm(token, recipient, sender);
        assert!(
            page.contains("<form method=\"post\" action=\"T&#34; onmouseover=&#34;alert(2)\">"),
            "{page}"
        );
    }

    fn all_pages(value: &str) -> Vec<String> {
        vec![
            confirm(value, value, value),
            unsubscribed(value, value, value),
            resubscribed(value, value),
        ]
    }

    #[test]
    fn every_interpolated_value_is_escaped() {
        for page in all_pages(EVIL) {
            assert!(!page.contains("<script"), "{page}");
            assert!(!page.contains("'x'"), "{page}");
            assert!(page.contains(ESCAPED), "{page}");
        }
    }

    #[test]
    fn pages_are_plain_and_accessible() {
        let mut pages = all_pages("a@b.io");
        pages.extend([one_click(), invalid(), unreadable(), unavailable()]);
        for page in &pages {
            assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
            assert!(page.contains("<meta charset=\"utf-8\">"));
            assert!(page.contains("<title>") && page.contains("<h1>"));
            for banned in [
                "<script", "<img", "<link", "<iframe", "src=", "href=", "http://", "https://",
                "url(",
            ] {
                assert!(!page.contains(banned), "{banned} in {page}");
            }
            assert_eq!(
                page.matches("<form").count(),
                page.matches("type=\"submit\"").count()
            );
        }
    }

    #[test]
    fn confirm_names_both_and_posts_back() {
        let page = confirm("TOKEN_1", "jane@example.net", "news@shop.example");
        assert!(page.contains("<strong>jane@example.net</strong>"));
        assert!(page.contains("<strong>news@shop.example</strong>"));
        assert!(page.contains("<form method=\"post\" action=\"TOKEN_1\">"));
        assert!(page.contains("name=\"action\" value=\"unsubscribe\""));
        assert!(page.contains("<input type=\"submit\" value=\"Unsubscribe\">"));
        let null_sender = confirm("T", "a@b", "");
        assert!(null_sender.contains("<p>Stop mail from this sender to <strong>a@b</strong>?</p>"));
    }

    #[test]
    fn unsubscribed_offers_resubscribe() {
        let page = unsubscribed("TOKEN_1", "jane@example.net", "news@shop.example");
        assert!(page.contains("value=\"resubscribe\""));
        assert!(page.contains("<input type=\"submit\" value=\"Re-subscribe\">"));
        assert!(!one_click().contains("<form"));
        assert!(resubscribed("jane@example.net", "s@x").contains("again"));
        assert!(invalid().contains("invalid or has expired"));
    }
}
