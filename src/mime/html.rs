//! The little HTML a rewrite needs: URLs inside `href="…"` are written with character
//! references (`&amp;`), so a URL read from HTML is unescaped and a link written into HTML is
//! escaped (HTML Living Standard §13.1.4, character references).

/// `url` as written in HTML with the common character references resolved: the named ones
/// for `& < > " '` and numeric ones (`&#38;`, `&#x26;`). Anything else is kept as written.
pub(super) fn unescape(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match reference(rest) {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character the reference at the start of `s` stands for, and the reference's length.
fn reference(s: &str) -> Option<(char, usize)> {
    let end = s.find(';')?;
    let name = &s[1..end];
    let ch = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

/// `text` escaped for an HTML attribute value or text: `& < > " '` become references.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_common_references() {
        assert_eq!(
            unescape("https://a/?x=1&amp;y=2&#38;z=&#x3D;&quot;"),
            "https://a/?x=1&y=2&z==\""
        );
        assert_eq!(unescape("a&b&unknown;&#xZZ;&"), "a&b&unknown;&#xZZ;&");
    }

    #[test]
    fn escapes_what_html_needs() {
        assert_eq!(
            escape("https://q/u?a=1&b=\"<'>"),
            "https://q/u?a=1&amp;b=&quot;&lt;&#39;&gt;"
        );
    }
}
