//! One `/engage` record, read into the changes quell acts on.
//!
//! A record is a Mixpanel profile update: `$token`, `$distinct_id` and an operation. quell keeps
//! two profile properties — `$email` (which address the id is) and `$unsubscribed` — and ignores
//! every other property, so that an application's ordinary profile updates (`$set` of `plan`,
//! `$add` of counters) sent to quell succeed and change nothing.
//!
//! | operation | effect |
//! |---|---|
//! | `$set` | `$email`: map the id to the address; `$unsubscribed`: suppress, or re-subscribe on `false` |
//! | `$set_once` | the same, only where nothing is set yet |
//! | `$unset` | `"$email"`: forget the mapping; `"$unsubscribed"`: re-subscribe |
//! | `$delete` | forget the mapping (suppressions stay: deleting a profile is no consent) |
//! | `$add`, `$append`, `$union`, `$remove` | ignored; refused when they name `$email` or `$unsubscribed` |
//!
//! Modifiers (`$time`, `$ip`, `$ignore_time`, `$ignore_alias`, `$latitude`, `$longitude`) are
//! accepted and ignored.

use serde_json::{Map, Value};

use super::target::{DistinctId, IdError};
use super::unsubscribed::{Unsubscribed, ValueError};
use crate::address::{normalize, AddressError};

/// Operations that would act on a list or a number: meaningless for the two properties quell
/// keeps, so they are refused there rather than silently ignored.
const LIST_OPS: [&str; 4] = ["$add", "$append", "$union", "$remove"];

/// What is wrong with one record; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RecordError {
    #[error("a record must be a JSON object")]
    NotAnObject,
    #[error("{0}")]
    Id(#[from] IdError),
    #[error("{0} must be a JSON object of properties")]
    NotAnObjectOp(&'static str),
    #[error("$unset must be an array of property names")]
    BadUnset,
    #[error("$email {0:?}: {1}")]
    Email(String, AddressError),
    #[error("$email must be a string address (use $unset to remove it)")]
    EmailNotAString,
    #[error("{0}")]
    Value(#[from] ValueError),
    #[error("{op} cannot change {property}; use $set or $unset")]
    ListOp {
        op: &'static str,
        property: &'static str,
    },
    #[error("{0} is changed twice in one record")]
    Conflict(&'static str),
    #[error("no profile operation ($set, $set_once, $unset, $delete, …)")]
    NoOperation,
}

/// A change to one of the two properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change<T> {
    Set(T),
    /// `$set_once`: only where the property is not set yet.
    SetOnce(T),
    Unset,
}

impl<T> Change<T> {
    fn new(value: T, once: bool) -> Change<T> {
        if once {
            Change::SetOnce(value)
        } else {
            Change::Set(value)
        }
    }
}

/// One record as quell reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Update {
    pub distinct_id: DistinctId,
    /// The normalised address.
    pub email: Option<Change<String>>,
    pub unsubscribed: Option<Change<Unsubscribed>>,
    /// `$delete`: forget the profile.
    pub delete: bool,
}

impl Update {
    /// Reads a record (its `$token` has already been checked).
    pub fn from_json(value: &Value) -> Result<Update, RecordError> {
        let record = value.as_object().ok_or(RecordError::NotAnObject)?;
        let mut update = Update {
            distinct_id: DistinctId::from_json(record.get("$distinct_id"))?,
            email: None,
            unsubscribed: None,
            delete: false,
        };
        let mut operations = 0;
        for (name, value) in record {
            match name.as_str() {
                "$set" => update.read_set(properties("$set", value)?, false)?,
                "$set_once" => update.read_set(properties("$set_once", value)?, true)?,
                "$unset" => update.read_unset(value)?,
                "$delete" => update.delete = true,
                op if LIST_OPS.contains(&op) => check_list_op(op, value)?,
                _ => continue,
            }
            operations += 1;
        }
        if operations == 0 {
            return Err(RecordError::NoOperation);
        }
        if update.delete && update.email.is_some() {
            return Err(RecordError::Conflict("$email"));
        }
        Ok(update)
    }

    /// Reads the two properties of a `$set` (or, with `once`, a `$set_once`).
    fn read_set(&mut self, props: &Map<String, Value>, once: bool) -> Result<(), RecordError> {
        if let Some(value) = props.get("$email") {
            let raw = value.as_str().ok_or(RecordError::EmailNotAString)?;
            let address = normalize(raw).map_err(|e| RecordError::Email(truncate(raw), e))?;
            set_only_once(&mut self.email, Change::new(address, once), "$email")?;
        }
        if let Some(value) = props.get("$unsubscribed") {
            let flag = Unsubscribed::from_json(value)?;
            set_only_once(
                &mut self.unsubscribed,
                Change::new(flag, once),
                "$unsubscribed",
            )?;
        }
        Ok(())
    }

    fn read_unset(&mut self, value: &Value) -> Result<(), RecordError> {
        let names: Vec<&str> = match value {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().ok_or(RecordError::BadUnset))
                .collect::<Result<_, _>>()?,
            // mixpanel-node wraps a single name in an array; accept it bare too.
            Value::String(s) => vec![s.as_str()],
            _ => return Err(RecordError::BadUnset),
        };
        for name in names {
            match name {
                "$email" => set_only_once(&mut self.email, Change::Unset, "$email")?,
                "$unsubscribed" => {
                    set_only_once(&mut self.unsubscribed, Change::Unset, "$unsubscribed")?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn properties<'a>(
    op: &'static str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, RecordError> {
    value.as_object().ok_or(RecordError::NotAnObjectOp(op))
}

fn check_list_op(op: &str, value: &Value) -> Result<(), RecordError> {
    let op = LIST_OPS.into_iter().find(|o| *o == op).unwrap_or("$add");
    if let Some(props) = value.as_object() {
        for property in ["$email", "$unsubscribed"] {
            if props.contains_key(property) {
                return Err(RecordError::ListOp { op, property });
            }
        }
    }
    Ok(())
}

fn set_only_once<T>(
    slot: &mut Option<Change<T>>,
    change: Change<T>,
    property: &'static str,
) -> Result<(), RecordError> {
    if slot.is_some() {
        return Err(RecordError::Conflict(property));
    }
    *slot = Some(change);
    Ok(())
}

/// Echoes at most 64 characters of a bad value back in an error.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Update, RecordError> {
        Update::from_json(&v)
    }

    #[test]
    fn set_email_and_flag() {
        let u = read(json!({
            "$token": "k", "$distinct_id": "u1", "$time": 1.5, "$ip": "0",
            "$set": {"$email": " A@X.io ", "$unsubscribed": true, "plan": "pro"}
        }))
        .unwrap();
        assert_eq!(u.distinct_id.id, "u1");
        assert_eq!(u.email, Some(Change::Set("a@x.io".into())));
        assert_eq!(
            u.unsubscribed,
            Some(Change::Set(Unsubscribed::Yes { at: None }))
        );
        assert!(!u.delete);
    }

    #[test]
    fn set_once_unset_and_delete() {
        let u = read(json!({"$distinct_id": "u1", "$set_once": {"$unsubscribed": "2024-05-01"}}))
            .unwrap();
        assert_eq!(
            u.unsubscribed,
            Some(Change::SetOnce(Unsubscribed::Yes {
                at: Some(1_714_521_600)
            }))
        );
        let u = read(json!({"$distinct_id": "u1", "$unset": ["$unsubscribed", "$email", "x"]}))
            .unwrap();
        assert_eq!(u.unsubscribed, Some(Change::Unset));
        assert_eq!(u.email, Some(Change::Unset));
        let u = read(json!({"$distinct_id": "u1", "$unset": "$unsubscribed"})).unwrap();
        assert_eq!(u.unsubscribed, Some(Change::Unset));
        let u = read(json!({"$distinct_id": "u1", "$delete": ""})).unwrap();
        assert!(u.delete && u.email.is_none());
    }

    #[test]
    fn other_operations_are_ignored() {
        let u = read(json!({"$distinct_id": 7, "$add": {"n": 1}, "$set": {"plan": "x"}})).unwrap();
        assert_eq!(u.distinct_id.id, "7");
        assert!(u.email.is_none() && u.unsubscribed.is_none());
    }

    #[test]
    fn bad_records_name_the_problem() {
        for (record, want) in [
            (json!([]), "a record must be a JSON object"),
            (json!({"$set": {}}), "$distinct_id is missing"),
            (json!({"$distinct_id": "u"}), "no profile operation"),
            (json!({"$distinct_id": "u", "$set": []}), "$set must be"),
            (json!({"$distinct_id": "u", "$unset": {}}), "$unset must be"),
            (
                json!({"$distinct_id": "u", "$set": {"$email": "nope"}}),
                "$email \"nope\"",
            ),
            (
                json!({"$distinct_id": "u", "$set": {"$email": null}}),
                "$email must be a string",
            ),
            (
                json!({"$distinct_id": "u", "$set": {"$unsubscribed": null}}),
                "$unsubscribed is null",
            ),
            (
                json!({"$distinct_id": "u", "$add": {"$unsubscribed": 1}}),
                "$add cannot change $unsubscribed",
            ),
            (
                json!({"$distinct_id": "u", "$set": {"$unsubscribed": true}, "$unset": ["$unsubscribed"]}),
                "$unsubscribed is changed twice",
            ),
            (
                json!({"$distinct_id": "u", "$set": {"$email": "a@x.io"}, "$delete": ""}),
                "$email is changed twice",
            ),
        ] {
            let e = read(record.clone()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{record}: {e}");
        }
    }
}
