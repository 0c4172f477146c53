//! The outbox: turns recorded messages into replies and gets every reply out
//! exactly once per message. A fresh message is answered at once; what a
//! crash or a disconnect left behind (messages without a reply, replies still
//! queued) is picked up at start and whenever a channel comes back up, with
//! backoff between failed attempts. A reply is claimed in memory while it is
//! being sent and its state is checked again before a retry, so two paths
//! never send the same reply.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::abuse::{AbuseGuard, Verdict};
use crate::domain::Msisdn;
use crate::journal::{now_ms, Journal, PendingReply, ReplyState, StoredMessage};
use crate::reply::ReplyKind;
use crate::responder::Responder;
use crate::smpp::pdu::{status, status_name};
use crate::smpp::routes::{OutgoingReply, RouteError, Routes};
use crate::smpp::session::SessionError;
use crate::store::DossierStore;

/// How often queued replies are looked at when nothing else wakes the outbox.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Queued replies handled per sweep.
const SWEEP_BATCH: i64 = 500;
/// First retry delay; doubles per attempt up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest retry delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The id a message is known by outside (submit_sm_resp, the reply's tag).
pub fn external_id(id: i64) -> String {
    format!("{id:x}")
}

/// Answers recorded messages and delivers their replies.
pub struct Outbox<S> {
    journal: Journal,
    responder: Responder<S>,
    guard: AbuseGuard,
    routes: Arc<Routes>,
    claimed: Mutex<HashSet<i64>>,
    tasks: TaskTracker,
}

impl<S: DossierStore> Outbox<S> {
    /// An outbox answering with `responder` (within `guard`'s limits) and
    /// sending through `routes`.
    pub fn new(
        journal: Journal,
        responder: Responder<S>,
        guard: AbuseGuard,
        routes: Arc<Routes>,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            journal,
            responder,
            guard,
            routes,
            claimed: Mutex::default(),
            tasks: TaskTracker::new(),
        })
    }

    fn lock_claimed(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim(&self, id: i64) -> bool {
        self.lock_claimed().insert(id)
    }

    fn release(&self, id: i64) {
        self.lock_claimed().remove(&id);
    }

    /// Answers a freshly recorded message in the background.
    pub fn answer_later(self: &Arc<Self>, stored: StoredMessage) {
        let this = self.clone();
        self.tasks.spawn(async move { this.answer(stored).await });
    }

    /// Computes, records and sends the reply to one message.
    async fn answer(&self, stored: StoredMessage) {
        let id = stored.id;
        if !self.claim(id) {
            return;
        }
        let started = Instant::now();
        let m = &stored.message;
        let (outcome, text, state) = match Msisdn::parse(&m.sender.addr) {
            Err(reason) => {
                info!(channel = %m.channel, message = %external_id(id), %reason, "sender is not a phone number; no reply");
                (
                    "not_a_phone_number".to_owned(),
                    String::new(),
                    ReplyState::Suppressed,
                )
            }
            Ok(sender) => self.decide(id, &m.channel, &sender, &m.text, started).await,
        };
        if let Err(error) = self.journal.queue_reply(id, &outcome, &text, state).await {
            // The message stays without a reply; the next start answers it.
            error!(%error, message = %external_id(id), "cannot record the reply");
            self.release(id);
            return;
        }
        if state == ReplyState::Queued {
            let pending = PendingReply {
                message_id: id,
                channel: m.channel.clone(),
                to: m.sender.clone(),
                from: m.recipient.clone(),
                text,
                attempts: 0,
            };
            self.send_claimed(&pending).await;
        }
        self.release(id);
    }

    /// Applies the abuse rules, then answers: (outcome, reply text, state).
    async fn decide(
        &self,
        id: i64,
        channel: &str,
        sender: &Msisdn,
        text: &str,
        started: Instant,
    ) -> (String, String, ReplyState) {
        let now = chrono::Utc::now();
        let verdict = self
            .guard
            .check(sender, text, now)
            .await
            .unwrap_or_else(|error| {
                // Availability first: a broken limiter must not silence citizens.
                error!(%error, "abuse check failed; answering without it");
                Verdict::Allow
            });
        let response = match verdict {
            Verdict::Silence { reason } => {
                info!(%channel, message = %external_id(id), sender = %sender, reason, "not answered");
                return (
                    format!("silenced: {reason}"),
                    String::new(),
                    ReplyState::Suppressed,
                );
            }
            Verdict::Notice { retry_at } => self.responder.rate_limited(retry_at),
            Verdict::Allow => {
                let response = self.responder.respond(sender, text).await;
                let kind = response.reply.kind;
                if let (Some(code), ReplyKind::Found | ReplyKind::NotFound) = (&response.code, kind)
                {
                    let found = kind == ReplyKind::Found;
                    if let Err(error) = self.guard.record_lookup(sender, code, found, now).await {
                        error!(%error, "cannot record the lookup for abuse control");
                    }
                }
                response
            }
        };
        let reply = &response.reply;
        info!(
            %channel,
            message = %external_id(id),
            sender = %sender,
            outcome = reply.kind.as_str(),
            dossier = response.code.as_ref().map(|c| c.as_str()),
            owner = response.sender_is_owner,
            encoding = reply.info.encoding.name(),
            segments = reply.info.segments,
            latency_us = started.elapsed().as_micros() as u64,
            "answered"
        );
        (
            reply.kind.as_str().to_owned(),
            response.reply.text,
            ReplyState::Queued,
        )
    }

    /// Sends a claimed reply and records what happened.
    async fn send_claimed(&self, reply: &PendingReply) {
        let id = reply.message_id;
        let reply_to = external_id(id);
        let outgoing = OutgoingReply {
            to: &reply.to,
            from: &reply.from,
            text: &reply.text,
            reply_to: &reply_to,
        };
        let result = self.routes.send(&reply.channel, &outgoing).await;
        let recorded = match result {
            Ok(ids) => {
                let state = if reply.channel.starts_with("smsc:") {
                    ReplyState::Accepted
                } else {
                    ReplyState::Sent
                };
                debug!(message = %reply_to, state = state.as_str(), "reply sent");
                self.journal
                    .update_reply(id, state, Some(ids.join(" ")), None, None)
                    .await
            }
            Err(RouteError::NotConnected(channel)) => {
                debug!(message = %reply_to, %channel, "reply waits for the channel to come up");
                return;
            }
            Err(RouteError::Session(SessionError::Refused { status: code, .. }))
                if !is_temporary(code) =>
            {
                warn!(message = %reply_to, status = status_name(code), "reply refused permanently");
                self.journal
                    .update_reply(
                        id,
                        ReplyState::Failed,
                        None,
                        Some(format!("refused with {}", status_name(code))),
                        None,
                    )
                    .await
            }
            Err(error) => {
                let attempts = reply.attempts + 1;
                let max = self.journal.settings().max_attempts;
                if attempts >= max {
                    warn!(message = %reply_to, %error, attempts, "reply failed after the last attempt");
                    self.journal
                        .update_reply(id, ReplyState::Failed, None, Some(error.to_string()), None)
                        .await
                } else {
                    let delay = retry_delay(attempts);
                    debug!(message = %reply_to, %error, attempts, retry_in = ?delay, "reply will be retried");
                    self.journal
                        .update_reply(
                            id,
                            ReplyState::Queued,
                            None,
                            Some(error.to_string()),
                            Some(now_ms() + delay.as_millis() as i64),
                        )
                        .await
                }
            }
        };
        if let Err(error) = recorded {
            error!(%error, message = %reply_to, "cannot record the reply's state; it may be sent again after a restart");
        }
    }

    /// Sends queued replies that are due and whose channel is up.
    async fn sweep(self: &Arc<Self>) {
        let due = match self.journal.due_replies(now_ms(), None, SWEEP_BATCH).await {
            Ok(due) => due,
            Err(error) => {
                error!(%error, "cannot read queued replies");
                return;
            }
        };
        for reply in due {
            if !self.routes.is_up(&reply.channel) || !self.claim(reply.message_id) {
                continue;
            }
            let this = self.clone();
            self.tasks.spawn(async move {
                // Another path may have sent it since the list was read.
                if let Ok(Some(ReplyState::Queued)) =
                    this.journal.reply_state(reply.message_id).await
                {
                    this.send_claimed(&reply).await;
                }
                this.release(reply.message_id);
            });
        }
    }

    /// Answers what a crash left unanswered, then keeps sending queued
    /// replies (every second, and at once when a channel comes up) until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        match self.journal.unanswered().await {
            Ok(messages) if !messages.is_empty() => {
                info!(
                    count = messages.len(),
                    "answering messages recorded before the last stop"
                );
                for m in messages {
                    self.answer_later(m);
                }
            }
            Ok(_) => {}
            Err(error) => error!(%error, "cannot read unanswered messages"),
        }
        let mut channel_up = self.routes.watch();
        loop {
            self.sweep().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = channel_up.changed() => {}
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    }

    /// Waits (up to `timeout`) for replies being answered or sent.
    pub async fn drain(&self, timeout: Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                unfinished = self.tasks.len(),
                "replies still in flight at shutdown; they are sent after the next start"
            );
        }
    }
}

/// Statuses after which the same reply may succeed later.
fn is_temporary(code: u32) -> bool {
    matches!(
        code,
        status::ESME_RTHROTTLED
            | status::ESME_RMSGQFUL
            | status::ESME_RSYSERR
            | status::ESME_RX_T_APPN
            | status::ESME_RUNKNOWNERR
    )
}

/// Delay before attempt `attempts + 1`.
fn retry_delay(attempts: u32) -> Duration {
    FIRST_RETRY_DELAY
        .saturating_mul(1u32 << attempts.min(16))
        .min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        assert_eq!(retry_delay(0), Duration::from_secs(2));
        assert_eq!(retry_delay(1), Duration::from_secs(4));
        assert_eq!(retry_delay(30), MAX_RETRY_DELAY);
    }

    #[test]
    fn throttling_is_temporary_and_a_bad_address_is_not() {
        assert!(is_temporary(status::ESME_RTHROTTLED));
        assert!(is_temporary(status::ESME_RMSGQFUL));
        assert!(!is_temporary(status::ESME_RINVDSTADR));
    }
}
