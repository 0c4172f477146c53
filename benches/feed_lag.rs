//! Change-to-visible lag through the core feed: a synthetic core changes at
//! RATE changes/s (default 1000) for SECS seconds (default 30); the sync
//! worker follows it into a SQLite read model (a temp file, synchronous=FULL
//! as the gateway opens it). A prober follows the same feed and notes when
//! each change appeared there; a checker notes when the read model first
//! shows the change's version (or a later one). Lag = shown − appeared, for
//! one change in `SAMPLE` (default 5). Prints p50/p90/p99/max.
//!
//! `cargo bench --bench feed_lag` (release); RATE=2000 SECS=60 to vary.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use motcua_sms::domain::DossierCode;
use motcua_sms::feed::synthetic::{CoreSim, Settings};
use motcua_sms::feed::{ChangesPage, SnapshotPage};
use motcua_sms::store::Freshness;
use motcua_sms::store::{DossierLookup, SqliteStore};
use motcua_sms::sync::follower::FeedFollower;
use motcua_sms::sync::{FeedSettings, SyncMetrics};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = env("RATE", 1000);
    let secs = env("SECS", 30);
    let sample = env("SAMPLE", 5).max(1);
    let dossiers = env("DOSSIERS", 20_000) as usize;

    let core = CoreSim::bind(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        dossiers,
        changes_per_sec: 0.0,
        seed: 11,
        token: Some(TOKEN.to_owned()),
        retain: 10_000_000,
    })
    .await
    .expect("core binds");
    let addr = core.local_addr();
    let stop_core = CancellationToken::new();
    tokio::spawn(core.run(stop_core.clone()));

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/read.db", dir.path().display()))
        .await
        .unwrap();
    let settings = FeedSettings {
        url: format!("http://{addr}/"),
        token: TOKEN.to_owned(),
        wait_secs: 20,
        digest_interval_secs: 0,
        ..FeedSettings::default()
    };
    let follower = FeedFollower::new(
        store.clone(),
        settings,
        Arc::new(Freshness::always_fresh()),
        SyncMetrics::default(),
    )
    .unwrap();
    let stop_sync = CancellationToken::new();
    let sync_task = tokio::spawn(follower.run(stop_sync.clone()));

    let http = reqwest::Client::new();
    // Wait for the bootstrap to finish: the read model holds the snapshot.
    let first: SnapshotPage = http
        .get(format!("http://{addr}/v1/snapshot?limit=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bootstrap = Instant::now();
    while store.count().await.unwrap() < dossiers as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "bootstrap of {dossiers} dossiers: {:.2} s",
        bootstrap.elapsed().as_secs_f64()
    );

    // Changes to check: (code, version, when the prober saw it).
    let pending: Arc<Mutex<VecDeque<(String, i64, Instant)>>> = Arc::default();
    let stop_probe = CancellationToken::new();
    let prober = {
        let http = http.clone();
        let pending = pending.clone();
        let stop = stop_probe.clone();
        let mut cursor = first.head_cursor.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let page: ChangesPage = match http
                    .get(format!(
                        "http://{addr}/v1/changes?after={cursor}&limit=1000&wait=1"
                    ))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.unwrap(),
                    Err(_) => continue,
                };
                let seen = Instant::now();
                for r in page.records {
                    n += 1;
                    if n.is_multiple_of(sample) {
                        pending.lock().unwrap().push_back((r.code, r.version, seen));
                    }
                }
                cursor = page.next_cursor;
            }
        })
    };
    let stop_check = CancellationToken::new();
    let checker = {
        let store = store.clone();
        let pending = pending.clone();
        let stop = stop_check.clone();
        tokio::spawn(async move {
            let mut lags = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            loop {
                let next = pending.lock().unwrap().pop_front();
                let Some((code, version, seen)) = next else {
                    if stop.is_cancelled() {
                        return lags;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let code = DossierCode::parse(&code).unwrap();
                loop {
                    let held = store.find(&code).await.unwrap();
                    // A deleted dossier shows as absent.
                    if held.is_none_or(|d| d.version >= version) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                lags.record(seen.elapsed().as_micros().max(1) as u64)
                    .unwrap();
            }
        })
    };

    // The core changes at `rate`, in steps every 10 ms.
    let per_step = (rate / 100).max(1);
    let started = Instant::now();
    let mut steps = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        http.post(format!("http://{addr}/admin/step?n={per_step}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        steps += per_step;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_probe.cancel();
    let _ = prober.await;
    stop_check.cancel();
    let lags = checker.await.unwrap();
    stop_sync.cancel();
    let _ = sync_task.await;
    stop_core.cancel();
    let ms = |q: f64| lags.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "feed lag at {:.0} changes/s for {elapsed:.0} s ({} changes, {} sampled): \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        steps as f64 / elapsed,
        steps,
        lags.len(),
        ms(0.50),
        ms(0.90),
        ms(0.99),
        lags.max() as f64 / 1000.0
    );
}
