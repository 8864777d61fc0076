//! `quell suppress import FILE|-`: a CSV file streamed (never read whole) into the running
//! quell, in batches of 1000 (the API's limit) through `POST /api/suppressions` (and `DELETE` for
//! re-subscribes), with a progress bar on stderr and a final report on stdout. A bad row is
//! reported by its row number (as a spreadsheet counts rows: the header is row 1; blank lines
//! do not count) and skipped; it never
//! stops the good ones. Operations on the same address reach the server in file order.
//!
//! | file | concern |
//! |---|---|
//! | [`format`] | the formats (Mailgun with a header, headerless `distinct_id,unsubscribed`, quell's export), rows into operations |
//! | [`read`] | the reader thread: the CSV parsed as it streams, rows handed over in batches |
//! | [`send`] | batches to the server; rows it refuses are reported, the rest sent again |
//!
//! This file runs the import and keeps its progress bar and report.

mod format;
mod read;
mod send;

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use super::client::Client;
use super::{output, CliError, ReasonArg};
use format::{Format, Op};
use read::Msg;
use send::{Kind, Pending};

/// Rejected rows listed in the report; the rest are counted.
const SHOWN_REJECTS: usize = 20;
/// Parsed batches the reader may have ready ahead of the sender.
const READ_AHEAD: usize = 4;

/// What the import did, for the final report.
#[derive(Debug, Default)]
struct Report {
    added: usize,
    resubscribed: usize,
    /// Entries the re-subscribes removed (a row with nothing to remove changes nothing).
    removed: usize,
    rejected: usize,
    /// The first [`SHOWN_REJECTS`] rejected rows.
    shown: Vec<(u64, String)>,
}

impl Report {
    fn reject(&mut self, row: u64, why: String) {
        self.rejected += 1;
        if self.shown.len() < SHOWN_REJECTS {
            self.shown.push((row, why));
        }
    }

    fn summary(&self) -> String {
        let applied = self.added + self.resubscribed;
        let rows = if applied == 1 { "row" } else { "rows" };
        format!(
            "{applied} {rows} applied ({} added, {} re-subscribed), {} rejected",
            self.added, self.resubscribed, self.rejected
        )
    }

    fn write(
        &self,
        out: &mut impl Write,
        source: &str,
        format: &str,
        scope: &str,
    ) -> std::io::Result<()> {
        writeln!(
            out,
            "imported {source} ({format}, scope {scope}): {}",
            self.summary()
        )?;
        if self.resubscribed > 0 {
            // A re-subscribe removes at most the address's one `unsub` entry in the scope.
            let none = self.resubscribed.saturating_sub(self.removed);
            let entries = if self.removed == 1 {
                "entry"
            } else {
                "entries"
            };
            write!(
                out,
                "  re-subscribes removed {} unsub {entries}",
                self.removed
            )?;
            match none {
                0 => writeln!(out)?,
                1 => writeln!(out, "; 1 row had none to remove")?,
                n => writeln!(out, "; {n} rows had none to remove")?,
            }
        }
        for (row, why) in &self.shown {
            writeln!(out, "  row {row}: {why}")?;
        }
        if self.rejected > self.shown.len() {
            writeln!(
                out,
                "  … and {} more rejected rows",
                self.rejected - self.shown.len()
            )?;
        }
        Ok(())
    }
}

/// The progress bar: bytes of a file against its size, or a spinner for stdin. Hidden when
/// stderr is not a terminal (a pipe or a log must not fill with redraws).
fn progress(total: Option<u64>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = match total {
        Some(_) => "{spinner} {elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {msg}",
        None => "{spinner} {elapsed_precise} {bytes} read {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(total, target).with_style(style)
}

/// Runs `quell suppress import FILE|- [--scope S] [--reason R]`.
pub async fn run(
    client: &Client,
    file: &str,
    scope: Option<String>,
    reason: Option<ReasonArg>,
) -> Result<(), CliError> {
    let (input, total, source): (Box<dyn Read + Send>, Option<u64>, String) = if file == "-" {
        (Box::new(std::io::stdin()), None, "stdin".to_string())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| CliError::Usage(format!("cannot open {file}: {e}")))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len, file.to_string())
    };
    // Fail fast (unreachable, key refused) before reading what may be a large file.
    client
        .send(
            client
                .request(reqwest::Method::GET, "/api/suppressions")
                .query(&[("limit", "1")]),
        )
        .await?;
    let read = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let reader = {
        let read = read.clone();
        let scope = scope.clone();
        std::thread::spawn(move || read::read_rows(input, read, scope, reason, tx))
    };
    let bar = progress(total);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut report = Report::default();
    let mut format = None;
    let mut adds = Pending::default();
    let mut removes = Pending::default();
    let result: Result<(), CliError> = async {
        while let Some(msg) = rx.recv().await {
            let rows = match msg {
                Msg::Format(f) => {
                    format = Some(f);
                    continue;
                }
                Msg::Rows(rows) => rows,
                Msg::Unknown(why) => return Err(CliError::Usage(format!("{source}: {why}"))),
                Msg::Failed(e) => {
                    return Err(CliError::Input {
                        path: source.clone(),
                        source: e,
                    })
                }
            };
            for row in rows {
                let op = match row.op {
                    Ok(op) => op,
                    Err(why) => {
                        report.reject(row.number, why);
                        continue;
                    }
                };
                let key = op.key();
                match op {
                    Op::Add(item) => {
                        if removes.keys.contains(&key) {
                            send::send(client, Kind::Resubscribe, &mut removes, &mut report)
                                .await?;
                        }
                        adds.push(row.number, key, item);
                        if adds.is_full() {
                            send::send(client, Kind::Add, &mut adds, &mut report).await?;
                        }
                    }
                    Op::Resubscribe(item) => {
                        if adds.keys.contains(&key) {
                            send::send(client, Kind::Add, &mut adds, &mut report).await?;
                        }
                        removes.push(row.number, key, item);
                        if removes.is_full() {
                            send::send(client, Kind::Resubscribe, &mut removes, &mut report)
                                .await?;
                        }
                    }
                }
            }
            bar.set_position(read.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} applied, {} rejected",
                report.added + report.resubscribed,
                report.rejected
            ));
        }
        send::send(client, Kind::Add, &mut adds, &mut report).await?;
        send::send(client, Kind::Resubscribe, &mut removes, &mut report).await?;
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    // On an early return the receiver is gone, so the reader stops at its next send.
    // The reader has finished after a complete run. After a failure it may be blocked reading
    // stdin; it is left to end with the process (it stops at its next send: the receiver is
    // gone).
    drop(rx);
    if result.is_ok() {
        let _ = reader.join();
    }
    let scope = match (&scope, &format) {
        (Some(s), _) => s.clone(),
        (None, Some(Format::Export { .. })) => "as in the file".to_string(),
        (None, _) => "global".to_string(),
    };
    let format = format.as_ref().map(Format::describe).unwrap_or("CSV");
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = result {
        if report.added + report.resubscribed + report.rejected > 0 {
            // What was applied before the failure stays applied; say how far it got.
            let _ = writeln!(stdout, "import of {source} stopped: {}", report.summary());
        }
        return Err(e);
    }
    output(report.write(&mut stdout, &source, format, &scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_the_first_rejects() {
        let mut r = Report {
            added: 3,
            ..Report::default()
        };
        for n in 0..25 {
            r.reject(n + 2, format!("bad {n}"));
        }
        let mut out = Vec::new();
        r.write(&mut out, "f.csv", "Mailgun unsubscribes CSV", "global")
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "imported f.csv (Mailgun unsubscribes CSV, scope global): 3 rows applied (3 added, 0 re-subscribed), 25 rejected\n"
        ), "{text}");
        assert!(text.contains("  row 2: bad 0\n"));
        assert!(text.contains("  row 21: bad 19\n"));
        assert!(!text.contains("bad 20"));
        assert!(text.ends_with("  … and 5 more rejected rows\n"));
    }
}
