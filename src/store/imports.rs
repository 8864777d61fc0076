//! CSV imports accepted and not yet applied (Mailgun's `/import` answers `202` before it
//! applies the rows): the upload is kept here, synced, before the `202`, and removed once its
//! rows are written and synced, so an import a client was told about survives a crash and is
//! applied again at the next start (applying rows twice is harmless: the merge rules make it
//! idempotent).
//!
//! Value: a 4-byte big-endian length, that many bytes of [`ImportJob`] JSON, then the CSV.

use serde::{Deserialize, Serialize};

use super::{decode, encode, Store, StoreError};

/// What an import is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJob {
    /// The API resource (`unsubscribes`, `bounces`, `complaints`).
    pub resource: String,
    /// The scope key ([`super::Scope::key`]).
    pub scope: String,
    /// Unix seconds of the upload: the `created_at` of rows without one.
    pub accepted_at: i64,
}

impl Store {
    /// Keeps an accepted import (durable after [`Store::flush`]).
    pub fn import_put(&self, id: &str, job: &ImportJob, csv: &[u8]) -> Result<(), StoreError> {
        let header = encode(job);
        let mut value = Vec::with_capacity(4 + header.len() + csv.len());
        value.extend_from_slice(&(header.len() as u32).to_be_bytes());
        value.extend_from_slice(&header);
        value.extend_from_slice(csv);
        self.write().imports.insert(id, value)?;
        Ok(())
    }

    /// Forgets an import whose rows are written.
    pub fn import_remove(&self, id: &str) -> Result<(), StoreError> {
        self.write().imports.remove(id)?;
        Ok(())
    }

    /// Every import not yet applied: (id, job, CSV).
    pub fn imports_pending(&self) -> Result<Vec<(String, ImportJob, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.read().imports.iter() {
            let (k, v) = item?;
            let len = v
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let Some(header) = v.get(4..4 + len) else {
                continue;
            };
            let job: ImportJob = decode("imports", header)?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                job,
                v[4 + len..].to_vec(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_round_trip_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let job = ImportJob {
            resource: "bounces".into(),
            scope: "domain:d.io".into(),
            accepted_at: 7,
        };
        s.import_put("i1", &job, b"address\na@x.io\n").unwrap();
        let pending = s.imports_pending().unwrap();
        assert_eq!(
            pending,
            [("i1".to_string(), job, b"address\na@x.io\n".to_vec())]
        );
        s.import_remove("i1").unwrap();
        assert!(s.imports_pending().unwrap().is_empty());
    }
}
