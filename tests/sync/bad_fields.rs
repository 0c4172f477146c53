//! A dossier whose optional field cannot be used is still found, on every
//! path records come in: `motcua-sms import`, the push webhook, the feed
//! follower and the JetStream fan-out (the last when `TEST_NATS_URL` names
//! a NATS server with JetStream). A `SoDienThoai` that holds no usable
//! number (a landline with a digit missing, dots and a digit missing, no
//! number at all, too many digits) leaves the dossier without an owner
//! phone, so nobody gets the applicant's name; of two numbers in one field
//! the first mobile one is the dossier's, and only it gets the name. The
//! fields left out are counted and logged without the numbers.

use std::process::Command;
use std::time::Duration;

use motcua_sms::smpp::client::send_and_receive;
use motcua_sms::sync::jetstream::publisher::{JetStreamPublisher, PublisherSettings};
use support::core::{status_in_reply, TOKEN};
use support::fixed_core::FixedCore;
use support::gateway::{push, GatewayProcess};
use tokio_util::sync::CancellationToken;

const NAME: &str = "Trần Thị Bình";
const FIRST: &str = "0912345678";
const SECOND: &str = "0987654321";
const IN_PROGRESS: u8 = 4;

/// A record (as the feed and the import send it) for `code`, in progress.
fn record(code: &str, field: &str, value: &str) -> serde_json::Value {
    let mut record = serde_json::json!({
        "MaHoSo": code, "TrangThaiHoSo": IN_PROGRESS, "version": 2, "ChuHoSo": NAME,
        "TenTTHC": "Cấp giấy phép xây dựng", "NgayHenTra": "20991231170000",
    });
    record[field] = value.into();
    record
}

/// The records of one path: a phone that is no number (`bad`), two numbers
/// in one field, and a date that does not parse.
fn records(prefix: &str, bad: &str) -> Vec<serde_json::Value> {
    vec![
        record(&format!("{prefix}1"), "SoDienThoai", bad),
        record(
            &format!("{prefix}2"),
            "SoDienThoai",
            &format!("{FIRST} - {SECOND}"),
        ),
        record(&format!("{prefix}3"), "NgayHenTra", "31/12/2099"),
    ]
}

/// The reply to `TC code` sent from `sender`.
async fn reply_to(gateway: &GatewayProcess, sender: &str, code: &str) -> String {
    let addr = format!("127.0.0.1:{}", gateway.smpp_port).parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match send_and_receive(
            addr,
            support::SYSTEM_ID,
            support::PASSWORD,
            sender,
            support::SERVICE_NUMBER,
            &format!("TC {code}"),
            Duration::from_secs(5),
        )
        .await
        {
            Ok(reply) => return reply.text,
            Err(error) => assert!(
                std::time::Instant::now() < deadline,
                "no reply to {code}: {error}\n{}",
                gateway.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every dossier of `prefix` is found; the name goes to the first number
/// of the two only; the log names the fields left out, without numbers.
async fn assert_found_without_unusable_fields(
    gateway: &GatewayProcess,
    prefix: &str,
    bad: &str,
    source: &str,
) {
    for n in 1..=3 {
        let code = format!("{prefix}{n}");
        let text = gateway.answer(&code).await;
        assert_eq!(
            status_in_reply(&text),
            Some(IN_PROGRESS),
            "{source}: {code} is not found: {text}\n{}",
            gateway.logs()
        );
        assert!(
            !text.contains("Trần"),
            "{source}: a stranger got the name: {text}"
        );
    }
    let to_second = reply_to(gateway, SECOND, &format!("{prefix}2")).await;
    assert_eq!(
        status_in_reply(&to_second),
        Some(IN_PROGRESS),
        "{to_second}"
    );
    assert!(!to_second.contains("Trần"), "{source}: {to_second}");
    let to_first = reply_to(gateway, FIRST, &format!("{prefix}2")).await;
    assert!(
        to_first.contains(NAME),
        "{source}: the owner lacks the name: {to_first}"
    );

    let logs = gateway.logs();
    assert!(
        logs.contains("dossier kept without an unusable field")
            && logs.contains(&format!("source=\"{source}\"")),
        "{logs}"
    );
    let digits: String = bad.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 8 {
        assert!(!logs.contains(&digits), "{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_dossier_with_an_unusable_field_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = "000.00.12.H58-240315-030";
    let bad = "0273 123 45";
    let file = dir.path().join("dossiers.jsonl");
    let lines: Vec<String> = records(prefix, bad)
        .iter()
        .map(ToString::to_string)
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut gateway = GatewayProcess::new(
        dir.path(),
        "http://127.0.0.1:9/",
        &[("MOTCUA_SYNC__MODE", "off")],
    );
    let import = Command::new(support::bin())
        .current_dir(dir.path())
        .env("MOTCUA_DATABASE__URL", gateway.db_url())
        .env("MOTCUA_LOG__LEVEL", "warn")
        .arg("import")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "{stderr}");
    assert!(
        stderr.contains("3 inserted, 0 updated, 0 unchanged, 0 bad line(s), 3 field(s) left out"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("dossiers.jsonl:1: {prefix}1 kept: SoDienThoai")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("dossiers.jsonl:3: {prefix}3 kept: NgayHenTra")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("027312345") && !stderr.contains(SECOND),
        "{stderr}"
    );
    gateway.start();
    for n in 1..=3 {
        let text = gateway.answer(&format!("{prefix}{n}")).await;
        assert_eq!(status_in_reply(&text), Some(IN_PROGRESS), "{text}");
    }
    let to_second = reply_to(&gateway, SECOND, &format!("{prefix}2")).await;
    assert!(!to_second.contains("Trần"), "{to_second}");
    let to_first = reply_to(&gateway, FIRST, &format!("{prefix}2")).await;
    assert!(to_first.contains(NAME), "{to_first}");
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_dossier_with_an_unusable_field_is_found_and_its_field_reported() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "push-secret-0123456789";
    let prefix = "000.00.12.H58-240315-031";
    let bad = "091.234.567";
    let mut gateway = GatewayProcess::pushed_to(dir.path(), secret);
    gateway.start();
    let body = serde_json::json!({
        "batch_id": "b-1", "epoch": "core-1", "records": records(prefix, bad),
    })
    .to_string();
    let response = push(gateway.http_port, secret, &body, None).await;
    assert_eq!(response.status(), 200);
    let outcome: serde_json::Value = response.json().await.unwrap();
    assert_eq!(outcome["written"], 3, "{outcome}");
    assert_eq!(outcome["rejected"], serde_json::json!([]), "{outcome}");
    let left_out: Vec<(&str, &str)> = outcome["left_out"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["MaHoSo"].as_str().unwrap_or(""),
                f["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(left_out.len(), 3, "{outcome}");
    assert!(
        left_out[0].1.starts_with("SoDienThoai left out"),
        "{outcome}"
    );
    assert!(!outcome.to_string().contains("091234567"), "{outcome}");
    assert_found_without_unusable_fields(&gateway, prefix, bad, "push").await;
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_dossier_with_an_unusable_field_is_found_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = "000.00.12.H58-240315-032";
    let bad = "không có";
    let core = FixedCore::start(&records(prefix, bad)).await;
    let mut gateway = GatewayProcess::new(dir.path(), &core.url(), &[]);
    gateway.start();
    gateway.wait_streaming(Duration::from_secs(30)).await;
    assert_found_without_unusable_fields(&gateway, prefix, bad, "feed").await;
    let metrics = gateway.metrics().await;
    for line in [
        "motcua_sync_fields_left_out_total{field=\"SoDienThoai\"} 2",
        "motcua_sync_fields_left_out_total{field=\"NgayHenTra\"} 1",
        "motcua_sync_records_rejected_total 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    gateway.stop();
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_nats_url),
    ignore = "needs TEST_NATS_URL (NATS with JetStream)"
)]
async fn a_dossier_from_the_stream_with_an_unusable_field_is_found() {
    let nats = support::service("TEST_NATS_URL");
    let dir = tempfile::tempdir().unwrap();
    let prefix = "000.00.12.H58-240315-033";
    let bad = "0912345678901";
    let core = FixedCore::start(&records(prefix, bad)).await;
    let suffix = support::gateway::unique_suffix();
    let (stream, subjects) = (
        format!("MOTCUA_TEST_{suffix}"),
        format!("motcua-test.{suffix}"),
    );
    let mut settings = PublisherSettings::new(&core.url(), Some(TOKEN.to_owned()), &nats);
    settings.stream = stream.clone();
    settings.prefix = subjects.clone();
    settings.wait = Duration::from_secs(1);
    settings.backoff_max = Duration::from_secs(1);
    let publisher = JetStreamPublisher::new(settings).expect("publisher settings");
    let stop = CancellationToken::new();
    let publishing = tokio::spawn(publisher.run(stop.clone()));
    let mut gateway = GatewayProcess::new(
        dir.path(),
        &core.url(),
        &[
            ("MOTCUA_SYNC__MODE", "jetstream"),
            ("MOTCUA_SYNC__JETSTREAM__URL", &nats),
            ("MOTCUA_SYNC__JETSTREAM__STREAM", &stream),
            ("MOTCUA_SYNC__JETSTREAM__SUBJECT_PREFIX", &subjects),
            ("MOTCUA_SYNC__JETSTREAM__GATEWAY", "solo"),
            ("MOTCUA_SYNC__JETSTREAM__BACKOFF_MAX_SECS", "1"),
        ],
    );
    gateway.start();
    gateway.wait_streaming(Duration::from_secs(60)).await;
    assert_found_without_unusable_fields(&gateway, prefix, bad, "jetstream").await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("motcua_sync_fields_left_out_total{field=\"SoDienThoai\"} 2"),
        "{metrics}"
    );
    gateway.stop();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), publishing).await;
    if let Ok(client) = async_nats::connect(nats.as_str()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    core.stop().await;
}
