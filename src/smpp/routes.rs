//! The live connections replies can leave through, by channel name:
//! `listener:<account>` (peers bound to the listener that can receive) and
//! `smsc:<name>` (carrier links). Sessions register when they bind and
//! unregister when they go; [`Routes::send`] picks an open connection of the
//! channel the message came in on (the very connection the citizen's latest
//! message came in on, while it is open), and when that carrier link is down, the
//! carrier link whose number prefixes match the citizen's number (the
//! prefix table); [`Routes::watch`] tells waiting replies that a channel
//! came up. Channels that are not SMPP (the GSM modems) register an
//! [`Outlet`]: the same choice and resumption, their own way of sending.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use super::pacing::Pacing;
use super::pdu::{tag, Tlv};
use super::session::{send_parts, Envelope, Link, PartIds, ReplyCommand, SessionError};
use super::text::{encode_reply, DefaultAlphabet, LongMessageMode};
use super::Address;

/// Why a reply could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No connection of that channel is up (the peer or carrier will bind again).
    #[error("channel {0} has no connection up")]
    NotConnected(String),
    /// The connection failed or the peer refused.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A non-SMPP outlet (a modem) could not send.
    #[error(transparent)]
    Outlet(#[from] OutletError),
}

/// Why an [`Outlet`] could not send a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OutletError {
    /// What went wrong, for the log and the journal.
    pub reason: String,
    /// The outlet went away (a modem hung or was unplugged): the reply may
    /// go again as soon as an outlet of the channel is up.
    pub gone: bool,
    /// Sending it again cannot help (the network refused the number).
    pub permanent: bool,
}

/// The future an [`Outlet`] sends with.
pub type OutletFuture<'a> = Pin<Box<dyn Future<Output = Result<(), OutletError>> + Send + 'a>>;

/// A way out for a channel that is not SMPP (a GSM modem).
pub trait Outlet: Send + Sync + 'static {
    /// True while it can take replies.
    fn is_open(&self) -> bool;

    /// Sends `reply` as parts joined by `reference`, one at a time,
    /// skipping the parts that already have an id in `ids`, filling in the
    /// id of each part it gets out (also when a later part fails), telling
    /// `log` before the first part leaves and of each part before the next
    /// leaves.
    fn send<'a>(
        &'a self,
        reply: &'a OutgoingReply<'a>,
        reference: u16,
        ids: &'a mut PartIds,
        log: &'a dyn PartLog,
    ) -> OutletFuture<'a>;
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

/// Each channel's outlets, with the session id they registered under.
type OutletTable = HashMap<String, Vec<(u64, std::sync::Arc<dyn Outlet>)>>;

/// A connection a reply can leave on.
#[derive(Clone)]
enum Way {
    Smpp(Route),
    Outlet(std::sync::Arc<dyn Outlet>),
}

/// How a registered connection sends.
#[derive(Clone)]
pub struct Route {
    /// Which session registered it.
    pub session: u64,
    /// Its sending half.
    pub link: Link,
    /// deliver_sm (listener) or submit_sm (carrier link).
    pub command: ReplyCommand,
    /// Replaces the reply's source address (configured per carrier link).
    pub source_override: Option<String>,
    /// Replaces the source TON.
    pub source_ton: Option<u8>,
    /// Replaces the source NPI.
    pub source_npi: Option<u8>,
    /// Carry the id of the answered message in the [`tag::MOTCUA_REPLY_TO`] TLV.
    pub tag_replies: bool,
    /// The pace of the link this connection belongs to.
    pub pacing: Arc<Pacing>,
    /// How long replies are split on it.
    pub long_messages: LongMessageMode,
    /// How data_coding 0 is written on it.
    pub alphabet: DefaultAlphabet,
}

/// Where a reply got to over its attempts: the encoding its parts were
/// made with and the ids of the parts already accepted. After a dropped
/// link only the missing parts are sent again, with the same reference, so
/// the handset still joins them and no part reaches the citizen twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyProgress {
    /// How the parts sent so far were made.
    encoding: Option<PartEncoding>,
    /// Per part, the id the peer gave it once accepted.
    ids: PartIds,
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
            encoding: Some(PartEncoding::Outlet(reference)),
            ids,
        }
    }
}

/// How a reply's parts were made: the reference, and for SMPP the
/// long-message mode and alphabet of the link (another link's parts
/// would not join with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartEncoding {
    Smpp(u16, LongMessageMode, DefaultAlphabet),
    Outlet(u16),
}

/// A reply that left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    /// The channel it left on (the message's own, or the prefix table's fallback).
    pub channel: String,
    /// The ids the peer gave its parts, in order.
    pub ids: Vec<String>,
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

/// One SMPP connection as [`Routes::links`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Its channel (`listener:<system_id>`, `smsc:<name>`).
    pub channel: String,
    /// The session number.
    pub session: u64,
    /// `listener` (a peer bound to us) or `carrier` (our link to an SMSC).
    pub role: &'static str,
    /// Its writer still runs.
    pub open: bool,
    /// Requests awaiting their response now.
    pub outstanding: usize,
    /// The most that may await at once.
    pub window: usize,
    /// The link's configured pace, if any.
    pub max_tps: Option<u32>,
}

/// Every channel's live connections.
pub struct Routes {
    routes: Mutex<HashMap<String, Vec<Route>>>,
    /// Non-SMPP outlets by channel, with the session id they registered under.
    outlets: Mutex<OutletTable>,
    /// (national number prefix, channel), longest prefix first.
    prefixes: RwLock<Vec<(String, String)>>,
    /// Bumped whenever a connection registers.
    generation: watch::Sender<u64>,
    /// Concatenation references, shared by every connection so a reply
    /// resumed on another connection keeps its own.
    reference: AtomicU16,
    /// The session each citizen's latest message came in on, by channel
    /// and number: a reply goes back there while it is open.
    origins: Mutex<HashMap<(String, String), u64>>,
}

/// Citizens whose session is remembered at most; past it, entries of
/// sessions gone are dropped, then all (the next messages fill it again).
const MAX_ORIGINS: usize = 100_000;

impl Default for Routes {
    fn default() -> Self {
        Routes {
            routes: Mutex::default(),
            outlets: Mutex::default(),
            prefixes: RwLock::default(),
            generation: watch::channel(0).0,
            reference: AtomicU16::new(1),
            origins: Mutex::default(),
        }
    }
}

/// A route prefix as national significant digits: `098` and `+8498` / `8498` → `98`.
pub fn prefix_digits(prefix: &str) -> String {
    let digits: String = prefix.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix('0') {
        Some(national) => national.to_owned(),
        None => digits.strip_prefix("84").unwrap_or(&digits).to_owned(),
    }
}

/// The national significant number of a phone number as an SMSC writes it
/// (`84912345678`, `0912345678`, `+84 91 234 5678` → `912345678`).
fn national_number(addr: &str) -> String {
    let digits: String = addr.chars().filter(char::is_ascii_digit).collect();
    if let Some(rest) = digits.strip_prefix("84").filter(|r| r.len() >= 8) {
        return rest.to_owned();
    }
    digits.strip_prefix('0').unwrap_or(&digits).to_owned()
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Route>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection of `channel` is up.
    pub fn register(&self, channel: &str, route: Route) {
        self.lock()
            .entry(channel.to_owned())
            .or_default()
            .push(route);
        self.generation.send_modify(|g| *g += 1);
    }

    /// An outlet of `channel` is up, known as `session` (for [`Routes::unregister`]).
    pub fn register_outlet(&self, channel: &str, session: u64, outlet: std::sync::Arc<dyn Outlet>) {
        self.lock_outlets()
            .entry(channel.to_owned())
            .or_default()
            .push((session, outlet));
        self.generation.send_modify(|g| *g += 1);
    }

    fn lock_outlets(&self) -> std::sync::MutexGuard<'_, OutletTable> {
        self.outlets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message from `citizen` came in on connection `session` of
    /// `channel`, which can receive: replies to that citizen prefer it (so
    /// that peers sharing an account, such as two `motcua-sms sms send`
    /// at once, each get the replies to their own messages).
    pub fn note_origin(&self, channel: &str, citizen: &str, session: u64) {
        let mut origins = self.lock_origins();
        if origins.len() >= MAX_ORIGINS {
            let live: std::collections::HashSet<(String, u64)> = self
                .lock()
                .iter()
                .flat_map(|(channel, list)| list.iter().map(|r| (channel.clone(), r.session)))
                .collect();
            origins.retain(|(channel, _), session| live.contains(&(channel.clone(), *session)));
            if origins.len() >= MAX_ORIGINS {
                origins.clear();
            }
        }
        origins.insert((channel.to_owned(), citizen.to_owned()), session);
    }

    fn lock_origins(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.origins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open connection of `channel` the citizen's latest message came
    /// in on, if it is still registered.
    fn origin_of(&self, channel: &str, citizen: &str) -> Option<Route> {
        let session = *self
            .lock_origins()
            .get(&(channel.to_owned(), citizen.to_owned()))?;
        self.lock()
            .get(channel)?
            .iter()
            .find(|r| r.session == session && r.link.is_open())
            .cloned()
    }

    /// The connection or outlet `session` of `channel` is gone.
    pub fn unregister(&self, channel: &str, session: u64) {
        let mut routes = self.lock();
        if let Some(list) = routes.get_mut(channel) {
            list.retain(|r| r.session != session);
            if list.is_empty() {
                routes.remove(channel);
            }
        }
        drop(routes);
        self.lock_origins()
            .retain(|(of, _), origin| !(of == channel && *origin == session));
        let mut outlets = self.lock_outlets();
        if let Some(list) = outlets.get_mut(channel) {
            list.retain(|(id, _)| *id != session);
            if list.is_empty() {
                outlets.remove(channel);
            }
        }
    }

    /// Sets the prefix table: numbers starting with a prefix (national
    /// `098`, international `8498` or bare `98` alike) fall back to the
    /// channel when their own channel is down.
    pub fn set_prefix_routes(&self, table: impl IntoIterator<Item = (String, String)>) {
        let mut routes: Vec<(String, String)> = table
            .into_iter()
            .map(|(prefix, channel)| (prefix_digits(&prefix), channel))
            .filter(|(prefix, _)| !prefix.is_empty())
            .collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        *self.prefixes.write().unwrap_or_else(|e| e.into_inner()) = routes;
    }

    /// Every SMPP connection up now, by channel, for the admin console
    /// and `/metrics`.
    pub fn links(&self) -> Vec<LinkState> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut links: Vec<LinkState> = routes
            .iter()
            .flat_map(|(channel, list)| {
                list.iter().map(move |route| LinkState {
                    channel: channel.clone(),
                    session: route.session,
                    role: match route.command {
                        ReplyCommand::DeliverSm => "listener",
                        ReplyCommand::SubmitSm => "carrier",
                    },
                    open: route.link.is_open(),
                    outstanding: route.link.outstanding(),
                    window: route.link.window_size(),
                    max_tps: route.pacing.max_tps().map(|n| n.get()),
                })
            })
            .collect();
        links.sort_by(|a, b| (&a.channel, a.session).cmp(&(&b.channel, b.session)));
        links
    }

    /// True when `channel` has an open connection.
    pub fn is_up(&self, channel: &str) -> bool {
        self.pick(channel).is_some()
    }

    /// True when a reply to `to` for `channel` can leave now, on its own
    /// channel or a fallback.
    pub fn can_send(&self, channel: &str, to: &Address) -> bool {
        self.choose(channel, to).is_some()
    }

    /// The connection a reply leaves on: its own channel's, else (carrier
    /// links only) the longest matching prefix's.
    fn choose(&self, channel: &str, to: &Address) -> Option<(String, Way)> {
        if let Some(route) = self.pick(channel) {
            return Some((channel.to_owned(), route));
        }
        if !channel.starts_with("smsc:") {
            return None;
        }
        let number = national_number(&to.addr);
        let prefixes = self.prefixes.read().unwrap_or_else(|e| e.into_inner());
        prefixes
            .iter()
            .filter(|(prefix, fallback)| number.starts_with(prefix.as_str()) && fallback != channel)
            .find_map(|(_, fallback)| Some((fallback.clone(), self.pick(fallback)?)))
    }

    /// An open SMPP connection of `channel` itself (the first registered
    /// that is open), with no fallback to another channel: where a USSD
    /// answer leaves.
    pub fn route_for(&self, channel: &str) -> Option<Route> {
        self.lock()
            .get(channel)
            .and_then(|list| list.iter().find(|r| r.link.is_open()).cloned())
    }

    /// Notified whenever a connection registers (replies waiting for a peer retry then).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn pick(&self, channel: &str) -> Option<Way> {
        if let Some(route) = self.route_for(channel) {
            return Some(Way::Smpp(route));
        }
        self.pick_outlet(channel).map(Way::Outlet)
    }

    /// The open outlet of `channel` that was used least recently: replies
    /// spread over a channel's modems.
    fn pick_outlet(&self, channel: &str) -> Option<std::sync::Arc<dyn Outlet>> {
        let mut outlets = self.lock_outlets();
        let list = outlets.get_mut(channel)?;
        let at = list.iter().position(|(_, outlet)| outlet.is_open())?;
        let chosen = list.remove(at);
        let outlet = chosen.1.clone();
        list.push(chosen);
        Some(outlet)
    }

    /// Sends a reply for a message of `channel`, resuming from `progress`
    /// (updated as parts are accepted, also on failure). An outlet (a
    /// modem) tells `log` of each part as it leaves; SMPP links send their
    /// parts back to back and `log` hears nothing of them.
    pub async fn send(
        &self,
        channel: &str,
        reply: &OutgoingReply<'_>,
        progress: &mut ReplyProgress,
        log: &dyn PartLog,
    ) -> Result<SentReply, RouteError> {
        let (used, way) = match self.origin_of(channel, &reply.to.addr) {
            Some(route) => (channel.to_owned(), Way::Smpp(route)),
            None => self
                .choose(channel, reply.to)
                .ok_or_else(|| RouteError::NotConnected(channel.to_owned()))?,
        };
        let route = match way {
            Way::Smpp(route) => route,
            Way::Outlet(outlet) => {
                let reference = match progress.encoding {
                    Some(PartEncoding::Outlet(reference)) => reference,
                    _ => {
                        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
                        *progress = ReplyProgress {
                            encoding: Some(PartEncoding::Outlet(reference)),
                            ids: PartIds::new(),
                        };
                        reference
                    }
                };
                outlet
                    .send(reply, reference, &mut progress.ids, log)
                    .await?;
                return Ok(SentReply {
                    channel: used,
                    ids: progress.ids.iter().flatten().cloned().collect(),
                });
            }
        };
        let mut from = reply.from.clone();
        if let Some(source) = &route.source_override {
            from.addr = source.clone();
        }
        if let Some(ton) = route.source_ton {
            from.ton = ton;
        }
        if let Some(npi) = route.source_npi {
            from.npi = npi;
        }
        let tlvs = if route.tag_replies {
            vec![Tlv {
                tag: tag::MOTCUA_REPLY_TO,
                value: reply.reply_to.as_bytes().to_vec(),
            }]
        } else {
            Vec::new()
        };
        let reference = match progress.encoding {
            Some(PartEncoding::Smpp(reference, mode, alphabet))
                if mode == route.long_messages && alphabet == route.alphabet =>
            {
                reference
            }
            _ => {
                let reference = self.reference.fetch_add(1, Ordering::Relaxed);
                *progress = ReplyProgress {
                    encoding: Some(PartEncoding::Smpp(
                        reference,
                        route.long_messages,
                        route.alphabet,
                    )),
                    ids: PartIds::new(),
                };
                reference
            }
        };
        let parts = encode_reply(reply.text, reference, route.long_messages, route.alphabet);
        let envelope = Envelope {
            command: route.command,
            from: &from,
            to: reply.to,
            tlvs: &tlvs,
        };
        send_parts(
            &route.link,
            &route.pacing,
            &envelope,
            &parts,
            &mut progress.ids,
        )
        .await?;
        Ok(SentReply {
            channel: used,
            ids: progress.ids.iter().flatten().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_numbers_ignore_the_way_they_are_written() {
        assert_eq!(national_number("84912345678"), "912345678");
        assert_eq!(national_number("0912345678"), "912345678");
        assert_eq!(national_number("+84 91 234 5678"), "912345678");
        assert_eq!(prefix_digits("098"), "98");
        assert_eq!(prefix_digits("+84 98"), "98");
        assert_eq!(prefix_digits("084"), "84");
    }
}
