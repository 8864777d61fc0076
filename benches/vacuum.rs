//! How long a store vacuum (the last step of a GDPR/CCPA erasure, `Store::vacuum`) takes and
//! how long it holds back writes: fills a temporary store with `QUELL_BENCH_N` (default 100,000) suppression entries
//! plus `QUELL_BENCH_MESSAGES` (default 10,000) message records, then times `vacuum()`.
//!
//! Run: `cargo bench --bench vacuum` (`QUELL_BENCH_N=1000000 cargo bench --bench vacuum`).

use std::time::Instant;

use quell::store::SuppressionKey;
use quell::store::{List, MessageRecord, Reason, Scope, Status, Store, Suppression};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_usize("QUELL_BENCH_N", 100_000);
    let messages = env_usize("QUELL_BENCH_MESSAGES", 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let fill = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let scope = match i % 3 {
            0 => Scope::Global,
            1 => Scope::Domain(format!("d{}.example", i % 20)),
            _ => Scope::Sender(format!("app{}@s.example", i % 200)),
        };
        batch.push((
            SuppressionKey::new(scope, format!("{i}user@example.com"), List::Unsubscribes),
            Suppression::new(Reason::Unsub, 1_700_000_000),
        ));
        if batch.len() == 1000 {
            store.suppression_put_many(&batch).expect("put");
            batch.clear();
        }
    }
    store.suppression_put_many(&batch).expect("put");
    for i in 0..messages {
        store
            .message_put(&MessageRecord {
                id: format!("{:012X}{:08X}.1", 1_700_000_000_000u64 + i as u64, i),
                queue_id: format!("{:012X}{:08X}", 1_700_000_000_000u64 + i as u64, i),
                sender: "app@example.com".into(),
                recipient: format!("{i}rcpt@example.net"),
                tags: Vec::new(),
                status: Status::Sent,
                created_at: 1_700_000_000,
                updated_at: 1_700_000_000,
                attempts: 1,
                last_reply: Some("250 2.0.0 ok".into()),
            })
            .expect("message");
    }
    println!(
        "filled {n} suppression entries and {messages} message records in {:.2} s",
        fill.elapsed().as_secs_f64()
    );
    // Run 1 alone; run 2 with a thread writing message records all along, as SMTP sessions
    // would: their changes are replayed while writes are held.
    let record = |i: usize| MessageRecord {
        id: format!("{:012X}{:08X}.1", 1_800_000_000_000u64 + i as u64, i),
        queue_id: format!("{:012X}{:08X}", 1_800_000_000_000u64 + i as u64, i),
        sender: "app@example.com".into(),
        recipient: format!("{i}late@example.net"),
        tags: Vec::new(),
        status: Status::Queued,
        created_at: 1_800_000_000,
        updated_at: 1_800_000_000,
        attempts: 0,
        last_reply: None,
    };
    for run in 1..=2 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = (run == 2).then(|| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.message_put(&record(i)).expect("write");
                    i += 1;
                }
                i
            })
        });
        let t = Instant::now();
        let v = store.vacuum().expect("vacuum");
        let elapsed = t.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.map(|w| w.join().expect("writer")).unwrap_or(0);
        println!(
            "vacuum {run}: {} entries copied in {elapsed:.2} s ({:.0} entries/s); {} changes replayed ({written} written meanwhile, {} catch-up rounds); writes held {:.1} ms",
            v.copied,
            v.copied as f64 / elapsed,
            v.replayed,
            v.catch_up_rounds,
            v.writes_held.as_secs_f64() * 1000.0
        );
    }
}
