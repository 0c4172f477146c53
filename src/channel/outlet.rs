//! How a reply leaves: the [`Outlet`] trait every way out implements (an
//! SMPP session toward a peer or a carrier, a GSM modem), the reply it is
//! given ([`OutgoingReply`]), how far a multipart reply got across attempts
//! ([`ReplyProgress`], [`PartLog`]), and the typed outcome of a send:
//! accepted with the parts' ids ([`SentReply`]), to be tried again
//! ([`SendError::RetryLater`]) or failed for good ([`SendError::Failed`]),
//! each failure with its cause ([`OutletError`]).

use std::future::Future;
use std::pin::Pin;

use super::ussd::{UssdAnswer, UssdReturn};
use super::{Address, BoxError, PartIds};

/// What stopped an outlet, whatever its protocol.
#[derive(Debug, thiserror::Error)]
pub enum OutletError {
    /// The peer or carrier answered with a refusal; `status` names it as
    /// the protocol does (`ESME_RTHROTTLED`, `ESME_RINVDSTADR`).
    #[error("{source}")]
    Refused {
        /// The refusal's name.
        status: &'static str,
        /// The refusal as the protocol reported it.
        source: BoxError,
    },
    /// The connection to the peer failed: closed (`closed`: the reply may
    /// go again as soon as a connection of its channel is up), no response
    /// in time, a socket error.
    #[error("{source}")]
    Link {
        /// The connection is gone.
        closed: bool,
        /// What failed.
        source: BoxError,
    },
    /// The device failed (a modem that hung, was unplugged, or whose SIM
    /// refused); `gone`: it went away, and the reply may go again as soon as
    /// an outlet of its channel is up.
    #[error("{device}: {source}")]
    Device {
        /// Which device (`modem <name>`).
        device: String,
        /// It went away.
        gone: bool,
        /// What failed.
        source: BoxError,
    },
    /// This outlet cannot address the citizen's number.
    #[error("{reason}")]
    Unaddressable {
        /// What is wrong with the number (masked).
        reason: String,
    },
    /// The reply cannot be written in this outlet's format.
    #[error("reply cannot be written as a PDU: {source}")]
    Unencodable {
        /// What the encoder said.
        source: BoxError,
    },
    /// This outlet carries no USSD.
    #[error("this channel carries no USSD")]
    NoUssd,
}

impl OutletError {
    /// True when the outlet went away (a closed link, a modem gone): a
    /// reply may go again as soon as an outlet of its channel is up, with no
    /// backoff.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            OutletError::Link { closed: true, .. } | OutletError::Device { gone: true, .. }
        )
    }

    /// True for a failure of the connection itself (not a refusal, not a
    /// device): routine while links come and go.
    pub fn is_link(&self) -> bool {
        matches!(self, OutletError::Link { .. })
    }
}

/// Why a reply did not leave: the failure half of a send's outcome.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No outlet of that channel (nor of a fallback) is up: the reply waits
    /// for one to register.
    #[error("channel {0} has no connection up")]
    NotConnected(String),
    /// Not sent this time; sending again may help.
    #[error(transparent)]
    RetryLater(OutletError),
    /// Sending again cannot help (the carrier refused the number for good).
    #[error(transparent)]
    Failed(OutletError),
}

/// The future an [`Outlet`] sends with.
pub type OutletFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// How an outlet cuts a reply into parts (its own code: for SMPP the
/// long-message mode and alphabet of the link). Parts made under one format
/// join on the handset only with parts of the same format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartFormat(pub u32);

/// One connection's load, for the console and `/metrics` (outlets with a
/// request window: SMPP sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutletLoad {
    /// `listener` (a peer bound to us) or `carrier` (our link to an SMSC).
    pub role: &'static str,
    /// Requests awaiting their response now.
    pub outstanding: usize,
    /// The most that may await at once.
    pub window: usize,
    /// The link's configured pace, if any.
    pub max_tps: Option<u32>,
}

/// The future a USSD answer is sent with.
pub type UssdFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A way out for a channel: one SMPP session, one GSM modem.
pub trait Outlet: Send + Sync + 'static {
    /// True while it can take replies.
    fn is_open(&self) -> bool;

    /// True when what it accepts is in a carrier's hands (a carrier's SMSC,
    /// a modem's network), whose delivery receipt may follow: the reply is
    /// recorded `accepted`. False for a peer that delivers it itself (a
    /// peer bound to the listener): `sent`.
    fn is_carrier(&self) -> bool;

    /// How it cuts replies into parts; `None` for an outlet that sends its
    /// parts one at a time, telling the [`PartLog`] of each, so that a reply
    /// resumes under the reference recorded ([`ReplyProgress::recorded`]).
    fn part_format(&self) -> Option<PartFormat>;

    /// True when a channel's replies spread over its open outlets (least
    /// recently used first, a channel's modems); false when the first open
    /// one registered takes them (an SMPP account's or link's sessions).
    fn spreads_replies(&self) -> bool {
        false
    }

    /// Its load, when it has a request window (shown per SMPP session).
    fn load(&self) -> Option<OutletLoad> {
        None
    }

    /// Sends `reply` as parts joined by `reference`, skipping the parts
    /// that already have an id in `ids`, filling in the id of each part it
    /// gets out (also when a later part fails). An outlet without a
    /// [`PartFormat`] tells `log` before the first part leaves and of each
    /// part before the next leaves.
    fn send<'a>(
        &'a self,
        reply: &'a OutgoingReply<'a>,
        reference: u16,
        ids: &'a mut PartIds,
        log: &'a dyn PartLog,
    ) -> OutletFuture<'a>;

    /// Sends a USSD answer on this very connection (a dialogue lives on its
    /// channel). The default carries no USSD.
    fn answer_ussd<'a>(&'a self, ret: &'a UssdReturn, answer: &'a UssdAnswer) -> UssdFuture<'a> {
        let _ = (ret, answer);
        Box::pin(async { Err(SendError::Failed(OutletError::NoUssd)) })
    }
}

/// A part of a reply that an [`Outlet`] got out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSent<'a> {
    /// The concatenation reference of the reply's parts.
    pub reference: u16,
    /// The part, 0-based.
    pub index: usize,
    /// How many parts the reply has.
    pub total: usize,
    /// The id the channel gave it.
    pub id: &'a str,
}

/// What a [`PartLog`] returns: done once recorded (or failed to be).
pub type PartLogFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the parts an [`Outlet`] sends are recorded as they leave, so that
/// a reply cut short, even by a crash, resumes with the parts not yet
/// accepted under the same reference ([`ReplyProgress::recorded`]).
pub trait PartLog: Send + Sync {
    /// The reply's first part is about to leave under `reference`, one of
    /// `total`; returns once that is recorded (or failed to be: after a
    /// crash the reply would then go whole under a new reference).
    fn starting(&self, reference: u16, total: usize) -> PartLogFuture<'_>;

    /// `part` left; returns once it is recorded (or failed to be: a part
    /// not recorded goes again after a crash, under the same reference).
    fn part_sent<'a>(&'a self, part: PartSent<'a>) -> PartLogFuture<'a>;
}

/// Where a reply got to over its attempts: the reference and format its
/// parts were made with and the ids of the parts already accepted. After a
/// dropped link only the missing parts are sent again, with the same
/// reference, so the handset still joins them and no part reaches the
/// citizen twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyProgress {
    /// How the parts sent so far were made: their reference and format.
    pub(super) encoding: Option<(u16, Option<PartFormat>)>,
    /// Per part, the id the peer gave it once accepted.
    pub(super) ids: PartIds,
}

impl ReplyProgress {
    /// True when some part already got through.
    pub fn is_started(&self) -> bool {
        self.ids.iter().any(Option::is_some)
    }

    /// The progress an [`Outlet`]'s reply had made as its [`PartLog`]
    /// recorded it: its parts' `reference`, and the id of each part that
    /// got out (by 0-based part).
    pub fn recorded(reference: u16, ids: PartIds) -> Self {
        ReplyProgress {
            encoding: Some((reference, None)),
            ids,
        }
    }
}

/// A reply that left: the success half of a send's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    /// The channel it left on (the message's own, or the prefix table's fallback).
    pub channel: String,
    /// The ids the peer gave its parts, in order.
    pub ids: Vec<String>,
    /// A carrier took it ([`Outlet::is_carrier`]): recorded `accepted`, a
    /// delivery receipt may follow; otherwise `sent`.
    pub by_carrier: bool,
}

/// A reply ready to leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingReply<'a> {
    /// The citizen.
    pub to: &'a Address,
    /// Our number (the one the citizen texted).
    pub from: &'a Address,
    /// The text.
    pub text: &'a str,
    /// The id of the message it answers (as given to the peer).
    pub reply_to: &'a str,
}
