//! The modem's side of the line: an AT command interpreter holding the SIM
//! storage, the "network" queue of incoming messages, the faults in force
//! and everything the gateway sent. Pure state: bytes in, bytes out, no I/O;
//! [`super::SimModem`]'s task feeds it and writes what it produces.

mod commands;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{Delivery, Fault, Profile, SimSettings, Submitted};
use crate::pdu::{self, Direction, Pdu, PduAddress, StatusReport, Timestamp, Tpdu};

/// Ctrl-Z: ends the PDU after the `> ` prompt.
const CTRL_Z: u8 = 0x1A;
/// ESC: cancels the PDU after the `> ` prompt.
const ESC: u8 = 0x1B;
/// Longest command line kept; longer lines are cut.
const MAX_LINE: usize = 1024;
/// How long after `AT+CMGS` a requested status report arrives.
const STATUS_REPORT_DELAY: Duration = Duration::from_millis(200);
/// How long the modem is away after `AT+CFUN=1,1` before it boots.
const RESET_DOWNTIME: Duration = Duration::from_millis(300);
/// How long a final result code trails the information lines of a
/// response: unsolicited lines arising meanwhile come in between, as on
/// real modems.
const FINAL_DELAY: Duration = Duration::from_millis(30);
/// Interval of the Huawei profile's unsolicited status lines.
const HUAWEI_PERIOD: Duration = Duration::from_secs(3);
/// Huawei's `^BOOT:` line, printed periodically while the stick runs.
const HUAWEI_BOOT: &str = "^BOOT:20843185,0,0,0,75";

/// One message on its way from the network: an SMS-DELIVER as hex with its
/// service centre address, and its TPDU length.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub hex: String,
    pub tpdu_len: usize,
}

/// A SIM storage slot in use.
#[derive(Debug, Clone)]
struct Stored {
    /// 0 received unread, 1 received read.
    stat: u8,
    hex: String,
    tpdu_len: usize,
}

/// What the bytes from the gateway are.
#[derive(Debug)]
enum Input {
    /// Command lines ending in `\r`.
    Command,
    /// Hex after the `> ` prompt, until Ctrl-Z or ESC.
    Prompt { len: usize, hex: Vec<u8> },
}

/// Whether the modem answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    /// It does.
    No,
    /// It answers nothing until [`Fault::Recover`].
    Total,
    /// It answers nothing but `AT+CFUN` (or [`Fault::Recover`]).
    UntilReset,
    /// Rebooting after `AT+CFUN=1,1`; back at the boot timer.
    Booting,
}

/// Things due later.
#[derive(Debug, Clone)]
enum Timer {
    StatusReport { mr: u8, recipient: PduAddress },
    Boot,
}

/// A final result code.
#[derive(Debug, Clone)]
enum Final {
    Ok,
    Error,
    Cme(u16),
    Cms(u16),
    /// Written as it is (Huawei's `COMMAND NOT SUPPORT`).
    Raw(&'static str),
    /// No final result (the prompt; Wavecom's `AT+CPIN?`).
    Nothing,
}

/// The AT interpreter and everything it holds.
pub(crate) struct Machine {
    settings: SimSettings,
    echo: bool,
    cmee: u8,
    text_mode: bool,
    cnmi_mt: u8,
    cnmi_ds: u8,
    creg_mode: u8,
    pin_ok: bool,
    radio_on: bool,
    curc: bool,
    storage: BTreeMap<u32, Stored>,
    network: VecDeque<Incoming>,
    input: Input,
    line: Vec<u8>,
    held: Vec<u8>,
    hang: Hang,
    /// Sends to let through before the one that hangs (`None`: none armed).
    hang_after_sends: Option<u32>,
    cms_on_send: Option<(u16, u32)>,
    /// `AT+CMGD` answers `+CMS ERROR: 500` (until [`Fault::Recover`]).
    refuse_delete: bool,
    /// Messages are stored without `+CMTI` (until [`Fault::Recover`]).
    lose_indications: bool,
    mr: u8,
    next_reference: u16,
    submitted: Vec<Submitted>,
    submitted_tx: watch::Sender<usize>,
    commands: Vec<String>,
    /// Every unsolicited code written (or held to be written), in order.
    unsolicited: Vec<String>,
    out: Vec<u8>,
    info_open: bool,
    /// A final result code due after information lines, and when.
    pending_final: Option<(Instant, Vec<u8>)>,
    /// Bytes received while a final result was pending, replayed after it.
    deferred_input: Vec<u8>,
    timers: Vec<(Instant, Timer)>,
    next_periodic: Instant,
    periodic_count: u32,
}

impl Machine {
    /// A freshly powered modem.
    pub(crate) fn new(settings: SimSettings) -> Machine {
        let pin_ok = settings.pin.is_none();
        Machine {
            settings,
            echo: true,
            cmee: 0,
            text_mode: false,
            cnmi_mt: 0,
            cnmi_ds: 0,
            creg_mode: 0,
            pin_ok,
            radio_on: true,
            curc: true,
            storage: BTreeMap::new(),
            network: VecDeque::new(),
            input: Input::Command,
            line: Vec::new(),
            held: Vec::new(),
            hang: Hang::No,
            hang_after_sends: None,
            cms_on_send: None,
            refuse_delete: false,
            lose_indications: false,
            mr: 0,
            next_reference: 1,
            submitted: Vec::new(),
            submitted_tx: watch::channel(0).0,
            commands: Vec::new(),
            unsolicited: Vec::new(),
            out: Vec::new(),
            info_open: false,
            pending_final: None,
            deferred_input: Vec::new(),
            timers: Vec::new(),
            next_periodic: Instant::now() + HUAWEI_PERIOD,
            periodic_count: 0,
        }
    }

    // ----- accessors for the handle -----

    pub(crate) fn settings(&self) -> &SimSettings {
        &self.settings
    }

    pub(crate) fn submitted(&self) -> &[Submitted] {
        &self.submitted
    }

    pub(crate) fn watch_submitted(&self) -> watch::Receiver<usize> {
        self.submitted_tx.subscribe()
    }

    pub(crate) fn commands(&self) -> &[String] {
        &self.commands
    }

    pub(crate) fn unsolicited(&self) -> &[String] {
        &self.unsolicited
    }

    pub(crate) fn storage(&self) -> Vec<u32> {
        self.storage.keys().copied().collect()
    }

    /// A fresh concatenation reference for a phone's message.
    pub(crate) fn take_reference(&mut self) -> u16 {
        let reference = self.next_reference;
        self.next_reference = self.next_reference.wrapping_add(1).max(1);
        reference
    }

    /// The bytes to write to the gateway, taken.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// When [`Machine::tick`] has something to do next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timers = self
            .timers
            .iter()
            .map(|(at, _)| *at)
            .chain(self.pending_final.as_ref().map(|(at, _)| *at))
            .min();
        let periodic =
            (self.settings.profile == Profile::Huawei && self.curc).then_some(self.next_periodic);
        match (timers, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- the phone side and faults -----

    /// A message arrives from the network: delivered now if the modem can
    /// take it, else queued.
    pub(crate) fn incoming(&mut self, message: Incoming) {
        self.network.push_back(message);
        self.pump();
    }

    /// A phone calls the SIM: `RING`, then the caller's number as modems
    /// print it (`+CLIP: "<number>",<type>,,,,0`), whether or not the
    /// gateway asked for it with `AT+CLIP=1`.
    pub(crate) fn call(&mut self, from: &str) {
        let kind = if from.starts_with('+') { 145 } else { 129 };
        self.urc("RING");
        self.urc(&format!("+CLIP: \"{from}\",{kind},,,,0"));
    }

    /// Applies a fault.
    pub(crate) fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Hang => {
                self.hang = Hang::Total;
                self.pending_final = None;
                self.deferred_input.clear();
                self.input = Input::Command;
                self.line.clear();
            }
            Fault::HangAtNextSend => self.hang_after_sends = Some(0),
            Fault::HangAfterSends(sends) => self.hang_after_sends = Some(sends),
            Fault::Reboot => self.boot(),
            Fault::StorageFull => {}
            Fault::CmsErrorOnSend { code, times } => {
                self.cms_on_send = (times > 0).then_some((code, times));
            }
            Fault::RefuseDelete => self.refuse_delete = true,
            Fault::LoseIndications => self.lose_indications = true,
            Fault::Recover => {
                self.hang = Hang::No;
                self.hang_after_sends = None;
                self.refuse_delete = false;
                self.lose_indications = false;
                self.timers.retain(|(_, t)| !matches!(t, Timer::Boot));
                self.resume();
            }
        }
    }

    /// Fills every free slot with `filler` (an old, read message).
    pub(crate) fn fill_storage(&mut self, filler: Incoming) {
        while let Some(index) = self.free_slot() {
            self.storage.insert(
                index,
                Stored {
                    stat: 1,
                    hex: filler.hex.clone(),
                    tpdu_len: filler.tpdu_len,
                },
            );
        }
    }

    /// Runs what is due at `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self
            .pending_final
            .as_ref()
            .is_some_and(|(at, _)| *at <= now)
        {
            if let Some((_, code)) = self.pending_final.take() {
                self.out.extend_from_slice(&code);
            }
            self.resume();
            let input = std::mem::take(&mut self.deferred_input);
            self.feed(&input);
        }
        let mut due = Vec::new();
        self.timers.retain(|(at, timer)| {
            if *at <= now {
                due.push(timer.clone());
                false
            } else {
                true
            }
        });
        for timer in due {
            match timer {
                Timer::StatusReport { mr, recipient } => self.status_report(mr, recipient),
                Timer::Boot => self.boot(),
            }
        }
        if self.settings.profile == Profile::Huawei && self.curc && self.next_periodic <= now {
            self.next_periodic = now + HUAWEI_PERIOD;
            if self.hang == Hang::No && matches!(self.input, Input::Command) {
                let line = self.huawei_periodic_line();
                self.out
                    .extend_from_slice(format!("\r\n{line}\r\r\n").as_bytes());
                self.unsolicited.push(line.to_owned());
            }
        }
    }

    // ----- bytes from the gateway -----

    /// Bytes written by the gateway.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            if self.pending_final.is_some() {
                // The modem is still answering: the rest waits for the final result.
                self.deferred_input.extend_from_slice(&bytes[i..]);
                return;
            }
            if matches!(self.input, Input::Prompt { .. }) && self.hang == Hang::No {
                self.prompt_byte(byte);
                continue;
            }
            match byte {
                b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.line_received(&line);
                }
                b'\n' => {}
                CTRL_Z | ESC => self.line.clear(),
                0x08 | 0x7F => {
                    self.line.pop();
                }
                _ => {
                    if self.line.len() < MAX_LINE {
                        self.line.push(byte);
                    }
                }
            }
        }
    }

    fn prompt_byte(&mut self, byte: u8) {
        match byte {
            CTRL_Z => {
                let Input::Prompt { len, hex } = std::mem::replace(&mut self.input, Input::Command)
                else {
                    return;
                };
                let result = self.submit(len, &hex);
                self.finish(result);
            }
            ESC => {
                self.input = Input::Command;
                self.finish(Final::Ok);
            }
            b'\r' | b'\n' => {}
            _ => {
                if self.echo {
                    self.out.push(byte);
                }
                if let Input::Prompt { hex, .. } = &mut self.input {
                    if hex.len() < 4 * MAX_LINE {
                        hex.push(byte);
                    }
                }
            }
        }
    }

    fn line_received(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw).trim().to_owned();
        if text.is_empty() {
            return;
        }
        let is_at = text.len() >= 2 && text[..2].eq_ignore_ascii_case("AT");
        if is_at {
            self.commands.push(text.clone());
        }
        match self.hang {
            Hang::No => {}
            Hang::Total | Hang::Booting => return,
            Hang::UntilReset => {
                if !(is_at && text[2..].to_ascii_uppercase().starts_with("+CFUN")) {
                    return;
                }
            }
        }
        if self.echo {
            self.out.extend_from_slice(raw);
            self.out.push(b'\r');
        }
        if !is_at {
            // Real modems ignore lines that do not start with AT.
            return;
        }
        let result = self.execute(&text[2..]);
        self.finish(result);
    }

    /// Writes the final result, then whatever waited for the command to end.
    fn finish(&mut self, result: Final) {
        let code = match result {
            Final::Ok => Some("OK".to_owned()),
            Final::Error => Some("ERROR".to_owned()),
            Final::Raw(text) => Some(text.to_owned()),
            Final::Cme(code) => Some(self.cme(code)),
            Final::Cms(code) => Some(self.cms(code)),
            Final::Nothing => None,
        };
        let had_info = std::mem::replace(&mut self.info_open, false);
        let Some(code) = code else {
            self.resume();
            return;
        };
        let code = format!("\r\n{code}\r\n").into_bytes();
        if had_info {
            self.pending_final = Some((Instant::now() + FINAL_DELAY, code));
        } else {
            self.out.extend_from_slice(&code);
            self.resume();
        }
    }

    /// After a command, a recovery or a boot: held URCs and queued messages.
    fn resume(&mut self) {
        if self.hang == Hang::No && matches!(self.input, Input::Command) {
            let held = std::mem::take(&mut self.held);
            self.out.extend_from_slice(&held);
            self.pump();
        }
    }

    fn cme(&self, code: u16) -> String {
        match self.cmee {
            0 => "ERROR".to_owned(),
            2 => {
                let text = match code {
                    3 => "operation not allowed",
                    4 => "operation not supported",
                    10 => "SIM not inserted",
                    11 => "SIM PIN required",
                    16 => "incorrect password",
                    30 => "no network service",
                    50 => "Incorrect parameters",
                    _ => return format!("+CME ERROR: {code}"),
                };
                format!("+CME ERROR: {text}")
            }
            _ => format!("+CME ERROR: {code}"),
        }
    }

    fn cms(&self, code: u16) -> String {
        match self.cmee {
            0 => "ERROR".to_owned(),
            2 => {
                let text = match code {
                    302 => "operation not allowed",
                    304 => "invalid PDU mode parameter",
                    321 => "invalid memory index",
                    322 => "memory full",
                    330 => "SMSC address unknown",
                    331 => "no network service",
                    500 => "unknown error",
                    _ => return format!("+CMS ERROR: {code}"),
                };
                format!("+CMS ERROR: {text}")
            }
            _ => format!("+CMS ERROR: {code}"),
        }
    }

    /// One information line of the current response.
    fn info(&mut self, line: &str) {
        if !self.info_open {
            self.out.extend_from_slice(b"\r\n");
            self.info_open = true;
        }
        self.out.extend_from_slice(line.as_bytes());
        // Huawei ends some lines with a doubled carriage return.
        if self.settings.profile == Profile::Huawei && line.starts_with('^') {
            self.out.push(b'\r');
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// An identification line (Huawei: `\r\r\n` after it).
    fn ident(&mut self, line: &str) {
        self.info(line);
        if self.settings.profile == Profile::Huawei {
            let len = self.out.len();
            self.out.insert(len - 2, b'\r');
        }
    }

    /// An unsolicited result code: now, or held while the gateway is
    /// typing a PDU or the modem does not answer.
    fn urc(&mut self, line: &str) {
        self.unsolicited.push(line.to_owned());
        let bytes = format!("\r\n{line}\r\n");
        if self.hang != Hang::No || matches!(self.input, Input::Prompt { .. }) {
            self.held.extend_from_slice(bytes.as_bytes());
        } else {
            self.out.extend_from_slice(bytes.as_bytes());
        }
    }

    /// The next of Huawei's status lines. Every other one is `^BOOT:`,
    /// which real sticks print over and over in normal use (it is no
    /// reboot; ModemManager's Huawei plugin ignores it too).
    fn huawei_periodic_line(&mut self) -> &'static str {
        self.periodic_count = self.periodic_count.wrapping_add(1);
        match self.periodic_count % 6 {
            2 => "^RSSI: 17",
            4 => "^MODE: 5,4",
            0 => "^DSFLOWRPT:0000003C,00000000,00000000,0000000000000000,0000000000000000,0003E800,0003E800",
            _ => HUAWEI_BOOT,
        }
    }

    // ----- the network -----

    fn indications(&self) -> bool {
        self.cnmi_mt > 0
    }

    fn registered(&self) -> bool {
        self.radio_on && self.pin_ok
    }

    fn first_index(&self) -> u32 {
        if self.settings.profile == Profile::Huawei {
            0
        } else {
            1
        }
    }

    fn slot_range(&self) -> std::ops::Range<u32> {
        let first = self.first_index();
        first..first + self.settings.slots
    }

    fn free_slot(&self) -> Option<u32> {
        self.slot_range().find(|i| !self.storage.contains_key(i))
    }

    /// Delivers queued messages while the modem can take them.
    fn pump(&mut self) {
        while self.hang == Hang::No
            && matches!(self.input, Input::Command)
            && self.registered()
            && !self.network.is_empty()
        {
            let direct = self.indications() && self.settings.delivery == Delivery::Direct;
            if direct {
                let Some(message) = self.network.pop_front() else {
                    break;
                };
                self.urc(&format!("+CMT: ,{}\r\n{}", message.tpdu_len, message.hex));
                continue;
            }
            let Some(index) = self.free_slot() else {
                break;
            };
            let Some(message) = self.network.pop_front() else {
                break;
            };
            if self.indications() && self.settings.delivery == Delivery::DirectAndStore {
                self.urc(&format!("+CMT: ,{}\r\n{}", message.tpdu_len, message.hex));
            }
            self.storage.insert(
                index,
                Stored {
                    stat: 0,
                    hex: message.hex,
                    tpdu_len: message.tpdu_len,
                },
            );
            if self.indications() && !self.lose_indications {
                self.urc(&format!("+CMTI: \"SM\",{index}"));
            }
        }
    }

    fn status_report(&mut self, mr: u8, recipient: PduAddress) {
        if !(self.indications() && self.cnmi_ds > 0) {
            return;
        }
        let time = now_timestamp();
        let pdu = Pdu {
            smsc: Some(PduAddress::international(&self.settings.smsc)),
            tpdu: Tpdu::StatusReport(StatusReport {
                message_reference: mr,
                recipient,
                service_centre_time: time,
                discharge_time: time,
                status: 0,
            }),
        };
        match pdu::encode(&pdu) {
            Ok(encoded) => {
                let line = format!("+CDS: {}\r\n{}", encoded.tpdu_length, encoded.hex());
                self.urc(&line);
            }
            Err(error) => tracing::warn!(%error, "sim: cannot encode a status report"),
        }
    }

    /// Power-on state (the SIM keeps its messages), and the boot banner.
    fn boot(&mut self) {
        self.echo = true;
        self.cmee = 0;
        self.text_mode = false;
        self.cnmi_mt = 0;
        self.cnmi_ds = 0;
        self.creg_mode = 0;
        self.pin_ok = self.settings.pin.is_none();
        self.radio_on = true;
        self.curc = true;
        self.input = Input::Command;
        self.line.clear();
        self.held.clear();
        self.hang = Hang::No;
        self.hang_after_sends = None;
        self.info_open = false;
        self.pending_final = None;
        self.deferred_input.clear();
        self.timers.retain(|(_, t)| !matches!(t, Timer::Boot));
        let pin = if self.pin_ok { "READY" } else { "SIM PIN" };
        let banner = match self.settings.profile {
            // The SIM found valid again (also when it asks for its PIN);
            // `^BOOT:` is no sign of a boot on these sticks.
            Profile::Huawei => "^SIMST: 1".to_owned(),
            Profile::Wavecom => format!("+WIND: 3\r\n\r\n+CPIN: {pin}"),
            _ => format!("RDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: {pin}"),
        };
        self.urc(&banner);
        self.pump();
    }
}

/// Now, as a service centre in Vietnam (UTC+7) stamps it.
pub(crate) fn now_timestamp() -> Timestamp {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let local = unix + 7 * 3600;
    let days = (local / 86_400) as i64;
    let secs = local % 86_400;
    let (year, month, day) = civil_from_days(days);
    Timestamp {
        year: (year % 100) as u8,
        month,
        day,
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        tz_quarters: 28,
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    fn machine(profile: Profile) -> Machine {
        Machine::new(SimSettings {
            profile,
            ..SimSettings::default()
        })
    }

    fn run(m: &mut Machine, line: &str) -> String {
        m.feed(format!("{line}\r").as_bytes());
        m.tick(Instant::now() + Duration::from_secs(1));
        String::from_utf8(m.take_output()).unwrap()
    }

    #[test]
    fn echo_then_quiet() {
        let mut m = machine(Profile::Generic);
        assert_eq!(run(&mut m, "AT"), "AT\r\r\nOK\r\n");
        assert_eq!(run(&mut m, "ATE0"), "ATE0\r\r\nOK\r\n");
        assert_eq!(run(&mut m, "AT"), "\r\nOK\r\n");
        assert_eq!(run(&mut m, "AT+FOO"), "\r\nERROR\r\n");
        assert_eq!(m.commands().len(), 4);
    }

    #[test]
    fn huawei_quirks_without_pdus() {
        let mut m = machine(Profile::Huawei);
        run(&mut m, "ATE0");
        assert_eq!(run(&mut m, "AT+FOO"), "\r\nCOMMAND NOT SUPPORT\r\n");
        assert_eq!(run(&mut m, "AT+CGMI"), "\r\nhuawei\r\r\n\r\nOK\r\n");
    }

    #[test]
    fn wavecom_cpin_has_no_ok() {
        let mut m = machine(Profile::Wavecom);
        run(&mut m, "ATE0");
        assert_eq!(run(&mut m, "AT+CPIN?"), "\r\n+CPIN: READY\r\n");
    }

    #[test]
    fn pin_and_errors() {
        let mut m = Machine::new(SimSettings {
            pin: Some("1234".into()),
            ..SimSettings::default()
        });
        run(&mut m, "ATE0");
        run(&mut m, "AT+CMEE=1");
        assert_eq!(run(&mut m, "AT+CPIN?"), "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n");
        assert_eq!(run(&mut m, "AT+CPMS?"), "\r\n+CME ERROR: 11\r\n");
        assert_eq!(run(&mut m, "AT+CPIN=\"0000\""), "\r\n+CME ERROR: 16\r\n");
        run(&mut m, "AT+CMEE=2");
        assert_eq!(
            run(&mut m, "AT+CPIN=\"0000\""),
            "\r\n+CME ERROR: incorrect password\r\n"
        );
        assert_eq!(run(&mut m, "AT+CPIN=\"1234\""), "\r\nOK\r\n");
        assert_eq!(
            run(&mut m, "AT+CPMS?"),
            "\r\n+CPMS: \"SM\",0,20,\"SM\",0,20,\"SM\",0,20\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn urcs_land_between_information_lines_and_the_final_result() {
        let mut m = machine(Profile::Generic);
        run(&mut m, "ATE0");
        run(&mut m, "AT+CNMI=2,1,0,0,0");
        m.feed(b"AT+CPMS?\r");
        // The gateway pipelines a command: it waits for the final result.
        m.feed(b"AT\r");
        m.incoming(Incoming {
            hex: "00".into(),
            tpdu_len: 0,
        });
        let now = Instant::now();
        m.tick(now);
        m.tick(now + Duration::from_secs(1));
        let out = String::from_utf8(m.take_output()).unwrap();
        assert_eq!(
            out,
            "\r\n+CPMS: \"SM\",0,20,\"SM\",0,20,\"SM\",0,20\r\n\
             \r\n+CMTI: \"SM\",1\r\n\
             \r\nOK\r\n\
             \r\nOK\r\n"
        );
    }
}
