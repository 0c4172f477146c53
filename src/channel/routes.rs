//! The live outlets replies can leave through, by channel name:
//! `listener:<account>` (peers bound to the listener that can receive),
//! `smsc:<name>` (carrier links) and `modem` (the GSM modems). Outlets
//! register when they come up and unregister when they go; [`Routes::send`]
//! picks an open outlet of the channel the message came in on (the very
//! connection the citizen's latest message came in on, while it is open),
//! and when that carrier link is down, the carrier link whose number
//! prefixes match the citizen's number (the prefix table);
//! [`Routes::watch`] tells waiting replies that a channel came up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use super::outlet::{OutgoingReply, Outlet, PartLog, ReplyProgress, SendError, SentReply};
use super::ussd::{UssdAnswer, UssdReturn};
use super::{Address, PartIds};

/// Each channel's outlets, with the session id they registered under, in
/// the order they registered (a channel whose outlets spread replies
/// keeps the least recently used first).
type OutletTable = HashMap<String, Vec<(u64, Arc<dyn Outlet>)>>;

/// One connection as [`Routes::links`] reports it.
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

/// Every channel's live outlets.
pub struct Routes {
    outlets: Mutex<OutletTable>,
    /// (national number prefix, channel), longest prefix first.
    prefixes: RwLock<Vec<(String, String)>>,
    /// Bumped whenever an outlet registers.
    generation: watch::Sender<u64>,
    /// Concatenation references, shared by every outlet so a reply
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
    fn lock(&self) -> std::sync::MutexGuard<'_, OutletTable> {
        self.outlets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An outlet of `channel` is up, known as `session` (for [`Routes::unregister`]).
    pub fn register(&self, channel: &str, session: u64, outlet: Arc<dyn Outlet>) {
        self.lock()
            .entry(channel.to_owned())
            .or_default()
            .push((session, outlet));
        self.generation.send_modify(|g| *g += 1);
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
                .flat_map(|(channel, list)| list.iter().map(|(id, _)| (channel.clone(), *id)))
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

    /// The open outlet of `channel` the citizen's latest message came in
    /// on, if it is still registered.
    fn origin_of(&self, channel: &str, citizen: &str) -> Option<Arc<dyn Outlet>> {
        let session = *self
            .lock_origins()
            .get(&(channel.to_owned(), citizen.to_owned()))?;
        self.lock()
            .get(channel)?
            .iter()
            .find(|(id, outlet)| *id == session && outlet.is_open())
            .map(|(_, outlet)| outlet.clone())
    }

    /// The outlet `session` of `channel` is gone.
    pub fn unregister(&self, channel: &str, session: u64) {
        let mut outlets = self.lock();
        if let Some(list) = outlets.get_mut(channel) {
            list.retain(|(id, _)| *id != session);
            if list.is_empty() {
                outlets.remove(channel);
            }
        }
        drop(outlets);
        self.lock_origins()
            .retain(|(of, _), origin| !(of == channel && *origin == session));
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

    /// Every connection with a request window up now (the SMPP sessions),
    /// by channel, for the admin console and `/metrics`.
    pub fn links(&self) -> Vec<LinkState> {
        let outlets = self.lock();
        let mut links: Vec<LinkState> = outlets
            .iter()
            .flat_map(|(channel, list)| {
                list.iter().filter_map(move |(session, outlet)| {
                    let load = outlet.load()?;
                    Some(LinkState {
                        channel: channel.clone(),
                        session: *session,
                        role: load.role,
                        open: outlet.is_open(),
                        outstanding: load.outstanding,
                        window: load.window,
                        max_tps: load.max_tps,
                    })
                })
            })
            .collect();
        links.sort_by(|a, b| (&a.channel, a.session).cmp(&(&b.channel, b.session)));
        links
    }

    /// True when `channel` has an open outlet.
    pub fn is_up(&self, channel: &str) -> bool {
        self.pick(channel).is_some()
    }

    /// True when a reply to `to` for `channel` can leave now, on its own
    /// channel or a fallback.
    pub fn can_send(&self, channel: &str, to: &Address) -> bool {
        self.choose(channel, to).is_some()
    }

    /// The outlet a reply leaves on: its own channel's, else (carrier
    /// links only) the longest matching prefix's.
    fn choose(&self, channel: &str, to: &Address) -> Option<(String, Arc<dyn Outlet>)> {
        if let Some(outlet) = self.pick(channel) {
            return Some((channel.to_owned(), outlet));
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

    /// Notified whenever an outlet registers (replies waiting for a peer retry then).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The open outlet of `channel` a reply takes: the first registered
    /// that is open, or, when the channel's outlets spread replies, the one
    /// used least recently.
    fn pick(&self, channel: &str) -> Option<Arc<dyn Outlet>> {
        let mut outlets = self.lock();
        let list = outlets.get_mut(channel)?;
        let at = list.iter().position(|(_, outlet)| outlet.is_open())?;
        let outlet = list[at].1.clone();
        if outlet.spreads_replies() {
            let chosen = list.remove(at);
            list.push(chosen);
        }
        Some(outlet)
    }

    /// Sends a USSD answer on an open outlet of `ret.channel` itself (the
    /// first registered that is open): a USSD dialogue lives on its
    /// channel, with no fallback to another one.
    pub async fn answer_ussd(
        &self,
        ret: &UssdReturn,
        answer: &UssdAnswer,
    ) -> Result<(), SendError> {
        let outlet = self
            .lock()
            .get(&ret.channel)
            .and_then(|list| {
                list.iter()
                    .find(|(_, o)| o.is_open())
                    .map(|(_, o)| o.clone())
            })
            .ok_or_else(|| SendError::NotConnected(ret.channel.clone()))?;
        outlet.answer_ussd(ret, answer).await
    }

    /// Sends a reply for a message of `channel`, resuming from `progress`
    /// (updated as parts are accepted, also on failure). An outlet without
    /// a part format (a modem) tells `log` of each part as it leaves; SMPP
    /// sessions send their parts back to back and `log` hears nothing of them.
    pub async fn send(
        &self,
        channel: &str,
        reply: &OutgoingReply<'_>,
        progress: &mut ReplyProgress,
        log: &dyn PartLog,
    ) -> Result<SentReply, SendError> {
        let (used, outlet) = match self.origin_of(channel, &reply.to.addr) {
            Some(outlet) => (channel.to_owned(), outlet),
            None => self
                .choose(channel, reply.to)
                .ok_or_else(|| SendError::NotConnected(channel.to_owned()))?,
        };
        let format = outlet.part_format();
        let reference = match progress.encoding {
            Some((reference, made)) if made == format => reference,
            _ => {
                let reference = self.reference.fetch_add(1, Ordering::Relaxed);
                *progress = ReplyProgress {
                    encoding: Some((reference, format)),
                    ids: PartIds::new(),
                };
                reference
            }
        };
        outlet
            .send(reply, reference, &mut progress.ids, log)
            .await?;
        Ok(SentReply {
            channel: used,
            ids: progress.ids.iter().flatten().cloned().collect(),
            by_carrier: outlet.is_carrier(),
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
