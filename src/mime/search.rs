//! Substring search in bytes: the few scans the rewrites make over whole bodies, without
//! allocating and without decoding the text first (std has no byte-string `find`).

/// Where `needle` first occurs in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    find_by(haystack, needle, |a, b| a == b)
}

/// Where `needle` first occurs in `haystack`, ignoring ASCII case.
pub(super) fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    find_by(haystack, needle, |a, b| a.eq_ignore_ascii_case(&b))
}

/// Where `needle` last occurs in `haystack`, ignoring ASCII case.
pub(super) fn rfind_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).rev().find(|&at| {
        haystack[at].eq_ignore_ascii_case(&first)
            && haystack[at..at + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// Scans for the first byte of `needle`, then compares the rest: fast on text where that
/// byte is rare, which is how the callers pick their needles.
fn find_by(haystack: &[u8], needle: &[u8], eq: impl Fn(u8, u8) -> bool) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| eq(b, first))?;
        let tail = haystack.get(at + 1..at + needle.len())?;
        if tail.iter().zip(rest).all(|(&a, &b)| eq(a, b)) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_and_last() {
        assert_eq!(find(b"a--b--b", b"--b"), Some(1));
        assert_eq!(find(b"a--b", b"--c"), None);
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"abc", b""), None);
        assert_eq!(find_ci(b"xx BASE64", b"base64"), Some(3));
        assert_eq!(rfind_ci(b"</BODY> </body>", b"</body"), Some(8));
        assert_eq!(rfind_ci(b"</bod", b"</body"), None);
    }

    #[test]
    fn needle_at_the_very_end() {
        assert_eq!(find(b"xx--b", b"--b"), Some(2));
        assert_eq!(find_ci(b"xxB", b"b"), Some(2));
    }
}
