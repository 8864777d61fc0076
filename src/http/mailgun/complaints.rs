//! `/v3/{domain}/complaints` ↔ [`List::Complaints`]: entries have no fields of their own.

use serde_json::{Map, Value};

use super::record::{RawRecord, RecordError};
use super::Resource;
use crate::store::{List, Reason, Suppression};

/// Mailgun's spam complaint list.
pub(super) struct Complaints;

impl Resource for Complaints {
    const LIST: List = List::Complaints;
    const NAME: &'static str = "complaints";
    const REASON: Reason = Reason::Spam;
    const CSV_COLUMNS: &'static [&'static str] = &["address", "created_at"];
    const NOT_FOUND: &'static str = "No spam complaints found for this address";
    const ADDED_ONE: &'static str = "Address has been added to the complaints table";
    const ADDED_MANY: &'static str = "complaint addresses have been added to the complaints table";
    const REMOVED_ONE: &'static str = "Spam complaint has been removed";
    const REMOVED_ALL: &'static str = "Complaint addresses for this domain have been removed";

    fn fill(_: &RawRecord, _: &mut Suppression) -> Result<(), RecordError> {
        Ok(())
    }

    fn render_fields(_: &Suppression, _: &mut Map<String, Value>) {}
}
