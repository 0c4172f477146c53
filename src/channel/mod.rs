//! What every way in and out shares, whatever the protocol: the citizen's
//! message as it arrived ([`IncomingSms`], [`UndecodableSms`]), the handler
//! that takes it ([`SmsHandler`], answering with a [`Receipt`] or a typed
//! [`ReceiveError`]), delivery reports ([`report`]), USSD turns and answers
//! ([`ussd`]), the way a reply leaves ([`outlet`]: the [`Outlet`] trait and
//! its typed outcome) and the table of live outlets per channel
//! ([`routes::Routes`]).
//!
//! SMPP (`crate::smpp`, listener and ESME roles), the GSM modems
//! (`crate::modem`) and USSD (`crate::ussd`) are peers behind it: each
//! turns its protocol into these types and registers its connections as
//! outlets; the gateway and the outbox see nothing else.

pub mod outlet;
pub mod report;
pub mod routes;
pub mod ussd;

use std::future::Future;

pub use crate::address::Address;
pub use outlet::{
    OutgoingReply, Outlet, OutletError, OutletFuture, OutletLoad, PartFormat, PartLog,
    PartLogFuture, PartSent, ReplyProgress, SendError, SentReply, UssdFuture,
};
pub use report::{id_spellings, DeliveryReport, ReceiptState};
pub use routes::{LinkState, Routes};
pub use ussd::{ServiceOp, SessionInfo, TurnKind, UssdAnswer, UssdReturn, UssdTurn};

/// A boxed error from another room, kept as the source of a channel error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How far a multipart reply got: the message id the peer gave each part
/// that it accepted. Kept by the caller across attempts, so that after a
/// dropped link only the parts never acknowledged are sent again.
pub type PartIds = Vec<Option<String>>;

/// Where a part of a concatenated message sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartInfo {
    /// The reference shared by every part of one message (an 8-bit UDH
    /// reference is widened; SAR and 16-bit UDH references are whole).
    pub reference: u16,
    /// How many parts the message has (at least 1).
    pub total: u8,
    /// This part's place, 1-based (1 ..= total).
    pub index: u8,
}

impl PartInfo {
    /// The part, unless its numbers make no sense (total 0, index 0 or beyond total).
    pub fn checked(reference: u16, total: u8, index: u8) -> Option<Self> {
        (total != 0 && index != 0 && index <= total).then_some(PartInfo {
            reference,
            total,
            index,
        })
    }
}

/// A citizen's message as it arrived, decoded to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSms {
    /// Which connection it came in on (`listener:<system_id>`, `smsc:<name>`
    /// or `modem`); the reply goes back through [`routes::Routes`] under the
    /// same name.
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
    pub part: Option<PartInfo>,
    /// What identifies this very message or part for good, when the channel
    /// can tell (a GSM modem: sender, service-centre time, part, text): a
    /// second delivery with it is recognised however late it comes. SMPP
    /// peers give nothing of the kind (`user_message_reference` is reused).
    pub fingerprint: Option<String>,
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
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// It could not be recorded (the journal failed or is shutting down).
    #[error("message not accepted: {0}")]
    NotRecorded(#[source] BoxError),
    /// This handler keeps no messages of that kind (an unreadable one).
    #[error("message not accepted: unreadable messages are not recorded by this handler")]
    NotKept,
}

impl ReceiveError {
    /// The message could not be recorded because of `error`.
    pub fn not_recorded(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        ReceiveError::NotRecorded(Box::new(error))
    }
}

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
            Err(ReceiveError::NotKept)
        }
    }

    /// Takes a delivery receipt that arrived on `channel`; returns once it
    /// is recorded (the SMSC is acknowledged then).
    fn delivery_report(
        &self,
        channel: String,
        report: DeliveryReport,
    ) -> impl Future<Output = Result<(), ReceiveError>> + Send;

    /// Takes one USSD turn (the peer has been acknowledged already) and
    /// returns the screen to send back, or `None` when nothing is to be sent
    /// (a release, a USSN confirm). It must return quickly: USSD centres
    /// give up after about 15 seconds. The default serves no USSD: every
    /// dialogue is closed with no text.
    fn ussd(&self, turn: UssdTurn) -> impl Future<Output = Option<UssdAnswer>> + Send {
        async move {
            tracing::debug!(channel = %turn.ret.channel, "USSD not served here: dialogue closed");
            (turn.kind != TurnKind::Release).then(|| UssdAnswer {
                text: String::new(),
                end: true,
            })
        }
    }
}
