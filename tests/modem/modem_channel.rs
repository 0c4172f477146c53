//! The GSM modem channel end to end: the gateway binary drives simulated
//! modems (`gsm_modem::sim`, over pseudo-terminals) as it would USB sticks,
//! a simulated phone texts dossier codes to the SIM, and the simulator
//! decodes the reply PDUs the gateway writes. Faults: a modem that hangs
//! mid-send, reboots, fills its storage, refuses sends with CMS errors, or
//! cannot delete; a gateway killed between recording a message and
//! deleting it from the SIM. Every message is answered once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gsm_modem::sim::{Delivery, Fault, PhoneOptions, Profile, SimModem, SimSettings};
use support::process::{free_port, Process};
use support::KNOWN_CODE;

/// Longest wait for a reply.
const REPLY_WITHIN: Duration = Duration::from_secs(45);

/// Each test's citizens text from numbers of their own.
static NEXT_CITIZEN: AtomicU64 = AtomicU64::new(0);

fn citizen() -> String {
    let n = NEXT_CITIZEN.fetch_add(1, Ordering::Relaxed);
    format!("+8491{:07}", (std::process::id() as u64 % 1000) * 1000 + n)
}

/// What the gateway's reply to the known dossier starts with.
fn known_reply_start() -> String {
    format!("HS {KNOWN_CODE}")
}

/// A gateway process whose only channel is the modems given.
struct Gateway {
    modems: Vec<(String, PathBuf)>,
    accents: bool,
    pin: Option<String>,
    http_port: Option<u16>,
    env: Vec<(String, String)>,
    process: Process,
}

impl Gateway {
    fn new(dir: &Path, modems: &[(&str, &SimModem)]) -> Self {
        Gateway {
            modems: modems
                .iter()
                .map(|(name, sim)| ((*name).to_owned(), sim.path().to_owned()))
                .collect(),
            accents: false,
            pin: None,
            http_port: None,
            env: Vec::new(),
            process: Process::importing_the_sample(dir),
        }
    }

    fn with_accents(mut self) -> Self {
        self.accents = true;
        self
    }

    fn with_http(mut self) -> Self {
        self.http_port = Some(free_port());
        self
    }

    /// Waits until the journal has every reply as left (accepted by the
    /// network): a kill after that cannot send one again.
    async fn replies_settled(&self, count: usize) {
        eventually(self, async || {
            let states = self.reply_states().await;
            let settled = states.len() >= count && states.iter().all(|s| s == "accepted");
            (settled, states)
        })
        .await;
    }

    async fn metrics(&self) -> String {
        let port = self.http_port.expect("started with_http");
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap()
    }

    fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The states of the replies in the journal.
    async fn reply_states(&self) -> Vec<String> {
        let url = format!(
            "sqlite://{}/journal.db?mode=ro",
            self.process.dir().display()
        );
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("journal opens");
        let states: Vec<(String,)> =
            sqlx::query_as("SELECT state FROM replies ORDER BY message_id")
                .fetch_all(&pool)
                .await
                .expect("replies read");
        pool.close().await;
        states.into_iter().map(|(state,)| state).collect()
    }

    fn with_pin(mut self, pin: &str) -> Self {
        self.pin = Some(pin.to_owned());
        self
    }

    fn start(&mut self) {
        let http = match self.http_port {
            Some(port) => format!("[http]\nbind = \"127.0.0.1:{port}\"\n\n"),
            None => "[http]\nenabled = false\n\n".to_owned(),
        };
        let mut config = format!(
            "[smpp.listener]\nenabled = false\n\n{http}\
             [journal]\nreassembly_timeout_secs = 4\n\n\
             [modem]\ncommand_timeout_secs = 2\nsend_timeout_secs = 4\n\
             sweep_interval_secs = 2\nwatch_interval_secs = 3\nretry_after_secs = 2\n",
        );
        for (name, path) in &self.modems {
            config.push_str(&format!(
                "\n[[modem.devices]]\nname = \"{name}\"\ndevice = \"{}\"\nnumber = \"0912000111\"\n",
                path.display()
            ));
            if let Some(pin) = &self.pin {
                config.push_str(&format!("pin = \"{pin}\"\n"));
            }
        }
        let process = &mut self.process;
        process.set_config(config);
        process.set_env(
            "MOTCUA_LOG__LEVEL",
            "info,motcua_sms::modem=debug,gsm_modem=debug",
        );
        process.set_env("MOTCUA_REPLY__ACCENTS", self.accents.to_string());
        process.set_env("MOTCUA_RATE_LIMIT__ENABLED", "false");
        for (k, v) in &self.env {
            process.set_env(k, v);
        }
        process.start();
    }

    fn kill(&mut self) {
        self.process.kill();
    }

    fn logs(&self) -> String {
        self.process.logs()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.process.stop();
    }
}

async fn sim(dir: &Path, name: &str, profile: Profile, delivery: Delivery) -> SimModem {
    SimModem::start(
        &dir.join(name),
        SimSettings {
            profile,
            delivery,
            ..SimSettings::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// A generic modem and a gateway (with the extra `env`) driving it, started.
async fn one_generic_modem(dir: &Path, env: (&str, &str)) -> (SimModem, Gateway) {
    let modem = sim(dir, "tty0", Profile::Generic, Delivery::Store).await;
    let mut gateway = Gateway::new(dir, &[("m1", &modem)]).with_env(env.0, env.1);
    gateway.start();
    (modem, gateway)
}

/// Polls `check` until it says yes, failing with what it last saw.
async fn eventually<T: std::fmt::Debug>(
    gateway: &Gateway,
    mut check: impl AsyncFnMut() -> (bool, T),
) {
    let deadline = Instant::now() + REPLY_WITHIN;
    loop {
        let (done, seen) = check().await;
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{seen:?}\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `number` has `count` replies over all `sims`; all of them.
async fn replies(sims: &[&SimModem], number: &str, count: usize, gateway: &Gateway) -> Vec<String> {
    let deadline = Instant::now() + REPLY_WITHIN;
    loop {
        let got: Vec<String> = sims.iter().flat_map(|s| s.replies_to(number)).collect();
        if got.len() >= count {
            return got;
        }
        if Instant::now() > deadline {
            panic!(
                "{number} got {} replies, wanted {count}: {got:?}\n{}",
                got.len(),
                gateway.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After the replies came: nothing more comes for a while (no second answer).
async fn no_more_replies(sims: &[&SimModem], number: &str, count: usize, gateway: &Gateway) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got: Vec<String> = sims.iter().flat_map(|s| s.replies_to(number)).collect();
    assert_eq!(got.len(), count, "{number}: {got:?}\n{}", gateway.logs());
}

/// Waits until the SIM storage is empty (every message recorded and deleted).
async fn storage_emptied(sim: &SimModem, gateway: &Gateway) {
    let deadline = Instant::now() + REPLY_WITHIN;
    while !sim.storage().is_empty() {
        if Instant::now() > deadline {
            panic!("SIM still holds {:?}\n{}", sim.storage(), gateway.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new citizen texts the known code to `modem`; returns the number once
/// the reply came.
async fn exchange(modem: &SimModem, gateway: &Gateway) -> String {
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    replies(&[modem], &number, 1, gateway).await;
    number
}

/// How many commands `modem` received that start with `prefix`.
fn commands_starting(modem: &SimModem, prefix: &str) -> usize {
    modem
        .commands()
        .iter()
        .filter(|c| c.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_modem_make_answers_a_code_with_the_status() {
    for profile in [
        Profile::Generic,
        Profile::Huawei,
        Profile::Zte,
        Profile::Wavecom,
        Profile::Telit,
        Profile::Pantech,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let modem = sim(dir.path(), "tty0", profile, Delivery::Store).await;
        let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
        gateway.start();
        let number = citizen();
        assert_eq!(modem.phone_sends(&number, &format!("TC {KNOWN_CODE}")), 1);
        let got = replies(&[&modem], &number, 1, &gateway).await;
        assert!(
            got[0].starts_with(&known_reply_start()),
            "{profile:?}: {got:?}"
        );
        // Every reply PDU went to the citizen's international number.
        for sent in modem.submitted() {
            assert_eq!(sent.to, number, "{profile:?}");
            assert_eq!(sent.pdu.destination.type_of_address, 0x91, "{profile:?}");
        }
        storage_emptied(&modem, &gateway).await;
        let commands = modem.commands();
        assert!(
            commands.iter().any(|c| c.starts_with("AT+CMGD=")),
            "{profile:?}: {commands:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_part_ucs2_message_is_joined_and_answered_in_vietnamese() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]).with_accents();
    gateway.start();
    let number = citizen();
    let text = format!(
        "Kính gửi Bộ phận một cửa, tôi là người nộp hồ sơ xây dựng nhà ở riêng lẻ, \
         xin cho biết tình trạng hồ sơ có mã TC {KNOWN_CODE} đã nộp hôm 15/03, \
         vì đã gần tới ngày hẹn trả mà chưa thấy thông báo gì. Xin cảm ơn quý cơ quan!"
    );
    let parts = modem.phone_sends_with(
        &number,
        &text,
        PhoneOptions {
            ucs2: true,
            wide_reference: true,
            // The network hands them over out of order.
            part_order: Some(vec![2, 0, 1]),
            ..PhoneOptions::default()
        },
    );
    assert_eq!(parts, 3, "the text must take three UCS-2 parts");
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    assert!(got[0].contains("Cấp giấy phép xây dựng"), "{got:?}");
    // The reply is UCS-2 (DCS 0x08) and every part's header is consistent.
    let sent = modem.submitted();
    assert!(
        sent.iter().all(|s| s.pdu.data_coding.0 & 0x0c == 0x08),
        "{sent:?}"
    );
    no_more_replies(&[&modem], &number, 1, &gateway).await;
    storage_emptied(&modem, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_a_part_missing_is_answered_after_the_reassembly_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    let number = citizen();
    let text = format!(
        "TC {KNOWN_CODE} xin chao, toi muon hoi ve ho so xay dung cua gia dinh toi, da nop tu \
         thang ba nhung den nay van chua nhan duoc ket qua, mong co quan tra loi som giup toi. \
         Xin cam on rat nhieu."
    );
    let parts = modem.phone_sends_with(
        &number,
        &text,
        PhoneOptions {
            drop_parts: vec![1],
            ..PhoneOptions::default()
        },
    );
    assert!(parts >= 1);
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    no_more_replies(&[&modem], &number, 1, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_both_pushed_and_stored_is_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(
        dir.path(),
        "tty0",
        Profile::Generic,
        Delivery::DirectAndStore,
    )
    .await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    no_more_replies(&[&modem], &number, 1, &gateway).await;
    storage_emptied(&modem, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_hanging_mid_send_is_reset_and_the_reply_goes_once() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    // First a normal exchange, so the modem is up.
    let first = citizen();
    modem.phone_sends(&first, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &first, 1, &gateway).await;
    modem.fault(Fault::HangAtNextSend);
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    // The send hung after the prompt; the modem was soft-reset, and the
    // reply went out on a later AT+CMGS.
    let commands = modem.commands();
    let reset = commands
        .iter()
        .position(|c| c == "AT+CFUN=0")
        .unwrap_or_else(|| panic!("the hung modem was soft-reset: {commands:?}"));
    assert!(
        commands[reset..].iter().any(|c| c.starts_with("AT+CMGS=")),
        "sent again after the reset: {commands:?}"
    );
    no_more_replies(&[&modem], &number, 1, &gateway).await;
    assert_eq!(modem.replies_to(&first).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebooting_modem_is_initialised_again_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    let first = citizen();
    modem.phone_sends(&first, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &first, 1, &gateway).await;
    let inits_before = commands_starting(&modem, "AT+CMGF=0");
    modem.fault(Fault::Reboot);
    // A message arriving while it boots is stored silently (no CNMI yet).
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    let inits_after = commands_starting(&modem, "AT+CMGF=0");
    assert!(inits_after > inits_before, "initialised again after ^BOOT");
    no_more_replies(&[&modem], &number, 1, &gateway).await;
    storage_emptied(&modem, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_storage_is_emptied_and_waiting_messages_come_in() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
    modem.fault(Fault::StorageFull);
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    let numbers: Vec<String> = (0..3).map(|_| citizen()).collect();
    for number in &numbers {
        modem.phone_sends(number, &format!("TC {KNOWN_CODE}"));
    }
    gateway.start();
    for number in &numbers {
        let got = replies(&[&modem], number, 1, &gateway).await;
        assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    }
    for number in &numbers {
        no_more_replies(&[&modem], number, 1, &gateway).await;
    }
    storage_emptied(&modem, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_refused_with_cms_errors_are_retried_and_go_once() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Zte, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    modem.fault(Fault::CmsErrorOnSend {
        code: 330,
        times: 2,
    });
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    no_more_replies(&[&modem], &number, 1, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_modems_share_the_replies_when_one_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let a = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let b = sim(dir.path(), "tty1", Profile::Telit, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("a", &a), ("b", &b)]);
    gateway.start();
    // Both up: each takes a message.
    for modem in [&a, &b] {
        let number = citizen();
        modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
        replies(&[&a, &b], &number, 1, &gateway).await;
    }
    // A will hang in the middle of its next send. Its citizens' replies
    // take turns over both modems, so one of them goes to A, hangs, and
    // leaves through B instead; A is reset and comes back.
    a.fault(Fault::HangAtNextSend);
    let numbers: Vec<String> = (0..4).map(|_| citizen()).collect();
    for number in &numbers {
        a.phone_sends(number, &format!("TC {KNOWN_CODE}"));
    }
    for number in &numbers {
        let got = replies(&[&a, &b], number, 1, &gateway).await;
        assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    }
    for number in &numbers {
        no_more_replies(&[&a, &b], number, 1, &gateway).await;
    }
    assert!(
        numbers.iter().any(|n| !b.replies_to(n).is_empty()),
        "B carried replies to A's citizens\n{}",
        gateway.logs()
    );
    assert!(
        a.commands().iter().any(|c| c.starts_with("AT+CFUN")),
        "A was soft-reset after the hang"
    );
    storage_emptied(&a, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_between_recording_and_deleting_answers_once() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    exchange(&modem, &gateway).await;
    // The modem will not delete: the message is recorded and answered,
    // and stays on the SIM; then the gateway dies.
    modem.fault(Fault::RefuseDelete);
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &number, 1, &gateway).await;
    assert!(
        !modem.storage().is_empty(),
        "the message is still on the SIM"
    );
    // Killed once the reply is recorded as sent (a kill just before that
    // is the send window, which a_gateway_killed_under_load bounds).
    gateway.replies_settled(2).await;
    gateway.kill();
    modem.fault(Fault::Recover);
    gateway.start();
    // The new gateway reads it again, knows it, deletes it, answers nothing.
    storage_emptied(&modem, &gateway).await;
    no_more_replies(&[&modem], &number, 1, &gateway).await;
}

/// SIGKILL while messages arrive and replies (two UCS-2 parts each) leave.
/// No message is lost or answered as two messages, and no reply goes again
/// whole or under a new concatenation reference: a multipart reply records
/// its reference before its first part leaves and each part before the
/// next. The one window left is a part the modem accepted just before the
/// kill whose record (for the last part, the reply's settlement) was not
/// committed yet: that part goes again after the restart, under the same
/// reference (a one-part reply: the reply again). A modem sends one part at
/// a time, so each kill repeats at most one part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_load_answers_every_message() {
    const KILLS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]).with_accents();
    gateway.start();
    let numbers: Vec<String> = (0..8 * KILLS).map(|_| citizen()).collect();
    for (i, number) in numbers.iter().enumerate() {
        modem.phone_sends(number, &format!("TC {KNOWN_CODE}"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        if i % 8 == 7 {
            gateway.kill();
            gateway.start();
        }
    }
    for number in &numbers {
        let got = replies(&[&modem], number, 1, &gateway).await;
        assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut repeated = 0;
    for number in &numbers {
        let parts: Vec<(u16, u8, u8)> = modem
            .submitted()
            .iter()
            .filter(|s| s.to == *number)
            .map(|s| {
                let c = s.pdu.user_data.concatenation().expect("a part");
                (c.reference, c.total, c.sequence)
            })
            .collect();
        let mut references: Vec<(u16, u8)> = parts.iter().map(|p| (p.0, p.1)).collect();
        references.sort();
        references.dedup();
        assert_eq!(
            references.len(),
            1,
            "{number}: one reference, {parts:?}\n{}",
            gateway.logs()
        );
        let mut sequences: Vec<u8> = parts.iter().map(|p| p.2).collect();
        sequences.sort();
        sequences.dedup();
        let total = references[0].1;
        assert_eq!(sequences, (1..=total).collect::<Vec<_>>(), "{number}");
        repeated += parts.len() - usize::from(total);
    }
    assert!(
        repeated <= KILLS,
        "{repeated} parts repeated over {KILLS} kills\n{}",
        gateway.logs()
    );
    storage_emptied(&modem, &gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_is_entered_and_a_wrong_one_is_never_tried_twice() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |pin: &str| SimSettings {
        pin: Some(pin.to_owned()),
        ..SimSettings::default()
    };
    // The right PIN: the modem comes up and answers.
    let modem = SimModem::start(&dir.path().join("tty0"), settings("1234"))
        .await
        .unwrap();
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]).with_pin("1234");
    gateway.start();
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &number, 1, &gateway).await;
    drop(gateway);
    // A wrong PIN: entered once; the modem is retried but the PIN is not.
    let locked = SimModem::start(&dir.path().join("tty1"), settings("1234"))
        .await
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::new(other.path(), &[("m1", &locked)]).with_pin("0000");
    gateway.start();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let commands = locked.commands();
    let tries = commands
        .iter()
        .filter(|c| c.starts_with("AT+CPIN="))
        .count();
    assert_eq!(tries, 1, "{commands:?}\n{}", gateway.logs());
    assert!(
        commands.iter().filter(|c| *c == "AT+CPIN?").count() > 1,
        "the modem was tried again"
    );
    assert!(
        gateway.logs().contains("SIM PIN refused"),
        "{}",
        gateway.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_modems_state_is_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]).with_http();
    gateway.start();
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &number, 1, &gateway).await;
    eventually(&gateway, async || {
        let metrics = gateway.metrics().await;
        let wanted = [
            "motcua_modem_up{modem=\"m1\"} 1",
            "motcua_modem_registered{modem=\"m1\"} 1",
            "motcua_modem_messages_received_total{modem=\"m1\"} 1",
            "motcua_modem_parts_sent_total{modem=\"m1\"} 1",
            "motcua_modem_storage_total{modem=\"m1\"} 20",
        ];
        let all = wanted.iter().all(|line| metrics.contains(line))
            && metrics.contains("motcua_modem_signal_rssi{modem=\"m1\"}");
        (all, metrics)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_mark_replies_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (modem, gateway) =
        one_generic_modem(dir.path(), ("MOTCUA_MODEM__STATUS_REPORTS", "true")).await;
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    replies(&[&modem], &number, 1, &gateway).await;
    assert!(modem
        .submitted()
        .iter()
        .all(|s| s.pdu.status_report_request));
    eventually(&gateway, async || {
        let states = gateway.reply_states().await;
        (states == ["delivered"], states)
    })
    .await;
}

/// A long message's parts left on the SIM by a crash and read again long
/// after the journal's redelivery window are still known (by their
/// fingerprints), so they are not joined into a second message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_read_again_long_after_a_crash_are_not_a_second_message() {
    let dir = tempfile::tempdir().unwrap();
    let (modem, mut gateway) =
        one_generic_modem(dir.path(), ("MOTCUA_JOURNAL__REDELIVERY_WINDOW_SECS", "1")).await;
    exchange(&modem, &gateway).await;
    modem.fault(Fault::RefuseDelete);
    let number = citizen();
    let text = format!(
        "TC {KNOWN_CODE} xin chao, toi muon hoi ve ho so xay dung cua gia dinh toi, da nop tu \
         thang ba nhung den nay van chua nhan duoc ket qua, mong co quan tra loi som giup toi."
    );
    let parts = modem.phone_sends(&number, &text);
    assert!(parts >= 2);
    replies(&[&modem], &number, 1, &gateway).await;
    gateway.replies_settled(2).await;
    assert_eq!(
        modem.storage().len(),
        parts,
        "the parts are still on the SIM"
    );
    gateway.kill();
    // Well past the redelivery window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    modem.fault(Fault::Recover);
    gateway.start();
    storage_emptied(&modem, &gateway).await;
    no_more_replies(&[&modem], &number, 1, &gateway).await;
}

/// Huawei sticks print `^BOOT:` over and over in normal use: the gateway
/// does not take it for a restart, so it neither initialises the modem
/// again nor lists its storage again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huawei_boot_lines_in_normal_use_do_not_reinitialise_the_modem() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Huawei, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    exchange(&modem, &gateway).await;
    let boots = || {
        modem
            .unsolicited()
            .iter()
            .filter(|l| l.starts_with("^BOOT:"))
            .count()
    };
    let seen = boots();
    eventually(&gateway, async || (boots() >= seen + 3, boots())).await;
    exchange(&modem, &gateway).await;
    let inits = commands_starting(&modem, "AT+CMGF=0");
    assert_eq!(inits, 1, "initialised once\n{}", gateway.logs());
    assert!(
        !gateway.logs().contains("modem restarted"),
        "{}",
        gateway.logs()
    );
}

/// New messages land in the slots the gateway frees while it works through
/// a listing, unannounced (their `+CMTI` lost), and a restart of the modem
/// makes the gateway list the storage again meanwhile, so it holds two
/// listings' worth of slot numbers. A slot is deleted only when it holds
/// the message the journal has: no citizen's message is deleted unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_while_a_listing_is_worked_through_are_all_answered() {
    const SLOTS: u32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let modem = SimModem::start(
        &dir.path().join("tty0"),
        SimSettings {
            slots: SLOTS,
            ..SimSettings::default()
        },
    )
    .await
    .expect("simulator starts");
    // The SIM is full when the gateway starts: its first listing.
    let waiting: Vec<String> = (0..SLOTS).map(|_| citizen()).collect();
    for number in &waiting {
        modem.phone_sends(number, &format!("TC {KNOWN_CODE}"));
    }
    // More wait in the network, each stored as soon as a slot is freed.
    let arriving: Vec<String> = (0..SLOTS).map(|_| citizen()).collect();
    for number in &arriving {
        modem.phone_sends(number, &format!("TC {KNOWN_CODE}"));
    }
    modem.fault(Fault::LoseIndications);
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    let deadline = Instant::now() + REPLY_WITHIN;
    while commands_starting(&modem, "AT+CMGD=") == 0 {
        assert!(Instant::now() < deadline, "{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The modem restarts while the first listing is worked through.
    modem.fault(Fault::Reboot);
    for number in waiting.iter().chain(&arriving) {
        let got = replies(&[&modem], number, 1, &gateway).await;
        assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    }
    storage_emptied(&modem, &gateway).await;
    for number in waiting.iter().chain(&arriving) {
        assert_eq!(modem.replies_to(number).len(), 1, "{number}");
    }
}

/// SIGKILL after the first part of a two-part reply left: after the
/// restart only the second part goes, under the same concatenation
/// reference, so the handset joins one reply and shows no part twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_by_a_kill_resumes_with_its_missing_parts_under_the_same_reference() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]).with_accents();
    gateway.start();
    exchange(&modem, &gateway).await;
    gateway.replies_settled(1).await;
    let parts = modem.submitted().len();
    assert!(parts >= 2, "the accented reply takes two parts");
    // The first part leaves; the modem hangs on the second (once the
    // gateway has taken the first as sent); the gateway dies.
    modem.fault(Fault::HangAfterSends(1));
    let number = citizen();
    modem.phone_sends(&number, &format!("TC {KNOWN_CODE}"));
    let sends = || commands_starting(&modem, "AT+CMGS=");
    eventually(&gateway, async || (sends() >= parts + 2, modem.commands())).await;
    assert_eq!(modem.submitted().len(), parts + 1, "the first part left");
    gateway.kill();
    modem.fault(Fault::Recover);
    gateway.start();
    let got = replies(&[&modem], &number, 1, &gateway).await;
    assert!(got[0].starts_with(&known_reply_start()), "{got:?}");
    no_more_replies(&[&modem], &number, 1, &gateway).await;
    let sent: Vec<_> = modem
        .submitted()
        .into_iter()
        .filter(|s| s.to == number)
        .collect();
    let mut references: Vec<_> = sent
        .iter()
        .map(|s| {
            let c = s.pdu.user_data.concatenation().expect("a part");
            (c.reference, c.total)
        })
        .collect();
    references.dedup();
    assert_eq!(
        references.len(),
        1,
        "one reference: {references:?}\n{}",
        gateway.logs()
    );
    let mut sequences: Vec<u8> = sent
        .iter()
        .map(|s| s.pdu.user_data.concatenation().unwrap().sequence)
        .collect();
    sequences.sort();
    let whole: Vec<u8> = (1..=parts as u8).collect();
    assert_eq!(sequences, whole, "each part once\n{}", gateway.logs());
}

/// A stored message that is no PDU the gateway can read is journaled
/// (outcome `undecodable`, no reply) with its raw PDU, channel and time
/// before it is deleted from the SIM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_message_is_journaled_raw_before_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
    let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
    gateway.start();
    exchange(&modem, &gateway).await;
    // An SMS-DELIVER whose user data length (138 septets) runs past its end.
    let raw = "07914889200030F0040B914819010203F40000622170129144828AC8329BFD06";
    modem.deliver_raw(raw);
    storage_emptied(&modem, &gateway).await;
    let url = format!("sqlite://{}/journal.db?mode=ro", dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64, String, String, String)> = sqlx::query_as(
        "SELECT m.channel, m.text, m.received_at, r.outcome, r.state, r.text \
         FROM messages m JOIN replies r ON r.message_id = m.id WHERE r.outcome = 'undecodable'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(rows.len(), 1, "{rows:?}\n{}", gateway.logs());
    let (channel, text, received_at, _, state, reply) = &rows[0];
    assert_eq!(channel, "modem");
    assert_eq!(text, raw);
    assert!(*received_at > 0);
    assert_eq!(state, "suppressed");
    assert_eq!(reply, "");
}

/// Every reply PDU the gateway wrote to `modem`, read by PyPI smspdudecoder
/// (an SMS decoder nobody here wrote) through
/// `tests/peers/smspdudecoder_submit.py`: the recipient, each part's text
/// and its concatenation header must be what gsm-modem's decoder read.
fn assert_smspdudecoder_reads_the_same(modem: &SimModem) -> usize {
    let python = support::service("TEST_SMSPDUDECODER_PYTHON");
    let script = support::repo_root().join("tests/peers/smspdudecoder_submit.py");
    let lines: Vec<String> = modem
        .submitted()
        .iter()
        .map(|sent| {
            let concat = sent.pdu.user_data.concatenation().map(|c| {
                serde_json::json!({
                    "reference": c.reference,
                    "total": c.total,
                    "sequence": c.sequence,
                })
            });
            serde_json::json!({
                "hex": sent.hex,
                "to": sent.to,
                "text": sent.pdu.user_data.text(),
                "concat": concat,
            })
            .to_string()
        })
        .collect();
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        for line in &lines {
            writeln!(stdin, "{line}").expect("the script reads every line");
        }
    }
    let output = child.wait_with_output().expect("the script finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "smspdudecoder reads the reply PDUs otherwise ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("compared {} PDUs, 0 mismatches", lines.len())),
        "{stdout}"
    );
    lines.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_smspdudecoder_python),
    ignore = "needs TEST_SMSPDUDECODER_PYTHON (PyPI smspdudecoder)"
)]
async fn smspdudecoder_reads_the_reply_pdus_as_we_do() {
    for accents in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let modem = sim(dir.path(), "tty0", Profile::Generic, Delivery::Store).await;
        let mut gateway = Gateway::new(dir.path(), &[("m1", &modem)]);
        if accents {
            gateway = gateway.with_accents();
        }
        gateway.start();
        // Found (long: concatenated parts), not found, help.
        for text in [
            format!("TC {KNOWN_CODE}"),
            "TC 000.00.12.H58-240315-9999".to_owned(),
            "xin chao".to_owned(),
        ] {
            let number = citizen();
            modem.phone_sends(&number, &text);
            replies(&[&modem], &number, 1, &gateway).await;
        }
        // The found reply in UCS-2 takes concatenated parts (in GSM-7 it fits one).
        let sent = modem.submitted();
        assert!(
            !accents
                || sent
                    .iter()
                    .any(|s| s.pdu.user_data.concatenation().is_some()),
            "no concatenated reply to compare: {sent:?}"
        );
        let compared = assert_smspdudecoder_reads_the_same(&modem);
        assert!(compared >= 3, "accents {accents}: {compared} PDUs");
    }
}
