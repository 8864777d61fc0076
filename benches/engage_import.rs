//! `POST /engage/import` of 1,000,000 CSV rows over real HTTP (SPEC §7: < 15 s).
//!
//! Starts quell in-process on port 0 with a temporary store (as the integration tests do),
//! generates a headerless `distinct_id,unsubscribed` CSV of `QUELL_BENCH_ROWS` rows (default
//! 1,000,000) and times one upload from the first byte sent to the report received: the body
//! streaming, CSV parsing, profile lookups and the batched sled writes. Prints the wall time and
//! rows per second, and checks the report (every row applied, none rejected).
//!
//! The mix: 80 % `user<i>@rcpt<i % 97>.example,true`; 10 % distinct ids that are not addresses
//! (`id-<i>`), each mapped to an address by a profile created before the clock starts, so they
//! cost a profile lookup; 5 % ISO dates; 5 % `false` (re-subscribes, over entries also created
//! before the clock starts, so each is a real removal).
//!
//! Run: `cargo bench --bench engage_import` (release profile). Figures depend on the machine
//! and on what else runs on it.

use std::time::{Duration, Instant};

use quell::app::{App, Listeners};
use quell::config::Config;
use quell::shutdown::CancellationToken;
use quell::store::{List, Reason, Scope, Suppression, SuppressionKey};
use tokio::net::TcpListener;

const API_KEY: &str = "bench-key-0123456789abcdef";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn address(i: usize) -> String {
    format!("user{i}@rcpt{}.example", i % 97)
}

/// Row `i` of the CSV.
fn row(i: usize, out: &mut String) {
    use std::fmt::Write;
    let _ = match i % 20 {
        0 | 1 => writeln!(out, "id-{i},true"),
        2 => writeln!(out, "{},2024-05-01T10:00:00Z", address(i)),
        3 => writeln!(out, "{},false", address(i)),
        _ => writeln!(out, "{},true", address(i)),
    };
}

fn main() {
    let rows = env_usize("QUELL_BENCH_ROWS", 1_000_000);
    // reqwest is built without a rustls provider of its own; plain http still builds a TLS
    // config. Already installed is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(rows));
}

async fn run(rows: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.storage.path = dir.path().join("data");
    config.http.api_keys = vec![API_KEY.into()];
    let smtp = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http_addr = http.local_addr().expect("http address");
    let app = App::open(config).expect("open quell");
    let store = app.state.store.clone();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        app.run(Listeners { smtp, http }, token)
            .await
            .expect("quell run")
    });

    // Untimed set-up: profiles for the ids, entries for the re-subscribes, the CSV itself.
    let setup = Instant::now();
    let mut existing = Vec::new();
    for i in 0..rows {
        match i % 20 {
            0 | 1 => store
                .profile_put(&format!("id-{i}"), &format!("profiled{i}@rcpt.example"))
                .expect("profile"),
            3 => existing.push((
                SuppressionKey::new(Scope::Global, address(i), List::Unsubscribes),
                Suppression::new(Reason::Unsub, 1),
            )),
            _ => {}
        }
        if existing.len() == 10_000 {
            store.suppression_put_many(&existing).expect("seed");
            existing.clear();
        }
    }
    store.suppression_put_many(&existing).expect("seed");
    let mut csv = String::with_capacity(rows * 36);
    for i in 0..rows {
        row(i, &mut csv);
    }
    let bytes = csv.len();
    println!(
        "engage_import: set-up {:.1} s ({rows} rows, {:.1} MiB of CSV)",
        setup.elapsed().as_secs_f64(),
        bytes as f64 / (1024.0 * 1024.0)
    );

    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .post(format!("http://{http_addr}/engage/import"))
        .bearer_auth(API_KEY)
        .header("content-type", "text/csv")
        .timeout(Duration::from_secs(600))
        .body(csv)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let report: serde_json::Value = response.json().await.expect("JSON report");
    let elapsed = started.elapsed();
    assert!(status.is_success(), "{status}: {report}");
    assert_eq!(report["applied"], rows, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    println!(
        "engage_import: {rows} rows in {:.2} s = {:.0} rows/s ({:.1} MB/s); applied {}, rejected {}",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        report["applied"],
        report["rejected"],
    );

    shutdown.cancel();
    let _ = server.await;
}
