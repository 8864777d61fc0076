//! Where the confirm button sends the reader: the app's UNSUB URL with Mandrill's
//! `md_id=<message id>&md_email=<address>` appended, so the app can show its own page and
//! update its own records.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// Everything but RFC 3986 §2.3 unreserved characters is encoded in a parameter value.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How the address is shown to the app in `md_email`: the `unsubscribe.md_email` setting.
pub use crate::config::MdEmail;

impl MdEmail {
    /// The `md_email` value for `address`.
    pub fn render(self, address: &str) -> String {
        match self {
            MdEmail::Plain => address.to_string(),
            MdEmail::Obfuscated => obfuscate(address),
        }
    }
}

/// Keeps the first character of the local part and of each domain label but the last, and
/// stars everything else (one star per character), the top-level label entirely.
pub fn obfuscate(address: &str) -> String {
    fn first_kept(part: &str) -> String {
        let mut chars = part.chars();
        match chars.next() {
            Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
            None => String::new(),
        }
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return first_kept(address);
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let last = labels.len() - 1;
    let domain: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            if i == last {
                "*".repeat(label.chars().count())
            } else {
                first_kept(label)
            }
        })
        .collect();
    format!("{}@{}", first_kept(local), domain.join("."))
}

/// `url` with `md_id` and `md_email` appended to its query (before any `#fragment`), or
/// `None` when `url` is not an absolute `http`/`https` URL naming a host after `//`: only those
/// are redirect targets, so a sealed `javascript:` or `data:` link cannot run anything.
///
/// The URL is parsed and serialised by the `url` crate (the WHATWG URL Standard, as a browser
/// does before following a link): whatever may not appear in a `Location` header (controls,
/// spaces, non-ASCII) comes out percent-encoded, an international host as punycode, an empty
/// path as `/` and the scheme in lower case. The two values are encoded down to RFC 3986 §2.3
/// unreserved characters, which every query decoder reads back the same.
pub fn redirect_url(url: &str, md_id: &str, md_email: &str) -> Option<String> {
    let written = url.trim_matches(|c: char| c.is_whitespace() || c.is_ascii_control());
    let mut target = Url::parse(written).ok()?;
    if !matches!(target.scheme(), "http" | "https") {
        return None;
    }
    // The parser, like a browser, also reads `https:host`, `https:///host` and `https:\\host`
    // as `https://host/`; an app's link names its host right after `//`.
    let after_scheme = written.get(target.scheme().len()..)?;
    let authority = after_scheme.strip_prefix("://")?;
    if authority.starts_with(['/', '\\']) || target.host_str().is_none_or(str::is_empty) {
        return None;
    }
    let appended = format!(
        "md_id={}&md_email={}",
        utf8_percent_encode(md_id, VALUE),
        utf8_percent_encode(md_email, VALUE),
    );
    let query = match target.query().map(|q| q.trim_end_matches('&')) {
        None | Some("") => appended,
        Some(existing) => format!("{existing}&{appended}"),
    };
    target.set_query(Some(&query));
    Some(target.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscation_keeps_first_characters_and_stars_the_tld() {
        assert_eq!(obfuscate("jane@example.net"), "j***@e******.***");
        assert_eq!(
            obfuscate("jane.doe@mail.example.co"),
            "j*******@m***.e******.**"
        );
        assert_eq!(obfuscate("a@b.io"), "a@b.**");
        assert_eq!(obfuscate("x@localhost"), "x@*********");
        assert_eq!(obfuscate("ünï@exämple.de"), "ü**@e******.**");
        assert_eq!(obfuscate("noat"), "n***");
        assert_eq!(obfuscate(""), "");
        assert_eq!(MdEmail::Plain.render("a@b.io"), "a@b.io");
        assert_eq!(MdEmail::Obfuscated.render("a@b.io"), "a@b.**");
    }

    #[test]
    fn joins_with_the_right_separator() {
        let id = "0194F3A2B7C1D2E3F4A5.1";
        let cases = [
            ("https://a.example/bye", "https://a.example/bye?"),
            // An empty path is `/` and the scheme lower case (RFC 3986 §6.2.2.1, §6.2.3).
            ("https://a.example", "https://a.example/?"),
            ("https://a.example/bye?x=1", "https://a.example/bye?x=1&"),
            ("https://a.example/bye?", "https://a.example/bye?"),
            ("https://a.example/bye?x=1&", "https://a.example/bye?x=1&"),
            ("HTTP://a.example/p", "http://a.example/p?"),
            (" https://a.example/p\n", "https://a.example/p?"),
        ];
        for (url, prefix) in cases {
            assert_eq!(
                redirect_url(url, id, "j@x.io").unwrap(),
                format!("{prefix}md_id={id}&md_email=j%40x.io"),
                "{url}"
            );
        }
        assert_eq!(
            redirect_url("https://a.example/bye?x=1#top", id, "j@x.io").unwrap(),
            format!("https://a.example/bye?x=1&md_id={id}&md_email=j%40x.io#top")
        );
        assert_eq!(
            redirect_url("https://a.example/#/bye?x", id, "j@x.io").unwrap(),
            format!("https://a.example/?md_id={id}&md_email=j%40x.io#/bye?x")
        );
    }

    #[test]
    fn encodes_values_and_unsafe_bytes() {
        let joined = redirect_url("https://a.example/b y/é", "1&2", "a+b=c@x.io").unwrap();
        assert_eq!(
            joined,
            "https://a.example/b%20y/%C3%A9?md_id=1%262&md_email=a%2Bb%3Dc%40x.io"
        );
        assert_eq!(
            redirect_url("https://bücher.example/ü?q=ä ö#ß", "1", "a@b").unwrap(),
            "https://xn--bcher-kva.example/%C3%BC?q=%C3%A4%20%C3%B6&md_id=1&md_email=a%40b#%C3%9F"
        );
        let controls = redirect_url("https://a.example/a\u{7}b\tc d\u{7f}e", "1", "a@b").unwrap();
        assert_eq!(
            controls,
            "https://a.example/a%07bc%20d%7Fe?md_id=1&md_email=a%40b"
        );
        let starred = redirect_url("https://a.example/", "1", "j***@e.**").unwrap();
        assert!(
            starred.ends_with("md_email=j%2A%2A%2A%40e.%2A%2A"),
            "{starred}"
        );
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        for bad in [
            "javascript:alert(1)",
            "javascript://a.example/%0Aalert(1)",
            "data:text/html,hi",
            "mailto:a@b.io",
            "ftp://a.example/",
            "//a.example/",
            "/relative",
            "https://",
            "https:///path",
            "https://user@/path",
            "https://:443/",
            "https:a.example/",
            "https:/a.example/",
            "https:\\\\a.example/",
            "http://\\a.example/",
            "https://a b.example/",
            "",
        ] {
            assert_eq!(redirect_url(bad, "1", "a@b"), None, "{bad:?}");
        }
    }
}
