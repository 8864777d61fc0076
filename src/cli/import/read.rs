//! The reader thread of `quell suppress import`: parses the CSV as it streams in and hands rows
//! to the sender in batches through a bounded channel, so reading never runs ahead of the server
//! by more than a few batches and the file is never held whole.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::format::{detect, Format, Op, Rules};
use crate::cli::{ReasonArg, BATCH};

/// One data row, parsed: its row number and what it asks for, or why it cannot be used.
pub(super) struct Row {
    pub(super) number: u64,
    pub(super) op: Result<Op, String>,
}

/// What the reader thread hands over.
pub(super) enum Msg {
    Format(Format),
    Rows(Vec<Row>),
    /// The first row is no known format.
    Unknown(String),
    /// Reading the file failed.
    Failed(std::io::Error),
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The reader thread: parses `input` and sends rows in batches until the end, a read error, or
/// the receiver going away.
pub(super) fn read_rows(
    input: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
    scope: Option<String>,
    reason: Option<ReasonArg>,
    tx: mpsc::Sender<Msg>,
) {
    let counting = Counting { inner: input, read };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(256 * 1024, counting));
    let mut record = csv::StringRecord::new();
    let mut rules: Option<Rules> = None;
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    loop {
        let result = reader.read_record(&mut record);
        let number = match &result {
            Ok(_) => record.position(),
            Err(e) => e.position(),
        }
        // Counted in records, as a spreadsheet counts rows: csv's line count lags behind on
        // CRLF files, and a quoted cell may span lines.
        .map_or(0, |p| p.record() + 1);
        let op = match result {
            Ok(false) => break,
            Ok(true) => match &rules {
                Some(r) => r.convert(&record),
                None => {
                    let format = match detect(&record) {
                        Ok(f) => f,
                        Err(why) => {
                            let _ = tx.blocking_send(Msg::Unknown(why));
                            return;
                        }
                    };
                    if tx.blocking_send(Msg::Format(format.clone())).is_err() {
                        return;
                    }
                    let headerless = format == Format::Headerless;
                    let r = Rules {
                        format,
                        scope: scope.clone(),
                        reason,
                    };
                    let first = if headerless {
                        r.convert(&record)
                    } else {
                        Ok(None)
                    };
                    rules = Some(r);
                    first
                }
            },
            Err(e) if e.is_io_error() => {
                let io = match e.into_kind() {
                    csv::ErrorKind::Io(io) => io,
                    other => std::io::Error::other(format!("{other:?}")),
                };
                let _ = tx.blocking_send(Msg::Failed(io));
                return;
            }
            Err(e) => Err(csv_error(&e)),
        };
        match op {
            Ok(None) => continue,
            Ok(Some(op)) => batch.push(Row { number, op: Ok(op) }),
            Err(why) => batch.push(Row {
                number,
                op: Err(why),
            }),
        }
        if batch.len() == BATCH
            && tx
                .blocking_send(Msg::Rows(std::mem::take(&mut batch)))
                .is_err()
        {
            return;
        }
    }
    if rules.is_none() {
        let _ = tx.blocking_send(Msg::Unknown("the file is empty".into()));
        return;
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Msg::Rows(batch));
    }
}

/// A CSV syntax problem, without the position (the report gives the row).
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
        _ => e.to_string(),
    }
}
