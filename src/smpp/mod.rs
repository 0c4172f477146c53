//! SMPP 3.4/5.0 on tokio, in both roles, knowing nothing about dossiers:
//! a peer behind the [`channel`](crate::channel) room, whose types it
//! speaks and whose traits it implements.
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
//! - [`outlet`]: a bound connection as a [`channel::Outlet`](crate::channel::Outlet),
//!   through which replies and USSD answers leave; [`listener_guard`]: who may
//!   bind to the listener and how much each may cost; [`pacing`]: a carrier
//!   link's pace.
//! - [`ussd`]: USSD turns (`ussd_service_op`, `its_session_info`) and their answers.
//!
//! A citizen's message leaves this room as an
//! [`IncomingSms`](crate::channel::IncomingSms) given to an
//! [`SmsHandler`](crate::channel::SmsHandler), which must make it durable before the peer is
//! acknowledged; the reply comes back later as text through
//! [`channel::Routes::send`](crate::channel::Routes::send) and leaves through the
//! [`outlet::SmppOutlet`] of a connection of the channel the message arrived on.

pub mod client;
pub mod codec;
pub mod esme;
pub mod listener;
pub mod listener_guard;
pub mod outlet;
pub mod pacing;
pub mod pdu;
pub mod receipt;
pub mod session;
pub mod text;
pub mod ussd;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use text::{DefaultAlphabet, LongMessageMode};

pub use crate::address::Address;
use crate::channel::IncomingSms;
use crate::client_addr::AllowedNet;

/// A citizen's message from a `submit_sm` / `deliver_sm` received on
/// `channel`, its text decoded (an unreadable coding gives an empty text,
/// which earns a help reply rather than silence).
pub fn incoming_sms(
    channel: String,
    sm: &pdu::ShortMessage,
    alphabet: DefaultAlphabet,
) -> IncomingSms {
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
    pub allowed_ips: Vec<AllowedNet>,
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
    pub allowed_ips: Vec<AllowedNet>,
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
