//! Configuration: defaults, then the TOML file, then `QUELL_*` environment overrides
//! (`QUELL_SMTP__LISTEN=0.0.0.0:25`), deserialised strictly into [`raw::RawConfig`] — every
//! value into its type by serde — and validated into [`Config`]. Every failure names the key
//! (from [`serde_path_to_error`] while deserialising, from the check itself while validating)
//! and the reason; `quell check-config` prints it and exits 2.
//!
//! Config is data: this module imports nothing else of quell's. Credentials are
//! [`Secret`]s, so `{:?}` of a config never shows them.

mod load;
pub mod raw;
mod secret;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use raw::RawConfig;
use serde::Deserialize;

pub use load::{load, load_with_env, resolve_path};
pub use secret::Secret;

/// Default of `storage.cache_size`: bytes of sled's page cache. sled counts what nodes take
/// on disk, and what they take in memory is about twice that (sled issues #986, #1309). RCPT
/// checks do not read sled, so the cache mostly holds the queue and the spool: from 64 to
/// 16 MiB, resident memory at 1,000,000 entries fell by ~90 MiB at the same throughput
/// (bench/results/cache-size-1M-20261127.md). `store::DEFAULT_CACHE_SIZE`, the cache of
/// `Store::open`, is the same number (`app.rs` checks at compile time).
pub const DEFAULT_CACHE_SIZE: u64 = 16 * 1024 * 1024;

/// A configuration problem: which key, and what is wrong with it — and, when the value came
/// from a `QUELL_*` variable, which one, so that the operator looks there and not in the file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The dotted key (`smtp.listen`, `smtp.relay_networks[1]`), or `config` for the file as
    /// a whole.
    pub key: String,
    /// What is wrong with it, for the person editing the file.
    pub reason: String,
    /// The environment variable that set the failing value (`QUELL_UPSTREM__PORT`); `None`:
    /// the file.
    pub env: Option<String>,
}

impl std::fmt::Display for ConfigError {
    /// `smtp.listen: invalid socket address syntax`, or, for a value from the environment,
    /// `environment variable QUELL_SMTP__LISTEN: invalid socket address syntax`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.env {
            Some(name) => write!(f, "environment variable {name}: {}", self.reason),
            None => write!(f, "{}: {}", self.key, self.reason),
        }
    }
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            reason: reason.into(),
            env: None,
        }
    }

    fn with_env(self, name: &str) -> Self {
        ConfigError {
            env: Some(name.to_string()),
            ..self
        }
    }

    /// The error as an operator reads it: after the file's name (`bad.toml: smtp.listen: …`),
    /// or alone when an environment variable set the value.
    pub fn located(&self, path: &std::path::Path) -> String {
        match self.env {
            Some(_) => self.to_string(),
            None => format!("{}: {self}", path.display()),
        }
    }
}

/// The validated configuration every part of quell reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub smtp: SmtpConfig,
    pub upstream: UpstreamConfig,
    pub queue: QueueConfig,
    pub suppression: SuppressionConfig,
    pub unsubscribe: UnsubscribeConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub dkim: Option<DkimConfig>,
}

/// `[dkim]`: sign every forwarded copy for `domain` with the key published at
/// `<selector>._domainkey.<domain>`.
#[derive(Debug, Clone)]
pub struct DkimConfig {
    /// Lowercased.
    pub domain: String,
    pub selector: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

/// `[smtp]` (documented key by key on [`raw::RawSmtp`]).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub relay_networks: Vec<IpNet>,
    pub max_connections: usize,
    /// `smtp.reserved_connections`, less than `max_connections`.
    pub reserved_connections: usize,
    /// `smtp.max_connections_per_ip`; `None`: no limit (0 in the file).
    pub max_connections_per_ip: Option<usize>,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// `smtp.min_data_rate` in bytes per second; 0: none.
    pub min_data_rate: u64,
    /// `smtp.junk_command_limit`.
    pub junk_command_limit: usize,
    pub tls: Option<TlsFiles>,
    pub users: Vec<SmtpUser>,
}

impl SmtpConfig {
    /// Whether a client at `ip` is in `relay_networks` (may relay without AUTH, may take the
    /// reserved slots, is exempt from the per-address limit). An IPv4 client reaching an IPv6
    /// socket (`::ffff:192.0.2.1`) is matched as the IPv4 address it is.
    pub fn in_relay_networks(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.relay_networks.iter().any(|n| n.contains(&ip))
    }
}

/// PEM files for a TLS listener; both existed when the config was loaded.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A user allowed to authenticate; the password is kept only as an argon2 PHC hash.
#[derive(Debug, Clone)]
pub struct SmtpUser {
    pub name: String,
    /// A valid PHC string (checked at load).
    pub password_hash: Secret<String>,
}

/// How to reach the upstream (`upstream.tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// `none`: plain SMTP.
    None,
    /// `starttls`: plain connect, then STARTTLS (RFC 3207) before anything else.
    StartTls,
    /// `tls`: implicit TLS from the first byte (RFC 8314).
    Tls,
}

/// `[upstream]` (documented key by key on [`raw::RawUpstream`]).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub host: String,
    pub port: u16,
    pub tls: UpstreamTls,
    /// `upstream.username` and `upstream.password`, set together or not at all.
    pub credentials: Option<(String, Secret<String>)>,
    pub connections: usize,
    pub timeout: Duration,
    /// `upstream.helo_name`, else `smtp.hostname`.
    pub helo_name: String,
    /// CA certificates trusted for the upstream's TLS; `None`: the public web PKI roots.
    pub ca_file: Option<PathBuf>,
}

/// `[queue]` (documented key by key on [`raw::RawQueue`]).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// What happens to a recipient the blacklist suppresses (`suppression.on_suppressed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSuppressed {
    /// `reject`: `550 5.7.1` at RCPT.
    Reject,
    /// `drop`: accepted, never forwarded, recorded as `rejected`.
    Drop,
}

/// `[suppression]` (documented key by key on [`raw::RawSuppression`]).
#[derive(Debug, Clone)]
pub struct SuppressionConfig {
    pub on_suppressed: OnSuppressed,
    /// Lowercased, trimmed envelope senders that ignore `unsub` entries.
    pub transactional_senders: Vec<String>,
    pub expiry: Expiry,
}

/// Lifetimes of automatic entries; `None` never expires.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub soft_bounce: Option<Duration>,
    pub hard_bounce: Option<Duration>,
    pub unsub: Option<Duration>,
    pub spam: Option<Duration>,
}

/// When `List-Unsubscribe` headers are added to a copy (`unsubscribe.list_unsubscribe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListUnsubscribe {
    /// `auto`: when the copy carries a link (an UNSUB tag or the footer).
    Auto,
    /// `always`.
    Always,
    /// `never`.
    Never,
}

/// How the address is shown to the app in the redirect's `md_email` (`unsubscribe.md_email`);
/// rendered by `unsubscribe::redirect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdEmail {
    /// `plain`: the address as is.
    Plain,
    /// `obfuscated`: Mandrill's obfuscated form, `j***@e******.***`: the app can recognise a
    /// reader it already knows without the URL carrying the address into access logs.
    Obfuscated,
}

/// `[unsubscribe]` (documented key by key on [`raw::RawUnsubscribe`]).
#[derive(Debug, Clone)]
pub struct UnsubscribeConfig {
    pub base_url: String,
    /// Empty: a generated secret kept in the store is used.
    pub secret: Secret<String>,
    pub old_secrets: Vec<Secret<String>>,
    pub list_unsubscribe: ListUnsubscribe,
    pub confirm: bool,
    pub md_email: MdEmail,
    pub per_tag: bool,
    pub footer: bool,
}

/// `[http]` (documented key by key on [`raw::RawHttp`]).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Each at least 16 characters; empty: the management API is off.
    pub api_keys: Vec<Secret<String>>,
    pub tls: Option<TlsFiles>,
    /// `http.max_connections`, at least 1.
    pub max_connections: usize,
    /// `http.max_connections_per_ip`, at least 1.
    pub max_connections_per_ip: usize,
    /// `http.header_timeout`: headers, keep-alive idle time and the TLS handshake.
    pub header_timeout: Duration,
}

/// `[storage]` (documented key by key on [`raw::RawStorage`]).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub message_retention: Duration,
    /// Bytes of sled's page cache (`storage.cache_size`).
    pub cache_size: u64,
    /// Free bytes below which new mail and changes are refused (`storage.min_free`).
    pub min_free: u64,
}

/// Log line format (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `text`: for people.
    Text,
    /// `json`: one object per line, for machines.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

impl Default for Config {
    /// The built-in defaults, as `config/quell.toml` documents them.
    fn default() -> Self {
        Config::try_from(RawConfig::default()).expect("built-in defaults are valid")
    }
}
