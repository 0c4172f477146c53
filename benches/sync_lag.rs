//! Change-to-visible lag through the JetStream fan-out, at a steady rate of
//! core changes: the synthetic core (in this process) changes at `--rate`
//! per second; `fanout`'s publisher (in this process) publishes to a NATS
//! stream; a gateway's JetStream follower (in this process) applies it to a
//! SQLite read model on disk. A prober follows the core feed itself to learn
//! when each change appeared, and polls the read model every 5 ms until the
//! dossier holds that version (live or deleted): the lag is the difference.
//!
//! ```sh
//! cargo bench --bench sync_lag -- [--nats-url nats://127.0.0.1:4222] [--rate 1000] [--secs 30]
//! ```
//!
//! Needs a NATS server with JetStream (`nats-server -js`). Prints the lag's
//! percentiles and the rate achieved; the stream is deleted at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use motcua_sms::feed::synthetic::{CoreSim, Settings};
use motcua_sms::store::Freshness;
use motcua_sms::store::SqliteStore;
use motcua_sms::sync::client::FeedClient;
use motcua_sms::sync::jetstream::follower::JetStreamFollower;
use motcua_sms::sync::jetstream::publisher::{JetStreamPublisher, PublisherSettings};
use motcua_sms::sync::{JetStreamSettings, SyncMetrics};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench";

struct Args {
    nats_url: String,
    rate: f64,
    secs: u64,
    warmup: u64,
    dossiers: usize,
}

fn args() -> Args {
    let mut args = Args {
        nats_url: std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        rate: 1000.0,
        secs: 30,
        warmup: 5,
        dossiers: 5000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--nats-url" => args.nats_url = value(),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--secs" => args.secs = value().parse().expect("--secs N"),
            "--warmup" => args.warmup = value().parse().expect("--warmup N"),
            "--dossiers" => args.dossiers = value().parse().expect("--dossiers N"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    if let Err(error) = async_nats::connect(args.nats_url.as_str()).await {
        eprintln!(
            "sync_lag: no NATS at {} ({error}); nothing measured",
            args.nats_url
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let suffix = format!("{:x}", std::process::id());
    let stream = format!("MOTCUA_BENCH_{suffix}");
    let prefix = format!("motcua-bench.{suffix}");

    let core = CoreSim::bind(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        dossiers: args.dossiers,
        changes_per_sec: args.rate,
        seed: 11,
        token: Some(TOKEN.into()),
        retain: 10_000_000,
    })
    .await
    .expect("core binds");
    let core_url = format!("http://{}/", core.local_addr());
    let stop = CancellationToken::new();
    let core_task = tokio::spawn(core.run(stop.clone()));

    let mut publisher = PublisherSettings::new(&core_url, Some(TOKEN.into()), &args.nats_url);
    publisher.stream = stream.clone();
    publisher.prefix = prefix.clone();
    publisher.wait = Duration::from_secs(5);
    let publisher = JetStreamPublisher::new(publisher).expect("publisher");
    let publisher_task = tokio::spawn(publisher.run(stop.clone()));

    let db = format!("sqlite://{}/read.db", dir.path().display());
    let store = SqliteStore::open(&db).await.expect("read model");
    let settings = JetStreamSettings {
        url: args.nats_url.clone(),
        stream: stream.clone(),
        subject_prefix: prefix,
        gateway: "bench".into(),
        ..JetStreamSettings::default()
    };
    let follower = JetStreamFollower::new(
        store.clone(),
        settings,
        std::sync::Arc::new(Freshness::always_fresh()),
        SyncMetrics::default(),
    );
    let follower_task = tokio::spawn(follower.run(stop.clone()));

    // The prober's own view of the core, and the read model beside the follower.
    let feed = FeedClient::new(&core_url, Some(TOKEN.into()), Duration::from_secs(30)).unwrap();
    let reader = sqlx::SqlitePool::connect(&db).await.expect("reader");
    let first = feed.snapshot(None, 1).await.expect("snapshot");
    let mut cursor = first.head_cursor;
    // Wait for the follower's bootstrap before measuring.
    loop {
        let stage: Option<String> =
            sqlx::query_scalar("SELECT stage FROM sync_state WHERE source = 'jetstream'")
                .fetch_optional(&reader)
                .await
                .ok()
                .flatten();
        if stage.as_deref() == Some("streaming") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "sync_lag: core at {} changes/s, {} dossiers; warming up {} s, measuring {} s",
        args.rate, args.dossiers, args.warmup, args.secs
    );

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000, 3).unwrap();
    // code → (version, when the prober saw it)
    let mut outstanding: HashMap<String, Vec<(i64, Instant)>> = HashMap::new();
    let started = Instant::now();
    let measure_from = started + Duration::from_secs(args.warmup);
    let measure_until = measure_from + Duration::from_secs(args.secs);
    let mut seen_changes = 0u64;
    let mut next_poll = Instant::now();
    while Instant::now() < measure_until
        || (!outstanding.is_empty() && Instant::now() < measure_until + Duration::from_secs(30))
    {
        if Instant::now() < measure_until {
            let page = feed
                .changes(&cursor, 1000, Duration::from_millis(0))
                .await
                .expect("changes");
            let now = Instant::now();
            for record in &page.records {
                if now >= measure_from {
                    seen_changes += 1;
                    outstanding
                        .entry(record.code.clone())
                        .or_default()
                        .push((record.version, now));
                }
            }
            cursor = page.next_cursor;
        }
        if Instant::now() >= next_poll && !outstanding.is_empty() {
            next_poll = Instant::now() + Duration::from_millis(5);
            let codes: Vec<&String> = outstanding.keys().collect();
            let json = serde_json::to_string(&codes).unwrap();
            let held: Vec<(String, i64)> = sqlx::query_as(
                "SELECT d.code, d.version FROM dossiers d JOIN json_each(?1) j ON d.code = j.value
                 UNION ALL
                 SELECT t.code, t.version FROM dossier_tombstones t JOIN json_each(?1) j ON t.code = j.value",
            )
            .bind(json)
            .fetch_all(&reader)
            .await
            .expect("read model query");
            let now = Instant::now();
            for (code, version) in held {
                if let Some(waiting) = outstanding.get_mut(&code) {
                    waiting.retain(|(v, at)| {
                        if *v <= version {
                            let ms = now.duration_since(*at).as_millis().max(1) as u64;
                            histogram.saturating_record(ms);
                            false
                        } else {
                            true
                        }
                    });
                    if waiting.is_empty() {
                        outstanding.remove(&code);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let unseen: usize = outstanding.values().map(Vec::len).sum();
    println!(
        "sync_lag through JetStream: {} changes in {} s ({:.0}/s), {} never visible",
        seen_changes,
        args.secs,
        seen_changes as f64 / args.secs as f64,
        unseen
    );
    println!(
        "change-to-visible lag ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.90),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max()
    );
    stop.cancel();
    let _ = tokio::join!(core_task, publisher_task, follower_task);
    reader.close().await;
    store.close().await;
    if let Ok(client) = async_nats::connect(args.nats_url.as_str()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
}
