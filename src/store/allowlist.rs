//! The allowlist (Mandrill's): an allowlisted address is never suppressed.

use serde::{Deserialize, Serialize};

use sled::transaction::TransactionError;
use sled::Transactional;

use super::{decode, encode, Store, StoreError, SuppressionKey};

/// Why and since when an address is allowlisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowEntry {
    #[serde(default)]
    pub detail: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Store {
    /// Whether `address` (normalised) is allowlisted: from memory (see [`super::index`]).
    pub fn is_allowlisted(&self, address: &str) -> Result<bool, StoreError> {
        Ok(self.index().is_allowlisted(address))
    }

    pub fn allowlist_get(&self, address: &str) -> Result<Option<AllowEntry>, StoreError> {
        self.read()
            .allowlist
            .get(address)?
            .map(|v| decode("allowlist", &v))
            .transpose()
    }

    pub fn allowlist_put(&self, address: &str, entry: &AllowEntry) -> Result<(), StoreError> {
        self.allow(address, |_| entry.clone(), &[])?;
        Ok(())
    }

    /// Allowlists `address` with the entry `entry(existing)` and removes the suppression
    /// entries `remove` (Mandrill removes an allowlisted address from the denylist), in one
    /// transaction under the writer lock, so no suppression write can come between; how many
    /// entries were removed.
    pub fn allow(
        &self,
        address: &str,
        entry: impl FnOnce(Option<AllowEntry>) -> AllowEntry,
        remove: &[SuppressionKey],
    ) -> Result<usize, StoreError> {
        let t = self.write();
        let mut index = self.index().writer();
        let entry = encode(&entry(self.allowlist_get(address)?));
        let removed = (&t.allowlist, &t.suppressions)
            .transaction(|(allowlist, suppressions)| {
                allowlist.insert(address.as_bytes(), entry.as_slice())?;
                let mut removed = Vec::new();
                for key in remove {
                    if suppressions.remove(key.bytes())?.is_some() {
                        removed.push(key);
                    }
                }
                Ok(removed)
            })
            .map_err(|e: TransactionError<StoreError>| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        index.allow(address);
        for key in &removed {
            index.remove(key);
        }
        Ok(removed.len())
    }

    /// Removes `address`; whether it was there.
    pub fn allowlist_remove(&self, address: &str) -> Result<bool, StoreError> {
        let t = self.write();
        let mut index = self.index().writer();
        let removed = t.allowlist.remove(address)?.is_some();
        index.disallow(address);
        Ok(removed)
    }

    /// Up to `limit` allowlisted addresses starting with `prefix`, in order: one range scan.
    pub fn allowlist_page(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, AllowEntry)>, StoreError> {
        self.read()
            .allowlist
            .scan_prefix(prefix.as_bytes())
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode("allowlist", &v)?,
                ))
            })
            .collect()
    }
}
