//! The modem session against the simulated modems, port opened by path as
//! a real serial port is: init on every make, receiving (indication,
//! direct, the start-up sweep), delete only on request, sending parts,
//! CMS errors, a reboot, a hang.
#![cfg(feature = "sim")]

use std::time::Duration;

use gsm_modem::pdu::{self, Pdu, PduAddress, SubmitOptions, Tpdu};
use gsm_modem::session::{Deletion, ModemError, ModemEvent, ModemHandle, Session, SessionSettings};
use gsm_modem::sim::{Delivery, Fault, Profile, SimModem, SimSettings};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::sync::CancellationToken;

const WITHIN: Duration = Duration::from_secs(20);

struct Running {
    handle: ModemHandle,
    events: mpsc::Receiver<ModemEvent>,
    task: JoinHandle<Result<(), ModemError>>,
    stop: CancellationToken,
}

fn settings() -> SessionSettings {
    SessionSettings {
        command_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(3),
        list_timeout: Duration::from_secs(3),
        sweep_interval: Duration::from_secs(2),
        watch_interval: Duration::from_secs(3),
        ..SessionSettings::default()
    }
}

async fn simulator(dir: &tempfile::TempDir, profile: Profile, delivery: Delivery) -> SimModem {
    SimModem::start(
        &dir.path().join("tty"),
        SimSettings {
            profile,
            delivery,
            ..SimSettings::default()
        },
    )
    .await
    .unwrap()
}

fn open(sim: &SimModem, settings: SessionSettings) -> Running {
    let port = tokio_serial::new(sim.path().to_string_lossy(), 115_200)
        .open_native_async()
        .expect("the pty opens as a serial port");
    let (session, handle, events) = Session::new(port, settings);
    let stop = CancellationToken::new();
    let task = tokio::spawn(session.run(stop.clone()));
    Running {
        handle,
        events,
        task,
        stop,
    }
}

impl Running {
    /// The next event that `pick` accepts; the others are skipped.
    async fn next<T>(&mut self, mut pick: impl FnMut(ModemEvent) -> Option<T>) -> T {
        tokio::time::timeout(WITHIN, async {
            loop {
                let Some(event) = self.events.recv().await else {
                    panic!("the session ended: {:?}", (&mut self.task).await);
                };
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        })
        .await
        .expect("event within the time")
    }

    async fn ready(&mut self) -> String {
        self.next(|e| match e {
            ModemEvent::Ready { model } => Some(model),
            _ => None,
        })
        .await
    }

    async fn received(&mut self) -> gsm_modem::session::ReceivedSms {
        self.next(|e| match e {
            ModemEvent::Received(sms) => Some(sms),
            _ => None,
        })
        .await
    }
}

fn submit(to: &str, text: &str) -> Vec<pdu::EncodedPdu> {
    pdu::submit_parts(
        &PduAddress::international(to),
        text,
        7,
        SubmitOptions::default(),
    )
    .into_iter()
    .map(|part| {
        pdu::encode(&Pdu {
            smsc: None,
            tpdu: Tpdu::Submit(part),
        })
        .unwrap()
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_make_initialises_receives_and_sends() {
    for profile in [
        Profile::Generic,
        Profile::Huawei,
        Profile::Zte,
        Profile::Wavecom,
        Profile::Telit,
        Profile::Pantech,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sim = simulator(&dir, profile, Delivery::Store).await;
        let mut modem = open(&sim, settings());
        assert!(!modem.ready().await.is_empty(), "{profile:?}: a model");
        sim.phone_sends("+84912345678", "TC 000.00.12.H58-240315-0007");
        let sms = modem.received().await;
        assert_eq!(sms.deliver.originator.number, "84912345678");
        assert_eq!(sms.deliver.user_data.text(), "TC 000.00.12.H58-240315-0007");
        let index = sms.location.expect("stored");
        // Kept until the owner deletes it.
        assert_eq!(sim.storage(), vec![index], "{profile:?}");
        assert_eq!(
            modem.handle.delete(index, &sms.pdu).await.unwrap(),
            Deletion::Deleted
        );
        assert!(sim.storage().is_empty(), "{profile:?}");
        for part in submit("84912345678", "Ho so dang xu ly") {
            modem.handle.send_pdu(part).await.unwrap();
        }
        assert_eq!(
            sim.replies_to("84912345678"),
            vec!["Ho so dang xu ly"],
            "{profile:?}"
        );
        modem.stop.cancel();
        modem.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stored_while_nobody_listened_are_found_by_the_first_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Huawei, Delivery::Store).await;
    sim.phone_sends("+84911111111", "one");
    sim.phone_sends("+84922222222", "two");
    let mut modem = open(&sim, settings());
    let mut texts = vec![
        modem.received().await.deliver.user_data.text(),
        modem.received().await.deliver.user_data.text(),
    ];
    texts.sort();
    assert_eq!(texts, ["one", "two"]);
    // Not handed over again by later sweeps while undeleted.
    let again = tokio::time::timeout(Duration::from_secs(5), modem.received()).await;
    assert!(again.is_err(), "handed over twice: {again:?}");
}

/// A delete names the message it means: a slot that holds another message
/// by then (the first was deleted, a new one took the slot, its indication
/// lost) is left alone, and the new message handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_deleted_only_while_it_holds_the_message_named() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Generic, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    sim.phone_sends("+84911111111", "first");
    let first = modem.received().await;
    let slot = first.location.expect("stored");
    assert_eq!(
        modem.handle.delete(slot, &first.pdu).await.unwrap(),
        Deletion::Deleted
    );
    // The next message takes the freed slot, unannounced.
    sim.fault(Fault::LoseIndications);
    sim.phone_sends("+84922222222", "second");
    assert_eq!(sim.storage(), vec![slot]);
    // A late delete of the first message leaves the second.
    assert_eq!(
        modem.handle.delete(slot, &first.pdu).await.unwrap(),
        Deletion::Replaced
    );
    assert_eq!(sim.storage(), vec![slot], "the second message is kept");
    let second = modem.received().await;
    assert_eq!(second.deliver.user_data.text(), "second");
    assert_eq!(second.location, Some(slot));
    assert_eq!(
        modem.handle.delete(slot, &second.pdu).await.unwrap(),
        Deletion::Deleted
    );
    assert!(sim.storage().is_empty());
    assert_eq!(
        modem.handle.delete(slot, &second.pdu).await.unwrap(),
        Deletion::AlreadyGone
    );
    let deletes = sim
        .commands()
        .iter()
        .filter(|c| c.starts_with("AT+CMGD="))
        .count();
    assert_eq!(deletes, 2, "{:?}", sim.commands());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_reply_goes_part_by_part_and_a_long_message_arrives_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Zte, Delivery::Direct).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    let long = "Hồ sơ của ông/bà đang được xử lý tại Bộ phận một cửa. ".repeat(4);
    let parts = sim.phone_sends("+84933333333", &long);
    assert!(parts >= 3);
    let mut got = Vec::new();
    for _ in 0..parts {
        let sms = modem.received().await;
        assert_eq!(sms.location, None, "pushed, not stored");
        let c = sms.deliver.user_data.concatenation().expect("a part");
        got.push((c.sequence, sms.deliver.user_data.text()));
    }
    got.sort();
    assert_eq!(got.into_iter().map(|(_, t)| t).collect::<String>(), long);
    let reply = submit("84933333333", &long);
    assert!(reply.len() >= 3);
    let mut references = Vec::new();
    for part in reply {
        references.push(modem.handle.send_pdu(part).await.unwrap());
    }
    references.dedup();
    assert_eq!(
        references.len(),
        sim.submitted().len(),
        "one reference per part"
    );
    assert_eq!(sim.replies_to("84933333333"), vec![long]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_send_is_an_error_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Generic, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    sim.fault(Fault::CmsErrorOnSend {
        code: 330,
        times: 1,
    });
    let part = submit("84944444444", "hello").remove(0);
    let error = modem.handle.send_pdu(part.clone()).await.unwrap_err();
    assert!(error.cms_error().is_some(), "{error}");
    assert!(!error.is_gone());
    modem.handle.send_pdu(part).await.unwrap();
    assert_eq!(sim.replies_to("84944444444"), vec!["hello"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_is_noticed_and_the_modem_initialised_again() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Huawei, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    sim.fault(Fault::Reboot);
    modem
        .next(|e| matches!(e, ModemEvent::Rebooted).then_some(()))
        .await;
    modem.ready().await;
    sim.phone_sends("+84955555555", "after the reboot");
    assert_eq!(
        modem.received().await.deliver.user_data.text(),
        "after the reboot"
    );
}

/// Huawei sticks print `^BOOT:` over and over while they run: no restart,
/// so the modem is not initialised again and its storage not listed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huawei_boot_lines_in_normal_use_are_no_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Huawei, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    let boots = || {
        sim.unsolicited()
            .iter()
            .filter(|l| l.starts_with("^BOOT:"))
            .count()
    };
    let seen = boots();
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while boots() < seen + 3 {
            if let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(200), modem.events.recv()).await
            {
                events.push(event);
            }
        }
    })
    .await
    .expect("three ^BOOT lines within the time");
    // What the session did about the last one has had time to show.
    sim.phone_sends("+84955555555", "after the boot lines");
    let sms = modem.received().await;
    assert_eq!(sms.deliver.user_data.text(), "after the boot lines");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ModemEvent::Rebooted | ModemEvent::Ready { .. })),
        "{events:?}"
    );
    let inits = sim.commands().iter().filter(|c| *c == "AT+CMGF=0").count();
    assert_eq!(inits, 1, "{:?}", sim.commands());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_hanging_mid_send_ends_the_session_and_a_soft_reset_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Telit, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    sim.fault(Fault::HangAtNextSend);
    let part = submit("84966666666", "hello").remove(0);
    let error = modem.handle.send_pdu(part.clone()).await.unwrap_err();
    assert!(matches!(error, ModemError::Hung { .. }), "{error}");
    assert!(error.is_gone());
    let ended = tokio::time::timeout(WITHIN, modem.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(ModemError::Hung { .. })), "{ended:?}");
    // The owner reopens with a soft reset.
    let mut again = open(
        &sim,
        SessionSettings {
            soft_reset: true,
            ..settings()
        },
    );
    again.ready().await;
    assert!(sim.commands().iter().any(|c| c == "AT+CFUN=0"));
    again.handle.send_pdu(part).await.unwrap();
    assert_eq!(sim.replies_to("84966666666"), vec!["hello"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_that_never_answers_is_reported_hung() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Generic, Delivery::Store).await;
    sim.fault(Fault::Hang);
    let modem = open(&sim, settings());
    let ended = tokio::time::timeout(Duration::from_secs(60), modem.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(ModemError::Hung { .. })), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_asking_for_a_pin_is_unlocked_once_and_never_guessed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::start(
        &dir.path().join("tty"),
        SimSettings {
            pin: Some("1234".to_owned()),
            ..SimSettings::default()
        },
    )
    .await
    .unwrap();
    let mut modem = open(
        &sim,
        SessionSettings {
            pin: Some("1234".to_owned()),
            ..settings()
        },
    );
    modem.ready().await;
    modem.stop.cancel();
    modem.task.await.unwrap().unwrap();
    sim.fault(Fault::Reboot);
    let wrong = open(
        &sim,
        SessionSettings {
            pin: Some("0000".to_owned()),
            ..settings()
        },
    );
    let ended = tokio::time::timeout(WITHIN, wrong.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(ModemError::PinRefused(_))), "{ended:?}");
    let tries = sim
        .commands()
        .iter()
        .filter(|c| c.starts_with("AT+CPIN=\"0000\""))
        .count();
    assert_eq!(tries, 1, "a wrong PIN is tried once only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_report_comes_back_for_a_part_sent_with_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(&dir, Profile::Generic, Delivery::Store).await;
    let mut modem = open(&sim, settings());
    modem.ready().await;
    let part = pdu::submit_parts(
        &PduAddress::international("84977777777"),
        "hello",
        9,
        SubmitOptions {
            status_report: true,
            ..SubmitOptions::default()
        },
    )
    .remove(0);
    let encoded = pdu::encode(&Pdu {
        smsc: None,
        tpdu: Tpdu::Submit(part),
    })
    .unwrap();
    let reference = modem.handle.send_pdu(encoded).await.unwrap();
    let report = modem
        .next(|e| match e {
            ModemEvent::StatusReport { report, .. } => Some(report),
            _ => None,
        })
        .await;
    assert_eq!(report.message_reference, reference);
    assert_eq!(report.recipient.number, "84977777777");
    assert!(report.is_delivered());
}
