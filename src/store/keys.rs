//! How every tree's keys are laid out, in one place.
//!
//! | tree | key |
//! |---|---|
//! | `suppressions` | `<scope> 0x00 <address> 0x00 <list code>` — scope `global`, `domain:<d>`, `sender:<a>`; list code `u`/`b`/`c` |
//! | `allowlist` | `<address>` |
//! | `queue`, `spool`, `imports` | `<queue id>` / `<import id>` |
//! | `messages` | `<md_id>` = `<queue id>.<n>` |
//! | `profiles` | `<distinct id>` |
//! | `profiles_by_address` | `<address> 0x00 <distinct id>` |
//! | `deletions` | `<task id>` |
//! | `meta` | name |
//!
//! Addresses in keys are normalised (trimmed, lowercased). Queue ids start with 12 hex digits
//! of milliseconds, so `queue` and `messages` iterate oldest first. The suppression key puts
//! the scope first so that a scope is one range (listing, clearing) and an address within it
//! one prefix (the RCPT check's tree reads).

use super::entry::{List, Scope, SuppressionKey};

/// A list's one-byte code in keys.
pub(super) fn list_code(list: List) -> u8 {
    match list {
        List::Unsubscribes => b'u',
        List::Bounces => b'b',
        List::Complaints => b'c',
    }
}

fn list_of_code(c: u8) -> Option<List> {
    List::ALL.into_iter().find(|l| list_code(*l) == c)
}

impl SuppressionKey {
    /// The key's bytes in the `suppressions` tree.
    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut k = address_prefix(&self.scope, &self.address);
        k.push(list_code(self.list));
        k
    }
}

pub(super) fn scope_prefix(scope: &Scope) -> Vec<u8> {
    let mut k = scope.key().into_bytes();
    k.push(0);
    k
}

pub(super) fn address_prefix(scope: &Scope, address: &str) -> Vec<u8> {
    let mut k = scope_prefix(scope);
    k.extend_from_slice(address.as_bytes());
    k.push(0);
    k
}

/// Splits the part of a key after the scope prefix into (address, list).
pub(super) fn split_tail(tail: &[u8]) -> Option<(String, List)> {
    let (&code, rest) = tail.split_last()?;
    let address = rest.strip_suffix(&[0])?;
    Some((
        String::from_utf8(address.to_vec()).ok()?,
        list_of_code(code)?,
    ))
}

/// A whole key (`<scope> 0x00 <address> 0x00 <list>`) parsed.
pub(super) fn parse_key(bytes: &[u8]) -> Option<SuppressionKey> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    let scope = Scope::parse(std::str::from_utf8(&bytes[..nul]).ok()?)?;
    let (address, list) = split_tail(&bytes[nul + 1..])?;
    Some(SuppressionKey {
        scope,
        address,
        list,
    })
}

/// A suppression key's parts, borrowed: the pair `<scope> 0x00 <address>` (what the index
/// hashes), the address, and the list.
pub(super) fn suppression_parts(key: &[u8]) -> Option<(&[u8], &[u8], List)> {
    let (&code, rest) = key.split_last()?;
    let pair = rest.strip_suffix(&[0])?;
    let nul = pair.iter().position(|&b| b == 0)?;
    Some((pair, &pair[nul + 1..], list_of_code(code)?))
}

/// The list a key of `address_prefix` + one byte names.
pub(super) fn list_after(key: &[u8], prefix_len: usize) -> Option<List> {
    key.get(prefix_len).copied().and_then(list_of_code)
}

/// A `profiles_by_address` key.
pub(super) fn profile_by_address(address: &str, distinct_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(address.len() + distinct_id.len() + 1);
    k.extend_from_slice(address.as_bytes());
    k.push(0);
    k.extend_from_slice(distinct_id.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_keys_round_trip() {
        for scope in [
            Scope::Global,
            Scope::Domain("d.io".into()),
            Scope::Sender("a@d.io".into()),
        ] {
            for list in List::ALL {
                let key = SuppressionKey::new(scope.clone(), "x@y.io", list);
                assert_eq!(parse_key(&key.bytes()), Some(key));
            }
        }
        assert_eq!(parse_key(b"nonsense"), None);
    }
}
