//! `/v3/{domain}/bounces` ↔ [`List::Bounces`]: entries carry the SMTP reply `code` (stored in
//! [`Suppression::code`], default 550) and `error` text (stored in [`Suppression::detail`]).

use serde_json::{Map, Value};

use super::record::{RawRecord, RecordError};
use super::Resource;
use crate::store::{List, Reason, Suppression};

/// Mailgun's default bounce code.
const DEFAULT_CODE: u16 = 550;
/// Longest `error` text kept: a multi-line SMTP reply fits, a document does not.
const MAX_ERROR_LEN: usize = 4096;

/// Mailgun's bounce list.
pub(super) struct Bounces;

impl Resource for Bounces {
    const LIST: List = List::Bounces;
    const NAME: &'static str = "bounces";
    const REASON: Reason = Reason::HardBounce;
    const CSV_COLUMNS: &'static [&'static str] = &["address", "code", "error", "created_at"];
    const NOT_FOUND: &'static str = "Address not found in bounces table";
    const ADDED_ONE: &'static str = "Address has been added to the bounces table";
    const ADDED_MANY: &'static str = "addresses have been added to the bounces table";
    const REMOVED_ONE: &'static str = "Bounced address has been removed";
    const REMOVED_ALL: &'static str = "Bounced addresses for this domain have been removed";

    /// `code`: a three-digit SMTP reply code (RFC 5321 §4.2), default 550; `error`: free text.
    fn fill(raw: &RawRecord, entry: &mut Suppression) -> Result<(), RecordError> {
        let code = match raw.code.as_deref() {
            None => DEFAULT_CODE,
            Some(s) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(|| RecordError::Code(s.to_string()))?,
        };
        let error = raw.error.clone().unwrap_or_default();
        if error.chars().count() > MAX_ERROR_LEN {
            return Err(RecordError::TooLong {
                field: "error",
                max: MAX_ERROR_LEN,
            });
        }
        entry.code = Some(code);
        entry.detail = error;
        Ok(())
    }

    /// Mailgun renders `code` as a string (`"550"`), which its clients expect.
    fn render_fields(entry: &Suppression, item: &mut Map<String, Value>) {
        let code = entry.code.unwrap_or(DEFAULT_CODE);
        item.insert("code".into(), code.to_string().into());
        item.insert("error".into(), entry.detail.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(code: Option<&str>, error: Option<&str>) -> RawRecord {
        RawRecord {
            address: Some("a@b.io".into()),
            code: code.map(str::to_string),
            error: error.map(str::to_string),
            ..RawRecord::default()
        }
    }

    #[test]
    fn code_and_error() {
        let (_, e) = raw(Some(" 554 "), Some("5.1.1 unknown"))
            .validate::<Bounces>(0)
            .unwrap();
        assert_eq!((e.code, e.detail.as_str()), (Some(554), "5.1.1 unknown"));
        let (_, e) = raw(None, None).validate::<Bounces>(0).unwrap();
        assert_eq!(e.code, Some(550));
        for bad in ["abc", "99", "1000", "-550", "5.1.1"] {
            assert_eq!(
                raw(Some(bad), None).validate::<Bounces>(0),
                Err(RecordError::Code(bad.to_string())),
                "{bad}"
            );
        }
        let long = "e".repeat(MAX_ERROR_LEN + 1);
        assert!(raw(None, Some(&long)).validate::<Bounces>(0).is_err());
    }
}
