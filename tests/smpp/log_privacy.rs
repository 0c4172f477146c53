//! Phone numbers never reach the log in full, whatever the error: the
//! gateway binary, logging at debug level, is fed numbers that do not parse
//! on every channel path a test can reach (an SMS and a USSD dial on the
//! SMPP listener, an SMS from a carrier's SMSC, a GSM modem, the USSD HTTP
//! callback, the Kannel drop-in), digits dialled after the USSD service
//! code (listener and HTTP callback), a call to the modem's SIM (its
//! `+CLIP` line names the caller), and agency records whose `SoDienThoai`
//! is not a usable number (`run --import`, the push webhook). Its whole log
//! (stderr, with the import's listing) is then searched for each number,
//! and for the modem sender's number as a PDU carries it (semi-octets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gsm_modem::sim::{Delivery, Profile, SimModem, SimSettings};
use motcua_sms::smpp::pdu::{tag, Bind, BindKind, Body, ShortMessage, Tlv};
use motcua_sms::smpp::session::Connection;
use motcua_sms::smpp::SessionSettings;
use support::peer_esme::PeerEsme;
use support::peer_smsc::PeerSmsc;
use support::process::{free_port, Process};
use support::{KNOWN_CODE, PASSWORD, SYSTEM_ID};

const WAIT: Duration = Duration::from_secs(30);
const PUSH_SECRET: &str = "push-secret-0123456789";
/// What the USSD aggregator and Kannel's smsbox send to be trusted.
const CALLER_SECRET: &str = "caller-secret-0123456789";

/// Senders that are not phone numbers (13 digits), one per channel path.
const LISTENER_SMS: &str = "0917350246813";
const LISTENER_USSD: &str = "0928461357924";
const CARRIER_SMS: &str = "0939572468035";
const MODEM_SMS: &str = "0940683579146";
const USSD_HTTP: &str = "0951794680257";
const KANNEL: &str = "0962805791368";
/// Digits dialled after the service code (`*8058*<digits>#`).
const LISTENER_DIALLED: &str = "0937248516830";
const USSD_HTTP_DIALLED: &str = "0926138405729";
/// A valid number that dials them (its redacted form may show).
const DIALLER: &str = "0912000444";
/// Who calls the modem's SIM.
const MODEM_CALLER: &str = "+84971604938257";
/// An international number longer than E.164 allows.
const TOO_LONG: &str = "+19173502468135792";
/// `SoDienThoai` values that are not one usable number.
const IMPORTED_BAD: &str = "0973916802479";
/// Two valid numbers in one field: the first is kept (and logged redacted).
const IMPORTED_TWO: [&str; 2] = ["0984027913", "0995138024"];
const PUSHED_BAD: &str = "0906249135702";
const PUSHED_TWO: [&str; 2] = ["0913572046", "0986420135"];

/// A gateway process with every channel a test can reach.
struct Gateway {
    dir: PathBuf,
    listener: u16,
    http: u16,
    ussd_http: u16,
    kannel: u16,
    process: Process,
}

impl Gateway {
    fn start(dir: &Path, smsc_port: u16, modem: &Path, import: &Path) -> Gateway {
        let (listener, http, ussd_http, kannel) =
            (free_port(), free_port(), free_port(), free_port());
        let config = format!(
            "[smpp.listener]\nbind = \"127.0.0.1:{listener}\"\n\n\
             [[smpp.listener.accounts]]\nsystem_id = \"{SYSTEM_ID}\"\npassword = \"{PASSWORD}\"\n\n\
             [[smpp.smsc]]\nname = \"carrier-test\"\nhost = \"127.0.0.1\"\nport = {smsc_port}\n\
             system_id = \"motcua\"\npassword = \"secret\"\nreconnect_delay_ms = 100\n\n\
             [http]\nbind = \"127.0.0.1:{http}\"\n\n\
             [sync.push]\nenabled = true\nsecret = \"{PUSH_SECRET}\"\n\n\
             [ussd.http]\nenabled = true\nbind = \"127.0.0.1:{ussd_http}\"\nsecret = \"{CALLER_SECRET}\"\n\n\
             [kannel]\nenabled = true\nbind = \"127.0.0.1:{kannel}\"\nsecret = \"{CALLER_SECRET}\"\n\n\
             [admin]\nenabled = false\n\n\
             [modem]\ncommand_timeout_secs = 2\nsweep_interval_secs = 2\n\n\
             [[modem.devices]]\nname = \"m1\"\ndevice = \"{}\"\n\n\
             [rate_limit]\nenabled = false\n\n\
             [log]\nlevel = \"debug\"\n",
            modem.display()
        );
        let mut process = Process::new(dir);
        process.set_config(config);
        process.set_args(["run".as_ref(), "--import".as_ref(), import.as_os_str()]);
        process.start();
        Gateway {
            dir: dir.to_owned(),
            listener,
            http,
            ussd_http,
            kannel,
            process,
        }
    }

    fn log(&self) -> String {
        self.process.logs()
    }

    /// SIGTERM, and the drain.
    fn stop(mut self) -> String {
        self.process.stop();
        self.log()
    }

    /// The channels of the messages journaled so far, with their outcome.
    async fn journaled(&self) -> Vec<(String, String)> {
        let url = format!("sqlite://{}/journal.db?mode=ro", self.dir.display());
        let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
            return Vec::new();
        };
        let rows = sqlx::query_as(
            "SELECT m.channel, r.outcome FROM messages m JOIN replies r ON r.message_id = m.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        rows
    }

    /// Waits until `ready` holds, failing with the log after [`WAIT`].
    async fn until<F: AsyncFn() -> bool>(&self, what: &str, ready: F) {
        let deadline = Instant::now() + WAIT;
        while !ready().await {
            assert!(
                Instant::now() < deadline,
                "{what} within {WAIT:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A record (JSON) for `code` with `phone` as `SoDienThoai`.
fn record(code: &str, phone: &str) -> serde_json::Value {
    serde_json::json!({
        "MaHoSo": code, "TrangThaiHoSo": 4, "version": 2,
        "SoDienThoai": phone, "ChuHoSo": "Trần Thị Bình",
    })
}

/// Binds a transceiver to the listener and dials `dialled` from `citizen`.
async fn dial_ussd(listener: u16, citizen: &str, dialled: &str) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", listener))
        .await
        .unwrap();
    let conn = Connection::new(stream, &SessionSettings::default()).unwrap();
    let link = conn.link.clone();
    let reader = tokio::spawn(async move {
        let mut conn = conn;
        while motcua_sms::smpp::session::next_request(&mut conn)
            .await
            .is_some()
        {}
    });
    link.request(Body::Bind(Bind::new(
        BindKind::Transceiver,
        SYSTEM_ID,
        PASSWORD,
    )))
    .await
    .expect("bind accepted");
    link.request(Body::SubmitSm(ShortMessage {
        source_addr: citizen.into(),
        destination_addr: "8058".into(),
        short_message: dialled.as_bytes().to_vec(),
        tlvs: vec![Tlv {
            tag: tag::USSD_SERVICE_OP,
            value: vec![1],
        }],
        ..ShortMessage::default()
    }))
    .await
    .expect("USSD dial accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    reader.abort();
}

/// Posts a signed push batch; its JSON answer.
async fn push(http: u16, records: Vec<serde_json::Value>) -> serde_json::Value {
    let body =
        serde_json::json!({"batch_id": "b-1", "epoch": "core-1", "records": records}).to_string();
    let response = support::gateway::push(http, PUSH_SECRET, &body, None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Asserts that `text` (the log, or the answer named `place`) holds neither
/// `number` nor any 8 consecutive digits of it.
fn assert_not_shown(text: &str, number: &str, place: &str) {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    for window in digits.windows(8) {
        let run: String = window.iter().collect();
        if let Some(at) = text.find(&run) {
            let line = text[..at].rsplit('\n').next().unwrap_or_default();
            let rest = text[at..].split('\n').next().unwrap_or_default();
            panic!("{number} shows in {place}: {line}{rest}");
        }
    }
}

/// `number`'s digits as an SMS PDU carries an address: swapped in pairs,
/// `F` after an odd last digit (`0940…` → `9004…`).
fn semi_octets(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    digits
        .chunks(2)
        .flat_map(|pair| [pair.get(1).copied().unwrap_or('F'), pair[0]])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_shows_a_number_that_does_not_parse_on_any_channel() {
    let dir = tempfile::tempdir().unwrap();
    let smsc = PeerSmsc::start("motcua", "secret").await;
    let modem = SimModem::start(
        &dir.path().join("tty0"),
        SimSettings {
            profile: Profile::Generic,
            delivery: Delivery::Store,
            ..SimSettings::default()
        },
    )
    .await
    .expect("simulator starts");
    let import = dir.path().join("dossiers.jsonl");
    let lines = [
        record("000.00.12.H58-240315-0101", IMPORTED_BAD),
        record(
            "000.00.12.H58-240315-0102",
            &format!("{} / {}", IMPORTED_TWO[0], IMPORTED_TWO[1]),
        ),
    ];
    std::fs::write(
        &import,
        lines
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let gateway = Gateway::start(dir.path(), smsc.local_addr().port(), modem.path(), &import);
    let asked = format!("TC {KNOWN_CODE}");

    // The SMPP listener: an SMS and a USSD dial.
    let mut peer = loop {
        match PeerEsme::bind_transceiver(
            format!("127.0.0.1:{}", gateway.listener).parse().unwrap(),
            SYSTEM_ID,
            PASSWORD,
        )
        .await
        {
            Ok(peer) => break peer,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    for sender in [LISTENER_SMS, TOO_LONG] {
        let (status, _) = peer
            .submit(sender, "8058", 0, asked.as_bytes())
            .await
            .unwrap();
        assert_eq!(status, 0);
    }
    dial_ussd(gateway.listener, LISTENER_USSD, "*8058#").await;
    dial_ussd(
        gateway.listener,
        DIALLER,
        &format!("*8058*{LISTENER_DIALLED}#"),
    )
    .await;

    // A carrier's SMSC.
    assert!(smsc.wait_bound(WAIT).await, "bound to the test SMSC");
    let status = smsc
        .deliver(CARRIER_SMS, "8058", 0, 0, asked.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 0);

    // A GSM modem.
    assert_eq!(modem.phone_sends(MODEM_SMS, &asked), 1);

    // The USSD HTTP callback and the Kannel drop-in.
    let http = reqwest::Client::new();
    for (session, dialled, phone) in [
        ("s-1", "*8058#".to_owned(), USSD_HTTP),
        ("s-2", format!("*8058*{USSD_HTTP_DIALLED}#"), DIALLER),
    ] {
        let ussd = http
            .post(format!("http://127.0.0.1:{}/ussd", gateway.ussd_http))
            .header("x-motcua-secret", CALLER_SECRET)
            .form(&[
                ("sessionId", session),
                ("serviceCode", &dialled),
                ("phoneNumber", phone),
                ("text", ""),
            ])
            .send()
            .await
            .expect("USSD callback answers");
        assert_eq!(ussd.status(), 200);
    }
    let kannel = http
        .get(format!("http://127.0.0.1:{}/kannel", gateway.kannel))
        .header("x-motcua-secret", CALLER_SECRET)
        .query(&[("from", KANNEL), ("to", "8058"), ("text", &asked)])
        .send()
        .await
        .expect("Kannel drop-in answers");
    assert_eq!(kannel.status(), 200);

    // The push webhook.
    let outcome = push(
        gateway.http,
        vec![
            record("000.00.12.H58-240315-0201", PUSHED_BAD),
            record(
                "000.00.12.H58-240315-0202",
                &format!("{}, {}", PUSHED_TWO[0], PUSHED_TWO[1]),
            ),
        ],
    )
    .await;

    // Every message was taken and judged.
    let expected = [
        "listener:demo",
        "ussd:listener:demo",
        "smsc:carrier-test",
        "modem",
        "ussd:http",
        "kannel",
    ];
    gateway
        .until("every channel journals its message", async || {
            let journaled = gateway.journaled().await;
            expected
                .iter()
                .all(|channel| journaled.iter().any(|(c, _)| c == channel))
                && journaled
                    .iter()
                    .filter(|(c, o)| c == "listener:demo" && o == "not_a_phone_number")
                    .count()
                    == 2
        })
        .await;
    peer.unbind().await;

    // A call to the modem's SIM: RING, and +CLIP with the caller's number.
    modem.phone_calls(MODEM_CALLER);
    gateway
        .until("the modem session reads the call", async || {
            let log = gateway.log();
            log.contains("incoming call") && log.contains("+CLIP")
        })
        .await;

    let log = gateway.stop();
    for number in [
        LISTENER_SMS,
        LISTENER_USSD,
        CARRIER_SMS,
        MODEM_SMS,
        USSD_HTTP,
        KANNEL,
        TOO_LONG,
        IMPORTED_BAD,
        IMPORTED_TWO[0],
        IMPORTED_TWO[1],
        PUSHED_BAD,
        PUSHED_TWO[0],
        PUSHED_TWO[1],
        LISTENER_DIALLED,
        USSD_HTTP_DIALLED,
        MODEM_CALLER,
        &semi_octets(MODEM_SMS),
    ] {
        assert_not_shown(&log, number, "the log");
    }
    for refused in outcome["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(outcome["left_out"].as_array().into_iter().flatten())
    {
        let reason = refused["reason"].as_str().unwrap_or_default();
        for number in [PUSHED_BAD, PUSHED_TWO[0], PUSHED_TWO[1]] {
            assert_not_shown(reason, number, "the push webhook's answer");
        }
    }
    for line in [
        "sender is not a phone number",
        "USSD turn from a number that is not a phone number",
        "is not a Vietnamese phone number",
        "dossier kept without an unusable field",
    ] {
        assert!(log.contains(line), "the log lacks {line:?}:\n{log}");
    }
    modem.shutdown();
}

#[tokio::test]
async fn an_answered_message_is_logged_with_the_id_the_peer_got_as_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = support::gateway::GatewayProcess::pushed_to(dir.path(), PUSH_SECRET);
    gateway
        .extra
        .push(("MOTCUA_LOG__FORMAT".to_owned(), "json".to_owned()));
    gateway.start();
    let addr = format!("127.0.0.1:{}", gateway.smpp_port).parse().unwrap();
    let deadline = Instant::now() + WAIT;
    let mut peer = loop {
        match PeerEsme::bind_transceiver(addr, SYSTEM_ID, PASSWORD).await {
            Ok(peer) => break peer,
            Err(error) => {
                assert!(Instant::now() < deadline, "no bind: {error:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (status, id) = peer
        .submit(
            "0912000555",
            "8058",
            0,
            format!("TC {KNOWN_CODE}").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, 0);
    assert!(peer.next_deliver(WAIT).await.is_some(), "answered");
    peer.unbind().await;
    gateway.stop();
    let log = gateway.logs();
    let answered: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "answered")
        .collect();
    assert_eq!(answered.len(), 1, "one \"answered\" line:\n{log}");
    assert_eq!(answered[0]["fields"]["message_id"], id.as_str(), "{log}");
    assert_eq!(answered[0]["fields"]["channel"], "listener:demo", "{log}");
}
