//! The GSM modem channel: the modems of `[[modem.devices]]` in config.toml,
//! each driven by a [`gsm_modem::session::Session`] over its serial port,
//! all sharing one reply queue (the channel `modem`: a reply may leave on
//! any modem that is up, the least recently used first).
//!
//! A received message is given to the gateway (journaled) and only then
//! deleted from the SIM, and only while its slot still holds that very PDU
//! (the session reads the slot again first): a slot number from an old
//! listing never deletes a newer message. A crash between the two leaves
//! it on the SIM, the next sweep hands it over again and the journal knows
//! it by its fingerprint (sender, service-centre time stamp, part, text),
//! so it is not answered twice. The same fingerprint makes a message that a
//! modem both pushes (`+CMT`) and stores count once. Parts of a long
//! message are joined by the journal (and answered anyway, partial, after
//! its timeout). A message that is no PDU the gateway can read is
//! journaled raw (outcome `undecodable`, no reply) before it is deleted.
//!
//! A reply goes one part at a time, each part recorded in the journal
//! before the next leaves, so a reply cut short by a crash resumes with its
//! missing parts under the same concatenation reference.
//!
//! A modem that fails (port gone, hung, SIM refused) is set aside and tried
//! again after a growing pause; after a hang the next session starts with a
//! soft reset (`AT+CFUN`). Nothing here knows dossiers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gsm_modem::pdu::{self, Body, Deliver, Pdu, PduAddress, StatusReport, SubmitOptions, Tpdu};
use gsm_modem::session::{
    Deletion, ModemError, ModemEvent, ModemHandle, ReceivedSms, Session, SessionSettings,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::address::Address;
use crate::channel::{
    DeliveryReport, IncomingSms, OutgoingReply, Outlet, OutletError, OutletFuture, PartFormat,
    PartIds, PartInfo, PartLog, PartSent, Receipt, ReceiptState, ReceiveError, Routes, SendError,
    SmsHandler, UndecodableSms,
};

/// The channel every modem's messages arrive on and replies leave from.
pub const CHANNEL: &str = "modem";

/// `[modem]`: the GSM modems (none by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModemSettings {
    /// `[[modem.devices]]`: one entry per modem.
    pub devices: Vec<ModemDevice>,
    /// Seconds an ordinary AT command may take.
    pub command_timeout_secs: u64,
    /// Seconds sending one part may take once the PDU is written.
    pub send_timeout_secs: u64,
    /// Seconds between sweeps of the SIM storage for messages whose
    /// indication was lost (and those that arrived while the gateway was down).
    pub sweep_interval_secs: u64,
    /// Seconds between signal/registration reads (also the liveness probe).
    pub watch_interval_secs: u64,
    /// Longest pause, in seconds, before a failed modem is tried again
    /// (the pause doubles from 1 s up to this).
    pub retry_after_secs: u64,
    /// Ask the network for status reports on replies.
    pub status_reports: bool,
}

impl Default for ModemSettings {
    fn default() -> Self {
        ModemSettings {
            devices: Vec::new(),
            command_timeout_secs: 5,
            send_timeout_secs: 60,
            sweep_interval_secs: 60,
            watch_interval_secs: 30,
            retry_after_secs: 300,
            status_reports: false,
        }
    }
}

/// One modem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemDevice {
    /// A name for logs and metrics (`huawei-1`).
    pub name: String,
    /// The serial device (`/dev/ttyUSB2`, or `/dev/serial/by-id/...` which survives re-plugging).
    pub device: PathBuf,
    /// Line speed.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The SIM PIN, when the SIM has one (entered once per start; a wrong
    /// PIN is not retried, so the SIM is not blocked).
    #[serde(default)]
    pub pin: Option<String>,
    /// The message storage: `SM` (the SIM), `ME` or `MT`.
    #[serde(default = "default_storage")]
    pub storage: String,
    /// The SIM's own number, recorded as the recipient of its messages.
    #[serde(default)]
    pub number: Option<String>,
}

fn default_baud() -> u32 {
    115_200
}

fn default_storage() -> String {
    "SM".to_owned()
}

/// What is known of one modem now (for logs, the status page and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModemState {
    /// Initialised and taking replies.
    pub up: bool,
    /// Manufacturer and model as the modem gives them.
    pub model: String,
    /// Signal, 0–31 (99 unknown).
    pub rssi: Option<u8>,
    /// Registered to a network (home or roaming).
    pub registered: Option<bool>,
    /// Messages in its storage and room for.
    pub storage: Option<(u32, u32)>,
    /// Messages taken.
    pub received: u64,
    /// Reply parts sent.
    pub sent: u64,
    /// Sessions that ended in a failure.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Every modem's [`ModemState`], by name, mirrored into the Prometheus
/// metrics `motcua_modem_*` (labelled `modem`).
#[derive(Debug, Clone, Default)]
pub struct ModemBoard {
    states: Arc<Mutex<HashMap<String, ModemState>>>,
    metrics: ModemMetrics,
}

type Labels = Vec<(String, String)>;

/// The modems' metrics.
#[derive(Debug, Clone, Default)]
struct ModemMetrics {
    up: Family<Labels, Gauge>,
    rssi: Family<Labels, Gauge>,
    registered: Family<Labels, Gauge>,
    storage_used: Family<Labels, Gauge>,
    storage_total: Family<Labels, Gauge>,
    received: Family<Labels, Counter>,
    sent: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
}

impl ModemBoard {
    /// A copy of every modem's state.
    pub fn snapshot(&self) -> HashMap<String, ModemState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers the `motcua_modem_*` metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("motcua_modem");
        let m = &self.metrics;
        sub.register(
            "up",
            "1 while the modem is initialised and taking replies",
            m.up.clone(),
        );
        sub.register(
            "signal_rssi",
            "Signal quality as AT+CSQ gives it, 0-31 (99 unknown)",
            m.rssi.clone(),
        );
        sub.register(
            "registered",
            "1 while registered to a network (home or roaming)",
            m.registered.clone(),
        );
        sub.register(
            "storage_used",
            "Messages in the modem's storage",
            m.storage_used.clone(),
        );
        sub.register(
            "storage_total",
            "Messages the modem's storage holds",
            m.storage_total.clone(),
        );
        sub.register(
            "messages_received",
            "Citizens' messages (parts) taken from the modem",
            m.received.clone(),
        );
        sub.register(
            "parts_sent",
            "Reply parts the network accepted",
            m.sent.clone(),
        );
        sub.register(
            "failures",
            "Sessions that ended in a failure (port gone, hung, SIM)",
            m.failures.clone(),
        );
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut ModemState)) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states.entry(name.to_owned()).or_default();
        change(state);
        let labels = vec![("modem".to_owned(), name.to_owned())];
        let m = &self.metrics;
        m.up.get_or_create(&labels).set(i64::from(state.up));
        if let Some(rssi) = state.rssi {
            m.rssi.get_or_create(&labels).set(i64::from(rssi));
        }
        if let Some(registered) = state.registered {
            m.registered
                .get_or_create(&labels)
                .set(i64::from(registered));
        }
        if let Some((used, total)) = state.storage {
            m.storage_used.get_or_create(&labels).set(i64::from(used));
            m.storage_total.get_or_create(&labels).set(i64::from(total));
        }
        // The state's counts only grow; the counters follow them.
        for (family, count) in [
            (&m.received, state.received),
            (&m.sent, state.sent),
            (&m.failures, state.failures),
        ] {
            let counter = family.get_or_create(&labels);
            let behind = count.saturating_sub(counter.get());
            if behind > 0 {
                counter.inc_by(behind);
            }
        }
    }
}

/// The modem channel: every configured modem, supervised.
pub struct ModemChannel<H> {
    settings: ModemSettings,
    handler: Arc<H>,
    routes: Arc<Routes>,
    board: ModemBoard,
}

/// Session ids for [`Routes`], distinct from SMPP sessions' (which count up from 1).
static NEXT_OUTLET: AtomicU64 = AtomicU64::new(1 << 48);

impl<H: SmsHandler> ModemChannel<H> {
    /// The channel for `settings`, handing messages to `handler` and
    /// keeping each modem's state on `board`.
    pub fn new(
        settings: ModemSettings,
        handler: Arc<H>,
        routes: Arc<Routes>,
        board: ModemBoard,
    ) -> Self {
        ModemChannel {
            settings,
            handler,
            routes,
            board,
        }
    }

    /// The modems' states.
    pub fn board(&self) -> ModemBoard {
        self.board.clone()
    }

    /// Runs every modem. After `shutdown` no new message is taken (they
    /// stay on the SIMs for the next start); replies still go out until
    /// `release`, when the sessions end.
    pub async fn run(self, shutdown: CancellationToken, release: CancellationToken) {
        let tracker = TaskTracker::new();
        for device in self.settings.devices.clone() {
            let supervisor = Supervisor {
                device,
                settings: self.settings.clone(),
                handler: self.handler.clone(),
                routes: self.routes.clone(),
                board: self.board.clone(),
            };
            tracker.spawn(supervisor.run(shutdown.clone(), release.clone()));
        }
        tracker.close();
        tracker.wait().await;
    }
}

struct Supervisor<H> {
    device: ModemDevice,
    settings: ModemSettings,
    handler: Arc<H>,
    routes: Arc<Routes>,
    board: ModemBoard,
}

impl<H: SmsHandler> Supervisor<H> {
    async fn run(self, shutdown: CancellationToken, release: CancellationToken) {
        let name = self.device.name.clone();
        let longest = Duration::from_secs(self.settings.retry_after_secs.max(1));
        let mut pause = Duration::from_secs(1);
        let mut soft_reset = false;
        // Cleared once refused: a PIN is never tried twice (three wrong
        // ones block the SIM).
        let mut pin = self.device.pin.clone();
        loop {
            if release.is_cancelled() || shutdown.is_cancelled() {
                return;
            }
            let outcome = match open_port(&self.device) {
                Ok(port) => {
                    self.session(port, pin.clone(), soft_reset, &shutdown, &release)
                        .await
                }
                Err(error) => Outcome::Ended {
                    error: format!("cannot open {}: {error}", self.device.device.display()),
                    hung: false,
                    was_up: false,
                    pin_refused: false,
                },
            };
            let Outcome::Ended {
                error,
                hung,
                was_up,
                pin_refused,
            } = outcome
            else {
                return;
            };
            if pin_refused {
                tracing::error!(modem = %name, %error, "SIM PIN refused: fix `pin` in config.toml and restart; it is not tried again");
                pin = None;
            }
            if release.is_cancelled() {
                debug!(modem = %name, %error, "modem session ended at shutdown");
                return;
            }
            // A modem that worked for a while is tried again soon; one that
            // keeps failing waits longer each time. After a hang the next
            // session starts with a soft reset.
            if was_up {
                pause = Duration::from_secs(1);
            }
            soft_reset = hung;
            self.note_failure(&error, pause);
            tokio::select! {
                _ = release.cancelled() => return,
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(longest);
        }
    }

    fn note_failure(&self, error: &str, pause: Duration) {
        warn!(modem = %self.device.name, %error, retry_in = ?pause, "modem set aside");
        self.board.update(&self.device.name, |state| {
            state.up = false;
            state.failures += 1;
            state.last_error = Some(error.to_owned());
        });
    }

    async fn session(
        &self,
        port: tokio_serial::SerialStream,
        pin: Option<String>,
        soft_reset: bool,
        shutdown: &CancellationToken,
        release: &CancellationToken,
    ) -> Outcome {
        let settings = SessionSettings {
            pin,
            storage: self.device.storage.clone(),
            command_timeout: Duration::from_secs(self.settings.command_timeout_secs.max(1)),
            send_timeout: Duration::from_secs(self.settings.send_timeout_secs.max(1)),
            list_timeout: Duration::from_secs(self.settings.send_timeout_secs.max(1)),
            sweep_interval: Duration::from_secs(self.settings.sweep_interval_secs.max(1)),
            watch_interval: Duration::from_secs(self.settings.watch_interval_secs.max(1)),
            soft_reset,
            status_reports: self.settings.status_reports,
        };
        let (session, handle, mut events) = Session::new(port, settings);
        let stop = release.child_token();
        let running = tokio::spawn(session.run(stop.clone()));
        let outlet_id = NEXT_OUTLET.fetch_add(1, Ordering::Relaxed);
        let mut was_up = false;
        while let Some(event) = events.recv().await {
            match event {
                ModemEvent::Ready { model } => {
                    if !was_up {
                        self.routes.register(
                            CHANNEL,
                            outlet_id,
                            Arc::new(ModemOutlet {
                                name: self.device.name.clone(),
                                handle: handle.clone(),
                                status_reports: self.settings.status_reports,
                                board: self.board.clone(),
                            }),
                        );
                    }
                    was_up = true;
                    info!(modem = %self.device.name, %model, "modem up");
                    self.board.update(&self.device.name, |state| {
                        state.up = true;
                        state.model = model;
                    });
                }
                ModemEvent::Received(sms) => {
                    if shutdown.is_cancelled() {
                        // Left on the SIM for the next start.
                        continue;
                    }
                    self.take(&handle, sms).await;
                }
                ModemEvent::StatusReport {
                    location,
                    report,
                    pdu,
                } => {
                    self.report(&report).await;
                    if let Some(index) = location {
                        self.delete(&handle, index, &pdu).await;
                    }
                }
                ModemEvent::Unreadable {
                    location,
                    pdu,
                    error,
                } => {
                    if shutdown.is_cancelled() {
                        continue;
                    }
                    self.keep_unreadable(&handle, location, pdu, error).await;
                }
                ModemEvent::Signal(signal) => {
                    self.board
                        .update(&self.device.name, |state| state.rssi = Some(signal.rssi));
                }
                ModemEvent::Registration(registration) => {
                    let registered = registration.is_registered();
                    self.board.update(&self.device.name, |state| {
                        if state.registered != Some(registered) {
                            info!(modem = %self.device.name, registered, stat = registration.stat, "registration");
                        }
                        state.registered = Some(registered);
                    });
                }
                ModemEvent::Storage(storage) => {
                    self.board.update(&self.device.name, |state| {
                        state.storage = Some((storage.used, storage.total))
                    });
                }
                ModemEvent::Rebooted => {
                    info!(modem = %self.device.name, "modem restarted; initialised again");
                }
            }
        }
        self.routes.unregister(CHANNEL, outlet_id);
        self.board
            .update(&self.device.name, |state| state.up = false);
        drop(handle);
        stop.cancel();
        let result = match running.await {
            Ok(result) => result,
            Err(panic) => Err(ModemError::Unexpected {
                command: String::new(),
                detail: format!("session task failed: {panic}"),
            }),
        };
        match result {
            Ok(()) => Outcome::Stopped,
            Err(error) => Outcome::Ended {
                hung: matches!(error, ModemError::Hung { .. }),
                pin_refused: matches!(error, ModemError::PinRefused(_)),
                error: error.to_string(),
                was_up,
            },
        }
    }

    /// Records a message, then deletes it from the storage.
    async fn take(&self, handle: &ModemHandle, sms: ReceivedSms) {
        let incoming = incoming_sms(&sms.deliver, self.device.number.as_deref());
        let Some(receipt) = self
            .record(sms.location, || self.handler.receive(incoming.clone()))
            .await
        else {
            return;
        };
        if let Receipt::Duplicate { .. } = receipt {
            debug!(modem = %self.device.name, location = ?sms.location, "message already recorded");
        } else {
            self.board
                .update(&self.device.name, |state| state.received += 1);
        }
        if let Some(index) = sms.location {
            self.delete(handle, index, &sms.pdu).await;
        }
    }

    /// Records a message that is no PDU the gateway can read, as it came
    /// (outcome `undecodable`), then deletes it from the storage.
    async fn keep_unreadable(
        &self,
        handle: &ModemHandle,
        location: Option<u32>,
        pdu: Vec<u8>,
        error: String,
    ) {
        warn!(modem = %self.device.name, ?location, %error, octets = pdu.len(), "unreadable message; recording it as it came");
        let message = UndecodableSms {
            channel: CHANNEL.to_owned(),
            destination: Address::new(self.device.number.as_deref().unwrap_or_default(), 0, 0),
            raw_hex: pdu::to_hex(&pdu),
            fingerprint: raw_fingerprint(&pdu),
            error,
        };
        let recorded = self
            .record(location, || self.handler.undecodable(message.clone()))
            .await;
        if let (Some(_), Some(index)) = (recorded, location) {
            self.delete(handle, index, &pdu).await;
        }
    }

    /// Runs `record` (the journal's write of a received message) until it
    /// succeeds, five times at most with a growing pause; `None` when it
    /// never did (the message stays on the modem).
    async fn record<F>(&self, location: Option<u32>, record: impl Fn() -> F) -> Option<Receipt>
    where
        F: std::future::Future<Output = Result<Receipt, ReceiveError>>,
    {
        let mut pause = Duration::from_millis(200);
        for attempt in 1..=5 {
            match record().await {
                Ok(receipt) => return Some(receipt),
                Err(error) => {
                    warn!(modem = %self.device.name, %error, attempt, "message not recorded yet; kept on the modem");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        warn!(modem = %self.device.name, ?location, "message left on the modem; it is read again when the modem is reopened");
        None
    }

    /// Deletes the message `pdu` at `index`, if the slot still holds it.
    async fn delete(&self, handle: &ModemHandle, index: u32, pdu: &[u8]) {
        match handle.delete(index, pdu).await {
            Ok(Deletion::Deleted) => {}
            Ok(Deletion::AlreadyGone) => {
                debug!(modem = %self.device.name, index, "recorded message deleted before")
            }
            Ok(Deletion::Replaced) => {
                info!(modem = %self.device.name, index, "the slot holds a newer message; it was not deleted")
            }
            Err(error) => {
                // Still on the SIM: the next sweep hands it over again and
                // the journal knows it, so it is deleted then.
                warn!(modem = %self.device.name, index, %error, "could not delete a recorded message; will retry");
            }
        }
    }

    async fn report(&self, report: &StatusReport) {
        let state = if report.is_delivered() {
            ReceiptState::Delivered
        } else if report.is_pending() {
            ReceiptState::Enroute
        } else {
            ReceiptState::Undeliverable
        };
        let delivery = DeliveryReport {
            message_id: part_id(&self.device.name, report.message_reference),
            state,
            error: (!report.is_delivered()).then(|| format!("tp-st:{:02x}", report.status)),
            submitted: None,
            delivered: None,
            submit_date: None,
            done_date: None,
            network_error: None,
        };
        if let Err(error) = self
            .handler
            .delivery_report(CHANNEL.to_owned(), delivery)
            .await
        {
            warn!(modem = %self.device.name, %error, "status report not recorded");
        }
    }
}

/// How a modem's session ended.
enum Outcome {
    /// Shut down on request.
    Stopped,
    /// Failed.
    Ended {
        /// Why.
        error: String,
        /// It stopped answering.
        hung: bool,
        /// It had been initialised before it failed.
        was_up: bool,
        /// The SIM refused the PIN.
        pin_refused: bool,
    },
}

/// Opens a serial port for a modem: 8N1, no flow control, exclusive.
fn open_port(device: &ModemDevice) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    use tokio_serial::SerialPortBuilderExt;
    let path = device.device.to_string_lossy().into_owned();
    let mut port = tokio_serial::new(path, device.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .timeout(Duration::from_millis(100))
        .open_native_async()?;
    port.set_exclusive(true)?;
    Ok(port)
}

/// The id of a reply part sent by `modem` with message reference `reference`
/// (status reports name it the same way).
pub fn part_id(modem: &str, reference: u8) -> String {
    format!("{modem}:{reference}")
}

/// A received SMS-DELIVER as the gateway takes messages.
pub fn incoming_sms(deliver: &Deliver, own_number: Option<&str>) -> IncomingSms {
    let originator = &deliver.originator;
    let toa = originator.type_of_address;
    let text = match &deliver.user_data.body {
        Body::Text(text) => text.clone(),
        // 8-bit data is no text a citizen typed: help follows.
        Body::Binary(_) => String::new(),
    };
    let part = deliver
        .user_data
        .concatenation()
        .filter(|c| c.total > 1 && (1..=c.total).contains(&c.sequence))
        .map(|c| PartInfo {
            reference: c.reference,
            total: c.total,
            index: c.sequence,
        });
    IncomingSms {
        channel: CHANNEL.to_owned(),
        source: Address::new(originator.number.clone(), (toa >> 4) & 0x07, toa & 0x0f),
        destination: Address::new(own_number.unwrap_or_default(), 0, 0),
        text,
        peer_ref: None,
        part,
        fingerprint: Some(fingerprint(deliver)),
    }
}

/// What identifies a message that could not be read: a hash of its raw
/// PDU (read again after a crash, it is the same).
pub fn raw_fingerprint(pdu: &[u8]) -> String {
    let digest = Sha256::digest(pdu);
    format!("raw:{}", pdu::to_hex(&digest[..12]))
}

/// What makes a received message itself: sender, service-centre time
/// stamp, part and text. The same message read twice (pushed and stored,
/// or again after a crash) has the same fingerprint.
pub fn fingerprint(deliver: &Deliver) -> String {
    let mut hash = Sha256::new();
    hash.update(deliver.originator.number.as_bytes());
    hash.update([0, deliver.originator.type_of_address]);
    let t = deliver.service_centre_time;
    hash.update([
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.tz_quarters as u8,
    ]);
    if let Some(c) = deliver.user_data.concatenation() {
        hash.update(c.reference.to_be_bytes());
        hash.update([c.total, c.sequence]);
    }
    match &deliver.user_data.body {
        Body::Text(text) => hash.update(text.as_bytes()),
        Body::Binary(bytes) => hash.update(bytes),
    }
    let digest = hash.finalize();
    format!("sms:{}", pdu::to_hex(&digest[..12]))
}

/// A modem as a way out for replies.
struct ModemOutlet {
    name: String,
    handle: ModemHandle,
    status_reports: bool,
    board: ModemBoard,
}

/// The PDU address of a citizen's number as the gateway holds it.
fn destination_of(to: &Address) -> PduAddress {
    let digits = to.addr.trim_start_matches('+');
    if to.ton == 1 || to.addr.starts_with('+') {
        PduAddress::international(digits)
    } else {
        PduAddress::unknown(digits)
    }
}

impl Outlet for ModemOutlet {
    fn is_open(&self) -> bool {
        self.handle.is_ready()
    }

    fn is_carrier(&self) -> bool {
        true
    }

    fn part_format(&self) -> Option<PartFormat> {
        None
    }

    fn spreads_replies(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        reply: &'a OutgoingReply<'a>,
        reference: u16,
        ids: &'a mut PartIds,
        log: &'a dyn PartLog,
    ) -> OutletFuture<'a> {
        Box::pin(async move {
            let destination = destination_of(reply.to);
            if destination.number.is_empty()
                || !destination.number.chars().all(|c| c.is_ascii_digit())
            {
                return Err(SendError::Failed(OutletError::Unaddressable {
                    reason: format!(
                        "a modem cannot send to {:?}",
                        crate::domain::msisdn::mask_middle(&reply.to.addr)
                    ),
                }));
            }
            let options = SubmitOptions {
                status_report: self.status_reports,
                ..SubmitOptions::default()
            };
            let parts = pdu::submit_parts(&destination, reply.text, reference, options);
            let total = parts.len();
            ids.resize(total, None);
            if ids.iter().all(Option::is_none) {
                log.starting(reference, total).await;
            }
            for (at, part) in parts.into_iter().enumerate() {
                if ids[at].is_some() {
                    continue;
                }
                let encoded = pdu::encode(&Pdu {
                    smsc: None,
                    tpdu: Tpdu::Submit(part),
                })
                .map_err(|error| {
                    SendError::Failed(OutletError::Unencodable {
                        source: Box::new(error),
                    })
                })?;
                match self.handle.send_pdu(encoded).await {
                    Ok(message_reference) => {
                        let id = part_id(&self.name, message_reference);
                        self.board.update(&self.name, |state| state.sent += 1);
                        log.part_sent(PartSent {
                            reference,
                            index: at,
                            total,
                            id: &id,
                        })
                        .await;
                        ids[at] = Some(id);
                    }
                    Err(error) => {
                        return Err(SendError::RetryLater(OutletError::Device {
                            device: format!("modem {}", self.name),
                            gone: error.is_gone(),
                            source: Box::new(error),
                        }))
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsm_modem::pdu::{DataCoding, Timestamp, UserData};

    fn deliver(text: &str, second: u8) -> Deliver {
        Deliver {
            more_messages_to_send: false,
            reply_path: false,
            status_report_indication: false,
            originator: PduAddress::international("84912345678"),
            protocol_id: 0,
            data_coding: DataCoding::GSM7,
            service_centre_time: Timestamp {
                year: 26,
                month: 11,
                day: 27,
                hour: 10,
                minute: 0,
                second,
                tz_quarters: 28,
            },
            user_data: UserData {
                header: None,
                body: Body::Text(text.to_owned()),
            },
        }
    }

    #[test]
    fn a_message_is_known_by_its_fingerprint() {
        let a = deliver("TC 000.00.12.H58-240315-0007", 1);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&deliver("TC 000.00.12.H58-240315-0007", 2))
        );
        assert_ne!(
            fingerprint(&a),
            fingerprint(&deliver("TC 000.00.12.H58-240315-0008", 1))
        );
    }

    #[test]
    fn a_received_message_becomes_an_incoming_sms() {
        let sms = incoming_sms(&deliver("hello", 1), Some("0987000111"));
        assert_eq!(sms.channel, CHANNEL);
        assert_eq!(sms.source, Address::new("84912345678", 1, 1));
        assert_eq!(sms.destination.addr, "0987000111");
        assert_eq!(sms.text, "hello");
        assert!(sms.part.is_none());
        assert!(sms.peer_ref.is_none());
        assert!(sms.fingerprint.unwrap().starts_with("sms:"));
    }

    #[test]
    fn citizens_numbers_become_pdu_addresses() {
        assert_eq!(
            destination_of(&Address::new("84912345678", 1, 1)),
            PduAddress::international("84912345678")
        );
        assert_eq!(
            destination_of(&Address::new("0912345678", 0, 1)),
            PduAddress::unknown("0912345678")
        );
        assert_eq!(
            destination_of(&Address::new("+84912345678", 0, 0)),
            PduAddress::international("84912345678")
        );
    }
}
