//! The outbox: turns recorded messages into replies and gets every reply out
//! exactly once per message. A fresh message is answered at once; what a
//! crash or a disconnect left behind (messages without a reply, replies still
//! queued) is picked up at start and whenever a channel comes back up, with
//! backoff between failed attempts. A reply is claimed in memory while it is
//! being sent and its state is checked again before a retry, so two paths
//! never send the same reply. Replies to one citizen leave in the order of
//! their messages ([`CitizenOrder`]), also across throttling and reconnects,
//! and a multipart reply interrupted by a dropped link resumes with the
//! parts not yet accepted. A reply that has not left within
//! `journal.reply_expiry_secs` of its message (a channel that never came
//! back, a gateway down for long) is recorded `expired` and never sent: a
//! status that late would mislead, and the retention purge can then erase it.
//!
//! In a cluster (several gateways on one state database, `crate::cluster`)
//! the outbox answers only its node's messages, hands a reply to a channel
//! only while the node's lease holds and the node is still the incarnation
//! that took the reply in hand, forgets everything it held in memory when
//! another node took this one over, and answers the messages it takes over
//! from a lapsed node ([`Outbox::adopt`]).
//!
//! What a message earns (admission, the reply, the lookup recorded) is the
//! answering policy's ([`crate::answering::Answering`]); the outbox sends
//! what it decides and records how each attempt ended.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::answering::{external_id, AnswerMetrics, Answering, Decision};
use crate::channel::{
    OutgoingReply, OutletError, PartIds, PartLog, PartLogFuture, PartSent, ReplyProgress, Routes,
    SendError,
};
use crate::clock::now_ms;
use crate::cluster::Lease;
use crate::journal::{Journal, PartRecord, PendingReply, ReplyState, Settlement, StoredMessage};
use crate::store::DossierLookup;

/// Messages of one channel being answered at once. When a channel's
/// replies fall behind (a slow or throttling SMSC, a peer that does not
/// read), taking a new message of that channel waits for room, which
/// delays its acknowledgement and so holds the peer to its window: memory
/// stays bounded, the backlog stays in the peer's queue, not ours, and the
/// other channels are answered meanwhile.
const MAX_ANSWERING: usize = 1024;

/// How often queued replies are looked at when nothing else wakes the outbox.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Queued replies handled per sweep.
const SWEEP_BATCH: i64 = 500;
/// First retry delay; doubles per attempt up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest retry delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Answers recorded messages and delivers their replies.
pub struct Outbox<S> {
    journal: Journal,
    policy: Arc<Answering<S>>,
    routes: Arc<Routes>,
    claimed: Mutex<HashSet<i64>>,
    progress: Mutex<HashMap<i64, ReplyProgress>>,
    order: CitizenOrder,
    /// Room for messages being answered, per channel.
    answering: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    tasks: TaskTracker,
    /// This node's lease in a cluster: replies leave only while it holds.
    lease: Option<Lease>,
    /// Wakes the sweep at once (messages taken over).
    wake: Notify,
}

/// Where a reply stands after an attempt.
enum Attempt {
    /// Sent, or failed for good: later replies to the citizen may go.
    Finished,
    /// Still queued for a later attempt: later replies to the citizen wait.
    Retry,
}

/// One citizen's replies in flight or waiting, by message id.
struct CitizenTurns {
    turns: BTreeMap<i64, Turn>,
    changed: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Being answered or sent now.
    Active,
    /// Queued for a retry (throttled too long, link down).
    Held,
}

/// What is ahead of a reply in its citizen's order.
enum Older {
    /// Nothing: it may leave.
    None,
    /// An older reply waits for a retry.
    Held,
    /// Older replies are being sent; notified when one finishes.
    Active(Arc<Notify>),
}

/// Keeps the replies to each citizen in the order of their messages: a
/// reply leaves only when every older reply to the same number has left or
/// failed for good; behind an older reply that waits for a retry, it waits
/// too (queued), and the sweep sends them oldest first.
#[derive(Default)]
struct CitizenOrder {
    citizens: Mutex<HashMap<String, CitizenTurns>>,
}

impl CitizenOrder {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CitizenTurns>> {
        self.citizens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply to message `id` is being worked on.
    fn enter(&self, citizen: &str, id: i64) {
        let mut citizens = self.lock();
        let entry = citizens
            .entry(citizen.to_owned())
            .or_insert_with(|| CitizenTurns {
                turns: BTreeMap::new(),
                changed: Arc::new(Notify::new()),
            });
        entry.turns.insert(id, Turn::Active);
    }

    /// Waits until every older reply to `citizen` has left. False when an
    /// older one waits for a retry: this one must wait behind it.
    async fn wait_turn(&self, citizen: &str, id: i64) -> bool {
        loop {
            let changed = match self.older(citizen, id) {
                Older::None => return true,
                Older::Held => return false,
                Older::Active(changed) => changed,
            };
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked again once registered, so a change in between is not missed.
            if let Older::Active(_) = self.older(citizen, id) {
                notified.await;
            }
        }
    }

    /// What is ahead of reply `id` to `citizen`.
    fn older(&self, citizen: &str, id: i64) -> Older {
        let citizens = self.lock();
        let Some(entry) = citizens.get(citizen) else {
            return Older::None;
        };
        let mut ahead = entry.turns.range(..id).map(|(_, turn)| *turn).peekable();
        if ahead.peek().is_none() {
            Older::None
        } else if ahead.any(|turn| turn == Turn::Held) {
            Older::Held
        } else {
            Older::Active(entry.changed.clone())
        }
    }

    /// The reply to `id` waits for a retry; younger ones wait behind it.
    fn hold(&self, citizen: &str, id: i64) {
        let mut citizens = self.lock();
        if let Some(entry) = citizens.get_mut(citizen) {
            entry.turns.insert(id, Turn::Held);
            entry.changed.notify_waiters();
        }
    }

    /// Forgets every citizen's order (this node was taken over: what it
    /// held is another node's now); waiters are woken.
    fn forget(&self) {
        let mut citizens = self.lock();
        for entry in citizens.values() {
            entry.changed.notify_waiters();
        }
        citizens.clear();
    }

    /// The reply to `id` has left or failed for good.
    fn leave(&self, citizen: &str, id: i64) {
        let mut citizens = self.lock();
        if let Some(entry) = citizens.get_mut(citizen) {
            entry.turns.remove(&id);
            entry.changed.notify_waiters();
            if entry.turns.is_empty() {
                citizens.remove(citizen);
            }
        }
    }
}

impl<S: DossierLookup> Outbox<S> {
    /// An outbox answering as `policy` decides, sending through `routes`.
    pub fn new(journal: Journal, policy: Arc<Answering<S>>, routes: Arc<Routes>) -> Arc<Self> {
        Self::build(journal, policy, routes, None)
    }

    /// An outbox for a node of a cluster holding `lease` (see the module's
    /// documentation).
    pub fn for_node(
        journal: Journal,
        policy: Arc<Answering<S>>,
        routes: Arc<Routes>,
        lease: Lease,
    ) -> Arc<Self> {
        Self::build(journal, policy, routes, Some(lease))
    }

    fn build(
        journal: Journal,
        policy: Arc<Answering<S>>,
        routes: Arc<Routes>,
        lease: Option<Lease>,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            journal,
            policy,
            routes,
            claimed: Mutex::default(),
            progress: Mutex::default(),
            order: CitizenOrder::default(),
            answering: Mutex::default(),
            tasks: TaskTracker::new(),
            lease,
            wake: Notify::new(),
        })
    }

    /// The incarnation of this node now (0 outside a cluster): a reply
    /// taken in hand under one incarnation is not sent under another.
    fn epoch(&self) -> i64 {
        self.lease.as_ref().map_or(0, Lease::incarnation)
    }

    /// Whether a reply taken in hand under `epoch` may be handed to a
    /// channel now.
    fn may_send(&self, epoch: i64) -> bool {
        match &self.lease {
            None => true,
            Some(lease) => lease.may_send() && lease.incarnation() == epoch,
        }
    }

    /// Forgets what this node held in memory: another node took it over.
    fn forget(&self) {
        self.order.forget();
        self.lock_claimed().clear();
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        warn!("this node was taken over: the replies it held are left to the node that took them");
    }

    /// The answers' metrics (`motcua_answers_total`, `motcua_answer_seconds`).
    pub fn metrics(&self) -> &AnswerMetrics {
        self.policy.metrics()
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

    /// Answers a freshly recorded message in the background, once fewer than
    /// [`MAX_ANSWERING`] messages of its channel are being answered (the
    /// caller acknowledges the message after this returns, so a backlog
    /// slows that peer down, and only that channel's).
    pub async fn answer_later(self: &Arc<Self>, stored: StoredMessage) {
        let room = self
            .answering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(stored.message.channel.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERING)))
            .clone();
        let Ok(permit) = room.acquire_owned().await else {
            return; // never closed
        };
        // Taken now, in the order messages were recorded.
        self.order.enter(&stored.message.sender.addr, stored.id);
        let this = self.clone();
        self.tasks.spawn(async move {
            this.answer(stored).await;
            drop(permit);
        });
    }

    /// Computes, records and sends the reply to one message.
    async fn answer(&self, stored: StoredMessage) {
        let id = stored.id;
        let citizen = stored.message.sender.addr.clone();
        let epoch = self.epoch();
        if !self.claim(id) {
            self.order.leave(&citizen, id);
            return;
        }
        if self.overdue(stored.message.received_at) {
            // Recorded long ago (the gateway was down): a status now would
            // answer a question the citizen asked too long ago. Should the
            // write fail, the message stays unanswered for the next start.
            self.expire_claimed(vec![(id, citizen.clone())]).await;
            self.order.leave(&citizen, id);
            return;
        }
        let started = Instant::now();
        let m = &stored.message;
        let decision = self
            .policy
            .decide(
                Some(&external_id(id)),
                &m.channel,
                &m.sender.addr,
                &m.text,
                started,
            )
            .await;
        let Decision {
            outcome,
            text,
            state,
            lookup,
        } = decision;
        if state == ReplyState::Queued {
            // Sent first, recorded once with how the attempt ended: a crash in
            // between leaves the message unanswered in the journal, and the
            // next start answers it.
            let pending = PendingReply {
                message_id: id,
                channel: m.channel.clone(),
                to: m.sender.clone(),
                from: m.recipient.clone(),
                text,
                outcome,
                attempts: 0,
                stored: false,
                lookup,
            };
            self.send_in_turn(&pending, epoch).await;
        } else {
            if let Err(error) = self.journal.queue_reply(id, &outcome, &text, state).await {
                // The message stays without a reply; the next start decides again.
                error!(%error, message_id = %external_id(id), "cannot record the reply");
            }
            self.order.leave(&citizen, id);
        }
        self.release(id);
    }

    /// Records that `reply` waits for a later attempt, if it is not stored yet.
    async fn store_waiting(&self, reply: &PendingReply) {
        if reply.stored {
            return;
        }
        let waiting = Settlement {
            state: ReplyState::Queued,
            left_on: None,
            error: None,
            next_attempt_at: Some(now_ms()),
            counts: false,
        };
        if let Err(error) = self.journal.settle_reply(reply, waiting).await {
            error!(%error, message_id = %external_id(reply.message_id), "cannot record the waiting reply; the next start answers the message again");
        }
    }

    /// Sends a claimed reply once every older reply to the citizen has left.
    async fn send_in_turn(&self, reply: &PendingReply, epoch: i64) {
        let citizen = &reply.to.addr;
        let id = reply.message_id;
        if !self.order.wait_turn(citizen, id).await {
            // Queued behind an older reply that waits for a retry; the sweep
            // sends both, oldest first.
            debug!(message_id = %external_id(id), "reply waits behind an older reply to the same citizen");
            self.store_waiting(reply).await;
            self.order.hold(citizen, id);
            return;
        }
        if self.older_elsewhere(reply).await {
            // An older message of the citizen's, on another node, still
            // waits for its reply: this one waits too, and the sweep tries
            // again.
            debug!(message_id = %external_id(id), "reply waits behind an older reply to the same citizen on another node");
            self.store_waiting(reply).await;
            self.order.hold(citizen, id);
            return;
        }
        match self.send_claimed(reply, epoch).await {
            Attempt::Finished => self.order.leave(citizen, id),
            Attempt::Retry => self.order.hold(citizen, id),
        }
    }

    /// In a cluster, whether an older message of the same citizen recorded
    /// by another node still waits for its reply (see
    /// [`Journal::older_waiting_elsewhere`]). A failed read lets the reply go.
    async fn older_elsewhere(&self, reply: &PendingReply) -> bool {
        let Some(lease) = &self.lease else {
            return false;
        };
        if !lease.others_alive() || self.journal.db().node().is_empty() {
            return false;
        }
        let window_ms = (self.journal.settings().reply_expiry_secs as i64).saturating_mul(1000);
        match self
            .journal
            .older_waiting_elsewhere(&reply.to.addr, reply.message_id, now_ms(), window_ms)
            .await
        {
            Ok(waiting) => waiting,
            Err(error) => {
                warn!(%error, "cannot check the citizen's older messages on other nodes");
                false
            }
        }
    }

    /// Sends a claimed reply and records what happened.
    async fn send_claimed(&self, reply: &PendingReply, epoch: i64) -> Attempt {
        let id = reply.message_id;
        let reply_to = external_id(id);
        if !self.may_send(epoch) {
            // The lease lapsed (the database out of reach) or another node
            // took this one over: the reply waits, recorded queued, for
            // whichever node holds its message. Recorded whatever the
            // incarnation now: the journal writes nothing about a message
            // another node took over, and one this node recorded after it
            // was taken over (read from its socket on waking, before it
            // learnt) is still its own, answered by the sweep once it has
            // joined again. Left unrecorded, such a message would wait
            // unanswered until the next start.
            debug!(message_id = %reply_to, "this node's lease does not hold: the reply waits");
            self.store_waiting(reply).await;
            return Attempt::Retry;
        }
        let outgoing = OutgoingReply {
            to: &reply.to,
            from: &reply.from,
            text: &reply.text,
            reply_to: &reply_to,
        };
        let mut progress = self.take_progress(id);
        if !progress.is_started() && reply.stored {
            // Cut short before a restart: where its parts got to.
            progress = self.recorded_progress(id).await;
        }
        let log = JournalParts {
            journal: &self.journal,
            reply,
        };
        let result = self
            .routes
            .send(&reply.channel, &outgoing, &mut progress, &log)
            .await;
        let settle = |state, left_on, error, next_attempt_at| Settlement {
            state,
            left_on,
            error,
            next_attempt_at,
            counts: true,
        };
        let (settlement, attempt) = match result {
            Ok(sent) => {
                debug!(message_id = %reply_to, channel = %sent.channel, parts = sent.ids.len(), "reply sent");
                let state = if sent.by_carrier {
                    ReplyState::Accepted
                } else {
                    ReplyState::Sent
                };
                (
                    settle(state, Some((sent.channel, sent.ids)), None, None),
                    Attempt::Finished,
                )
            }
            Err(SendError::NotConnected(channel)) => {
                debug!(message_id = %reply_to, %channel, "reply waits for the channel to come up");
                self.keep_progress(id, progress);
                self.store_waiting(reply).await;
                return Attempt::Retry;
            }
            Err(SendError::Failed(cause)) => {
                let error = match &cause {
                    OutletError::Refused { status, .. } => {
                        warn!(message_id = %reply_to, status, "reply refused permanently");
                        format!("refused with {status}")
                    }
                    _ => {
                        warn!(message_id = %reply_to, error = %cause, "reply refused permanently");
                        cause.to_string()
                    }
                };
                (
                    settle(ReplyState::Failed, None, Some(error), None),
                    Attempt::Finished,
                )
            }
            Err(SendError::RetryLater(cause)) => {
                let attempts = reply.attempts + 1;
                let max = self.journal.settings().max_attempts;
                if attempts >= max {
                    warn!(message_id = %reply_to, error = %cause, attempts, "reply failed after the last attempt");
                    (
                        settle(ReplyState::Failed, None, Some(cause.to_string()), None),
                        Attempt::Finished,
                    )
                } else {
                    // An outlet that went away (a dropped link, a modem
                    // gone): again as soon as one is up (the sweep runs when
                    // one registers). Otherwise back off.
                    let delay = if cause.is_gone() {
                        Duration::ZERO
                    } else {
                        retry_delay(attempts)
                    };
                    match &cause {
                        OutletError::Refused { status, .. } => {
                            info!(message_id = %reply_to, status, attempts, retry_in = ?delay, "reply refused for now; it will be retried");
                        }
                        _ if cause.is_link() => {
                            debug!(message_id = %reply_to, error = %cause, attempts, retry_in = ?delay, "reply will be retried");
                        }
                        _ => {
                            info!(message_id = %reply_to, error = %cause, attempts, retry_in = ?delay, "reply not sent; it will be retried");
                        }
                    }
                    self.keep_progress(id, progress);
                    (
                        settle(
                            ReplyState::Queued,
                            None,
                            Some(cause.to_string()),
                            Some(now_ms() + delay.as_millis() as i64),
                        ),
                        Attempt::Retry,
                    )
                }
            }
        };
        let recorded = self.journal.settle_reply(reply, settlement).await;
        if let Err(error) = recorded {
            error!(%error, message_id = %reply_to, "cannot record the reply's state; it may be sent again after a restart");
        }
        attempt
    }

    /// The progress the journal recorded for reply `id` (parts sent one at
    /// a time before a crash); none when it has none.
    async fn recorded_progress(&self, id: i64) -> ReplyProgress {
        match self.journal.recorded_parts(id).await {
            Ok(Some(recorded)) => {
                let mut ids = PartIds::new();
                for (part, peer_id) in recorded.sent {
                    let at = (part as usize).saturating_sub(1);
                    if ids.len() <= at {
                        ids.resize(at + 1, None);
                    }
                    ids[at] = Some(peer_id);
                }
                info!(message_id = %external_id(id), parts_sent = ids.iter().flatten().count(), "resuming a reply cut short by a restart");
                ReplyProgress::recorded(recorded.reference, ids)
            }
            Ok(None) => ReplyProgress::default(),
            Err(error) => {
                error!(%error, message_id = %external_id(id), "cannot read how far the reply got; it is sent whole");
                ReplyProgress::default()
            }
        }
    }

    fn take_progress(&self, id: i64) -> ReplyProgress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
            .unwrap_or_default()
    }

    fn keep_progress(&self, id: i64, progress: ReplyProgress) {
        if progress.is_started() {
            self.progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, progress);
        }
    }

    /// True when a message received at `received_at` (Unix ms) may no
    /// longer be answered (`journal.reply_expiry_secs`).
    fn overdue(&self, received_at: i64) -> bool {
        let expiry = self.journal.settings().reply_expiry();
        received_at < now_ms().saturating_sub(expiry.as_millis() as i64)
    }

    /// Expires the queued replies that waited longer than
    /// `journal.reply_expiry_secs` (those being sent right now are left for
    /// the next pass).
    async fn expire_overdue(&self) {
        let expiry = self.journal.settings().reply_expiry();
        let cutoff = now_ms().saturating_sub(expiry.as_millis() as i64);
        let overdue = match self.journal.overdue_replies(cutoff).await {
            Ok(overdue) => overdue,
            Err(error) => {
                error!(%error, "cannot read the replies waiting too long");
                return;
            }
        };
        let claimed = overdue
            .into_iter()
            .filter(|(id, _)| self.claim(*id))
            .collect();
        self.expire_claimed(claimed).await;
    }

    /// Records the claimed replies (message id, citizen) as expired, then
    /// lets younger replies to the same citizens go. Should the write fail,
    /// a queued reply stays held (and overdue: the next pass tries again).
    async fn expire_claimed(&self, replies: Vec<(i64, String)>) {
        if replies.is_empty() {
            return;
        }
        let ids = replies.iter().map(|(id, _)| *id).collect();
        let recorded = self.journal.expire_replies(ids).await;
        match &recorded {
            Ok(0) => {}
            Ok(expired) => {
                self.policy.metrics().replies_expired(*expired);
                info!(
                    expired,
                    reply_expiry_secs = self.journal.settings().reply_expiry_secs,
                    "replies not handed to their channel within journal.reply_expiry_secs expired; they are not sent"
                );
            }
            Err(error) => {
                error!(%error, "cannot record expired replies; tried again at the next pass")
            }
        }
        for (id, citizen) in replies {
            if recorded.is_ok() {
                self.order.leave(&citizen, id);
                self.progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            }
            self.release(id);
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
        // Oldest first: each citizen's replies enter their order before any is sent.
        for reply in due {
            if !self.routes.can_send(&reply.channel, &reply.to) || !self.claim(reply.message_id) {
                continue;
            }
            self.order.enter(&reply.to.addr, reply.message_id);
            let this = self.clone();
            let epoch = self.epoch();
            self.tasks.spawn(async move {
                // Another path may have sent it since the list was read.
                if let Ok(Some(ReplyState::Queued)) =
                    this.journal.reply_state(reply.message_id).await
                {
                    this.send_in_turn(&reply, epoch).await;
                } else {
                    this.order.leave(&reply.to.addr, reply.message_id);
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
                    self.answer_later(m).await;
                }
            }
            Ok(_) => {}
            Err(error) => error!(%error, "cannot read unanswered messages"),
        }
        let mut channel_up = self.routes.watch();
        let mut taken_over = self.lease.as_ref().map(Lease::taken_over);
        let reassembly = Duration::from_secs(self.journal.settings().reassembly_timeout_secs);
        loop {
            self.join_stale_fragments(reassembly).await;
            self.expire_overdue().await;
            self.sweep().await;
            let taken = async {
                match taken_over.as_mut() {
                    Some(receiver) => receiver.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = channel_up.changed() => self.claim_bound_peers().await,
                true = taken => self.forget(),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    }

    /// In a cluster, takes over from the other nodes what waits for the
    /// listener peers bound here now ([`crate::cluster::claim_channel`]),
    /// and answers it.
    async fn claim_bound_peers(self: &Arc<Self>) {
        let Some(lease) = &self.lease else {
            return;
        };
        let window = Duration::from_secs(self.journal.settings().reply_expiry_secs);
        let mut bound: Vec<String> = self
            .routes
            .links()
            .into_iter()
            .filter(|link| link.role == "listener" && link.open)
            .map(|link| link.channel)
            .collect();
        bound.sort();
        bound.dedup();
        for channel in bound {
            match crate::cluster::claim_channel(self.journal.pool(), lease, &channel, window).await
            {
                Ok(ids) if !ids.is_empty() => self.adopt(&ids).await,
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, %channel, "cannot take over the replies waiting for a peer bound here")
                }
            }
        }
    }

    /// Answers messages this node took over from another (their ids): those
    /// without a reply are answered now; those with a queued reply are sent
    /// by the sweep, woken now.
    pub async fn adopt(self: &Arc<Self>, message_ids: &[i64]) {
        match self.journal.unanswered_among(message_ids).await {
            Ok(messages) => {
                if !messages.is_empty() {
                    info!(
                        count = messages.len(),
                        "answering messages taken over from another node"
                    );
                }
                for m in messages {
                    self.answer_later(m).await;
                }
            }
            Err(error) => error!(%error, "cannot read the messages taken over"),
        }
        self.wake.notify_one();
    }

    /// Answers concatenated messages whose missing parts did not come within
    /// `timeout` from the parts that did.
    async fn join_stale_fragments(self: &Arc<Self>, timeout: Duration) {
        let cutoff = now_ms() - timeout.as_millis() as i64;
        match self.journal.join_stale_fragments(cutoff).await {
            Ok(joined) => {
                for stored in joined {
                    info!(channel = %stored.message.channel, message_id = %external_id(stored.id), "parts missing after the reassembly timeout; answering the parts received");
                    self.answer_later(stored).await;
                }
            }
            Err(error) => error!(%error, "cannot join the parts of concatenated messages"),
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

/// Records how far `reply` got on an outlet (a modem) that sends one part
/// at a time: the reference of a multipart reply before its first part
/// leaves, and each part before the next, so that a reply cut short by a
/// crash resumes with its missing parts under the same reference. A
/// single-part reply and the last part are left to the settlement, written
/// as soon as the send returns.
struct JournalParts<'a> {
    journal: &'a Journal,
    reply: &'a PendingReply,
}

impl JournalParts<'_> {
    async fn record(&self, reference: u16, sent: Option<(u32, String)>) {
        let part = sent.as_ref().map(|(number, _)| *number);
        let record = PartRecord {
            channel: self.reply.channel.clone(),
            reference,
            sent,
        };
        if let Err(error) = self.journal.record_part_sent(self.reply, record).await {
            error!(%error, message_id = %external_id(self.reply.message_id), ?part, "cannot record how far the reply got; after a crash it may go again");
        }
    }
}

impl PartLog for JournalParts<'_> {
    fn starting(&self, reference: u16, total: usize) -> PartLogFuture<'_> {
        Box::pin(async move {
            if total > 1 {
                self.record(reference, None).await;
            }
        })
    }

    fn part_sent<'a>(&'a self, part: PartSent<'a>) -> PartLogFuture<'a> {
        Box::pin(async move {
            if part.index + 1 < part.total {
                let sent = (part.index as u32 + 1, part.id.to_owned());
                self.record(part.reference, Some(sent)).await;
            }
        })
    }
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

    #[tokio::test]
    async fn replies_to_one_citizen_wait_for_older_ones() {
        let order = Arc::new(CitizenOrder::default());
        order.enter("84911", 1);
        order.enter("84911", 2);
        order.enter("84922", 3);
        assert!(
            order.wait_turn("84922", 3).await,
            "another citizen never waits"
        );
        let waiter = {
            let order = order.clone();
            tokio::spawn(async move { order.wait_turn("84911", 2).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        order.leave("84911", 1);
        assert!(waiter.await.unwrap());
        // Behind a held (retrying) reply, a younger one is held too.
        order.enter("84911", 4);
        order.hold("84911", 2);
        assert!(!order.wait_turn("84911", 4).await);
    }

    /// A node taken over while frozen reads a message from its socket on
    /// waking (before its heartbeat tells it), and joins the cluster again
    /// while that message's reply waits its turn: the message is still this
    /// node's (it was recorded after the takeover), so its reply is kept
    /// queued for the sweep, never left unanswered until the next start.
    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn a_reply_caught_by_a_takeover_and_a_rejoin_stays_queued_for_the_sweep() {
        use crate::abuse::{AbuseGuard, RateLimitSettings};
        use crate::address::Address;
        use crate::answering::{AnswerMetrics, Answering};
        use crate::cluster::{Membership, NodeName};
        use crate::db::testing::TestDb;
        use crate::journal::{JournalSettings, NewMessage, Recorded};
        use crate::reply::{Renderer, ReplySettings};
        use crate::responder::Responder;
        use crate::store::SqliteStore;

        const LEASE: Duration = Duration::from_millis(1_000);
        const WINDOW: Duration = Duration::from_secs(24 * 3600);
        const CITIZEN: &str = "84912345678";
        let test_db = TestDb::postgres().await;
        let db = test_db.db.clone();
        let join = |node: &'static str| {
            Membership::join(
                db.pool().clone(),
                NodeName::parse(node).unwrap(),
                LEASE,
                WINDOW,
            )
        };
        let a = join("gw-a").await.unwrap();
        let b = join("gw-b").await.unwrap();
        assert!(b.heartbeat("{}").await.unwrap());
        // B's lease lapses (frozen); A takes it over.
        let crate::db::StatePool::Postgres(pool) = db.pool() else {
            unreachable!("a PostgreSQL test database")
        };
        sqlx::query("UPDATE nodes SET lease_until = 0 WHERE name = 'gw-b'")
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(a.take_over_lapsed().await.unwrap().len(), 1);

        // B, woken, records a message it read from its socket.
        let journal = Journal::start(db.clone().with_node("gw-b"), JournalSettings::default())
            .await
            .unwrap();
        let recorded = journal
            .record(NewMessage {
                channel: "smsc:viettel".into(),
                peer_ref: None,
                peer_ref_lasting: false,
                sender: Address::new(CITIZEN, 1, 1),
                recipient: Address::new("8058", 0, 1),
                text: "xin chao".into(),
                received_at: now_ms(),
            })
            .await
            .unwrap();
        let Recorded::New(id) = recorded else {
            panic!("recorded anew: {recorded:?}")
        };
        let renderer = Arc::new(Renderer::load(None, ReplySettings::default()).unwrap());
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let guard = AbuseGuard::open(RateLimitSettings::default(), db.pool().clone())
            .await
            .unwrap();
        let policy = Arc::new(Answering::new(
            Arc::new(Responder::new(store, renderer)),
            guard,
            journal.clone(),
            AnswerMetrics::default(),
        ));
        let outbox = Outbox::for_node(
            journal.clone(),
            policy,
            Arc::new(Routes::default()),
            b.lease(),
        );
        // Its answer starts under the incarnation B had, and waits behind
        // an older reply to the same citizen still being sent.
        outbox.order.enter(CITIZEN, 0);
        let stored = journal
            .unanswered()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.id == id)
            .expect("unanswered");
        outbox.answer_later(stored).await;
        tokio::task::yield_now().await;

        // B's heartbeat learns of the takeover; B joins again.
        assert!(!b.heartbeat("{}").await.unwrap(), "B was taken over");
        b.rejoin().await.unwrap();
        assert!(b.lease().may_send(), "B holds a new lease");
        outbox.order.leave(CITIZEN, 0);
        outbox.tasks.close();
        outbox.tasks.wait().await;

        assert_eq!(
            journal.reply_state(id).await.unwrap(),
            Some(ReplyState::Queued),
            "the reply is recorded waiting"
        );
        let due = journal.due_replies(now_ms() + 1, None, 10).await.unwrap();
        assert!(
            due.iter().any(|reply| reply.message_id == id),
            "the sweep of B sends it"
        );
        journal.close().await;
        test_db.finish().await;
    }
}
