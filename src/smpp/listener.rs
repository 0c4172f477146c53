//! The gateway in the SMSC role: peers (aggregators, test tools, the CLI)
//! bind with an account from config, and their `submit_sm` is a citizen's
//! message (source_addr = the citizen). It is acknowledged only once the
//! handler has made it durable. Connections that can receive are registered
//! in [`Routes`] as channel `listener:<account>`; replies reach the account
//! as `deliver_sm` on any of them, tagged with the answered message's id.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::pdu::{status, tag, Bind, BindKind, Body, Pdu, ShortMessage, Tlv};
use super::routes::{Route, Routes};
use super::session::{
    answer_unsupported, next_request, spawn_drain, Connection, Link, ReplyCommand,
};
use super::{IncomingSms, ListenerAccount, ListenerSettings, Receipt, SessionSettings, SmsHandler};

struct Shared<H> {
    settings: ListenerSettings,
    session: SessionSettings,
    handler: Arc<H>,
    routes: Arc<Routes>,
    next_session: AtomicU64,
}

impl<H> Shared<H> {
    /// The account whose credentials match, or the status to refuse with.
    fn authenticate(&self, bind: &Bind) -> Result<&ListenerAccount, u32> {
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
            Ok(account)
        } else {
            Err(status::ESME_RINVPASWD)
        }
    }
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
                        sessions.spawn(serve(conn, id, self.shared.clone(), shutdown.clone(), release.clone()).instrument(span));
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
    release: CancellationToken,
) {
    debug!("peer connected");
    let link = conn.link.clone();
    let receiving = TaskTracker::new();
    let drained = CancellationToken::new();
    let mut bound: Option<(String, BindKind)> = None;
    let mut draining = false;
    loop {
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
                        let tag_replies = account.reply_to_tlv;
                        let account = account.system_id.clone();
                        info!(system_id = %account, bind = kind.as_str(), "peer bound");
                        if kind.can_receive() {
                            shared.routes.register(
                                &channel_of(&account),
                                Route {
                                    session: session_id,
                                    link: link.clone(),
                                    command: ReplyCommand::DeliverSm,
                                    source_override: None,
                                    source_ton: None,
                                    source_npi: None,
                                    tag_replies,
                                    pacing: Default::default(),
                                    long_messages: Default::default(),
                                    alphabet: shared.session.default_alphabet,
                                },
                            );
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
                            .send(Pdu::submit_sm_resp(
                                seq,
                                String::new(),
                                status::ESME_RINVBNDSTS,
                            ))
                            .await;
                        continue;
                    }
                };
                if draining {
                    let _ = link
                        .send(Pdu::submit_sm_resp(
                            seq,
                            String::new(),
                            status::ESME_RMSGQFUL,
                        ))
                        .await;
                    continue;
                }
                let shared = shared.clone();
                let link = link.clone();
                receiving.spawn(receive(shared, account, link, seq, sm));
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
        shared.routes.unregister(&channel_of(account), session_id);
    }
    link.fail_pending();
    debug!("peer session closed");
}

/// Hands one submitted message to the handler and acknowledges it once the
/// handler has made it durable (or refuses it for now, so the peer retries).
async fn receive<H: SmsHandler>(
    shared: Arc<Shared<H>>,
    account: String,
    link: Link,
    sequence: u32,
    sm: ShortMessage,
) {
    let incoming =
        IncomingSms::from_short_message(channel_of(&account), &sm, shared.session.default_alphabet);
    let resp = match shared.handler.receive(incoming).await {
        Ok(Receipt::Accepted { message_id }) => {
            Pdu::submit_sm_resp(sequence, message_id, status::ESME_ROK)
        }
        Ok(Receipt::Duplicate { message_id }) => {
            debug!(%message_id, "redelivered message acknowledged again, not answered twice");
            Pdu::submit_sm_resp(sequence, message_id, status::ESME_ROK)
        }
        Err(error) => {
            warn!(%error, "message refused for now; the peer will retry");
            Pdu::submit_sm_resp(sequence, String::new(), status::ESME_RMSGQFUL)
        }
    };
    let _ = link.send(resp).await;
}
