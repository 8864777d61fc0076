//! `quell suppress add|remove|list|import|export`: the suppression list of a running quell,
//! through `/api/suppressions`. Addresses and scopes are checked here first, so a typo is a
//! usage error (exit 2) before anything is sent.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{Client, ClientError};
use super::{clip, connect, output, parse_scope, write_table, CliError, ReasonArg, BATCH};

/// `quell suppress …`.
#[derive(Debug, Args)]
pub struct SuppressArgs {
    #[command(subcommand)]
    pub command: SuppressCommand,
    /// Config file (else $QUELL_CONFIG, else config/quell.toml): where the server listens and
    /// its API key.
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
}

/// The suppression subcommands.
#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Suppress addresses (a manual entry for all mail unless --reason/--tag say otherwise).
    Add {
        /// The addresses to suppress.
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Whose mail the entry applies to: global, domain:<domain> or sender:<address>.
        #[arg(long, default_value = "global", value_parser = parse_scope)]
        scope: String,
        /// Why the address is suppressed; it decides the list (unsubscribes, bounces, complaints).
        #[arg(long, value_enum, default_value_t = ReasonArg::Custom)]
        reason: ReasonArg,
        /// Suppress only mail carrying this tag (repeatable); without it, all mail.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// A note kept with the entry.
        #[arg(long)]
        detail: Option<String>,
    },
    /// Remove addresses' entries from a scope (every list unless --list).
    Remove {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[arg(long, default_value = "global", value_parser = parse_scope)]
        scope: String,
        /// Remove only this list's entry.
        #[arg(long, value_enum)]
        list: Option<ListArg>,
    },
    /// List entries as a table (or JSON), in scope and address order.
    List {
        /// Only this scope's entries (default: every scope).
        #[arg(long, value_parser = parse_scope)]
        scope: Option<String>,
        /// Only this address's entries.
        #[arg(long)]
        address: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// Print a JSON array of the entries instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import a CSV file ("-": stdin): Mailgun's format with its header row, the headerless
    /// distinct_id,unsubscribed format, or `quell suppress export`'s own.
    Import {
        /// The CSV file, or - for stdin.
        #[arg(value_name = "FILE")]
        file: String,
        /// The scope of the imported entries (default global; an export file carries its own,
        /// which this replaces).
        #[arg(long, value_parser = parse_scope)]
        scope: Option<String>,
        /// The reason of every imported entry, instead of the one the format implies.
        #[arg(long, value_enum)]
        reason: Option<ReasonArg>,
    },
    /// Write every entry as CSV to stdout (the format import reads back).
    Export {
        /// Only this scope's entries.
        #[arg(long, value_parser = parse_scope)]
        scope: Option<String>,
    },
}

/// One of the three lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListArg {
    Unsubscribes,
    Bounces,
    Complaints,
}

impl ListArg {
    fn as_str(self) -> &'static str {
        match self {
            ListArg::Unsubscribes => "unsubscribes",
            ListArg::Bounces => "bounces",
            ListArg::Complaints => "complaints",
        }
    }
}

/// Runs `quell suppress …`.
pub async fn run(args: SuppressArgs) -> Result<(), CliError> {
    // Addresses are checked before the config is even read: a typo is a usage error.
    match &args.command {
        SuppressCommand::Add { addresses, .. } | SuppressCommand::Remove { addresses, .. } => {
            for a in addresses {
                address(a)?;
            }
        }
        SuppressCommand::List {
            address: Some(a), ..
        } => {
            address(a)?;
        }
        _ => {}
    }
    let client = connect(args.config.as_deref())?;
    match args.command {
        SuppressCommand::Add {
            addresses,
            scope,
            reason,
            tags,
            detail,
        } => {
            add(
                &client,
                &addresses,
                &scope,
                reason,
                &tags,
                detail.as_deref(),
            )
            .await
        }
        SuppressCommand::Remove {
            addresses,
            scope,
            list,
        } => remove(&client, &addresses, &scope, list).await,
        SuppressCommand::List {
            scope,
            address: filter,
            limit,
            json,
        } => {
            let filter = filter.as_deref().map(address).transpose()?;
            list(&client, scope.as_deref(), filter.as_deref(), limit, json).await
        }
        SuppressCommand::Import {
            file,
            scope,
            reason,
        } => super::import::run(&client, &file, scope, reason).await,
        SuppressCommand::Export { scope } => export(&client, scope.as_deref()).await,
    }
}

/// A normalised address, or a usage error naming it.
fn address(a: &str) -> Result<String, CliError> {
    crate::address::normalize(a).map_err(|e| CliError::Usage(format!("address {a:?}: {e}")))
}

async fn add(
    client: &Client,
    addresses: &[String],
    scope: &str,
    reason: ReasonArg,
    tags: &[String],
    detail: Option<&str>,
) -> Result<(), CliError> {
    let mut added = 0;
    for chunk in addresses.chunks(BATCH) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|a| {
                let mut item = json!({"scope": scope, "address": a, "reason": reason.as_str()});
                if !tags.is_empty() {
                    item["tags"] = json!(tags);
                }
                if let Some(d) = detail {
                    item["detail"] = json!(d);
                }
                item
            })
            .collect();
        let answer: Added = client
            .json(
                client
                    .request(Method::POST, "/api/suppressions")
                    .json(&items),
            )
            .await?;
        added += answer.added;
    }
    let tags = if tags.is_empty() {
        "all mail".to_string()
    } else {
        format!("tags {}", tags.join(", "))
    };
    let noun = if added == 1 { "entry" } else { "entries" };
    output(writeln!(
        std::io::stdout(),
        "added {added} {noun} to {scope} ({}, {tags})",
        reason.as_str()
    ))
}

#[derive(Deserialize)]
struct Added {
    added: usize,
}

#[derive(Deserialize)]
struct Removed {
    removed: usize,
}

async fn remove(
    client: &Client,
    addresses: &[String],
    scope: &str,
    list: Option<ListArg>,
) -> Result<(), CliError> {
    let mut missing = 0;
    let mut stdout = std::io::stdout();
    for a in addresses {
        let mut query = vec![("scope", scope), ("address", a.as_str())];
        if let Some(l) = list {
            query.push(("list", l.as_str()));
        }
        let request = client
            .request(Method::DELETE, "/api/suppressions")
            .query(&query);
        match client.json::<Removed>(request).await {
            Ok(r) => {
                let noun = if r.removed == 1 { "entry" } else { "entries" };
                output(writeln!(
                    stdout,
                    "{a}: removed {} {noun} from {scope}",
                    r.removed
                ))?;
            }
            Err(ClientError::NotFound(_)) => {
                missing += 1;
                let what = list
                    .map(|l| format!(" on {}", l.as_str()))
                    .unwrap_or_default();
                eprintln!("{a}: not suppressed in {scope}{what}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if missing > 0 {
        return Err(CliError::Incomplete(format!(
            "{missing} of {} addresses had nothing to remove",
            addresses.len()
        )));
    }
    Ok(())
}

/// A page of `GET /api/suppressions`.
#[derive(Deserialize)]
struct Page {
    items: Vec<Value>,
    next: Option<String>,
}

async fn list(
    client: &Client,
    scope: Option<&str>,
    address: Option<&str>,
    limit: u64,
    json: bool,
) -> Result<(), CliError> {
    let mut items: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    let mut more = false;
    loop {
        let want = (limit - items.len() as u64).min(BATCH as u64);
        let mut query: Vec<(&str, String)> = vec![("limit", want.to_string())];
        if let Some(s) = scope {
            query.push(("scope", s.to_string()));
        }
        if let Some(a) = address {
            query.push(("address", a.to_string()));
        }
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let page: Page = client
            .json(
                client
                    .request(Method::GET, "/api/suppressions")
                    .query(&query),
            )
            .await?;
        items.extend(page.items);
        match page.next {
            Some(next) if (items.len() as u64) < limit => after = Some(next),
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    let mut stdout = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&items).unwrap_or_default();
        return output(writeln!(stdout, "{text}"));
    }
    if items.is_empty() {
        return output(writeln!(stdout, "no suppression entries"));
    }
    let text = |v: &Value, field: &str| v[field].as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let tags: Vec<&str> = i["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            vec![
                text(i, "scope"),
                text(i, "address"),
                text(i, "list"),
                text(i, "reason"),
                clip(&tags.join(","), 30),
                text(i, "created_at"),
                i["expires_at"].as_str().unwrap_or("never").to_string(),
                clip(&text(i, "detail"), 60),
            ]
        })
        .collect();
    output(write_table(
        &mut stdout,
        &[
            "SCOPE", "ADDRESS", "LIST", "REASON", "TAGS", "CREATED", "EXPIRES", "DETAIL",
        ],
        &rows,
    ))?;
    if more {
        eprintln!(
            "(the first {limit} entries; raise --limit, or use `quell suppress export` for all)"
        );
    }
    Ok(())
}

/// Copies the server's CSV to stdout as it arrives.
async fn export(client: &Client, scope: Option<&str>) -> Result<(), CliError> {
    let path = "/api/suppressions/export";
    let mut request = client.request(Method::GET, path);
    if let Some(s) = scope {
        request = request.query(&[("scope", s)]);
    }
    let mut response = client.send(request).await?;
    let mut stdout = std::io::stdout().lock();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = stdout.write_all(&chunk) {
                    return output(Err(e));
                }
            }
            Ok(None) => break,
            Err(e) => return Err(client.body(path, &e).into()),
        }
    }
    output(stdout.flush())
}
