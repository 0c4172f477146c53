//! Two gateways sharing one PostgreSQL state database: what an admin does
//! on node A's console is in force on node B, checked through SMPP on B — a
//! template activated on A answers B's citizens, a number blocked on A gets
//! no answer from B — and B's console sees A's accounts, session, lists and
//! audit, and both nodes.
//!
//! Runs when `TEST_DATABASE_URL` names a PostgreSQL server.

use std::time::{Duration, Instant};

use motcua_sms::admin::accounts::Role;
use reqwest::StatusCode;
use serde_json::json;
use support::peer_esme::PeerEsme;
use support::temp_postgres::{maintenance_url, TempDatabase};
use support::{decode_parts, spawn_app_with, AppOptions, PASSWORD, SYSTEM_ID};

use crate::admin_api::Console;

const NEW_HELP: &str = "Soạn TC <mã hồ sơ> gửi 8058 để tra cứu (mẫu của nút A).";

fn node(url: &str, name: &str) -> AppOptions {
    AppOptions {
        shared_state: Some((url.to_owned(), name.to_owned())),
        rate_limit: motcua_sms::abuse::RateLimitSettings {
            enabled: false,
            ..Default::default()
        },
        ..AppOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
)]
async fn a_template_activated_and_a_number_blocked_on_node_a_hold_on_node_b() {
    let database = TempDatabase::create(&maintenance_url().expect("TEST_DATABASE_URL")).await;
    let a = spawn_app_with(node(&database.url, "gw-a")).await;
    let b = spawn_app_with(node(&database.url, "gw-b")).await;
    let password = a.admin_account("quantri", Role::Administrator).await;
    let console = Console::login(a.admin, "quantri", &password).await;

    // On A: a new help text, activated; a number blocked.
    let (status, saved) = console
        .post("/templates/help/versions", json!({"source": NEW_HELP}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let id = saved["id"].as_i64().unwrap();
    let (status, body) = console
        .post(
            &format!("/templates/help/versions/{id}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let activated = Instant::now();
    let (status, body) = console
        .post(
            "/lists/blocked",
            json!({"number": "0912000777", "reason": "thử trên nút A", "minutes": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Through SMPP on B: the new text answers, the blocked number is not answered.
    let mut peer = PeerEsme::bind_transceiver(b.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let mut asked = 0;
    let reply = loop {
        asked += 1;
        let citizen = format!("09120005{asked:02}");
        peer.submit(&citizen, "8058", 0, b"xin chao").await.unwrap();
        let text = reply_to(&mut peer, &citizen, Duration::from_secs(5))
            .await
            .expect("B answers");
        if text == NEW_HELP || activated.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reply, NEW_HELP, "B answers with A's activated template");
    println!(
        "A's template in force on B after {:?} ({asked} messages asked)",
        activated.elapsed()
    );
    peer.submit("0912000777", "8058", 0, b"xin chao")
        .await
        .unwrap();
    if let Some(text) = reply_to(&mut peer, "0912000777", Duration::from_secs(3)).await {
        panic!("B answered a number blocked on A: {text}");
    }

    // B's console: A's session is valid there, and it shows A's block and
    // audit entries, and both nodes.
    let mut on_b = Console::new(b.admin);
    on_b.cookie = console.cookie.clone();
    on_b.csrf = console.csrf.clone();
    let (status, me) = on_b.get("/session").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "quantri");
    let (_, lists) = on_b.get("/lists").await;
    assert_eq!(lists["blocked"][0]["number"], "84912000777", "{lists}");
    let (_, audit) = on_b.get("/audit?limit=50").await;
    let actions: Vec<&str> = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .unwrap_or_else(|| panic!("audit list: {audit}"))
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"template.activate"), "{audit}");
    let (_, channels) = on_b.get("/channels").await;
    let mut names: Vec<&str> = channels["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["gw-a", "gw-b"], "{channels}");

    a.stop().await;
    b.stop().await;
    database.drop().await;
}

/// The next reply B sends to `citizen` within `wait` (replies to others,
/// late ones of earlier questions, are passed over), as the handset shows it.
async fn reply_to(peer: &mut PeerEsme, citizen: &str, wait: Duration) -> Option<String> {
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let reply = peer.next_deliver(left).await?;
        if reply.destination_addr == citizen {
            return Some(decode_parts(&[reply]));
        }
    }
}
