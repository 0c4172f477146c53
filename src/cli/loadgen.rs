//! `motcua-sms loadgen`: the SMSC simulator ([`crate::loadgen`]) from its
//! flags, its report as text or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

// (No doc comment: clap would show it in --help.)
#[derive(clap::Args)]
pub struct LoadgenArgs {
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
    mix: crate::loadgen::Mix,
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
    message_ids: crate::loadgen::MessageIdFormat,
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

/// Runs the load generator and prints its report; exit code 0 only when
/// every message sent got its whole reply.
pub async fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    use crate::loadgen::{echo, Loadgen, Settings, TextGenerator};
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
