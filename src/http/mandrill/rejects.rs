//! The global denylist: `rejects/add`, `rejects/list`, `rejects/delete`.
//!
//! Manual entries are `custom` entries for all mail (`*`) that never expire, as Mandrill's
//! ("addresses that you add manually will never expire"). The list shows every `global` entry
//! whatever made it — bounces, complaints, unsubscribes, manual — except those of allowlisted
//! addresses, which no mail is refused for (SPEC §3) and which Mandrill never shows.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{address, mandrill_time, MandrillError, Params};
use crate::id::now_secs;
use crate::state::AppState;
use crate::store::{List, Reason, Scope, Store, StoreError, Suppression, SuppressionKey};
use crate::suppression::{Op, Outcome, Rule, When};

/// Mandrill's cap on `rejects/list`.
const MAX_LIST: usize = 1000;

/// Entries read from the store at a time while listing.
const SCAN_BATCH: usize = 256;

/// Every list an address can be on in a scope.
const LISTS: [List; 3] = [List::Unsubscribes, List::Bounces, List::Complaints];

/// `rejects/add`: `{"email", "comment"?, "subaccount"?}` → `{"email", "added"}`. Adding an
/// allowlisted address has no effect (Mandrill's rule) and answers `"added": false`.
pub(super) async fn add(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let (given, address) = params.email()?;
    let comment = params.comment()?;
    params.subaccount()?;
    let mut entry = Suppression::new(Reason::Custom, now_secs());
    entry.detail = comment.unwrap_or_default().to_string();
    let op = Op::Add {
        key: SuppressionKey::new(Scope::Global, address, Reason::Custom.list()),
        entry,
        rule: Rule::Replace,
        unless_allowlisted: true,
    };
    // A 200 means the entry survives a crash of quell.
    if state.suppressions.apply(vec![op]).await?.pop() == Some(Outcome::Allowlisted) {
        tracing::info!(
            call = "rejects/add",
            added = false,
            "address is allowlisted"
        );
        return Ok(Json(json!({ "email": given, "added": false })));
    }
    tracing::info!(call = "rejects/add", added = true, "suppression added");
    Ok(Json(json!({ "email": given, "added": true })))
}

/// `rejects/list`: `{"email"?, "include_expired"?, "subaccount"?}` → up to 1000 entries, in
/// address order, of every reason; expired ones only with `include_expired`.
pub(super) async fn list(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let email = match params.string("email")? {
        Some(e) if !e.trim().is_empty() => Some(address(e)?),
        _ => None,
    };
    let include_expired = params.flag("include_expired")?;
    let subaccount = params.subaccount()?;
    let now = now_secs();
    // A scan may read every global entry (when most have expired): off the async workers.
    let store = state.store.clone();
    let entries = tokio::task::spawn_blocking(move || {
        denylist(&store, email.as_deref(), include_expired, now, SCAN_BATCH)
    })
    .await??;
    tracing::info!(call = "rejects/list", count = entries.len(), "listed");
    let items: Vec<Value> = entries
        .iter()
        .map(|(address, entry)| render(address, entry, subaccount, now))
        .collect();
    Ok(Json(Value::Array(items)))
}

/// `rejects/delete`: `{"email", "subaccount"?}` → `{"email", "deleted": true, "subaccount"}`,
/// after removing the address's `global` entries on every list; `Invalid_Reject` when it had
/// none (Mandrill's "the requested email is not in the rejection list").
pub(super) async fn delete(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, MandrillError> {
    let (given, address) = params.email()?;
    let subaccount = params.subaccount()?;
    let ops = LISTS
        .into_iter()
        .map(|list| Op::Remove {
            key: SuppressionKey::new(Scope::Global, address.clone(), list),
            when: When::Always,
        })
        .collect();
    let outcomes = state.suppressions.apply(ops).await?;
    if !outcomes.contains(&Outcome::Removed) {
        return Err(MandrillError::NotRejected(given.to_string()));
    }
    tracing::info!(call = "rejects/delete", "suppression removed");
    Ok(Json(json!({
        "email": given,
        "deleted": true,
        "subaccount": subaccount,
    })))
}

/// The entries `rejects/list` shows: the `global` entries of `email` (or of every address), at
/// most [`MAX_LIST`], without expired ones unless `include_expired`, and without allowlisted
/// addresses. Reads the store `batch` entries at a time.
fn denylist(
    store: &Store,
    email: Option<&str>,
    include_expired: bool,
    now: i64,
    batch: usize,
) -> Result<Vec<(String, Suppression)>, StoreError> {
    let shown = |e: &Suppression| include_expired || !e.is_expired(now);
    if let Some(address) = email {
        if store.is_allowlisted(address)? {
            return Ok(Vec::new());
        }
        return Ok(store
            .suppressions_of(&Scope::Global, address)?
            .into_iter()
            .filter(|(_, e)| shown(e))
            .map(|(_, e)| (address.to_string(), e))
            .take(MAX_LIST)
            .collect());
    }
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    // The allowlist answer for the address being read (its entries are adjacent).
    let mut current: Option<(String, bool)> = None;
    loop {
        let mut entries = store.suppressions_in_scope(&Scope::Global, after.as_deref(), batch)?;
        let complete = entries.len() < batch;
        if let (false, Some(last)) = (complete, entries.last().map(|(a, _, _)| a.clone())) {
            // The batch may end part-way through the last address's lists, and the next batch
            // starts after that address: leave it to the next batch, or, when it is all this
            // batch holds, read its lists whole.
            if entries.iter().any(|(a, _, _)| *a != last) {
                entries.retain(|(a, _, _)| *a != last);
            } else {
                entries = store
                    .suppressions_of(&Scope::Global, &last)?
                    .into_iter()
                    .map(|(list, e)| (last.clone(), list, e))
                    .collect();
            }
        }
        after = entries.last().map(|(a, _, _)| a.clone());
        for (address, _, entry) in entries {
            let allowlisted = match &current {
                Some((a, allowed)) if *a == address => *allowed,
                _ => {
                    let allowed = store.is_allowlisted(&address)?;
                    current = Some((address.clone(), allowed));
                    allowed
                }
            };
            if allowlisted || !shown(&entry) {
                continue;
            }
            out.push((address, entry));
            if out.len() == MAX_LIST {
                return Ok(out);
            }
        }
        if complete || after.is_none() {
            return Ok(out);
        }
    }
}

/// One entry as Mandrill lists it. quell keeps no separate renewal time, so `last_event_at` is
/// `created_at`; `sender` is `null` because the entries are global, not sender-level.
fn render(address: &str, entry: &Suppression, subaccount: Option<&str>, now: i64) -> Value {
    json!({
        "email": address,
        "reason": entry.reason.as_str(),
        "detail": entry.detail,
        "created_at": mandrill_time(entry.created_at),
        "last_event_at": mandrill_time(entry.created_at),
        "expires_at": entry.expires_at.map(mandrill_time),
        "expired": entry.is_expired(now),
        "sender": Value::Null,
        "subaccount": subaccount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AllowEntry;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    fn put(store: &Store, scope: Scope, address: &str, reason: Reason, expires_at: Option<i64>) {
        let mut e = Suppression::new(reason, 100);
        e.expires_at = expires_at;
        store
            .suppression_put(&SuppressionKey::new(scope, address, reason.list()), &e)
            .unwrap();
    }

    fn addresses(v: &[(String, Suppression)]) -> Vec<(&str, Reason)> {
        v.iter().map(|(a, e)| (a.as_str(), e.reason)).collect()
    }

    #[test]
    fn lists_every_global_reason_but_not_other_scopes() {
        let (_d, s) = store();
        put(&s, Scope::Global, "a@x.io", Reason::HardBounce, Some(2000));
        put(&s, Scope::Global, "a@x.io", Reason::Custom, None);
        put(&s, Scope::Global, "b@x.io", Reason::Spam, None);
        put(&s, Scope::Global, "c@x.io", Reason::SoftBounce, Some(500));
        put(
            &s,
            Scope::Domain("d.io".into()),
            "e@x.io",
            Reason::Unsub,
            None,
        );
        put(
            &s,
            Scope::Sender("s@d.io".into()),
            "f@x.io",
            Reason::Unsub,
            None,
        );
        let got = denylist(&s, None, false, 1000, SCAN_BATCH).unwrap();
        assert_eq!(
            addresses(&got),
            [
                ("a@x.io", Reason::HardBounce),
                ("a@x.io", Reason::Custom),
                ("b@x.io", Reason::Spam)
            ]
        );
        let got = denylist(&s, None, true, 1000, SCAN_BATCH).unwrap();
        assert_eq!(got.len(), 4, "the expired soft bounce is included");
        let got = denylist(&s, Some("c@x.io"), false, 1000, SCAN_BATCH).unwrap();
        assert!(got.is_empty());
        let got = denylist(&s, Some("c@x.io"), true, 1000, SCAN_BATCH).unwrap();
        assert_eq!(addresses(&got), [("c@x.io", Reason::SoftBounce)]);
        assert!(denylist(&s, Some("e@x.io"), true, 1000, SCAN_BATCH)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn allowlisted_addresses_are_not_listed() {
        let (_d, s) = store();
        put(&s, Scope::Global, "a@x.io", Reason::HardBounce, None);
        put(&s, Scope::Global, "b@x.io", Reason::HardBounce, None);
        let allow = AllowEntry {
            detail: String::new(),
            created_at: 1,
        };
        s.allowlist_put("a@x.io", &allow).unwrap();
        let got = denylist(&s, None, true, 0, SCAN_BATCH).unwrap();
        assert_eq!(addresses(&got), [("b@x.io", Reason::HardBounce)]);
        assert!(denylist(&s, Some("a@x.io"), true, 0, SCAN_BATCH)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn batches_never_split_or_skip_an_address() {
        let (_d, s) = store();
        let mut want = Vec::new();
        for i in 0..20 {
            let a = format!("u{i:02}@x.io");
            for r in [Reason::Custom, Reason::HardBounce, Reason::Spam] {
                if (i + r.as_str().len()) % 2 == 0 || r == Reason::Custom {
                    put(&s, Scope::Global, &a, r, None);
                    want.push(a.clone());
                }
            }
        }
        for batch in [1, 2, 3, 4, 5, 7, 64] {
            let got = denylist(&s, None, false, 0, batch).unwrap();
            let got: Vec<_> = got.into_iter().map(|(a, _)| a).collect();
            assert_eq!(got, want, "batch {batch}");
        }
    }

    #[test]
    fn at_most_a_thousand() {
        let (_d, s) = store();
        let items: Vec<_> = (0..MAX_LIST + 5)
            .map(|i| {
                (
                    SuppressionKey::new(Scope::Global, format!("u{i:05}@x.io"), List::Bounces),
                    Suppression::new(Reason::HardBounce, 1),
                )
            })
            .collect();
        s.suppression_put_many(&items).unwrap();
        let got = denylist(&s, None, false, 0, SCAN_BATCH).unwrap();
        assert_eq!(got.len(), MAX_LIST);
        assert_eq!(got[0].0, "u00000@x.io");
    }

    #[test]
    fn rendering_has_mandrills_fields() {
        let mut e = Suppression::new(Reason::HardBounce, 1_357_054_227);
        e.detail = "550 mailbox does not exist".into();
        e.expires_at = Some(1_357_054_227 + 7 * 86_400);
        let v = render("a@x.io", &e, Some("cust-1"), 1_357_054_227);
        assert_eq!(
            v,
            json!({
                "email": "a@x.io",
                "reason": "hard-bounce",
                "detail": "550 mailbox does not exist",
                "created_at": "2013-01-01 15:30:27",
                "last_event_at": "2013-01-01 15:30:27",
                "expires_at": "2013-01-08 15:30:27",
                "expired": false,
                "sender": null,
                "subaccount": "cust-1",
            })
        );
        let manual = Suppression::new(Reason::Custom, 0);
        let v = render("a@x.io", &manual, None, i64::MAX);
        assert_eq!(
            (&v["expires_at"], &v["expired"], &v["subaccount"]),
            (&Value::Null, &json!(false), &Value::Null)
        );
    }
}
