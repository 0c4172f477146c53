//! The state database's PostgreSQL server crashes and comes back while a
//! carrier keeps delivering: the gateway acknowledges only what it could
//! record (every message the SMSC saw acknowledged is in the database
//! afterwards, although the crash lost everything uncommitted), refuses or
//! holds the rest, and when the server is back answers every citizen, each
//! message recorded once. The same with a pair of gateways sharing the
//! server, both bound to the carrier: the server's absence outlasts their
//! leases, so when it is back each may find the other lapsed and take it
//! over (both may, at once), and still every citizen is answered.
//!
//! A server of the test's own (`support::private_postgres`), since the
//! shared one serves other tests. Runs when `TEST_NODE_SMPP_DIR` names npm
//! smpp's directory and `TEST_DATABASE_URL` says PostgreSQL is installed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use support::node_peer::{node_dir, NodePeer};
use support::private_postgres::PrivatePostgres;
use support::process::Process;
use support::smsc_tally::{take, Seen};

const MESSAGES: usize = 600;
const DOWN: Duration = Duration::from_secs(3);

fn citizen(i: usize) -> String {
    format!("84989{i:06}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(test_node_smpp_dir, test_database_url)),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node) and TEST_DATABASE_URL (PostgreSQL installed)"
)]
async fn a_crashed_state_server_loses_no_acknowledged_message_and_all_are_answered_after() {
    crash_the_state_server_under(&["gw-a"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(test_node_smpp_dir, test_database_url)),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node) and TEST_DATABASE_URL (PostgreSQL installed)"
)]
async fn a_pair_whose_state_server_crashes_loses_no_acknowledged_message_and_answers_all_after() {
    crash_the_state_server_under(&["gw-a", "gw-b"]).await;
}

/// A gateway per name, bound to one carrier, sharing one state server that
/// crashes a third of the way through the citizens' messages.
async fn crash_the_state_server_under(nodes: &[&str]) {
    let server = PrivatePostgres::start();
    server.create_database("state");
    let mut smsc = NodePeer::start(
        &node_dir(),
        "carrier.js",
        &["motcua".into(), "secret".into()],
    )
    .await;
    let port = smsc.expect("listening").await["port"].as_u64().unwrap() as u16;
    let dirs: Vec<tempfile::TempDir> = nodes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut gateways: Vec<Process> = Vec::new();
    for (name, dir) in nodes.iter().zip(&dirs) {
        let mut gateway = Process::importing_the_sample(dir.path()).named(name);
        gateway.set_config(format!(
            "[smpp.listener]\nenabled = false\n\
             [cluster]\nnode = \"{name}\"\nlease_ms = 2000\n\
             [[smpp.smsc]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             system_id = \"motcua\"\npassword = \"secret\"\nreconnect_delay_ms = 100\n"
        ));
        gateway.set_env("MOTCUA_JOURNAL__URL", server.database_url("state"));
        gateway.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
        gateway.set_env(
            "MOTCUA_HTTP__BIND",
            format!("127.0.0.1:{}", support::process::free_port()),
        );
        gateway.start();
        smsc.expect("bound").await;
        gateways.push(gateway);
    }

    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut listen = |smsc_events: Vec<serde_json::Value>,
                      seen: &mut BTreeMap<String, Seen>,
                      counts: &mut BTreeMap<String, usize>| {
        for event in smsc_events {
            if event["event"] == "acked" {
                acked.insert(event["id"].as_str().unwrap_or_default().to_owned());
            }
            take(&event, Instant::now(), seen, counts);
        }
    };
    let mut crashed_at = None;
    for i in 0..MESSAGES {
        if i == MESSAGES / 3 {
            server.crash();
            crashed_at = Some(Instant::now());
        }
        if let Some(at) = crashed_at {
            if at.elapsed() >= DOWN {
                server.start_again();
                crashed_at = None;
            }
        }
        seen.entry(citizen(i)).or_default().asked_at = Some(Instant::now());
        smsc.send(json!({"cmd": "mo", "id": citizen(i), "from": citizen(i), "to": "8058", "text": format!("TC {}", support::KNOWN_CODE)}))
            .await;
        let events = drain(&mut smsc, Duration::from_millis(10)).await;
        listen(events, &mut seen, &mut counts);
    }
    if crashed_at.is_some() {
        tokio::time::sleep(DOWN).await;
        server.start_again();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.values().any(|s| !s.answered()) && Instant::now() < deadline {
        let events = drain(&mut smsc, Duration::from_millis(200)).await;
        listen(events, &mut seen, &mut counts);
    }
    for gateway in &mut gateways {
        gateway.stop();
    }
    let logs = || {
        gateways
            .iter()
            .zip(nodes)
            .map(|(gateway, name)| format!("=== {name} ===\n{}", gateway.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let unanswered = seen.values().filter(|s| !s.answered()).count();
    assert_eq!(
        unanswered,
        0,
        "citizens not answered after the server came back; SMSC events {counts:?}\n{}\n{}",
        logs(),
        server.log()
    );
    // While the server was down the gateway held or refused messages
    // rather than acknowledging them.
    let held = counts.get("refused").copied().unwrap_or(0)
        + counts.get("redeliver").copied().unwrap_or(0)
        + (counts.get("deliver").copied().unwrap_or(0) - MESSAGES);
    println!("state server crash test: SMSC events {counts:?}");
    let pool = sqlx::PgPool::connect(&server.database_url("state"))
        .await
        .unwrap();
    let recorded: Vec<(String, i64)> =
        sqlx::query_as("SELECT sender, count(*) FROM messages GROUP BY sender")
            .fetch_all(&pool)
            .await
            .unwrap();
    let answered_by: Vec<(String, i64)> =
        sqlx::query_as("SELECT node, count(*) FROM messages GROUP BY node ORDER BY node")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let takeovers: Vec<usize> = gateways
        .iter()
        .map(|gateway| gateway.logs().matches("took over a node").count())
        .collect();
    println!("messages answered by node: {answered_by:?}; takeovers by node {takeovers:?}");
    if nodes.len() > 1 {
        assert_eq!(
            answered_by.len(),
            nodes.len(),
            "every node of the pair answered: {answered_by:?}"
        );
    }
    let recorded: BTreeMap<String, i64> = recorded.into_iter().collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|c| !recorded.contains_key(*c))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not in the database after the crash: {lost:?}"
    );
    let twice: Vec<(&String, &i64)> = recorded.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    assert_eq!(recorded.len(), MESSAGES);
    assert!(
        held > 0,
        "the crash held back no delivery, so the test proved nothing: {counts:?}"
    );
}

/// The SMSC's events for `wait`.
async fn drain(smsc: &mut NodePeer, wait: Duration) -> Vec<serde_json::Value> {
    let until = Instant::now() + wait;
    let mut events = Vec::new();
    while let Some(event) = smsc
        .next_event(until.saturating_duration_since(Instant::now()))
        .await
    {
        events.push(event);
    }
    events
}
