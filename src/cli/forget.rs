//! `quell forget ADDRESS…`: GDPR/CCPA erasure through `/api/app/data-deletions/v3.0/` — the
//! task is created, then followed until it is done (see [`crate::erasure`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::Client;
use super::{connect, output, CliError};
use crate::erasure::MAX_IDS;

const PATH: &str = "/api/app/data-deletions/v3.0/";
/// How often the task is looked at while waiting.
const POLL: Duration = Duration::from_millis(250);

/// `quell forget …`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Addresses (or distinct ids known from `/engage` profiles) to erase.
    #[arg(required = true, value_name = "ADDRESS")]
    pub ids: Vec<String>,
    /// Record the request as made under the CCPA (default: GDPR). Both erase the same way.
    #[arg(long)]
    pub ccpa: bool,
    /// Print the task id and return without waiting for the erasure to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the erasure (it includes rewriting the store's files).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Config file (else $QUELL_CONFIG, else config/quell.toml): where the server listens and
    /// its API key.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
}

/// Runs `quell forget …`: exit 0 once the task succeeded, 1 if it failed or is still running
/// at `--timeout`, 2 for a refused request or key.
pub async fn run(args: ForgetArgs) -> Result<(), CliError> {
    if args.ids.len() > MAX_IDS {
        return Err(CliError::Usage(format!(
            "{} addresses given; at most {MAX_IDS} per call",
            args.ids.len()
        )));
    }
    let client = connect(args.config.as_deref())?;
    let compliance = if args.ccpa { "CCPA" } else { "GDPR" };
    let created: Value = client
        .json(
            client
                .request(Method::POST, PATH)
                .json(&json!({ "compliance_type": compliance, "distinct_ids": args.ids })),
        )
        .await?;
    let task_id = created["results"]["task_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut stdout = std::io::stdout();
    if args.no_wait {
        return output(writeln!(
            stdout,
            "task {task_id}: accepted; status: GET {PATH}{task_id}"
        ));
    }
    let task = wait(&client, &task_id, args.timeout).await?;
    match task["status"].as_str() {
        Some("SUCCESS") => output(writeln!(stdout, "task {task_id}: {}", summary(&task))),
        Some("FAILURE") => Err(CliError::Incomplete(format!(
            "task {task_id} failed: {}; run the command again",
            task["error"].as_str().unwrap_or("no reason given")
        ))),
        status => Err(CliError::Incomplete(format!(
            "task {task_id} is still {} after {}; status: GET {PATH}{task_id}",
            status.unwrap_or("unknown"),
            humantime::format_duration(args.timeout)
        ))),
    }
}

/// Follows the task until it is final or `timeout` passes; its last `results`.
async fn wait(client: &Client, task_id: &str, timeout: Duration) -> Result<Value, CliError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer: Value = client
            .json(client.request(Method::GET, &format!("{PATH}{task_id}")))
            .await?;
        let task = answer["results"].clone();
        let done = matches!(task["status"].as_str(), Some("SUCCESS") | Some("FAILURE"));
        if done || tokio::time::Instant::now() + POLL > deadline {
            return Ok(task);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `erased: 2 suppression entries (now tombstones), 1 profile, …`.
fn summary(task: &Value) -> String {
    let erased = &task["erased"];
    let count = |field: &str| erased[field].as_u64().unwrap_or(0);
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "erased {} (kept as tombstones), {}, {}, {}, {}",
        plural(
            count("suppressions"),
            "suppression entry",
            "suppression entries"
        ),
        plural(count("allowlist"), "allowlist entry", "allowlist entries"),
        plural(count("profiles"), "profile", "profiles"),
        plural(count("messages"), "message record", "message records"),
        plural(count("queued"), "queued copy", "queued copies"),
    )
}
