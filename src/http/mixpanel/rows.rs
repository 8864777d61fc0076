//! The import's rows: read from the CSV, checked, resolved to addresses, and written in atomic
//! batches of [`BATCH`] rows — two threads deep, so that the next batch is read and decided
//! while the previous one is written.
//!
//! A row is one line ([`super::lines`], [`super::fields`]): every line but blank ones and a
//! header is a row, numbered by its line, and counted once, as applied or as rejected with its
//! line and reason — a broken quote or an over-long line is that line's error and never takes
//! the next lines with it. An id that is an address is used as it is; any other id goes through
//! its profile (set by `/engage` with `$email`). A first row `distinct_id,unsubscribed` is
//! taken as a header and skipped, so a file exported with one works too.
//!
//! | thread | work |
//! |---|---|
//! | reader (the caller) | CSV parsing, row checks, profile lookups, [`Plan::into_writes`] |
//! | writer | [`Writes::apply`]: one atomic store write per batch |
//!
//! The reader prepares at most two batches ahead of the one being written (one waits in the
//! channel); what each write does is decided against the store when it is applied, so batches
//! see each other in order. A row counts as applied once its batch is written; the caller
//! syncs before it reports.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::mpsc;

use super::fields::split;
use super::lines::{Line, Lines, MAX_LINE};
use super::plan::{Plan, Writes};
use super::report::{Report, RowError, StopCause, Stopped};
use super::target::DistinctId;
use super::unsubscribed::Unsubscribed;
use super::upload::{body_error, BodyError};
use crate::store::{Store, StoreError};
use crate::suppression::Suppressions;

/// Rows per import (SPEC §6.3).
pub(super) const MAX_ROWS: u64 = 1_000_000;
/// Rows written per atomic batch.
pub(super) const BATCH: usize = 10_000;
/// Row errors listed in the report (all are counted).
pub(super) const MAX_ERRORS: usize = 1000;

/// A row read and checked, waiting for its batch.
struct Row {
    line: u64,
    id: DistinctId,
    value: Unsubscribed,
}

/// A batch handed to the writer (or, with nothing to write, only waiting for its turn): what
/// it adds to the report once it is written.
struct Pending {
    /// Its number, when it was sent to the writer.
    batch: Option<u64>,
    applied: u64,
    errors: Vec<RowError>,
    /// The line of its last row.
    through: u64,
}

/// Reads every row of `input` and applies them in batches. `now` (Unix seconds) is the
/// `created_at` of rows without a date. Stops only when the input cannot be read to its end or
/// the store fails.
pub(super) fn apply_csv(
    suppressions: &Suppressions,
    store: &Store,
    input: impl Read,
    now: i64,
) -> Result<Report, Stopped> {
    apply_csv_limited(suppressions, store, input, now, MAX_ROWS)
}

/// [`apply_csv`] with rows past `max_rows` rejected.
fn apply_csv_limited(
    suppressions: &Suppressions,
    store: &Store,
    input: impl Read,
    now: i64,
    max_rows: u64,
) -> Result<Report, Stopped> {
    // One batch may wait while another is written.
    let (to_writer, batches) = mpsc::sync_channel::<(u64, Writes)>(1);
    let (done, confirmations) = mpsc::channel::<Result<u64, StoreError>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (batch, writes) in batches {
                let result = writes.apply(suppressions, now).map(|_| batch);
                let failed = result.is_err();
                if done.send(result).is_err() || failed {
                    break;
                }
            }
        });
        let mut reader = Reader {
            store,
            now,
            max_rows,
            report: Report::default(),
            rows: Vec::with_capacity(BATCH),
            errors: Vec::new(),
            last_line: 0,
            next_batch: 0,
            to_writer: Some(to_writer),
            confirmations,
            awaiting: VecDeque::new(),
        };
        let read = reader.read_all(input);
        // Closing the channel lets the writer finish; then wait for every confirmation.
        reader.to_writer = None;
        let confirmed = reader.confirm(true);
        match read.and(confirmed) {
            Ok(()) => Ok(reader.report),
            Err(cause) => Err(Stopped {
                cause,
                report: reader.report,
            }),
        }
    })
}

/// The reading side of an import.
struct Reader<'a> {
    store: &'a Store,
    now: i64,
    max_rows: u64,
    report: Report,
    /// Good rows since the last batch.
    rows: Vec<Row>,
    /// Bad rows since the last batch (moved to the report in row order).
    errors: Vec<RowError>,
    /// The line of the last row read.
    last_line: u64,
    /// The number of the next batch sent to the writer (from 0).
    next_batch: u64,
    to_writer: Option<mpsc::SyncSender<(u64, Writes)>>,
    confirmations: mpsc::Receiver<Result<u64, StoreError>>,
    /// Batches decided and not yet written, in order.
    awaiting: VecDeque<Pending>,
}

impl Reader<'_> {
    fn read_all(&mut self, input: impl Read) -> Result<(), StopCause> {
        let mut lines = Lines::new(input);
        let mut first = true;
        loop {
            let (line, text) = match lines.next_line() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(io) => {
                    return Err(StopCause::Body(
                        body_error(&io).unwrap_or_else(|| BodyError::Read(io.to_string())),
                    ))
                }
            };
            let fields = match text {
                Line::Text(text) if text.trim_ascii().is_empty() => continue,
                Line::Text(text) => split(text).map_err(|e| e.to_string()),
                Line::TooLong(length) => Err(format!(
                    "the line is {length} bytes long; at most {MAX_LINE} are read per line"
                )),
            };
            if std::mem::take(&mut first) && fields.as_deref().is_ok_and(is_header) {
                continue;
            }
            self.report.rows += 1;
            self.last_line = line;
            match fields.and_then(|f| parse_row(&f, self.report.rows, self.max_rows)) {
                Ok((id, value)) => self.rows.push(Row { line, id, value }),
                Err(reason) => self.errors.push(RowError { row: line, reason }),
            }
            if self.rows.len() + self.errors.len() >= BATCH {
                self.send_batch()?;
            }
        }
        self.send_batch()
    }

    /// Resolves the pending rows, decides their batch and hands it to the writer; moves their
    /// errors to the report in row order.
    fn send_batch(&mut self) -> Result<(), StopCause> {
        self.confirm(false)?;
        if self.rows.is_empty() && self.errors.is_empty() {
            return Ok(());
        }
        let mut plan = Plan::default();
        let mut errors = std::mem::take(&mut self.errors);
        let mut applied = 0;
        for row in std::mem::take(&mut self.rows) {
            // Profile lookups only for ids that are not addresses.
            let address = match row.id.address {
                Some(address) => Some(address),
                None => self.store.profile_get(&row.id.id)?,
            };
            let Some(address) = address else {
                errors.push(RowError {
                    row: row.line,
                    reason: format!(
                        "unknown distinct_id {:?}: not an address, and no profile maps it to an $email",
                        row.id.id.chars().take(64).collect::<String>()
                    ),
                });
                continue;
            };
            match row.value {
                Unsubscribed::Yes { at } => plan.suppress(address, at, false),
                Unsubscribed::No => plan.resubscribe(address),
            }
            applied += 1;
        }
        errors.sort_by_key(|e| e.row);
        let mut pending = Pending {
            batch: None,
            applied,
            errors,
            through: self.last_line,
        };
        if applied == 0 {
            self.awaiting.push_back(pending);
            return self.confirm(false);
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let writes = plan.into_writes(self.now);
        pending.batch = Some(batch);
        self.awaiting.push_back(pending);
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|tx| tx.send((batch, writes)).is_ok());
        if !sent {
            // The writer stopped: its confirmation says why.
            self.confirm(true)?;
        }
        Ok(())
    }

    /// Takes the writer's confirmations (waiting for all of them with `wait`, once the channel
    /// to it is closed) and reports the batches they complete, in order: their rows count as
    /// applied or rejected, their decisions are in the store.
    fn confirm(&mut self, wait: bool) -> Result<(), StopCause> {
        loop {
            // Batches with nothing to write are done once those before them are.
            while self.awaiting.front().is_some_and(|p| p.batch.is_none()) {
                self.report_done();
            }
            let message = if wait {
                match self.confirmations.recv() {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                }
            } else {
                match self.confirmations.try_recv() {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                }
            };
            let batch = message?;
            while self
                .awaiting
                .front()
                .is_some_and(|p| p.batch.is_none_or(|b| b <= batch))
            {
                self.report_done();
            }
        }
    }

    /// Moves the first awaiting batch into the report.
    fn report_done(&mut self) {
        let Some(done) = self.awaiting.pop_front() else {
            return;
        };
        self.report.applied += done.applied;
        self.report.rejected += done.errors.len() as u64;
        self.report.through_line = done.through;
        let room = MAX_ERRORS.saturating_sub(self.report.errors.len());
        self.report
            .errors
            .extend(done.errors.into_iter().take(room));
    }
}

/// A first row that names the two columns.
fn is_header(record: &[Vec<u8>]) -> bool {
    let name = |i: usize, want: &str| {
        record.get(i).is_some_and(|f| {
            let f = f.trim_ascii();
            f.eq_ignore_ascii_case(want.as_bytes())
                || f.strip_prefix(b"$")
                    .is_some_and(|f| f.eq_ignore_ascii_case(want.as_bytes()))
        })
    };
    record.len() == 2 && name(0, "distinct_id") && name(1, "unsubscribed")
}

/// Checks one row (`number` counts data rows from 1); the reason when it is bad.
fn parse_row(
    record: &[Vec<u8>],
    number: u64,
    max_rows: u64,
) -> Result<(DistinctId, Unsubscribed), String> {
    if number > max_rows {
        return Err(format!("over the limit of {max_rows} rows per import"));
    }
    if record.len() != 2 {
        return Err(format!(
            "expected 2 columns (distinct_id,unsubscribed), found {}",
            record.len()
        ));
    }
    let text = |i: usize, what: &str| {
        std::str::from_utf8(&record[i]).map_err(|_| format!("{what} is not valid UTF-8"))
    };
    let id = DistinctId::parse(text(0, "distinct_id")?)
        .map_err(|e| e.to_string().replace("$distinct_id", "distinct_id"))?;
    let value = Unsubscribed::from_text(text(1, "unsubscribed")?).map_err(|e| e.to_string())?;
    Ok((id, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{List, Reason, Scope, Suppression, SuppressionKey};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    fn apply_csv(s: &Store, input: impl Read, now: i64) -> Result<Report, Stopped> {
        super::apply_csv(&Suppressions::new(s.clone()), s, input, now)
    }

    fn key(a: &str, list: List) -> SuppressionKey {
        SuppressionKey::new(Scope::Global, a, list)
    }

    fn get(s: &Store, a: &str) -> Option<Suppression> {
        s.suppression_get(&key(a, List::Unsubscribes)).unwrap()
    }

    #[test]
    fn good_rows_apply_and_bad_rows_are_reported_by_line() {
        let (_d, s) = store();
        s.profile_put("u-1", "profiled@x.io").unwrap();
        s.suppression_put(
            &key("back@x.io", List::Unsubscribes),
            &Suppression::new(Reason::Unsub, 1),
        )
        .unwrap();
        let csv = "\u{feff}distinct_id,unsubscribed\n\
                   a@x.io,true\n\
                   u-1,2024-05-01\n\
                   \n\
                   nobody,true\n\
                   back@x.io,FALSE\n\
                   b@x.io,\n\
                   c@x.io,true,extra\n\
                   \"d@x.io\",\"2024-05-01T10:00:00Z\"\n\
                   e@x.io,2024-99-99\n";
        let r = apply_csv(&s, csv.as_bytes(), 50).unwrap();
        assert_eq!((r.rows, r.applied, r.rejected), (8, 4, 4));
        let rows: Vec<u64> = r.errors.iter().map(|e| e.row).collect();
        assert_eq!(rows, [5, 7, 8, 10]);
        assert!(
            r.errors[0]
                .reason
                .starts_with("unknown distinct_id \"nobody\""),
            "{:?}",
            r.errors
        );
        assert!(r.errors[1].reason.contains("empty"), "{:?}", r.errors[1]);
        assert!(r.errors[2].reason.contains("found 3"), "{:?}", r.errors[2]);
        assert!(
            r.errors[3].reason.contains("not a valid"),
            "{:?}",
            r.errors[3]
        );
        assert_eq!(get(&s, "a@x.io").map(|e| e.created_at), Some(50));
        assert_eq!(
            get(&s, "profiled@x.io").map(|e| e.created_at),
            Some(1_714_521_600)
        );
        assert_eq!(get(&s, "d@x.io").map(|e| e.created_at), Some(1_714_557_600));
        assert!(get(&s, "back@x.io").is_none(), "false re-subscribes");
        assert!(get(&s, "nobody").is_none() && get(&s, "c@x.io").is_none());
    }

    #[test]
    fn row_numbers_are_lines_with_any_line_ends() {
        let (_d, s) = store();
        for csv in [
            "a@x.io,true\n\nbad\n\"multi\nline\",true\nlast,yes",
            "a@x.io,true\r\n\r\nbad\r\n\"multi\r\nline\",true\r\nlast,yes\r\n",
            "a@x.io,true\r\rbad\r\"multi\rline\",true\rlast,yes\r",
        ] {
            let r = apply_csv(&s, csv.as_bytes(), 0).unwrap();
            let rows: Vec<u64> = r.errors.iter().map(|e| e.row).collect();
            // A quoted field never spans lines: line 4 opens a quote it does not close, line 5
            // has a stray one; each is its own rejected row.
            assert_eq!(rows, [3, 4, 5, 6], "{csv:?}: {:?}", r.errors);
            assert_eq!((r.rows, r.applied, r.rejected), (5, 1, 4));
        }
    }

    #[test]
    fn batches_error_cap_and_row_limit() {
        let (_d, s) = store();
        let mut csv = String::new();
        for i in 0..(BATCH + 1500) {
            if i % 5 == 0 {
                csv.push_str(&format!("id{i},true\n")); // unknown id
            } else {
                csv.push_str(&format!("user{i}@x.io,true\n"));
            }
        }
        let r = apply_csv_limited(
            &Suppressions::new(s.clone()),
            &s,
            csv.as_bytes(),
            0,
            BATCH as u64 + 1000,
        )
        .unwrap();
        assert_eq!(r.rows, BATCH as u64 + 1500);
        // Unknown ids among the first BATCH + 1000 rows, then every row past the limit.
        assert_eq!(r.rejected, (BATCH as u64 + 1000) / 5 + 500);
        assert_eq!(r.applied, r.rows - r.rejected);
        assert_eq!(r.errors.len(), MAX_ERRORS);
        assert!(r.errors.windows(2).all(|w| w[0].row < w[1].row));
        assert_eq!(r.errors[0].row, 1);
        assert!(get(&s, &format!("user{}@x.io", BATCH + 999)).is_some());
        assert!(
            get(&s, &format!("user{}@x.io", BATCH + 1001)).is_none(),
            "past the limit"
        );
    }

    #[test]
    fn an_upload_cut_short_keeps_the_batches_written_before() {
        let (_d, s) = store();
        let mut csv = String::new();
        for i in 0..(BATCH + 10) {
            csv.push_str(&format!("user{i}@x.io,true\n"));
        }
        struct Cut<'a>(&'a [u8]);
        impl Read for Cut<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other(BodyError::TooLarge));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let stopped = apply_csv(&s, Cut(csv.as_bytes()), 0).unwrap_err();
        assert!(matches!(
            stopped.cause,
            StopCause::Body(BodyError::TooLarge)
        ));
        assert_eq!(stopped.report.applied, BATCH as u64);
        assert!(get(&s, "user0@x.io").is_some());
        assert!(
            get(&s, &format!("user{}@x.io", BATCH + 5)).is_none(),
            "last batch not applied"
        );
    }
}
