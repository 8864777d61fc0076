//! One submitted record — from a JSON object, a form, a multipart form or a CSV row — and its
//! validation into a suppression entry. Every input shape is first gathered into a [`RawRecord`]
//! so that all of them obey the same rules and produce the same error messages.

use serde_json::Value;

use super::Resource;
use crate::address::{normalize, AddressError};
use crate::store::Suppression;

/// What is wrong with one record; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RecordError {
    #[error("a record must be a JSON object")]
    NotAnObject,
    #[error("address is missing")]
    MissingAddress,
    #[error("address {0:?}: {1}")]
    Address(String, AddressError),
    #[error("{0} must be a string")]
    NotAString(&'static str),
    #[error("{0} must be a string or an array of strings")]
    NotStrings(&'static str),
    #[error("created_at {0:?} is not an RFC 2822 date such as \"Fri, 21 Oct 2011 11:02:55 UTC\"")]
    CreatedAt(String),
    #[error("code {0:?} is not an SMTP reply code (100-999)")]
    Code(String),
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("more than {0} tags")]
    TooManyTags(usize),
}

/// A record's fields as submitted, before validation. Absent and empty fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RawRecord {
    pub address: Option<String>,
    /// From `tags` (Mailgun's current name) and `tag` (the older, repeatable one).
    pub tags: Vec<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub created_at: Option<String>,
}

impl RawRecord {
    /// Reads a JSON record. Unknown fields are ignored, as Mailgun does (mailgun-go sends an
    /// empty `id`); `null` counts as absent; `code` may be a number or a string.
    pub fn from_json(value: &Value) -> Result<RawRecord, RecordError> {
        let object = value.as_object().ok_or(RecordError::NotAnObject)?;
        let mut raw = RawRecord::default();
        for (name, value) in object {
            match (name.as_str(), value) {
                (_, Value::Null) => {}
                ("address", Value::String(s)) => raw.address = non_empty(s),
                ("address", _) => return Err(RecordError::NotAString("address")),
                ("tags" | "tag", Value::String(s)) => raw.tags.push(s.clone()),
                ("tags" | "tag", Value::Array(items)) => {
                    for item in items {
                        let field = if name == "tag" { "tag" } else { "tags" };
                        let s = item.as_str().ok_or(RecordError::NotStrings(field))?;
                        raw.tags.push(s.to_string());
                    }
                }
                ("tags", _) => return Err(RecordError::NotStrings("tags")),
                ("tag", _) => return Err(RecordError::NotStrings("tag")),
                ("code", Value::String(s)) => raw.code = non_empty(s),
                ("code", Value::Number(n)) => raw.code = Some(n.to_string()),
                ("code", _) => return Err(RecordError::Code(value.to_string())),
                ("error", Value::String(s)) => raw.error = non_empty(s),
                ("error", _) => return Err(RecordError::NotAString("error")),
                ("created_at", Value::String(s)) => raw.created_at = non_empty(s),
                ("created_at", _) => return Err(RecordError::CreatedAt(value.to_string())),
                _ => {}
            }
        }
        Ok(raw)
    }

    /// Reads a form record (`address`, repeatable `tag`, `code`, `error`, `created_at`).
    pub fn from_pairs<I, K, V>(pairs: I) -> RawRecord
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut raw = RawRecord::default();
        for (name, value) in pairs {
            let value = value.as_ref();
            match name.as_ref() {
                "address" => raw.address = non_empty(value),
                "tag" | "tags" => raw.tags.push(value.to_string()),
                "code" => raw.code = non_empty(value),
                "error" => raw.error = non_empty(value),
                "created_at" => raw.created_at = non_empty(value),
                _ => {}
            }
        }
        raw
    }

    /// Validates the record for resource `R`: the normalised address and the entry to store.
    /// `now` (Unix seconds) is the default `created_at`.
    pub fn validate<R: Resource>(&self, now: i64) -> Result<(String, Suppression), RecordError> {
        let given = self.address.as_deref().ok_or(RecordError::MissingAddress)?;
        let address = normalize(given).map_err(|e| RecordError::Address(given.to_string(), e))?;
        let created_at = match self.created_at.as_deref() {
            Some(s) => parse_rfc2822(s)?.unwrap_or(now),
            None => now,
        };
        let mut entry = Suppression::new(R::REASON, created_at);
        R::fill(self, &mut entry)?;
        Ok((address, entry))
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Go's zero `time.Time` as mailgun-go renders an unset `created_at`
/// (`Mon, 01 Jan 0001 00:00:00 UTC`): it means "not given", so the default applies.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Parses an RFC 2822 date (RFC 2822 §3.3) as Mailgun writes and accepts them: besides the
/// numeric and `GMT`/`UT` zones of the RFC, the `UTC` that Mailgun itself renders. Returns
/// `None` for Go's zero time, which clients send for "unset".
pub(super) fn parse_rfc2822(s: &str) -> Result<Option<i64>, RecordError> {
    let secs =
        crate::time::parse_rfc2822(s).ok_or_else(|| RecordError::CreatedAt(s.to_string()))?;
    Ok((secs != GO_ZERO_TIME).then_some(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::mailgun::{Bounces, Complaints, Unsubscribes};
    use crate::store::Reason;
    use serde_json::json;

    #[test]
    fn dates_round_trip_in_mailgun_form() {
        let t = parse_rfc2822("Fri, 21 Oct 2011 11:02:55 UTC")
            .unwrap()
            .unwrap();
        assert_eq!(t, 1_319_194_975);
        assert_eq!(crate::time::rfc2822(t), "Fri, 21 Oct 2011 11:02:55 UTC");
        for same in [
            "Fri, 21 Oct 2011 11:02:55 GMT",
            "Fri, 21 Oct 2011 11:02:55 +0000",
            "  Fri, 21 Oct 2011 11:02:55 utc ",
            "Fri, 21 Oct 2011 13:02:55 +0200",
        ] {
            assert_eq!(parse_rfc2822(same), Ok(Some(t)), "{same}");
        }
    }

    #[test]
    fn bad_dates_and_go_zero_time() {
        for bad in [
            "yesterday",
            "2011-10-21T11:02:55Z",
            "Fri, 21 Oct 2011 11:02:55 CET",
            "UTC",
        ] {
            assert!(
                matches!(parse_rfc2822(bad), Err(RecordError::CreatedAt(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_rfc2822("Mon, 01 Jan 0001 00:00:00 UTC"), Ok(None));
    }

    #[test]
    fn json_records_accept_mailgun_and_client_shapes() {
        let raw = RawRecord::from_json(&json!({
            "address": " Bob@Example.com ", "tags": ["a", "b"], "tag": "c", "id": "",
            "code": 551, "error": "gone", "created_at": null,
        }))
        .unwrap();
        assert_eq!(raw.address.as_deref(), Some("Bob@Example.com"));
        let mut tags = raw.tags.clone();
        tags.sort();
        assert_eq!(tags, ["a", "b", "c"]);
        assert_eq!(raw.code.as_deref(), Some("551"));
        assert_eq!(raw.created_at, None);
        assert_eq!(
            RawRecord::from_json(&json!("a@b")),
            Err(RecordError::NotAnObject)
        );
        assert_eq!(
            RawRecord::from_json(&json!({"address": 5})),
            Err(RecordError::NotAString("address"))
        );
        assert_eq!(
            RawRecord::from_json(&json!({"address": "a@b", "tags": [1]})),
            Err(RecordError::NotStrings("tags"))
        );
    }

    #[test]
    fn form_pairs_collect_repeated_tags() {
        let raw = RawRecord::from_pairs([
            ("address", "a@b.io"),
            ("tag", "x"),
            ("tag", "y"),
            ("other", "z"),
        ]);
        assert_eq!(raw.tags, ["x", "y"]);
        assert_eq!(raw.address.as_deref(), Some("a@b.io"));
    }

    #[test]
    fn validation_applies_defaults_and_names_the_field() {
        let raw = RawRecord::from_pairs([("address", "Bob@Example.com")]);
        let (address, e) = raw.validate::<Unsubscribes>(42).unwrap();
        assert_eq!(address, "bob@example.com");
        assert_eq!(
            (e.reason, e.created_at, e.expires_at),
            (Reason::Unsub, 42, None)
        );
        assert_eq!(e.tags, ["*"]);

        let (_, b) = raw.validate::<Bounces>(42).unwrap();
        assert_eq!(
            (b.reason, b.code, b.detail.as_str()),
            (Reason::HardBounce, Some(550), "")
        );
        let (_, c) = raw.validate::<Complaints>(42).unwrap();
        assert_eq!(c.reason, Reason::Spam);

        let missing = RawRecord::default().validate::<Complaints>(0).unwrap_err();
        assert_eq!(missing, RecordError::MissingAddress);
        let bad = RawRecord::from_pairs([("address", "not-an-address")]);
        let msg = bad.validate::<Complaints>(0).unwrap_err().to_string();
        assert!(msg.starts_with("address \"not-an-address\""), "{msg}");
        let date = RawRecord::from_pairs([("address", "a@b.io"), ("created_at", "soon")]);
        assert!(date
            .validate::<Complaints>(0)
            .unwrap_err()
            .to_string()
            .starts_with("created_at"));
    }
}
