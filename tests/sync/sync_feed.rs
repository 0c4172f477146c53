//! The gateway following a core's feed, end to end: the gateway binary runs
//! with `sync.mode = "feed"` against the synthetic core over real sockets.
//!
//! - Bootstrap, streaming, and SIGKILL at random moments (mid-snapshot and
//!   mid-stream), restarted each time: the read model converges to the core
//!   exactly, and replies polled all along never show a status older than
//!   one already shown (checked against the core's own history).
//! - `410 cursor_expired` and a new epoch bring a new snapshot.
//! - A core that stops answering: replies keep coming, labelled with the
//!   data's date; on recovery the label goes away.
//! - The push webhook: signed batches apply once; bad signatures are refused.
//!
//! Every scenario runs with the read model in SQLite and, when
//! `TEST_DATABASE_URL` names a PostgreSQL server, in a fresh PostgreSQL
//! database of its own (`sqlite::*` and `postgres::*`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use motcua_sms::store::{DossierLookup, DossierWriter};
use support::core::{first_step_back, status_in_reply, Core, History, TOKEN};
use support::gateway::{GatewayProcess, STALE_LABEL};
use support::process::free_port;
use tokio_util::sync::CancellationToken;

async fn killed_mid_batch_it_converges_exactly_and_replies_never_go_back(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(400, 1_000_000).await;
    let history_stop = CancellationToken::new();
    let history = tokio::spawn(History::default().follow(core.addr, history_stop.clone()));
    // Small snapshot pages, so that a kill can land mid-snapshot.
    let mut gateway = GatewayProcess::new(
        dir.path(),
        &core.url(),
        &[
            ("MOTCUA_SYNC__FEED__SNAPSHOT_PAGE", "20"),
            ("MOTCUA_SYNC__FEED__BATCH", "50"),
        ],
    )
    .with_database(database);
    gateway.start();
    // A first kill early, most likely mid-snapshot.
    tokio::time::sleep(Duration::from_millis(150)).await;
    gateway.kill();
    gateway.start();
    gateway.wait_streaming(Duration::from_secs(60)).await;

    // Codes of open dossiers, to watch while they move.
    let watched = core.open_codes(400, 6).await;

    // The core changes at ~400/s while the gateway is killed three times.
    let stepping = CancellationToken::new();
    let stepper = core.keep_stepping(stepping.clone());
    let mut observed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let started = Instant::now();
    let mut kills = 0;
    let kill_at = [
        Duration::from_secs(2),
        Duration::from_secs(5),
        Duration::from_secs(8),
    ];
    while started.elapsed() < Duration::from_secs(11) {
        if kills < kill_at.len() && started.elapsed() >= kill_at[kills] {
            gateway.kill();
            kills += 1;
            gateway.start();
        }
        for code in &watched {
            if let Some(text) = gateway.ask(code).await {
                let status = status_in_reply(&text)
                    .unwrap_or_else(|| panic!("no status in the reply {text:?}"));
                observed.entry(code.clone()).or_default().push(status);
            }
        }
    }
    stepping.cancel();
    let steps = stepper.await.unwrap();
    assert!(steps >= 1000, "the core changed only {steps} times");
    gateway.wait_converged(&core, Duration::from_secs(60)).await;
    gateway.assert_same_records(&core).await;

    // Replies after convergence, then the history is complete.
    for code in &watched {
        let text = gateway.answer(code).await;
        observed
            .entry(code.clone())
            .or_default()
            .push(status_in_reply(&text).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    history_stop.cancel();
    let history = history.await.unwrap();
    let mut seen = 0;
    for (code, statuses) in &observed {
        let states = history.of(code);
        seen += statuses.len();
        assert_eq!(
            first_step_back(&states, statuses),
            None,
            "dossier {code}: replies showed {statuses:?}, the core went through {states:?}"
        );
    }
    assert!(seen >= 30, "only {seen} replies observed");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("motcua_sync_changes_applied_total"),
        "{metrics}"
    );
    gateway.stop();
    core.stop().await;
}

async fn an_expired_cursor_and_a_new_epoch_each_bring_a_new_snapshot(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(100, 50).await;
    let mut gateway = GatewayProcess::new(dir.path(), &core.url(), &[]).with_database(database);
    gateway.start();
    gateway.wait_converged(&core, Duration::from_secs(30)).await;

    // While the gateway is down the core moves past its retained log.
    gateway.stop();
    core.step(300).await;
    gateway.start();
    gateway.wait_converged(&core, Duration::from_secs(30)).await;
    gateway.assert_same_records(&core).await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("motcua_sync_snapshots_total{reason=\"cursor_expired\"} 1"),
        "{metrics}"
    );

    // The core's history is reset: a new epoch.
    core.reset_epoch().await;
    core.step(40).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = gateway.metrics().await;
        if metrics.contains("motcua_sync_snapshots_total{reason=\"epoch_changed\"}") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new snapshot on the epoch change\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway.wait_converged(&core, Duration::from_secs(30)).await;
    gateway.assert_same_records(&core).await;
    let store = gateway.store().await;
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.checkpoint.epoch, core.digest(1).await.epoch);
    store.close().await;

    // `motcua-sms status` tells the story.
    let output = Command::new(support::bin())
        .current_dir(dir.path())
        .env("MOTCUA_DATABASE__URL", gateway.db_url())
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("following changes"), "{text}");
    assert!(text.contains("read model: "), "{text}");
    gateway.stop();
    core.stop().await;
}

async fn the_digest_finds_and_repairs_a_dossier_changed_behind_the_feed(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(60, 10_000).await;
    let mut gateway = GatewayProcess::new(
        dir.path(),
        &core.url(),
        &[
            ("MOTCUA_SYNC__FEED__DIGEST_INTERVAL_SECS", "1"),
            ("MOTCUA_SYNC__FEED__DIGEST_BUCKETS", "16"),
        ],
    )
    .with_database(database);
    gateway.start();
    core.step(30).await;
    gateway.wait_converged(&core, Duration::from_secs(30)).await;
    let code = core.first_page(1).await.records[0].code.clone();
    let version = core.silent_change(&code).await;
    // The log has nothing for it: only the digest comparison can repair it.
    gateway.wait_converged(&core, Duration::from_secs(30)).await;
    gateway.assert_same_records(&core).await;
    let store = gateway.store().await;
    let held = store
        .find(&motcua_sms::domain::DossierCode::parse(&code).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.version, version);
    store.close().await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("motcua_sync_repaired_dossiers_total 1"),
        "{metrics}\n{}",
        gateway.logs()
    );
    gateway.stop();
    core.stop().await;
}

async fn while_the_core_is_down_replies_carry_the_data_date_until_it_is_back(
    database: Option<&str>,
) {
    let dir = tempfile::tempdir().unwrap();
    // The core as a process of its own, so that it can be frozen (SIGSTOP).
    let core_port = free_port();
    let mut core = Command::new(support::bin())
        .args([
            "core-sim",
            "--listen",
            &format!("127.0.0.1:{core_port}"),
            "--dossiers",
            "30",
            "--changes-per-sec",
            "0",
            "--token",
            TOKEN,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let core_url = format!("http://127.0.0.1:{core_port}/");
    let first: motcua_sms::feed::SnapshotPage = loop {
        let answer = reqwest::Client::new()
            .get(format!("{core_url}v1/snapshot?limit=1"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(response) = answer {
            break response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let code = first.records[0].code.clone();
    let mut gateway = GatewayProcess::new(
        dir.path(),
        &core_url,
        &[("MOTCUA_SYNC__STALE_AFTER_SECS", "2")],
    )
    .with_database(database);
    gateway.start();
    gateway.wait_streaming(Duration::from_secs(30)).await;
    let fresh = gateway.answer(&code).await;
    assert!(status_in_reply(&fresh).is_some_and(|s| s > 0), "{fresh}");
    assert!(!fresh.contains(STALE_LABEL), "{fresh}");

    let pid = core.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stale = gateway
        .answer_until_labelled(&code, true, Duration::from_secs(20))
        .await;
    assert!(status_in_reply(&stale).is_some_and(|s| s > 0), "{stale}");
    let metrics = gateway.metrics().await;
    assert!(metrics.contains("motcua_sync_stale 1"), "{metrics}");
    let output = Command::new(support::bin())
        .current_dir(dir.path())
        .env("MOTCUA_DATABASE__URL", gateway.db_url())
        .env("MOTCUA_SYNC__STALE_AFTER_SECS", "2")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "status exits 3 when stale");
    assert!(String::from_utf8_lossy(&output.stdout).contains("STALE"));

    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    gateway
        .answer_until_labelled(&code, false, Duration::from_secs(30))
        .await;
    gateway.stop();
    let _ = core.kill();
    let _ = core.wait();
}

async fn pushed_batches_apply_once_and_unsigned_ones_are_refused(database: Option<&str>) {
    use motcua_sms::sync::push::PushOutcome;
    use support::gateway::push;
    let dir = tempfile::tempdir().unwrap();
    let secret = "push-secret-0123456789";
    // No feed: the core pushes.
    let mut gateway = GatewayProcess::pushed_to(dir.path(), secret).with_database(database);
    gateway.start();
    let body = serde_json::json!({
        "batch_id": "b-1",
        "epoch": "core-1",
        "records": [
            {"MaHoSo": "000.00.12.H58-240315-0101", "TrangThaiHoSo": 4, "version": 3,
             "NgayHenTra": "20991231170000"},
            {"MaHoSo": "000.00.12.H58-240315-0102", "TrangThaiHoSo": 2, "version": 1},
            {"MaHoSo": "000.00.12.H58-240315-0102", "version": 2, "deleted": true},
            {"MaHoSo": "000.00.12.H58-240315-0103", "TrangThaiHoSo": 77, "version": 1}
        ]
    })
    .to_string();
    let post = |body: String, signature: Option<String>| {
        let port = gateway.http_port;
        async move { push(port, secret, &body, signature).await }
    };
    let first = post(body.clone(), None).await;
    assert_eq!(first.status(), 200);
    let outcome: PushOutcome = first.json().await.unwrap();
    // 0102 is created then deleted in the same batch: one deletion, no write.
    assert_eq!(
        (outcome.written, outcome.deleted, outcome.unchanged),
        (1, 1, 0)
    );
    assert_eq!(outcome.rejected.len(), 1);
    assert!(
        outcome.rejected[0].reason.contains("TrangThaiHoSo"),
        "{outcome:?}"
    );
    // The same batch again (a retry): nothing changes.
    let again: PushOutcome = post(body.clone(), None).await.json().await.unwrap();
    assert_eq!((again.written, again.deleted, again.unchanged), (0, 0, 3));
    // Unsigned, badly signed, malformed.
    let forged = post(body.clone(), Some(format!("sha256={}", "0".repeat(64)))).await;
    assert_eq!(forged.status(), 401);
    let malformed = post("{\"records\": 3}".to_owned(), None).await;
    assert_eq!(malformed.status(), 400);

    let text = gateway.answer("000.00.12.H58-240315-0101").await;
    assert_eq!(status_in_reply(&text), Some(4), "{text}");
    let text = gateway.answer("000.00.12.H58-240315-0102").await;
    assert_eq!(status_in_reply(&text), Some(0), "{text}");
    gateway.stop();
}

/// Each scenario against a SQLite read model and, when `TEST_DATABASE_URL`
/// names a server, against a fresh PostgreSQL database of its own.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(not(test_database_url), ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)")]
                async fn $name() {
                    let server = support::service(support::temp_postgres::ENV);
                    let db = support::temp_postgres::TempDatabase::create(&server).await;
                    super::$name(Some(&db.url)).await;
                    db.drop().await;
                }
            )*
        }
    };
}

on_both_stores!(
    killed_mid_batch_it_converges_exactly_and_replies_never_go_back,
    an_expired_cursor_and_a_new_epoch_each_bring_a_new_snapshot,
    the_digest_finds_and_repairs_a_dossier_changed_behind_the_feed,
    while_the_core_is_down_replies_carry_the_data_date_until_it_is_back,
    pushed_batches_apply_once_and_unsigned_ones_are_refused,
);
