//! Dates on the wire, in one place: every API and the CLI read and write them through these
//! functions. Stored times are Unix seconds.
//!
//! | form | where |
//! |---|---|
//! | RFC 2822 with Mailgun's `UTC` zone, `Fri, 21 Oct 2011 11:02:55 UTC` | Mailgun's `created_at`, the admin API |
//! | RFC 3339, `2011-10-21T11:02:55Z` | the admin API, Mixpanel, CLI files |
//! | ISO 8601 without an offset (UTC) or a bare date (midnight UTC) | Mixpanel, CLI files |
//! | `YYYY-MM-DD HH:MM:SS` (UTC) | Mandrill's answers |
//! | Unix seconds in [`UNIX_MIN`]..=[`UNIX_MAX`] | Mixpanel, CLI files |

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat};

/// The smallest number read as Unix seconds (2001-09-09): smaller numbers are not dates.
pub const UNIX_MIN: i64 = 1_000_000_000;
/// The largest number read as Unix seconds (2286-11-20).
pub const UNIX_MAX: i64 = 9_999_999_999;

/// Seconds since the Unix epoch: the timestamp of every stored record.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An RFC 2822 date (RFC 2822 §3.3) — besides the numeric and `GMT`/`UT` zones of the RFC, the
/// `UTC` that Mailgun renders — as Unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc2822(&utc_as_gmt(s.trim()))
        .ok()
        .map(|d| d.timestamp())
}

/// An RFC 3339 date as Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.timestamp())
}

/// RFC 3339, RFC 2822 (with Mailgun's `UTC`), ISO 8601 without an offset (taken as UTC), or a
/// bare date (midnight UTC), as Unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = parse_rfc3339(s).or_else(|| parse_rfc2822(s)) {
        return Some(t);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

/// `YYYY-…`: meant as a date, so a mistyped one must be refused rather than mean "now".
pub fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A trailing `UTC` zone, which chrono (strictly RFC 2822) does not know, as `GMT`.
fn utc_as_gmt(s: &str) -> Cow<'_, str> {
    let n = s.len();
    match s.get(n.saturating_sub(4)..) {
        Some(zone) if zone.eq_ignore_ascii_case(" utc") => {
            Cow::Owned(format!("{} GMT", &s[..n - 4]))
        }
        _ => Cow::Borrowed(s),
    }
}

fn utc(secs: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Unix seconds as Mailgun renders them: `Fri, 21 Oct 2011 11:02:55 UTC`.
pub fn rfc2822(secs: i64) -> String {
    utc(secs).format("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// Unix seconds as RFC 3339 in UTC: `2011-10-21T11:02:55Z`.
pub fn rfc3339(secs: i64) -> String {
    utc(secs).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Unix seconds as Mandrill renders them: `2011-10-21 11:02:55` (UTC).
pub fn mandrill(secs: i64) -> String {
    utc(secs).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_or_parses() {
        let t = 1_319_194_975;
        assert_eq!(rfc2822(t), "Fri, 21 Oct 2011 11:02:55 UTC");
        assert_eq!(parse_rfc2822(&rfc2822(t)), Some(t));
        assert_eq!(parse_rfc2822("Fri, 21 Oct 2011 13:02:55 +0200"), Some(t));
        assert_eq!(rfc3339(t), "2011-10-21T11:02:55Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(mandrill(t), "2011-10-21 11:02:55");
        for s in [
            "2011-10-21T11:02:55Z",
            "Fri, 21 Oct 2011 11:02:55 UTC",
            "2011-10-21T11:02:55",
            "2011-10-21 11:02:55",
        ] {
            assert_eq!(parse_date(s), Some(t), "{s}");
        }
        assert_eq!(parse_date("2011-10-21"), Some(t - 11 * 3600 - 2 * 60 - 55));
        assert_eq!(parse_date("yesterday"), None);
        assert!(looks_like_date("2011-13-45") && !looks_like_date("1319194975"));
    }
}
