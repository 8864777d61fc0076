//! The admin command line — `quell suppress …`, `quell queue …` and `quell forget …` — which manages a running
//! quell through its HTTP API ([`crate::http::admin`]) with the key and address from the same
//! config file (sled allows one process per store, so the CLI never opens it).
//!
//! | file | concept |
//! |---|---|
//! | [`client`] | the HTTP client built from the config: address, https trust, key, error wording |
//! | [`suppress`] | `quell suppress add/remove/list/export` |
//! | [`import`] | `quell suppress import`: streamed CSV, formats, batches, progress bar, report |
//! | [`queue`] | `quell queue list/retry/delete` |
//! | [`forget`] | `quell forget`: GDPR/CCPA erasure, followed to the end |
//!
//! This file holds what the commands share, so that dependencies between them point one way
//! (`suppress` calls [`import::run`]; `import` needs nothing from `suppress`): the error type,
//! loading the config into a client, the `--scope` and `--reason` values, the server's batch
//! size and table output.
//!
//! Every command reports one line per failure on stderr and returns a [`CliError`], whose
//! [`CliError::exit_code`] is the SPEC §1 code: 0 ok, 1 runtime failure (server unreachable, a
//! queue id not found), 2 bad config or usage (also a key the server refuses).

pub mod client;
pub mod forget;
pub mod import;
pub mod queue;
pub mod suppress;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::config::{self, ConfigError};
use client::{Client, ClientError};

/// Most entries the server takes per request (`/api/suppressions`): `quell suppress add`, `list`
/// and `import` send and ask for at most this many at a time.
const BATCH: usize = 1000;

/// Why a command failed; [`CliError::exit_code`] is its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}", .source.located(.path))]
    Config { path: PathBuf, source: ConfigError },
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The command line asks for something impossible (a malformed address, a missing file).
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// Some of several items failed; each was already reported on its own line.
    #[error("{0}")]
    Incomplete(String),
}

impl CliError {
    /// The exit code (SPEC §1).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config { .. } | CliError::Usage(_) => 2,
            CliError::Client(e) => e.exit_code(),
            CliError::Input { .. } | CliError::Output(_) | CliError::Incomplete(_) => 1,
        }
    }
}

/// Loads the config (`-c`, `$QUELL_CONFIG`, `config/quell.toml`, with `QUELL_*` overrides, as
/// `serve` does) and builds the client for the server it describes.
pub fn connect(config: Option<&Path>) -> Result<Client, CliError> {
    let path = config::resolve_path(config);
    let config = config::load(&path).map_err(|source| CliError::Config {
        path: path.clone(),
        source,
    })?;
    Ok(Client::from_config(&config)?)
}

/// Parses a `--scope` value (`global`, `domain:<d>`, `sender:<a>`) into its canonical key; the
/// server checks it again.
pub fn parse_scope(s: &str) -> Result<String, String> {
    let s = s.trim();
    let scope = match s.strip_prefix("sender:") {
        Some(sender) => crate::address::normalize(sender)
            .map(|a| format!("sender:{a}"))
            .map_err(|e| format!("sender {sender:?}: {e}"))?,
        None => crate::store::Scope::parse(s)
            .map(|scope| scope.key())
            .ok_or_else(|| {
                format!("{s:?} is not a scope: use global, domain:<domain> or sender:<address>")
            })?,
    };
    Ok(scope)
}

/// A suppression reason, as the API names it (`--reason` of `quell suppress add` and `import`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReasonArg {
    Unsub,
    HardBounce,
    SoftBounce,
    Spam,
    Custom,
}

impl ReasonArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonArg::Unsub => "unsub",
            ReasonArg::HardBounce => "hard-bounce",
            ReasonArg::SoftBounce => "soft-bounce",
            ReasonArg::Spam => "spam",
            ReasonArg::Custom => "custom",
        }
    }
}

/// Writes `rows` under `header` as left-aligned columns two spaces apart; the last column is
/// not padded.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Shortens `s` to `max` characters for a table cell, marking the cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Writing to stdout; a closed pipe (`quell suppress export | head`) is a normal end.
fn output(result: std::io::Result<()>) -> Result<(), CliError> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("global").unwrap(), "global");
        assert_eq!(parse_scope("domain:Mg.X.io").unwrap(), "domain:mg.x.io");
        assert_eq!(parse_scope("sender: App@X.io").unwrap(), "sender:app@x.io");
        for bad in ["", "all", "domain:", "sender:nope"] {
            assert!(parse_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_align() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["a".to_string(), "long cell".to_string(), "x".to_string()],
            vec!["bbb".to_string(), "c".to_string(), "".to_string()],
        ];
        write_table(&mut out, &["H1", "H2", "H3"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "H1   H2         H3\na    long cell  x\nbbb  c\n"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Incomplete("x".into()).exit_code(), 1);
        let refused = ClientError::Unauthorized {
            url: "http://127.0.0.1:8025".into(),
            disabled: false,
        };
        assert_eq!(CliError::Client(refused).exit_code(), 2);
        let down = ClientError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            down.to_string(),
            "cannot reach quell at http://127.0.0.1:1: connection refused — is it running?"
        );
        assert_eq!(CliError::Client(down).exit_code(), 1);
    }
}
