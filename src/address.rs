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
    Ok(trimmed.to_lowercase())
}

/// The domain part of a normalised address, if it has one.
pub fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

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
