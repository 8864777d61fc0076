//! From the file's [`RawConfig`] to the [`Config`] quell runs with: what serde's types cannot
//! say — non-empty names, lower bounds, keys that go in pairs, files that must exist, PHC
//! hashes — each failure naming its key.

use super::raw::{RawConfig, RawTls};
use super::{
    Config, ConfigError, DkimConfig, Expiry, HttpConfig, LogConfig, QueueConfig, SmtpConfig,
    SmtpUser, StorageConfig, SuppressionConfig, TlsFiles, UnsubscribeConfig, UpstreamConfig,
};

/// Smallest `storage.cache_size` accepted.
const MIN_CACHE_SIZE: u64 = 1024 * 1024;

/// Shortest `http.api_keys` entry accepted: a key must not be guessable.
const MIN_API_KEY_LEN: usize = 16;

fn tls_files(key: &str, raw: Option<RawTls>) -> Result<Option<TlsFiles>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    for (name, file) in [("cert_file", &raw.cert_file), ("key_file", &raw.key_file)] {
        if !file.is_file() {
            return Err(ConfigError::new(
                &format!("{key}.{name}"),
                format!("file {:?} not found", file.display().to_string()),
            ));
        }
    }
    Ok(Some(TlsFiles {
        cert_file: raw.cert_file,
        key_file: raw.key_file,
    }))
}

fn blank(text: &str) -> bool {
    text.trim().is_empty()
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let s = raw.smtp;
        if blank(&s.hostname) {
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
        if s.reserved_connections >= s.max_connections {
            return Err(ConfigError::new(
                "smtp.reserved_connections",
                format!(
                    "must be less than smtp.max_connections ({}): clients outside \
                     relay_networks need at least one slot",
                    s.max_connections
                ),
            ));
        }
        for (key, value) in [
            ("smtp.command_timeout", s.command_timeout),
            ("smtp.data_timeout", s.data_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(key, "must be more than 0s"));
            }
        }
        let mut users = Vec::new();
        for u in s.users {
            if u.name.is_empty() {
                return Err(ConfigError::new("smtp.users.name", "must not be empty"));
            }
            if argon2::PasswordHash::new(u.password_hash.expose()).is_err() {
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
        let smtp = SmtpConfig {
            listen: s.listen,
            hostname: s.hostname,
            max_message_size: usize::try_from(s.max_message_size)
                .map_err(|_| ConfigError::new("smtp.max_message_size", "too large"))?,
            max_recipients: s.max_recipients,
            relay_networks: s.relay_networks,
            max_connections: s.max_connections,
            reserved_connections: s.reserved_connections,
            max_connections_per_ip: (s.max_connections_per_ip > 0)
                .then_some(s.max_connections_per_ip),
            command_timeout: s.command_timeout,
            data_timeout: s.data_timeout,
            min_data_rate: s.min_data_rate,
            junk_command_limit: s.junk_command_limit,
            tls: tls_files("smtp.tls", s.tls)?,
            users,
        };

        let u = raw.upstream;
        let credentials = match (u.username, u.password) {
            (Some(user), Some(pass)) => Some((user, pass)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::new("upstream.password", "missing")),
            (None, Some(_)) => return Err(ConfigError::new("upstream.username", "missing")),
        };
        if blank(&u.host) {
            return Err(ConfigError::new("upstream.host", "must not be empty"));
        }
        if u.connections == 0 {
            return Err(ConfigError::new("upstream.connections", "must be > 0"));
        }
        if let Some(ca) = &u.ca_file {
            if !ca.is_file() {
                return Err(ConfigError::new(
                    "upstream.ca_file",
                    format!("file {:?} not found", ca.display().to_string()),
                ));
            }
        }
        let upstream = UpstreamConfig {
            host: u.host,
            port: u.port,
            tls: u.tls,
            credentials,
            connections: u.connections,
            timeout: u.timeout,
            helo_name: u.helo_name.unwrap_or_else(|| smtp.hostname.clone()),
            ca_file: u.ca_file,
        };

        let q = raw.queue;
        let queue = QueueConfig {
            max_age: q.max_age,
            retry_initial: q.retry_initial,
            retry_max: q.retry_max,
        };

        let p = raw.suppression;
        let suppression = SuppressionConfig {
            on_suppressed: p.on_suppressed,
            transactional_senders: p
                .transactional_senders
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
            expiry: Expiry {
                soft_bounce: p.expiry.soft_bounce,
                hard_bounce: p.expiry.hard_bounce,
                unsub: p.expiry.unsub,
                spam: p.expiry.spam,
            },
        };

        let h = raw.http;
        if h.api_keys
            .iter()
            .any(|k| k.expose().len() < MIN_API_KEY_LEN)
        {
            return Err(ConfigError::new(
                "http.api_keys",
                format!("every key must be at least {MIN_API_KEY_LEN} characters"),
            ));
        }
        for (key, value) in [
            ("http.max_connections", h.max_connections),
            ("http.max_connections_per_ip", h.max_connections_per_ip),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if h.header_timeout.is_zero() {
            return Err(ConfigError::new(
                "http.header_timeout",
                "must be more than 0s",
            ));
        }
        let http = HttpConfig {
            listen: h.listen,
            api_keys: h.api_keys,
            tls: tls_files("http.tls", h.tls)?,
            max_connections: h.max_connections,
            max_connections_per_ip: h.max_connections_per_ip,
            header_timeout: h.header_timeout,
        };

        let st = raw.storage;
        if blank(&st.path.to_string_lossy()) {
            return Err(ConfigError::new("storage.path", "must not be empty"));
        }
        if st.cache_size < MIN_CACHE_SIZE {
            return Err(ConfigError::new(
                "storage.cache_size",
                format!("must be at least {MIN_CACHE_SIZE} bytes (1 MiB)"),
            ));
        }
        let storage = StorageConfig {
            path: st.path,
            message_retention: st.message_retention,
            cache_size: st.cache_size,
            min_free: st.min_free,
        };

        let log = LogConfig {
            format: raw.log.format,
        };

        let un = raw.unsubscribe;
        let unsubscribe = UnsubscribeConfig {
            base_url: un.base_url,
            secret: un.secret,
            old_secrets: un.old_secrets,
            list_unsubscribe: un.list_unsubscribe,
            confirm: un.confirm,
            md_email: un.md_email,
            per_tag: un.per_tag,
            footer: un.footer,
        };

        let dkim = match raw.dkim {
            None => None,
            Some(d) => {
                if blank(&d.domain) {
                    return Err(ConfigError::new("dkim.domain", "must not be empty"));
                }
                if blank(&d.selector) {
                    return Err(ConfigError::new("dkim.selector", "must not be empty"));
                }
                if !d.key_file.is_file() {
                    return Err(ConfigError::new(
                        "dkim.key_file",
                        format!("file {:?} not found", d.key_file.display().to_string()),
                    ));
                }
                Some(DkimConfig {
                    domain: d.domain.trim().to_ascii_lowercase(),
                    selector: d.selector.trim().to_string(),
                    key_file: d.key_file,
                })
            }
        };
        Ok(Config {
            smtp,
            upstream,
            queue,
            suppression,
            unsubscribe,
            http,
            storage,
            log,
            dkim,
        })
    }
}
