//! A modem session: one modem driven over any async byte stream (a serial
//! port, a pseudo-terminal, a test pipe). It owns the conversation: the
//! init sequence (echo off, numeric errors, SIM PIN, PDU mode, message
//! storage, new-message indications, registration reports), one command
//! at a time with a timeout of its own, unsolicited result codes handled
//! between and during commands, a periodic `AT+CMGL` sweep for messages
//! that arrived while nobody listened, a periodic signal and registration
//! watch that doubles as a liveness probe, and re-initialisation when the
//! modem restarted. A line such as `RDY`, `+CPIN: READY` or `^SIMST` (or the
//! echo coming back) is only a hint: the session then checks that what it
//! set is still in force (`AT+CNMI?`, `AT+CMGF?`, `AT+CPIN?`; every watch
//! checks the first two) and initialises the modem again only when it is
//! not. Huawei's `^BOOT:`, which sticks print over and over in normal use,
//! is no hint at all.
//!
//! Received messages leave as [`ModemEvent::Received`] with their storage
//! index and PDU; they stay on the SIM until the owner has recorded them and
//! calls [`ModemHandle::delete`] with both, so a crash between the two loses
//! nothing (the next sweep hands them over again). A slot is deleted only
//! while it still holds that PDU: the session reads it again (`AT+CMGR`)
//! and deletes it (`AT+CMGD`) in one exclusive sequence. TS 27.005 has no
//! compare-and-delete, but a stored message occupies its slot until it is
//! deleted, so the modem cannot store a new message there between the read
//! and the delete; a slot that holds something else by then (the message
//! was deleted before and a new one took its place) is left alone, and its
//! new message handed over. Replies go in with
//! [`ModemHandle::send_pdu`], one part per call, so the owner knows which
//! parts left.
//!
//! A command that gets no answer is followed by ESC (leaving a `> ` prompt)
//! and an `AT` probe; a modem that does not answer the probe either is
//! declared hung and [`Session::run`] returns [`ModemError::Hung`]: the
//! owner reopens the port and starts the next session with
//! [`SessionSettings::soft_reset`] (`AT+CFUN=0`, `AT+CFUN=1`).

mod exchange;
mod handle;
mod init;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::at::command::{self, PinState, SignalQuality, StorageUse};
use crate::at::urc::Registration;
use crate::at::{AtCodec, AtError, AtEvent, ErrorCode, FinalResult, Urc};
use crate::pdu::{self, Deliver, Direction, EncodedPdu, PduError, StatusReport, Tpdu};
use crate::redact::{self, redact};

pub use handle::ModemHandle;
use handle::Request;

/// How a session talks to its modem.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The SIM PIN, entered when the SIM asks for it.
    pub pin: Option<String>,
    /// The message storage read, written and received into (`SM`: the SIM; `ME`, `MT`).
    pub storage: String,
    /// How long an ordinary command may take.
    pub command_timeout: Duration,
    /// How long `AT+CMGS` may take once the PDU is written (the network answers).
    pub send_timeout: Duration,
    /// How long a listing (`AT+CMGL`) may take.
    pub list_timeout: Duration,
    /// How often stored messages are listed (messages whose indication was lost).
    pub sweep_interval: Duration,
    /// How often signal and registration are read (also proves the modem answers).
    pub watch_interval: Duration,
    /// Start with `AT+CFUN=0`, `AT+CFUN=1` (after the previous session hung).
    pub soft_reset: bool,
    /// Ask the network for a status report on every part sent.
    pub status_reports: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            pin: None,
            storage: "SM".to_owned(),
            command_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(60),
            list_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(60),
            watch_interval: Duration::from_secs(30),
            soft_reset: false,
            status_reports: false,
        }
    }
}

/// Why a session or one of its commands failed.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The byte stream failed or the line codec gave up.
    #[error(transparent)]
    At(#[from] AtError),
    /// The port closed (the modem was unplugged).
    #[error("the modem's port closed")]
    PortClosed,
    /// A command got no final result in time (the modem still answers an `AT` probe).
    ///
    /// Error messages show commands and results through [`redact::command`]
    /// and [`redact::redact`]: never a PIN, a number or a PDU.
    #[error("no answer to {} within {after:?}", redact::command(.command))]
    Timeout {
        /// The command.
        command: String,
        /// How long it was given.
        after: Duration,
    },
    /// The modem stopped answering altogether, even the probe after a timeout.
    #[error("the modem stopped answering (last command {})", redact::command(.command))]
    Hung {
        /// The command that went unanswered.
        command: String,
    },
    /// The modem answered a command with an error.
    #[error("{} refused: {}", redact::command(.command), redact::redact(&format!("{result:?}")))]
    Refused {
        /// The command.
        command: String,
        /// Its final result (`ERROR`, `+CMS ERROR: 330`, ...).
        result: FinalResult,
    },
    /// The SIM wants a PIN and none is configured, or the SIM is blocked or not ready.
    #[error("SIM: {0}")]
    Sim(String),
    /// The PIN given was refused. The owner must not try it again: three
    /// wrong PINs block the SIM.
    #[error("SIM: the PIN was refused ({0}); it will not be tried again")]
    PinRefused(String),
    /// The modem answered in a shape we cannot read.
    #[error("{}: unexpected answer: {}", redact::command(.command), redact::redact(.detail))]
    Unexpected {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A PDU could not be read or written.
    #[error(transparent)]
    Pdu(#[from] PduError),
    /// The session this handle belongs to has ended.
    #[error("the modem session has ended")]
    Closed,
}

impl ModemError {
    /// True when the session behind it is gone or going (another modem
    /// or the next session should take over).
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            ModemError::At(_)
                | ModemError::PortClosed
                | ModemError::Hung { .. }
                | ModemError::Closed
        )
    }

    /// The `+CMS ERROR` code, when the modem refused with one.
    pub fn cms_error(&self) -> Option<&crate::at::ErrorCode> {
        match self {
            ModemError::Refused {
                result: FinalResult::CmsError(code),
                ..
            } => Some(code),
            _ => None,
        }
    }
}

/// What [`ModemHandle::delete`] found in the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// It held the message given, and it is deleted.
    Deleted,
    /// It was empty already (deleted before): nothing done.
    AlreadyGone,
    /// It holds another message now (the one given was deleted before and
    /// a new one took the slot): left alone, and handed over if it was not.
    Replaced,
}

/// A message the modem received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSms {
    /// Its index in the storage; `None` when it was handed over directly
    /// (`+CMT`) and not stored.
    pub location: Option<u32>,
    /// The message.
    pub deliver: Deliver,
    /// The PDU as received (service centre address first), for fingerprints.
    pub pdu: Vec<u8>,
}

/// What the modem's owner hears from the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemEvent {
    /// Initialised and ready to send and receive.
    Ready {
        /// What `AT+CGMI` / `AT+CGMM` said, joined (empty when they failed).
        model: String,
    },
    /// A message; delete it with [`ModemHandle::delete`] once it is safe elsewhere.
    Received(ReceivedSms),
    /// A status report; delete it likewise when it has a location.
    StatusReport {
        /// Its index in the storage, when stored.
        location: Option<u32>,
        /// The report.
        report: StatusReport,
        /// The PDU as stored (for [`ModemHandle::delete`]).
        pdu: Vec<u8>,
    },
    /// A message that is not a PDU we can read. A stored one stays on the
    /// SIM until the owner decides (deleting it frees the slot); one handed
    /// over directly (`+CMT`) exists nowhere else.
    Unreadable {
        /// Its index, when stored.
        location: Option<u32>,
        /// The PDU octets as the modem gave them (service centre address first).
        pdu: Vec<u8>,
        /// Why it could not be read.
        error: String,
    },
    /// Signal quality.
    Signal(SignalQuality),
    /// Network registration.
    Registration(Registration),
    /// Use of the message storage.
    Storage(StorageUse),
    /// The modem restarted by itself (its settings were gone); the session
    /// initialises it again.
    Rebooted,
}

/// What the session checks to tell whether the modem restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    /// Nothing is due.
    Nothing,
    /// The message settings (`AT+CNMI?`, `AT+CMGF?`): at every watch.
    Settings,
    /// Those and the SIM (`AT+CPIN?`): after a hint of a restart.
    SettingsAndSim,
}

/// Timeouts in a row (each answered by the probe) after which the modem
/// is treated as hung anyway.
const MAX_TIMEOUTS_IN_A_ROW: u32 = 3;
/// How long the modem must stay quiet after a probe before the next command.
const QUIET: Duration = Duration::from_millis(300);
/// Time a freshly booted modem gets to answer `AT`.
const BOOT_PROBES: u32 = 5;
/// Unsolicited codes that modems send as the SIM comes up, as after a
/// restart; besides [`Urc::Boot`], they make the session check that its
/// settings are still in force (not Huawei's `^BOOT`, printed in normal use).
const RESTART_HINTS: &[&str] = &["+CPIN", "^SIMST", "+PBREADY"];

/// One modem's conversation. Create with [`Session::new`], drive with [`Session::run`].
pub struct Session<T> {
    framed: Framed<T, AtCodec>,
    settings: SessionSettings,
    events: mpsc::Sender<ModemEvent>,
    requests: mpsc::Receiver<Request>,
    ready: Arc<AtomicBool>,
    /// Unsolicited codes that came during a command, handled after it.
    pending: VecDeque<Urc>,
    /// Stored messages handed to the owner and not yet deleted, by index,
    /// with their PDU: a sweep or an indication hands a slot over again
    /// only when it holds something else.
    handed_over: HashMap<u32, Vec<u8>>,
    timeouts_in_a_row: u32,
    reinit: bool,
    /// What to check at the next turn to tell whether the modem restarted.
    check: Check,
    /// The `AT+CNMI` setting the modem took (mode, mt), to check it kept it.
    indications: Option<(u8, u8)>,
    /// `ATE0` was taken: an echo afterwards hints at a reset.
    echo_off: bool,
    /// An echo came back since the last check.
    echo_seen: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Session<T> {
    /// A session over `io`, its handle, and the events it will send.
    pub fn new(
        io: T,
        settings: SessionSettings,
    ) -> (Session<T>, ModemHandle, mpsc::Receiver<ModemEvent>) {
        let (events_tx, events) = mpsc::channel(256);
        let (requests_tx, requests) = mpsc::channel(64);
        let ready = Arc::new(AtomicBool::new(false));
        let session = Session {
            framed: Framed::new(io, AtCodec::new()),
            settings,
            events: events_tx,
            requests,
            ready: ready.clone(),
            pending: VecDeque::new(),
            handed_over: HashMap::new(),
            timeouts_in_a_row: 0,
            reinit: true,
            check: Check::Nothing,
            indications: None,
            echo_off: false,
            echo_seen: false,
        };
        let handle = ModemHandle {
            requests: requests_tx,
            ready,
        };
        (session, handle, events)
    }

    /// Initialises the modem and serves requests, indications, sweeps and
    /// watches until `shutdown`, until every handle and the event receiver
    /// are gone, or until the modem fails (port closed, hung, SIM refused):
    /// then the error says why and the owner decides when to try again.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ModemError> {
        let result = self.serve(shutdown).await;
        self.ready.store(false, Ordering::Release);
        // Requests already queued get a clear answer rather than a dropped channel.
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            match request {
                Request::Send { done, .. } => {
                    let _ = done.send(Err(ModemError::Closed));
                }
                Request::Delete { done, .. } => {
                    let _ = done.send(Err(ModemError::Closed));
                }
                Request::Command { done, .. } => {
                    let _ = done.send(Err(ModemError::Closed));
                }
            }
        }
        result
    }

    async fn serve(&mut self, shutdown: CancellationToken) -> Result<(), ModemError> {
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = tokio::time::interval(self.settings.watch_interval);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first ticks complete at once; init does both jobs itself.
        sweep.tick().await;
        watch.tick().await;
        loop {
            if self.reinit {
                let soft_reset = std::mem::take(&mut self.settings.soft_reset);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    result = self.initialise(soft_reset) => result?,
                }
                self.reinit = false;
                sweep.reset();
                watch.reset();
            }
            survivable(self.handle_pending().await)?;
            let check = std::mem::replace(&mut self.check, Check::Nothing);
            if check != Check::Nothing {
                survivable(self.check_settings(check == Check::SettingsAndSim).await)?;
            }
            if self.reinit {
                continue;
            }
            if self.events.is_closed() {
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                request = self.requests.recv() => match request {
                    Some(request) => self.serve_request(request).await?,
                    None => return Ok(()),
                },
                event = self.framed.next() => match event {
                    Some(Ok(AtEvent::Unsolicited(urc))) => self.pending.push_back(urc),
                    Some(Ok(other)) => debug!(event = %other, "modem said something nobody asked for"),
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(ModemError::PortClosed),
                },
                _ = sweep.tick() => survivable(self.sweep().await)?,
                _ = watch.tick() => {
                    // Also a restart that said nothing shows at the next turn.
                    self.check = self.check.max(Check::Settings);
                    survivable(self.watch().await)?;
                }
            }
        }
    }

    async fn serve_request(&mut self, request: Request) -> Result<(), ModemError> {
        match request {
            Request::Send { pdu, done } => {
                let result = self.send(&pdu).await;
                let fatal = escalate(&result);
                let _ = done.send(result);
                fatal
            }
            Request::Delete { index, pdu, done } => {
                let result = self.delete_if_holding(index, &pdu).await;
                // Deleted, or not: a slot still holding it may be handed
                // over again (the owner recognises it and deletes it then).
                if self.holds_handed_over(index, &pdu) {
                    self.handed_over.remove(&index);
                }
                let fatal = escalate(&result);
                let now_held = match &result {
                    Ok((Deletion::Replaced, Some(other))) => Some(other.clone()),
                    _ => None,
                };
                let _ = done.send(result.map(|(deletion, _)| deletion));
                // Answered first: the owner may be waiting for the answer
                // while the event queue is full.
                if let Some(other) = now_held {
                    if !self.holds_handed_over(index, &other) {
                        self.hand_over(Some(index), other).await;
                    }
                }
                fatal
            }
            Request::Command {
                text,
                timeout,
                done,
            } => {
                let result = self.execute(&text, timeout).await;
                let fatal = escalate(&result);
                let _ = done.send(result);
                fatal
            }
        }
    }

    /// True when `pdu` is what slot `index` held when it was handed over.
    fn holds_handed_over(&self, index: u32, pdu: &[u8]) -> bool {
        self.handed_over
            .get(&index)
            .is_some_and(|handed| same_message(handed, pdu))
    }

    /// Reads slot `index` and deletes it only if it holds `pdu`; with what
    /// it holds instead, when that is another message. One request, so no
    /// other command comes between the read and the delete; and the modem
    /// stores new messages in free slots only, so it cannot put one in this
    /// slot between the two either.
    async fn delete_if_holding(
        &mut self,
        index: u32,
        pdu: &[u8],
    ) -> Result<(Deletion, Option<Vec<u8>>), ModemError> {
        let timeout = self.settings.command_timeout;
        let lines = match self.execute(&command::cmgr(index), timeout).await {
            Ok(lines) => lines,
            // Some modems answer an empty slot so ("invalid memory index").
            Err(error) if error.cms_error() == Some(&ErrorCode::Number(321)) => {
                return Ok((Deletion::AlreadyGone, None))
            }
            Err(error) => return Err(error),
        };
        match command::parse_cmgr(index, &lines)? {
            None => Ok((Deletion::AlreadyGone, None)),
            Some(stored) if same_message(&stored.pdu, pdu) => {
                self.execute(&command::cmgd(index), timeout).await?;
                Ok((Deletion::Deleted, None))
            }
            Some(stored) => {
                debug!(index, "the slot holds another message now; not deleted");
                Ok((Deletion::Replaced, Some(stored.pdu)))
            }
        }
    }

    /// Lists every stored message and hands over those not yet handed over.
    async fn sweep(&mut self) -> Result<(), ModemError> {
        if let Some(lines) = self.execute_optional("AT+CPMS?").await? {
            if let Ok(uses) = command::parse_cpms(&lines) {
                if let Some(first) = uses.into_iter().next() {
                    if first.is_full() {
                        warn!(
                            used = first.used,
                            total = first.total,
                            "modem storage is full; emptying it"
                        );
                    }
                    self.emit(ModemEvent::Storage(first)).await;
                }
            }
        }
        let list_timeout = self.settings.list_timeout;
        let lines = match self.execute(command::cmgl_all(), list_timeout).await {
            Ok(lines) => lines,
            // Some modems answer an empty storage with an error.
            Err(ModemError::Refused { result, .. }) => {
                debug!(?result, "AT+CMGL=4 refused; nothing listed");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let stored = command::parse_cmgl(&lines)?;
        for message in stored {
            if self.holds_handed_over(message.index, &message.pdu) {
                continue;
            }
            self.hand_over(Some(message.index), message.pdu).await;
        }
        Ok(())
    }

    /// Reads signal and registration (and so proves the modem answers).
    async fn watch(&mut self) -> Result<(), ModemError> {
        if let Some(lines) = self.execute_optional("AT+CSQ").await? {
            if let Ok(signal) = command::parse_csq(&lines) {
                self.emit(ModemEvent::Signal(signal)).await;
            }
        }
        if let Some(lines) = self.execute_optional("AT+CREG?").await? {
            if let Ok(registration) = command::parse_creg(&lines) {
                self.emit(ModemEvent::Registration(registration)).await;
            }
        }
        Ok(())
    }

    /// Handles the unsolicited codes that came in so far.
    async fn handle_pending(&mut self) -> Result<(), ModemError> {
        while let Some(urc) = self.pending.pop_front() {
            match urc {
                Urc::MessageStored { storage, index }
                | Urc::StatusReportStored { storage, index } => {
                    if !storage.eq_ignore_ascii_case(&self.settings.storage) {
                        debug!(%storage, index, "indication for another storage; the sweep will find it");
                        continue;
                    }
                    // Read even when the slot was handed over before: an
                    // indication means something new is stored there.
                    self.read_stored(index).await?;
                }
                Urc::Message { pdu, .. } | Urc::StatusReport { pdu, .. } => {
                    self.hand_over(None, pdu).await;
                }
                Urc::Registration(registration) => {
                    self.emit(ModemEvent::Registration(registration)).await
                }
                Urc::SignalQuality(rssi) => {
                    self.emit(ModemEvent::Signal(SignalQuality { rssi, ber: 99 }))
                        .await
                }
                Urc::Boot => {
                    info!("the modem printed a start-up line; checking its settings");
                    self.check = Check::SettingsAndSim;
                }
                Urc::Ussd { status, .. } => debug!(status, "USSD indication ignored"),
                Urc::Ring => debug!("incoming call ignored"),
                Urc::Other { name, value } if RESTART_HINTS.contains(&name.as_str()) => {
                    info!(%name, value = %redact(&value), "the modem reported its SIM again; checking its settings");
                    self.check = Check::SettingsAndSim;
                }
                Urc::Other { name, value } => {
                    debug!(%name, value = %redact(&value), "indication")
                }
            }
        }
        Ok(())
    }

    async fn read_stored(&mut self, index: u32) -> Result<(), ModemError> {
        let timeout = self.settings.command_timeout;
        let lines = match self.execute(&command::cmgr(index), timeout).await {
            Ok(lines) => lines,
            Err(error @ ModemError::Refused { .. }) => {
                debug!(%error, index, "stored message not readable now; the sweep will try again");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if let Some(stored) = command::parse_cmgr(index, &lines)? {
            if !self.holds_handed_over(index, &stored.pdu) {
                self.hand_over(Some(index), stored.pdu).await;
            }
        }
        Ok(())
    }

    /// Decodes a received PDU and gives it to the owner.
    async fn hand_over(&mut self, location: Option<u32>, bytes: Vec<u8>) {
        let event = match pdu::decode(&bytes, Direction::ToMobile) {
            Ok(pdu::Pdu {
                tpdu: Tpdu::Deliver(deliver),
                ..
            }) => ModemEvent::Received(ReceivedSms {
                location,
                deliver,
                pdu: bytes.clone(),
            }),
            Ok(pdu::Pdu {
                tpdu: Tpdu::StatusReport(report),
                ..
            }) => ModemEvent::StatusReport {
                location,
                report,
                pdu: bytes.clone(),
            },
            Ok(pdu::Pdu {
                tpdu: Tpdu::Submit(_),
                ..
            }) => return,
            Err(error) => {
                warn!(?location, %error, octets = bytes.len(), "message unreadable");
                ModemEvent::Unreadable {
                    location,
                    pdu: bytes.clone(),
                    error: error.to_string(),
                }
            }
        };
        if let Some(index) = location {
            self.handed_over.insert(index, bytes);
        }
        self.emit(event).await;
    }

    async fn emit(&mut self, event: ModemEvent) {
        // The owner gone means the session ends at the next turn of the loop.
        let _ = self.events.send(event).await;
    }

    /// Sends one PDU: `AT+CMGS=<length>`, the prompt, the PDU and Ctrl-Z.
    async fn send(&mut self, pdu: &EncodedPdu) -> Result<u8, ModemError> {
        let length = u16::try_from(pdu.tpdu_length).map_err(|_| ModemError::Unexpected {
            command: "AT+CMGS".to_owned(),
            detail: format!("a TPDU of {} octets", pdu.tpdu_length),
        })?;
        let command = command::cmgs(length);
        self.write(format!("{command}\r").as_bytes()).await?;
        self.framed.codec_mut().expect(&["+CMGS:"]);
        let deadline = Instant::now() + self.settings.command_timeout;
        loop {
            match self.next_event(deadline).await? {
                Some(AtEvent::Prompt) => break,
                Some(AtEvent::Final(result)) => {
                    self.framed.codec_mut().expect_nothing();
                    return Err(ModemError::Refused { command, result });
                }
                Some(AtEvent::Unsolicited(urc)) => self.pending.push_back(urc),
                Some(AtEvent::Line(line)) => {
                    debug!(line = %redact(&line), "line before the prompt")
                }
                None => {
                    self.framed.codec_mut().expect_nothing();
                    return Err(self
                        .after_timeout(command, self.settings.command_timeout)
                        .await);
                }
            }
        }
        let mut body = pdu.hex().into_bytes();
        body.push(0x1a);
        self.write(&body).await?;
        let deadline = Instant::now() + self.settings.send_timeout;
        let mut lines = Vec::new();
        let result = loop {
            match self.next_event(deadline).await? {
                Some(AtEvent::Final(FinalResult::Ok)) => break Ok(()),
                Some(AtEvent::Final(result)) => {
                    break Err(ModemError::Refused {
                        command: command.clone(),
                        result,
                    })
                }
                Some(AtEvent::Unsolicited(urc)) => self.pending.push_back(urc),
                Some(AtEvent::Line(line))
                    if line.trim().eq_ignore_ascii_case(pdu.hex().as_str()) => {}
                Some(AtEvent::Line(line)) => lines.push(line),
                Some(AtEvent::Prompt) => {}
                None => {
                    break Err(ModemError::Timeout {
                        command: command.clone(),
                        after: self.settings.send_timeout,
                    })
                }
            }
        };
        self.framed.codec_mut().expect_nothing();
        match result {
            Ok(()) => {
                self.timeouts_in_a_row = 0;
                match command::parse_cmgs(&lines) {
                    Ok(reference) => Ok(reference),
                    Err(error) => {
                        // Sent all the same: the modem said OK.
                        warn!(%error, "no message reference in the answer to AT+CMGS");
                        Ok(0)
                    }
                }
            }
            Err(ModemError::Timeout { command, after }) => {
                Err(self.after_timeout(command, after).await)
            }
            Err(error) => {
                self.timeouts_in_a_row = 0;
                Err(error)
            }
        }
    }
}

/// True when two PDUs read from a slot are the same message: the same
/// octets, or (a modem that writes its stored PDU a little differently from
/// one read to the next) the same TPDU once decoded: sender, time stamp,
/// headers and text. A new message in the slot differs in those.
fn same_message(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match (
        pdu::decode(a, Direction::ToMobile),
        pdu::decode(b, Direction::ToMobile),
    ) {
        (Ok(a), Ok(b)) => a.tpdu == b.tpdu,
        _ => false,
    }
}

/// A routine job (sweep, watch, reading an indicated message) that failed
/// with a timeout the probe answered, or a refusal, is tried again at its
/// next turn: the session goes on. Anything worse ends it.
fn survivable(result: Result<(), ModemError>) -> Result<(), ModemError> {
    match result {
        Err(
            error @ (ModemError::Timeout { .. }
            | ModemError::Refused { .. }
            | ModemError::Unexpected { .. }),
        ) => {
            warn!(%error, "modem job failed; tried again at its next turn");
            Ok(())
        }
        other => other,
    }
}

/// A failed request ends the session when the modem is gone, hung, or its
/// byte stream failed (the caller got its own copy of the error).
fn escalate<T>(result: &Result<T, ModemError>) -> Result<(), ModemError> {
    match result {
        Err(ModemError::Hung { command }) => Err(ModemError::Hung {
            command: command.clone(),
        }),
        Err(ModemError::PortClosed) => Err(ModemError::PortClosed),
        Err(ModemError::At(error)) => Err(ModemError::At(AtError::Io(std::io::Error::other(
            error.to_string(),
        )))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{PduAddress, SubmitOptions, Timestamp};

    fn stored(smsc: &str, text: &str) -> Vec<u8> {
        let time = Timestamp {
            year: 26,
            month: 11,
            day: 27,
            hour: 10,
            minute: 0,
            second: 1,
            tz_quarters: 28,
        };
        let deliver = pdu::deliver_parts(
            &PduAddress::international("84912345678"),
            text,
            1,
            time,
            SubmitOptions::default(),
        )
        .remove(0);
        pdu::encode(&pdu::Pdu {
            smsc: Some(PduAddress::international(smsc)),
            tpdu: Tpdu::Deliver(deliver),
        })
        .unwrap()
        .bytes
    }

    #[test]
    fn a_slot_holds_the_same_message_by_its_octets_or_its_tpdu() {
        let a = stored("84980200030", "TC 1");
        assert!(same_message(&a, &a.clone()));
        // Another service centre written in front: the same message.
        assert!(same_message(&a, &stored("84980200031", "TC 1")));
        assert!(!same_message(&a, &stored("84980200030", "TC 2")));
        assert!(!same_message(&[0x00, 0x01], &[0x00, 0x02]));
        assert!(same_message(&[0x00, 0x01], &[0x00, 0x01]));
    }
}
