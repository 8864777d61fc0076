//! Who an update is about: a Mixpanel distinct id, and the address it is when it is one.
//!
//! Distinct ids are the application's identifiers (`"u-42"`, `"42"`, or an e-mail address);
//! they are kept as given (trimmed; Mixpanel ids are case-sensitive) as profile keys. An id that
//! is itself an address (it normalises and contains `@`) may be used directly when no profile
//! names another address.

use serde_json::Value;

use crate::address::normalize;

/// The longest distinct id accepted, in bytes: ids are store keys and are echoed in errors.
pub(super) const MAX_ID: usize = 255;

/// Why a distinct id is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum IdError {
    #[error("$distinct_id is missing")]
    Missing,
    #[error("$distinct_id must be a string or an integer")]
    NotAString,
    #[error("$distinct_id is empty")]
    Empty,
    #[error("$distinct_id is longer than {MAX_ID} bytes")]
    TooLong,
    #[error("$distinct_id contains control characters")]
    Control,
}

/// A validated distinct id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DistinctId {
    /// The id as given, trimmed: the profile key.
    pub id: String,
    /// The normalised address, when the id is itself one.
    pub address: Option<String>,
}

impl DistinctId {
    /// Validates an id given as text (a CSV cell, a JSON string).
    pub fn parse(raw: &str) -> Result<DistinctId, IdError> {
        let id = raw.trim();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_ID {
            return Err(IdError::TooLong);
        }
        if id.chars().any(char::is_control) {
            return Err(IdError::Control);
        }
        let address = id.contains('@').then(|| normalize(id).ok()).flatten();
        Ok(DistinctId {
            id: id.to_string(),
            address,
        })
    }

    /// Validates `$distinct_id` from a JSON record: a string, or an integer (mixpanel-python
    /// serialises an `int` id as a number).
    pub fn from_json(value: Option<&Value>) -> Result<DistinctId, IdError> {
        match value {
            None | Some(Value::Null) => Err(IdError::Missing),
            Some(Value::String(s)) => DistinctId::parse(s),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => DistinctId::parse(&n.to_string()),
            Some(_) => Err(IdError::NotAString),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_addresses() {
        let a = DistinctId::parse(" Bob@Example.COM ").unwrap();
        assert_eq!(a.id, "Bob@Example.COM");
        assert_eq!(a.address.as_deref(), Some("bob@example.com"));
        let u = DistinctId::parse("u-42").unwrap();
        assert_eq!((u.id.as_str(), u.address), ("u-42", None));
        // Not a valid address: an ordinary id, resolved through its profile.
        assert_eq!(DistinctId::parse("a b@x").unwrap().address, None);
        assert_eq!(DistinctId::parse(" "), Err(IdError::Empty));
        assert_eq!(DistinctId::parse(&"x".repeat(256)), Err(IdError::TooLong));
        assert_eq!(DistinctId::parse("a\0b"), Err(IdError::Control));
    }

    #[test]
    fn json_ids() {
        assert_eq!(DistinctId::from_json(Some(&json!(42))).unwrap().id, "42");
        assert_eq!(DistinctId::from_json(None), Err(IdError::Missing));
        assert_eq!(
            DistinctId::from_json(Some(&Value::Null)),
            Err(IdError::Missing)
        );
        assert_eq!(
            DistinctId::from_json(Some(&json!(1.5))),
            Err(IdError::NotAString)
        );
        assert_eq!(
            DistinctId::from_json(Some(&json!(["a"]))),
            Err(IdError::NotAString)
        );
    }
}
