//! One submitted entry (`POST /api/suppressions`) or removal (`DELETE /api/suppressions`),
//! validated into store keys and values, and the wire forms of scopes, reasons, lists and dates
//! every admin route reads. Nothing here touches the store, so a whole request is checked before
//! any of it is written.

use serde::Deserialize;
use serde_json::Value;

use super::address_error;
use crate::address::{normalize, AddressError};
use crate::store::{List, Reason, Scope, Suppression, SuppressionKey};
use crate::time;

/// Longest tag accepted; tags are message labels, not documents.
const MAX_TAG_LEN: usize = 256;
/// Most tags one entry may carry.
const MAX_TAGS: usize = 100;
/// Longest `detail` (a bounce's upstream reply fits).
const MAX_DETAIL: usize = 4096;
/// Longest `md_id` (quell's are 20 hex digits, a dot and a number).
const MAX_MD_ID: usize = 64;
/// Longest domain name (RFC 1035 §2.3.4).
const MAX_DOMAIN: usize = 253;

/// What is wrong with one entry or one filter; the message names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum EntryError {
    #[error("{0}")]
    Shape(String),
    #[error("scope {0:?}: expected global, domain:<domain> or sender:<address>")]
    Scope(String),
    #[error("address {0:?}: {1}")]
    Address(String, AddressError),
    #[error("reason {0:?}: expected unsub, hard-bounce, soft-bounce, spam or custom")]
    Reason(String),
    #[error("list {0:?}: expected unsubscribes, bounces or complaints")]
    List(String),
    #[error("list {list:?} does not hold reason {reason:?} (it belongs on {expected:?})")]
    ListMismatch {
        list: String,
        reason: &'static str,
        expected: &'static str,
    },
    #[error("{field} {value:?} is not an RFC 3339 (2024-05-01T10:00:00Z) or RFC 2822 (Wed, 01 May 2024 10:00:00 +0000) date")]
    Date { field: &'static str, value: String },
    #[error("tag {0:?}: tags must be non-empty and at most {MAX_TAG_LEN} characters")]
    Tag(String),
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("code {0}: not an SMTP reply code (200-599)")]
    Code(u16),
}

/// Parses a scope as written in keys (`global`, `domain:<d>`, `sender:<a>`), refusing what
/// would not make a sound key: a domain with whitespace, controls, `/` or `@`, a sender that is
/// not an address.
pub(super) fn parse_scope(s: &str) -> Result<Scope, EntryError> {
    let bad = || EntryError::Scope(s.chars().take(300).collect());
    let s = s.trim();
    if s == "global" {
        return Ok(Scope::Global);
    }
    if let Some(domain) = s.strip_prefix("domain:") {
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '/' || c == '@';
        if domain.is_empty() || domain.len() > MAX_DOMAIN || domain.chars().any(bad_char) {
            return Err(bad());
        }
        return Ok(Scope::Domain(domain.to_ascii_lowercase()));
    }
    if let Some(sender) = s.strip_prefix("sender:") {
        return normalize(sender).map(Scope::Sender).map_err(|_| bad());
    }
    Err(bad())
}

/// Parses a reason's wire name.
pub(super) fn parse_reason(s: &str) -> Result<Reason, EntryError> {
    s.parse()
        .map_err(|_| EntryError::Reason(s.trim().chars().take(64).collect()))
}

/// Parses a list's wire name.
pub(super) fn parse_list(s: &str) -> Result<List, EntryError> {
    s.parse()
        .map_err(|_| EntryError::List(s.trim().chars().take(64).collect()))
}

/// Normalises an address, naming it in the error.
pub(super) fn parse_address(s: &str) -> Result<String, EntryError> {
    normalize(s).map_err(|e| address_error(s, e))
}

/// An address as stored: a normalised address, or a tombstone's name (`#` and 32 lowercase hex
/// digits, as listings show it), so an operator can find and remove a tombstone.
pub(super) fn parse_stored_address(s: &str) -> Result<String, EntryError> {
    let t = s.trim();
    let is_tombstone_name = t.len() == 33
        && t.starts_with('#')
        && t[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_tombstone_name {
        return Ok(t.to_string());
    }
    parse_address(s)
}

/// Parses an RFC 3339 date, or an RFC 2822 one (also with Mailgun's `UTC` zone), into Unix
/// seconds.
pub(super) fn parse_date(field: &'static str, s: &str) -> Result<i64, EntryError> {
    time::parse_rfc3339(s)
        .or_else(|| time::parse_rfc2822(s))
        .ok_or_else(|| EntryError::Date {
            field,
            value: s.chars().take(64).collect(),
        })
}

/// One item of `POST /api/suppressions`. The fields `GET` renders are all accepted, so a
/// listing can be posted back; `list`, when given, must be the reason's list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    scope: String,
    address: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    list: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    md_id: Option<String>,
    #[serde(default)]
    code: Option<u16>,
}

/// Validates one `POST` item into the key and entry to store. `now` is the default
/// `created_at`; the default reason is `custom` (a manual entry), the default tags `["*"]`.
pub(super) fn new_entry(
    value: Value,
    now: i64,
) -> Result<(SuppressionKey, Suppression), EntryError> {
    let raw: NewEntry =
        serde_json::from_value(value).map_err(|e| EntryError::Shape(e.to_string()))?;
    let scope = parse_scope(&raw.scope)?;
    let address = parse_address(&raw.address)?;
    let reason = match raw.reason.as_deref() {
        Some(r) => parse_reason(r)?,
        None => Reason::Custom,
    };
    if let Some(list) = raw.list.as_deref() {
        let given = parse_list(list)?;
        if given != reason.list() {
            return Err(EntryError::ListMismatch {
                list: list.trim().to_string(),
                reason: reason.as_str(),
                expected: super::list_name(reason.list()),
            });
        }
    }
    let created_at = match raw.created_at.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => parse_date("created_at", s)?,
        None => now,
    };
    let expires_at = raw
        .expires_at
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_date("expires_at", s))
        .transpose()?;
    let mut entry = Suppression::new(reason, created_at);
    entry.expires_at = expires_at;
    entry.tags = tags(raw.tags.unwrap_or_default())?;
    if let Some(detail) = raw.detail {
        if detail.chars().count() > MAX_DETAIL {
            return Err(EntryError::TooLong {
                field: "detail",
                max: MAX_DETAIL,
            });
        }
        entry.detail = detail;
    }
    if let Some(md_id) = raw.md_id.filter(|m| !m.trim().is_empty()) {
        if md_id.chars().count() > MAX_MD_ID {
            return Err(EntryError::TooLong {
                field: "md_id",
                max: MAX_MD_ID,
            });
        }
        entry.md_id = Some(md_id);
    }
    if let Some(code) = raw.code {
        if !(200..=599).contains(&code) {
            return Err(EntryError::Code(code));
        }
        entry.code = Some(code);
    }
    Ok((SuppressionKey::new(scope, address, reason.list()), entry))
}

/// Trimmed, de-duplicated tags; none means all mail (`*`).
fn tags(given: Vec<String>) -> Result<Vec<String>, EntryError> {
    let mut out: Vec<String> = Vec::new();
    for tag in &given {
        let t = tag.trim();
        if t.is_empty() || t.chars().count() > MAX_TAG_LEN {
            return Err(EntryError::Tag(tag.chars().take(64).collect()));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(EntryError::TooManyTags);
    }
    if out.is_empty() {
        out.push("*".to_string());
    }
    Ok(out)
}

/// One removal: an address in a scope, from one list or all three, optionally only when the
/// entry has a given reason (a re-subscribe removes `unsub`, never a bounce or a manual entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Removal {
    pub scope: Scope,
    pub address: String,
    /// `None`: every list.
    pub list: Option<List>,
    pub reason: Option<Reason>,
}

impl Removal {
    /// Builds a removal from its wire fields.
    pub fn parse(
        scope: Option<&str>,
        address: Option<&str>,
        list: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Removal, super::AdminError> {
        let scope = parse_scope(scope.ok_or(super::AdminError::Missing("scope"))?)?;
        let address = parse_stored_address(address.ok_or(super::AdminError::Missing("address"))?)?;
        let list = list.map(parse_list).transpose()?;
        let reason = reason.map(parse_reason).transpose()?;
        if let (Some(l), Some(r)) = (list, reason) {
            if l != r.list() {
                return Err(EntryError::ListMismatch {
                    list: super::list_name(l).to_string(),
                    reason: r.as_str(),
                    expected: super::list_name(r.list()),
                }
                .into());
            }
        }
        Ok(Removal {
            scope,
            address,
            list: list.or(reason.map(Reason::list)),
            reason,
        })
    }

    /// One item of a `DELETE` body: `{"scope", "address", "list"?, "reason"?}`.
    pub fn from_json(value: &Value) -> Result<Removal, EntryError> {
        let object = value
            .as_object()
            .ok_or_else(|| EntryError::Shape("an item must be a JSON object".into()))?;
        let mut fields = [None; 4];
        for (name, value) in object {
            let slot = match name.as_str() {
                "scope" => 0,
                "address" => 1,
                "list" => 2,
                "reason" => 3,
                other => {
                    return Err(EntryError::Shape(format!(
                        "unknown field {other:?}; expected scope, address, list, reason"
                    )))
                }
            };
            match value {
                Value::Null => {}
                Value::String(s) => fields[slot] = Some(s.as_str()),
                _ => return Err(EntryError::Shape(format!("{name} must be a string"))),
            }
        }
        Removal::parse(fields[0], fields[1], fields[2], fields[3]).map_err(|e| match e {
            super::AdminError::Entry(e) => e,
            other => EntryError::Shape(other.to_string()),
        })
    }

    /// The keys the removal may delete.
    pub fn keys(&self) -> Vec<SuppressionKey> {
        let lists = match self.list {
            Some(l) => vec![l],
            None => vec![List::Unsubscribes, List::Bounces, List::Complaints],
        };
        lists
            .into_iter()
            .map(|l| SuppressionKey::new(self.scope.clone(), self.address.clone(), l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("global").unwrap(), Scope::Global);
        assert_eq!(
            parse_scope("domain:Mg.Example.com").unwrap(),
            Scope::Domain("mg.example.com".into())
        );
        assert_eq!(
            parse_scope("sender:App@X.io").unwrap(),
            Scope::Sender("app@x.io".into())
        );
        for bad in [
            "",
            "Global",
            "domain:",
            "domain:a b",
            "domain:a\0b",
            "domain:x@y",
            "sender:nope",
            "user:x",
        ] {
            assert!(parse_scope(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dates_in_both_forms() {
        let t = 1_319_194_975;
        for s in [
            "2011-10-21T11:02:55Z",
            "2011-10-21T13:02:55+02:00",
            "Fri, 21 Oct 2011 11:02:55 +0000",
            "Fri, 21 Oct 2011 11:02:55 UTC",
            " Fri, 21 Oct 2011 11:02:55 GMT ",
        ] {
            assert_eq!(parse_date("created_at", s), Ok(t), "{s}");
        }
        let e = parse_date("expires_at", "tomorrow").unwrap_err();
        assert!(e.to_string().starts_with("expires_at \"tomorrow\""), "{e}");
    }

    #[test]
    fn defaults_and_every_field() {
        let (key, e) = new_entry(json!({"scope": "global", "address": " A@X.io "}), 7).unwrap();
        assert_eq!(key.address, "a@x.io");
        assert_eq!(key.list, List::Unsubscribes);
        assert_eq!(e, Suppression::new(Reason::Custom, 7));

        let (key, e) = new_entry(
            json!({
                "scope": "domain:d.io", "address": "a@x.io", "reason": "hard-bounce",
                "list": "bounces", "tags": ["news", " news ", "promo"], "detail": "550 gone",
                "created_at": "2011-10-21T11:02:55Z", "expires_at": "Fri, 21 Oct 2011 12:02:55 UTC",
                "md_id": "01.1", "code": 550
            }),
            7,
        )
        .unwrap();
        assert_eq!(key.list, List::Bounces);
        assert_eq!(e.tags, ["news", "promo"]);
        assert_eq!(e.created_at, 1_319_194_975);
        assert_eq!(e.expires_at, Some(1_319_194_975 + 3600));
        assert_eq!(
            (e.detail.as_str(), e.md_id.as_deref(), e.code),
            ("550 gone", Some("01.1"), Some(550))
        );
    }

    #[test]
    fn bad_items_name_the_field() {
        let bad = |v: Value, want: &str| {
            let e = new_entry(v.clone(), 0).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        };
        bad(json!({"address": "a@x.io"}), "missing field `scope`");
        bad(json!({"scope": "global"}), "missing field `address`");
        bad(
            json!({"scope": "global", "address": "nope"}),
            "address \"nope\"",
        );
        bad(
            json!({"scope": "everyone", "address": "a@x.io"}),
            "scope \"everyone\"",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "reason": "bored"}),
            "reason \"bored\"",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "reason": "spam", "list": "bounces"}),
            "belongs on \"complaints\"",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "tags": [""]}),
            "tag \"\"",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "created_at": "now"}),
            "created_at \"now\"",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "reson": "spam"}),
            "unknown field `reson`",
        );
        bad(
            json!({"scope": "global", "address": "a@x.io", "code": 42}),
            "code 42",
        );
        bad(json!("a@x.io"), "expected struct");
    }

    #[test]
    fn removals() {
        let r =
            Removal::from_json(&json!({"scope": "global", "address": "A@x.io", "reason": "unsub"}))
                .unwrap();
        assert_eq!(r.list, Some(List::Unsubscribes));
        assert_eq!(r.keys().len(), 1);
        let all = Removal::from_json(&json!({"scope": "global", "address": "a@x.io"})).unwrap();
        assert_eq!(all.keys().len(), 3);
        for bad in [
            json!({"address": "a@x.io"}),
            json!({"scope": "global", "address": "a@x.io", "list": "spam"}),
            json!({"scope": "global", "address": "a@x.io", "list": "bounces", "reason": "unsub"}),
            json!({"scope": "global", "address": "a@x.io", "tag": "x"}),
            json!({"scope": "global", "address": 5}),
        ] {
            assert!(Removal::from_json(&bad).is_err(), "{bad} accepted");
        }
    }
}
