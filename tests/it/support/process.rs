//! The real binary (`CARGO_BIN_EXE_quell`) with a temp config: spawned, its addresses read
//! from its log, and stopped with `kill -9` as a crash would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{API_KEY, WAIT};

pub const BIN: &str = env!("CARGO_BIN_EXE_quell");

/// Writes `quell.toml` in `dir` (store in `dir/data`, listeners on port 0, fast retries,
/// upstream at `upstream_port`), followed by `extra` TOML; returns its path.
pub fn write_config(dir: &Path, upstream_port: u16, extra: &str) -> PathBuf {
    write_config_at(dir, &dir.join("data"), upstream_port, extra)
}

/// Like [`write_config`], with the store in `store`.
pub fn write_config_at(dir: &Path, store: &Path, upstream_port: u16, extra: &str) -> PathBuf {
    let path = dir.join("quell.toml");
    let text = format!(
        r#"
[smtp]
listen = "127.0.0.1:0"
[upstream]
host = "127.0.0.1"
port = {upstream_port}
connections = 4
timeout = "10s"
[queue]
retry_initial = "100ms"
retry_max = "300ms"
[http]
listen = "127.0.0.1:0"
api_keys = ["{API_KEY}"]
[storage]
path = "{}"
{extra}
"#,
        store.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running quell process and the addresses it logged.
pub struct Running {
    pub child: Child,
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    /// Every line it wrote to stderr after its readiness line.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// How many log lines so far contain `text`.
    pub fn logged(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub async fn kill_9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// Starts `quell serve -c config` and waits for its readiness line.
pub async fn spawn(config: &Path) -> Running {
    spawn_under(&[], config).await
}

/// [`spawn`] under a wrapper command (`wrapper` followed by quell's own command line), such as
/// `strace -o FILE`.
pub async fn spawn_under(wrapper: &[&str], config: &Path) -> Running {
    quell::tls::install_crypto_provider();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .args(["serve", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("QUELL_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn quell");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut smtp, mut http) = (None, None);
    // What it said before it was ready: the reason, if it never is.
    let mut early = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            early.push(line.clone());
            let addr = || {
                line.split("addr=")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
            };
            if line.contains("smtp listening") {
                smtp = addr();
            } else if line.contains("http listening") {
                http = addr();
            } else if line.contains("quell ready") {
                return;
            }
        }
        panic!("quell exited before it was ready:\n{}", early.join("\n"));
    })
    .await
    .expect("quell ready in time");
    // Keep draining stderr so the process never blocks on a full pipe.
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Running {
        child,
        smtp: smtp.expect("smtp address logged"),
        http: http.expect("http address logged"),
        log,
    }
}
