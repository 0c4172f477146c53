//! What the journal records and answers: a citizen's message and its parts,
//! what recording did (new, redelivery, waiting for parts), delivery
//! receipts, a reply's state and where it got to (pending, settled, sent
//! part by part), what a reply looked up, and the outcome of a message that
//! could not be read. Plain data: the SQL that stores it is in the
//! table-family files beside this one.

pub use crate::address::Address;

/// The outcome recorded for a message that arrived but could not be read
/// (its reply is suppressed).
pub const UNDECODABLE: &str = "undecodable";

/// A message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Where it came from: `listener:<account>` or `smsc:<name>`.
    pub channel: String,
    /// The peer's own id for it, when it gives one, or the channel's
    /// fingerprint of it (see `peer_ref_lasting`).
    pub peer_ref: Option<String>,
    /// `peer_ref` identifies the message for good (a GSM modem's
    /// fingerprint: sender, service-centre time, text), so a delivery with
    /// it is a redelivery however late. Otherwise (an SMPP peer's
    /// `user_message_reference`, a 16-bit number peers reuse) a copy is a
    /// redelivery only with the same sender and text, within the
    /// redelivery window, while its acknowledgement is not known to be
    /// read (see [`Journal::record`]).
    pub peer_ref_lasting: bool,
    /// The citizen.
    pub sender: Address,
    /// The number they texted.
    pub recipient: Address,
    /// The decoded text.
    pub text: String,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new message, with its id.
    New(i64),
    /// A redelivery of the message with this id.
    Duplicate(i64),
}

/// One part of a citizen's concatenated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFragment {
    /// The message as far as this part tells it (`text` is the part's text).
    pub message: NewMessage,
    /// The concatenation reference (8- or 16-bit).
    pub reference: u16,
    /// How many parts the message has.
    pub total: u8,
    /// This part's number, 1-based.
    pub part: u8,
    /// The part's lasting identity, when its channel gives one
    /// ([`crate::channel::IncomingSms::fingerprint`]).
    pub fingerprint: Option<String>,
}

/// What recording a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentRecorded {
    /// Kept; the message waits for its other parts. The id is the part's own.
    Waiting(i64),
    /// This part was already recorded, or is a copy of the same part (number
    /// and text) of a message joined within the redelivery window.
    Duplicate,
    /// The last part: the message is joined and recorded.
    Joined(StoredMessage),
}

/// A delivery receipt to apply to the reply part it reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptUpdate {
    /// The channel it arrived on.
    pub channel: String,
    /// Every spelling of the reported id (hex and decimal); the first is the
    /// id as given.
    pub peer_ids: Vec<String>,
    /// The receipt's state (`delivered`, `undeliverable`, …).
    pub state: String,
    /// True when the state will not change any more.
    pub is_final: bool,
    /// True when the part reached the handset.
    pub success: bool,
    /// The receipt's error code, if any.
    pub error: Option<String>,
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptApplied {
    /// It matched a part of this message's reply; the reply's state now.
    Matched {
        /// The answered message.
        message_id: i64,
        /// The reply's state after the receipt.
        reply: ReplyState,
    },
    /// No part has that id (yet): kept until one is recorded.
    Unmatched,
}

/// A reply's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    /// Rendered, not yet acknowledged by the peer or SMSC.
    Queued,
    /// Acknowledged by a bound peer (listener role).
    Sent,
    /// Accepted by the carrier's SMSC (submit_sm_resp).
    Accepted,
    /// Delivered to the handset (delivery receipt).
    Delivered,
    /// Given up.
    Failed,
    /// Deliberately not answered (not a phone number, rate limited, …).
    Suppressed,
    /// Not handed to its channel within `reply_expiry_secs` of the message:
    /// never sent (the status would be stale).
    Expired,
}

impl ReplyState {
    /// Every state (the console has words for each).
    pub const ALL: [ReplyState; 7] = [
        ReplyState::Queued,
        ReplyState::Sent,
        ReplyState::Accepted,
        ReplyState::Delivered,
        ReplyState::Failed,
        ReplyState::Suppressed,
        ReplyState::Expired,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Queued => "queued",
            ReplyState::Sent => "sent",
            ReplyState::Accepted => "accepted",
            ReplyState::Delivered => "delivered",
            ReplyState::Failed => "failed",
            ReplyState::Suppressed => "suppressed",
            ReplyState::Expired => "expired",
        }
    }

    /// True once the reply has been handed to the channel (sent to a
    /// peer, accepted by an SMSC, delivered): when `replies.sent_at` is set.
    pub(super) fn handed_over(self) -> bool {
        matches!(
            self,
            ReplyState::Sent | ReplyState::Accepted | ReplyState::Delivered
        )
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ReplyState::Queued,
            "sent" => ReplyState::Sent,
            "accepted" => ReplyState::Accepted,
            "delivered" => ReplyState::Delivered,
            "failed" => ReplyState::Failed,
            "suppressed" => ReplyState::Suppressed,
            "expired" => ReplyState::Expired,
            _ => return None,
        })
    }
}

/// A recorded message, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: i64,
    /// What was recorded.
    pub message: NewMessage,
}

/// What a reply looked up, recorded with the reply (table `reply_lookups`)
/// for the admin console's message log and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupNote {
    /// The canonical dossier code found in the citizen's text.
    pub code: String,
    /// The dossier's agency, when it was found.
    pub agency: Option<String>,
    /// The dossier's procedure, when it was found.
    pub procedure: Option<String>,
    /// Where the applicant's name stands in the reply's text (character
    /// offsets, end exclusive; see [`spans_text`]); empty when it names nobody.
    pub name_spans: Vec<(usize, usize)>,
}

/// Name spans as `reply_lookups.name_spans` keeps them: `start-end`
/// joined by commas ('' for none).
pub fn spans_text(spans: &[(usize, usize)]) -> String {
    spans
        .iter()
        .map(|(start, end)| format!("{start}-{end}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Name spans read back from [`spans_text`]; `None` when the text is not
/// in that form.
pub fn spans_from_text(text: &str) -> Option<Vec<(usize, usize)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|span| {
            let (start, end) = span.split_once('-')?;
            Some((start.parse().ok()?, end.parse().ok()?))
        })
        .collect()
}

/// A reply waiting to be sent, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReply {
    /// The message it answers.
    pub message_id: i64,
    /// The channel it goes out on.
    pub channel: String,
    /// The citizen.
    pub to: Address,
    /// Our number.
    pub from: Address,
    /// The reply text.
    pub text: String,
    /// What the message earned (found, not_found, help, …).
    pub outcome: String,
    /// Tries so far.
    pub attempts: u32,
    /// True once the reply is in the journal (a fresh reply is sent first
    /// and recorded with the outcome of that first attempt).
    pub stored: bool,
    /// What the reply looked up, written with the reply when it is first
    /// stored; `None` when read back from the journal (already written).
    pub lookup: Option<LookupNote>,
}

/// Where one attempt to send a reply ended, to record in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The state reached: sent / accepted, failed, or queued again.
    pub state: ReplyState,
    /// The channel it left on and the id the peer gave each part (accepted or sent).
    pub left_on: Option<(String, Vec<String>)>,
    /// Why the attempt failed.
    pub error: Option<String>,
    /// When to try again (queued).
    pub next_attempt_at: Option<i64>,
    /// Whether this attempt counts toward `max_attempts` (waiting for a
    /// channel to come up does not).
    pub counts: bool,
}

/// Where a reply sent one part at a time (a GSM modem) got to: its
/// parts' reference before the first leaves, then each part as it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// The channel it leaves on.
    pub channel: String,
    /// The concatenation reference of the reply's parts.
    pub reference: u16,
    /// The part that left (1-based) and the id the channel gave it;
    /// `None` before the first part leaves.
    pub sent: Option<(u32, String)>,
}

/// How far a reply sent one part at a time had got, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedParts {
    /// The concatenation reference of its parts.
    pub reference: u16,
    /// (part, 1-based; the id the channel gave it) of each part that left.
    pub sent: Vec<(u32, String)>,
}
