//! The `quell` binary: parses the command line, loads the config, binds the sockets and runs
//! [`quell::app::App`] — or runs an admin command ([`quell::cli`]) against a running quell.
//! Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use quell::app::{App, Listeners};
use quell::cli::{self, CliError};
use quell::config::{self, Config, LogFormat};
use quell::shutdown::{self, CancellationToken};

/// jemalloc, not glibc malloc: under the end-to-end load glibc kept freed heap in its arenas
/// (`malloc_stats`: 552 MB held for 108 MB in use, RSS 0.5–1.3 GiB at 100,000 suppression
/// entries); jemalloc returns it (bench/README.md, runs F and H). Tune it at run time with
/// `_RJEM_MALLOC_CONF` (e.g. `background_thread:true,dirty_decay_ms:1000`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (run J in bench/README.md): a background thread returns freed
/// pages after 1 s instead of 10 s, and two arenas; `_RJEM_MALLOC_CONF` still overrides them.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:2\0";

#[derive(Parser, Debug)]
#[command(
    name = "quell",
    version,
    about = "SMTP relay that enforces email suppression"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the relay: SMTP listener, delivery queue, HTTP server.
    Serve {
        /// Config file (else $QUELL_CONFIG, else config/quell.toml).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Parse and validate the config; exit 0, or 2 with the key and reason.
    CheckConfig {
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Manage the suppression list of the running quell, through its HTTP API.
    Suppress(cli::suppress::SuppressArgs),
    /// Inspect and act on the delivery queue of the running quell, through its HTTP API.
    Queue(cli::queue::QueueArgs),
    /// Erase people (GDPR/CCPA) through the running quell's HTTP API; they stay suppressed.
    Forget(cli::forget::ForgetArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Suppress(args) => admin(cli::suppress::run(args)),
        Command::Queue(args) => admin(cli::queue::run(args)),
        Command::Forget(args) => admin(cli::forget::run(args)),
        Command::CheckConfig { config } => {
            let path = config::resolve_path(config.as_deref());
            match config::load(&path)
                .map_err(|e| e.located(&path))
                .and_then(|c| check_files(&c).map_err(|e| format!("{}: {e}", path.display())))
            {
                Ok(()) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve { config } => {
            let path = config::resolve_path(config.as_deref());
            let config = match config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}", e.located(&path));
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = check_files(&config) {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
            init_tracing(config.log.format);
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = one_line(&e), "quell failed");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Runs an admin command to completion on a runtime of its own; a failure is one line on
/// stderr and its exit code.
fn admin(command: impl Future<Output = Result<(), CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Checks what the config points at beyond its syntax: the DKIM key loads, TLS files parse.
fn check_files(config: &Config) -> Result<(), String> {
    if let Some(dkim) = &config.dkim {
        quell::app::load_dkim(dkim).map_err(|e| e.to_string())?;
    }
    for (key, files) in [
        ("smtp.tls", &config.smtp.tls),
        ("http.tls", &config.http.tls),
    ] {
        if let Some(files) = files {
            quell::tls::acceptor(files).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    // lettre logs the whole upstream conversation (MAIL FROM, RCPT TO: addresses) at debug:
    // kept at info unless RUST_LOG names it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if v.contains("lettre") => filter,
        _ => filter.add_directive("lettre=info".parse().expect("a valid directive")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn serve(config: Config) -> anyhow::Result<()> {
    // The store first: a second quell on the same store stops here, before it takes ports.
    let app = App::open(config.clone())?;
    let smtp = tokio::net::TcpListener::bind(config.smtp.listen)
        .await
        .with_context(|| format!("binding smtp.listen {}", config.smtp.listen))?;
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    tracing::info!(addr = %smtp.local_addr()?, "smtp listening");
    tracing::info!(addr = %http.local_addr()?, "http listening");
    let token = CancellationToken::new();
    shutdown::on_signal(token.clone());
    app.run(Listeners { smtp, http }, token).await?;
    Ok(())
}

/// An error and its causes on one line, each cause once: errors here often repeat their
/// source in their own message (`store at data: sled: …` above `sled: …`), and anyhow's
/// `{:#}` would print it again for every level.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
