//! Same data as benches/lookup.rs (1M entries, keys `<scope>\0<address>\0<list>`, JSON values),
//! same probe sequence as quell's Policy::check (allowlist get, then global, domain:, sender:),
//! in two ways: `scan` = one scan_prefix per scope (what src/store does today) and `get` = one
//! point get per (scope, list); `addr` = keys laid out address first (`<address>\0<scope>\0<list>`)
//! and one scan_prefix per recipient covering every scope.
//! Usage: sled-lookup-experiment <cache MiB> <scan|get|addr> [n]
use std::time::{Duration, Instant};

const DOMAINS: usize = 20;
const SENDERS: usize = 200;

fn scope_of(i: usize) -> (String, String) {
    match i % 20 {
        0..=8 => {
            let d = format!("d{}.example", i % DOMAINS);
            (format!("domain:{d}"), format!("news@{d}"))
        }
        9 | 10 => {
            let s = format!("app{}@s{}.example", i % SENDERS, i % DOMAINS);
            (format!("sender:{s}"), s)
        }
        _ => ("global".into(), format!("news@d{}.example", i % DOMAINS)),
    }
}
fn rcpt_of(i: usize) -> String { format!("user{i}@rcpt{}.example", i % 97) }
fn list_of(i: usize) -> u8 { match i % 4 { 0 => b'b', 1 => b'c', _ => b'u' } }
fn key(scope: &str, addr: &str, list: Option<u8>) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec(); k.push(0); k.extend_from_slice(addr.as_bytes()); k.push(0);
    if let Some(l) = list { k.push(l); }
    k
}

struct Rng(u64);
impl Rng { fn below(&mut self, n: usize) -> usize { self.0 ^= self.0 << 13; self.0 ^= self.0 >> 7; self.0 ^= self.0 << 17; (self.0 % n as u64) as usize } }

#[derive(Clone, Copy, PartialEq)]
enum Mode { Scan, Get, Addr }

fn addr_key(scope: &str, addr: &str, list: Option<u8>) -> Vec<u8> {
    let mut k = addr.as_bytes().to_vec(); k.push(0);
    if list.is_none() { return k; }
    k.extend_from_slice(scope.as_bytes()); k.push(0); k.push(list.unwrap());
    k
}

fn check(allow: &sled::Tree, t: &sled::Tree, sender: &str, rcpt: &str, mode: Mode) -> bool {
    if allow.get(rcpt).unwrap().is_some() { return false; }
    let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap();
    let scopes = ["global".to_string(), format!("domain:{domain}"), format!("sender:{sender}")];
    if mode == Mode::Addr {
        let prefix = addr_key("", rcpt, None);
        for item in t.scan_prefix(&prefix) {
            let (k, v) = item.unwrap();
            let rest = &k[prefix.len()..];
            let scope = &rest[..rest.len() - 2];
            if scopes.iter().any(|s| s.as_bytes() == scope) {
                let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
                if v.get("reason").is_some() { return true; }
            }
        }
        return false;
    }
    for scope in scopes {
        if mode == Mode::Scan {
            for item in t.scan_prefix(key(&scope, rcpt, None)) {
                let (_, v) = item.unwrap();
                let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
                if v.get("reason").is_some() { return true; }
            }
        } else {
            for l in [b'u', b'b', b'c'] {
                if let Some(v) = t.get(key(&scope, rcpt, Some(l))).unwrap() {
                    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
                    if v.get("reason").is_some() { return true; }
                }
            }
        }
    }
    false
}

fn pct(s: &[Duration], p: f64) -> f64 { s[(((s.len() - 1) as f64) * p / 100.0).round() as usize].as_nanos() as f64 / 1000.0 }

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cache_mib: u64 = args[1].parse().unwrap();
    let mode = match args[2].as_str() { "scan" => Mode::Scan, "get" => Mode::Get, "addr" => Mode::Addr, m => panic!("mode {m}") };
    let n: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("sled-lookup-exp-{}", std::process::id()));
    let db = sled::Config::new().path(&dir).cache_capacity(cache_mib * 1024 * 1024).flush_every_ms(Some(500)).open().unwrap();
    let t = db.open_tree("suppressions").unwrap();
    let allow = db.open_tree("allowlist").unwrap();
    let value = br#"{"reason":"unsub","tags":["*"],"created_at":1700000000}"#;
    let t0 = Instant::now();
    let mut b = sled::Batch::default();
    for i in 0..n {
        let (sc, r, l) = (scope_of(i).0, rcpt_of(i), Some(list_of(i)));
        b.insert(if mode == Mode::Addr { addr_key(&sc, &r, l) } else { key(&sc, &r, l) }, &value[..]);
        if (i + 1) % 1000 == 0 || i + 1 == n { t.apply_batch(std::mem::take(&mut b)).unwrap(); }
    }
    let ins = t0.elapsed();
    let mut rng = Rng(0x5eed);
    let mut run = |count: usize, rec: bool| {
        let (mut h, mut m) = (Vec::new(), Vec::new());
        for _ in 0..count {
            for hit in [true, false] {
                let (s, r) = if hit { let i = rng.below(n); (scope_of(i).1, rcpt_of(i)) }
                    else { let i = n + rng.below(n); (format!("app{}@s{}.example", i % SENDERS, i % DOMAINS), rcpt_of(i)) };
                let start = Instant::now();
                let v = check(&allow, &t, &s, &r, mode);
                let d = start.elapsed();
                assert_eq!(v, hit);
                if rec { if hit { h.push(d) } else { m.push(d) } }
            }
        }
        (h, m)
    };
    run(25_000, false);
    let (mut h, mut m) = run(200_000, true);
    h.sort_unstable(); m.sort_unstable();
    let mut all = h.clone(); all.extend_from_slice(&m); all.sort_unstable();
    let rss = std::fs::read_to_string("/proc/self/status").unwrap_or_default().lines()
        .find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
    println!("RSS {} MiB | cache={cache_mib}MiB mode={} n={n} insert={:.2}s | hit p50/p99/p99.9 {:.1}/{:.1}/{:.1} | miss {:.1}/{:.1}/{:.1} | all p99 {:.1} µs",
        rss / 1024,
        match mode { Mode::Scan => "scan_prefix/scope", Mode::Get => "point-get", Mode::Addr => "address-first" }, ins.as_secs_f64(),
        pct(&h, 50.0), pct(&h, 99.0), pct(&h, 99.9), pct(&m, 50.0), pct(&m, 99.0), pct(&m, 99.9), pct(&all, 99.0));
    drop(t); drop(allow); drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
