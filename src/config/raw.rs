//! The configuration as written in the file: strict serde structs, every key documented and
//! defaulted. [`super::Config`] is the validated form the rest of quell uses.

use serde::Deserialize;

/// The whole file. Unknown keys are an error at every level (`deny_unknown_fields`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub smtp: RawSmtp,
    pub upstream: RawUpstream,
    pub queue: RawQueue,
    pub suppression: RawSuppression,
    pub unsubscribe: RawUnsubscribe,
    pub http: RawHttp,
    pub storage: RawStorage,
    pub log: RawLog,
    pub dkim: Option<RawDkim>,
}

/// `[smtp]`: the submission listener applications send to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSmtp {
    /// Address the SMTP listener binds.
    pub listen: String,
    /// Name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as SIZE, RFC 1870).
    pub max_message_size: u64,
    /// Recipients per transaction; more get `452 4.5.3` (RFC 5321 §4.5.3.1.8).
    pub max_recipients: usize,
    /// Clients in these networks may relay without AUTH.
    pub relay_networks: Vec<String>,
    /// Concurrent SMTP connections; more are answered `421 4.7.0` and closed.
    pub max_connections: usize,
    /// Idle time allowed waiting for a command (RFC 5321 §4.5.3.2.7: 5 minutes).
    pub command_timeout: String,
    /// Idle time allowed between DATA blocks (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_timeout: String,
    /// STARTTLS certificate; when set, STARTTLS is offered.
    pub tls: Option<RawTls>,
    /// Users allowed to AUTH (offered only over TLS).
    pub users: Vec<RawUser>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            listen: "127.0.0.1:2525".into(),
            hostname: "quell.localhost".into(),
            max_message_size: 26_214_400,
            max_recipients: 1000,
            relay_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_connections: 512,
            command_timeout: "5m".into(),
            data_timeout: "3m".into(),
            tls: None,
            users: Vec::new(),
        }
    }
}

/// A certificate chain and key, both PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

/// One `[[smtp.users]]` entry: a login and its argon2 PHC hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    pub password_hash: String,
}

/// `[upstream]`: where accepted mail is forwarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls` (implicit TLS, RFC 8314).
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Parallel upstream sessions (delivery workers).
    pub connections: usize,
    /// Limit on one upstream transaction, connect included.
    pub timeout: String,
    /// Name sent in EHLO to the upstream.
    pub helo_name: Option<String>,
    /// PEM CA certificates to trust for the upstream instead of the public web PKI roots.
    pub ca_file: Option<String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            host: "127.0.0.1".into(),
            port: 25,
            tls: "none".into(),
            username: None,
            password: None,
            connections: 8,
            timeout: "60s".into(),
            helo_name: None,
            ca_file: None,
        }
    }
}

/// `[queue]`: retry schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQueue {
    /// After this long undelivered, a message fails permanently.
    pub max_age: String,
    /// First retry delay; doubles on each attempt.
    pub retry_initial: String,
    /// Longest delay between two attempts.
    pub retry_max: String,
}

impl Default for RawQueue {
    fn default() -> Self {
        RawQueue {
            max_age: "5d".into(),
            retry_initial: "1m".into(),
            retry_max: "1h".into(),
        }
    }
}

/// `[suppression]`: how the blacklist is enforced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSuppression {
    /// `reject` (550 5.7.1 at RCPT) or `drop` (accept, never forward, record).
    pub on_suppressed: String,
    /// Senders whose mail ignores `unsub` entries (but not bounces or complaints).
    pub transactional_senders: Vec<String>,
    /// How long automatic entries last, per reason (Mandrill's defaults).
    pub expiry: RawExpiry,
}

impl Default for RawSuppression {
    fn default() -> Self {
        RawSuppression {
            on_suppressed: "reject".into(),
            transactional_senders: Vec::new(),
            expiry: RawExpiry::default(),
        }
    }
}

/// `[suppression.expiry]`: lifetimes of automatic entries; `"never"` keeps them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExpiry {
    pub soft_bounce: String,
    pub hard_bounce: String,
    pub unsub: String,
    pub spam: String,
}

impl Default for RawExpiry {
    fn default() -> Self {
        RawExpiry {
            soft_bounce: "24h".into(),
            hard_bounce: "7d".into(),
            unsub: "365d".into(),
            spam: "365d".into(),
        }
    }
}

/// `[unsubscribe]`: links and landing pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUnsubscribe {
    pub base_url: String,
    pub secret: String,
    pub old_secrets: Vec<String>,
    pub list_unsubscribe: String,
    pub confirm: bool,
    pub md_email: String,
    pub per_tag: bool,
    pub footer: bool,
}

impl Default for RawUnsubscribe {
    fn default() -> Self {
        RawUnsubscribe {
            base_url: "http://127.0.0.1:8025".into(),
            secret: String::new(),
            old_secrets: Vec::new(),
            list_unsubscribe: "auto".into(),
            confirm: true,
            md_email: "plain".into(),
            per_tag: false,
            footer: false,
        }
    }
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    pub listen: String,
    pub api_keys: Vec<String>,
    pub tls: Option<RawTls>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:8025".into(),
            api_keys: Vec::new(),
            tls: None,
        }
    }
}

/// `[storage]`: the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub path: String,
    pub message_retention: String,
    /// Bytes of sled's page cache; at least 1 MiB. Default [`super::DEFAULT_CACHE_SIZE`]
    /// (16 MiB).
    pub cache_size: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: "data".into(),
            message_retention: "30d".into(),
            cache_size: super::DEFAULT_CACHE_SIZE,
        }
    }
}

/// `[log]`: tracing output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `text` for people, `json` for machines.
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
        }
    }
}

/// `[dkim]`: signing key for forwarded mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    pub domain: String,
    pub selector: String,
    pub key_file: String,
}
