//! `motcua-sms core-sim`, `relay` and `fanout`: the core feed served by a
//! synthetic core or from a PostgreSQL core, and followed into NATS
//! JetStream; each runs until SIGTERM or Ctrl-C ([`crate::signals`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http_server::HttpLimits;
use crate::signals::cancel_on_signal;

// (No doc comment: clap would show it in --help.)
#[derive(clap::Args)]
pub struct RelayArgs {
    /// The core's database, as the motcua_relay role
    /// (postgres://motcua_relay:PASSWORD@HOST:5432/DB).
    #[arg(long, env = "MOTCUA_RELAY_DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    database_url: sqlx::postgres::PgConnectOptions,
    /// Address to listen on (HTTP; put TLS in front).
    #[arg(long, env = "MOTCUA_RELAY_LISTEN", default_value = "127.0.0.1:8091")]
    listen: std::net::SocketAddr,
    /// Bearer token clients must send.
    #[arg(long, env = "MOTCUA_RELAY_TOKEN", hide_env_values = true)]
    token: String,
    /// Database connections at most (plus one for LISTEN).
    #[arg(long, default_value_t = 8)]
    max_connections: u32,
    /// Milliseconds between re-checks of the log's head (besides NOTIFY).
    #[arg(long, default_value_t = 250)]
    recheck_ms: u64,
    #[command(flatten)]
    http: HttpLimitArgs,
}

/// The HTTP port's limits of `relay` and `core-sim` (src/http_server.rs).
#[derive(clap::Args)]
struct HttpLimitArgs {
    /// HTTP connections open at once, from everyone.
    #[arg(long, default_value_t = HttpLimits::feed().max_connections)]
    http_max_connections: usize,
    /// HTTP connections open at once from one client address (IPv6: its /64).
    #[arg(long, default_value_t = HttpLimits::feed().max_connections_per_ip)]
    http_max_connections_per_ip: usize,
    /// Seconds a request's headers may take to arrive whole.
    #[arg(long, default_value_t = HttpLimits::feed().header_read_timeout_secs)]
    http_header_read_timeout_secs: u64,
    /// Seconds a request may take, a long-poll's wait included.
    #[arg(long, default_value_t = HttpLimits::feed().request_timeout_secs)]
    http_request_timeout_secs: u64,
}

impl HttpLimitArgs {
    fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.http_max_connections,
            max_connections_per_ip: self.http_max_connections_per_ip,
            header_read_timeout_secs: self.http_header_read_timeout_secs,
            request_timeout_secs: self.http_request_timeout_secs,
            ..HttpLimits::feed()
        }
    }
}

#[derive(clap::Args)]
pub struct FanoutArgs {
    /// The core feed's base URL (the relay, a core, core-sim).
    #[arg(long)]
    feed_url: String,
    /// The bearer token the core issued for the fan-out.
    #[arg(long, env = "MOTCUA_FANOUT_FEED_TOKEN", hide_env_values = true)]
    feed_token: Option<String>,
    /// NATS server(s), nats://host:port (several separated by commas).
    #[arg(
        long,
        env = "MOTCUA_FANOUT_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// A NATS .creds file, when the server asks for credentials.
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// The stream to publish to (created or updated at start).
    #[arg(long, default_value = crate::sync::jetstream::DEFAULT_STREAM)]
    stream: String,
    /// The subjects' prefix: <prefix>.dossier.<code>, <prefix>.control.*.
    #[arg(long, default_value = crate::sync::jetstream::DEFAULT_PREFIX)]
    subject_prefix: String,
    /// The stream's duplicate window, seconds (Nats-Msg-Id deduplication).
    #[arg(long, default_value_t = 120)]
    duplicate_window_secs: u64,
    /// Publish acks awaited at once at most.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Long-poll wait on the feed when caught up, seconds.
    #[arg(long, default_value_t = 25)]
    wait_secs: u64,
}

/// Reads a `postgres://` URL (the message never repeats a password).
fn parse_database_url(s: &str) -> Result<sqlx::postgres::PgConnectOptions, String> {
    use std::str::FromStr;
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err("expected a postgres:// URL".to_owned());
    }
    sqlx::postgres::PgConnectOptions::from_str(s)
        .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))
}

#[derive(clap::Args)]
pub struct CoreSimArgs {
    /// Address to listen on (HTTP).
    #[arg(long, default_value = "127.0.0.1:8092")]
    listen: std::net::SocketAddr,
    /// Open dossiers kept moving.
    #[arg(long, default_value_t = 1000)]
    dossiers: usize,
    /// Changes per second (0: only through POST /admin/step).
    #[arg(long, default_value_t = 10.0)]
    changes_per_sec: f64,
    /// Seed of the generator (same seed, same dossiers and changes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bearer token clients must send (default: none required).
    #[arg(long, env = "MOTCUA_CORE_TOKEN")]
    token: Option<String>,
    /// Changes the log keeps; an older cursor gets 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    retain: usize,
    #[command(flatten)]
    http: HttpLimitArgs,
}

/// Runs the synthetic core until SIGTERM or Ctrl-C.
pub async fn core_sim(args: CoreSimArgs) -> anyhow::Result<ExitCode> {
    use crate::feed::synthetic::{CoreSim, Settings};
    let core = CoreSim::bind(Settings {
        listen: args.listen,
        dossiers: args.dossiers,
        changes_per_sec: args.changes_per_sec,
        seed: args.seed,
        token: args.token,
        retain: args.retain,
    })
    .await?
    .with_limits(args.http.limits())?;
    eprintln!(
        "core-sim: serving the core feed on http://{}/v1/ ({} dossiers, {} changes/s)",
        core.local_addr(),
        args.dossiers,
        args.changes_per_sec
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    core.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the relay until SIGTERM or Ctrl-C.
pub async fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    use crate::relay::{Relay, RelaySettings};
    let mut settings = RelaySettings::new(args.database_url, args.listen, args.token);
    settings.max_connections = args.max_connections;
    settings.recheck = Duration::from_millis(args.recheck_ms);
    settings.limits = args.http.limits();
    let relay = Relay::bind(settings).await?;
    eprintln!(
        "relay: serving the core feed on http://{}/v1/",
        relay.local_addr()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    relay.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the JetStream fan-out until SIGTERM or Ctrl-C.
pub async fn fanout(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    use crate::sync::jetstream::{self, publisher};
    if let Err(e) = jetstream::check_url(&args.nats_url) {
        anyhow::bail!("--nats-url: {e}");
    }
    if !jetstream::is_valid_name(&args.stream) {
        anyhow::bail!("--stream: letters, digits, '_' or '-' only");
    }
    if !jetstream::is_valid_prefix(&args.subject_prefix) {
        anyhow::bail!("--subject-prefix: dot-separated tokens of letters, digits, '_' or '-'");
    }
    if args.wait_secs > crate::feed::MAX_WAIT_SECS {
        anyhow::bail!("--wait-secs: at most {}", crate::feed::MAX_WAIT_SECS);
    }
    let mut settings =
        publisher::PublisherSettings::new(&args.feed_url, args.feed_token, &args.nats_url);
    settings.credentials = args.nats_creds;
    settings.stream = args.stream;
    settings.prefix = args.subject_prefix;
    settings.duplicate_window = Duration::from_secs(args.duplicate_window_secs.max(1));
    settings.max_in_flight = args.max_in_flight.max(1);
    settings.wait = Duration::from_secs(args.wait_secs);
    let publisher = publisher::JetStreamPublisher::new(settings)?;
    eprintln!(
        "fanout: following {} into NATS {}",
        args.feed_url, args.nats_url
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    publisher.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}
