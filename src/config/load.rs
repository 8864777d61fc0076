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

/// Loads the file at `path` with `QUELL_*` overrides from the process environment
/// (`QUELL_CONFIG` names the file; it is not a key).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, None)
}

/// Keys whose environment value is a comma-separated list (`QUELL_HTTP__API_KEYS=k1,k2`).
const LIST_KEYS: [&str; 4] = [
    "smtp.relay_networks",
    "http.api_keys",
    "suppression.transactional_senders",
    "unsubscribe.old_secrets",
];

/// One `QUELL_*` variable: its name (for error messages) and the key it sets.
struct EnvOverride {
    name: String,
    /// `QUELL_UPSTREAM__PORT` → `upstream.port`.
    key: String,
    value: String,
}

impl EnvOverride {
    /// The key a variable sets, as the config crate's `Environment` maps it: without the
    /// prefix, lowercased, `__` between the levels.
    fn new(name: String, value: String) -> Option<EnvOverride> {
        let rest = name.strip_prefix("QUELL_")?;
        let key = rest.to_lowercase().replace("__", ".");
        Some(EnvOverride { name, key, value })
    }

    /// The value as the loader reads it: text, never guessed to be a number or a boolean
    /// (`QUELL_UNSUBSCRIBE__SECRET=007` stays `007`; serde converts text for a number key), or
    /// a list of texts for a list key (an empty value: an empty list).
    fn value(&self) -> config::Value {
        if LIST_KEYS.contains(&self.key.as_str()) {
            let items: Vec<String> = self
                .value
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect();
            items.into()
        } else {
            self.value.clone().into()
        }
    }

    /// Whether a failure at `key` (`smtp.listen`, `smtp.relay_networks[1]`, an unknown
    /// section `upstrem`) is about the value this variable sets.
    fn explains(&self, key: &str) -> bool {
        let within = |outer: &str, inner: &str| {
            inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        within(&self.key, key) || within(key, &self.key)
    }
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
    let env = env.unwrap_or_else(|| std::env::vars().collect());
    let mut overrides: Vec<EnvOverride> = env
        .into_iter()
        .filter(|(name, _)| name != "QUELL_CONFIG")
        .filter_map(|(name, value)| EnvOverride::new(name, value))
        .collect();
    overrides.sort_by(|a, b| a.name.cmp(&b.name));
    let mut builder = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml));
    for o in &overrides {
        builder = builder
            .set_override(&o.key, o.value())
            .map_err(|e| ConfigError::new("config", reason(&e)).with_env(&o.name))?;
    }
    // Which variable, if any, a failure is about: it is named instead of the file.
    let blame = |e: ConfigError| match overrides.iter().find(|o| o.explains(&e.key)) {
        Some(o) => e.with_env(&o.name),
        None => e,
    };
    let built = builder
        .build()
        .map_err(|e| ConfigError::new("config", e.to_string()))?;
    let raw: RawConfig = serde_path_to_error::deserialize(built).map_err(|e| {
        let key = match e.path().to_string() {
            root if root == "." => "config".to_string(),
            key => key,
        };
        blame(ConfigError::new(&key, reason(e.inner())))
    })?;
    let raw = files_beside(raw, path.parent().unwrap_or(Path::new("")));
    Config::try_from(raw).map_err(blame)
}

/// Resolves the relative names of the files the config points at — keys, certificates, CAs —
/// against the config file's own directory (`dir`), so that a config and the files beside it
/// move together: `/etc/quell/quell.toml` naming `dkim.pem` means `/etc/quell/dkim.pem`, and
/// the same file handed to the service by systemd (`LoadCredential=`, in
/// `$CREDENTIALS_DIRECTORY`) finds the key handed over with it. `storage.path` is a place to
/// write, not a file shipped with the config: it stays relative to the working directory.
fn files_beside(mut raw: RawConfig, dir: &Path) -> RawConfig {
    let beside = |file: &mut PathBuf| {
        if file.is_relative() && !file.as_os_str().is_empty() {
            *file = dir.join(&*file);
        }
    };
    for tls in [raw.smtp.tls.as_mut(), raw.http.tls.as_mut()]
        .into_iter()
        .flatten()
    {
        beside(&mut tls.cert_file);
        beside(&mut tls.key_file);
    }
    if let Some(ca) = raw.upstream.ca_file.as_mut() {
        beside(ca);
    }
    if let Some(dkim) = raw.dkim.as_mut() {
        beside(&mut dkim.key_file);
    }
    raw
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

    /// A value from the environment is text until serde reads it into its key's type: a
    /// secret of digits keeps its leading zeros, and no value is taken for a float.
    #[test]
    fn environment_values_are_never_guessed_into_numbers() {
        let c = load_text(
            "",
            &[
                ("QUELL_UNSUBSCRIBE__SECRET", "007"),
                ("QUELL_UNSUBSCRIBE__OLD_SECRETS", "0042, 1e5"),
                ("QUELL_SMTP__HOSTNAME", "1e5"),
                ("QUELL_HTTP__API_KEYS", "0000000000000000123"),
                ("QUELL_UPSTREAM__PORT", "02600"),
                ("QUELL_SMTP__MAX_RECIPIENTS", "7"),
            ],
        )
        .expect("valid");
        assert_eq!(c.unsubscribe.secret.expose(), "007");
        let old: Vec<&str> = c
            .unsubscribe
            .old_secrets
            .iter()
            .map(|s| s.expose().as_str())
            .collect();
        assert_eq!(old, ["0042", "1e5"]);
        assert_eq!(c.smtp.hostname, "1e5");
        assert_eq!(c.http.api_keys[0].expose(), "0000000000000000123");
        assert_eq!(c.upstream.port, 2600);
        assert_eq!(c.smtp.max_recipients, 7);
        // An empty list variable empties the list.
        let c = load_text(
            "[http]\napi_keys = [\"file-key-0123456789abcdef\"]\n",
            &[("QUELL_HTTP__API_KEYS", "")],
        )
        .expect("valid");
        assert!(c.http.api_keys.is_empty());
    }

    /// A failure caused by a `QUELL_*` variable names the variable, not the file.
    #[test]
    fn a_bad_environment_variable_is_named() {
        for (env, file, var, reason) in [
            (
                ("QUELL_UPSTREM__PORT", "2600"),
                "",
                "QUELL_UPSTREM__PORT",
                "unknown field `upstrem`",
            ),
            (
                ("QUELL_UPSTREAM__PROT", "2600"),
                "[upstream]\nport = 25\n",
                "QUELL_UPSTREAM__PROT",
                "unknown field `prot`",
            ),
            (
                ("QUELL_SMTP__LISTEN", "nowhere"),
                "[smtp]\nlisten = \"127.0.0.1:25\"\n",
                "QUELL_SMTP__LISTEN",
                "address",
            ),
            (
                ("QUELL_SMTP__RELAY_NETWORKS", "10.0.0.0/8,everyone"),
                "",
                "QUELL_SMTP__RELAY_NETWORKS",
                "invalid IP address syntax",
            ),
            (
                ("QUELL_HTTP__API_KEYS", "short"),
                "",
                "QUELL_HTTP__API_KEYS",
                "16 characters",
            ),
            (
                ("QUELL_UPSTREAM__PORT", "port"),
                "",
                "QUELL_UPSTREAM__PORT",
                "invalid",
            ),
        ] {
            let e = load_text(file, &[env]).expect_err(var);
            assert_eq!(e.env.as_deref(), Some(var), "{e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("environment variable {var}: ")),
                "{shown}"
            );
            assert!(shown.contains(reason), "{shown}");
            assert_eq!(e.located(Path::new("config/quell.toml")), shown);
        }
        // A mistake in the file is still the file's, whatever the environment holds.
        let e = load_text(
            "[upstream]\nprot = 25\n",
            &[("QUELL_UPSTREAM__PORT", "2600")],
        )
        .expect_err("file typo");
        assert_eq!(e.env, None);
        assert_eq!(e.key, "upstream.prot");
        assert!(e
            .located(Path::new("q.toml"))
            .starts_with("q.toml: upstream.prot: unknown field `prot`"));
    }

    /// Key, certificate and CA files named relatively are read from the config file's own
    /// directory (where systemd's `LoadCredential=` puts them beside the config), whatever the
    /// working directory; `storage.path` stays relative to the working directory.
    #[test]
    fn relative_file_names_are_beside_the_config_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        for name in ["dkim.pem", "cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(etc.join(name), "x").unwrap();
        }
        let path = etc.join("quell.toml");
        std::fs::write(
            &path,
            r#"
[smtp.tls]
cert_file = "cert.pem"
key_file = "key.pem"
[http.tls]
cert_file = "cert.pem"
key_file = "key.pem"
[upstream]
ca_file = "ca.pem"
[storage]
path = "data"
[dkim]
domain = "example.com"
selector = "s"
key_file = "dkim.pem"
"#,
        )
        .unwrap();
        let c = load_with_env(&path, Some(HashMap::new())).expect("files found beside it");
        assert_eq!(c.dkim.unwrap().key_file, etc.join("dkim.pem"));
        let tls = c.smtp.tls.unwrap();
        assert_eq!(tls.cert_file, etc.join("cert.pem"));
        assert_eq!(tls.key_file, etc.join("key.pem"));
        assert_eq!(c.http.tls.unwrap().key_file, etc.join("key.pem"));
        assert_eq!(c.upstream.ca_file, Some(etc.join("ca.pem")));
        assert_eq!(c.storage.path, PathBuf::from("data"));
        // An absolute name is left as it is; one from the environment is read the same way.
        let env = HashMap::from([(
            "QUELL_DKIM__KEY_FILE".to_string(),
            etc.join("key.pem").display().to_string(),
        )]);
        let c = load_with_env(&path, Some(env)).expect("valid");
        assert_eq!(c.dkim.unwrap().key_file, etc.join("key.pem"));
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
