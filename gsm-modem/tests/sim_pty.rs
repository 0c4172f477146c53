//! The simulated modem driven through its pty path by hand, as a gateway
//! would: AT commands in, responses and unsolicited lines out. Needs
//! `--features sim`.
#![cfg(feature = "sim")]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gsm_modem::pdu::{self, Direction, PduAddress, SubmitOptions, Tpdu};
use gsm_modem::sim::{Delivery, Fault, PhoneOptions, Profile, SimModem, SimSettings};
use nix::fcntl::OFlag;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::time::{timeout_at, Instant};

/// Generous: only guards against hangs, never measures speed.
const WAIT: Duration = Duration::from_secs(5);

/// A unique symlink path for one test.
fn link(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gsm-sim-{}-{name}", std::process::id()))
}

/// The gateway's end: the pty slave opened by path, raw, nonblocking.
struct Port {
    fd: AsyncFd<File>,
    buf: Vec<u8>,
}

impl Port {
    fn open(path: &Path) -> Port {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(path)
            .expect("open the pty path");
        let mut termios = tcgetattr(&file).expect("tcgetattr");
        cfmakeraw(&mut termios);
        tcsetattr(&file, SetArg::TCSANOW, &termios).expect("tcsetattr");
        // SAFETY: the File owns its descriptor for the AsyncFd's lifetime.
        let fd = unsafe { AsyncFd::register(file) }.expect("register");
        Port {
            fd,
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut guard = self.fd.writable().await.expect("writable");
            if let Ok(result) = guard.try_io(|f| f.get_ref().write(rest)) {
                let n = result.expect("write");
                rest = &rest[n..];
            }
        }
    }

    /// Reads more into the buffer; false at the deadline.
    async fn fill(&mut self, deadline: Instant) -> bool {
        loop {
            let Ok(ready) = timeout_at(deadline, self.fd.readable()).await else {
                return false;
            };
            let mut guard = ready.expect("readable");
            let mut chunk = [0u8; 1024];
            match guard.try_io(|f| f.get_ref().read(&mut chunk)) {
                Ok(Ok(n)) if n > 0 => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Ok(Ok(_)) => return false,
                Ok(Err(e)) => panic!("read: {e}"),
                Err(_) => continue,
            }
        }
    }

    /// Everything up to and including the earliest of `needles`.
    async fn until_any(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let found = needles
                .iter()
                .filter_map(|n| text.find(n).map(|at| at + n.len()))
                .min();
            if let Some(end) = found {
                let out = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end);
                return out;
            }
            if !self.fill(deadline).await {
                panic!("none of {needles:?} within {WAIT:?}; got {text:?}");
            }
        }
    }

    async fn until(&mut self, needle: &str) -> String {
        self.until_any(&[needle]).await
    }

    /// Whatever arrives within `window` (for silence checks).
    async fn quiet(&mut self, window: Duration) -> String {
        let deadline = Instant::now() + window;
        while self.fill(deadline).await {}
        let out = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        out
    }

    /// A command and its whole response, through the final result.
    async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r").as_bytes()).await;
        self.final_result().await
    }

    /// Through the final result code: `OK`, `ERROR`, `COMMAND NOT SUPPORT`
    /// or `+CME/+CMS ERROR: <code>`.
    async fn final_result(&mut self) -> String {
        let mut out = self
            .until_any(&[
                "\r\nOK\r\n",
                "ERROR\r\n",
                "COMMAND NOT SUPPORT\r\n",
                "ERROR: ",
            ])
            .await;
        if out.ends_with("ERROR: ") {
            out += &self.until("\r\n").await;
        }
        out
    }

    /// Echo off, numeric errors, PDU mode, indications on.
    async fn init(&mut self) {
        assert!(self.cmd("ATE0").await.ends_with("\r\nOK\r\n"));
        assert_eq!(self.cmd("AT+CMEE=1").await, "\r\nOK\r\n");
        assert_eq!(self.cmd("AT+CMGF=0").await, "\r\nOK\r\n");
        assert_eq!(self.cmd("AT+CNMI=2,1,0,1,0").await, "\r\nOK\r\n");
    }

    /// `AT+CMGS` of `hex` (SMSC part first): the response after the PDU.
    async fn send_pdu(&mut self, hex: &str, tpdu_len: usize) -> String {
        self.write(format!("AT+CMGS={tpdu_len}\r").as_bytes()).await;
        self.until("> ").await;
        self.write(format!("{hex}\x1a").as_bytes()).await;
        self.final_result().await
    }
}

async fn start(name: &str, settings: SimSettings) -> (SimModem, Port) {
    let modem = SimModem::start(&link(name), settings).await.expect("start");
    let port = Port::open(modem.path());
    (modem, port)
}

fn profile(profile: Profile) -> SimSettings {
    SimSettings {
        profile,
        ..SimSettings::default()
    }
}

/// A submit PDU for `text` to `to`: (hex, tpdu length) per part.
fn submit_pdus(to: &str, text: &str, options: SubmitOptions) -> Vec<(String, usize)> {
    pdu::submit_parts(&PduAddress::international(to), text, 7, options)
        .into_iter()
        .map(|submit| {
            let encoded = pdu::encode(&pdu::Pdu {
                smsc: None,
                tpdu: Tpdu::Submit(submit),
            })
            .expect("encode");
            (encoded.hex(), encoded.tpdu_length)
        })
        .collect()
}

/// The text of an SMS-DELIVER in hex.
fn deliver_text(hex: &str) -> String {
    match pdu::decode_hex(hex.trim(), Direction::ToMobile)
        .expect("decode")
        .tpdu
    {
        Tpdu::Deliver(deliver) => deliver.user_data.text(),
        other => panic!("not a deliver: {other:?}"),
    }
}

/// The PDU lines (all hex) of a listing.
fn pdu_lines(listing: &str) -> Vec<String> {
    listing
        .split("\r\n")
        .filter(|l| l.len() > 20 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

// ----- no PDUs needed -----

#[tokio::test]
async fn init_sequence_echo_and_status_commands() {
    let (modem, mut port) = start("init", SimSettings::default()).await;
    assert_eq!(
        port.cmd("AT").await,
        "AT\r\r\nOK\r\n",
        "echo on at power-on"
    );
    assert_eq!(port.cmd("ATE0").await, "ATE0\r\r\nOK\r\n");
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n", "echo off");
    assert_eq!(port.cmd("AT+CMEE=1").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CMGF=0").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CNMI=2,1,0,0,0").await, "\r\nOK\r\n");
    assert_eq!(
        port.cmd("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",0,20,\"SM\",0,20,\"SM\",0,20\r\n\r\nOK\r\n"
    );
    assert_eq!(
        port.cmd("AT+CPMS=\"SM\",\"SM\",\"SM\"").await,
        "\r\n+CPMS: 0,20,0,20,0,20\r\n\r\nOK\r\n"
    );
    assert_eq!(port.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CSQ").await, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CREG?").await, "\r\n+CREG: 0,1\r\n\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CREG=2").await, "\r\nOK\r\n");
    assert_eq!(
        port.cmd("AT+CREG?").await,
        "\r\n+CREG: 2,1,\"4CA\",\"81DE445\",2\r\n\r\nOK\r\n"
    );
    assert!(port
        .cmd("AT+CSCA?")
        .await
        .contains("+CSCA: \"+84980200030\",145"));
    assert!(port.cmd("AT+CGMI").await.contains("SIMCOM"));
    assert!(port.cmd("ATI").await.contains("Model:"));
    assert_eq!(port.cmd("AT+NOPE").await, "\r\nERROR\r\n");
    // Tolerates \r\n line ends.
    port.write(b"AT\r\n").await;
    assert_eq!(port.until("\r\nOK\r\n").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CMGR=99").await, "\r\n+CMS ERROR: 321\r\n");
    let commands = modem.commands();
    assert_eq!(commands[0], "AT");
    assert!(commands.contains(&"AT+CREG=2".to_owned()));
}

#[tokio::test]
async fn pin_is_asked_and_messages_wait_for_it() {
    let settings = SimSettings {
        pin: Some("1234".into()),
        ..SimSettings::default()
    };
    let (_modem, mut port) = start("pin", settings).await;
    port.cmd("ATE0").await;
    port.cmd("AT+CMEE=1").await;
    assert_eq!(
        port.cmd("AT+CPIN?").await,
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(port.cmd("AT+CMGL=4").await, "\r\n+CME ERROR: 11\r\n");
    assert_eq!(port.cmd("AT+CPIN=\"0000\"").await, "\r\n+CME ERROR: 16\r\n");
    assert_eq!(port.cmd("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
}

#[tokio::test]
async fn fault_hang_answers_nothing_until_recovered() {
    let (modem, mut port) = start("hang", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::Hang);
    port.write(b"AT\r").await;
    assert_eq!(port.quiet(Duration::from_secs(1)).await, "");
    modem.fault(Fault::Recover);
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    assert_eq!(modem.commands().iter().filter(|c| *c == "AT").count(), 2);
}

#[tokio::test]
async fn fault_reboot_banner_and_power_on_state() {
    let (modem, mut port) = start("reboot", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::Reboot);
    let banner = port.until("+CPIN: READY\r\n").await;
    assert!(
        banner.contains("RDY") && banner.contains("+CFUN: 1"),
        "{banner:?}"
    );
    assert_eq!(port.cmd("AT").await, "AT\r\r\nOK\r\n", "echo on again");
    assert_eq!(
        port.cmd("AT+NOPE").await,
        "AT+NOPE\r\r\nERROR\r\n",
        "CMEE reset"
    );
}

#[tokio::test]
async fn huawei_reboot_banner_and_pin_again() {
    let settings = SimSettings {
        profile: Profile::Huawei,
        pin: Some("1111".into()),
        ..SimSettings::default()
    };
    let (modem, mut port) = start("huawei-reboot", settings).await;
    port.cmd("ATE0").await;
    port.cmd("AT+CPIN=\"1111\"").await;
    modem.fault(Fault::Reboot);
    port.until("^SIMST: 1").await;
    port.write(b"AT+CPIN?\r").await;
    port.until("+CPIN: SIM PIN").await;
}

#[tokio::test]
async fn wavecom_cpin_without_ok() {
    let (_modem, mut port) = start("wavecom", profile(Profile::Wavecom)).await;
    port.cmd("ATE0").await;
    port.write(b"AT+CPIN?\r").await;
    assert_eq!(port.until("+CPIN: READY\r\n").await, "\r\n+CPIN: READY\r\n");
    // No OK follows: the next thing on the line answers the next command.
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
}

#[tokio::test]
async fn huawei_unknown_command_and_crcrlf() {
    let (_modem, mut port) = start("huawei-quirks", profile(Profile::Huawei)).await;
    port.cmd("ATE0").await;
    assert!(port
        .cmd("AT+NOPE")
        .await
        .ends_with("\r\nCOMMAND NOT SUPPORT\r\n"));
    assert!(port.cmd("AT+CGMM").await.contains("E173\r\r\n"));
    // The periodic status lines come on their own.
    port.until_any(&["^RSSI:", "^MODE:", "^DSFLOWRPT:", "^BOOT:"])
        .await;
}

#[tokio::test]
async fn huawei_prints_boot_lines_in_normal_use_and_keeps_its_settings() {
    let (modem, mut port) = start("huawei-boot", profile(Profile::Huawei)).await;
    port.init().await;
    port.until("^BOOT:").await;
    port.until("\r\r\n").await;
    assert!(
        modem.unsolicited().iter().any(|l| l.starts_with("^BOOT:")),
        "{:?}",
        modem.unsolicited()
    );
    // Nothing was reset: echo stays off, indications stay on.
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    assert!(port.cmd("AT+CNMI?").await.contains("+CNMI: 2,1,0,1,0"));
}

#[tokio::test]
async fn reopening_the_port_keeps_the_modem_working() {
    let (modem, mut port) = start("reopen", SimSettings::default()).await;
    port.init().await;
    drop(port);
    let mut port = Port::open(modem.path());
    assert_eq!(port.cmd("AT").await, "\r\nOK\r\n");
    drop(port);
    let mut port = Port::open(modem.path());
    assert_eq!(port.cmd("AT+CSQ").await, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n");
}

#[tokio::test]
async fn start_replaces_a_stale_symlink_and_shutdown_removes_it() {
    let path = link("replace");
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink("/dev/null", &path).unwrap();
    let modem = SimModem::start(&path, SimSettings::default())
        .await
        .unwrap();
    assert_ne!(std::fs::read_link(&path).unwrap(), Path::new("/dev/null"));
    modem.shutdown();
    let deadline = Instant::now() + WAIT;
    while std::fs::symlink_metadata(&path).is_ok() {
        assert!(Instant::now() < deadline, "symlink left behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn wait_submitted_times_out_with_what_came() {
    let (modem, _port) = start("wait", SimSettings::default()).await;
    let err = modem
        .wait_submitted(1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.wanted, 1);
    assert!(err.got.is_empty());
}

#[tokio::test]
async fn text_mode_is_not_simulated() {
    let (_modem, mut port) = start("textmode", SimSettings::default()).await;
    port.init().await;
    assert_eq!(port.cmd("AT+CMGF=1").await, "\r\nOK\r\n");
    assert_eq!(
        port.cmd("AT+CMGS=\"+84912345678\"").await,
        "\r\n+CMS ERROR: 302\r\n"
    );
}

// ----- with PDUs (needs the codec) -----

#[tokio::test]
async fn incoming_message_cmti_then_list_read_delete() {
    let (modem, mut port) = start("incoming", SimSettings::default()).await;
    port.init().await;
    assert_eq!(
        modem.phone_sends("+84987654321", "TRA 000.00.12.H12-240101-0001"),
        1
    );
    assert_eq!(port.until("\r\n").await, "\r\n");
    assert_eq!(port.until("\r\n").await, "+CMTI: \"SM\",1\r\n");
    assert_eq!(modem.storage(), vec![1]);

    let listing = port.cmd("AT+CMGL=4").await;
    assert!(listing.starts_with("\r\n+CMGL: 1,0,,"), "{listing:?}");
    let pdus = pdu_lines(&listing);
    assert_eq!(pdus.len(), 1);
    assert_eq!(deliver_text(&pdus[0]), "TRA 000.00.12.H12-240101-0001");
    // Listed, now read.
    assert!(port.cmd("AT+CMGL=1").await.contains("+CMGL: 1,1,,"));
    assert_eq!(port.cmd("AT+CMGL=0").await, "\r\nOK\r\n");
    let read = port.cmd("AT+CMGR=1").await;
    assert!(read.starts_with("\r\n+CMGR: 1,,"), "{read:?}");
    assert_eq!(pdu_lines(&read), pdus);
    assert_eq!(port.cmd("AT+CMGD=1").await, "\r\nOK\r\n");
    assert!(modem.storage().is_empty());
    assert_eq!(port.cmd("AT+CMGR=1").await, "\r\nOK\r\n", "empty slot");
    assert!(modem.commands().contains(&"AT+CMGD=1".to_owned()));
}

#[tokio::test]
async fn messages_are_stored_silently_before_cnmi() {
    let (modem, mut port) = start("silent", SimSettings::default()).await;
    port.cmd("ATE0").await;
    modem.phone_sends("+84987654321", "hello");
    assert_eq!(port.quiet(Duration::from_millis(300)).await, "");
    assert_eq!(modem.storage(), vec![1]);
    assert!(port.cmd("AT+CMGL=4").await.contains("+CMGL: 1,0,,"));
    assert_eq!(port.cmd("AT+CMGD=0,4").await, "\r\nOK\r\n");
    assert!(modem.storage().is_empty());
}

#[tokio::test]
async fn multipart_out_of_order_with_a_part_dropped() {
    let (modem, mut port) = start("multipart", SimSettings::default()).await;
    port.init().await;
    let long: String = (0..60).map(|i| format!("part{i:02} ")).collect();
    let delivered = modem.phone_sends_with(
        "+84987654321",
        &long,
        PhoneOptions {
            wide_reference: true,
            part_order: Some(vec![2, 1, 0]),
            reference: Some(0x1234),
            drop_parts: vec![1],
            ..PhoneOptions::default()
        },
    );
    assert_eq!(delivered, 2);
    port.until("+CMTI: \"SM\",1\r\n").await;
    port.until("+CMTI: \"SM\",2\r\n").await;
    let listing = port.cmd("AT+CMGL=4").await;
    let pdus = pdu_lines(&listing);
    assert_eq!(pdus.len(), 2);
    let concat: Vec<_> = pdus
        .iter()
        .map(
            |hex| match pdu::decode_hex(hex, Direction::ToMobile).unwrap().tpdu {
                Tpdu::Deliver(d) => d.user_data.concatenation().unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(concat[0].sequence, 3, "third part first");
    assert_eq!(concat[1].sequence, 1);
    assert!(concat.iter().all(|c| c.reference == 0x1234 && c.total == 3));
}

#[tokio::test]
async fn ucs2_message_round_trips() {
    let (modem, mut port) = start("ucs2", SimSettings::default()).await;
    port.init().await;
    modem.phone_sends("+84987654321", "Tra cứu hồ sơ");
    port.until("+CMTI: \"SM\",1\r\n").await;
    let pdus = pdu_lines(&port.cmd("AT+CMGR=1").await);
    assert_eq!(deliver_text(&pdus[0]), "Tra cứu hồ sơ");
}

#[tokio::test]
async fn direct_delivery_pushes_cmt_without_storing() {
    let settings = SimSettings {
        delivery: Delivery::Direct,
        ..SimSettings::default()
    };
    let (modem, mut port) = start("direct", settings).await;
    port.init().await;
    modem.phone_sends("0987654321", "direct one");
    port.until("+CMT: ,").await;
    port.until("\r\n").await;
    let hex = port.until("\r\n").await;
    assert_eq!(deliver_text(&hex), "direct one");
    assert!(modem.storage().is_empty());
}

#[tokio::test]
async fn direct_and_store_does_both() {
    let settings = SimSettings {
        delivery: Delivery::DirectAndStore,
        ..SimSettings::default()
    };
    let (modem, mut port) = start("both", settings).await;
    port.init().await;
    modem.phone_sends("+84987654321", "both ways");
    port.until("+CMT: ,").await;
    port.until("+CMTI: \"SM\",1\r\n").await;
    assert_eq!(modem.storage(), vec![1]);
}

#[tokio::test]
async fn deliver_raw_uses_the_pdu_as_given() {
    let (modem, mut port) = start("raw", SimSettings::default()).await;
    port.init().await;
    let deliver = pdu::deliver_parts(
        &PduAddress::international("84911111111"),
        "raw one",
        1,
        pdu::Timestamp {
            year: 24,
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5,
            tz_quarters: 28,
        },
        SubmitOptions::default(),
    );
    let hex = pdu::encode(&pdu::Pdu {
        smsc: Some(PduAddress::international("84980200030")),
        tpdu: Tpdu::Deliver(deliver[0].clone()),
    })
    .unwrap()
    .hex();
    modem.deliver_raw(&hex);
    port.until("+CMTI: \"SM\",1\r\n").await;
    assert_eq!(pdu_lines(&port.cmd("AT+CMGR=1").await), vec![hex]);
}

#[tokio::test]
async fn cmgs_records_submits_and_joins_replies() {
    let (modem, mut port) = start("cmgs", SimSettings::default()).await;
    port.init().await;
    let short = submit_pdus(
        "84987654321",
        "Ho so da xu ly xong",
        SubmitOptions::default(),
    );
    let (hex, len) = &short[0];
    assert_eq!(port.send_pdu(hex, *len).await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    let long: String = (0..30).map(|i| format!("dong {i:02}; ")).collect();
    let parts = submit_pdus("84987654321", &long, SubmitOptions::default());
    assert!(parts.len() > 1);
    for (i, (hex, len)) in parts.iter().enumerate() {
        let answer = port.send_pdu(hex, *len).await;
        assert_eq!(answer, format!("\r\n+CMGS: {}\r\n\r\nOK\r\n", i + 1));
    }
    let all = modem
        .wait_submitted(1 + parts.len(), WAIT)
        .await
        .expect("all submitted");
    assert_eq!(all[0].to, "+84987654321");
    assert_eq!(all[0].mr, 0);
    assert_eq!(&all[0].hex, hex);
    assert_eq!(
        modem.replies_to("84987654321"),
        vec!["Ho so da xu ly xong".to_owned(), long]
    );
    assert!(modem.replies_to("+84900000000").is_empty());
}

#[tokio::test]
async fn cmgs_length_mismatch_bad_pdu_and_escape() {
    let (modem, mut port) = start("cmgs-bad", SimSettings::default()).await;
    port.init().await;
    let pdus = submit_pdus("84987654321", "hi", SubmitOptions::default());
    let (hex, len) = &pdus[0];
    assert_eq!(port.send_pdu(hex, len + 1).await, "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(port.send_pdu("00ZZ", 1).await, "\r\n+CMS ERROR: 304\r\n");
    port.write(b"AT+CMGS=10\r").await;
    port.until("> ").await;
    port.write(b"0011\x1b").await;
    assert_eq!(port.until("\r\nOK\r\n").await, "\r\nOK\r\n");
    assert!(modem.submitted().is_empty());
}

#[tokio::test]
async fn status_report_follows_when_requested() {
    let (modem, mut port) = start("cds", SimSettings::default()).await;
    port.init().await;
    let options = SubmitOptions {
        status_report: true,
        ..SubmitOptions::default()
    };
    let (hex, len) = &submit_pdus("84987654321", "report me", options)[0];
    assert!(port.send_pdu(hex, *len).await.contains("+CMGS: 0"));
    port.until("+CDS: ").await;
    port.until("\r\n").await;
    let report = port.until("\r\n").await;
    match pdu::decode_hex(report.trim(), Direction::ToMobile)
        .unwrap()
        .tpdu
    {
        Tpdu::StatusReport(r) => {
            assert_eq!(r.message_reference, 0);
            assert!(r.is_delivered());
            assert_eq!(r.recipient.number, "84987654321");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(modem.submitted().len(), 1);
}

#[tokio::test]
async fn incoming_messages_wait_while_a_pdu_is_typed() {
    let (modem, mut port) = start("prompt", SimSettings::default()).await;
    port.init().await;
    let (hex, len) = &submit_pdus("84987654321", "hi", SubmitOptions::default())[0];
    port.write(format!("AT+CMGS={len}\r").as_bytes()).await;
    port.until("> ").await;
    modem.phone_sends("+84987654321", "while typing");
    assert_eq!(port.quiet(Duration::from_millis(200)).await, "");
    port.write(format!("{hex}\x1a").as_bytes()).await;
    let rest = port.until("+CMTI: \"SM\",1\r\n").await;
    let ok = rest.find("OK").expect("OK first");
    assert!(ok < rest.find("+CMTI").unwrap(), "{rest:?}");
}

#[tokio::test]
async fn fault_hang_at_next_send_prompt_then_silence_until_cfun() {
    let (modem, mut port) = start("sendhang", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::HangAtNextSend);
    let (hex, len) = &submit_pdus("84987654321", "stuck", SubmitOptions::default())[0];
    port.write(format!("AT+CMGS={len}\r").as_bytes()).await;
    port.until("> ").await;
    port.write(format!("{hex}\x1a").as_bytes()).await;
    assert_eq!(port.quiet(Duration::from_secs(1)).await, "");
    port.write(b"AT\r").await;
    assert_eq!(port.quiet(Duration::from_millis(300)).await, "");
    assert_eq!(port.cmd("AT+CFUN=1,1").await, "\r\nOK\r\n");
    port.until("RDY").await;
    port.until("+CPIN: READY\r\n").await;
    port.init().await;
    assert!(port.send_pdu(hex, *len).await.contains("+CMGS: 0"));
    let commands = modem.commands();
    assert!(commands.contains(&"AT+CFUN=1,1".to_owned()));
    assert_eq!(modem.submitted().len(), 1);
}

#[tokio::test]
async fn fault_hang_at_next_send_cfun_0_then_1() {
    let (modem, mut port) = start("sendhang2", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::HangAtNextSend);
    let (hex, len) = &submit_pdus("84987654321", "stuck", SubmitOptions::default())[0];
    port.write(format!("AT+CMGS={len}\r").as_bytes()).await;
    port.until("> ").await;
    port.write(format!("{hex}\x1a").as_bytes()).await;
    assert_eq!(port.quiet(Duration::from_millis(500)).await, "");
    assert_eq!(port.cmd("AT+CFUN=0").await, "\r\nOK\r\n");
    assert_eq!(port.send_pdu(hex, *len).await, "\r\n+CMS ERROR: 331\r\n");
    assert_eq!(port.cmd("AT+CFUN=1").await, "\r\nOK\r\n");
    assert!(port.send_pdu(hex, *len).await.contains("+CMGS: 0"));
}

#[tokio::test]
async fn fault_hang_after_sends_lets_the_first_parts_through() {
    let (modem, mut port) = start("sendhang3", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::HangAfterSends(1));
    let parts = submit_pdus(
        "84987654321",
        &"cut short ".repeat(20),
        SubmitOptions::default(),
    );
    assert!(parts.len() >= 2);
    let (hex, len) = &parts[0];
    assert!(port.send_pdu(hex, *len).await.contains("+CMGS: 0"));
    let (hex, len) = &parts[1];
    port.write(format!("AT+CMGS={len}\r").as_bytes()).await;
    port.until("> ").await;
    port.write(format!("{hex}\x1a").as_bytes()).await;
    assert_eq!(port.quiet(Duration::from_millis(500)).await, "");
    assert_eq!(modem.submitted().len(), 1, "only the first part went");
}

#[tokio::test]
async fn fault_lose_indications_stores_without_cmti() {
    let (modem, mut port) = start("nocmti", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::LoseIndications);
    modem.phone_sends("+84987654321", "unannounced");
    assert_eq!(port.quiet(Duration::from_millis(300)).await, "");
    assert_eq!(modem.storage(), vec![1]);
    let listing = port.cmd("AT+CMGL=4").await;
    assert_eq!(deliver_text(&pdu_lines(&listing)[0]), "unannounced");
    modem.fault(Fault::Recover);
    modem.phone_sends("+84987654321", "announced");
    port.until("+CMTI: \"SM\",2\r\n").await;
}

#[tokio::test]
async fn fault_storage_full_holds_messages_until_cmgd() {
    let settings = SimSettings {
        slots: 5,
        ..SimSettings::default()
    };
    let (modem, mut port) = start("full", settings).await;
    port.init().await;
    modem.fault(Fault::StorageFull);
    assert_eq!(
        port.cmd("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",5,5,\"SM\",5,5,\"SM\",5,5\r\n\r\nOK\r\n"
    );
    modem.phone_sends("+84987654321", "waiting");
    assert_eq!(port.quiet(Duration::from_millis(300)).await, "");
    assert_eq!(modem.storage(), vec![1, 2, 3, 4, 5]);
    assert_eq!(port.cmd("AT+CMGD=3").await, "\r\nOK\r\n");
    port.until("+CMTI: \"SM\",3\r\n").await;
    let pdus = pdu_lines(&port.cmd("AT+CMGR=3").await);
    assert_eq!(deliver_text(&pdus[0]), "waiting");
}

#[tokio::test]
async fn fault_cms_error_on_send_then_success() {
    let (modem, mut port) = start("cms", SimSettings::default()).await;
    port.init().await;
    modem.fault(Fault::CmsErrorOnSend {
        code: 330,
        times: 2,
    });
    let (hex, len) = &submit_pdus("84987654321", "retry", SubmitOptions::default())[0];
    assert_eq!(port.send_pdu(hex, *len).await, "\r\n+CMS ERROR: 330\r\n");
    assert_eq!(port.send_pdu(hex, *len).await, "\r\n+CMS ERROR: 330\r\n");
    assert!(modem.submitted().is_empty());
    assert_eq!(port.send_pdu(hex, *len).await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(modem.replies_to("+84987654321"), vec!["retry".to_owned()]);
}

#[tokio::test]
async fn huawei_indexes_from_zero_and_status_lines_mid_listing() {
    let (modem, mut port) = start("huawei-list", profile(Profile::Huawei)).await;
    port.init().await;
    modem.phone_sends("+84987654321", "one");
    modem.phone_sends("+84987654321", "two");
    port.until("+CMTI: \"SM\",0\r\n").await;
    port.until("+CMTI: \"SM\",1\r\n").await;
    let listing = port.cmd("AT+CMGL=4").await;
    let first = listing.find("+CMGL: 0,0,,").expect("index 0");
    let rssi = listing
        .find("^RSSI: 17\r\r\n")
        .expect("status line mid-listing");
    let second = listing.find("+CMGL: 1,0,,").expect("index 1");
    assert!(first < rssi && rssi < second, "{listing:?}");
    assert_eq!(pdu_lines(&listing).len(), 2);
}

#[tokio::test]
async fn zte_lines_before_prompt_and_cmgs() {
    let (_modem, mut port) = start("zte", profile(Profile::Zte)).await;
    port.init().await;
    let (hex, len) = &submit_pdus("84987654321", "zte", SubmitOptions::default())[0];
    port.write(format!("AT+CMGS={len}\r").as_bytes()).await;
    let before_prompt = port.until("> ").await;
    assert!(
        before_prompt.contains("+ZPASR: \"UMTS\""),
        "{before_prompt:?}"
    );
    port.write(format!("{hex}\x1a").as_bytes()).await;
    let answer = port.until("\r\nOK\r\n").await;
    let zdonr = answer.find("+ZDONR:").expect("ZDONR");
    assert!(zdonr < answer.find("+CMGS: 0").unwrap(), "{answer:?}");
}

#[tokio::test]
async fn telit_listing_and_read_formats() {
    let (modem, mut port) = start("telit", profile(Profile::Telit)).await;
    port.init().await;
    modem.phone_sends("+84987654321", "telit");
    port.until("+CMTI: \"SM\",1\r\n").await;
    assert!(port.cmd("AT+CMGL=4").await.contains("+CMGL: 1,0,\"\","));
    assert!(port.cmd("AT+CMGR=1").await.contains("+CMGR: 1,\"\","));
}

#[tokio::test]
async fn pantech_listing_without_alpha_field() {
    let (modem, mut port) = start("pantech", profile(Profile::Pantech)).await;
    port.init().await;
    modem.phone_sends("+84987654321", "pantech");
    port.until("+CMTI: \"SM\",1\r\n").await;
    let listing = port.cmd("AT+CMGL=4").await;
    let header = listing
        .split("\r\n")
        .find(|l| l.starts_with("+CMGL:"))
        .unwrap();
    assert_eq!(header.matches(',').count(), 2, "{header:?}");
    assert!(header.starts_with("+CMGL: 1,0,"));
}

#[tokio::test]
async fn reboot_keeps_storage_and_needs_cnmi_again() {
    let (modem, mut port) = start("reboot-storage", SimSettings::default()).await;
    port.init().await;
    modem.phone_sends("+84987654321", "kept");
    port.until("+CMTI: \"SM\",1\r\n").await;
    modem.fault(Fault::Reboot);
    port.until("+CPIN: READY\r\n").await;
    assert_eq!(modem.storage(), vec![1]);
    port.cmd("ATE0").await;
    modem.phone_sends("+84987654321", "quiet");
    assert_eq!(port.quiet(Duration::from_millis(300)).await, "");
    assert_eq!(modem.storage(), vec![1, 2]);
}

#[tokio::test]
async fn a_message_sent_while_the_port_is_closed_is_stored() {
    let (modem, mut port) = start("closed", SimSettings::default()).await;
    port.init().await;
    drop(port);
    modem.phone_sends("+84987654321", "while closed");
    let mut port = Port::open(modem.path());
    let listing = port.cmd("AT+CMGL=4").await;
    let pdus = pdu_lines(&listing);
    assert_eq!(deliver_text(&pdus[0]), "while closed");
}

#[tokio::test]
async fn an_incoming_message_can_come_between_information_lines_and_ok() {
    let (modem, mut port) = start("between", SimSettings::default()).await;
    port.init().await;
    // The final result trails the information lines by a few milliseconds;
    // a slow test machine may miss the window, so a few tries.
    for _ in 0..10 {
        port.write(b"AT+CPMS?\r").await;
        port.until("+CPMS: ").await;
        port.until("\r\n").await;
        modem.phone_sends("+84987654321", "between");
        let before_cmti = port.until("+CMTI: ").await;
        port.until("\r\n").await;
        if !before_cmti.contains("OK") {
            assert_eq!(port.until("\r\nOK\r\n").await, "\r\nOK\r\n");
            return;
        }
        assert_eq!(port.cmd("AT+CMGD=1,4").await, "\r\nOK\r\n");
    }
    panic!("the +CMTI never came before the OK");
}

#[tokio::test]
async fn senders_international_national_and_alphanumeric() {
    let (modem, mut port) = start("senders", SimSettings::default()).await;
    port.init().await;
    modem.phone_sends("+84987654321", "a");
    modem.phone_sends("0987654321", "b");
    modem.phone_sends("Viettel", "c");
    port.until("+CMTI: \"SM\",3\r\n").await;
    let originators: Vec<_> = pdu_lines(&port.cmd("AT+CMGL=4").await)
        .iter()
        .map(
            |hex| match pdu::decode_hex(hex, Direction::ToMobile).unwrap().tpdu {
                Tpdu::Deliver(d) => d.originator,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert!(originators[0].is_international());
    assert_eq!(originators[0].number, "84987654321");
    assert_eq!(originators[1].number, "0987654321");
    assert!(originators[2].is_alphanumeric());
    assert_eq!(originators[2].number, "Viettel");
}
