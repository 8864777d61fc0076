//! Configuration: defaults, then the TOML file, then `QUELL_*` environment overrides
//! (`QUELL_SMTP__LISTEN=0.0.0.0:25`), deserialised strictly into [`raw::RawConfig`] and validated
//! into [`Config`]. Every failure names the key and the reason; `quell check-config` prints it
//! and exits 2.

pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use raw::RawConfig;

/// Default of `storage.cache_size`: bytes of sled's page cache. sled counts what nodes take
/// on disk, and what they take in memory is about twice that (sled issues #986, #1309). RCPT
/// checks do not read sled, so the cache mostly holds the queue and the spool: from 64 to
/// 16 MiB, resident memory at 1,000,000 entries fell by ~90 MiB at the same throughput
/// (bench/results/cache-size-1M-20261127.md). `store::DEFAULT_CACHE_SIZE`, the cache of
/// `Store::open`, is the same number (`app.rs` checks at compile time).
pub const DEFAULT_CACHE_SIZE: u64 = 16 * 1024 * 1024;

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            reason: reason.into(),
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
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    /// Kept as written until the unsubscribe links are built on it.
    pub unsubscribe: raw::RawUnsubscribe,
    pub dkim: Option<DkimConfig>,
}

/// `[dkim]`: sign every forwarded copy for `domain` with the key published at
/// `<selector>._domainkey.<domain>`.
#[derive(Debug, Clone)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub relay_networks: Vec<IpNet>,
    pub max_connections: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub users: Vec<SmtpUser>,
}

/// PEM files for a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A user allowed to authenticate; the password is kept only as an argon2 PHC hash.
#[derive(Debug, Clone)]
pub struct SmtpUser {
    pub name: String,
    pub password_hash: String,
}

/// How to reach the upstream: plain, STARTTLS or implicit TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub host: String,
    pub port: u16,
    pub tls: UpstreamTls,
    pub credentials: Option<(String, String)>,
    pub connections: usize,
    pub timeout: Duration,
    pub helo_name: String,
    /// CA certificates trusted for the upstream's TLS; `None`: the public web PKI roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// What happens to a recipient the blacklist suppresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSuppressed {
    /// `550 5.7.1` at RCPT.
    Reject,
    /// Accepted, never forwarded, recorded as `rejected`.
    Drop,
}

#[derive(Debug, Clone)]
pub struct SuppressionConfig {
    pub on_suppressed: OnSuppressed,
    /// Lowercased envelope senders that ignore `unsub` entries.
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

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub api_keys: Vec<String>,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub message_retention: Duration,
    /// Bytes of sled's page cache (`storage.cache_size`).
    pub cache_size: u64,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// Where the config file is: `-c FILE`, else `$QUELL_CONFIG`, else `config/quell.toml`.
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    if let Some(path) = cli {
        return path.to_path_buf();
    }
    match std::env::var_os("QUELL_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("config/quell.toml"),
    }
}

/// Loads the file at `path` with `QUELL_*` overrides from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    // QUELL_CONFIG names the file; it is not a key.
    let env = std::env::vars()
        .filter(|(name, _)| name.starts_with("QUELL_") && name != "QUELL_CONFIG")
        .collect();
    load_with_env(path, Some(env))
}

/// Loads `path`; `env` replaces the process environment (for tests that must not race on it).
pub fn load_with_env(
    path: &Path,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<Config, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::new(
            "config",
            format!("file {} not found", path.display()),
        ));
    }
    let mut environment = config::Environment::with_prefix("QUELL")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("smtp.relay_networks")
        .with_list_parse_key("http.api_keys")
        .with_list_parse_key("suppression.transactional_senders")
        .with_list_parse_key("unsubscribe.old_secrets");
    if let Some(env) = env {
        environment = environment.source(Some(env));
    }
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .map_err(|e| ConfigError::new("config", e.to_string()))?;
    let raw: RawConfig = built
        .try_deserialize()
        .map_err(|e| ConfigError::new(&error_key(&e), e.to_string()))?;
    Config::try_from(raw)
}

fn error_key(e: &config::ConfigError) -> String {
    let text = e.to_string();
    // config's messages end in "for key `smtp.listen`" when it knows the key.
    text.rsplit_once("for key `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(key, _)| key.to_string())
        .unwrap_or_else(|| "config".to_string())
}

/// Parses "5d", "30s", "1h 30m" (humantime).
fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| ConfigError::new(key, format!("not a duration ({e}): {value:?}")))
}

fn optional_duration(key: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    if value.trim().eq_ignore_ascii_case("never") {
        Ok(None)
    } else {
        duration(key, value).map(Some)
    }
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::new(key, format!("not an ip:port address: {value:?}")))
}

fn tls_files(key: &str, raw: Option<raw::RawTls>) -> Result<Option<TlsFiles>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    for (name, file) in [("cert_file", &raw.cert_file), ("key_file", &raw.key_file)] {
        if !Path::new(file).is_file() {
            return Err(ConfigError::new(
                &format!("{key}.{name}"),
                format!("file {file:?} not found"),
            ));
        }
    }
    Ok(Some(TlsFiles {
        cert_file: raw.cert_file.into(),
        key_file: raw.key_file.into(),
    }))
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let s = raw.smtp;
        if s.hostname.trim().is_empty() {
            return Err(ConfigError::new("smtp.hostname", "must not be empty"));
        }
        if s.max_message_size == 0 {
            return Err(ConfigError::new("smtp.max_message_size", "must be > 0"));
        }
        if s.max_recipients == 0 {
            return Err(ConfigError::new("smtp.max_recipients", "must be > 0"));
        }
        if s.max_connections == 0 {
            return Err(ConfigError::new("smtp.max_connections", "must be > 0"));
        }
        let relay_networks = s
            .relay_networks
            .iter()
            .map(|n| {
                n.trim().parse::<IpNet>().map_err(|_| {
                    ConfigError::new("smtp.relay_networks", format!("not a CIDR network: {n:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut users = Vec::new();
        for u in s.users {
            if u.name.is_empty() {
                return Err(ConfigError::new("smtp.users.name", "must not be empty"));
            }
            if argon2::PasswordHash::new(&u.password_hash).is_err() {
                return Err(ConfigError::new(
                    "smtp.users.password_hash",
                    format!("not a PHC password hash for user {:?}", u.name),
                ));
            }
            users.push(SmtpUser {
                name: u.name,
                password_hash: u.password_hash,
            });
        }
        let smtp_tls = tls_files("smtp.tls", s.tls)?;
        let smtp = SmtpConfig {
            listen: socket_addr("smtp.listen", &s.listen)?,
            hostname: s.hostname,
            max_message_size: usize::try_from(s.max_message_size)
                .map_err(|_| ConfigError::new("smtp.max_message_size", "too large"))?,
            max_recipients: s.max_recipients,
            relay_networks,
            max_connections: s.max_connections,
            command_timeout: duration("smtp.command_timeout", &s.command_timeout)?,
            data_timeout: duration("smtp.data_timeout", &s.data_timeout)?,
            tls: smtp_tls,
            users,
        };

        let u = raw.upstream;
        let tls = match u.tls.as_str() {
            "none" => UpstreamTls::None,
            "starttls" => UpstreamTls::StartTls,
            "tls" => UpstreamTls::Tls,
            other => {
                return Err(ConfigError::new(
                    "upstream.tls",
                    format!("expected none, starttls or tls, got {other:?}"),
                ))
            }
        };
        let credentials = match (u.username, u.password) {
            (Some(user), Some(pass)) => Some((user, pass)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::new("upstream.password", "missing")),
            (None, Some(_)) => return Err(ConfigError::new("upstream.username", "missing")),
        };
        if u.host.trim().is_empty() {
            return Err(ConfigError::new("upstream.host", "must not be empty"));
        }
        if u.connections == 0 {
            return Err(ConfigError::new("upstream.connections", "must be > 0"));
        }
        if let Some(ca) = &u.ca_file {
            if !Path::new(ca).is_file() {
                return Err(ConfigError::new(
                    "upstream.ca_file",
                    format!("file {ca:?} not found"),
                ));
            }
        }
        let upstream = UpstreamConfig {
            host: u.host,
            port: u.port,
            tls,
            credentials,
            connections: u.connections,
            timeout: duration("upstream.timeout", &u.timeout)?,
            helo_name: u.helo_name.unwrap_or_else(|| smtp.hostname.clone()),
            ca_file: u.ca_file.map(PathBuf::from),
        };

        let q = raw.queue;
        let queue = QueueConfig {
            max_age: duration("queue.max_age", &q.max_age)?,
            retry_initial: duration("queue.retry_initial", &q.retry_initial)?,
            retry_max: duration("queue.retry_max", &q.retry_max)?,
        };

        let p = raw.suppression;
        let on_suppressed = match p.on_suppressed.as_str() {
            "reject" => OnSuppressed::Reject,
            "drop" => OnSuppressed::Drop,
            other => {
                return Err(ConfigError::new(
                    "suppression.on_suppressed",
                    format!("expected reject or drop, got {other:?}"),
                ))
            }
        };
        let suppression = SuppressionConfig {
            on_suppressed,
            transactional_senders: p
                .transactional_senders
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
            expiry: Expiry {
                soft_bounce: optional_duration(
                    "suppression.expiry.soft_bounce",
                    &p.expiry.soft_bounce,
                )?,
                hard_bounce: optional_duration(
                    "suppression.expiry.hard_bounce",
                    &p.expiry.hard_bounce,
                )?,
                unsub: optional_duration("suppression.expiry.unsub", &p.expiry.unsub)?,
                spam: optional_duration("suppression.expiry.spam", &p.expiry.spam)?,
            },
        };

        let h = raw.http;
        if h.api_keys.iter().any(|k| k.len() < 16) {
            return Err(ConfigError::new(
                "http.api_keys",
                "every key must be at least 16 characters",
            ));
        }
        let http_tls = tls_files("http.tls", h.tls)?;
        let http = HttpConfig {
            listen: socket_addr("http.listen", &h.listen)?,
            api_keys: h.api_keys,
            tls: http_tls,
        };

        let st = raw.storage;
        if st.path.trim().is_empty() {
            return Err(ConfigError::new("storage.path", "must not be empty"));
        }
        if st.cache_size < 1024 * 1024 {
            return Err(ConfigError::new(
                "storage.cache_size",
                "must be at least 1048576 bytes (1 MiB)",
            ));
        }
        let storage = StorageConfig {
            cache_size: st.cache_size,
            path: st.path.into(),
            message_retention: duration("storage.message_retention", &st.message_retention)?,
        };

        let log = LogConfig {
            format: match raw.log.format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::new(
                        "log.format",
                        format!("expected text or json, got {other:?}"),
                    ))
                }
            },
        };

        let un = raw.unsubscribe;
        match un.list_unsubscribe.as_str() {
            "auto" | "always" | "never" => {}
            other => {
                return Err(ConfigError::new(
                    "unsubscribe.list_unsubscribe",
                    format!("expected auto, always or never, got {other:?}"),
                ))
            }
        }
        match un.md_email.as_str() {
            "plain" | "obfuscated" => {}
            other => {
                return Err(ConfigError::new(
                    "unsubscribe.md_email",
                    format!("expected plain or obfuscated, got {other:?}"),
                ))
            }
        }

        let dkim = match raw.dkim {
            None => None,
            Some(d) => {
                if d.domain.trim().is_empty() {
                    return Err(ConfigError::new("dkim.domain", "must not be empty"));
                }
                if d.selector.trim().is_empty() {
                    return Err(ConfigError::new("dkim.selector", "must not be empty"));
                }
                if !Path::new(&d.key_file).is_file() {
                    return Err(ConfigError::new(
                        "dkim.key_file",
                        format!("file {:?} not found", d.key_file),
                    ));
                }
                Some(DkimConfig {
                    domain: d.domain.trim().to_ascii_lowercase(),
                    selector: d.selector.trim().to_string(),
                    key_file: d.key_file.into(),
                })
            }
        };
        Ok(Config {
            smtp,
            upstream,
            queue,
            suppression,
            http,
            storage,
            log,
            unsubscribe: un,
            dkim,
        })
    }
}

impl Default for Config {
    /// The built-in defaults, as `config/quell.toml` documents them.
    fn default() -> Self {
        Config::try_from(RawConfig::default()).expect("built-in defaults are valid")
    }
}
