//! SMTP input parsing speed: the sans-IO codec (`src/smtp/codec.rs`) and the session state
//! machine (`src/smtp/session.rs`), in memory, no sockets.
//!
//! - `line_reader/{1,100}_rcpt`: `LineReader::next_line` over one pipelined transaction,
//!   `EHLO`, `MAIL FROM`, N × `RCPT TO`, `DATA`, all in the buffer at once (RFC 2920), split
//!   into lines until it is empty. Throughput is the stream's bytes.
//! - `data_decoder/{4kib,1mib}`: `DataDecoder` over a message body fed in one buffer, ending
//!   `CRLF . CRLF`: text lines of 60–78 characters, every 10th starting with a dot (so stuffed
//!   on the wire; not after a bare LF) and every 7th ending in a bare LF (normalised to CRLF). `1mib_clean` is the
//!   same size with neither, all CRLF. Throughput is the wire bytes, terminator included; the
//!   decoder is built per message (`DataDecoder::new` with the default 25 MiB limit, so a
//!   64 KiB buffer), as the connection does, and its content dropped.
//! - `session/{1,100}_rcpt`: what `connection::drive` does with that command stream minus the
//!   I/O: a new `Session` (relay allowed by `relay_networks`, as for 127.0.0.1), lines from
//!   `LineReader`, `Session::command`, `Reply::write_to`. It stops at the `354` for DATA: the
//!   end of DATA enqueues durably (a store flush) and is not parsing. The store is empty, so
//!   every RCPT is the suppression lookup's common case, a miss answered by the in-memory
//!   index (`cargo bench --bench lookup` measures hits). Throughput is commands.
//!
//! `Session::command` is `async` only for AUTH; these commands never wait, so each future is
//! polled once with a no-op waker (and must be ready).
//!
//! The binary counts heap allocations (a wrapper around the system allocator, counting only
//! while the count is taken, so the timed code pays one relaxed load per allocation) and
//! prints allocations per unit before timing.
//!
//! Run: `cargo bench --bench session`. Figures depend on the machine and its load.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use quell::config::Config;
use quell::queue::Scheduler;
use quell::smtp::codec::{DataDecoder, LineReader};
use quell::smtp::session::{Next, Session};
use quell::state::AppState;
use quell::store::Store;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Counting is on only inside [`allocations`], so the timed code pays a load, not an atomic add.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn note_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (reallocations included) made by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

/// One pipelined transaction up to DATA, and its number of lines.
fn commands(recipients: usize) -> (Vec<u8>, u64) {
    let mut s =
        String::from("EHLO client.example.org\r\nMAIL FROM:<news@shop.example> SIZE=4096\r\n");
    for i in 0..recipients {
        s.push_str(&format!("RCPT TO:<user{i}@rcpt{}.example>\r\n", i % 97));
    }
    s.push_str("DATA\r\n");
    (s.into_bytes(), recipients as u64 + 3)
}

/// A message on the wire (dot-stuffed, `CRLF . CRLF` at the end) of about `size` bytes, and
/// the length of its content once decoded. `odd` adds stuffed dots and bare LFs.
fn wire_message(size: usize, odd: bool) -> (Vec<u8>, usize) {
    let mut wire = b"From: News <news@shop.example>\r\nTo: reader@example.org\r\n\
        Subject: Weekly\r\nMessage-ID: <1@shop.example>\r\n\r\n"
        .to_vec();
    let mut content = wire.len();
    let mut n = 0;
    // After a bare LF the decoder is mid-line (a bare LF starts no line for unstuffing), so a
    // stuffed line never follows one here.
    let mut after_bare_lf = false;
    while wire.len() < size.saturating_sub(100) {
        n += 1;
        let width = 60 + n % 19;
        let mut line: Vec<u8> = format!("line {n} of the weekly letter, with some words ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(width)
            .collect();
        if odd && n % 10 == 0 && !after_bare_lf {
            line.insert(0, b'.');
            content += line.len();
            line.insert(0, b'.');
        } else {
            content += line.len();
        }
        after_bare_lf = odd && n % 7 == 0;
        if after_bare_lf {
            line.push(b'\n');
        } else {
            line.extend_from_slice(b"\r\n");
        }
        content += 2;
        wire.extend_from_slice(&line);
    }
    // A last CRLF line, so the terminator follows a CRLF even after a bare LF.
    wire.extend_from_slice(b"--\r\n.\r\n");
    (wire, content + 4)
}

/// Polls a future that must not wait.
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a command waited"),
    }
}

fn split_all(stream: &mut BytesMut) -> usize {
    let mut reader = LineReader::default();
    let mut n = 0;
    while let Some(line) = reader.next_line(stream) {
        black_box(line.expect("benchmark lines are short"));
        n += 1;
    }
    n
}

fn decode(wire: &mut BytesMut, max: usize) -> Vec<u8> {
    let mut decoder = DataDecoder::new(max);
    assert!(decoder.feed(wire), "the message ends");
    decoder
        .finish()
        .expect("benchmark message is within the limit")
}

/// Drives one session through the stream; returns the reply bytes.
fn transaction(state: &AppState, peer: SocketAddr, stream: &mut BytesMut) -> Vec<u8> {
    let mut session = Session::new(state.clone(), peer, false);
    let mut reader = LineReader::default();
    let mut out = Vec::with_capacity(1024);
    session.greeting().write_to(&mut out);
    while let Some(line) = reader.next_line(stream) {
        let line = line.expect("benchmark lines are short");
        let (reply, next) = ready(session.command(&line));
        reply.write_to(&mut out);
        match next {
            Next::Command => {}
            Next::Data => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let max = Config::default().smtp.max_message_size;

    let mut group = c.benchmark_group("line_reader");
    for rcpts in [1, 100] {
        let (stream, lines) = commands(rcpts);
        let (n, allocs) = allocations(|| split_all(&mut BytesMut::from(&stream[..])));
        assert_eq!(n as u64, lines);
        println!(
            "line_reader/{rcpts}_rcpt: {} bytes, {lines} lines, {allocs} allocations \
             (the input buffer's copy included)",
            stream.len()
        );
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(format!("{rcpts}_rcpt"), |b| {
            b.iter_batched(
                || BytesMut::from(&stream[..]),
                |mut s| split_all(&mut s),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("data_decoder");
    for (name, size, odd) in [
        ("4kib", 4 << 10, true),
        ("1mib", 1 << 20, true),
        ("1mib_clean", 1 << 20, false),
    ] {
        let (wire, content) = wire_message(size, odd);
        let (out, allocs) = allocations(|| decode(&mut BytesMut::from(&wire[..]), max));
        assert_eq!(out.len(), content, "{name}: decoded length");
        assert!(
            !out.windows(4).any(|w| w == b"\r\n.."),
            "{name}: no stuffed dot is left"
        );
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            out.windows(2).filter(|w| w == b"\r\n").count(),
            "{name}: every LF is a CRLF"
        );
        println!(
            "data_decoder/{name}: {} wire bytes, {content} decoded, {allocs} allocations \
             (the input buffer's copy included)",
            wire.len()
        );
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                // The content is dropped inside the timing, as the session drops it once it
                // is stored: kept alive for a whole batch, the 64 KiB buffers would make
                // every 4 KiB message pay for fresh pages.
                |mut w| decode(&mut w, max).len(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.storage.path = dir.path().join("data");
    let store = Store::open(&config.storage.path).expect("open store");
    let state = AppState::new(config, store, Scheduler::channel().0);
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("an address");

    let mut group = c.benchmark_group("session");
    for rcpts in [1, 100] {
        let (stream, lines) = commands(rcpts);
        let (out, allocs) =
            allocations(|| transaction(&state, peer, &mut BytesMut::from(&stream[..])));
        let text = String::from_utf8(out).expect("replies are ASCII");
        assert_eq!(text.matches("250 2.1.5").count(), rcpts, "{text}");
        assert!(
            text.lines().last().is_some_and(|l| l.starts_with("354 ")),
            "{text}"
        );
        println!(
            "session/{rcpts}_rcpt: {lines} commands, {allocs} allocations, {:.1} per command \
             (the input buffer's copy included)",
            allocs as f64 / lines as f64
        );
        group.throughput(Throughput::Elements(lines));
        group.bench_function(format!("{rcpts}_rcpt"), |b| {
            b.iter_batched(
                || BytesMut::from(&stream[..]),
                |mut s| transaction(&state, peer, &mut s).len(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 2 s per function: the slowest (a 1 MiB message) still gets a few thousand runs, and the
    // whole file stays well under a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
