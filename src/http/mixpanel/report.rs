//! What an import did: the counts and first rejected rows that `POST /engage/import` answers
//! with, and why an import stopped early. Filled in by [`super::rows`], answered by
//! [`super::import`].

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::upload::BodyError;
use crate::store::StoreError;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct RowError {
    pub row: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Report {
    /// Data rows read (blank rows and a header row are not counted).
    pub rows: u64,
    /// Rows whose batch is written.
    pub applied: u64,
    pub rejected: u64,
    /// The first rejected rows, in row order.
    pub errors: Vec<RowError>,
    /// The line of the last row counted in `applied` or `rejected`: every row up to it is
    /// counted, none after it was applied.
    pub through_line: u64,
}

impl Report {
    /// The report's fields of the JSON answer.
    pub fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("applied".into(), json!(self.applied));
        m.insert("rejected".into(), json!(self.rejected));
        m.insert("errors".into(), json!(self.errors));
        m
    }
}

/// Why an import stopped before the end of its CSV; `report` says what was applied until then.
#[derive(Debug)]
pub(super) struct Stopped {
    pub cause: StopCause,
    pub report: Report,
}

/// What stopped an import: the upload (its status is [`BodyError::status`]) or the store (a 500).
#[derive(Debug, thiserror::Error)]
pub(super) enum StopCause {
    #[error("{0}")]
    Body(BodyError),
    #[error("store failure: {0}")]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_counts_and_the_listed_errors() {
        let report = Report {
            rows: 3,
            applied: 2,
            rejected: 1,
            errors: vec![RowError {
                row: 2,
                reason: "bad".into(),
            }],
            through_line: 4,
        };
        assert_eq!(
            Value::Object(report.fields()),
            json!({"applied": 2, "rejected": 1, "errors": [{"row": 2, "reason": "bad"}]})
        );
    }
}
