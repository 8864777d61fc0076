//! `quell queue list|retry|delete`: the delivery queue of a running quell, through
//! `/api/queue` (Postfix's `postqueue -p`, `postqueue -i`, `postsuper -d`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Client, ClientError};
use super::{clip, connect, output, write_table, CliError};

/// `quell queue …`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
    /// Config file (else $QUELL_CONFIG, else config/quell.toml): where the server listens and
    /// its API key.
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
}

/// The queue subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the queued messages, oldest first.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deliver queued messages now, whatever their retry schedule says.
    Retry {
        /// Queue ids (from `250 2.0.0 Ok: queued as <id>` or `quell queue list`).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Delete queued messages; their waiting recipients are recorded as bounced.
    Delete {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// Runs `quell queue …`.
pub async fn run(args: QueueArgs) -> Result<(), CliError> {
    let client = connect(args.config.as_deref())?;
    match args.command {
        QueueCommand::List { json } => list(&client, json).await,
        QueueCommand::Retry { ids } => each(&client, &ids, Action::Retry).await,
        QueueCommand::Delete { ids } => each(&client, &ids, Action::Delete).await,
    }
}

/// A page of `GET /api/queue`.
#[derive(Deserialize)]
struct Page {
    items: Vec<Value>,
    next: Option<String>,
}

/// Entries per request while listing.
const PAGE: &str = "1000";

async fn list(client: &Client, json: bool) -> Result<(), CliError> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", PAGE.to_string())];
        if let Some(a) = after.take() {
            query.push(("after", a));
        }
        let page: Page = client
            .json(client.request(Method::GET, "/api/queue").query(&query))
            .await?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&items).unwrap_or_default();
        return output(writeln!(stdout, "{text}"));
    }
    if items.is_empty() {
        return output(writeln!(stdout, "the queue is empty"));
    }
    let text = |v: &Value, field: &str| v[field].as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|m| {
            let recipients: Vec<&str> = m["recipients"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let sender = m["sender"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("<>");
            vec![
                text(m, "id"),
                text(m, "received_at"),
                m["attempts"].as_u64().unwrap_or(0).to_string(),
                m["next_attempt_at"].as_str().unwrap_or("now").to_string(),
                sender.to_string(),
                clip(&recipients.join(", "), 80),
            ]
        })
        .collect();
    output(write_table(
        &mut stdout,
        &[
            "ID",
            "RECEIVED",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "SENDER",
            "RECIPIENTS",
        ],
        &rows,
    ))?;
    let n = items.len();
    output(writeln!(
        stdout,
        "{n} queued {}",
        if n == 1 { "message" } else { "messages" }
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Delete,
}

/// Retries or deletes every id; one that is not queued (or is busy) is reported on stderr and
/// the others still done. Exit 1 when any failed.
async fn each(client: &Client, ids: &[String], action: Action) -> Result<(), CliError> {
    let mut failed = 0;
    let mut stdout = std::io::stdout();
    for id in ids {
        let segment = utf8_percent_encode(id.trim(), NON_ALPHANUMERIC).to_string();
        let request = match action {
            Action::Retry => client.request(Method::POST, &format!("/api/queue/{segment}/retry")),
            Action::Delete => client.request(Method::DELETE, &format!("/api/queue/{segment}")),
        };
        match client.json::<Value>(request).await {
            Ok(answer) => {
                let line = match action {
                    Action::Retry => format!("{id}: delivery attempt scheduled now"),
                    Action::Delete => {
                        let n = answer["bounced"].as_u64().unwrap_or(0);
                        let noun = if n == 1 { "recipient" } else { "recipients" };
                        format!("{id}: deleted; {n} waiting {noun} recorded as bounced")
                    }
                };
                output(writeln!(stdout, "{line}"))?;
            }
            Err(ClientError::NotFound(_)) => {
                failed += 1;
                eprintln!("{id}: not in the queue");
            }
            Err(ClientError::Busy(message)) => {
                failed += 1;
                eprintln!("{id}: {message}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed > 0 {
        return Err(CliError::Incomplete(format!(
            "{failed} of {} queue ids failed",
            ids.len()
        )));
    }
    Ok(())
}
