//! The allowlist (Mandrill's): an allowlisted address is never suppressed.

use serde::{Deserialize, Serialize};

use super::{decode, encode, Store, StoreError};

/// Why and since when an address is allowlisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowEntry {
    #[serde(default)]
    pub detail: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Store {
    /// Whether `address` (normalised) is allowlisted.
    pub fn is_allowlisted(&self, address: &str) -> Result<bool, StoreError> {
        Ok(self.read().allowlist.contains_key(address)?)
    }

    pub fn allowlist_get(&self, address: &str) -> Result<Option<AllowEntry>, StoreError> {
        self.read()
            .allowlist
            .get(address)?
            .map(|v| decode("allowlist", &v))
            .transpose()
    }

    pub fn allowlist_put(&self, address: &str, entry: &AllowEntry) -> Result<(), StoreError> {
        self.write().allowlist.insert(address, encode(entry))?;
        Ok(())
    }

    /// Removes `address`; whether it was there.
    pub fn allowlist_remove(&self, address: &str) -> Result<bool, StoreError> {
        Ok(self.write().allowlist.remove(address)?.is_some())
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
