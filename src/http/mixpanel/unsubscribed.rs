//! The `$unsubscribed` value, from JSON (`/engage`) or from the import's second CSV column.
//!
//! SPEC §6.3: any value but `false` (case-insensitive) unsubscribes, and a date value becomes the
//! entry's `created_at`; `false` re-subscribes. Both endpoints read values through this module so
//! that they can never disagree about what a value means.
//!
//! Dates: RFC 3339 (`2024-05-01T10:00:00Z`, `…+02:00`), ISO 8601 without an offset
//! (`2024-05-01T10:00:00`, taken as UTC — what mixpanel-python's `DatetimeSerializer` writes for
//! a `datetime`), a bare date (`2024-05-01`, midnight UTC) and Unix seconds between
//! [`UNIX_MIN`] and [`UNIX_MAX`]. Smaller numbers (`1`, `0`) are flags, not dates: `1` must not
//! mean 1970.

use serde_json::Value;

/// Below [`UNIX_MIN`] a number is a flag, not a date.
pub(super) use crate::time::{UNIX_MAX, UNIX_MIN};

/// What a value asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsubscribed {
    /// `false`: re-subscribe (remove the Mixpanel-made entry).
    No,
    /// Anything else: suppress. `at` is the date the value carried (Unix seconds), if any.
    Yes { at: Option<i64> },
}

/// Why a value means nothing. Empty and null are refused rather than guessed: one reading would
/// silently re-subscribe, the other silently suppress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ValueError {
    #[error("the unsubscribed value is empty: send true, a date, or false")]
    Empty,
    #[error("$unsubscribed is null: send true, a date, or false (or $unset it to re-subscribe)")]
    Null,
    #[error("{0:?} looks like a date but is not a valid one (use 2024-05-01, 2024-05-01T10:00:00Z or Unix seconds)")]
    BadDate(String),
}

impl Unsubscribed {
    /// Reads a text value (a CSV cell, or a JSON string).
    pub fn from_text(raw: &str) -> Result<Unsubscribed, ValueError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(ValueError::Empty);
        }
        // The common cases first: an import is mostly `true`.
        if s.eq_ignore_ascii_case("true") {
            return Ok(Unsubscribed::Yes { at: None });
        }
        if s.eq_ignore_ascii_case("false") {
            return Ok(Unsubscribed::No);
        }
        if let Some(at) = parse_date(s) {
            return Ok(Unsubscribed::Yes { at: Some(at) });
        }
        if looks_like_date(s) {
            // A mistyped date must not quietly become "now".
            return Err(ValueError::BadDate(truncate(s)));
        }
        Ok(Unsubscribed::Yes { at: None })
    }

    /// Reads a JSON value: `false` re-subscribes; `true`, strings, numbers, arrays and objects
    /// unsubscribe; `null` is refused.
    pub fn from_json(value: &Value) -> Result<Unsubscribed, ValueError> {
        match value {
            Value::Bool(false) => Ok(Unsubscribed::No),
            Value::Bool(true) => Ok(Unsubscribed::Yes { at: None }),
            Value::Null => Err(ValueError::Null),
            Value::String(s) => Unsubscribed::from_text(s),
            Value::Number(n) => Ok(Unsubscribed::Yes {
                at: n.as_f64().and_then(unix_seconds),
            }),
            Value::Array(_) | Value::Object(_) => Ok(Unsubscribed::Yes { at: None }),
        }
    }
}

/// Unix seconds for a number in the accepted range (fractions, as Python's `time.time()` sends,
/// are dropped).
fn unix_seconds(n: f64) -> Option<i64> {
    if !n.is_finite() {
        return None;
    }
    let secs = n.floor();
    (secs >= UNIX_MIN as f64 && secs <= UNIX_MAX as f64).then_some(secs as i64)
}

/// The Unix seconds of a date value, or `None` when `s` is not a date.
pub(super) fn parse_date(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<f64>().ok().and_then(unix_seconds);
    }
    crate::time::parse_date(s)
}

use crate::time::looks_like_date;

/// Echoes at most 64 characters of a bad value back in an error.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAY_1: i64 = 1_714_521_600; // 2024-05-01T00:00:00Z

    #[test]
    fn text_values() {
        let yes = Unsubscribed::Yes { at: None };
        for (text, want) in [
            ("true", yes),
            ("TRUE", yes),
            (" yes ", yes),
            ("1", yes),
            ("0", yes), // anything but false
            ("false", Unsubscribed::No),
            (" FaLsE ", Unsubscribed::No),
            ("2024-05-01", Unsubscribed::Yes { at: Some(MAY_1) }),
            (
                "2024-05-01T10:00:00Z",
                Unsubscribed::Yes {
                    at: Some(MAY_1 + 36_000),
                },
            ),
            (
                "2024-05-01T12:00:00+02:00",
                Unsubscribed::Yes {
                    at: Some(MAY_1 + 36_000),
                },
            ),
            (
                "2024-05-01T10:00:00",
                Unsubscribed::Yes {
                    at: Some(MAY_1 + 36_000),
                },
            ),
            (
                "2024-05-01 10:00:00.250",
                Unsubscribed::Yes {
                    at: Some(MAY_1 + 36_000),
                },
            ),
            ("1714521600", Unsubscribed::Yes { at: Some(MAY_1) }),
        ] {
            assert_eq!(Unsubscribed::from_text(text), Ok(want), "{text:?}");
        }
        assert_eq!(Unsubscribed::from_text("  "), Err(ValueError::Empty));
        assert!(matches!(
            Unsubscribed::from_text("2024-13-45"),
            Err(ValueError::BadDate(_))
        ));
    }

    #[test]
    fn json_values() {
        let yes = Ok(Unsubscribed::Yes { at: None });
        assert_eq!(Unsubscribed::from_json(&json!(true)), yes);
        assert_eq!(Unsubscribed::from_json(&json!(false)), Ok(Unsubscribed::No));
        assert_eq!(
            Unsubscribed::from_json(&json!("False")),
            Ok(Unsubscribed::No)
        );
        assert_eq!(Unsubscribed::from_json(&json!(1)), yes);
        assert_eq!(Unsubscribed::from_json(&json!(0)), yes);
        assert_eq!(Unsubscribed::from_json(&json!({"a": 1})), yes);
        assert_eq!(
            Unsubscribed::from_json(&json!(1_714_521_600.75)),
            Ok(Unsubscribed::Yes { at: Some(MAY_1) })
        );
        assert_eq!(
            Unsubscribed::from_json(&json!(1e300)),
            yes,
            "out of range: a flag"
        );
        assert_eq!(Unsubscribed::from_json(&Value::Null), Err(ValueError::Null));
    }

    #[test]
    fn dates_and_non_dates() {
        assert_eq!(parse_date("999999999"), None, "before 2001: a flag");
        assert_eq!(parse_date("99999999999"), None);
        assert_eq!(parse_date("2024-05-01T10:00"), Some(MAY_1 + 36_000));
        assert_eq!(parse_date("yes"), None);
        assert!(!looks_like_date("2024"));
        assert!(looks_like_date("2024-02-30"));
        assert_eq!(parse_date("2024-02-30"), None);
    }
}
