//! quell — an SMTP relay ("smarthost") for applications' outbound mail that enforces
//! suppression: recipients who unsubscribed, bounced or complained are refused, everything
//! else is stored durably and forwarded upstream.
//!
//! # Layout
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | strict TOML + environment configuration, validated into [`config::Config`] |
//! | [`app`] | composition root: opens the store, starts SMTP, HTTP and delivery, drains on shutdown |
//! | [`shutdown`] | SIGTERM/SIGINT turned into a cancellation token |
//! | [`smtp`] | the SMTP listener: sans-IO codec, session state machine, typed replies |
//! | [`state`] | [`state::AppState`], the one cheap-to-clone handle every part is given |
//! | [`policy`] | the suppression decision for one (sender, recipient, tags) |
//! | [`suppression`] | the one write path of suppression entries and the allowlist: merge rules, atomic, synced, announced |
//! | [`store`] | every sled call: suppressions, allowlist, queue, spool, message records |
//! | [`queue`] | delivery workers, per-recipient rendering, retry schedule, the lettre upstream |
//! | [`http`] | axum router: health, metrics, message records, unsubscribe pages, the management APIs |
//! | [`mime`] | pure byte rewrites of messages: UNSUB links, footer, headers, tags, DKIM |
//! | [`metrics`] | process-wide counters rendered as Prometheus text |
//! | [`time`] | dates on the wire (RFC 2822, RFC 3339, Mandrill's, Unix seconds), read and written in one place |
//! | [`tls`] | rustls server configuration for STARTTLS and https |
//! | [`unsubscribe`] | per-recipient unsubscribe tokens and landing pages |
//! | [`accept`] | accept loops: waiting and logging sparingly when `accept` fails (out of descriptors), connections per client address |
//! | [`address`] | e-mail address normalisation shared by SMTP and the APIs |
//! | [`id`] | queue ids and per-recipient message ids |
//! | [`cli`] | the admin command line (`quell suppress`, `quell queue`): a client of the HTTP API |

pub mod accept;
pub mod address;
pub mod app;
pub mod cli;
pub mod config;
pub mod erasure;
pub mod http;
pub mod id;
pub mod metrics;
pub mod mime;
pub mod policy;
pub mod queue;
pub mod shutdown;
pub mod smtp;
pub mod state;
pub mod store;
pub mod suppression;
pub mod time;
pub mod tls;
pub mod unsubscribe;
