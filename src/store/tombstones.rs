//! Tombstones: what erasure leaves of a suppression entry. The entry keeps its scope, list and
//! value (reason, tags, dates; free text dropped), but its address becomes `#` and 32 hex
//! digits of HMAC-SHA256 under a key generated for this store and kept in `meta`. The person
//! stays suppressed — [`crate::policy::Policy::check`] hashes each recipient the same way — yet
//! the address cannot be read back, and without the key not even confirmed by guessing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::StoreError;

/// The `meta` entry holding the key.
const META_KEY: &str = "tombstone_key";
/// Hex digits of the hash kept (128 bits).
const HASH_HEX: usize = 32;

/// Whether a stored address is a tombstone's hash rather than an address.
pub fn is_tombstone(address: &str) -> bool {
    address.starts_with('#')
}

/// The store's tombstone key, with its HMAC state prepared.
pub(super) struct TombstoneKey {
    mac: Hmac<Sha256>,
}

impl TombstoneKey {
    /// The key in `meta`, generated on first use.
    pub fn load_or_create(meta: &sled::Tree) -> Result<TombstoneKey, StoreError> {
        let key = match meta.get(META_KEY)? {
            Some(k) => k.to_vec(),
            None => {
                let k: [u8; 32] = rand::random();
                // Another opener cannot race us: sled holds the directory's lock.
                meta.insert(META_KEY, &k)?;
                meta.flush()?;
                k.to_vec()
            }
        };
        let mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        Ok(TombstoneKey { mac })
    }

    /// The tombstone address of the normalised `address`.
    pub fn hash(&self, address: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(address.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(1 + HASH_HEX);
        out.push('#');
        for b in &digest[..HASH_HEX / 2] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_per_store_and_differs_between_stores() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let meta_a = sled::open(a.path()).unwrap().open_tree("meta").unwrap();
        let meta_b = sled::open(b.path()).unwrap().open_tree("meta").unwrap();
        let ka = TombstoneKey::load_or_create(&meta_a).unwrap();
        let h = ka.hash("p@x.io");
        assert!(is_tombstone(&h) && h.len() == 33 && !h.contains("p@x.io"));
        assert_eq!(
            TombstoneKey::load_or_create(&meta_a)
                .unwrap()
                .hash("p@x.io"),
            h
        );
        assert_ne!(ka.hash("q@x.io"), h);
        assert_ne!(
            TombstoneKey::load_or_create(&meta_b)
                .unwrap()
                .hash("p@x.io"),
            h
        );
    }
}
