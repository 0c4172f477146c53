//! The `motcua-sms` binary: parses the command line, loads the
//! configuration, and wires the library's rooms together. No logic lives here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use motcua_sms::abuse::AbuseGuard;
use motcua_sms::app::Gateway;
use motcua_sms::config::Config;
use motcua_sms::db::GatewayDb;
use motcua_sms::domain::Msisdn;
use motcua_sms::http_server::HttpLimits;
use motcua_sms::import::{import_json_lines, ImportReport};
use motcua_sms::smpp::client::send_and_receive;
use motcua_sms::sms_text;
use motcua_sms::store::{DossierWriter, ReadModel};

/// Exit code for a configuration error (sysexits EX_CONFIG).
const EX_CONFIG: u8 = 78;
/// Exit code when an import had bad lines (sysexits EX_DATAERR).
const EX_DATAERR: u8 = 65;

#[derive(Parser)]
#[command(
    name = "motcua-sms",
    version,
    about = "Automatic SMS reply gateway for one-stop dossier status lookups"
)]
struct Cli {
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default command).
    Run {
        /// Import this JSON Lines file into the read model before serving.
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
    },
    /// Load dossiers from a JSON Lines file in the national portal's record shape.
    Import {
        /// The file to load.
        file: PathBuf,
    },
    /// Talk to the running gateway as a citizen would.
    Sms {
        #[command(subcommand)]
        command: SmsCommand,
    },
    /// Numbers that are never answered (applied at once, also to a running gateway).
    Block {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Numbers that are always answered, never rate limited (applied at once).
    Allow {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Admin console accounts: create, list, set roles, reset passwords,
    /// unlock, disable; every change goes to the audit log. Passwords are
    /// read from standard input (one line), never from the command line.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Act as a carrier SMSC: wait for a gateway to bind, push citizens'
    /// messages, answer its replies, and report throughput and latency.
    Loadgen(LoadgenArgs),
    /// Show the read model and its sync with the one-stop core: position,
    /// pending changes, last success, last error. Exits 3 when the data is
    /// stale (past sync.stale_after_secs), for monitoring scripts.
    Status,
    /// Serve the core feed protocol (docs/core-feed.md) as a synthetic core
    /// whose dossiers move through their statuses, for demos, tests and benchmarks.
    CoreSim(CoreSimArgs),
    /// Serve the core feed protocol from a PostgreSQL core that installed
    /// migrations/core-postgres/ (docs/core-feed.md, "Relay").
    Relay(RelayArgs),
    /// Follow a core feed (relay, core, core-sim) and publish every change to
    /// a NATS JetStream stream that gateways with sync.mode = "jetstream"
    /// follow (docs/core-feed.md, "Fan-out over NATS JetStream").
    Fanout(FanoutArgs),
}

/// Environment variables the subcommands read through clap. They share the
/// configuration's `MOTCUA_` prefix, where an unknown key is an error, so
/// they are removed once read, before the configuration is loaded.
const SUBCOMMAND_ENV: [&str; 6] = [
    "MOTCUA_CORE_TOKEN",
    "MOTCUA_FANOUT_FEED_TOKEN",
    "MOTCUA_FANOUT_NATS_URL",
    "MOTCUA_RELAY_DATABASE_URL",
    "MOTCUA_RELAY_LISTEN",
    "MOTCUA_RELAY_TOKEN",
];

#[derive(clap::Args)]
struct RelayArgs {
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
struct FanoutArgs {
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
    #[arg(long, default_value = motcua_sms::sync::jetstream::DEFAULT_STREAM)]
    stream: String,
    /// The subjects' prefix: <prefix>.dossier.<code>, <prefix>.control.*.
    #[arg(long, default_value = motcua_sms::sync::jetstream::DEFAULT_PREFIX)]
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
struct CoreSimArgs {
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

#[derive(clap::Args)]
struct LoadgenArgs {
    /// Address to listen on as an SMSC.
    #[arg(long, default_value = "127.0.0.1:2776")]
    listen: std::net::SocketAddr,
    /// Messages (deliver_sm) to send.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    messages: u64,
    /// Offered rate, e.g. 2000 or 2000/s; flat out when not given.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Most deliver_sm left unacknowledged at once.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Most messages without a complete reply at once (default: no limit).
    #[arg(long)]
    max_unanswered: Option<u64>,
    /// Shares of message kinds: known codes, badly typed known codes,
    /// unknown codes, texts without a code.
    #[arg(long, default_value = "known=60,typo=25,unknown=10,help=5")]
    mix: motcua_sms::loadgen::Mix,
    /// JSON Lines file of dossiers (MaHoSo) the codes are taken from.
    #[arg(long, default_value = "docs/sample-dossiers.jsonl")]
    dossiers: PathBuf,
    /// The short number citizens text (destination of every message).
    #[arg(long, default_value = "8058")]
    short_number: String,
    /// system_id a peer must bind with (default: any).
    #[arg(long)]
    system_id: Option<String>,
    /// Password a peer must bind with (default: any).
    #[arg(long)]
    password: Option<String>,
    /// Message ids in submit_sm_resp: decimal or hex.
    #[arg(long, default_value = "decimal")]
    message_ids: motcua_sms::loadgen::MessageIdFormat,
    /// Seed of the text generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First sender index, so that runs against the same gateway use fresh numbers.
    #[arg(long, default_value_t = 0)]
    sender_offset: u64,
    /// Seconds to wait for the gateway to bind.
    #[arg(long, default_value_t = 60)]
    bind_timeout: u64,
    /// Milliseconds to wait after the first usable bind for further connections.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
    /// The run ends after this many seconds without any news.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
    /// Also write the report as JSON to this file ("-": standard output, instead of the text).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Measure the load generator itself: an echo ESME in this process binds
    /// and answers every message at once.
    #[arg(long)]
    echo_test: bool,
}

/// Reads `2000`, `2000/s` or `2000.5`.
fn parse_rate(s: &str) -> Result<f64, String> {
    let number = s.trim().trim_end_matches("/s");
    match number.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive rate (e.g. 2000 or 2000/s)"
        )),
    }
}

#[derive(Subcommand)]
enum ListCommand {
    /// Add a phone number.
    Add {
        /// The number, in any usual form (0912345678, +84 912 345 678).
        number: String,
        /// Block for this many hours only (block list; default: until removed).
        #[arg(long)]
        hours: Option<i64>,
        /// Why (shown to admins).
        #[arg(long, default_value = "added by an administrator")]
        reason: String,
    },
    /// Remove a phone number.
    Remove {
        /// The number.
        number: String,
    },
    /// List current blocks (block list only).
    List,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account; its first password (from stdin) must be changed at the first login.
    Add {
        /// The username (3–32 of a-z 0-9 . _ -).
        username: String,
        /// administrator, operator or viewer.
        #[arg(long)]
        role: String,
    },
    /// List the accounts.
    List,
    /// Set an account's role.
    Role {
        /// The username.
        username: String,
        /// administrator, operator or viewer.
        role: String,
    },
    /// Set a new password (from stdin), to be changed at the next login; lifts a lockout.
    ResetPassword {
        /// The username.
        username: String,
    },
    /// Lift a lockout after repeated wrong passwords.
    Unlock {
        /// The username.
        username: String,
    },
    /// Refuse every login of the account.
    Disable {
        /// The username.
        username: String,
    },
    /// Allow the account to log in again.
    Enable {
        /// The username.
        username: String,
    },
    /// The latest entries of the audit log.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum SmsCommand {
    /// Bind to the running listener, send TEXT, print the reply.
    Send {
        /// The citizen's phone number.
        #[arg(long)]
        from: String,
        /// The number texted (default: service.number from the configuration).
        #[arg(long)]
        to: Option<String>,
        /// Listener address (default: smpp.listener.bind).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Account to bind with (default: the first listener account).
        #[arg(long)]
        system_id: Option<String>,
        /// Its password (default: the first listener account's).
        #[arg(long)]
        password: Option<String>,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// The message text.
        text: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    for name in SUBCOMMAND_ENV {
        // Still one thread: nothing reads the environment concurrently.
        std::env::remove_var(name);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("motcua-sms: configuration error: {error}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    motcua_sms::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("motcua-sms: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run { import: None }) {
            Command::Run { import } => run(&config, cli.config.clone(), import.as_deref()).await,
            Command::Import { file } => import(&config, &file).await,
            Command::Block { command } => edit_list(&config, true, command).await,
            Command::Allow { command } => edit_list(&config, false, command).await,
            Command::Account { command } => account(&config, command).await,
            Command::Loadgen(args) => loadgen(args).await,
            Command::CoreSim(args) => core_sim(args).await,
            Command::Status => status(&config).await,
            Command::Relay(args) => relay(args).await,
            Command::Fanout(args) => fanout(args).await,
            Command::Sms {
                command:
                    SmsCommand::Send {
                        from,
                        to,
                        addr,
                        system_id,
                        password,
                        wait,
                        text,
                    },
            } => {
                let account = config.smpp.listener.accounts.first();
                let system_id = system_id
                    .or_else(|| account.map(|a| a.system_id.clone()))
                    .context("no --system-id given and no [[smpp.listener.accounts]] configured")?;
                let password = password
                    .or_else(|| account.map(|a| a.password.clone()))
                    .unwrap_or_default();
                let reply = send_and_receive(
                    addr.unwrap_or(config.smpp.listener.bind),
                    &system_id,
                    &password,
                    &from,
                    to.as_deref().unwrap_or(&config.service.number),
                    &text,
                    Duration::from_secs(wait),
                )
                .await?;
                let info = sms_text::segment_info(&reply.text);
                println!("{}", reply.text);
                eprintln!(
                    "({} parts received, {}, {} segment(s))",
                    reply.parts.len(),
                    info.encoding.name(),
                    info.segments
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("motcua-sms: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    config: &Config,
    config_path: Option<PathBuf>,
    import_first: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if let Some(file) = import_first {
        let code = import(config, file).await?;
        if code != ExitCode::SUCCESS {
            tracing::warn!(file = %file.display(), "some lines were not imported; serving anyway");
        }
    }
    let gateway = Gateway::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tokio::spawn(reload_on_hangup(gateway.reloader(), config_path));
    gateway.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

async fn import(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let store = ReadModel::open(&config.database.url).await?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let report: ImportReport = import_json_lines(&store, std::io::BufReader::new(reader)).await?;
    for bad in &report.bad {
        eprintln!("{}:{}: {}", file.display(), bad.line, bad.reason);
    }
    for kept in &report.left_out {
        eprintln!(
            "{}:{}: {} kept: {}",
            file.display(),
            kept.line,
            kept.code,
            kept.warning
        );
    }
    eprintln!(
        "{}: {} inserted, {} updated, {} unchanged, {} bad line(s), {} field(s) left out",
        file.display(),
        report.inserted,
        report.updated,
        report.unchanged,
        report.bad.len(),
        report.left_out.len()
    );
    store.close().await;
    Ok(if report.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EX_DATAERR)
    })
}

/// Exit code of `status` when the read model is stale.
const EXIT_STALE: u8 = 3;

async fn status(config: &Config) -> anyhow::Result<ExitCode> {
    let store = ReadModel::open(&config.database.url).await?;
    let dossiers = store.count().await?;
    let sources = store.all_sync_status().await?;
    store.close().await;
    let report = motcua_sms::sync::StatusReport::new(
        dossiers,
        sources,
        config.sync.stale_after(),
        motcua_sms::clock::now_ms(),
    );
    print!("{report}");
    Ok(if report.is_stale() {
        ExitCode::from(EXIT_STALE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the load generator and prints its report; exit code 0 only when
/// every message sent got its whole reply.
async fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    use motcua_sms::loadgen::{echo, Loadgen, Settings, TextGenerator};
    let file = std::fs::File::open(&args.dossiers)
        .with_context(|| format!("cannot open {}", args.dossiers.display()))?;
    let codes = TextGenerator::read_codes(std::io::BufReader::new(file))
        .with_context(|| args.dossiers.display().to_string())?;
    let settings = Settings {
        listen: args.listen,
        system_id: args.system_id,
        password: args.password,
        messages: args.messages,
        rate: args.rate,
        window: args.window,
        max_unanswered: args.max_unanswered,
        mix: args.mix,
        short_number: args.short_number,
        message_ids: args.message_ids,
        seed: args.seed,
        sender_offset: args.sender_offset,
        bind_timeout: Duration::from_secs(args.bind_timeout),
        settle: Duration::from_millis(args.settle_ms),
        drain_timeout: Duration::from_secs(args.drain_timeout),
    };
    let echo_credentials = (
        settings
            .system_id
            .clone()
            .unwrap_or_else(|| "echo".to_owned()),
        settings.password.clone().unwrap_or_default(),
    );
    let loadgen = Loadgen::bind(settings, &codes).await?;
    let addr = loadgen.local_addr();
    eprintln!("loadgen: listening on {addr}, waiting for a bind");
    let echo = args.echo_test.then(|| {
        tokio::spawn(async move { echo::run(addr, &echo_credentials.0, &echo_credentials.1).await })
    });
    let report = loadgen.run().await?;
    if let Some(echo) = echo {
        let stats = echo.await.context("echo ESME task")??;
        eprintln!(
            "echo ESME: {} deliver_sm answered, {} submit_sm acknowledged",
            stats.delivered, stats.submitted
        );
    }
    match args.json.as_deref() {
        Some(path) if path == Path::new("-") => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(path) => {
            println!("{report}");
            std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => println!("{report}"),
    }
    Ok(if report.all_answered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Edits the block list (`block = true`) or the allow list in the journal
/// database; a running gateway reads them on every message.
/// One line from standard input: the password (never an argument, which
/// other users could read in the process list).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password on standard input: pipe it in, e.g. `read -rs P && echo \"$P\" | motcua-sms account add ...`"
    );
    Ok(password)
}

async fn account(config: &Config, command: AccountCommand) -> anyhow::Result<ExitCode> {
    use motcua_sms::admin::accounts::{
        AccountChange, Accounts, LockoutPolicy, NewPassword, Role, Username,
    };
    let db = GatewayDb::open(&config.journal.url, config.journal.synchronous).await?;
    let accounts = Accounts::new(db.pool().clone(), LockoutPolicy::default());
    let now = motcua_sms::clock::now_ms();
    let change = |username: &str, change: AccountChange| {
        let accounts = accounts.clone();
        let username = username.to_owned();
        async move {
            let user = Username::parse(&username)?;
            accounts.update("cli", &user, change, now).await?;
            anyhow::Ok(user)
        }
    };
    match command {
        AccountCommand::Add { username, role } => {
            let user = Username::parse(&username)?;
            let role = Role::parse(&role)?;
            let password = NewPassword::parse(&password_from_stdin()?, &user)?;
            accounts.create("cli", &user, role, password, now).await?;
            println!("created {user} ({role}); the password must be changed at the first login");
        }
        AccountCommand::List => {
            for a in accounts.list(now).await? {
                let mut flags = Vec::new();
                if a.must_change_password {
                    flags.push("must change password".to_owned());
                }
                if let Some(until) = a.locked_until {
                    flags.push(format!(
                        "locked until {}",
                        chrono::DateTime::from_timestamp_millis(until)
                            .map_or(until.to_string(), |t| t.to_rfc3339())
                    ));
                }
                if a.disabled {
                    flags.push("disabled".to_owned());
                }
                println!("{}\t{}\t{}", a.username, a.role, flags.join(", "));
            }
        }
        AccountCommand::Role { username, role } => {
            let role = Role::parse(&role)?;
            let user = change(&username, AccountChange::Role(role)).await?;
            println!("{user} is now {role}");
        }
        AccountCommand::ResetPassword { username } => {
            let user = Username::parse(&username)?;
            let password = NewPassword::parse(&password_from_stdin()?, &user)?;
            change(&username, AccountChange::ResetPassword(password)).await?;
            println!("{user}: new password set; it must be changed at the next login");
        }
        AccountCommand::Unlock { username } => {
            let user = change(&username, AccountChange::Unlock).await?;
            println!("{user} unlocked");
        }
        AccountCommand::Disable { username } => {
            let user = change(&username, AccountChange::Disabled(true)).await?;
            println!("{user} disabled");
        }
        AccountCommand::Enable { username } => {
            let user = change(&username, AccountChange::Disabled(false)).await?;
            println!("{user} enabled");
        }
        AccountCommand::Audit { limit } => {
            for (at, actor, action, target, detail) in accounts.audit_log(limit).await? {
                let at = chrono::DateTime::from_timestamp_millis(at)
                    .map_or(at.to_string(), |t| t.to_rfc3339());
                println!("{at}\t{actor}\t{action}\t{target}\t{detail}");
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn edit_list(config: &Config, block: bool, command: ListCommand) -> anyhow::Result<ExitCode> {
    let db = GatewayDb::open(&config.journal.url, config.journal.synchronous).await?;
    let guard = AbuseGuard::open(config.rate_limit.clone(), db.pool().clone()).await?;
    let parse = |number: &str| {
        Msisdn::parse(number).with_context(|| format!("{number:?} is not a phone number"))
    };
    match command {
        ListCommand::Add {
            number,
            hours,
            reason,
        } => {
            let number = parse(&number)?;
            if block {
                let until = hours.map(|h| chrono::Utc::now() + chrono::Duration::hours(h));
                guard.block(&number, until, &reason).await?;
                println!(
                    "blocked {}{}",
                    number.national(),
                    until.map(|u| format!(" until {u}")).unwrap_or_default()
                );
            } else {
                guard.allow(&number).await?;
                println!("allowed {}", number.national());
            }
        }
        ListCommand::Remove { number } => {
            let number = parse(&number)?;
            if block {
                guard.unblock(&number).await?;
                println!("unblocked {}", number.national());
            } else {
                guard.disallow(&number).await?;
                println!("removed {} from the allow list", number.national());
            }
        }
        ListCommand::List => {
            for b in guard.blocks().await? {
                let until = b.until.map_or("permanent".to_owned(), |u| u.to_string());
                println!("{}\t{}\t{}", b.sender.national(), until, b.reason);
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs the synthetic core until SIGTERM or Ctrl-C.
async fn core_sim(args: CoreSimArgs) -> anyhow::Result<ExitCode> {
    use motcua_sms::feed::synthetic::{CoreSim, Settings};
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
async fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    use motcua_sms::relay::{Relay, RelaySettings};
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
async fn fanout(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    use motcua_sms::sync::jetstream::{self, publisher};
    if let Err(e) = jetstream::check_url(&args.nats_url) {
        anyhow::bail!("--nats-url: {e}");
    }
    if !jetstream::is_valid_name(&args.stream) {
        anyhow::bail!("--stream: letters, digits, '_' or '-' only");
    }
    if !jetstream::is_valid_prefix(&args.subject_prefix) {
        anyhow::bail!("--subject-prefix: dot-separated tokens of letters, digits, '_' or '-'");
    }
    if args.wait_secs > motcua_sms::feed::MAX_WAIT_SECS {
        anyhow::bail!("--wait-secs: at most {}", motcua_sms::feed::MAX_WAIT_SECS);
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

/// On every SIGHUP (`systemctl reload motcua-sms`) reads `config.toml` again
/// and puts its `[reply]`, `[rate_limit]` and `[log]` in force with the
/// templates reloaded; a file or template that fails its checks is refused
/// and what is in use stays.
async fn reload_on_hangup(mut reloader: motcua_sms::app::Reloader, config_path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; templates reload only on restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            let config = match Config::load(config_path.as_deref()) {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!(%error, "configuration not reloaded; the one in use stays");
                    continue;
                }
            };
            match reloader.apply_config(&config) {
                Ok(()) => {}
                Err(error @ motcua_sms::app::ReloadError::Templates(_)) => {
                    tracing::error!(%error, "templates not reloaded; the ones in use stay")
                }
                Err(error) => {
                    tracing::error!(%error, "configuration not reloaded; the one in use stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop((reloader, config_path));
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested; draining");
    shutdown.cancel();
}
