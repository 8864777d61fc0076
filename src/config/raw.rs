//! The configuration as written in the file: strict serde structs, every key documented and
//! defaulted, every value read into its type by serde (addresses, networks, durations, the
//! choices as enums). [`super::Config`] is the validated form the rest of quell uses; what serde
//! cannot check (files that must exist, keys that go in pairs, lower bounds) is checked there.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;

use super::{ListUnsubscribe, LogFormat, MdEmail, OnSuppressed, Secret, UpstreamTls};

/// The whole file. Unknown keys are an error at every level (`deny_unknown_fields`); a missing
/// section takes its defaults.
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
    /// `[dkim]`; absent (the default): forwarded mail is not signed.
    pub dkim: Option<RawDkim>,
}

/// `[smtp]`: the submission listener applications send to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSmtp {
    /// Address the SMTP listener binds, `ip:port`. Default `127.0.0.1:2525`.
    pub listen: SocketAddr,
    /// Name in the greeting and the EHLO reply. Default `quell.localhost`.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as SIZE, RFC 1870). Default 26214400
    /// (25 MiB).
    pub max_message_size: u64,
    /// Recipients per transaction; more get `452 4.5.3` (RFC 5321 §4.5.3.1.8). Default 1000.
    pub max_recipients: usize,
    /// Clients in these CIDR networks may relay without AUTH; nobody else may (quell is never
    /// an open relay). Default `["127.0.0.0/8", "::1/128"]`. Spaces around an entry are
    /// ignored (`QUELL_SMTP__RELAY_NETWORKS=10.0.0.0/8, 192.168.0.0/16`).
    #[serde(deserialize_with = "trimmed_each")]
    pub relay_networks: Vec<IpNet>,
    /// Concurrent SMTP connections; more are answered `421 4.7.0` and closed, so a flood cannot
    /// exhaust memory. Default 512.
    pub max_connections: usize,
    /// Of `max_connections`, the slots only clients in `relay_networks` may take: everyone
    /// else shares the other `max_connections - reserved_connections`, so a flood from
    /// clients that may not relay cannot lock out the applications that do. Clients that
    /// authenticate cannot be told apart at connect time and share the unreserved slots.
    /// Less than `max_connections`; 0 reserves nothing. Default 32.
    pub reserved_connections: usize,
    /// Connections one client address outside `relay_networks` may hold at once; more are
    /// answered `421 4.7.0` and closed (Postfix's `smtpd_client_connection_count_limit`,
    /// which also exempts `mynetworks`). 0: no limit. Default 50.
    pub max_connections_per_ip: usize,
    /// Time allowed for one whole command line, from the reply to the previous one (RFC 5321
    /// §4.5.3.2.7: 5 minutes). A deadline, not a limit per read: a client sending a byte at a
    /// time cannot hold the connection past it (Postfix's `smtpd_per_request_deadline`).
    /// Writing a reply to a client that does not read has the same limit. Default `5m`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub command_timeout: Duration,
    /// Time allowed for message data (RFC 5321 §4.5.3.2.6: 3 minutes) when nothing arrives:
    /// DATA starts with this much time, each block received adds its size divided by
    /// `min_data_rate`, and the time left never exceeds `data_timeout` (Postfix's
    /// `smtpd_min_data_rate` under `smtpd_per_request_deadline`). Default `3m`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub data_timeout: Duration,
    /// Bytes per second a client must average during DATA once `data_timeout` has been used
    /// up (see `data_timeout`); slower: `421 4.4.2` and closed. 0: no rate, `data_timeout` is
    /// the longest pause between two reads. Default 500 (Postfix's default).
    pub min_data_rate: u64,
    /// NOOP, RSET, VRFY and unrecognised, unimplemented or unparsable commands a session may
    /// send; the next one is answered `421 4.7.0` and the connection closed. The count starts
    /// over when a message is accepted (as Postfix's `smtpd_junk_command_limit`). Default
    /// 100.
    pub junk_command_limit: usize,
    /// `[smtp.tls]`: STARTTLS certificate; when set, STARTTLS is offered. Default: none.
    pub tls: Option<RawTls>,
    /// `[[smtp.users]]`: users allowed to AUTH (offered only over TLS), for clients outside
    /// `relay_networks`. Default: none.
    pub users: Vec<RawUser>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: "quell.localhost".into(),
            max_message_size: 26_214_400,
            max_recipients: 1000,
            relay_networks: vec![
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
            ],
            max_connections: 512,
            reserved_connections: 32,
            max_connections_per_ip: 50,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(3 * 60),
            min_data_rate: 500,
            junk_command_limit: 100,
            tls: None,
            users: Vec::new(),
        }
    }
}

/// A certificate chain and key, both PEM (`[smtp.tls]`, `[http.tls]`). No defaults: both
/// files are required when the section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key of the leaf certificate.
    pub key_file: PathBuf,
}

/// One `[[smtp.users]]` entry: a login and its argon2 PHC hash (the password itself is never
/// stored). No defaults: both keys are required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// The AUTH user name.
    pub name: String,
    /// Argon2 PHC string (`$argon2id$v=19$…`); redacted in `Debug`.
    pub password_hash: Secret<String>,
}

/// `[upstream]`: where accepted mail is forwarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// Host name or address of the upstream MTA. Default `127.0.0.1`.
    pub host: String,
    /// Its SMTP port. Default 25.
    pub port: u16,
    /// `none`, `starttls` or `tls` (implicit TLS, RFC 8314). Default `none`.
    #[serde(deserialize_with = "by_name")]
    pub tls: UpstreamTls,
    /// AUTH user at the upstream; set with `password` or not at all. Default: none.
    pub username: Option<String>,
    /// AUTH password at the upstream; redacted in `Debug`. Default: none.
    pub password: Option<Secret<String>>,
    /// Parallel upstream sessions (delivery workers). Default 8.
    pub connections: usize,
    /// Limit on one upstream transaction, connect included, so a stalled upstream cannot
    /// hold a worker. Default `60s`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub timeout: Duration,
    /// Name sent in EHLO to the upstream. Default: `smtp.hostname`.
    pub helo_name: Option<String>,
    /// PEM CA certificates to trust for the upstream instead of the public web PKI roots (an
    /// internal relay with a private CA). Default: none.
    pub ca_file: Option<PathBuf>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            host: "127.0.0.1".into(),
            port: 25,
            tls: UpstreamTls::None,
            username: None,
            password: None,
            connections: 8,
            timeout: Duration::from_secs(60),
            helo_name: None,
            ca_file: None,
        }
    }
}

/// `[queue]`: retry schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQueue {
    /// After this long undelivered, a message fails permanently. Default `5d`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub max_age: Duration,
    /// First retry delay after a 4xx or a connection failure; doubles on each attempt.
    /// Default `1m`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub retry_initial: Duration,
    /// Longest delay between two attempts. Default `1h`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub retry_max: Duration,
}

impl Default for RawQueue {
    fn default() -> Self {
        RawQueue {
            max_age: Duration::from_secs(5 * 24 * 3600),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
        }
    }
}

/// `[suppression]`: how the blacklist is enforced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSuppression {
    /// `reject` (550 5.7.1 at RCPT) or `drop` (accept, never forward, record). Default
    /// `reject`.
    #[serde(deserialize_with = "by_name")]
    pub on_suppressed: OnSuppressed,
    /// Senders whose mail ignores `unsub` entries (receipts, password resets) but not bounces
    /// or complaints. Compared case-insensitively. Default: none.
    pub transactional_senders: Vec<String>,
    /// `[suppression.expiry]`.
    pub expiry: RawExpiry,
}

impl Default for RawSuppression {
    fn default() -> Self {
        RawSuppression {
            on_suppressed: OnSuppressed::Reject,
            transactional_senders: Vec::new(),
            expiry: RawExpiry::default(),
        }
    }
}

/// `[suppression.expiry]`: lifetimes of automatic entries (Mandrill's defaults), a duration
/// or `"never"` (any case) to keep them. Manual entries never expire.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExpiry {
    /// A soft bounce is a passing condition (mailbox full). Default `24h`.
    #[serde(deserialize_with = "lifetime")]
    pub soft_bounce: Option<Duration>,
    /// A hard bounce may be a typo fixed later. Default `7d`.
    #[serde(deserialize_with = "lifetime")]
    pub hard_bounce: Option<Duration>,
    /// An unsubscribe click. Default `365d`.
    #[serde(deserialize_with = "lifetime")]
    pub unsub: Option<Duration>,
    /// A spam complaint. Default `365d`.
    #[serde(deserialize_with = "lifetime")]
    pub spam: Option<Duration>,
}

impl Default for RawExpiry {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        RawExpiry {
            soft_bounce: Some(Duration::from_secs(DAY)),
            hard_bounce: Some(Duration::from_secs(7 * DAY)),
            unsub: Some(Duration::from_secs(365 * DAY)),
            spam: Some(Duration::from_secs(365 * DAY)),
        }
    }
}

/// `[unsubscribe]`: links and landing pages (SPEC §4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUnsubscribe {
    /// Public URL of the HTTP listener, the start of every unsubscribe link. Default
    /// `http://127.0.0.1:8025`.
    pub base_url: String,
    /// Key that seals unsubscribe tokens; redacted in `Debug`. Default empty: a secret is
    /// generated at first start and kept in the store.
    pub secret: Secret<String>,
    /// Retired secrets still accepted when opening old links, so the secret can be rotated
    /// without breaking mail already delivered; redacted in `Debug`. Default: none.
    pub old_secrets: Vec<Secret<String>>,
    /// When `List-Unsubscribe` headers are added: `auto` (the copy carries a link, from an
    /// UNSUB tag or the footer), `always` or `never`. Default `auto`.
    #[serde(deserialize_with = "by_name")]
    pub list_unsubscribe: ListUnsubscribe,
    /// `true`: GET shows a confirm page and only POST unsubscribes, so link scanners do not
    /// unsubscribe people. Default `true`.
    pub confirm: bool,
    /// How the address appears in the redirect after unsubscribing: `plain` or `obfuscated`.
    /// Default `plain`.
    #[serde(deserialize_with = "by_name")]
    pub md_email: MdEmail,
    /// `true`: a click unsubscribes from the message's tags only (Mailgun) instead of all mail
    /// from the sender. Default `false`.
    pub per_tag: bool,
    /// `true`: append an unsubscribe footer to messages without an UNSUB tag. Default `false`.
    pub footer: bool,
}

impl Default for RawUnsubscribe {
    fn default() -> Self {
        RawUnsubscribe {
            base_url: "http://127.0.0.1:8025".into(),
            secret: Secret::default(),
            old_secrets: Vec::new(),
            list_unsubscribe: ListUnsubscribe::Auto,
            confirm: true,
            md_email: MdEmail::Plain,
            per_tag: false,
            footer: false,
        }
    }
}

/// `[http]`: the HTTP listener (unsubscribe pages, management API, health, metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Address the HTTP listener binds, `ip:port`. Default `127.0.0.1:8025`.
    pub listen: SocketAddr,
    /// Management API keys, at least 16 characters each; redacted in `Debug`. Default empty:
    /// the management API is disabled.
    pub api_keys: Vec<Secret<String>>,
    /// `[http.tls]`: serve https (client libraries refuse plain http except to loopback).
    /// Default: none.
    pub tls: Option<RawTls>,
    /// Connections served at once; more wait in the listen backlog. The listener is public
    /// (unsubscribe links), so this bounds what anyone can make quell hold. Default 1024.
    pub max_connections: usize,
    /// Connections one client address may hold at once; more are closed at accept.
    /// Default 64.
    pub max_connections_per_ip: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle (also the TLS handshake's limit); then it is closed. Default
    /// `10s`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub header_timeout: Duration,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            api_keys: Vec::new(),
            tls: None,
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// `[storage]`: the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    /// The database directory, relative to the working directory. Default `data`.
    pub path: PathBuf,
    /// How long per-recipient message records are kept (SPEC §5). Default `30d`.
    #[serde(deserialize_with = "humantime_serde::deserialize")]
    pub message_retention: Duration,
    /// Bytes of sled's page cache; at least 1 MiB. Default
    /// [`super::DEFAULT_CACHE_SIZE`] (16 MiB).
    pub cache_size: u64,
    /// Bytes that must stay free on the store's file system: below it new mail is refused at
    /// MAIL (`452 4.3.1`), API changes answer `507`, `/readyz` says not ready, and quell will
    /// not start; delivery goes on, using the reserve, and mail is accepted again as soon as
    /// space returns (like Postfix's `queue_minfree`). 0 turns the check off. Default 64 MiB.
    pub min_free: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: PathBuf::from("data"),
            message_retention: Duration::from_secs(30 * 24 * 3600),
            cache_size: super::DEFAULT_CACHE_SIZE,
            min_free: 64 * 1024 * 1024,
        }
    }
}

/// `[log]`: tracing output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `text` for people, `json` for machines. Default `text`.
    #[serde(deserialize_with = "by_name")]
    pub format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: LogFormat::Text,
        }
    }
}

/// `[dkim]`: signing key for forwarded mail. No defaults: all three keys are required when
/// the section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    /// The `d=` domain.
    pub domain: String,
    /// The `s=` selector: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

/// Reads the value as text and hands it to `T`'s own `Deserialize` (a unit-variant enum), so
/// a wrong name gets serde's message listing the accepted ones. The `config` crate's enum
/// support would instead report the Rust type's name and no choices, and would refuse a value
/// the environment parsed as a number or boolean before the name is even compared.
fn by_name<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let name = String::deserialize(deserializer)?;
    T::deserialize(StringDeserializer::<D::Error>::new(name))
}

/// A list whose entries are read with `T`'s own `Deserialize` after spaces around each are
/// removed (`"10.0.0.0/8, 192.168.0.0/16"` from the environment splits into two entries).
fn trimmed_each<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    /// One entry: text, trimmed, then `T`.
    struct Trimmed<T>(T);

    impl<'de, T: DeserializeOwned> Deserialize<'de> for Trimmed<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let text = String::deserialize(deserializer)?;
            T::deserialize(StringDeserializer::<D::Error>::new(text.trim().to_string()))
                .map(Trimmed)
        }
    }

    let entries = Vec::<Trimmed<T>>::deserialize(deserializer)?;
    Ok(entries.into_iter().map(|Trimmed(t)| t).collect())
}

/// A lifetime: a humantime duration (`"24h"`, `"7d"`) or `"never"` (any case), which is
/// `None`.
fn lifetime<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    humantime::parse_duration(text).map(Some).map_err(|_| {
        de::Error::invalid_value(de::Unexpected::Str(text), &"a duration or \"never\"")
    })
}
