//! Where the confirm button sends the reader: the app's UNSUB URL with Mandrill's
//! `md_id=<message id>&md_email=<address>` appended, so the app can show its own page and
//! update its own records.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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
/// `None` when `url` is not an absolute `http`/`https` URL with a host: only those are
/// redirect targets, so a sealed `javascript:` or `data:` link cannot run anything.
///
/// Bytes that may not appear in a `Location` header (controls, spaces, non-ASCII) are
/// percent-encoded, as a browser would before following the link.
pub fn redirect_url(url: &str, md_id: &str, md_email: &str) -> Option<String> {
    let url = url.trim();
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..authority_end]
        .rsplit_once('@')
        .map_or(&rest[..authority_end], |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let separator = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let joined = format!(
        "{base}{separator}md_id={}&md_email={}{fragment}",
        utf8_percent_encode(md_id, VALUE),
        utf8_percent_encode(md_email, VALUE),
    );
    Some(header_safe(&joined))
}

/// Percent-encodes every byte outside visible ASCII.
fn header_safe(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for &b in url.as_bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
            ("https://a.example", "https://a.example?"),
            ("https://a.example/bye?x=1", "https://a.example/bye?x=1&"),
            ("https://a.example/bye?", "https://a.example/bye?"),
            ("https://a.example/bye?x=1&", "https://a.example/bye?x=1&"),
            ("HTTP://a.example/p", "HTTP://a.example/p?"),
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
            "",
        ] {
            assert_eq!(redirect_url(bad, "1", "a@b"), None, "{bad:?}");
        }
    }
}
