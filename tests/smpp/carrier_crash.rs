//! Crashes in the carrier (ESME) role, the production topology: the gateway
//! binary is bound to an independent SMSC (node-smpp, `tests/peers/node/
//! carrier.js`) that redelivers every `deliver_sm` whose `deliver_sm_resp`
//! it did not get before the connection ended, as carriers do, and is
//! killed with SIGKILL five times while citizens' messages keep coming.
//! Counted on the SMSC's side: every message is answered, and a citizen
//! sees at most one extra copy of a reply per kill that fell between the
//! message's arrival and its reply. The window that causes such a copy:
//! a reply the SMSC accepted (submit_sm_resp written) before the kill, but
//! whose acceptance the journal had not yet recorded, is sent again after
//! the restart. A redelivered message is never answered as a new one.
//!
//! Runs when `TEST_NODE_SMPP_DIR` names the directory whose
//! `node_modules` holds npm smpp 0.5.1, with `node` on PATH.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::node_peer::{node_dir, NodePeer};
use support::process::Process;
use support::smsc_tally::{take, Seen};

const MESSAGES: usize = 150;
const KILLS: usize = 5;

/// The gateway bound to the node SMSC on `smsc_port`, its listener off;
/// the first start imports the sample dossiers.
fn gateway(dir: &Path, smsc_port: u16) -> Process {
    let mut process = Process::importing_the_sample(dir);
    process.set_config(format!(
        "[smpp.listener]\nenabled = false\n\
         [[smpp.smsc]]\nname = \"node\"\nhost = \"127.0.0.1\"\nport = {smsc_port}\n\
         system_id = \"motcua\"\npassword = \"secret\"\nreconnect_delay_ms = 100\n"
    ));
    process.set_env("MOTCUA_REPLY__ACCENTS", "true");
    process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
    process
}

/// Starts it (again), with an operations port of its own each time.
fn start(gateway: &mut Process) {
    gateway.set_env(
        "MOTCUA_HTTP__BIND",
        format!("127.0.0.1:{}", support::process::free_port()),
    );
    gateway.start();
    gateway.set_args(["run"]);
}

fn citizen(i: usize) -> String {
    format!("84987{i:06}")
}

fn text_for(i: usize) -> String {
    match i % 3 {
        0 => format!("TC {}", support::KNOWN_CODE),
        1 => format!("TC 000.00.12.H58-240315-{:04}", 100 + i),
        _ => "xin chao".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn sigkill_while_bound_to_a_redelivering_smsc_repeats_at_most_one_reply_per_kill() {
    let node = node_dir();
    let dir = tempfile::tempdir().unwrap();
    // The SMSC answers each submit_sm 150 ms after taking it: a kill then
    // often falls inside the window a copy comes from.
    let mut smsc = NodePeer::start(
        &node,
        "carrier.js",
        &["motcua".into(), "secret".into(), "150".into()],
    )
    .await;
    let listening = smsc.expect("listening").await;
    let port = listening["port"].as_u64().unwrap() as u16;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("carrier crash test seed {seed}");
    let mut rng = seed;
    let mut random = move |below: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % below
    };

    let mut gateway = gateway(dir.path(), port);
    start(&mut gateway);
    smsc.expect("bound").await;

    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut kills: Vec<Instant> = Vec::new();
    let mut next_kill = Instant::now() + Duration::from_millis(400 + random(900));
    let mut sent = 0;
    while sent < MESSAGES || kills.len() < KILLS {
        if sent < MESSAGES {
            let i = sent;
            seen.entry(citizen(i)).or_default().asked_at = Some(Instant::now());
            smsc.send(json!({"cmd": "mo", "id": citizen(i), "from": citizen(i), "to": "8058", "text": text_for(i)}))
                .await;
            sent += 1;
        }
        if kills.len() < KILLS && Instant::now() >= next_kill {
            assert!(gateway.pid().is_some(), "the gateway runs");
            gateway.kill();
            kills.push(Instant::now());
            start(&mut gateway);
            next_kill = Instant::now() + Duration::from_millis(700 + random(900));
        }
        let pause = Instant::now() + Duration::from_millis(25);
        while let Some(event) = smsc
            .next_event(pause.saturating_duration_since(Instant::now()))
            .await
        {
            take(&event, Instant::now(), &mut seen, &mut counts);
        }
    }

    // Every message answered; then time for late copies to show.
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.values().any(|s| !s.answered()) && Instant::now() < deadline {
        if let Some(event) = smsc.next_event(Duration::from_millis(200)).await {
            take(&event, Instant::now(), &mut seen, &mut counts);
        }
    }
    let quiet = Instant::now() + Duration::from_secs(5);
    while let Some(event) = smsc
        .next_event(quiet.saturating_duration_since(Instant::now()))
        .await
    {
        take(&event, Instant::now(), &mut seen, &mut counts);
    }
    gateway.stop();

    let unanswered: Vec<&String> = seen
        .iter()
        .filter(|(_, s)| !s.answered())
        .map(|(c, _)| c)
        .collect();
    assert!(
        unanswered.is_empty(),
        "not answered: {unanswered:?}\n{}",
        gateway.logs()
    );
    let mut extra = 0;
    let mut over = Vec::new();
    for (number, s) in &seen {
        let (Some(asked), Some(last)) = (s.asked_at, s.last_part_at) else {
            continue;
        };
        let kills_in_flight = kills.iter().filter(|k| **k >= asked && **k <= last).count();
        extra += s.copies() - 1;
        if s.copies() > 1 + kills_in_flight {
            over.push(format!(
                "{number}: {} copies, {kills_in_flight} kills while in flight, parts {:?}, {} deliveries",
                s.copies(),
                s.parts,
                s.deliveries
            ));
        }
    }
    println!(
        "carrier crash test: {MESSAGES} messages, {KILLS} kills, SMSC events {counts:?}, \
         {extra} extra copies seen by citizens"
    );
    assert!(
        over.is_empty(),
        "more than one extra copy per kill:\n{}\n{}",
        over.join("\n"),
        gateway.logs()
    );
    assert_eq!(kills.len(), KILLS);
    // Redelivered messages were taken as the same message: one journal
    // row per citizen, however many deliveries.
    let journal =
        sqlx::SqlitePool::connect(&format!("sqlite://{}/journal.db", dir.path().display()))
            .await
            .unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT sender, count(*) FROM messages GROUP BY sender")
            .fetch_all(&journal)
            .await
            .unwrap();
    journal.close().await;
    let twice: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        twice.is_empty(),
        "messages recorded more than once: {twice:?}"
    );
    assert_eq!(rows.len(), MESSAGES);
}
