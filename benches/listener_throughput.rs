//! End-to-end throughput and latency of the SMPP listener: peers bound as
//! transceivers submit citizens' messages (found, not found and help, mixed)
//! with a window of outstanding messages each; the time from submit_sm to the
//! reply's first deliver_sm is recorded. Prints MO→MT per second and latency
//! percentiles. Run with
//!
//! ```sh
//! cargo bench --bench listener_throughput -- [messages] [connections] [window]
//! ```
//!
//! The journal is a SQLite file, or, when `BENCH_JOURNAL_POSTGRES` names a
//! PostgreSQL server (`postgres://postgres@127.0.0.1:5432`), a fresh
//! database created on it for the run (and dropped after); its commits are
//! as durable as the server's `synchronous_commit`.
//!
//! The load generator runs in the same process and competes for the same
//! cores as the gateway, so the figures are a floor for the gateway alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use motcua_sms::app::Gateway;
use motcua_sms::config::Config;
use motcua_sms::import::import_json_lines;
use motcua_sms::smpp::pdu::{Bind, BindKind, Body, Pdu, ShortMessage};
use motcua_sms::smpp::session::{next_request, Connection};
use motcua_sms::smpp::{ListenerAccount, SessionSettings};
use motcua_sms::store::SqliteStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const TEXTS: [&str; 4] = [
    "TC 000.00.12.H58-240315-0007",
    "tc 38 98 h29 210519 3",
    "TC 000.00.12.H58-240315-0099",
    "xin chao",
];

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let messages = args.first().copied().unwrap_or(20_000);
    let connections = args.get(1).copied().unwrap_or(4);
    let window = args.get(2).copied().unwrap_or(50);

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}/bench.db", dir.path().display());
    config.journal.url = format!("sqlite://{}/journal.db", dir.path().display());
    let postgres = match std::env::var("BENCH_JOURNAL_POSTGRES") {
        Ok(server) if !server.trim().is_empty() => {
            let database = support::temp_postgres::TempDatabase::create(&server).await;
            config.journal.url = database.url.clone();
            Some(database)
        }
        _ => None,
    };
    if let Ok(mode) = std::env::var("BENCH_JOURNAL_SYNC") {
        config.journal.synchronous = match mode.as_str() {
            "off" => motcua_sms::journal::Durability::Off,
            "normal" => motcua_sms::journal::Durability::Normal,
            _ => motcua_sms::journal::Durability::Full,
        };
    }
    config.reply.templates_dir = dir.path().join("none");
    config.reply.accents = std::env::var("BENCH_ACCENTS").map_or(true, |v| v != "0");
    config.smpp.listener.bind = "127.0.0.1:0".parse().unwrap();
    config.smpp.listener.accounts = vec![ListenerAccount {
        system_id: "bench".into(),
        password: "bench".into(),
        ..ListenerAccount::default()
    }];
    let store = SqliteStore::open(&config.database.url).await.unwrap();
    let sample = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/sample-dossiers.jsonl"
    ))
    .unwrap();
    import_json_lines(&store, std::io::BufReader::new(sample))
        .await
        .unwrap();
    store.close().await;

    let gateway = Gateway::build(&config).await.unwrap();
    let addr = gateway.listener_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(gateway.run(shutdown.clone()));

    let per_connection = messages / connections;
    // Replies for an account may arrive on any of its connections, so the
    // bookkeeping is shared by all peers.
    let shared = Arc::new(Shared {
        sent: Mutex::default(),
        latencies: Mutex::new(Vec::with_capacity(messages)),
        slots: Semaphore::new(window * connections),
        remaining: std::sync::atomic::AtomicUsize::new(per_connection * connections),
        all_done: CancellationToken::new(),
    });
    let started = Instant::now();
    let mut peers = Vec::new();
    for c in 0..connections {
        let shared = shared.clone();
        peers.push(tokio::spawn(async move {
            run_peer(addr, c, per_connection, shared).await
        }));
    }
    for p in peers {
        p.await.unwrap();
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    server.await.unwrap();

    let mut lat = shared.latencies.lock().unwrap().clone();
    lat.sort();
    let done = lat.len();
    let pct = |p: f64| lat[((done as f64 * p) as usize).min(done - 1)];
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "listener_throughput: {done} messages, {connections} connections, window {window} per connection, journal on {engine}"
    );
    println!(
        "  throughput: {:.0} MO->MT/s over {:.2} s",
        done as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency submit_sm -> first deliver_sm: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(lat[done - 1])
    );
    if let Some(database) = postgres {
        database.drop().await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Bookkeeping shared by every peer.
struct Shared {
    /// Send time per sender address (each message has its own sender).
    sent: Mutex<HashMap<String, Instant>>,
    latencies: Mutex<Vec<Duration>>,
    /// Outstanding messages allowed across all peers.
    slots: Semaphore,
    remaining: std::sync::atomic::AtomicUsize,
    all_done: CancellationToken,
}

/// One bound peer: submits `count` messages while slots allow, and
/// acknowledges every reply that reaches it (for any peer's message).
async fn run_peer(addr: std::net::SocketAddr, index: usize, count: usize, shared: Arc<Shared>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut conn = Connection::new(stream, &SessionSettings::default()).unwrap();
    let link = conn.link.clone();
    let sender = {
        let link = link.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            link.request(Body::Bind(Bind::new(
                BindKind::Transceiver,
                "bench",
                "bench",
            )))
            .await
            .expect("bind");
            for i in 0..count {
                shared.slots.acquire().await.unwrap().forget();
                // A distinct sender per message pairs each reply with its submit.
                let source = format!("849{:02}{:06}", index % 100, i);
                shared
                    .sent
                    .lock()
                    .unwrap()
                    .insert(source.clone(), Instant::now());
                let sm = ShortMessage {
                    source_addr_ton: 1,
                    source_addr_npi: 1,
                    source_addr: source,
                    destination_addr: "8058".into(),
                    short_message: TEXTS[i % TEXTS.len()].as_bytes().to_vec(),
                    ..ShortMessage::default()
                };
                let link = link.clone();
                tokio::spawn(async move {
                    link.request(Body::SubmitSm(sm))
                        .await
                        .expect("submit accepted");
                });
            }
        })
    };
    loop {
        let pdu = tokio::select! {
            _ = shared.all_done.cancelled() => break,
            pdu = next_request(&mut conn) => pdu,
        };
        let Some(pdu) = pdu else {
            panic!("listener closed the connection");
        };
        if let Body::DeliverSm(sm) = &pdu.body {
            let _ = link
                .send(Pdu::deliver_sm_resp(pdu.sequence_number, 0))
                .await;
            // Count a reply once, at its first part.
            let first_part = sm.esm_class & 0x40 == 0 || sm.short_message.get(5) == Some(&1);
            if first_part {
                let sent = shared.sent.lock().unwrap().remove(&sm.destination_addr);
                if let Some(t) = sent {
                    shared.latencies.lock().unwrap().push(t.elapsed());
                    shared.slots.add_permits(1);
                    let left = shared
                        .remaining
                        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                        - 1;
                    if left == 0 {
                        shared.all_done.cancel();
                        break;
                    }
                }
            }
        } else if let Body::EnquireLink = pdu.body {
            let _ = link
                .send(Pdu::new(pdu.sequence_number, Body::EnquireLinkResp))
                .await;
        }
    }
    sender.await.unwrap();
    let unbind = tokio::spawn(async move { link.request(Body::Unbind).await });
    let drain = async { while next_request(&mut conn).await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    let _ = unbind.await;
}
