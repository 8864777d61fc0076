//! The formats `quell suppress import` reads, told by the file's first row, and how each data
//! row becomes an operation on the running quell:
//!
//! | first row | format | entries |
//! |---|---|---|
//! | `address,tags,created_at` (any subset with `address` and `tags`) | Mailgun unsubscribes | `unsub`, tags split on `,` |
//! | `address,code,error,created_at` (with `code` or `error`) | Mailgun bounces | `hard-bounce`, `error` → detail |
//! | `address,created_at` | Mailgun complaints | `spam` |
//! | `address` | a plain list | `unsub` |
//! | `scope,address,list,reason,tags,created_at,expires_at,detail` | `quell suppress export` | as written (tags split on `;`) |
//! | an address, a value (no header) | Mixpanel's `distinct_id,unsubscribed` | any value but `false` suppresses (`unsub`; a date value becomes `created_at`); `false` removes the `unsub` entry |
//!
//! Rows are checked here (addresses, dates, codes) so that most bad rows are reported without a
//! round trip; the server checks every item again.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::cli::{parse_scope, ReasonArg};
use crate::time::{looks_like_date, rfc3339, UNIX_MAX, UNIX_MIN};

/// Go's zero time, which Mailgun's Go tooling writes for "no date".
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Columns of `quell suppress export`.
const EXPORT_COLUMNS: [&str; 8] = [
    "scope",
    "address",
    "list",
    "reason",
    "tags",
    "created_at",
    "expires_at",
    "detail",
];
/// Every column of Mailgun's three CSV formats.
const MAILGUN_COLUMNS: [&str; 5] = ["address", "tags", "code", "error", "created_at"];

/// Which of Mailgun's lists a header row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MailgunKind {
    Unsubscribes,
    Bounces,
    Complaints,
    /// Only an `address` column.
    Plain,
}

/// The format of the file, from its first row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Format {
    Mailgun {
        kind: MailgunKind,
        columns: HashMap<String, usize>,
    },
    Export {
        columns: HashMap<String, usize>,
    },
    Headerless,
}

impl Format {
    /// What the report calls it.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Format::Mailgun { kind, .. } => match kind {
                MailgunKind::Unsubscribes => "Mailgun unsubscribes CSV",
                MailgunKind::Bounces => "Mailgun bounces CSV",
                MailgunKind::Complaints => "Mailgun complaints CSV",
                MailgunKind::Plain => "a CSV of addresses",
            },
            Format::Export { .. } => "quell export CSV",
            Format::Headerless => "headerless distinct_id,unsubscribed CSV",
        }
    }

    /// The reason entries get unless `--reason` says otherwise.
    fn reason(&self) -> &'static str {
        match self {
            Format::Mailgun {
                kind: MailgunKind::Bounces,
                ..
            } => "hard-bounce",
            Format::Mailgun {
                kind: MailgunKind::Complaints,
                ..
            } => "spam",
            _ => "unsub",
        }
    }
}

/// Tells the format from the first row, or says why the file is none quell knows.
pub(super) fn detect(first: &csv::StringRecord) -> Result<Format, String> {
    let cells: Vec<String> = first
        .iter()
        .map(|c| c.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let header_of = |known: &[&str]| -> Option<HashMap<String, usize>> {
        let mut columns = HashMap::new();
        for (i, c) in cells.iter().enumerate() {
            if !known.contains(&c.as_str()) || columns.insert(c.clone(), i).is_some() {
                return None;
            }
        }
        columns.contains_key("address").then_some(columns)
    };
    if cells.iter().any(|c| c == "scope") {
        if let Some(columns) = header_of(&EXPORT_COLUMNS) {
            return Ok(Format::Export { columns });
        }
    }
    if let Some(columns) = header_of(&MAILGUN_COLUMNS) {
        let has = |c: &str| columns.contains_key(c);
        let kind = if has("code") || has("error") {
            MailgunKind::Bounces
        } else if has("tags") {
            MailgunKind::Unsubscribes
        } else if has("created_at") {
            MailgunKind::Complaints
        } else {
            MailgunKind::Plain
        };
        return Ok(Format::Mailgun { kind, columns });
    }
    if cells.first().is_some_and(|c| c.contains('@')) {
        return Ok(Format::Headerless);
    }
    Err(format!(
        "row 1 is neither a header quell knows (address,tags,created_at | \
         address,code,error,created_at | address,created_at | {}) nor an address,value row",
        EXPORT_COLUMNS.join(",")
    ))
}

/// What one row asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    /// Add this `POST /api/suppressions` item.
    Add(Value),
    /// Remove the address's `unsub` entry in the scope (a Mixpanel re-subscribe).
    Resubscribe(Value),
}

impl Op {
    /// `scope\0address`: two operations on the same key must reach the server in file order.
    pub(super) fn key(&self) -> String {
        let item = match self {
            Op::Add(v) | Op::Resubscribe(v) => v,
        };
        format!(
            "{}\0{}",
            item["scope"].as_str().unwrap_or(""),
            item["address"].as_str().unwrap_or("")
        )
    }
}

/// How rows become entries: the format, and the scope and reason the command line imposes.
pub(super) struct Rules {
    pub(super) format: Format,
    /// `--scope`, which replaces an export file's own.
    pub(super) scope: Option<String>,
    /// `--reason`.
    pub(super) reason: Option<ReasonArg>,
}

impl Rules {
    fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or("global")
    }

    fn reason(&self) -> &str {
        self.reason
            .map(ReasonArg::as_str)
            .unwrap_or(self.format.reason())
    }

    /// The operation a data row asks for; `None` for a blank row.
    pub(super) fn convert(&self, row: &csv::StringRecord) -> Result<Option<Op>, String> {
        if row.iter().all(|c| c.trim().is_empty()) {
            return Ok(None);
        }
        let op = match &self.format {
            Format::Headerless => self.headerless(row)?,
            Format::Mailgun { kind, columns } => self.mailgun(*kind, columns, row)?,
            Format::Export { columns } => self.export(columns, row)?,
        };
        Ok(Some(op))
    }

    fn headerless(&self, row: &csv::StringRecord) -> Result<Op, String> {
        if row.len() != 2 {
            return Err(format!(
                "expected 2 columns (distinct_id,unsubscribed), found {}",
                row.len()
            ));
        }
        let address = address(&row[0])
            .map_err(|e| format!("{e} (the CLI has no profiles to map other distinct ids)"))?;
        let value = row[1].trim();
        let mut item = json!({"scope": self.scope(), "address": address});
        if value.is_empty() {
            return Err("the unsubscribed value is empty: use true, a date, or false".into());
        }
        if value.eq_ignore_ascii_case("false") {
            item["reason"] = json!("unsub");
            return Ok(Op::Resubscribe(item));
        }
        item["reason"] = json!(self.reason());
        if !value.eq_ignore_ascii_case("true") {
            match parse_when(value) {
                Some(at) => item["created_at"] = json!(rfc3339(at)),
                None if looks_like_date(value) => {
                    return Err(format!(
                        "{:?} looks like a date but is not one (use 2024-05-01, \
                         2024-05-01T10:00:00Z or Unix seconds)",
                        clip(value)
                    ))
                }
                None => {}
            }
        }
        Ok(Op::Add(item))
    }

    fn mailgun(
        &self,
        kind: MailgunKind,
        columns: &HashMap<String, usize>,
        row: &csv::StringRecord,
    ) -> Result<Op, String> {
        let cell = |name: &str| cell(columns, row, name);
        let address = address(cell("address").unwrap_or(""))?;
        let mut item = json!({"scope": self.scope(), "address": address, "reason": self.reason()});
        if let Some(tags) = cell("tags") {
            let tags: Vec<&str> = tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect();
            if !tags.is_empty() {
                item["tags"] = json!(tags);
            }
        }
        if kind == MailgunKind::Bounces {
            if let Some(code) = cell("code") {
                let n = code
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (200..=599).contains(n))
                    .ok_or_else(|| format!("code {:?} is not an SMTP reply code", clip(code)))?;
                item["code"] = json!(n);
            }
            if let Some(error) = cell("error") {
                item["detail"] = json!(error);
            }
        }
        if let Some(at) = date(&cell, "created_at")? {
            item["created_at"] = json!(at);
        }
        Ok(Op::Add(item))
    }

    fn export(
        &self,
        columns: &HashMap<String, usize>,
        row: &csv::StringRecord,
    ) -> Result<Op, String> {
        let cell = |name: &str| cell(columns, row, name);
        let scope = match (&self.scope, cell("scope")) {
            (Some(forced), _) => forced.clone(),
            (None, Some(s)) => parse_scope(s)?,
            (None, None) => return Err("scope is empty".into()),
        };
        let address = address(cell("address").unwrap_or(""))?;
        let mut item = json!({"scope": scope, "address": address});
        match self.reason {
            Some(r) => item["reason"] = json!(r.as_str()),
            None => {
                if let Some(r) = cell("reason") {
                    item["reason"] = json!(r);
                }
                // The list is checked against the reason by the server.
                if let Some(l) = cell("list") {
                    item["list"] = json!(l);
                }
            }
        }
        if let Some(tags) = cell("tags") {
            let tags: Vec<&str> = tags
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect();
            if !tags.is_empty() {
                item["tags"] = json!(tags);
            }
        }
        if let Some(at) = date(&cell, "created_at")? {
            item["created_at"] = json!(at);
        }
        if let Some(at) = date(&cell, "expires_at")? {
            item["expires_at"] = json!(at);
        }
        if let Some(d) = cell("detail") {
            item["detail"] = json!(d);
        }
        Ok(Op::Add(item))
    }
}

/// A column's trimmed cell; empty and missing are `None`.
fn cell<'a>(
    columns: &HashMap<String, usize>,
    row: &'a csv::StringRecord,
    name: &str,
) -> Option<&'a str> {
    columns
        .get(name)
        .and_then(|&i| row.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A date column as RFC 3339 for the API; `None` when empty (or Go's zero time).
fn date<'a>(cell: &impl Fn(&str) -> Option<&'a str>, name: &str) -> Result<Option<String>, String> {
    let Some(value) = cell(name) else {
        return Ok(None);
    };
    match parse_when(value) {
        Some(GO_ZERO_TIME) => Ok(None),
        Some(at) => Ok(Some(rfc3339(at))),
        None => Err(format!(
            "{name} {:?} is not a date (RFC 2822 as Mailgun writes it, or RFC 3339)",
            clip(value)
        )),
    }
}

/// A normalised address, or why not.
fn address(raw: &str) -> Result<String, String> {
    crate::address::normalize(raw).map_err(|e| format!("address {:?}: {e}", clip(raw)))
}

/// At most 64 characters of a bad value, for a message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The Unix seconds of a date written as RFC 3339, RFC 2822 (also with Mailgun's `UTC` zone),
/// ISO 8601 without an offset (UTC), a bare date (midnight UTC) or Unix seconds in
/// [`UNIX_MIN`]..=[`UNIX_MAX`]; `None` when `s` is none of these.
fn parse_when(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .filter(|n| (UNIX_MIN..=UNIX_MAX).contains(n));
    }
    crate::time::parse_date(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    fn rules(format: Format) -> Rules {
        Rules {
            format,
            scope: None,
            reason: None,
        }
    }

    #[test]
    fn formats_from_the_first_row() {
        let kind = |cells: &[&str]| match detect(&record(cells)) {
            Ok(Format::Mailgun { kind, .. }) => Some(kind),
            _ => None,
        };
        assert_eq!(
            kind(&["address", "tags", "created_at"]),
            Some(MailgunKind::Unsubscribes)
        );
        assert_eq!(
            kind(&["\u{feff}Address", " Tags "]),
            Some(MailgunKind::Unsubscribes)
        );
        assert_eq!(
            kind(&["address", "code", "error", "created_at"]),
            Some(MailgunKind::Bounces)
        );
        assert_eq!(
            kind(&["address", "created_at"]),
            Some(MailgunKind::Complaints)
        );
        assert_eq!(kind(&["address"]), Some(MailgunKind::Plain));
        assert!(matches!(
            detect(&record(&EXPORT_COLUMNS)),
            Ok(Format::Export { .. })
        ));
        assert_eq!(detect(&record(&["a@x.io", "true"])), Ok(Format::Headerless));
        assert!(detect(&record(&["email", "status"])).is_err());
        assert!(detect(&record(&["address", "address"])).is_err());
    }

    #[test]
    fn headerless_values() {
        let r = rules(Format::Headerless);
        let op = |cells: &[&str]| r.convert(&record(cells));
        assert_eq!(
            op(&["A@x.io", "true"]),
            Ok(Some(Op::Add(
                json!({"scope": "global", "address": "a@x.io", "reason": "unsub"})
            )))
        );
        assert_eq!(
            op(&["a@x.io", "2024-05-01"]),
            Ok(Some(Op::Add(
                json!({"scope": "global", "address": "a@x.io",
                "reason": "unsub", "created_at": "2024-05-01T00:00:00Z"})
            )))
        );
        assert_eq!(
            op(&["a@x.io", "FALSE"]),
            Ok(Some(Op::Resubscribe(
                json!({"scope": "global", "address": "a@x.io", "reason": "unsub"})
            )))
        );
        assert!(
            matches!(op(&["a@x.io", "1"]), Ok(Some(Op::Add(v))) if v.get("created_at").is_none())
        );
        assert_eq!(op(&["", " "]), Ok(None));
        for (bad, want) in [
            (&["user-42", "true"][..], "address \"user-42\""),
            (&["a@x.io", ""], "empty"),
            (&["a@x.io", "2024-02-30"], "looks like a date"),
            (&["a@x.io", "true", "x"], "expected 2 columns"),
        ] {
            let e = op(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn mailgun_rows() {
        let bounces = detect(&record(&["address", "code", "error", "created_at"])).unwrap();
        let r = Rules {
            format: bounces,
            scope: Some("domain:d.io".into()),
            reason: None,
        };
        assert_eq!(
            r.convert(&record(&[
                "a@x.io",
                "550",
                "gone",
                "Fri, 21 Oct 2011 11:02:55 UTC"
            ])),
            Ok(Some(Op::Add(
                json!({"scope": "domain:d.io", "address": "a@x.io",
                "reason": "hard-bounce", "code": 550, "detail": "gone",
                "created_at": "2011-10-21T11:02:55Z"})
            )))
        );
        assert!(r
            .convert(&record(&["a@x.io", "5xx", "", ""]))
            .unwrap_err()
            .contains("code \"5xx\""));
        let unsubs = rules(detect(&record(&["address", "tags", "created_at"])).unwrap());
        assert_eq!(
            unsubs.convert(&record(&["a@x.io", "news, promo", ""])),
            Ok(Some(Op::Add(
                json!({"scope": "global", "address": "a@x.io",
                "reason": "unsub", "tags": ["news", "promo"]})
            )))
        );
        assert!(unsubs
            .convert(&record(&["a@x.io", "", "yesterday"]))
            .unwrap_err()
            .contains("created_at \"yesterday\""));
        // Go's zero time means no date.
        assert_eq!(
            unsubs.convert(&record(&["a@x.io", "", "Mon, 01 Jan 0001 00:00:00 UTC"])),
            Ok(Some(Op::Add(
                json!({"scope": "global", "address": "a@x.io", "reason": "unsub"})
            )))
        );
    }

    #[test]
    fn export_rows_keep_their_scope_unless_told() {
        let format = detect(&record(&EXPORT_COLUMNS)).unwrap();
        let row = record(&[
            "sender:app@x.io",
            "a@x.io",
            "complaints",
            "spam",
            "a;b",
            "2011-10-21T11:02:55Z",
            "",
            "note",
        ]);
        let own = rules(format.clone()).convert(&row).unwrap().unwrap();
        assert_eq!(
            own,
            Op::Add(
                json!({"scope": "sender:app@x.io", "address": "a@x.io", "reason": "spam",
                "list": "complaints", "tags": ["a", "b"], "created_at": "2011-10-21T11:02:55Z",
                "detail": "note"})
            )
        );
        let forced = Rules {
            format,
            scope: Some("global".into()),
            reason: Some(ReasonArg::Custom),
        };
        let Some(Op::Add(item)) = forced.convert(&row).unwrap() else {
            panic!("not an add");
        };
        assert_eq!(
            (item["scope"].as_str(), item["reason"].as_str()),
            (Some("global"), Some("custom"))
        );
        assert!(item.get("list").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_when("1319194975"), Some(1_319_194_975));
        assert_eq!(parse_when("999"), None, "a flag, not 1970");
        assert_eq!(parse_when("2011-10-21T13:02:55+02:00"), Some(1_319_194_975));
        assert_eq!(
            parse_when("Fri, 21 Oct 2011 11:02:55 UTC"),
            Some(1_319_194_975)
        );
        assert_eq!(parse_when("2011-10-21 11:02:55"), Some(1_319_194_975));
        assert_eq!(parse_when("yes"), None);
    }
}
