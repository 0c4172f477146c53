//! The gateway in the SMSC role: peers (aggregators, test tools, the CLI)
//! bind with an account from config, their `submit_sm` is a citizen's
//! message (source_addr = the citizen), and the reply goes back to that
//! account as `deliver_sm` — on the same connection when it can receive,
//! otherwise on another receiving connection of the same account.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::pdu::{status, tag, Bind, BindKind, Body, Pdu, ShortMessage, Tlv};
use super::session::{
    answer_unsupported, next_request, send_text, spawn_drain, Connection, Link, ReplyAddress,
    ReplyCommand,
};
use super::text::decode_text;
use super::{IncomingSms, ListenerSettings, SessionSettings, SmsHandler};

/// A bound peer that can receive deliver_sm.
struct Receiver {
    session: u64,
    link: Link,
}

struct Shared<H> {
    settings: ListenerSettings,
    session: SessionSettings,
    handler: Arc<H>,
    /// Receiving sessions per account.
    receivers: Mutex<HashMap<String, Vec<Receiver>>>,
    next_session: AtomicU64,
    next_message_id: AtomicU64,
    /// Start time, so message ids differ across restarts.
    epoch: u64,
}

impl<H> Shared<H> {
    fn lock_receivers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Receiver>>> {
        self.receivers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn message_id(&self) -> String {
        let n = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", self.epoch as u32, n as u32)
    }

    /// The account whose credentials match, or the status to refuse with.
    fn authenticate(&self, bind: &Bind) -> Result<String, u32> {
        let account = self
            .settings
            .accounts
            .iter()
            .find(|a| a.system_id == bind.system_id)
            .ok_or(status::ESME_RINVSYSID)?;
        let ok: bool = account
            .password
            .as_bytes()
            .ct_eq(bind.password.as_bytes())
            .into();
        if ok {
            Ok(account.system_id.clone())
        } else {
            Err(status::ESME_RINVPASWD)
        }
    }

    /// A link to deliver a reply for `account`, preferring `origin`.
    fn receiver_for(&self, account: &str, origin: u64) -> Option<Link> {
        let receivers = self.lock_receivers();
        let list = receivers.get(account)?;
        list.iter()
            .find(|r| r.session == origin && r.link.is_open())
            .or_else(|| list.iter().find(|r| r.link.is_open()))
            .map(|r| r.link.clone())
    }
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
    ) -> std::io::Result<Self> {
        let socket = TcpListener::bind(settings.bind).await?;
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Listener {
            socket,
            shared: Arc::new(Shared {
                settings,
                session,
                handler,
                receivers: Mutex::default(),
                next_session: AtomicU64::new(1),
                next_message_id: AtomicU64::new(1),
                epoch,
            }),
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts peers until `shutdown`; then every session drains its
    /// in-flight replies, unbinds and closes before this returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let sessions = TaskTracker::new();
        info!(address = %self.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), accounts = self.shared.settings.accounts.len(), "SMPP listener accepting binds");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let conn = match Connection::new(stream, &self.shared.session) {
                            Ok(c) => c,
                            Err(error) => { warn!(%peer, %error, "cannot set up connection"); continue; }
                        };
                        let id = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
                        let span = tracing::info_span!("smpp_peer", session = id, %peer);
                        sessions.spawn(serve(conn, id, self.shared.clone(), shutdown.clone()).instrument(span));
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

/// One peer connection.
async fn serve<H: SmsHandler>(
    mut conn: Connection,
    session_id: u64,
    shared: Arc<Shared<H>>,
    shutdown: CancellationToken,
) {
    debug!("peer connected");
    let link = conn.link.clone();
    let replies = TaskTracker::new();
    let drained = CancellationToken::new();
    let mut bound: Option<(String, BindKind)> = None;
    let mut draining = false;
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if bound.is_some() {
                    spawn_drain(replies.clone(), link.clone(), shared.session.drain_timeout(), drained.clone());
                } else {
                    break;
                }
                continue;
            }
            _ = drained.cancelled() => break,
            request = next_request(&mut conn) => request,
        };
        let Some(pdu) = request else { break };
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
                if bound.is_some() {
                    let _ = link.send(resp(status::ESME_RALYBND, String::new())).await;
                    continue;
                }
                match shared.authenticate(&bind) {
                    Ok(account) => {
                        info!(system_id = %account, bind = kind.as_str(), "peer bound");
                        if kind.can_receive() {
                            shared
                                .lock_receivers()
                                .entry(account.clone())
                                .or_default()
                                .push(Receiver {
                                    session: session_id,
                                    link: link.clone(),
                                });
                        }
                        bound = Some((account, kind));
                        let _ = link
                            .send(resp(status::ESME_ROK, shared.settings.system_id.clone()))
                            .await;
                    }
                    Err(refusal) => {
                        warn!(system_id = %bind.system_id, status = super::pdu::status_name(refusal), "bind refused");
                        let _ = link.send(resp(refusal, String::new())).await;
                    }
                }
            }
            Body::SubmitSm(sm) => {
                let account = match &bound {
                    Some((account, kind)) if kind.can_send() => account.clone(),
                    _ => {
                        let _ = link
                            .send(
                                Pdu::new(
                                    seq,
                                    Body::SubmitSmResp {
                                        message_id: String::new(),
                                    },
                                )
                                .with_status(status::ESME_RINVBNDSTS),
                            )
                            .await;
                        continue;
                    }
                };
                if draining {
                    let _ = link
                        .send(
                            Pdu::new(
                                seq,
                                Body::SubmitSmResp {
                                    message_id: String::new(),
                                },
                            )
                            .with_status(status::ESME_RMSGQFUL),
                        )
                        .await;
                    continue;
                }
                let message_id = shared.message_id();
                let _ = link
                    .send(Pdu::new(
                        seq,
                        Body::SubmitSmResp {
                            message_id: message_id.clone(),
                        },
                    ))
                    .await;
                let shared = shared.clone();
                replies.spawn(
                    answer(shared, account, session_id, sm)
                        .instrument(tracing::info_span!("message", id = %message_id)),
                );
            }
            Body::EnquireLink => {
                let _ = link.send(Pdu::new(seq, Body::EnquireLinkResp)).await;
            }
            Body::Unbind => {
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
    if let Some((account, _)) = &bound {
        if let Some(list) = shared.lock_receivers().get_mut(account) {
            list.retain(|r| r.session != session_id);
        }
    }
    link.fail_pending();
    debug!("peer session closed");
}

/// Handles one submitted message and delivers the reply.
async fn answer<H: SmsHandler>(
    shared: Arc<Shared<H>>,
    account: String,
    origin: u64,
    sm: ShortMessage,
) {
    let text = decode_text(&sm, shared.session.default_alphabet).unwrap_or_else(|error| {
        warn!(%error, "message text unreadable; answering with help");
        String::new()
    });
    let incoming = IncomingSms {
        channel: format!("listener:{account}"),
        source_addr: sm.source_addr.clone(),
        destination_addr: sm.destination_addr.clone(),
        text,
    };
    let Some(reply) = shared.handler.handle(incoming).await else {
        return;
    };
    let Some(link) = shared.receiver_for(&account, origin) else {
        warn!(system_id = %account, "no receiving session bound for this account; reply not delivered");
        return;
    };
    let address = ReplyAddress::answering(&sm);
    if let Err(error) = send_text(&link, ReplyCommand::DeliverSm, &address, &reply).await {
        warn!(%error, system_id = %account, "reply delivery failed");
    }
}
