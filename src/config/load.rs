//! Loading: defaults, then the TOML file, then `QUELL_*` environment overrides, deserialised
//! into [`RawConfig`] with the path of every failing key, then validated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::raw::RawConfig;
use super::{Config, ConfigError};

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
    env: Option<HashMap<String, String>>,
) -> Result<Config, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::new(
            "config",
            format!("file {} not found", path.display()),
        ));
    }
    // Values from the environment are parsed as booleans and numbers when they look like
    // one; the config crate's deserializer turns them back into text for a text key.
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
    let raw: RawConfig = serde_path_to_error::deserialize(built).map_err(|e| {
        let key = match e.path().to_string() {
            root if root == "." => "config".to_string(),
            key => key,
        };
        ConfigError::new(&key, reason(e.inner()))
    })?;
    Config::try_from(raw)
}

/// The config crate's error without the key it appends ("… for key `smtp.listen`"): the
/// key comes from the path serde walked.
fn reason(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => reason(error),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::config::{ListUnsubscribe, LogFormat, MdEmail, OnSuppressed, UpstreamTls};

    /// A valid argon2id PHC string (the hash of nothing in particular).
    const PHC: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qv3Ojb6Kq8z1kQvYxB5d3tY6rH3fLrTqXn1cY4cQmWk";

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("quell.toml");
        std::fs::write(&path, text).expect("write config");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load_with_env(&path, Some(env))
    }

    #[test]
    fn every_value_is_read_into_its_type() {
        let c = load_text(
            r#"
[smtp]
listen = "0.0.0.0:25"
relay_networks = [" 10.0.0.0/8 ", "fd00::/8"]
command_timeout = "1h 30m"
[upstream]
tls = "starttls"
[suppression]
on_suppressed = "drop"
[suppression.expiry]
soft_bounce = " Never "
spam = "2d"
[unsubscribe]
list_unsubscribe = "always"
md_email = "obfuscated"
[http]
listen = "[::1]:8080"
[log]
format = "json"
"#,
            &[],
        )
        .expect("valid");
        assert_eq!(c.smtp.listen, "0.0.0.0:25".parse::<SocketAddr>().unwrap());
        assert_eq!(
            c.smtp.relay_networks,
            vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
        );
        assert_eq!(c.smtp.command_timeout, Duration::from_secs(5400));
        assert_eq!(c.upstream.tls, UpstreamTls::StartTls);
        assert_eq!(c.suppression.on_suppressed, OnSuppressed::Drop);
        assert_eq!(c.suppression.expiry.soft_bounce, None);
        assert_eq!(
            c.suppression.expiry.spam,
            Some(Duration::from_secs(2 * 86400))
        );
        assert_eq!(c.unsubscribe.list_unsubscribe, ListUnsubscribe::Always);
        assert_eq!(c.unsubscribe.md_email, MdEmail::Obfuscated);
        assert_eq!(c.http.listen, "[::1]:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = load_text("", &[]).expect("valid");
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.smtp.hostname, "quell.localhost");
        assert_eq!(c.smtp.max_message_size, 26_214_400);
        assert_eq!(c.smtp.max_recipients, 1000);
        assert_eq!(
            c.smtp.relay_networks,
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
        );
        assert_eq!(c.smtp.max_connections, 512);
        assert_eq!(c.smtp.reserved_connections, 32);
        assert_eq!(c.smtp.max_connections_per_ip, Some(50));
        assert_eq!(c.smtp.command_timeout, Duration::from_secs(300));
        assert_eq!(c.smtp.data_timeout, Duration::from_secs(180));
        assert_eq!(c.smtp.min_data_rate, 500);
        assert_eq!(c.smtp.junk_command_limit, 100);
        assert_eq!(c.upstream.host, "127.0.0.1");
        assert_eq!(c.upstream.port, 25);
        assert_eq!(c.upstream.tls, UpstreamTls::None);
        assert!(c.upstream.credentials.is_none());
        assert_eq!(c.upstream.connections, 8);
        assert_eq!(c.upstream.timeout, Duration::from_secs(60));
        assert_eq!(c.upstream.helo_name, "quell.localhost");
        assert_eq!(c.queue.max_age, Duration::from_secs(5 * 86400));
        assert_eq!(c.queue.retry_initial, Duration::from_secs(60));
        assert_eq!(c.queue.retry_max, Duration::from_secs(3600));
        assert_eq!(c.suppression.on_suppressed, OnSuppressed::Reject);
        let e = c.suppression.expiry;
        assert_eq!(e.soft_bounce, Some(Duration::from_secs(86400)));
        assert_eq!(e.hard_bounce, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(e.unsub, Some(Duration::from_secs(365 * 86400)));
        assert_eq!(e.spam, Some(Duration::from_secs(365 * 86400)));
        let u = &c.unsubscribe;
        assert_eq!(u.base_url, "http://127.0.0.1:8025");
        assert!(u.secret.expose().is_empty());
        assert_eq!(u.list_unsubscribe, ListUnsubscribe::Auto);
        assert!(u.confirm && !u.per_tag && !u.footer);
        assert_eq!(u.md_email, MdEmail::Plain);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8025");
        assert!(c.http.api_keys.is_empty());
        assert_eq!(c.storage.path, PathBuf::from("data"));
        assert_eq!(c.storage.message_retention, Duration::from_secs(30 * 86400));
        assert_eq!(c.storage.cache_size, crate::config::DEFAULT_CACHE_SIZE);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.dkim.is_none());
    }

    /// `config/quell.toml` writes out every default: loading it gives the built-in config.
    #[test]
    fn the_shipped_file_says_what_the_defaults_are() {
        let shipped = load_with_env(Path::new("config/quell.toml"), Some(HashMap::new()))
            .expect("config/quell.toml is valid");
        assert_eq!(format!("{shipped:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn environment_values_are_typed_too() {
        let c = load_text(
            "",
            &[
                ("QUELL_UPSTREAM__TLS", "tls"),
                ("QUELL_UPSTREAM__PORT", "2600"),
                ("QUELL_QUEUE__MAX_AGE", "2h"),
                ("QUELL_SMTP__RELAY_NETWORKS", "10.0.0.0/8, 192.168.0.0/16"),
                ("QUELL_SUPPRESSION__EXPIRY__UNSUB", "never"),
                (
                    "QUELL_HTTP__API_KEYS",
                    "k1-0123456789abcdef,k2-0123456789abcdef",
                ),
                ("QUELL_UNSUBSCRIBE__SECRET", "12345"),
                ("QUELL_UNSUBSCRIBE__CONFIRM", "false"),
            ],
        )
        .expect("valid");
        assert_eq!(c.upstream.tls, UpstreamTls::Tls);
        assert_eq!(c.upstream.port, 2600);
        assert_eq!(c.queue.max_age, Duration::from_secs(7200));
        assert_eq!(c.smtp.relay_networks.len(), 2);
        assert_eq!(c.suppression.expiry.unsub, None);
        assert_eq!(c.http.api_keys.len(), 2);
        // A secret that looks like a number stays the text it was.
        assert_eq!(c.unsubscribe.secret.expose(), "12345");
        assert!(!c.unsubscribe.confirm);
    }

    /// Each failure names the key serde was reading (file or environment), once, with a reason.
    #[test]
    fn every_error_names_its_key() {
        for (text, env, key, reason) in [
            (
                "[smtp]\nmax_recipientz = 5\n",
                None,
                "smtp.max_recipientz",
                "max_recipientz",
            ),
            ("[smtpp]\n", None, "smtpp", "unknown field"),
            ("[smtp]\nlisten = \"x\"\n", None, "smtp.listen", "address"),
            (
                "",
                Some(("QUELL_SMTP__LISTEN", "nowhere")),
                "smtp.listen",
                "address",
            ),
            (
                "[smtp]\nmax_recipients = \"many\"\n",
                None,
                "smtp.max_recipients",
                "invalid type",
            ),
            (
                "[smtp]\nrelay_networks = [\"127.0.0.0/8\", \"everyone\"]\n",
                None,
                "smtp.relay_networks[1]",
                "invalid IP address syntax",
            ),
            (
                "[smtp]\ndata_timeout = \"3 parsecs\"\n",
                None,
                "smtp.data_timeout",
                "a duration",
            ),
            (
                "[smtp]\nmax_connections = 20\n",
                None,
                "smtp.reserved_connections",
                "less than smtp.max_connections (20)",
            ),
            (
                "[smtp]\ncommand_timeout = \"0s\"\n",
                None,
                "smtp.command_timeout",
                "more than 0s",
            ),
            (
                "[upstream]\ntls = \"sometimes\"\n",
                None,
                "upstream.tls",
                "expected one of `none`, `starttls`, `tls`",
            ),
            (
                "",
                Some(("QUELL_UPSTREAM__TLS", "1")),
                "upstream.tls",
                "unknown variant `1`",
            ),
            (
                "[queue]\nmax_age = \"soon\"\n",
                None,
                "queue.max_age",
                "soon",
            ),
            (
                "[suppression]\non_suppressed = \"bounce\"\n",
                None,
                "suppression.on_suppressed",
                "`reject` or `drop`",
            ),
            (
                "[suppression.expiry]\nspam = \"forever\"\n",
                None,
                "suppression.expiry.spam",
                "\"never\"",
            ),
            (
                "[unsubscribe]\nlist_unsubscribe = \"sometimes\"\n",
                None,
                "unsubscribe.list_unsubscribe",
                "`auto`, `always`, `never`",
            ),
            (
                "[unsubscribe]\nmd_email = \"hidden\"\n",
                None,
                "unsubscribe.md_email",
                "`plain` or `obfuscated`",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                None,
                "log.format",
                "`text` or `json`",
            ),
            (
                "[http]\nlisten = \"8025\"\n",
                None,
                "http.listen",
                "address",
            ),
            (
                "[http]\napi_keys = [\"short\"]\n",
                None,
                "http.api_keys",
                "16 characters",
            ),
            (
                "[storage]\ncache_size = 4096\n",
                None,
                "storage.cache_size",
                "1 MiB",
            ),
            (
                "[upstream]\nusername = \"u\"\n",
                None,
                "upstream.password",
                "missing",
            ),
            (
                "[dkim]\ndomain = \"example.com\"\nselector = \"s\"\n",
                None,
                "dkim",
                "key_file",
            ),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let e = load_text(text, &env).expect_err(text);
            assert_eq!(e.key, key, "{text:?} {env:?}: {e}");
            assert!(e.reason.contains(reason), "{text:?} {env:?}: {e}");
            assert!(!e.reason.contains("for key"), "{text:?} {env:?}: {e}");
        }
    }

    #[test]
    fn debug_redacts_every_secret() {
        let text = format!(
            r#"
[upstream]
username = "relay-user"
password = "upstream-password-S3CRET"
[http]
api_keys = ["api-key-one-0123456789-S3CRET", "api-key-two-0123456789-S3CRET"]
[unsubscribe]
secret = "unsubscribe-secret-S3CRET"
old_secrets = ["old-secret-S3CRET"]
[[smtp.users]]
name = "app-user"
password_hash = "{PHC}"
"#
        );
        let c = load_text(&text, &[]).expect("valid");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(!shown.contains("argon2id"), "{shown}");
        // The rest is still there, and each secret is marked as set.
        assert!(shown.contains("relay-user") && shown.contains("app-user"));
        assert!(shown.matches("[redacted]").count() >= 2 * 6, "{shown}");
        // Nothing was lost on the way: the values are there for the code that uses them.
        let (_, password) = c.upstream.credentials.as_ref().expect("credentials");
        assert_eq!(password.expose(), "upstream-password-S3CRET");
        assert_eq!(c.smtp.users[0].password_hash.expose(), PHC);
    }
}
