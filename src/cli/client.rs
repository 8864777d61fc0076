//! The admin CLI's HTTP client: the running quell's management API, found from the same config
//! file the server reads. sled lets one process open the store, so the CLI never touches it; it
//! asks the server, as `postqueue` asks the Postfix daemons.
//!
//! - Address: `http.listen`, with an unspecified address (`0.0.0.0`, `[::]`) replaced by the
//!   loopback of its family — the server listens there too.
//! - Scheme: https when `[http.tls]` is set. The certificates in `http.tls.cert_file` are trusted
//!   as roots (besides the public web PKI), so a self-signed local certificate works. The name
//!   checked is the host of `unsubscribe.base_url` when that is an https URL with a DNS name (the
//!   public name the certificate is for), else `localhost` for a loopback listener, else the
//!   listen IP; the connection itself always goes to `http.listen`, never through DNS or a proxy.
//! - Key: the first of `http.api_keys`, sent as `Authorization: Bearer`. It never appears in an
//!   error message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Config;

/// How long to wait for the TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may stall: an export of a large store streams for long, but never stops
/// for this long between chunks.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a request to the server did not succeed. [`ClientError::exit_code`] maps each to the
/// SPEC §1 exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http.api_keys is empty: the management API is disabled")]
    NoKey,
    #[error("http.tls.cert_file {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("cannot reach quell at {url}: {reason} — is it running?")]
    Unreachable { url: String, reason: String },
    #[error("TLS with quell at {url} failed: {reason} (the certificate must be valid for {host})")]
    Tls {
        url: String,
        host: String,
        reason: String,
    },
    /// 401: the key is not one of the server's, or the server has none.
    #[error("{}", unauthorized(.url, .disabled))]
    Unauthorized {
        /// The server's base URL.
        url: String,
        /// The server said its management API is disabled (its `http.api_keys` is empty).
        disabled: bool,
    },
    /// The request was bad (400, 413, …): the server's message says what.
    #[error("the server refused the request: {0}")]
    Rejected(String),
    #[error("{0}")]
    NotFound(String),
    /// 409: the queue entry is being delivered right now.
    #[error("{0}")]
    Busy(String),
    #[error("the server failed ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("unexpected answer from quell at {url}: {reason}")]
    Answer { url: String, reason: String },
}

impl ClientError {
    /// 2 for what the operator must fix in the config or the command line (no key, a refused
    /// key, a bad request, an unreadable certificate); 1 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoKey
            | ClientError::Certificate { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Rejected(_) => 2,
            _ => 1,
        }
    }
}

/// A client for one quell's management API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://127.0.0.1:8025`, no trailing slash.
    base: String,
    /// The name the TLS certificate must carry (https only).
    host: String,
    key: String,
}

impl Client {
    /// Builds the client `config` describes (see the module docs).
    pub fn from_config(config: &Config) -> Result<Client, ClientError> {
        let key = config
            .http
            .api_keys
            .first()
            .map(|key| key.expose().clone())
            .ok_or(ClientError::NoKey)?;
        let addr = connect_addr(config.http.listen);
        // reqwest's rustls has no crypto provider of its own (quell uses aws-lc-rs), and needs
        // one to build any client, plain http included.
        crate::tls::install_crypto_provider();
        let builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("quell-cli/", env!("CARGO_PKG_VERSION")));
        let (builder, base, host) = match &config.http.tls {
            None => (builder, format!("http://{addr}"), addr.ip().to_string()),
            Some(tls) => {
                let path = tls.cert_file.display().to_string();
                let pem = std::fs::read(&tls.cert_file).map_err(|e| ClientError::Certificate {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    ClientError::Certificate {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let mut builder = builder.use_rustls_tls().tls_built_in_root_certs(true);
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
                match tls_name(&config.unsubscribe.base_url, addr.ip()) {
                    Some(name) => {
                        let base = format!("https://{name}:{}", addr.port());
                        (builder.resolve(&name, addr), base, name)
                    }
                    None => (builder, format!("https://{addr}"), addr.ip().to_string()),
                }
            }
        };
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client {
            http,
            base,
            host,
            key,
        })
    }

    /// The server's base URL (for messages).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends `request`; a 2xx answer, or the error it stands for.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            // `message` (Mailgun's shape, the admin API) or `error` (Mixpanel's).
            ["message", "error"]
                .iter()
                .find_map(|f| v.get(*f).and_then(Value::as_str).map(str::to_string))
        });
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                url: self.base.clone(),
                disabled: message.as_deref() == Some(crate::http::auth::DISABLED),
            });
        }
        let message =
            message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        Err(match status {
            StatusCode::NOT_FOUND => ClientError::NotFound(message),
            StatusCode::CONFLICT => ClientError::Busy(message),
            s if s.is_client_error() => ClientError::Rejected(message),
            s => ClientError::Server {
                status: s.as_u16(),
                message,
            },
        })
    }

    /// Sends `request` and reads a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let url = response.url().path().to_string();
        let bytes = response.bytes().await.map_err(|e| self.body(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Answer {
            url,
            reason: format!("not the JSON expected: {e}"),
        })
    }

    /// A failure while reading an answer's body: the connection broke mid-way.
    pub fn body(&self, path: &str, e: &reqwest::Error) -> ClientError {
        ClientError::Answer {
            url: format!("{}{path}", self.base),
            reason: format!("the answer was cut off: {}", root_cause(e)),
        }
    }

    /// A request that got no answer: unreachable, TLS refused, timed out.
    fn transport(&self, e: &reqwest::Error) -> ClientError {
        if let Some(tls) = find_cause::<rustls::Error>(e) {
            return ClientError::Tls {
                url: self.base.clone(),
                host: self.host.clone(),
                reason: tls.to_string(),
            };
        }
        let reason = if e.is_timeout() {
            "timed out".to_string()
        } else {
            root_cause(e)
        };
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

/// The message of [`ClientError::Unauthorized`]: which server, and what to change.
fn unauthorized(url: &str, disabled: &bool) -> String {
    if *disabled {
        format!(
            "quell at {url} has its management API disabled: set http.api_keys in its config \
             (and the same key here) and restart it"
        )
    } else {
        format!("quell at {url} refused the API key (the first of http.api_keys in this config)")
    }
}

/// Where to connect for a server listening on `listen`: an unspecified address is reached on
/// the loopback of its family.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The DNS name a TLS certificate is checked against, pinned to the listen address; `None`:
/// check the IP itself.
fn tls_name(base_url: &str, ip: IpAddr) -> Option<String> {
    let public = reqwest::Url::parse(base_url)
        .ok()
        .filter(|u| u.scheme() == "https")
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| !h.starts_with('[') && h.parse::<IpAddr>().is_err());
    public.or_else(|| ip.is_loopback().then(|| "localhost".to_string()))
}

/// `e` and its causes, outermost first. An `io::Error` wrapping another error (as TLS failures
/// are) hides it from `source()`, so the wrapped one is looked into too.
fn causes(e: &reqwest::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut out: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = next {
        out.push(current);
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => std::error::Error::source(io),
            },
            None => current.source(),
        };
    }
    out
}

/// The first error of type `E` among `e`'s causes.
fn find_cause<E: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&E> {
    causes(e).into_iter().find_map(|c| c.downcast_ref::<E>())
}

/// The innermost cause, worded for an operator: an I/O error by its kind ("connection
/// refused"), anything else by its message.
fn root_cause(e: &reqwest::Error) -> String {
    let causes = causes(e);
    if let Some(io) = causes
        .iter()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .filter(|io| io.get_ref().is_none())
    {
        return io.kind().to_string();
    }
    causes.last().map(|c| c.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_reached_on_loopback() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(connect_addr(a("0.0.0.0:8025")), a("127.0.0.1:8025"));
        assert_eq!(connect_addr(a("[::]:8025")), a("[::1]:8025"));
        assert_eq!(connect_addr(a("10.1.2.3:80")), a("10.1.2.3:80"));
    }

    #[test]
    fn tls_names() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            tls_name("https://quell.example.com/", other).as_deref(),
            Some("quell.example.com")
        );
        assert_eq!(
            tls_name("http://quell.example.com", lo).as_deref(),
            Some("localhost")
        );
        assert_eq!(tls_name("https://10.1.2.3:8443", other), None);
        assert_eq!(tls_name("not a url", other), None);
    }

    #[test]
    fn no_key_is_exit_2_and_says_why() {
        let mut config = Config::default();
        config.http.api_keys.clear();
        let e = Client::from_config(&config).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "http.api_keys is empty: the management API is disabled"
        );
    }
}
