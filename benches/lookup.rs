//! Suppression lookup at 1,000,000 entries (SPEC §7: p99 < 20 µs).
//!
//! Fills a temporary sled store with `QUELL_BENCH_N` (default 1,000,000) suppression entries in
//! batches of 1000 (`Store::suppression_put_many`, as the Mailgun API writes them), with mixed
//! scopes: 45 % `domain:<d>` over 20 sender domains, 45 % `global`, 10 % `sender:<a>` over 200
//! senders. Then times individual `Policy::check(sender, rcpt, None)` calls — the RCPT-time
//! lookup — with `std::time::Instant`: a warm-up, then `QUELL_BENCH_LOOKUPS` (default 200,000)
//! random hits and as many random misses, interleaved. Prints p50/p90/p99/p99.9/max per class.
//!
//! A hit's sender is chosen so that the entry applies (any sender for `global`, one at the
//! domain for `domain:`, the very sender for `sender:`). A miss is a recipient with no entry,
//! from a sender with a domain and an address: since the store's in-memory address index
//! (0b0c730) it is answered without sled; before, it paid for every probe (allowlist,
//! `global`, `domain:`, `sender:`).
//!
//! With `QUELL_BENCH_READS_PER_LOOKUP=1` it also reads `/proc/self/io` around every timed hit
//! (outside the timed region) and prints the hits' percentiles by how many read syscalls each
//! made: whether the slow ones are those that read sled pages back from the file.
//!
//! `QUELL_BENCH_CACHE_SIZE` (bytes, default `quell::store::DEFAULT_CACHE_SIZE`, 64 MiB) is sled's
//! page cache, opened through `Store::open_with` as quell does with `storage.cache_size`.
//!
//! Run: `cargo bench --bench lookup` (release profile). Figures depend on the machine and on
//! what else runs on it; at 1M entries the store is bigger than the default 64 MiB cache, so
//! some lookups read pages back from the OS page cache, as in production.

use std::time::{Duration, Instant};

use quell::config::Config;
use quell::policy::{Policy, Verdict};
use quell::store::{Reason, Scope, Store, Suppression, SuppressionKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DOMAINS: usize = 20;
const SENDERS: usize = 200;
const BATCH: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where entry `i` lives: its scope and the sender a hit on it must use.
fn scope_of(i: usize) -> (Scope, String) {
    match i % 20 {
        // 9/20 = 45 % domain
        0..=8 => {
            let d = format!("d{}.example", i % DOMAINS);
            (Scope::Domain(d.clone()), format!("news@{d}"))
        }
        // 2/20 = 10 % sender
        9 | 10 => {
            let s = format!("app{}@s{}.example", i % SENDERS, i % DOMAINS);
            (Scope::Sender(s.clone()), s)
        }
        // 9/20 = 45 % global
        _ => (Scope::Global, format!("news@d{}.example", i % DOMAINS)),
    }
}

fn rcpt_of(i: usize) -> String {
    format!("user{i}@rcpt{}.example", i % 97)
}

fn reason_of(i: usize) -> Reason {
    match i % 4 {
        0 => Reason::HardBounce,
        1 => Reason::Spam,
        _ => Reason::Unsub,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_nanos() as f64 / 1000.0)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// (read syscalls, bytes read) of this process so far, from /proc/self/io.
fn io_reads() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("syscr:"), field("rchar:"))
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            total += if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            };
        }
    }
    total
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        samples.len(),
        us(mean),
        us(percentile(&samples, 50.0)),
        us(percentile(&samples, 90.0)),
        us(percentile(&samples, 99.0)),
        us(percentile(&samples, 99.9)),
        us(*samples.last().unwrap()),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments (no filtering here).
    let n = env_usize("QUELL_BENCH_N", 1_000_000);
    let lookups = env_usize("QUELL_BENCH_LOOKUPS", 200_000);
    let warmup = env_usize("QUELL_BENCH_WARMUP", 50_000);
    let reads_per_lookup = env_usize("QUELL_BENCH_READS_PER_LOOKUP", 0) == 1;
    let cache_size = std::env::var("QUELL_BENCH_CACHE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(quell::store::DEFAULT_CACHE_SIZE);

    let dir = tempfile::Builder::new()
        .prefix("quell-lookup-bench")
        .tempdir()
        .expect("tempdir");
    let store = Store::open_with(&dir.path().join("db"), cache_size).expect("open store");
    let policy = Policy::new(store.clone(), Config::default().suppression);

    // ---- fill
    let t0 = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        let (scope, _) = scope_of(i);
        let reason = reason_of(i);
        batch.push((
            SuppressionKey::new(scope, rcpt_of(i), reason.list()),
            Suppression::new(reason, 1_700_000_000),
        ));
        if batch.len() == BATCH || i + 1 == n {
            store.suppression_put_many(&batch).expect("put_many");
            batch.clear();
        }
    }
    let insert = t0.elapsed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t1 = Instant::now();
    rt.block_on(store.flush()).expect("flush");
    let flush = t1.elapsed();
    assert_eq!(store.suppression_count(), n);

    println!("## quell suppression lookup bench");
    println!();
    println!(
        "entries: {n} (45 % domain:, 45 % global, 10 % sender:), batches of {BATCH} via Store::suppression_put_many"
    );
    println!(
        "sled cache (Store::open_with, QUELL_BENCH_CACHE_SIZE): {cache_size} bytes ({:.0} MiB)",
        cache_size as f64 / 1048576.0
    );
    println!(
        "insert: {:.2} s ({:.0} entries/s), then flush: {:.2} s; on disk: {:.0} MiB; RSS after fill: {} MiB",
        insert.as_secs_f64(),
        n as f64 / insert.as_secs_f64(),
        flush.as_secs_f64(),
        dir_size(dir.path()) as f64 / 1048576.0,
        rss_kib().map(|k| (k / 1024).to_string()).unwrap_or_else(|| "?".into()),
    );

    // ---- lookups
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let hit = |rng: &mut StdRng| {
        let i = rng.random_range(0..n);
        (scope_of(i).1, rcpt_of(i))
    };
    // Never inserted: index beyond n, same shape. The sender has a domain and an address,
    // so every scope is probed.
    let miss = |rng: &mut StdRng| {
        let i = n + rng.random_range(0..n);
        (
            format!("app{}@s{}.example", i % SENDERS, i % DOMAINS),
            rcpt_of(i),
        )
    };

    for k in 0..warmup {
        let (s, r) = if k % 2 == 0 {
            hit(&mut rng)
        } else {
            miss(&mut rng)
        };
        std::hint::black_box(policy.check(&s, &r, None).expect("check"));
    }

    let mut hits = Vec::with_capacity(lookups);
    let mut misses = Vec::with_capacity(lookups);
    // Hits by read syscalls made during the lookup (0, 1, 2, 3 or more).
    let mut hits_by_reads: [Vec<Duration>; 4] = Default::default();
    // Read syscalls and bytes that reading /proc/self/io itself counts.
    let io_overhead = {
        let r0 = io_reads();
        let r1 = io_reads();
        (r1.0 - r0.0, r1.1 - r0.1)
    };
    let io0 = io_reads();
    let t2 = Instant::now();
    for _ in 0..lookups {
        for is_hit in [true, false] {
            // Inputs are built outside the timed region.
            let (s, r) = if is_hit {
                hit(&mut rng)
            } else {
                miss(&mut rng)
            };
            let before = (reads_per_lookup && is_hit).then(io_reads);
            let t = Instant::now();
            let v = policy.check(&s, &r, None).expect("check");
            let d = t.elapsed();
            if let Some((r0, _)) = before {
                let reads = (io_reads().0 - r0).saturating_sub(io_overhead.0);
                hits_by_reads[(reads as usize).min(3)].push(d);
            }
            match (is_hit, &v) {
                (true, Verdict::Suppressed { .. }) => hits.push(d),
                (false, Verdict::Allow) => misses.push(d),
                _ => panic!("wrong verdict for {s} -> {r} (expected hit={is_hit}): {v:?}"),
            }
        }
    }
    let wall = t2.elapsed();
    let mut io1 = io_reads();
    if reads_per_lookup {
        // Not sled's: the two reads of /proc/self/io around every hit.
        io1.0 -= 2 * io_overhead.0 * hits.len() as u64;
        io1.1 -= 2 * io_overhead.1 * hits.len() as u64;
    }
    let mut all = hits.clone();
    all.extend_from_slice(&misses);

    println!(
        "lookups: {} hits + {} misses after {warmup} warm-up, {:.2} s wall; RSS after lookups: {} MiB",
        hits.len(),
        misses.len(),
        wall.as_secs_f64(),
        rss_kib().map(|k| (k / 1024).to_string()).unwrap_or_else(|| "?".into()),
    );
    // A lookup whose tree node is not in sled's page cache (cache_size) reads it back from the
    // log file (pread, OS page cache) and deserialises it.
    println!(
        "read syscalls during the timed lookups: {} ({:.2} per 100 lookups), {:.0} MiB read",
        io1.0 - io0.0,
        100.0 * (io1.0 - io0.0) as f64 / (2 * lookups) as f64,
        (io1.1 - io0.1) as f64 / 1048576.0,
    );
    println!();
    println!("| Policy::check (RCPT time) | n | mean µs | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    report("hit (suppressed)", hits);
    report("miss (allowed: recipient without entry)", misses);
    let mut sorted = all;
    sorted.sort_unstable();
    let p99 = percentile(&sorted, 99.0);
    report("all", sorted);
    if reads_per_lookup {
        println!();
        println!("(/proc/self/io read before and after every hit, outside the timed region)");
        println!();
        println!("| hits by read syscalls | n | mean µs | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (reads, samples) in hits_by_reads.into_iter().enumerate() {
            if !samples.is_empty() {
                let name = if reads == 3 {
                    "3 or more".to_string()
                } else {
                    reads.to_string()
                };
                report(&name, samples);
            }
        }
    }
    println!();
    println!(
        "target p99 < 20 µs: {} (p99 of all = {} µs)",
        if p99 < Duration::from_micros(20) {
            "MET"
        } else {
            "NOT MET"
        },
        us(p99)
    );
}
