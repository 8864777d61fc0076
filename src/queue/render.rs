//! The copy one recipient receives, rendered at delivery from the one stored original
//! (SPEC §4): each `*|UNSUB:url|*` tag becomes a link with this recipient's token, or a
//! footer is appended when the message has none and `unsubscribe.footer` is on; the
//! RFC 2369 / RFC 8058 `List-Unsubscribe` headers are added per `unsubscribe.list_unsubscribe`;
//! lines longer than SMTP allows are folded; finally the copy is DKIM-signed. Only one copy per worker exists in memory at a time, so a
//! 25 MiB message to 100 recipients costs one message, not a hundred.

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::{Config, ListUnsubscribe};
use crate::mime::dkim::Dkim;
use crate::mime::footer::append_footer;
use crate::mime::headers::{has_header, prepend_headers};
use crate::mime::lines::fold_long_lines;
use crate::mime::unsub::{first_unsub_tag, rewrite_unsub, UnsubTag};
use crate::store::{QueuedMessage, QueuedRecipient};
use crate::unsubscribe::token::{TokenData, Tokens};

/// Renders recipient copies; built once at startup.
#[derive(Debug)]
pub struct Renderer {
    tokens: Arc<Tokens>,
    /// `unsubscribe.base_url` without a trailing slash.
    base_url: String,
    list_unsubscribe: ListUnsubscribe,
    footer: bool,
    dkim: Option<Dkim>,
}

/// What a message needs, worked out once per delivery attempt and shared by its copies.
#[derive(Debug)]
pub struct Analysis {
    /// The first unsubscribe tag, if the message has any.
    tag: Option<UnsubTag>,
    /// The app set its own `List-Unsubscribe`: kept, and ours is not added.
    own_list_unsubscribe: bool,
}

impl Renderer {
    pub fn new(config: &Config, tokens: Arc<Tokens>, dkim: Option<Dkim>) -> Renderer {
        let u = &config.unsubscribe;
        Renderer {
            tokens,
            base_url: u.base_url.trim_end_matches('/').to_string(),
            list_unsubscribe: u.list_unsubscribe,
            footer: u.footer,
            dkim,
        }
    }

    /// Reads the stored original once for all its copies.
    pub fn analyze(&self, original: &[u8]) -> Analysis {
        Analysis {
            tag: first_unsub_tag(original),
            own_list_unsubscribe: has_header(original, "List-Unsubscribe"),
        }
    }

    /// The copy for `rcpt`. Borrows the original when nothing applies. A rewrite that fails
    /// on malformed MIME leaves the message as it was (logged), never loses it.
    pub fn render<'a>(
        &self,
        original: &'a [u8],
        analysis: &Analysis,
        message: &QueuedMessage,
        rcpt: &QueuedRecipient,
    ) -> Cow<'a, [u8]> {
        let link = |url: Option<&str>| {
            let token = self.tokens.seal(&TokenData {
                md_id: rcpt.md_id.clone(),
                recipient: rcpt.address.clone(),
                sender: message.sender.clone(),
                tags: message.tags.clone(),
                url: url.map(str::to_string),
            });
            format!("{}/u/{token}", self.base_url)
        };
        let mut linked = false;
        let mut copy: Cow<'a, [u8]> = Cow::Borrowed(original);
        if analysis.tag.is_some() {
            match rewrite_unsub(original, &mut |url| link(url)) {
                Ok(rewritten) => {
                    linked = true;
                    copy = rewritten;
                }
                Err(e) => {
                    tracing::warn!(md_id = %rcpt.md_id, error = %e, "UNSUB tags left as they were")
                }
            }
        } else if self.footer {
            match append_footer(original, &link(None)) {
                Ok(with_footer) => {
                    linked = true;
                    copy = with_footer;
                }
                Err(e) => tracing::warn!(md_id = %rcpt.md_id, error = %e, "no footer added"),
            }
        }
        let add_headers = !analysis.own_list_unsubscribe
            && match self.list_unsubscribe {
                ListUnsubscribe::Always => true,
                ListUnsubscribe::Auto => linked,
                ListUnsubscribe::Never => false,
            };
        if add_headers {
            let url = analysis.tag.as_ref().and_then(|t| t.url.as_deref());
            let value = format!("<{}>", link(url));
            let fields = [
                ("List-Unsubscribe", value.as_str()),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ];
            copy = Cow::Owned(prepend_headers(&copy, &fields).into_owned());
        }
        if let Cow::Owned(folded) = fold_long_lines(&copy) {
            copy = Cow::Owned(folded);
        }
        if let Some(dkim) = &self.dkim {
            match dkim.sign(&copy) {
                Ok(signed) => copy = Cow::Owned(signed),
                Err(e) => {
                    tracing::error!(md_id = %rcpt.md_id, error = %e, "DKIM signing failed; sent unsigned")
                }
            }
        }
        copy
    }
}
