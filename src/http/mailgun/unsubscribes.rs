//! `/v3/{domain}/unsubscribes` ↔ [`List::Unsubscribes`]: entries carry the tags the recipient
//! unsubscribed from (`*`: all of the domain's mail).

use serde_json::{Map, Value};

use super::record::{RawRecord, RecordError};
use super::Resource;
use crate::store::{List, Reason, Suppression};
use crate::suppression::Rule;

/// Longest tag accepted; tags are message labels, not documents.
const MAX_TAG_LEN: usize = 256;
/// Most tags one entry may carry; bounds what one request can make us store.
const MAX_TAGS: usize = 100;

/// Mailgun's unsubscribe list.
pub(super) struct Unsubscribes;

impl Resource for Unsubscribes {
    const LIST: List = List::Unsubscribes;
    const NAME: &'static str = "unsubscribes";
    const REASON: Reason = Reason::Unsub;
    const CSV_COLUMNS: &'static [&'static str] = &["address", "tags", "created_at"];
    const NOT_FOUND: &'static str = "Address not found in unsubscribers table";
    const ADDED_ONE: &'static str = "Address has been added to the unsubscribes table";
    const ADDED_MANY: &'static str = "addresses have been added to the unsubscribes table";
    const REMOVED_ONE: &'static str = "Unsubscribe event has been removed";
    const REMOVED_ALL: &'static str = "Unsubscribe addresses for this domain have been removed";
    const TAGGED: bool = true;

    /// `tags`/`tag`, trimmed, empty ones dropped, duplicates removed; none means `*`.
    fn fill(raw: &RawRecord, entry: &mut Suppression) -> Result<(), RecordError> {
        let mut tags: Vec<String> = Vec::new();
        for tag in raw.tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if tag.chars().count() > MAX_TAG_LEN {
                return Err(RecordError::TooLong {
                    field: "tag",
                    max: MAX_TAG_LEN,
                });
            }
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(RecordError::TooManyTags(MAX_TAGS));
        }
        if !tags.is_empty() {
            entry.tags = tags;
        }
        Ok(())
    }

    fn render_fields(entry: &Suppression, item: &mut Map<String, Value>) {
        let tags = if entry.tags.is_empty() {
            vec!["*".to_string()]
        } else {
            entry.tags.clone()
        };
        item.insert("tags".into(), tags.into());
    }

    /// An address unsubscribed from tag A and then from tag B is unsubscribed from both: one
    /// record whose `tags` accumulate, which `DELETE …?tag=` takes apart again.
    const RULE: Rule = Rule::AddTags;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tags(tags: &[&str]) -> RawRecord {
        RawRecord {
            address: Some("a@b.io".into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..RawRecord::default()
        }
    }

    #[test]
    fn tags_are_cleaned_and_default_to_all() {
        let (_, e) = raw_tags(&[" news ", "", "news", "promo"])
            .validate::<Unsubscribes>(0)
            .unwrap();
        assert_eq!(e.tags, ["news", "promo"]);
        let (_, e) = raw_tags(&["", " "]).validate::<Unsubscribes>(0).unwrap();
        assert_eq!(e.tags, ["*"]);
    }

    #[test]
    fn tag_bounds() {
        let long = "t".repeat(MAX_TAG_LEN + 1);
        assert!(matches!(
            raw_tags(&[&long]).validate::<Unsubscribes>(0),
            Err(RecordError::TooLong { field: "tag", .. })
        ));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            raw_tags(&many).validate::<Unsubscribes>(0),
            Err(RecordError::TooManyTags(MAX_TAGS))
        );
    }
}
