//! Batches of `quell suppress import` sent to the running quell: additions through
//! `POST /api/suppressions`, re-subscribes through `DELETE /api/suppressions`. A row the server
//! refuses (`item N: …`) is reported and the rest of its batch sent again, so one bad row never
//! costs the others.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::Report;
use crate::cli::client::{Client, ClientError};

/// Rows waiting to be sent as one request.
#[derive(Default)]
pub(super) struct Pending {
    rows: Vec<u64>,
    items: Vec<Value>,
    /// `scope\0address` of every item, so a later row on the same key can wait for this batch.
    pub(super) keys: HashSet<String>,
}

impl Pending {
    pub(super) fn push(&mut self, row: u64, key: String, item: Value) {
        self.rows.push(row);
        self.items.push(item);
        self.keys.insert(key);
    }

    /// Whether the batch is full.
    pub(super) fn is_full(&self) -> bool {
        self.items.len() >= crate::cli::BATCH
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.items.clear();
        self.keys.clear();
    }
}

/// Which request a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `POST /api/suppressions`.
    Add,
    /// `DELETE /api/suppressions` of `unsub` entries.
    Resubscribe,
}

/// The counts the server answers with.
#[derive(Deserialize)]
struct Counts {
    #[serde(default)]
    added: usize,
    #[serde(default)]
    removed: usize,
}

/// `item 12: reason` from the server: which item of a batch it refused.
fn refused_item(message: &str) -> Option<(usize, String)> {
    let rest = message.strip_prefix("item ")?;
    let (index, why) = rest.split_once(": ")?;
    Some((index.parse().ok()?, why.to_string()))
}

/// Sends `pending` as one request (again without each refused row, until the server takes it)
/// and empties it. Errors other than a refused row (unreachable, key refused) end the import.
pub(super) async fn send(
    client: &Client,
    kind: Kind,
    pending: &mut Pending,
    report: &mut Report,
) -> Result<(), ClientError> {
    let method = match kind {
        Kind::Add => Method::POST,
        Kind::Resubscribe => Method::DELETE,
    };
    while !pending.items.is_empty() {
        let request = client
            .request(method.clone(), "/api/suppressions")
            .json(&pending.items);
        match client.json::<Counts>(request).await {
            Ok(counts) => {
                match kind {
                    Kind::Add => report.added += counts.added,
                    Kind::Resubscribe => {
                        report.resubscribed += pending.items.len();
                        report.removed += counts.removed;
                    }
                }
                break;
            }
            Err(ClientError::Rejected(message)) => match refused_item(&message) {
                Some((i, why)) if i < pending.items.len() => {
                    report.reject(pending.rows.remove(i), why);
                    pending.items.remove(i);
                }
                _ => {
                    for &row in &pending.rows {
                        report.reject(row, message.clone());
                    }
                    break;
                }
            },
            Err(e) => return Err(e),
        }
    }
    pending.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_items_are_found_in_the_message() {
        assert_eq!(
            refused_item("item 12: address \"x\": bad"),
            Some((12, "address \"x\": bad".to_string()))
        );
        assert_eq!(refused_item("request body is not valid JSON"), None);
    }
}
