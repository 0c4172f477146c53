//! `motcua-sms loadgen`: an SMSC simulator that drives a gateway (this one,
//! or Kannel's bearerbox) the way a carrier does, and measures it.
//!
//! It listens as an SMSC, waits for the gateway to bind (a transceiver, or a
//! transmitter and a receiver), then pushes `deliver_sm` — citizens'
//! messages, each from its own sender number — either at a fixed offered
//! rate or flat out, never leaving more than `window` of them
//! unacknowledged. Every `submit_sm` the gateway sends back is answered at
//! once with a `submit_sm_resp` and matched to the message it answers by its
//! destination (the citizen's number, unique within a run; see
//! [`texts::SenderPlan`]). A reply is complete when its last part arrives;
//! latency runs from writing the `deliver_sm` to reading that last part.
//!
//! - [`texts`]: the message mix, the texts, the sender numbers.
//! - [`smsc`]: connections (bind, answers, batched writes).
//! - [`report`]: counts, throughput, HDR-histogram percentiles.
//! - [`echo`]: a trivial ESME that answers every message at once, to measure
//!   the load generator itself (`motcua-sms loadgen --echo-test`).
//!
//! [`Loadgen::bind`] opens the port (so a test can point a gateway at
//! [`Loadgen::local_addr`] first); [`Loadgen::run`] does the run and returns
//! the [`Report`].

pub mod echo;
pub mod report;
pub mod smsc;
pub mod texts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::smpp::pdu::{status, BindKind, Body, Pdu, ShortMessage};

pub use report::{Latencies, LatencySummary, Report};
pub use smsc::MessageIdFormat;
pub use texts::{Mix, SenderPlan, TextGenerator};

/// Highest sequence number a deliver_sm may carry: message `i` goes out as
/// sequence `i + 1`, so its response names the message with no lookup.
const MAX_MESSAGES: u64 = 0x7000_0000;
/// Sequence number of the unbind sent at the end.
const UNBIND_SEQUENCE: u32 = 0x7fff_ffff;
/// Distinct texts prepared before the run (cycled through).
const TEXT_POOL: u64 = 4096;

/// What can stop a load run.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The dossier file could not be read.
    #[error("cannot read the dossier file: {0}")]
    ReadDossiers(#[source] std::io::Error),
    /// A line of the dossier file is not JSON.
    #[error("dossier file line {line}: {source}")]
    DossierLine {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The dossier file holds no code in the official layout.
    #[error("the dossier file holds no dossier code (MaHoSo) in the official layout")]
    NoCodes,
    /// `--mix` could not be read.
    #[error("--mix {given:?}: {problem}")]
    Mix {
        /// What was given.
        given: String,
        /// What is wrong.
        problem: String,
    },
    /// A setting is out of range.
    #[error("--{field}: {problem}")]
    Setting {
        /// The option.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// More messages than distinct sender numbers.
    #[error("not enough distinct sender numbers: at most {capacity} per run and offset")]
    TooManySenders {
        /// How many there are.
        capacity: u64,
    },
    /// No gateway bound in time.
    #[error("no peer bound (a transceiver, or a transmitter and a receiver) within {0:?}")]
    NoBind(Duration),
    /// The echo ESME could not connect or bind.
    #[error("echo ESME: {0}")]
    Echo(String),
}

/// How a run is done.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen as an SMSC.
    pub listen: SocketAddr,
    /// The system_id a peer must bind with (`None`: any).
    pub system_id: Option<String>,
    /// The password it must give (`None`: any).
    pub password: Option<String>,
    /// Messages to send.
    pub messages: u64,
    /// Offered messages per second; `None` sends flat out.
    pub rate: Option<f64>,
    /// Most deliver_sm unacknowledged at once.
    pub window: usize,
    /// Most messages without a complete reply at once (`None`: no limit).
    pub max_unanswered: Option<u64>,
    /// Shares of message kinds.
    pub mix: Mix,
    /// The number the citizens text (destination of every deliver_sm).
    pub short_number: String,
    /// How submit_sm_resp message ids are written.
    pub message_ids: MessageIdFormat,
    /// Seed of the text generator (the same seed sends the same texts).
    pub seed: u64,
    /// First sender index: runs against the same gateway with different
    /// offsets use different numbers.
    pub sender_offset: u64,
    /// How long to wait for the gateway to bind.
    pub bind_timeout: Duration,
    /// After the first usable bind, how long to wait for more connections
    /// (a receiver after a transmitter, several links).
    pub settle: Duration,
    /// The run ends when nothing has happened for this long.
    pub drain_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 2776)),
            system_id: None,
            password: None,
            messages: 10_000,
            rate: None,
            window: 100,
            max_unanswered: None,
            mix: Mix::default(),
            short_number: "8058".to_owned(),
            message_ids: MessageIdFormat::Decimal,
            seed: 1,
            sender_offset: 0,
            bind_timeout: Duration::from_secs(60),
            settle: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    fn check(&self) -> Result<(), LoadgenError> {
        let bad = |field, problem: &str| {
            Err(LoadgenError::Setting {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.messages == 0 || self.messages > MAX_MESSAGES {
            return bad("messages", "must be between 1 and 1879048192");
        }
        if self.window == 0 {
            return bad("window", "must be at least 1");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("rate", "must be a positive number of messages per second");
        }
        if self.max_unanswered == Some(0) {
            return bad("max-unanswered", "must be at least 1");
        }
        Ok(())
    }
}

/// A load generator listening for the gateway.
pub struct Loadgen {
    listener: TcpListener,
    settings: Settings,
    generator: TextGenerator,
}

/// A bound peer as the run sees it.
struct Session {
    id: u64,
    kind: BindKind,
    label: String,
    outbound: mpsc::UnboundedSender<Pdu>,
}

/// Per message: when it left, how many reply parts came, what happened.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Nanoseconds from the run's start to writing the deliver_sm.
    sent_ns: u64,
    parts: u8,
    flags: u8,
}

const SENT: u8 = 1;
const ACKED: u8 = 2;
const REFUSED: u8 = 4;
const ANSWERED: u8 = 8;

impl Loadgen {
    /// Checks the settings and opens the port; `codes` are the dossier codes
    /// the texts are made of.
    pub async fn bind(settings: Settings, codes: &[String]) -> Result<Self, LoadgenError> {
        settings.check()?;
        let generator = TextGenerator::new(codes, settings.mix)?;
        SenderPlan::new(settings.sender_offset, settings.messages)?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| LoadgenError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        Ok(Loadgen {
            listener,
            settings,
            generator,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    /// Waits for a bind, sends every message, waits for the replies (at
    /// most `drain_timeout` without news), unbinds, and reports.
    pub async fn run(self) -> Result<Report, LoadgenError> {
        let Loadgen {
            listener,
            settings,
            generator,
        } = self;
        let plan = SenderPlan::new(settings.sender_offset, settings.messages)?;
        let mut rng = texts::SplitMix64::new(settings.seed);
        let pool: Vec<texts::EncodedText> = (0..settings.messages.min(TEXT_POOL))
            .map(|_| generator.generate(&mut rng))
            .collect();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let shared = Arc::new(smsc::Shared {
            credentials: smsc::Credentials {
                system_id: settings.system_id.clone(),
                password: settings.password.clone(),
            },
            ids: smsc::MessageIds::new(settings.message_ids),
            plan: plan.clone(),
            events: events_tx,
            bind_wait: settings.bind_timeout,
        });
        let acceptor = tokio::spawn(smsc::accept_loop(listener, shared));
        let result = Run::new(&settings, plan, pool).drive(&mut events).await;
        acceptor.abort();
        result
    }
}

/// The state of one run.
struct Run<'a> {
    settings: &'a Settings,
    plan: SenderPlan,
    pool: Vec<texts::EncodedText>,
    sessions: Vec<Session>,
    binds: Vec<String>,
    slots: Vec<Slot>,
    latencies: Latencies,
    next: u64,
    acked: u64,
    refused: u64,
    replies: u64,
    reply_parts: u64,
    unexpected: u64,
    round_robin: usize,
    start: Instant,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
    last_reply: Option<Instant>,
    last_activity: Instant,
    max_lag: Duration,
}

impl<'a> Run<'a> {
    fn new(settings: &'a Settings, plan: SenderPlan, pool: Vec<texts::EncodedText>) -> Self {
        let now = Instant::now();
        Run {
            settings,
            plan,
            pool,
            sessions: Vec::new(),
            binds: Vec::new(),
            slots: vec![Slot::default(); settings.messages as usize],
            latencies: Latencies::default(),
            next: 0,
            acked: 0,
            refused: 0,
            replies: 0,
            reply_parts: 0,
            unexpected: 0,
            round_robin: 0,
            start: now,
            first_send: None,
            last_send: None,
            last_reply: None,
            last_activity: now,
            max_lag: Duration::ZERO,
        }
    }

    /// A peer that can receive deliver_sm and one that can send submit_sm are bound.
    fn ready(&self) -> bool {
        self.sessions.iter().any(|s| s.kind.can_receive())
            && self.sessions.iter().any(|s| s.kind.can_send())
    }

    async fn drive(
        mut self,
        events: &mut mpsc::UnboundedReceiver<smsc::Event>,
    ) -> Result<Report, LoadgenError> {
        let mut batch = Vec::with_capacity(1024);
        // Wait for the binds.
        let deadline = tokio::time::Instant::now() + self.settings.bind_timeout;
        while !self.ready() {
            tokio::select! {
                got = events.recv_many(&mut batch, 64) => {
                    if got == 0 { return Err(LoadgenError::NoBind(self.settings.bind_timeout)); }
                    batch.drain(..).for_each(|e| self.apply(e));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(LoadgenError::NoBind(self.settings.bind_timeout));
                }
            }
        }
        let settle = tokio::time::Instant::now() + self.settings.settle;
        loop {
            tokio::select! {
                got = events.recv_many(&mut batch, 64) => {
                    if got == 0 { break; }
                    batch.drain(..).for_each(|e| self.apply(e));
                }
                _ = tokio::time::sleep_until(settle) => break,
            }
        }
        info!(binds = ?self.binds, "sending");
        self.start = Instant::now();
        self.last_activity = self.start;
        let interval = self.settings.rate.map(|r| 1e9 / r);
        let total = self.settings.messages;
        loop {
            if self.next == total && self.unanswered() == 0 {
                break;
            }
            let can_send = self.can_send();
            let due = match interval {
                Some(ns) if can_send => {
                    Some(self.start + Duration::from_nanos((self.next as f64 * ns) as u64))
                }
                _ => None,
            };
            let quiet_until = self.last_activity + self.settings.drain_timeout;
            tokio::select! {
                biased;
                got = events.recv_many(&mut batch, 1024) => {
                    if got == 0 { break; }
                    for event in batch.drain(..) {
                        self.apply(event);
                    }
                    self.last_activity = Instant::now();
                }
                _ = wait_until(due), if can_send => {
                    self.send_due(interval);
                }
                _ = tokio::time::sleep_until(quiet_until.into()), if !can_send => {
                    info!("nothing happened for the drain timeout; ending the run");
                    break;
                }
            }
        }
        for s in &self.sessions {
            let _ = s.outbound.send(Pdu::new(UNBIND_SEQUENCE, Body::Unbind));
        }
        Ok(self.report())
    }

    /// Messages sent and neither refused nor completely answered.
    fn unanswered(&self) -> u64 {
        self.next - self.replies - self.refused
    }

    fn can_send(&self) -> bool {
        let in_window = self.next - self.acked - self.refused;
        self.next < self.settings.messages
            && in_window < self.settings.window as u64
            && self
                .settings
                .max_unanswered
                .is_none_or(|max| self.unanswered() < max)
            && self.sessions.iter().any(|s| s.kind.can_receive())
    }

    /// Sends every message that is due (all the window allows, flat out).
    fn send_due(&mut self, interval: Option<f64>) {
        let now = Instant::now();
        while self.can_send() {
            if let Some(ns) = interval {
                let due = self.start + Duration::from_nanos((self.next as f64 * ns) as u64);
                if due > now {
                    break;
                }
                self.max_lag = self.max_lag.max(now - due);
            }
            self.send_one(now);
        }
        self.last_activity = now;
    }

    fn send_one(&mut self, now: Instant) {
        let index = self.next;
        // Round robin over the links that can receive (can_send checked there is one).
        let links = self.sessions.len();
        let Some(pick) = (0..links)
            .map(|k| (self.round_robin + k) % links)
            .find(|&i| self.sessions[i].kind.can_receive())
        else {
            return;
        };
        self.round_robin = pick + 1;
        let session = &self.sessions[pick];
        let text = &self.pool[(index % self.pool.len() as u64) as usize];
        let sm = ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: self.plan.sender(index),
            dest_addr_ton: 0,
            dest_addr_npi: 1,
            destination_addr: self.settings.short_number.clone(),
            data_coding: text.data_coding,
            short_message: text.short_message.clone(),
            ..ShortMessage::default()
        };
        // Message i is sequence i + 1: its response names it directly.
        let sequence = index as u32 + 1;
        if session
            .outbound
            .send(Pdu::new(sequence, Body::DeliverSm(sm)))
            .is_err()
        {
            // The connection just closed; its Closed event follows. Send
            // this message again on another link.
            let id = session.id;
            self.sessions.retain(|s| s.id != id);
            return;
        }
        self.slots[index as usize] = Slot {
            sent_ns: (now - self.start).as_nanos() as u64,
            parts: 0,
            flags: SENT,
        };
        self.next += 1;
        self.first_send.get_or_insert(now);
        self.last_send = Some(now);
    }

    fn apply(&mut self, event: smsc::Event) {
        match event {
            smsc::Event::Bound {
                session,
                kind,
                label,
                outbound,
            } => {
                self.binds.push(label.clone());
                self.sessions.push(Session {
                    id: session,
                    kind,
                    label,
                    outbound,
                });
            }
            smsc::Event::Closed { session } => {
                if let Some(s) = self.sessions.iter().find(|s| s.id == session) {
                    info!(bind = %s.label, "peer gone");
                }
                self.sessions.retain(|s| s.id != session);
            }
            smsc::Event::Acked { sequence, status } => {
                let Some(slot) = sequence
                    .checked_sub(1)
                    .and_then(|i| self.slots.get_mut(i as usize))
                else {
                    return;
                };
                if slot.flags & SENT == 0 || slot.flags & (ACKED | REFUSED) != 0 {
                    return;
                }
                if status == status::ESME_ROK {
                    slot.flags |= ACKED;
                    self.acked += 1;
                } else {
                    slot.flags |= REFUSED;
                    self.refused += 1;
                    if slot.flags & ANSWERED != 0 {
                        // Answered before the refusal arrived: not unanswered twice.
                        self.replies -= 1;
                    }
                }
            }
            smsc::Event::Reply { index, total, at } => {
                self.reply_parts += 1;
                let slot = index.and_then(|i| self.slots.get_mut(i as usize));
                let Some(slot) = slot.filter(|s| s.flags & SENT != 0 && s.flags & ANSWERED == 0)
                else {
                    self.unexpected += 1;
                    return;
                };
                slot.parts = slot.parts.saturating_add(1);
                if slot.parts >= total {
                    slot.flags |= ANSWERED;
                    if slot.flags & REFUSED == 0 {
                        self.replies += 1;
                    }
                    let sent = self.start + Duration::from_nanos(slot.sent_ns);
                    self.latencies.record(at.saturating_duration_since(sent));
                    self.last_reply = Some(self.last_reply.map_or(at, |l| l.max(at)));
                }
            }
        }
    }

    fn report(&self) -> Report {
        let missing = self
            .slots
            .iter()
            .filter(|s| s.flags & SENT != 0 && s.flags & (ANSWERED | REFUSED) == 0)
            .count() as u64;
        let first = self.first_send.unwrap_or(self.start);
        let end = self.last_reply.unwrap_or(self.last_activity).max(first);
        let elapsed = (end - first).as_secs_f64();
        let send_secs = self.last_send.map_or(0.0, |l| (l - first).as_secs_f64());
        let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        Report {
            mode: if self.settings.rate.is_some() {
                "rate"
            } else {
                "flat-out"
            }
            .to_owned(),
            offered_rate: self.settings.rate,
            window: self.settings.window,
            mix: self.settings.mix.to_string(),
            requested: self.settings.messages,
            sent: self.next,
            acknowledged: self.acked,
            refused: self.refused,
            replies: self.replies,
            reply_parts: self.reply_parts,
            unexpected: self.unexpected,
            missing,
            elapsed_secs: elapsed,
            send_secs,
            throughput: per_sec(self.replies, elapsed),
            send_rate: per_sec(self.next.saturating_sub(1), send_secs),
            max_schedule_lag_ms: self.max_lag.as_secs_f64() * 1000.0,
            latency: self.latencies.summary(),
            binds: self.binds.clone(),
        }
    }
}

/// Waits until `due`; at once when there is none.
async fn wait_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}
