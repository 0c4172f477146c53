//! The Kannel drop-in with real Kannel (Debian `kannel` 1.4.5): bearerbox
//! bound over SMPP to an SMSC (the smpp34 crate's server, as the carrier),
//! smsbox's catch-all `sms-service` pointing its `get-url` at the gateway's
//! drop-in port (`[kannel]`), with the shared secret in the URL. A citizen's message goes SMSC → bearerbox → smsbox → the
//! gateway; the reply comes back the same way as Kannel's own submit_sm:
//! the status, accented in UCS-2 over two concatenated parts; a message
//! without a code gets help; the journal has both under the channel `kannel`.
//!
//! Runs when `TEST_KANNEL_BEARERBOX` names the bearerbox binary
//! (`/usr/sbin/bearerbox`; smsbox is looked for beside it), and fails if it
//! is set but Kannel cannot run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use motcua_sms::config::Config;
use support::peer_esme::RawMessage;
use support::peer_smsc::PeerSmsc;
use support::process::free_port;
use support::{decode_parts, spawn_app_with, AppOptions, KNOWN_CODE};
use tokio::process::{Child, Command};

const ENV: &str = "TEST_KANNEL_BEARERBOX";
const WAIT: Duration = Duration::from_secs(30);
/// The shared secret smsbox sends in the get-url.
const SECRET: &str = "kannel-interop-secret-42";

/// Kannel's bearerbox (/usr/sbin/bearerbox, Debian package kannel).
fn bearerbox() -> PathBuf {
    PathBuf::from(support::service(ENV))
}

fn start(binary: &Path, config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(binary)
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{ENV}: cannot start {}: {e}", binary.display()))
}

/// Every part of the next reply Kannel submits.
async fn reply(smsc: &PeerSmsc) -> Vec<RawMessage> {
    let first = smsc
        .next_submit(WAIT)
        .await
        .expect("Kannel submits the reply");
    let total = if first.esm_class & 0x40 != 0 {
        first.short_message[4] as usize
    } else {
        1
    };
    let mut parts = vec![first];
    while parts.len() < total {
        parts.push(smsc.next_submit(WAIT).await.expect("every part"));
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_kannel_bearerbox),
    ignore = "needs TEST_KANNEL_BEARERBOX (Kannel's bearerbox)"
)]
async fn kannel_answers_from_the_gateway_through_get_url() {
    let bearerbox = bearerbox();
    let smsbox = bearerbox.with_file_name("smsbox");
    assert!(
        bearerbox.exists(),
        "{ENV}={} does not exist",
        bearerbox.display()
    );
    assert!(smsbox.exists(), "no smsbox beside {}", bearerbox.display());

    fn kannel_on(config: &mut Config) {
        config.kannel.enabled = true;
        config.kannel.secret = SECRET.to_owned();
    }
    let app = spawn_app_with(AppOptions {
        tweak: Some(kannel_on),
        ..AppOptions::default()
    })
    .await;
    let drop_in = app.kannel.expect("kannel port");
    let smsc = PeerSmsc::start("kannel", "secret").await;

    let work = tempfile::tempdir().unwrap();
    let (admin, boxes, sendsms) = (free_port(), free_port(), free_port());
    let conf = format!(
        r#"group = core
admin-port = {admin}
admin-password = test
admin-allow-ip = "127.0.0.1"
smsbox-port = {boxes}
box-allow-ip = "127.0.0.1"
log-level = 1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = carrier
host = 127.0.0.1
port = {smsc_port}
transceiver-mode = true
smsc-username = "kannel"
smsc-password = "secret"
system-type = ""
enquire-link-interval = 30
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {boxes}
sendsms-port = {sendsms}
log-level = 1
mo-recode = true

group = sms-service
keyword = default
catch-all = true
get-url = "http://{drop_in}/kannel?secret={SECRET}&from=%p&to=%P&text=%a"
accept-x-kannel-headers = true
max-messages = 3
concatenation = true
omit-empty = true
"#,
        smsc_port = smsc.local_addr().port(),
    );
    let conf_path = work.path().join("kannel.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _bearerbox = start(&bearerbox, &conf_path, &work.path().join("bearerbox.log"));
    assert!(
        smsc.wait_bound(WAIT).await,
        "bearerbox did not bind: {}",
        std::fs::read_to_string(work.path().join("bearerbox.log")).unwrap_or_default()
    );
    let _smsbox = start(&smsbox, &conf_path, &work.path().join("smsbox.log"));
    // smsbox connects to bearerbox on its own time: retry the first message
    // until a reply comes (bearerbox queues it meanwhile anyway).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = smsc
        .deliver(
            "84987000111",
            "8058",
            0,
            0,
            format!("TC {KNOWN_CODE}").as_bytes(),
        )
        .await
        .expect("bearerbox takes the message");
    assert_eq!(status, 0);
    let parts = reply(&smsc).await;
    assert!(parts.iter().all(|p| p.data_coding == 8), "UCS-2: {parts:?}");
    assert_eq!(parts[0].destination_addr, "84987000111");
    let text = decode_parts(&parts);
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");
    assert!(text.contains("Đang xử lý"), "{text}");
    assert!(!text.contains("Nguyễn"), "a stranger gets no name: {text}");

    let status = smsc
        .deliver("84987000112", "8058", 0, 0, b"xin chao")
        .await
        .unwrap();
    assert_eq!(status, 0);
    let help = decode_parts(&reply(&smsc).await);
    assert!(help.starts_with("Tra cứu hồ sơ"), "{help}");

    let pool = app.journal().await;
    let outcomes: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.channel, r.outcome FROM messages m JOIN replies r ON r.message_id = m.id ORDER BY m.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(
        outcomes,
        [
            ("kannel".to_owned(), "found".to_owned()),
            ("kannel".to_owned(), "help".to_owned())
        ]
    );
    app.stop().await;
}
