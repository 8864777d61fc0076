//! The landing pages behind `{base_url}/u/{token}`.
//!
//! They are deliberately plain: one language-tagged HTML document each, a title, a heading,
//! a sentence and at most one form with one labelled submit button. No scripts, no images, no
//! external style sheets or fonts (the reader's mail client may have sent them here from an
//! untrusted context, and nothing should load from elsewhere), so they work the same in a
//! text browser and a screen reader. Every interpolated value goes through [`escape`].
//!
//! Forms post to `action="{token}"`: a relative URL that resolves to the page's own
//! `/u/{token}` whatever path prefix a reverse proxy puts in front of quell.

use std::fmt::Write;

/// HTML-escapes `text` for element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole document around `body` (already HTML).
fn document(title: &str, body: &str) -> String {
    let mut page = String::with_capacity(body.len() + 600);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;\
         padding:0 1em;line-height:1.5}}input[type=submit]{{font-size:1em;padding:.4em 1.2em}}\
         </style>\n\
         </head>\n\
         <body>\n<main>\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    page
}

/// A form with one submit button that posts `action=<action>` back to the page's URL.
fn form(token: &str, action: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{token}\">\n\
         <input type=\"hidden\" name=\"action\" value=\"{action}\">\n\
         <input type=\"submit\" value=\"{label}\">\n\
         </form>\n",
        token = escape(token),
        action = escape(action),
        label = escape(label),
    )
}

/// Who is shown: the address, and the sender or "this sender" for the null sender.
fn sender_text(sender: &str) -> String {
    if sender.is_empty() {
        "this sender".to_string()
    } else {
        format!("<strong>{}</strong>", escape(sender))
    }
}

/// `GET /u/{token}` with `confirm = true`: asks before recording anything, because mail
/// scanners and link previewers fetch every link in a message (RFC 8058 §1).
pub fn confirm(token: &str, recipient: &str, sender: &str) -> String {
    document(
        "Unsubscribe",
        &format!(
            "<p>Stop mail from {} to <strong>{}</strong>?</p>\n{}",
            sender_text(sender),
            escape(recipient),
            form(token, "unsubscribe", "Unsubscribe"),
        ),
    )
}

/// After an unsubscribe without an app URL to go to: unbranded, with a way back for the
/// reader who clicked by mistake.
pub fn unsubscribed(token: &str, recipient: &str, sender: &str) -> String {
    document(
        "You have been unsubscribed",
        &format!(
            "<p><strong>{}</strong> will no longer receive mail from {}.</p>\n\
             <p>Unsubscribed by mistake?</p>\n{}",
            escape(recipient),
            sender_text(sender),
            form(token, "resubscribe", "Re-subscribe"),
        ),
    )
}

/// The answer to an RFC 8058 one-click POST: read by a mail provider's robot, not a person,
/// so it names no one and offers nothing.
pub fn one_click() -> String {
    document(
        "You have been unsubscribed",
        "<p>This address will no longer receive this mail.</p>\n",
    )
}

/// After `action=resubscribe`.
pub fn resubscribed(recipient: &str, sender: &str) -> String {
    document(
        "You are subscribed again",
        &format!(
            "<p><strong>{}</strong> will receive mail from {} again.</p>\n",
            escape(recipient),
            sender_text(sender),
        ),
    )
}

/// `400` for a token that does not open: it says nothing about why.
pub fn invalid() -> String {
    document(
        "Invalid or expired link",
        "<p>This unsubscribe link is invalid or has expired. \
         Please use the link in a more recent message.</p>\n",
    )
}

/// `400`/`413` for a POST body that cannot be read as a form (or is too large to be one).
pub fn unreadable() -> String {
    document(
        "Request not understood",
        "<p>The request could not be read. Please use the button on the unsubscribe page.</p>\n",
    )
}

/// `500` when the unsubscribe could not be stored: the reader should try again.
pub fn unavailable() -> String {
    document(
        "Please try again",
        "<p>Your request could not be recorded just now. Please try again in a few minutes.</p>\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<script>alert('x')</script>\"&";
    const ESCAPED: &str = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;";

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(escape(EVIL), ESCAPED);
        assert_eq!(escape("jane@example.net"), "jane@example.net");
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
        assert!(confirm("T", "a@b", "").contains("this sender"));
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
