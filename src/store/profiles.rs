//! Profiles (Mixpanel-style): a distinct id maps to an address, so later updates by id alone
//! reach the right person. The reverse index finds every id of an address (for erasure).

use super::{Store, StoreError};

pub(super) use super::keys::profile_by_address as reverse_key;

impl Store {
    /// Maps `distinct_id` to the normalised `address`, replacing an earlier mapping.
    pub fn profile_put(&self, distinct_id: &str, address: &str) -> Result<(), StoreError> {
        let t = self.write();
        if let Some(old) = t.profiles.insert(distinct_id, address.as_bytes())? {
            if old != address.as_bytes() {
                let old = String::from_utf8_lossy(&old).into_owned();
                t.profiles_by_address
                    .remove(reverse_key(&old, distinct_id))?;
            }
        }
        t.profiles_by_address
            .insert(reverse_key(address, distinct_id), &[])?;
        Ok(())
    }

    /// The address of `distinct_id`, if known.
    pub fn profile_get(&self, distinct_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .read()
            .profiles
            .get(distinct_id)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every distinct id mapped to `address`.
    pub fn profiles_of_address(&self, address: &str) -> Result<Vec<String>, StoreError> {
        let mut prefix = address.as_bytes().to_vec();
        prefix.push(0);
        self.read()
            .profiles_by_address
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, _) = item?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// Forgets `distinct_id`; whether it was known.
    pub fn profile_remove(&self, distinct_id: &str) -> Result<bool, StoreError> {
        let t = self.write();
        match t.profiles.remove(distinct_id)? {
            Some(address) => {
                let address = String::from_utf8_lossy(&address).into_owned();
                t.profiles_by_address
                    .remove(reverse_key(&address, distinct_id))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_and_reverse_index_stay_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.profile_put("u1", "a@x.io").unwrap();
        s.profile_put("u2", "a@x.io").unwrap();
        assert_eq!(s.profile_get("u1").unwrap().as_deref(), Some("a@x.io"));
        assert_eq!(s.profiles_of_address("a@x.io").unwrap(), ["u1", "u2"]);
        s.profile_put("u1", "b@x.io").unwrap();
        assert_eq!(s.profiles_of_address("a@x.io").unwrap(), ["u2"]);
        assert_eq!(s.profiles_of_address("b@x.io").unwrap(), ["u1"]);
        assert!(s.profile_remove("u2").unwrap());
        assert!(s.profiles_of_address("a@x.io").unwrap().is_empty());
        assert!(!s.profile_remove("u2").unwrap());
    }
}
