//! Start-up at 1,000,000 suppression entries (SPEC §7: first RCPT answered correctly < 1 s).
//!
//! Fills a temporary store with `QUELL_BENCH_N` (default 1,000,000) entries in batches of
//! 10,000 (scopes mixed as in `benches/lookup.rs`: domain, global and sender entries), closes
//! it, then `QUELL_BENCH_OPENS` (default 3) times: opens it again and answers one RCPT check
//! for a suppressed recipient, timing open and open + first correct answer.
//!
//! Run: `cargo bench --bench startup`.

use std::time::Instant;

use quell::config::Config;
use quell::policy::{Policy, Verdict};
use quell::store::{Reason, Scope, Store, Suppression, SuppressionKey};

const BATCH: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scope_of(i: usize) -> Scope {
    match i % 20 {
        0..=8 => Scope::Domain(format!("d{}.example", i % 20)),
        9 | 10 => Scope::Sender(format!("app{}@s.example", i % 200)),
        _ => Scope::Global,
    }
}

fn main() {
    let n = env_usize("QUELL_BENCH_N", 1_000_000);
    let opens = env_usize("QUELL_BENCH_OPENS", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        let started = Instant::now();
        for start in (0..n).step_by(BATCH) {
            let items: Vec<_> = (start..(start + BATCH).min(n))
                .map(|i| {
                    let mut e = Suppression::new(Reason::Unsub, 1_700_000_000);
                    e.detail = "imported".into();
                    (
                        SuppressionKey::new(
                            scope_of(i),
                            format!("user{i}@r.example"),
                            e.reason.list(),
                        ),
                        e,
                    )
                })
                .collect();
            store.suppression_put_many(&items).expect("fill");
        }
        // Closed with everything on disk, as after a clean stop.
        futures_executor_flush(&store);
        println!(
            "filled {n} entries in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // The last entry is global: any sender's mail to it is refused.
    let last = (0..n)
        .rev()
        .find(|i| scope_of(*i) == Scope::Global)
        .expect("a global entry");
    let rcpt = format!("user{last}@r.example");
    for round in 1..=opens {
        let started = Instant::now();
        let store = Store::open(&path).expect("reopen");
        let opened = started.elapsed();
        let policy = Policy::new(store.clone(), Config::default().suppression);
        let verdict = policy
            .check("news@any.example", &rcpt, None)
            .expect("check");
        let answered = started.elapsed();
        assert!(matches!(verdict, Verdict::Suppressed { .. }), "{verdict:?}");
        println!(
            "open {round}: store opened in {:.3} s, first RCPT answered (suppressed) at {:.3} s",
            opened.as_secs_f64(),
            answered.as_secs_f64()
        );
        let built = Instant::now();
        while !store.index_complete() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        println!(
            "        index complete {:.3} s later (decisions read the store until then)",
            built.elapsed().as_secs_f64()
        );
        drop(policy);
        drop(store);
    }
}

/// `Store::flush` is async; the bench has no runtime of its own.
fn futures_executor_flush(store: &Store) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(store.flush())
        .expect("flush");
}
