//! GDPR/CCPA deletion tasks (SPEC §6.5), kept in the `deletions` tree so they survive a
//! restart. A task holds the distinct ids to erase only until the erasure is written; from
//! then on it is counts and dates.

use serde::{Deserialize, Serialize};

use super::{decode, encode, Erased, Store, StoreError};

/// The law a request is made under (recorded; both erase the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compliance {
    #[serde(rename = "GDPR")]
    Gdpr,
    #[serde(rename = "CCPA")]
    Ccpa,
}

/// Mixpanel's task states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    /// Accepted, not started.
    Pending,
    /// Being erased (or erased and waiting for the store vacuum).
    Started,
    /// Erased, and the store's files rewritten without the data.
    Success,
    /// Not (completely) erased; `error` says why. Submit it again.
    Failure,
}

impl TaskStatus {
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failure)
    }
}

/// One deletion task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionTask {
    pub id: String,
    pub compliance_type: Compliance,
    pub status: TaskStatus,
    /// The ids still to erase; emptied once the erasure is written.
    pub distinct_ids: Vec<String>,
    /// How many ids the request named.
    pub requested: usize,
    /// What was erased, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<Erased>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Store {
    /// Writes (creates or replaces) a task.
    pub fn deletion_put(&self, task: &DeletionTask) -> Result<(), StoreError> {
        self.write()
            .deletions
            .insert(task.id.as_bytes(), encode(task))?;
        let changes = &self.shared.deletion_changes;
        if changes.receiver_count() > 0 {
            let _ = changes.send(task.clone());
        }
        Ok(())
    }

    /// Every deletion task written from now on (accepted, started, finished): the seam where
    /// other nodes and observers hear of erasures.
    pub fn deletion_changes(&self) -> tokio::sync::broadcast::Receiver<DeletionTask> {
        self.shared.deletion_changes.subscribe()
    }

    pub fn deletion_get(&self, id: &str) -> Result<Option<DeletionTask>, StoreError> {
        self.read()
            .deletions
            .get(id)?
            .map(|v| decode("deletions", &v))
            .transpose()
    }

    /// Every task not yet finished, oldest first (ids start with the creation time).
    pub fn deletions_unfinished(&self) -> Result<Vec<DeletionTask>, StoreError> {
        let mut out = Vec::new();
        for item in self.read().deletions.iter() {
            let task: DeletionTask = decode("deletions", &item?.1)?;
            if !task.status.is_final() {
                out.push(task);
            }
        }
        Ok(out)
    }
}
