//! Process-wide counters, rendered as Prometheus text at `GET /metrics` (SPEC §6.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by SMTP, delivery and HTTP. Cheap: relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub smtp_connections: AtomicU64,
    pub messages_accepted: AtomicU64,
    pub recipients_accepted: AtomicU64,
    pub recipients_forwarded: AtomicU64,
    pub recipients_rejected: AtomicU64,
    pub recipients_dropped: AtomicU64,
    pub recipients_deferred: AtomicU64,
    pub recipients_bounced: AtomicU64,
    pub suppression_hits: AtomicU64,
    pub upstream_sends: AtomicU64,
    /// Sum of upstream transaction times, microseconds.
    pub upstream_latency_us: AtomicU64,
    pub queue_depth: AtomicU64,
    /// 1 once the suppression index has read every stored entry (until then RCPT decisions
    /// read the store: right, but slower).
    pub index_complete: AtomicU64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        line(
            "quell_smtp_connections_total",
            "counter",
            "SMTP connections accepted.",
            g(&self.smtp_connections).to_string(),
        );
        line(
            "quell_messages_accepted_total",
            "counter",
            "Messages acknowledged with 250 after DATA.",
            g(&self.messages_accepted).to_string(),
        );
        line(
            "quell_recipients_accepted_total",
            "counter",
            "Recipient copies queued for delivery.",
            g(&self.recipients_accepted).to_string(),
        );
        line(
            "quell_recipients_forwarded_total",
            "counter",
            "Recipient copies the upstream accepted.",
            g(&self.recipients_forwarded).to_string(),
        );
        line(
            "quell_recipients_rejected_total",
            "counter",
            "Recipients refused at RCPT because they are suppressed.",
            g(&self.recipients_rejected).to_string(),
        );
        line(
            "quell_recipients_dropped_total",
            "counter",
            "Suppressed recipients accepted and never forwarded.",
            g(&self.recipients_dropped).to_string(),
        );
        line(
            "quell_recipients_deferred_total",
            "counter",
            "Delivery attempts answered 4xx or failed to connect.",
            g(&self.recipients_deferred).to_string(),
        );
        line(
            "quell_recipients_bounced_total",
            "counter",
            "Recipient copies failed permanently.",
            g(&self.recipients_bounced).to_string(),
        );
        line(
            "quell_suppression_hits_total",
            "counter",
            "Lookups that found an applicable suppression.",
            g(&self.suppression_hits).to_string(),
        );
        line(
            "quell_queue_depth",
            "gauge",
            "Transactions waiting in the delivery queue.",
            g(&self.queue_depth).to_string(),
        );
        line(
            "quell_suppression_index_complete",
            "gauge",
            "1 once every stored suppression entry is in memory (after a start).",
            g(&self.index_complete).to_string(),
        );
        line(
            "quell_upstream_sends_total",
            "counter",
            "Upstream transactions attempted.",
            g(&self.upstream_sends).to_string(),
        );
        line(
            "quell_upstream_latency_seconds_sum",
            "counter",
            "Total time spent in upstream transactions.",
            format!("{:.6}", g(&self.upstream_latency_us) as f64 / 1e6),
        );
        out
    }
}
