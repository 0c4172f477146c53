//! SMPP 3.4/5.0 on tokio, in both roles, knowing nothing about dossiers.
//!
//! - [`pdu`]: PDUs and command statuses; [`codec`]: framing with a length cap
//!   and resynchronisation; [`text`]: data_coding, user data headers and
//!   concatenation; [`receipt`]: delivery receipts (Appendix B text and TLVs).
//! - [`session`]: what both roles share (writer task, sequence numbers,
//!   requests awaiting responses, answers to malformed frames).
//! - [`listener`]: the gateway as an SMSC toward bound peers (aggregators,
//!   test tools, `motcua-sms sms send`).
//! - [`esme`]: the gateway bound to a carrier's SMSC.
//! - [`client`]: a one-shot ESME used by the CLI.
//!
//! - [`routes`]: the live connections per channel, through which replies leave.
//! - [`ussd`]: USSD turns (`ussd_service_op`, `its_session_info`) and their answers.
//!
//! A citizen's message leaves this room as an [`IncomingSms`] given to an
//! [`SmsHandler`], which must make it durable before the peer is
//! acknowledged; the reply comes back later as text through
//! [`routes::Routes::send`] and leaves on a connection of the channel the
//! message arrived on.

pub mod client;
pub mod codec;
pub mod esme;
pub mod listener;
pub mod listener_guard;
pub mod pacing;
pub mod pdu;
pub mod receipt;
pub mod routes;
pub mod session;
pub mod text;
pub mod ussd;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use text::{DefaultAlphabet, LongMessageMode};

pub use crate::address::Address;

/// A citizen's message as it arrived, decoded to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSms {
    /// Which connection it came in on (`listener:<system_id>` or `smsc:<name>`);
    /// the reply goes back through [`routes::Routes`] under the same name.
    pub channel: String,
    /// The sender (the citizen) as the carrier wrote it.
    pub source: Address,
    /// The number the citizen texted (our short number).
    pub destination: Address,
    /// The decoded text; empty when the coding could not be read.
    pub text: String,
    /// The peer's own reference for the message (`user_message_reference`), if any;
    /// peers reuse it, so a copy is a redelivery only with the same text,
    /// within the redelivery window (see the journal).
    pub peer_ref: Option<String>,
    /// Where this part sits when the message is one part of a concatenated
    /// message (UDH or sar_* TLVs); the gateway joins the parts.
    pub part: Option<text::PartInfo>,
    /// What identifies this very message or part for good, when the channel
    /// can tell (a GSM modem: sender, service-centre time, part, text): a
    /// second delivery with it is recognised however late it comes. SMPP
    /// peers give nothing of the kind (`user_message_reference` is reused).
    pub fingerprint: Option<String>,
}

impl IncomingSms {
    /// A citizen's message from a `submit_sm` / `deliver_sm` received on
    /// `channel`, its text decoded (an unreadable coding gives an empty text,
    /// which earns a help reply rather than silence).
    pub fn from_short_message(
        channel: String,
        sm: &pdu::ShortMessage,
        alphabet: DefaultAlphabet,
    ) -> Self {
        let text = text::decode_text(sm, alphabet).unwrap_or_else(|error| {
            tracing::warn!(%error, "message text unreadable; it will be answered with help");
            String::new()
        });
        IncomingSms {
            channel,
            source: Address::new(
                sm.source_addr.clone(),
                sm.source_addr_ton,
                sm.source_addr_npi,
            ),
            destination: Address::new(
                sm.destination_addr.clone(),
                sm.dest_addr_ton,
                sm.dest_addr_npi,
            ),
            text,
            peer_ref: sm
                .tlv(pdu::tag::USER_MESSAGE_REFERENCE)
                .filter(|v| v.len() == 2)
                .map(|v| u16::from_be_bytes([v[0], v[1]]).to_string()),
            part: text::concatenation(sm),
            fingerprint: None,
        }
    }
}

/// A message that arrived but cannot be read, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableSms {
    /// Which channel it came in on (`modem`).
    pub channel: String,
    /// The number it was sent to (our own), when known.
    pub destination: Address,
    /// The message as received, in hex (a modem's PDU, service centre
    /// address first).
    pub raw_hex: String,
    /// What identifies it for good (a hash of the raw message): read again
    /// after a crash, it is recognised and not recorded twice.
    pub fingerprint: String,
    /// Why it could not be read.
    pub error: String,
}

/// How the gateway took a message; only then is the peer acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Recorded durably; the reply will follow. The id goes to the peer.
    Accepted {
        /// Message id for submit_sm_resp.
        message_id: String,
    },
    /// A redelivery of a message already recorded: acknowledged, not answered again.
    Duplicate {
        /// The first delivery's message id.
        message_id: String,
    },
}

/// The gateway could not take the message now; the peer gets a temporary
/// error and will deliver it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message not accepted: {0}")]
pub struct ReceiveError(pub String);

/// Where citizens' messages go. `receive` returns once the message is safe
/// (journaled); the reply is sent later through [`routes::Routes`].
pub trait SmsHandler: Send + Sync + 'static {
    /// Takes one message.
    fn receive(
        &self,
        sms: IncomingSms,
    ) -> impl Future<Output = Result<Receipt, ReceiveError>> + Send;

    /// The peer has read the acknowledgements of these messages (ids as
    /// [`Receipt`] gave them): it answered a request written after them on
    /// the same connection. A copy of such a message is no redelivery.
    /// Returns once the fact is queued ahead of anything handed over later
    /// (not necessarily on disk). The default keeps nothing.
    fn acknowledgements_read(&self, message_ids: Vec<String>) -> impl Future<Output = ()> + Send {
        async move {
            let _ = message_ids;
        }
    }

    /// Takes a message that arrived but cannot be read (a GSM modem's PDU
    /// that does not decode): returns once it is recorded as it came, so
    /// the channel may let go of it (delete it from the SIM). It is never
    /// answered. The default records nothing: the channel keeps it.
    fn undecodable(
        &self,
        message: UndecodableSms,
    ) -> impl Future<Output = Result<Receipt, ReceiveError>> + Send {
        async move {
            tracing::warn!(channel = %message.channel, "unreadable messages are not recorded here; the channel keeps it");
            Err(ReceiveError(
                "unreadable messages are not recorded by this handler".to_owned(),
            ))
        }
    }

    /// Takes a delivery receipt that arrived on `channel`; returns once it
    /// is recorded (the SMSC is acknowledged then).
    fn delivery_report(
        &self,
        channel: String,
        report: receipt::DeliveryReport,
    ) -> impl Future<Output = Result<(), ReceiveError>> + Send;

    /// Takes one USSD turn (a PDU carrying `ussd_service_op`; the peer has
    /// been acknowledged already) and returns the screen to send back, or
    /// `None` when nothing is to be sent (a release, a USSN confirm). It must
    /// return quickly: USSD centres give up after about 15 seconds. The
    /// default serves no USSD: every dialogue is closed with no text.
    fn ussd(&self, turn: ussd::UssdTurn) -> impl Future<Output = Option<ussd::UssdAnswer>> + Send {
        async move {
            tracing::debug!(channel = %turn.ret.channel, "USSD not served here: dialogue closed");
            (turn.kind != ussd::TurnKind::Release).then(|| ussd::UssdAnswer {
                text: String::new(),
                end: true,
            })
        }
    }
}

/// Settings shared by every SMPP session (`[smpp]` in config.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Largest PDU accepted, in bytes.
    pub max_pdu_len: u32,
    /// How long a request waits for its response.
    pub response_timeout_ms: u64,
    /// Requests that may await their response at once on a connection
    /// (the window); a carrier link may set its own.
    pub window: u32,
    /// Interval of enquire_link keepalives on an idle link.
    pub enquire_link_interval_secs: u64,
    /// A PDU that stops half-way is dropped (and answered) after this long.
    pub partial_pdu_timeout_ms: u64,
    /// On shutdown, how long in-flight replies may take before unbinding.
    pub drain_timeout_secs: u64,
    /// How data_coding 0 is read.
    pub default_alphabet: DefaultAlphabet,
    /// The peer's messages (submit_sm, deliver_sm, data_sm) worked on at
    /// once per connection; when that many are being recorded, the session
    /// stops reading from the socket until one is done.
    pub inbound_window: u32,
    /// An acknowledgement written later than this after its message
    /// arrived may have come after the peer gave up waiting: the message's
    /// copies stay redeliveries whatever the peer does next.
    pub ack_deadline_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            max_pdu_len: codec::DEFAULT_MAX_PDU_LEN,
            response_timeout_ms: 10_000,
            window: 10,
            enquire_link_interval_secs: 30,
            partial_pdu_timeout_ms: 2_000,
            drain_timeout_secs: 10,
            default_alphabet: DefaultAlphabet::default(),
            inbound_window: 100,
            ack_deadline_ms: 2_000,
        }
    }
}

impl SessionSettings {
    /// [`Self::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }

    /// [`Self::enquire_link_interval_secs`] as a duration.
    pub fn enquire_link_interval(&self) -> Duration {
        Duration::from_secs(self.enquire_link_interval_secs.max(1))
    }

    /// [`Self::partial_pdu_timeout_ms`] as a duration.
    pub fn partial_pdu_timeout(&self) -> Duration {
        Duration::from_millis(self.partial_pdu_timeout_ms.max(1))
    }

    /// [`Self::drain_timeout_secs`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    /// [`Self::ack_deadline_ms`] as a duration.
    pub fn ack_deadline(&self) -> Duration {
        Duration::from_millis(self.ack_deadline_ms)
    }
}

/// One account allowed to bind to the listener (`[[smpp.listener.accounts]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerAccount {
    /// The peer's system_id (≤ 15 characters).
    pub system_id: String,
    /// Its password (≤ 8 characters).
    pub password: String,
    /// Add the vendor TLV 0x1401 (the answered message's id) to replies, so
    /// the peer can drop a reply delivered a second time after a crash. Off by
    /// default: some SMPP libraries reject PDUs carrying unknown TLVs.
    #[serde(default)]
    pub reply_to_tlv: bool,
    /// Sessions of this account bound at the same time; one more bind is
    /// refused with ESME_RBINDFAIL. At least 1.
    #[serde(default = "default_max_binds")]
    pub max_binds: u32,
    /// Incoming submit_sm per second for this account, across all its
    /// sessions; over it a submit_sm is answered ESME_RTHROTTLED and not
    /// recorded, so the peer sends it again. `None` (or 0): no cap.
    #[serde(default)]
    pub max_tps: Option<u32>,
    /// Addresses and networks this account may bind from, on top of the
    /// listener's own `allowed_ips`; empty: wherever the listener allows.
    #[serde(default)]
    pub allowed_ips: Vec<listener_guard::AllowedNet>,
}

impl Default for ListenerAccount {
    fn default() -> Self {
        ListenerAccount {
            system_id: String::new(),
            password: String::new(),
            reply_to_tlv: false,
            max_binds: default_max_binds(),
            max_tps: None,
            allowed_ips: Vec::new(),
        }
    }
}

fn default_max_binds() -> u32 {
    10
}

/// The listener (`[smpp.listener]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerSettings {
    /// Run the listener at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// The system_id the gateway gives in bind responses.
    pub system_id: String,
    /// Accounts allowed to bind.
    pub accounts: Vec<ListenerAccount>,
    /// Addresses and networks (`10.1.2.3`, `10.1.2.0/24`, `2001:db8::/32`)
    /// that may connect at all; a connection from elsewhere is closed at once,
    /// unanswered. Empty: any address.
    pub allowed_ips: Vec<listener_guard::AllowedNet>,
    /// A connection that has not bound this many seconds after connecting
    /// is closed.
    pub bind_timeout_secs: u64,
    /// A bound session on which no PDU arrives for this many seconds is
    /// unbound and closed.
    pub idle_timeout_secs: u64,
    /// Failed binds (unknown system_id, wrong password, an account's
    /// disallowed address) from one address within `lockout_window_secs`
    /// that lock the address out. 0: no lockout.
    pub lockout_after_failures: u32,
    /// The window, in seconds, in which failed binds are counted.
    pub lockout_window_secs: u64,
    /// How long, in seconds, binds from a locked-out address are refused
    /// without looking at their credentials.
    pub lockout_secs: u64,
    /// Addresses the lockout table remembers at most; past it the oldest
    /// entries not locked out are forgotten first.
    pub lockout_max_addresses: usize,
    /// Connections open at once, bound or not; one more is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address (an IPv6 address with its
    /// /64); one more is closed at once.
    pub max_connections_per_ip: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 2775)),
            system_id: "motcua".to_owned(),
            accounts: Vec::new(),
            allowed_ips: Vec::new(),
            bind_timeout_secs: 30,
            idle_timeout_secs: 300,
            lockout_after_failures: 5,
            lockout_window_secs: 300,
            lockout_secs: 900,
            lockout_max_addresses: 10_000,
            max_connections: 1_000,
            max_connections_per_ip: 100,
        }
    }
}

impl ListenerSettings {
    /// [`Self::bind_timeout_secs`] as a duration.
    pub fn bind_timeout(&self) -> Duration {
        Duration::from_secs(self.bind_timeout_secs.max(1))
    }

    /// [`Self::idle_timeout_secs`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

/// SMPP interface version to bind with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum InterfaceVersion {
    /// SMPP 3.4 (0x34).
    #[default]
    #[serde(rename = "3.4")]
    V34,
    /// SMPP 5.0 (0x50).
    #[serde(rename = "5.0")]
    V50,
}

impl InterfaceVersion {
    /// The byte sent in bind PDUs.
    pub fn byte(self) -> u8 {
        match self {
            InterfaceVersion::V34 => 0x34,
            InterfaceVersion::V50 => 0x50,
        }
    }
}

/// One carrier SMSC link (`[[smpp.smsc]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmscSettings {
    /// Name for logs and the channel label (e.g. "viettel").
    pub name: String,
    /// The SMSC's host name or address.
    pub host: String,
    /// The SMSC's port.
    #[serde(default = "default_smpp_port")]
    pub port: u16,
    /// Account name.
    pub system_id: String,
    /// Password.
    pub password: String,
    /// system_type sent in the bind.
    #[serde(default)]
    pub system_type: String,
    /// SMPP version to bind with: "3.4" or "5.0".
    #[serde(default)]
    pub interface_version: InterfaceVersion,
    /// addr_ton in the bind.
    #[serde(default)]
    pub addr_ton: u8,
    /// addr_npi in the bind.
    #[serde(default)]
    pub addr_npi: u8,
    /// address_range in the bind.
    #[serde(default)]
    pub address_range: String,
    /// Source address of replies; default: the number the citizen texted.
    #[serde(default)]
    pub source_addr: Option<String>,
    /// TON of that source address; default: as the citizen's message had it.
    #[serde(default)]
    pub source_addr_ton: Option<u8>,
    /// NPI of that source address; default: as the citizen's message had it.
    #[serde(default)]
    pub source_addr_npi: Option<u8>,
    /// First reconnect delay; doubles up to 60 s.
    #[serde(default = "default_reconnect_ms")]
    pub reconnect_delay_ms: u64,
    /// One transceiver per connection, or a transmitter and a receiver.
    #[serde(default)]
    pub bind: BindMode,
    /// How many binds (transceivers, or transmitter+receiver pairs) to keep up.
    #[serde(default = "default_connections")]
    pub connections: u16,
    /// Requests awaiting a response at once per connection; default
    /// `[smpp.session] window`.
    #[serde(default)]
    pub window: Option<u32>,
    /// Parts per second across all connections of this link (the carrier's
    /// TPS); no cap when unset.
    #[serde(default)]
    pub max_tps: Option<std::num::NonZeroU32>,
    /// `registered_delivery` of replies: 1 asks for a final delivery
    /// receipt, 0 for none.
    #[serde(default = "default_registered_delivery")]
    pub registered_delivery: u8,
    /// How long replies are split: "udh8" (default), "udh16", "sar", "payload".
    #[serde(default)]
    pub long_messages: text::LongMessageMode,
    /// How data_coding 0 is read and written on this link; default
    /// `[smpp.session] default_alphabet`.
    #[serde(default)]
    pub default_alphabet: Option<DefaultAlphabet>,
    /// Numbers this link carries when another carrier's link is down:
    /// prefixes (`"098"`) or carrier names (`"viettel"`).
    #[serde(default)]
    pub route_prefixes: Vec<String>,
}

impl SmscSettings {
    /// A link to `host:port` with account `system_id` / `password` and
    /// every other setting at its default.
    pub fn new(name: &str, host: &str, port: u16, system_id: &str, password: &str) -> Self {
        SmscSettings {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
            system_id: system_id.to_owned(),
            password: password.to_owned(),
            system_type: String::new(),
            interface_version: InterfaceVersion::default(),
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
            source_addr: None,
            source_addr_ton: None,
            source_addr_npi: None,
            reconnect_delay_ms: default_reconnect_ms(),
            bind: BindMode::default(),
            connections: default_connections(),
            window: None,
            max_tps: None,
            registered_delivery: default_registered_delivery(),
            long_messages: text::LongMessageMode::default(),
            default_alphabet: None,
            route_prefixes: Vec::new(),
        }
    }
}

/// How a carrier link binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// One bind_transceiver per connection.
    #[default]
    Transceiver,
    /// A bind_transmitter (replies out) and a bind_receiver (messages in).
    TransmitterReceiver,
}

fn default_connections() -> u16 {
    1
}

fn default_registered_delivery() -> u8 {
    1
}

fn default_smpp_port() -> u16 {
    2775
}

fn default_reconnect_ms() -> u64 {
    1_000
}
