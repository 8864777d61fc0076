//! The suppression vocabulary (SPEC §3): whose mail an entry applies to ([`Scope`]), the list
//! it is on ([`List`]), why ([`Reason`]), the entry itself ([`Suppression`]) and its key
//! ([`SuppressionKey`]). Each name has one wire form, written by `Display` and read by
//! `FromStr`, which every API and the CLI use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A wire name that names nothing: which kind of name, and what was given (bounded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {given:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub given: String,
}

impl UnknownName {
    fn new(kind: &'static str, given: &str) -> UnknownName {
        UnknownName {
            kind,
            given: given.chars().take(300).collect(),
        }
    }
}

/// Whose mail an entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every sender (Mandrill rejects, Mixpanel, automatic bounces).
    Global,
    /// Any sender at this domain (Mailgun's `/v3/{domain}/…`).
    Domain(String),
    /// Exactly this envelope sender (Mandrill's sender-level rejection, set by a click).
    Sender(String),
}

impl Scope {
    /// The scope's key prefix: `global`, `domain:<d>`, `sender:<a>` (lowercased).
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Domain(d) => format!("domain:{}", d.to_ascii_lowercase()),
            Scope::Sender(a) => format!("sender:{}", a.to_lowercase()),
        }
    }

    /// The scope's kind (`global`, `domain`, `sender`): what log lines name, since a sender
    /// scope carries an address.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Domain(_) => "domain",
            Scope::Sender(_) => "sender",
        }
    }

    /// Parses the form [`Scope::key`] writes.
    pub fn parse(s: &str) -> Option<Scope> {
        if s == "global" {
            Some(Scope::Global)
        } else if let Some(d) = s.strip_prefix("domain:") {
            (!d.is_empty()).then(|| Scope::Domain(d.to_ascii_lowercase()))
        } else if let Some(a) = s.strip_prefix("sender:") {
            (!a.is_empty()).then(|| Scope::Sender(a.to_lowercase()))
        } else {
            None
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// `global`, `domain:<d>` or `sender:<a>` (the form [`Scope::key`] writes); the value is only
/// lowercased here, callers that take scopes from users validate the domain or address.
impl FromStr for Scope {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Scope, UnknownName> {
        Scope::parse(s.trim()).ok_or_else(|| UnknownName::new("scope", s))
    }
}

/// The three lists a scope keeps, as Mailgun does: an address may be on several at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum List {
    Unsubscribes,
    Bounces,
    Complaints,
}

impl List {
    /// Every list, in the order of their key codes (see [`super::keys`]).
    pub const ALL: [List; 3] = [List::Bounces, List::Complaints, List::Unsubscribes];

    /// The wire name (`unsubscribes`, …), as Mailgun names its resources.
    pub fn as_str(self) -> &'static str {
        match self {
            List::Unsubscribes => "unsubscribes",
            List::Bounces => "bounces",
            List::Complaints => "complaints",
        }
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for List {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<List, UnknownName> {
        List::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim())
            .ok_or_else(|| UnknownName::new("list", s))
    }
}

/// Why an address is suppressed (Mandrill's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Unsub,
    HardBounce,
    SoftBounce,
    Spam,
    Custom,
}

impl Reason {
    /// The list an entry with this reason belongs to.
    pub fn list(self) -> List {
        match self {
            Reason::Unsub | Reason::Custom => List::Unsubscribes,
            Reason::HardBounce | Reason::SoftBounce => List::Bounces,
            Reason::Spam => List::Complaints,
        }
    }

    /// The wire name (`hard-bounce`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsub => "unsub",
            Reason::HardBounce => "hard-bounce",
            Reason::SoftBounce => "soft-bounce",
            Reason::Spam => "spam",
            Reason::Custom => "custom",
        }
    }

    pub const ALL: [Reason; 5] = [
        Reason::Unsub,
        Reason::HardBounce,
        Reason::SoftBounce,
        Reason::Spam,
        Reason::Custom,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Reason, UnknownName> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| UnknownName::new("reason", s))
    }
}

/// One suppression entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub reason: Reason,
    /// `["*"]`: all mail; otherwise only messages carrying one of these tags.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The message whose click or bounce created the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md_id: Option<String>,
    /// SMTP code of a bounce (Mailgun's `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl Suppression {
    /// A manual entry for all mail, created now, that never expires.
    pub fn new(reason: Reason, created_at: i64) -> Suppression {
        Suppression {
            reason,
            tags: vec!["*".to_string()],
            created_at,
            expires_at: None,
            detail: String::new(),
            md_id: None,
            code: None,
        }
    }

    /// Whether the entry has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Whether the entry covers all mail rather than some tags.
    pub fn is_all_tags(&self) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|t| t == "*")
    }

    /// Whether the entry applies to a message carrying `tags`.
    pub fn matches_tags(&self, tags: &[String]) -> bool {
        self.is_all_tags()
            || self
                .tags
                .iter()
                .any(|t| tags.iter().any(|m| m.eq_ignore_ascii_case(t)))
    }
}

/// The full key of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SuppressionKey {
    pub scope: Scope,
    /// Normalised address.
    pub address: String,
    pub list: List,
}

impl SuppressionKey {
    pub fn new(scope: Scope, address: impl Into<String>, list: List) -> SuppressionKey {
        SuppressionKey {
            scope,
            address: address.into(),
            list,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for r in Reason::ALL {
            assert_eq!(r.to_string().parse::<Reason>(), Ok(r));
        }
        for l in List::ALL {
            assert_eq!(l.to_string().parse::<List>(), Ok(l));
        }
        for s in [
            Scope::Global,
            Scope::Domain("d.io".into()),
            Scope::Sender("a@d.io".into()),
        ] {
            assert_eq!(s.to_string().parse::<Scope>(), Ok(s));
        }
        assert_eq!(" bounces ".parse::<List>(), Ok(List::Bounces));
        assert_eq!(
            "nope".parse::<Reason>().unwrap_err().to_string(),
            "unknown reason \"nope\""
        );
        assert!("domain:".parse::<Scope>().is_err());
    }
}
