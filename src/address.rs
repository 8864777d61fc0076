//! E-mail address normalisation: quell compares addresses case-insensitively, so every address
//! is stored trimmed and lowercased (SPEC §3).

/// Why an address is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than 254 characters")]
    TooLong,
    #[error("address must have one @ with a local part and a domain")]
    Malformed,
    /// Shaped like an address, but not one the upstream path can send to (a trailing dot, a
    /// quoted local part, a dot at the end of the local part, …): accepting it would mean
    /// bouncing it later, and a spelling that differs from the stored address would slip past
    /// the suppression check.
    #[error("address is not valid: {0}")]
    Invalid(String),
}

/// Trims and lowercases `raw`, and checks it has the shape `local@domain`
/// (RFC 5321 §4.5.3.1.3 limits a path to 256 octets, so an address to 254).
pub fn normalize(raw: &str) -> Result<String, AddressError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    if trimmed.len() > 254 {
        return Err(AddressError::TooLong);
    }
    let (local, domain) = trimmed.rsplit_once('@').ok_or(AddressError::Malformed)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@') && !local.starts_with('"')
        || trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(AddressError::Malformed);
    }
    // The rules lettre applies before it sends (RFC 5321 §4.1.2 dot-string local part, a
    // domain name or address literal): what it would refuse at delivery is refused here.
    // A quoted local part is the same mailbox as its content when the quotes are not needed
    // (RFC 5321 §4.1.2): `"jane"@x` is `jane@x`, and must meet the same suppression entry.
    // One that needs them (an `@`, a space, an escape inside) is refused: no application
    // needs one, and it would be a second spelling of somebody's address.
    let canonical = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) if is_dot_string(inner) => format!("{inner}@{domain}"),
        Some(_) => {
            return Err(AddressError::Invalid(
                "a quoted local part that needs its quotes".into(),
            ))
        }
        None => trimmed.to_string(),
    };
    // The same parse the upstream path makes (`queue::upstream`): what lettre would refuse at
    // delivery (a trailing dot, a dot at either end of the local part, …) is refused here.
    canonical
        .parse::<lettre::Address>()
        .map_err(|e| AddressError::Invalid(e.to_string()))?;
    Ok(canonical.to_lowercase())
}

/// RFC 5321's Dot-string: atoms of atext (or, with SMTPUTF8, non-ASCII) joined by single dots.
fn is_dot_string(s: &str) -> bool {
    let atext =
        |c: char| c.is_ascii_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

/// The domain part of a normalised address, if it has one.
pub fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_the_upstream_path_refuses_are_refused() {
        for bad in [
            "victim@example.net.",
            "\"victim@example.net\"@example.net",
            "victim.@example.net",
            ".victim@example.net",
            "vic..tim@example.net",
            "victim@exa mple.net",
            "victim@-example.net",
        ] {
            assert!(
                matches!(
                    normalize(bad),
                    Err(AddressError::Invalid(_) | AddressError::Malformed)
                ),
                "{bad}: {:?}",
                normalize(bad)
            );
        }
        for good in [
            "a.b+tag@example.net",
            "x@[127.0.0.1]",
            "Jane_Doe@Sub.Example.Org",
        ] {
            assert!(normalize(good).is_ok(), "{good}: {:?}", normalize(good));
        }
        assert_eq!(
            normalize("\"Victim\"@Example.net").as_deref(),
            Ok("victim@example.net"),
            "an unneeded quote is the same mailbox"
        );
    }

    #[test]
    fn lowercases_and_trims() {
        assert_eq!(normalize("  Bob@Example.COM ").unwrap(), "bob@example.com");
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "a b@example.com",
            "<a@b>",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            normalize(&format!("{}@x.io", "a".repeat(260))),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn domain() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("nodomain"), None);
    }
}
