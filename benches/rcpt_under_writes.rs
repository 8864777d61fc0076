//! RCPT checks while large suppression writes run (issue 9; SPEC §7: lookup p99 < 20 µs, "also
//! while a 1M-row import runs").
//!
//! Fills a temporary store with `QUELL_BENCH_CLEAR_N` (default 200,000) entries in one
//! `domain:` scope and 100,000 `global` entries, then times `Policy::check(sender, rcpt, None)`
//! — the RCPT-time decision, half of them hits on `global` entries, half misses — from one
//! thread, in three phases:
//!
//! 1. at rest (`QUELL_BENCH_LOOKUPS`, default 200,000 checks);
//! 2. while another thread imports `QUELL_BENCH_IMPORT_N` (default 1,000,000) rows through the
//!    suppression core in batches of 10,000, as `/engage/import` does (Mixpanel's rule, atomic
//!    per batch, no sync: the import syncs once at its end);
//! 3. while another thread clears the whole `domain:` scope, as `DELETE /v3/{domain}/…` does.
//!
//! Prints p50/p99/p99.9/max per phase and how long each write took. Run:
//! `cargo bench --bench rcpt_under_writes`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quell::config::Config;
use quell::policy::Policy;
use quell::store::{List, Reason, Scope, Store, Suppression, SuppressionKey};
use quell::suppression::{Op, Rule, Suppressions};

const BATCH: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn report(phase: &str, mut samples: Vec<Duration>, write: Option<Duration>) {
    samples.sort();
    let write = write.map_or(String::new(), |w| {
        format!("  (write took {:.2} s)", w.as_secs_f64())
    });
    println!(
        "{phase:<28} n={:<8} p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>10}{write}",
        samples.len(),
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.99)),
        us(percentile(&samples, 0.999)),
        us(*samples.last().unwrap()),
    );
}

/// One timed RCPT check: a hit on a `global` entry for even `n`, a miss for odd.
fn check(policy: &Policy, globals: usize, n: usize) -> Duration {
    let rcpt = if n.is_multiple_of(2) {
        format!("g{}@r.example", (n / 2) % globals)
    } else {
        format!("nobody{n}@r.example")
    };
    let started = Instant::now();
    let verdict = policy
        .check("news@big.example", &rcpt, None)
        .expect("check");
    let took = started.elapsed();
    std::hint::black_box(verdict);
    took
}

/// Checks until `done` is set (at least `min` of them).
fn checks_until(policy: &Policy, globals: usize, done: &AtomicBool, min: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(1 << 20);
    let mut n = 0;
    while !done.load(Ordering::Relaxed) || samples.len() < min {
        samples.push(check(policy, globals, n));
        n += 1;
    }
    samples
}

fn main() {
    let clear_n = env_usize("QUELL_BENCH_CLEAR_N", 200_000);
    let import_n = env_usize("QUELL_BENCH_IMPORT_N", 1_000_000);
    let lookups = env_usize("QUELL_BENCH_LOOKUPS", 200_000);
    let globals = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let policy = Policy::new(store.clone(), Config::default().suppression);
    let suppressions = Suppressions::new(store.clone());

    let domain = Scope::Domain("big.example".into());
    let fill = |scope: &Scope, prefix: &str, n: usize| {
        for start in (0..n).step_by(BATCH) {
            let items: Vec<_> = (start..(start + BATCH).min(n))
                .map(|i| {
                    (
                        SuppressionKey::new(
                            scope.clone(),
                            format!("{prefix}{i}@r.example"),
                            List::Unsubscribes,
                        ),
                        Suppression::new(Reason::Unsub, 1),
                    )
                })
                .collect();
            store.suppression_put_many(&items).expect("fill");
        }
    };
    let started = Instant::now();
    fill(&domain, "d", clear_n);
    fill(&Scope::Global, "g", globals);
    println!(
        "filled {clear_n} domain + {globals} global entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let at_rest: Vec<Duration> = (0..lookups).map(|n| check(&policy, globals, n)).collect();
    report("at rest", at_rest, None);

    // 2. During a 1,000,000-row import through the suppression core.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, suppressions) = (done.clone(), suppressions.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            for start in (0..import_n).step_by(BATCH) {
                let ops: Vec<Op> = (start..(start + BATCH).min(import_n))
                    .map(|i| Op::Add {
                        key: SuppressionKey::new(
                            Scope::Global,
                            format!("i{i}@import.example"),
                            List::Unsubscribes,
                        ),
                        entry: Suppression::new(Reason::Unsub, 1),
                        rule: Rule::Unsubscribed {
                            dated: false,
                            once: false,
                        },
                        unless_allowlisted: false,
                    })
                    .collect();
                suppressions
                    .apply_blocking(&ops, &[], 1)
                    .expect("import batch");
            }
            done.store(true, Ordering::Relaxed);
            started.elapsed()
        })
    };
    let during = checks_until(&policy, globals, &done, 1000);
    let took = writer.join().expect("writer");
    report(&format!("during {import_n}-row import"), during, Some(took));

    // 3. During the clear of the whole domain scope.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, store) = (done.clone(), store.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let removed = store
                .suppression_clear(&domain, List::Unsubscribes)
                .expect("clear");
            done.store(true, Ordering::Relaxed);
            (removed, started.elapsed())
        })
    };
    let during = checks_until(&policy, globals, &done, 1000);
    let (removed, took) = writer.join().expect("writer");
    assert_eq!(removed, clear_n);
    report(&format!("during clear of {clear_n}"), during, Some(took));
}
