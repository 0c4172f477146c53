//! The gateway in the SMSC role: peers (aggregators, test tools, the CLI)
//! bind with an account from config, and their `submit_sm` is a citizen's
//! message (source_addr = the citizen). It is acknowledged only once the
//! handler has made it durable. Connections that can receive are registered
//! in [`Routes`] as channel `listener:<account>`; replies reach the account
//! as `deliver_sm` on any of them, tagged with the answered message's id.
//! A `data_sm` (SMPP 3.4 §4.7) is taken like a `submit_sm` and answered
//! with `data_sm_resp`; before a bind that may send, either is refused with
//! ESME_RINVBNDSTS. A `submit_sm` or `data_sm` carrying `ussd_service_op` is a USSD turn
//! ([`super::ussd`]): acknowledged at once, not journaled, answered on the
//! same channel with the same command (`data_sm` for `data_sm`).
//!
//! Peers may misbehave or be hostile; [`super::listener_guard`] decides, and
//! this loop applies: a connection from outside `allowed_ips`, or past
//! `max_connections` / `max_connections_per_ip`, is closed unanswered as
//! soon as it is accepted; one that does not bind within `bind_timeout_secs` is closed;
//! binds are refused for a locked-out address, bad credentials, an account's
//! own `allowed_ips` or its `max_binds`; a submit_sm over the account's
//! `max_tps` (or data_sm) is answered ESME_RTHROTTLED and not recorded; a bound session
//! silent for `idle_timeout_secs` is unbound. Past `inbound_window`
//! messages being recorded, a session stops reading its socket until one is
//! done. An acknowledgement the peer is seen to read (it answered a later
//! request on the connection) is reported to the handler: copies of that
//! message are then new messages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::listener_guard::{
    Authorized, BindRefusal, BindSlot, ConnectionRefusal, ConnectionSlot, ListenerGuard,
};
use super::outlet::{ReplyCommand, SmppOutlet};
use super::pdu::{command_id, status, status_name, tag, BindKind, Body, Pdu, ShortMessage, Tlv};
use super::session::{
    answer_unsupported, next_event, spawn_drain, Connection, Event, InboundWindow, Link,
};
use super::ussd;
use super::{incoming_sms, ListenerSettings, SessionSettings};
use crate::channel::{Receipt, Routes, SmsHandler};

struct Shared<H> {
    settings: ListenerSettings,
    session: SessionSettings,
    guard: ListenerGuard,
    handler: Arc<H>,
    routes: Arc<Routes>,
    next_session: AtomicU64,
}

/// A session's bind: the account (name and index in the settings), how it
/// bound, and its place among the account's `max_binds`.
struct Bound {
    account: String,
    index: usize,
    kind: BindKind,
    _slot: BindSlot,
}

/// The channel name of an account's connections.
pub fn channel_of(account: &str) -> String {
    format!("listener:{account}")
}

/// The SMPP listener, bound and ready to run.
pub struct Listener<H> {
    socket: TcpListener,
    shared: Arc<Shared<H>>,
}

impl<H: SmsHandler> Listener<H> {
    /// Binds the listening socket (port 0 picks a free port).
    pub async fn bind(
        settings: ListenerSettings,
        session: SessionSettings,
        handler: Arc<H>,
        routes: Arc<Routes>,
    ) -> std::io::Result<Self> {
        let socket = TcpListener::bind(settings.bind).await?;
        Ok(Listener {
            socket,
            shared: Arc::new(Shared {
                guard: ListenerGuard::new(&settings),
                settings,
                session,
                handler,
                routes,
                next_session: AtomicU64::new(1),
            }),
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts peers until `shutdown`; then every session stops taking
    /// messages, finishes recording those in flight, waits for `release`
    /// (replies in flight sent), unbinds and closes before this returns.
    pub async fn run(self, shutdown: CancellationToken, release: CancellationToken) {
        let sessions = TaskTracker::new();
        let mut not_allowed = RefusalLog::default();
        let mut too_many = RefusalLog::default();
        let mut too_many_from = RefusalLog::default();
        info!(address = %self.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), accounts = self.shared.settings.accounts.len(), "SMPP listener accepting binds");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let slot = match self.shared.guard.admit_connection(peer.ip()) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                // Closed unanswered, before anything is read or allocated.
                                drop(stream);
                                let (log, limit) = match refusal {
                                    ConnectionRefusal::NotAllowed => (&mut not_allowed, None),
                                    ConnectionRefusal::TooMany { limit } => (&mut too_many, Some(limit)),
                                    ConnectionRefusal::TooManyFromAddress { limit } => (&mut too_many_from, Some(limit)),
                                };
                                log.note(peer, refusal, limit);
                                continue;
                            }
                        };
                        let conn = match Connection::new(stream, &self.shared.session) {
                            Ok(c) => c,
                            Err(error) => { warn!(%peer, %error, "cannot set up connection"); continue; }
                        };
                        let id = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
                        let span = tracing::info_span!("smpp_peer", session = id, %peer);
                        sessions.spawn(serve(conn, id, self.shared.clone(), shutdown.clone(), release.clone(), slot).instrument(span));
                    }
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }
        drop(self.socket);
        sessions.close();
        sessions.wait().await;
        info!("SMPP listener stopped");
    }
}

/// Logs connections closed as soon as they were accepted, one log per
/// reason: one WARN at most every [`RefusalLog::EVERY`] with the count left
/// out since (those at DEBUG), so that a flood of connections does not
/// flood the log.
#[derive(Default)]
struct RefusalLog {
    last_warn: Option<std::time::Instant>,
    unlogged: u64,
}

impl RefusalLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn note(&mut self, peer: SocketAddr, refusal: ConnectionRefusal, limit: Option<usize>) {
        let now = std::time::Instant::now();
        if self
            .last_warn
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            self.unlogged += 1;
            debug!(%peer, "connection closed unanswered: {refusal}");
            return;
        }
        match refusal {
            ConnectionRefusal::NotAllowed => warn!(
                %peer,
                suppressed = self.unlogged,
                "connection closed unanswered: {refusal}"
            ),
            _ => warn!(
                %peer,
                limit,
                suppressed = self.unlogged,
                "connection refused: {refusal}"
            ),
        }
        self.last_warn = Some(now);
        self.unlogged = 0;
    }
}

/// One peer connection.
async fn serve<H: SmsHandler>(
    mut conn: Connection,
    session_id: u64,
    shared: Arc<Shared<H>>,
    shutdown: CancellationToken,
    release: CancellationToken,
    _slot: ConnectionSlot,
) {
    debug!("peer connected");
    let link = conn.link.clone();
    let mut window = InboundWindow::new(shared.session.inbound_window);
    let peer_ip = conn.peer.ip();
    let receiving = TaskTracker::new();
    let drained = CancellationToken::new();
    let bind_deadline = tokio::time::Instant::now() + shared.settings.bind_timeout();
    let idle_timeout = shared.settings.idle_timeout();
    let mut bound: Option<Bound> = None;
    let mut draining = false;
    let mut throttling = false;
    loop {
        let idle_at = conn.last_frame() + idle_timeout;
        let request = tokio::select! {
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if bound.is_some() {
                    spawn_drain(receiving.clone(), link.clone(), shared.session.drain_timeout(), release.clone(), drained.clone());
                } else {
                    break;
                }
                continue;
            }
            _ = drained.cancelled() => break,
            _ = tokio::time::sleep_until(bind_deadline), if bound.is_none() && !draining => {
                warn!(bind_timeout_secs = shared.settings.bind_timeout_secs, "connection closed: no bind within bind_timeout_secs");
                break;
            }
            _ = tokio::time::sleep_until(idle_at), if bound.is_some() && !draining => {
                // A response may have arrived meanwhile (it does not end next_request).
                if conn.last_frame() + idle_timeout <= tokio::time::Instant::now() {
                    let system_id = bound.as_ref().map(|b| b.account.as_str()).unwrap_or_default();
                    info!(system_id, idle_timeout_secs = shared.settings.idle_timeout_secs, "no PDU within idle_timeout_secs; unbinding");
                    draining = true;
                    spawn_unbind(link.clone(), drained.clone());
                }
                continue;
            }
            // Past the inbound window, nothing more is read from the socket
            // until a message being recorded is done (TCP holds the peer).
            _ = window.open(), if !window.is_open() => continue,
            event = next_event(&mut conn), if window.is_open() => event,
        };
        let pdu = match request {
            None => break,
            Some(Event::AcksRead(message_ids)) => {
                shared.handler.acknowledgements_read(message_ids).await;
                continue;
            }
            Some(Event::Request(pdu)) => pdu,
        };
        let arrived = tokio::time::Instant::now();
        let seq = pdu.sequence_number;
        match pdu.body {
            Body::Bind(bind) => {
                let kind = bind.kind;
                let resp = |status: u32, system_id: String| {
                    Pdu::new(
                        seq,
                        Body::BindResp {
                            kind,
                            system_id,
                            tlvs: vec![Tlv {
                                tag: tag::SC_INTERFACE_VERSION,
                                value: vec![0x34],
                            }],
                        },
                    )
                    .with_status(status)
                };
                if bound.is_some() || draining {
                    let _ = link.send(resp(status::ESME_RALYBND, String::new())).await;
                    continue;
                }
                let verdict = shared.guard.authorize_bind(
                    peer_ip,
                    &bind.system_id,
                    &bind.password,
                    std::time::Instant::now(),
                );
                match verdict {
                    Ok(Authorized {
                        account: index,
                        slot,
                    }) => {
                        let account = &shared.settings.accounts[index];
                        let tag_replies = account.reply_to_tlv;
                        let account = account.system_id.clone();
                        info!(system_id = %account, bind = kind.as_str(), "peer bound");
                        if kind.can_receive() {
                            shared.routes.register(
                                &channel_of(&account),
                                session_id,
                                Arc::new(SmppOutlet {
                                    link: link.clone(),
                                    command: ReplyCommand::DeliverSm,
                                    source_override: None,
                                    source_ton: None,
                                    source_npi: None,
                                    tag_replies,
                                    pacing: Default::default(),
                                    long_messages: Default::default(),
                                    alphabet: shared.session.default_alphabet,
                                }),
                            );
                        }
                        bound = Some(Bound {
                            account,
                            index,
                            kind,
                            _slot: slot,
                        });
                        let _ = link
                            .send(resp(status::ESME_ROK, shared.settings.system_id.clone()))
                            .await;
                    }
                    Err(refused) => {
                        let refusal = refused.reason.status();
                        // The system_id is the peer's text: logged escaped. Never the password.
                        match refused.reason {
                            BindRefusal::LockedOut => {
                                debug!(system_id = ?bind.system_id, "bind refused: address locked out")
                            }
                            reason => {
                                warn!(system_id = ?bind.system_id, status = status_name(refusal), %reason, "bind refused")
                            }
                        }
                        if let Some((address, _until)) = refused.lockout_began {
                            warn!(
                                %address,
                                failures = shared.settings.lockout_after_failures,
                                window_secs = shared.settings.lockout_window_secs,
                                lockout_secs = shared.settings.lockout_secs,
                                "binds from this address locked out after repeated failed binds"
                            );
                        }
                        let _ = link.send(resp(refusal, String::new())).await;
                    }
                }
            }
            // SMPP 3.4 §4.7: data_sm may carry a citizen's message as
            // submit_sm does (the text in message_payload); both take one path.
            Body::SubmitSm(sm) | Body::DataSm(sm) => {
                let ack = if pdu.command_id == command_id::DATA_SM {
                    Acknowledge::DataSm(seq)
                } else {
                    Acknowledge::SubmitSm(seq)
                };
                let (account, index) = match &bound {
                    Some(b) if b.kind.can_send() => (b.account.clone(), b.index),
                    _ => {
                        let _ = link
                            .send(ack.with(String::new(), status::ESME_RINVBNDSTS))
                            .await;
                        continue;
                    }
                };
                if draining {
                    let _ = link
                        .send(ack.with(String::new(), status::ESME_RMSGQFUL))
                        .await;
                    continue;
                }
                if !shared.guard.try_submit(index) {
                    if !throttling {
                        warn!(
                            system_id = %account,
                            max_tps = shared.settings.accounts[index].max_tps,
                            command = ack.command(),
                            "message over the account's max_tps answered ESME_RTHROTTLED, not recorded (logged once per burst)"
                        );
                        throttling = true;
                    }
                    let _ = link
                        .send(ack.with(String::new(), status::ESME_RTHROTTLED))
                        .await;
                    continue;
                }
                throttling = false;
                let channel = channel_of(&account);
                let as_data_sm = matches!(ack, Acknowledge::DataSm(_));
                if let Some(turn) =
                    ussd::turn_from(&channel, &sm, as_data_sm, shared.session.default_alphabet)
                {
                    let id = ussd::acknowledgement_id();
                    let _ = link.send(ack.with(id, status::ESME_ROK)).await;
                    let permit = window.take();
                    let turn =
                        ussd::serve_turn(shared.handler.clone(), shared.routes.clone(), turn);
                    receiving.spawn(
                        async move {
                            turn.await;
                            drop(permit);
                        }
                        .in_current_span(),
                    );
                    continue;
                }
                if bound.as_ref().is_some_and(|b| b.kind.can_receive()) {
                    // The reply to this citizen goes back on this connection.
                    shared
                        .routes
                        .note_origin(&channel, &sm.source_addr, session_id);
                }
                let message = Received {
                    account,
                    ack,
                    arrived,
                    _permit: window.take(),
                };
                receiving.spawn(receive(shared.clone(), link.clone(), message, sm));
            }
            Body::EnquireLink => {
                let _ = link.send(Pdu::new(seq, Body::EnquireLinkResp)).await;
            }
            Body::Unbind => {
                // Give the account's bind back before answering, so that a
                // peer rebinding at once is not refused for max_binds.
                if let Some(b) = bound.take() {
                    shared
                        .routes
                        .unregister(&channel_of(&b.account), session_id);
                }
                let _ = link.send(Pdu::new(seq, Body::UnbindResp)).await;
                info!("peer unbound");
                break;
            }
            // Requests this role does not serve; responses were routed by next_request.
            _ => {
                if let Some(answer) = answer_unsupported(&pdu) {
                    let _ = link.send(answer).await;
                }
            }
        }
    }
    if let Some(b) = bound.take() {
        shared
            .routes
            .unregister(&channel_of(&b.account), session_id);
    }
    link.fail_pending();
    debug!("peer session closed");
}

/// Unbinds an idle session: sends unbind, waits for the response (up to
/// the response timeout; the read loop routes it), then cancels `done` so
/// the read loop closes the connection.
fn spawn_unbind(link: Link, done: CancellationToken) {
    tokio::spawn(
        async move {
            if let Err(error) = link.request(Body::Unbind).await {
                debug!(%error, "unbind of an idle session not acknowledged; closing");
            }
            done.cancel();
        }
        .in_current_span(),
    );
}

/// A message taken from the peer, while it is being recorded.
struct Received {
    account: String,
    ack: Acknowledge,
    /// When it was read.
    arrived: tokio::time::Instant,
    /// Its place in the session's inbound window, given back when done.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Hands one submitted message to the handler and acknowledges it once the
/// handler has made it durable (or refuses it for now, so the peer retries).
/// The acknowledgement is tracked: once the peer is seen to have read it, a
/// copy of the message is a new message.
async fn receive<H: SmsHandler>(
    shared: Arc<Shared<H>>,
    link: Link,
    message: Received,
    sm: ShortMessage,
) {
    let Received {
        account,
        ack,
        arrived,
        _permit,
    } = message;
    let incoming = incoming_sms(channel_of(&account), &sm, shared.session.default_alphabet);
    let message_id = match shared.handler.receive(incoming).await {
        Ok(Receipt::Accepted { message_id }) => message_id,
        Ok(Receipt::Duplicate { message_id }) => {
            debug!(%message_id, "redelivered message acknowledged again, not answered twice");
            message_id
        }
        Err(error) => {
            warn!(%error, "message refused for now; the peer will retry");
            let _ = link
                .send(ack.with(String::new(), status::ESME_RMSGQFUL))
                .await;
            return;
        }
    };
    let resp = ack.with(message_id.clone(), status::ESME_ROK);
    let _ = link.acknowledge(resp, message_id, arrived).await;
}

/// The response a peer's message is owed: `submit_sm_resp` or
/// `data_sm_resp`, by its sequence number.
#[derive(Debug, Clone, Copy)]
enum Acknowledge {
    SubmitSm(u32),
    DataSm(u32),
}

impl Acknowledge {
    /// The command being answered, for logs.
    fn command(self) -> &'static str {
        match self {
            Acknowledge::SubmitSm(_) => "submit_sm",
            Acknowledge::DataSm(_) => "data_sm",
        }
    }

    fn with(self, message_id: String, status: u32) -> Pdu {
        match self {
            Acknowledge::SubmitSm(sequence) => Pdu::submit_sm_resp(sequence, message_id, status),
            Acknowledge::DataSm(sequence) => Pdu::data_sm_resp(sequence, message_id, status),
        }
    }
}
