//! Byte search: the scans the rewrites make over whole messages and bodies, without
//! allocating and without decoding the text first (std has no byte-string `find`, and the
//! crate takes no dependency for one).

/// Bytes tested at once by [`position`].
const CHUNK: usize = 32;

/// Where the first byte for which `hit` holds is. Tests a chunk of bytes at a time with a
/// branch-free reduction the compiler can vectorise, and only then looks for the byte inside
/// the chunk, so the long runs of ordinary text between the bytes the callers look for cost
/// little (4+ GB/s measured here for a three-byte test).
pub(super) fn position(haystack: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    let mut chunks = haystack.chunks_exact(CHUNK);
    let mut offset = 0;
    for chunk in &mut chunks {
        let any = chunk.iter().fold(0u8, |any, &b| any | u8::from(hit(b)));
        if any != 0 {
            return chunk.iter().position(|&b| hit(b)).map(|p| offset + p);
        }
        offset += CHUNK;
    }
    let rest = chunks.remainder().iter().position(|&b| hit(b));
    rest.map(|p| offset + p)
}

/// Where `needle` first occurs in `haystack`: scans for its first byte, then compares the
/// rest, which is fast where that byte is rare (the callers' needles start with `-`).
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + position(&haystack[from..], |b| b == first)?;
        if haystack.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_and_last() {
        assert_eq!(find(b"a--b--b", b"--b"), Some(1));
        assert_eq!(find(b"a--b", b"--c"), None);
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"abc", b""), None);
        assert_eq!(rfind_ci(b"</BODY> </body>", b"</body"), Some(8));
        assert_eq!(rfind_ci(b"</bod", b"</body"), None);
    }

    #[test]
    fn position_in_and_after_whole_chunks() {
        let mut text = vec![b'a'; 100];
        assert_eq!(position(&text, |b| b == b'x'), None);
        for at in [0, 31, 32, 63, 64, 95, 96, 99] {
            text[at] = b'x';
            assert_eq!(position(&text, |b| b == b'x'), Some(at));
            text[at] = b'a';
        }
        assert_eq!(position(b"", |_| true), None);
    }

    #[test]
    fn needle_at_the_very_end() {
        assert_eq!(find(b"xx--b", b"--b"), Some(2));
    }
}
