//! The load generator against the real gateway: the gateway binds to
//! `loadgen` as to a carrier SMSC, 500 citizens' messages of every kind go
//! in as deliver_sm, and every one of them is answered by a complete reply
//! (accented replies to found dossiers come in two parts). No timing is
//! asserted: speed is for `motcua-sms loadgen` and docs/benchmarks.md.

use std::time::Duration;

use motcua_sms::loadgen::{Loadgen, Settings, TextGenerator};
use support::{spawn_app_with, AppOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_sent_by_loadgen_gets_its_whole_reply() {
    let file = std::fs::File::open(support::sample_file()).unwrap();
    let codes = TextGenerator::read_codes(std::io::BufReader::new(file)).unwrap();
    let loadgen = Loadgen::bind(
        Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            // What support::smsc_settings binds with.
            system_id: Some("motcua".into()),
            password: Some("secret".into()),
            messages: 500,
            window: 50,
            bind_timeout: Duration::from_secs(30),
            settle: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(20),
            ..Settings::default()
        },
        &codes,
    )
    .await
    .unwrap();
    let app = spawn_app_with(AppOptions {
        smsc: vec![support::smsc_settings(loadgen.local_addr().port())],
        ..AppOptions::default()
    })
    .await;

    let report = loadgen.run().await.unwrap();

    assert_eq!(report.sent, 500, "{report}");
    assert_eq!(report.acknowledged, 500, "{report}");
    assert_eq!(report.refused, 0, "{report}");
    assert_eq!(report.replies, 500, "{report}");
    assert_eq!(report.missing, 0, "{report}");
    assert_eq!(report.unexpected, 0, "{report}");
    assert!(report.all_answered(), "{report}");
    // Found dossiers are answered in two UCS-2 parts; a reply counts once
    // its last part is in.
    assert!(report.reply_parts > report.replies, "{report}");
    assert_eq!(report.latency.count, 500, "{report}");
    assert_eq!(report.binds.len(), 1, "{report}");
    assert!(
        report.binds[0].starts_with("transceiver motcua@"),
        "{report}"
    );
    app.stop().await;
}
