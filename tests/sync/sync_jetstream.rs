//! The JetStream fan-out end to end: the synthetic core → `fanout`'s
//! publisher → a NATS JetStream stream → two gateway processes with
//! `sync.mode = "jetstream"`.
//!
//! Runs only when `TEST_NATS_URL` names a NATS server with JetStream
//! (`nats-server -js`; .ci/run starts one); each test uses a stream and a
//! subject prefix of its own and deletes the stream at the end.
//!
//! - Two gateways follow while the core changes; one is SIGKILLed and
//!   restarted twice, the publisher is restarted once: both converge to the
//!   core exactly, and neither ever replies with an older status than one it
//!   already gave. With `TEST_DATABASE_URL` set, the second gateway keeps
//!   its read model in a fresh PostgreSQL database (the first in SQLite).
//! - The core down while NATS is up: replies are labelled with the data's
//!   date (the publisher's heartbeat stops), and the label goes when it is back.
//! - A new epoch at the core: the gateway re-reads the stream
//!   authoritatively and converges.
//! - The stream drops a record published twice with the same `Nats-Msg-Id`.

use support::temp_postgres;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use motcua_sms::feed::FeedRecord;
use motcua_sms::store::DossierWriter;
use motcua_sms::sync::jetstream::publisher::{
    publish_record, JetStreamPublisher, PublisherSettings,
};
use motcua_sms::sync::jetstream::{stream_config, Subjects};
use support::core::{first_step_back, status_in_reply, Core, History, TOKEN};
use support::gateway::{GatewayProcess, STALE_LABEL};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The NATS server to use (with JetStream).
fn nats_url() -> String {
    support::service("TEST_NATS_URL")
}

/// A stream name and subject prefix no other test uses; the stream is
/// deleted when this is dropped.
struct TestStream {
    url: String,
    name: String,
    prefix: String,
}

impl TestStream {
    fn new(url: &str) -> Self {
        let suffix = support::gateway::unique_suffix();
        TestStream {
            url: url.to_owned(),
            name: format!("MOTCUA_TEST_{suffix}"),
            prefix: format!("motcua-test.{suffix}"),
        }
    }

    async fn context(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.url.as_str())
            .await
            .expect("NATS reachable at TEST_NATS_URL");
        async_nats::jetstream::new(client)
    }

    fn publisher(&self, core: &Core) -> PublisherSettings {
        let mut settings = PublisherSettings::new(&core.url(), Some(TOKEN.to_owned()), &self.url);
        settings.stream = self.name.clone();
        settings.prefix = self.prefix.clone();
        settings.wait = Duration::from_secs(1);
        settings.backoff_max = Duration::from_secs(1);
        settings
    }

    fn gateway_settings(&self, name: &str) -> Vec<(String, String)> {
        vec![
            ("MOTCUA_SYNC__MODE".into(), "jetstream".into()),
            ("MOTCUA_SYNC__JETSTREAM__URL".into(), self.url.clone()),
            ("MOTCUA_SYNC__JETSTREAM__STREAM".into(), self.name.clone()),
            (
                "MOTCUA_SYNC__JETSTREAM__SUBJECT_PREFIX".into(),
                self.prefix.clone(),
            ),
            ("MOTCUA_SYNC__JETSTREAM__GATEWAY".into(), name.to_owned()),
            ("MOTCUA_SYNC__JETSTREAM__BATCH".into(), "50".into()),
            (
                "MOTCUA_SYNC__JETSTREAM__BACKOFF_MAX_SECS".into(),
                "1".into(),
            ),
        ]
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop may run inside the test's runtime: delete from a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(url.as_str()).await {
                    let js = async_nats::jetstream::new(client);
                    let _ = js.delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

/// A publisher running in this process.
struct RunningPublisher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningPublisher {
    fn start(settings: PublisherSettings) -> Self {
        let publisher = JetStreamPublisher::new(settings).expect("publisher settings");
        let stop = CancellationToken::new();
        let task = tokio::spawn(publisher.run(stop.clone()));
        RunningPublisher { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn gateway(dir: &std::path::Path, core: &Core, settings: &[(String, String)]) -> GatewayProcess {
    let extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    GatewayProcess::new(dir, &core.url(), &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(test_nats_url),
    ignore = "needs TEST_NATS_URL (NATS with JetStream)"
)]
async fn two_gateways_follow_the_stream_through_kills_and_converge_exactly() {
    let url = nats_url();
    let stream = TestStream::new(&url);
    let core = Core::start(300, 1_000_000).await;
    let history_stop = CancellationToken::new();
    let history = tokio::spawn(History::default().follow(core.addr, history_stop.clone()));
    let mut publisher = RunningPublisher::start(stream.publisher(&core));

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // The second gateway keeps its read model in PostgreSQL when a server is named.
    let postgres = match temp_postgres::maintenance_url() {
        Some(server) => Some(temp_postgres::TempDatabase::create(&server).await),
        None => None,
    };
    let mut gateways = [
        gateway(dirs[0].path(), &core, &stream.gateway_settings("g1")),
        gateway(dirs[1].path(), &core, &stream.gateway_settings("g2"))
            .with_database(postgres.as_ref().map(|db| db.url.as_str())),
    ];
    for g in gateways.iter_mut() {
        g.start();
    }
    for g in &gateways {
        g.wait_streaming(Duration::from_secs(60)).await;
    }

    let watched = core.open_codes(300, 5).await;

    // The core changes at ~400/s for 10 s.
    let stepping = CancellationToken::new();
    let stepper = core.keep_stepping(stepping.clone());
    let mut observed: [BTreeMap<String, Vec<u8>>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let started = Instant::now();
    let kill_at = [Duration::from_secs(2), Duration::from_secs(6)];
    let mut kills = 0;
    let mut publisher_restarted = false;
    while started.elapsed() < Duration::from_secs(10) {
        if kills < kill_at.len() && started.elapsed() >= kill_at[kills] {
            gateways[0].kill();
            kills += 1;
            gateways[0].start();
        }
        if !publisher_restarted && started.elapsed() >= Duration::from_secs(4) {
            publisher.stop().await;
            publisher = RunningPublisher::start(stream.publisher(&core));
            publisher_restarted = true;
        }
        for (i, g) in gateways.iter().enumerate() {
            for code in &watched {
                if let Some(text) = g.ask(code).await {
                    let status = status_in_reply(&text)
                        .unwrap_or_else(|| panic!("no status in the reply {text:?}"));
                    observed[i].entry(code.clone()).or_default().push(status);
                }
            }
        }
    }
    stepping.cancel();
    let steps = stepper.await.unwrap();
    assert!(steps >= 1000, "the core changed only {steps} times");

    for g in &gateways {
        g.wait_converged(&core, Duration::from_secs(60)).await;
        g.assert_same_records(&core).await;
    }
    for (i, g) in gateways.iter().enumerate() {
        for code in &watched {
            let text = g.answer(code).await;
            observed[i]
                .entry(code.clone())
                .or_default()
                .push(status_in_reply(&text).unwrap());
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    history_stop.cancel();
    let history = history.await.unwrap();
    for (i, seen) in observed.iter().enumerate() {
        let mut replies = 0;
        for (code, statuses) in seen {
            replies += statuses.len();
            assert_eq!(
                first_step_back(&history.of(code), statuses),
                None,
                "gateway {}: dossier {code}: replies showed {statuses:?}, the core went through {:?}",
                i + 1,
                history.of(code)
            );
        }
        assert!(replies >= 20, "gateway {}: only {replies} replies", i + 1);
    }
    for g in &gateways {
        let store = g.store().await;
        let status = store.sync_status("jetstream").await.unwrap().unwrap();
        assert_eq!(status.checkpoint.epoch, core.digest(1).await.epoch);
        store.close().await;
        let metrics = g.metrics().await;
        assert!(
            metrics.contains("motcua_sync_changes_applied_total"),
            "{metrics}"
        );
    }
    for g in gateways.iter_mut() {
        g.stop();
    }
    if let Some(db) = postgres {
        db.drop().await;
    }
    publisher.stop().await;
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_nats_url),
    ignore = "needs TEST_NATS_URL (NATS with JetStream)"
)]
async fn while_the_core_is_down_replies_say_so_though_nats_is_up() {
    let url = nats_url();
    let stream = TestStream::new(&url);
    let core = Core::start(20, 1_000_000).await;
    let publisher = RunningPublisher::start(stream.publisher(&core));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = stream.gateway_settings("stale");
    settings.push(("MOTCUA_SYNC__STALE_AFTER_SECS".into(), "8".into()));
    let mut g = gateway(dir.path(), &core, &settings);
    g.start();
    core.step(10).await;
    g.wait_converged(&core, Duration::from_secs(60)).await;
    let code = core.first_page(1).await.records[0].code.clone();
    // The publisher's heartbeat (every 5 s while the core answers) keeps
    // the data fresh.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fresh = g.answer(&code).await;
    assert!(!fresh.contains(STALE_LABEL), "{fresh}");

    core.outage(true).await;
    g.answer_until_labelled(&code, true, Duration::from_secs(30))
        .await;
    core.outage(false).await;
    g.answer_until_labelled(&code, false, Duration::from_secs(30))
        .await;
    g.stop();
    publisher.stop().await;
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_nats_url),
    ignore = "needs TEST_NATS_URL (NATS with JetStream)"
)]
async fn a_new_epoch_is_re_read_authoritatively() {
    let url = nats_url();
    let stream = TestStream::new(&url);
    let core = Core::start(80, 1_000_000).await;
    let publisher = RunningPublisher::start(stream.publisher(&core));
    let dir = tempfile::tempdir().unwrap();
    let mut g = gateway(dir.path(), &core, &stream.gateway_settings("solo"));
    g.start();
    core.step(50).await;
    g.wait_converged(&core, Duration::from_secs(60)).await;

    let before = core.digest(1).await.epoch;
    core.reset_epoch().await;
    core.step(60).await;
    let after = core.digest(1).await.epoch;
    assert_ne!(before, after);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let store = g.store().await;
        let status = store.sync_status("jetstream").await.unwrap();
        store.close().await;
        if status.is_some_and(|s| {
            s.checkpoint.epoch == after
                && matches!(
                    s.checkpoint.stage,
                    motcua_sms::store::SyncStage::Streaming { .. }
                )
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never took the new epoch\n{}",
            g.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    core.step(30).await;
    g.wait_converged(&core, Duration::from_secs(60)).await;
    g.assert_same_records(&core).await;
    let metrics = g.metrics().await;
    assert!(
        metrics.contains("motcua_sync_snapshots_total{reason=\"new_snapshot\"}"),
        "{metrics}"
    );
    g.stop();
    publisher.stop().await;
    core.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(test_nats_url),
    ignore = "needs TEST_NATS_URL (NATS with JetStream)"
)]
async fn the_stream_drops_a_record_published_twice_with_the_same_msg_id() {
    let url = nats_url();
    let stream = TestStream::new(&url);
    let js = stream.context().await;
    let subjects = Subjects::new(&stream.prefix);
    js.create_stream(stream_config(
        &stream.name,
        &subjects,
        Duration::from_secs(120),
    ))
    .await
    .expect("stream created");
    let record: FeedRecord = serde_json::from_value(serde_json::json!({
        "MaHoSo": "000.00.12.H58-240315-0007", "TrangThaiHoSo": 4, "version": 3
    }))
    .unwrap();
    let first = publish_record(&js, &subjects, &record, "e1").await.unwrap();
    assert!(!first.duplicate);
    let again = publish_record(&js, &subjects, &record, "e1").await.unwrap();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.sequence, first.sequence);
    // The same (code, version) of another epoch is another record.
    let other_epoch = publish_record(&js, &subjects, &record, "e2").await.unwrap();
    assert!(!other_epoch.duplicate);
    let mut s = js.get_stream(&stream.name).await.unwrap();
    let info = s.info().await.unwrap();
    // One message per subject is kept: the newest.
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.state.last_sequence, other_epoch.sequence);
    let kept = s
        .get_last_raw_message_by_subject(&subjects.dossier(&record.code))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<FeedRecord>(&kept.payload).unwrap(),
        record
    );
}
