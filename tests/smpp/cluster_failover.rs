//! A redundant pair: two gateway processes sharing one PostgreSQL state
//! database, both bound as ESMEs to the same independent SMSC (node-smpp,
//! `tests/peers/node/carrier.js`, which delivers to its bound sessions in
//! turn and redelivers what a dropped session did not acknowledge).
//! Citizens' messages keep coming while one node is SIGKILLed three times
//! (restarted each time), then frozen with SIGSTOP for three lease lengths.
//! Counted on the SMSC's side: every message is answered, each recorded
//! once in the shared journal, and a citizen sees a reply twice only in the
//! window a kill or a freeze can always open (a part the SMSC accepted but
//! the journal had not recorded): at most one extra copy per such event
//! while the citizen's message was in flight. The frozen node, when it
//! wakes, does not send what the other node took over meanwhile.
//!
//! Runs when `TEST_NODE_SMPP_DIR` names npm smpp's directory and
//! `TEST_DATABASE_URL` a PostgreSQL server to create a database on.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::node_peer::{node_dir, NodePeer};
use support::process::Process;
use support::smsc_tally::{take, Seen};
use support::temp_postgres::{maintenance_url, TempDatabase};

const MESSAGES: usize = 2_000;
const KILLS: usize = 3;
const FROZEN_MESSAGES: usize = 400;
const LEASE_MS: u64 = 2_000;

/// A node of the pair: its own read model (the sample dossiers), the
/// shared state database, bound to the SMSC, its listener off.
fn node(dir: &Path, name: &str, smsc_port: u16, state_url: &str) -> Process {
    let mut process = Process::importing_the_sample(dir).named(name);
    process.set_config(format!(
        "[smpp.listener]\nenabled = false\n\
         [cluster]\nnode = \"{name}\"\nlease_ms = {LEASE_MS}\n\
         [[smpp.smsc]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {smsc_port}\n\
         system_id = \"motcua\"\npassword = \"secret\"\nreconnect_delay_ms = 100\n"
    ));
    process.set_env("MOTCUA_JOURNAL__URL", state_url);
    process.set_env("MOTCUA_REPLY__ACCENTS", "true");
    process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
    process
}

/// Starts it (again), with an operations port of its own each time.
fn start(node: &mut Process) {
    node.set_env(
        "MOTCUA_HTTP__BIND",
        format!("127.0.0.1:{}", support::process::free_port()),
    );
    node.start();
    node.set_args(["run"]);
}

fn citizen(i: usize) -> String {
    format!("84988{i:06}")
}

fn text_for(i: usize) -> String {
    match i % 3 {
        0 => format!("TC {}", support::KNOWN_CODE),
        1 => format!("TC 000.00.12.H58-240315-{:04}", 100 + i % 1000),
        _ => "xin chao".to_owned(),
    }
}

/// The SMSC's events, tallied, while the test paces its messages.
struct Smsc {
    peer: NodePeer,
    seen: BTreeMap<String, Seen>,
    counts: BTreeMap<String, usize>,
}

impl Smsc {
    async fn ask(&mut self, i: usize) {
        self.seen.entry(citizen(i)).or_default().asked_at = Some(Instant::now());
        self.peer
            .send(json!({"cmd": "mo", "id": citizen(i), "from": citizen(i), "to": "8058", "text": text_for(i)}))
            .await;
    }

    /// Takes the SMSC's events for `wait`.
    async fn listen(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while let Some(event) = self
            .peer
            .next_event(until.saturating_duration_since(Instant::now()))
            .await
        {
            take(&event, Instant::now(), &mut self.seen, &mut self.counts);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(test_node_smpp_dir, test_database_url)),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node) and TEST_DATABASE_URL (PostgreSQL)"
)]
async fn a_pair_on_one_postgres_answers_everything_once_across_kills_and_a_freeze() {
    let database = TempDatabase::create(&maintenance_url().expect("TEST_DATABASE_URL")).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The SMSC answers each submit_sm 150 ms after taking it: a kill then
    // often falls inside the window a copy comes from.
    let peer = NodePeer::start(
        &node_dir(),
        "carrier.js",
        &["motcua".into(), "secret".into(), "150".into()],
    )
    .await;
    let mut smsc = Smsc {
        peer,
        seen: BTreeMap::new(),
        counts: BTreeMap::new(),
    };
    let port = smsc.peer.expect("listening").await["port"]
        .as_u64()
        .unwrap() as u16;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("cluster failover test seed {seed}");
    let mut rng = seed;
    let mut random = move |below: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % below
    };

    let mut a = node(dir_a.path(), "gw-a", port, &database.url);
    let mut b = node(dir_b.path(), "gw-b", port, &database.url);
    start(&mut a);
    smsc.peer.expect("bound").await;
    start(&mut b);
    smsc.peer.expect("bound").await;

    // Under load, B is killed three times at random moments and restarted.
    let mut disruptions: Vec<Instant> = Vec::new();
    let mut next_kill = Instant::now() + Duration::from_millis(1_500 + random(2_000));
    for i in 0..MESSAGES {
        smsc.ask(i).await;
        if disruptions.len() < KILLS && Instant::now() >= next_kill {
            b.kill();
            disruptions.push(Instant::now());
            start(&mut b);
            next_kill = Instant::now() + Duration::from_millis(1_500 + random(2_000));
        }
        smsc.listen(Duration::from_millis(4)).await;
    }
    while disruptions.len() < KILLS {
        smsc.listen(Duration::from_millis(200)).await;
        b.kill();
        disruptions.push(Instant::now());
        start(&mut b);
    }

    // Then B is frozen for three lease lengths while messages keep coming:
    // A takes over what B held; B, thawed, must not send it.
    for i in MESSAGES..MESSAGES + FROZEN_MESSAGES {
        if i == MESSAGES + 50 {
            b.freeze();
            disruptions.push(Instant::now());
        }
        if i == MESSAGES + FROZEN_MESSAGES - 50 {
            let frozen = *disruptions.last().unwrap();
            let thaw_at = frozen + Duration::from_millis(3 * LEASE_MS);
            smsc.listen(thaw_at.saturating_duration_since(Instant::now()))
                .await;
            b.thaw();
        }
        smsc.ask(i).await;
        smsc.listen(Duration::from_millis(10)).await;
    }

    // Every message answered; then time for late copies to show.
    let deadline = Instant::now() + Duration::from_secs(120);
    while smsc.seen.values().any(|s| !s.answered()) && Instant::now() < deadline {
        smsc.listen(Duration::from_millis(200)).await;
    }
    smsc.listen(Duration::from_secs(5)).await;
    a.stop();
    b.stop();
    let logs = || {
        format!(
            "=== gw-a ===\n{}\n=== gw-b ===\n{}",
            tail(&a.logs()),
            tail(&b.logs())
        )
    };

    let unanswered: Vec<&String> = smsc
        .seen
        .iter()
        .filter(|(_, s)| !s.answered())
        .map(|(c, _)| c)
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} not answered, e.g. {:?}\n{}",
        unanswered.len(),
        &unanswered[..unanswered.len().min(10)],
        logs()
    );
    let mut extra = 0;
    let mut over = Vec::new();
    for (number, s) in &smsc.seen {
        let (Some(asked), Some(last)) = (s.asked_at, s.last_part_at) else {
            continue;
        };
        let in_flight = disruptions
            .iter()
            .filter(|d| **d >= asked && **d <= last)
            .count();
        extra += s.copies() - 1;
        if s.copies() > 1 + in_flight {
            over.push(format!(
                "{number}: {} copies, {in_flight} disruptions while in flight, parts {:?}, {} deliveries",
                s.copies(),
                s.parts,
                s.deliveries
            ));
        }
    }
    println!(
        "cluster failover test: {} messages, {KILLS} kills and a freeze, SMSC events {:?}, \
         {extra} extra copies seen by citizens",
        MESSAGES + FROZEN_MESSAGES,
        smsc.counts
    );
    assert!(
        over.is_empty(),
        "more than one extra copy per disruption:\n{}\n{}",
        over.join("\n"),
        logs()
    );
    assert!(
        a.logs().contains("took over a node"),
        "gw-a never took gw-b over\n{}",
        logs()
    );

    // Each message recorded once in the shared journal, however many
    // deliveries and whichever node took it.
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT sender, count(*) FROM messages GROUP BY sender")
            .fetch_all(&pool)
            .await
            .unwrap();
    let by_node: Vec<(String, i64)> =
        sqlx::query_as("SELECT node, count(*) FROM messages GROUP BY node ORDER BY node")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    println!("messages answered by node: {by_node:?}");
    let twice: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        twice.is_empty(),
        "messages recorded more than once: {twice:?}"
    );
    assert_eq!(rows.len(), MESSAGES + FROZEN_MESSAGES);
    assert_eq!(by_node.len(), 2, "both nodes answered: {by_node:?}");
    database.drop().await;
}

/// The last lines of a log, enough to see what went wrong.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
