//! The live connections replies can leave through, by channel name:
//! `listener:<account>` (peers bound to the listener that can receive) and
//! `smsc:<name>` (carrier links). Sessions register when they bind and
//! unregister when they go; [`Routes::send`] picks an open connection of the
//! channel; [`Routes::watch`] tells waiting replies that a channel came up.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::pdu::{tag, Tlv};
use super::session::{send_text, Link, ReplyCommand, SessionError};
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

/// Every channel's live connections.
pub struct Routes {
    routes: Mutex<HashMap<String, Vec<Route>>>,
    /// Bumped whenever a connection registers.
    generation: watch::Sender<u64>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            routes: Mutex::default(),
            generation: watch::channel(0).0,
        }
    }
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

    /// The connection `session` of `channel` is gone.
    pub fn unregister(&self, channel: &str, session: u64) {
        let mut routes = self.lock();
        if let Some(list) = routes.get_mut(channel) {
            list.retain(|r| r.session != session);
            if list.is_empty() {
                routes.remove(channel);
            }
        }
    }

    /// True when `channel` has an open connection.
    pub fn is_up(&self, channel: &str) -> bool {
        self.pick(channel).is_some()
    }

    /// Notified whenever a connection registers (replies waiting for a peer retry then).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn pick(&self, channel: &str) -> Option<Route> {
        self.lock()
            .get(channel)?
            .iter()
            .find(|r| r.link.is_open())
            .cloned()
    }

    /// Sends a reply on `channel`, returning the ids the peer gave its parts.
    pub async fn send(
        &self,
        channel: &str,
        reply: &OutgoingReply<'_>,
    ) -> Result<Vec<String>, RouteError> {
        let route = self
            .pick(channel)
            .ok_or_else(|| RouteError::NotConnected(channel.to_owned()))?;
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
        Ok(send_text(
            &route.link,
            route.command,
            &from,
            reply.to,
            reply.text,
            &tlvs,
        )
        .await?)
    }
}
