//! Identifiers. A queue id names one accepted transaction (`250 2.0.0 Ok: queued as <id>`); each
//! recipient copy gets a message id (`md_id`) `<queue id>.<n>`, so the records of a transaction
//! sort together and are found by prefix.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new queue id: 12 hex digits of milliseconds since the epoch (time-ordered) and 8 random
/// hex digits, uppercase like Postfix's.
pub fn new_queue_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!(
        "{:012X}{:08X}",
        ms & 0xFFFF_FFFF_FFFF,
        rand::random::<u32>()
    )
}

/// The message id of recipient number `index` (from 1) of queue id `queue_id`.
pub fn md_id(queue_id: &str, index: usize) -> String {
    format!("{queue_id}.{index}")
}

/// The queue id part of a message id.
pub fn queue_id_of(md_id: &str) -> &str {
    md_id.split_once('.').map(|(q, _)| q).unwrap_or(md_id)
}

pub use crate::time::now_secs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sortable() {
        let a = new_queue_id();
        let b = new_queue_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let m = md_id(&a, 3);
        assert_eq!(queue_id_of(&m), a);
    }
}
