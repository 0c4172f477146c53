//! The gateway in the ESME role toward a carrier's SMSC: one or more binds
//! per configured link, each a transceiver or a transmitter+receiver pair.
//! `deliver_sm` (or `data_sm`, which SMPP 3.4 §4.7 lets an SMSC use instead)
//! is a citizen's message, acknowledged once the handler has made it
//! durable, or a delivery receipt, acknowledged once recorded; the
//! connections that can send are registered in [`Routes`] as `smsc:<name>`,
//! so replies leave as `submit_sm` on them, within the link's window and
//! TPS cap ([`Pacing`], shared by all its binds). Each bind keeps alive with
//! enquire_link, reconnects with exponential backoff and jitter on its own,
//! and unbinds after draining on shutdown. A `deliver_sm` or `data_sm`
//! carrying `ussd_service_op` is a USSD turn ([`super::ussd`]):
//! acknowledged at once, not journaled, answered on the link with
//! `submit_sm` (`data_sm` for `data_sm`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::codec::Inbound;
use super::outlet::{ReplyCommand, SmppOutlet};
use super::pacing::Pacing;
use super::pdu::{status, Bind, BindKind, Body, Pdu, ShortMessage};
use super::receipt;
use super::session::{
    answer_unsupported, next_event, spawn_drain, Connection, Event, InboundWindow, Link,
    SessionError,
};
use super::text::is_receipt;
use super::ussd;
use super::{incoming_sms, BindMode, DefaultAlphabet, SessionSettings, SmscSettings};
use crate::channel::{Receipt, Routes, SmsHandler};

/// Numbers the connections of every carrier link, for route bookkeeping.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The channel name of a carrier link.
pub fn channel_of(name: &str) -> String {
    format!("smsc:{name}")
}

/// Longest wait between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(60);

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// host:port.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SMSC refused the bind or did not answer it.
    #[error("bind refused: {0}")]
    Bind(#[from] SessionError),
}

/// One carrier link (all its binds).
pub struct EsmeClient<H> {
    settings: SmscSettings,
    session: SessionSettings,
    handler: Arc<H>,
    routes: Arc<Routes>,
    pacing: Arc<Pacing>,
}

/// One bind of a carrier link, with its own connection and reconnects.
struct BindSlot {
    kind: BindKind,
    /// 1-based number among the link's binds, for logs.
    number: u16,
}

impl<H: SmsHandler> EsmeClient<H> {
    /// A client for `settings` handing messages to `handler` and offering its
    /// link for replies in `routes`.
    pub fn new(
        settings: SmscSettings,
        session: SessionSettings,
        handler: Arc<H>,
        routes: Arc<Routes>,
    ) -> Self {
        let mut session = session;
        if let Some(window) = settings.window {
            session.window = window;
        }
        if let Some(alphabet) = settings.default_alphabet {
            session.default_alphabet = alphabet;
        }
        let pacing = Arc::new(Pacing::new(settings.max_tps));
        EsmeClient {
            settings,
            session,
            handler,
            routes,
            pacing,
        }
    }

    /// Keeps every bind of the link up until `shutdown`; then each finishes
    /// the messages being recorded, waits for `release` and unbinds.
    pub async fn run(self, shutdown: CancellationToken, release: CancellationToken) {
        let this = Arc::new(self);
        let mut binds = Vec::new();
        for number in 1..=this.settings.connections.max(1) {
            let kinds: &[BindKind] = match this.settings.bind {
                BindMode::Transceiver => &[BindKind::Transceiver],
                BindMode::TransmitterReceiver => &[BindKind::Transmitter, BindKind::Receiver],
            };
            for &kind in kinds {
                let this = this.clone();
                let (shutdown, release) = (shutdown.clone(), release.clone());
                binds.push(tokio::spawn(async move {
                    this.keep_bound(BindSlot { kind, number }, shutdown, release)
                        .await
                }));
            }
        }
        for bind in binds {
            let _ = bind.await;
        }
        info!(name = %this.settings.name, "SMSC client stopped");
    }

    /// Connects, serves, and reconnects one bind until `shutdown`.
    async fn keep_bound(
        &self,
        bind: BindSlot,
        shutdown: CancellationToken,
        release: CancellationToken,
    ) {
        let base = Duration::from_millis(self.settings.reconnect_delay_ms.max(10));
        let mut delay = base;
        let span = tracing::info_span!(
            "smsc",
            name = %self.settings.name,
            bind = bind.kind.as_str(),
            connection = bind.number
        );
        async {
            while !shutdown.is_cancelled() {
                let attempt = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    attempt = self.connect_and_bind(bind.kind) => attempt,
                };
                match attempt {
                    Ok(conn) => {
                        delay = base;
                        info!(peer = %conn.peer, "bound to SMSC");
                        self.serve(conn, bind.kind, &shutdown, &release).await;
                        if shutdown.is_cancelled() {
                            break;
                        }
                        warn!("SMSC link lost; reconnecting");
                    }
                    Err(error) => warn!(%error, retry_in = ?delay, "SMSC bind failed"),
                }
                let jittered = delay.mul_f64(0.5 + jitter_fraction() * 0.5);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(jittered) => {}
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
        .instrument(span)
        .await
    }

    async fn connect_and_bind(&self, kind: BindKind) -> Result<Connection, ConnectError> {
        let address = format!("{}:{}", self.settings.host, self.settings.port);
        let connect_err = |source| ConnectError::Connect {
            address: address.clone(),
            source,
        };
        let stream = tokio::time::timeout(
            self.session.response_timeout(),
            TcpStream::connect(&address),
        )
        .await
        .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
        let mut conn = Connection::new(stream, &self.session).map_err(connect_err)?;
        conn.link
            .set_registered_delivery(self.settings.registered_delivery);
        let sequence = conn.link.next_sequence();
        let bind_name = super::session::command_name(kind.command_id());
        let bind = Pdu::new(
            sequence,
            Body::Bind(Bind {
                kind,
                system_id: self.settings.system_id.clone(),
                password: self.settings.password.clone(),
                system_type: self.settings.system_type.clone(),
                interface_version: self.settings.interface_version.byte(),
                addr_ton: self.settings.addr_ton,
                addr_npi: self.settings.addr_npi,
                address_range: self.settings.address_range.clone(),
            }),
        );
        conn.link.send(bind).await?;
        let timeout = self.session.response_timeout();
        let wait = async {
            loop {
                match conn.next().await {
                    Some(Ok(Inbound::Pdu(pdu))) if pdu.sequence_number == sequence => {
                        return if pdu.command_status == status::ESME_ROK {
                            Ok(())
                        } else {
                            Err(SessionError::Refused {
                                command: bind_name,
                                status: pdu.command_status,
                            })
                        };
                    }
                    Some(Ok(Inbound::Pdu(pdu))) => debug!(
                        command = super::session::command_name(pdu.command_id),
                        "ignored before the bind response"
                    ),
                    Some(Ok(Inbound::Invalid { error, .. })) => {
                        debug!(%error, "malformed PDU before the bind response")
                    }
                    Some(Err(e)) => return Err(SessionError::Io(e)),
                    None => return Err(SessionError::Closed),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SessionError::Timeout {
                command: bind_name,
                timeout,
            })??;
        Ok(conn)
    }

    async fn serve(
        &self,
        mut conn: Connection,
        kind: BindKind,
        shutdown: &CancellationToken,
        release: &CancellationToken,
    ) {
        let link = conn.link.clone();
        let channel = channel_of(&self.settings.name);
        let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        if kind != BindKind::Receiver {
            self.routes.register(
                &channel,
                connection,
                Arc::new(SmppOutlet {
                    link: link.clone(),
                    command: ReplyCommand::SubmitSm,
                    source_override: self.settings.source_addr.clone(),
                    source_ton: self.settings.source_addr_ton,
                    source_npi: self.settings.source_addr_npi,
                    tag_replies: false,
                    pacing: self.pacing.clone(),
                    long_messages: self.settings.long_messages,
                    alphabet: self.session.default_alphabet,
                }),
            );
        }
        let receiving = TaskTracker::new();
        let drained = CancellationToken::new();
        let dead = CancellationToken::new();
        let keepalive = tokio::spawn(keep_alive(
            link.clone(),
            self.session.enquire_link_interval(),
            dead.clone(),
        ));
        let mut draining = false;
        let mut window = InboundWindow::new(self.session.inbound_window);
        loop {
            let request = tokio::select! {
                _ = shutdown.cancelled(), if !draining => {
                    draining = true;
                    spawn_drain(receiving.clone(), link.clone(), self.session.drain_timeout(), release.clone(), drained.clone());
                    continue;
                }
                _ = drained.cancelled() => break,
                _ = dead.cancelled() => {
                    warn!("SMSC stopped answering enquire_link");
                    break;
                }
                // Past the inbound window, nothing more is read until a
                // message being recorded is done.
                _ = window.open(), if !window.is_open() => continue,
                event = next_event(&mut conn), if window.is_open() => event,
            };
            let pdu = match request {
                None => break,
                Some(Event::AcksRead(message_ids)) => {
                    self.handler.acknowledgements_read(message_ids).await;
                    continue;
                }
                Some(Event::Request(pdu)) => pdu,
            };
            let arrived = tokio::time::Instant::now();
            let seq = pdu.sequence_number;
            match pdu.body {
                Body::DeliverSm(sm) => {
                    if draining {
                        // Not recorded: a temporary error makes the SMSC deliver it again later.
                        let _ = link
                            .send(Pdu::deliver_sm_resp(seq, status::ESME_RX_T_APPN))
                            .await;
                        continue;
                    }
                    let permit = window.take();
                    if !is_receipt(&sm) {
                        if let Some(turn) =
                            ussd::turn_from(&channel, &sm, false, self.session.default_alphabet)
                        {
                            let _ = link.send(Pdu::deliver_sm_resp(seq, status::ESME_ROK)).await;
                            receiving.spawn(holding(
                                permit,
                                ussd::serve_turn(self.handler.clone(), self.routes.clone(), turn)
                                    .in_current_span(),
                            ));
                            continue;
                        }
                    }
                    let taken = (Acknowledge::DeliverSm(seq), arrived);
                    receiving.spawn(holding(permit, self.take(&link, &channel, taken, sm)));
                }
                Body::DataSm(sm) => {
                    if draining {
                        // Not recorded: a temporary error makes the SMSC send it again later.
                        let _ = link
                            .send(Pdu::data_sm_resp(
                                seq,
                                String::new(),
                                status::ESME_RX_T_APPN,
                            ))
                            .await;
                        continue;
                    }
                    let permit = window.take();
                    if let Some(turn) =
                        ussd::turn_from(&channel, &sm, true, self.session.default_alphabet)
                    {
                        let id = ussd::acknowledgement_id();
                        let _ = link
                            .send(Pdu::data_sm_resp(seq, id, status::ESME_ROK))
                            .await;
                        receiving.spawn(holding(
                            permit,
                            ussd::serve_turn(self.handler.clone(), self.routes.clone(), turn)
                                .in_current_span(),
                        ));
                        continue;
                    }
                    // SMPP 3.4 §4.7: an SMSC may deliver a citizen's message,
                    // or a receipt, as data_sm instead of deliver_sm.
                    let taken = (Acknowledge::DataSm(seq), arrived);
                    receiving.spawn(holding(permit, self.take(&link, &channel, taken, sm)));
                }
                Body::EnquireLink => {
                    let _ = link.send(Pdu::new(seq, Body::EnquireLinkResp)).await;
                }
                Body::Unbind => {
                    let _ = link.send(Pdu::new(seq, Body::UnbindResp)).await;
                    info!("SMSC unbound the link");
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
        keepalive.abort();
        self.routes.unregister(&channel, connection);
        link.fail_pending();
    }
}

/// Sends enquire_link every `interval`; cancels `dead` when one goes unanswered.
async fn keep_alive(link: Link, interval: Duration, dead: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match link.request(Body::EnquireLink).await {
            Ok(_) | Err(SessionError::Refused { .. }) => {}
            Err(error) => {
                debug!(%error, "enquire_link failed");
                dead.cancel();
                return;
            }
        }
    }
}

impl<H: SmsHandler> EsmeClient<H> {
    /// A delivery receipt, recorded, or a citizen's message, recorded and
    /// answered; either acknowledged with `ack` once done.
    fn take(
        &self,
        link: &Link,
        channel: &str,
        (ack, arrived): (Acknowledge, tokio::time::Instant),
        sm: ShortMessage,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (handler, link, channel) = (self.handler.clone(), link.clone(), channel.to_owned());
        if is_receipt(&sm) {
            Box::pin(record_receipt(handler, link, channel, ack, sm))
        } else {
            let alphabet = self.session.default_alphabet;
            Box::pin(receive(
                handler,
                link,
                channel,
                alphabet,
                (ack, arrived),
                sm,
            ))
        }
    }
}

/// Runs `work` holding `permit` (a place in the session's inbound window),
/// which is given back when it is done.
async fn holding(
    permit: Option<OwnedSemaphorePermit>,
    work: impl std::future::Future<Output = ()>,
) {
    work.await;
    drop(permit);
}

/// Hands one delivered message (which arrived at the time given with its
/// acknowledgement) to the handler and acknowledges it once it is durable;
/// a temporary error makes the SMSC deliver it again. The acknowledgement
/// is tracked: once the SMSC is seen to have read it, a copy of the
/// message is a new message.
async fn receive<H: SmsHandler>(
    handler: Arc<H>,
    link: Link,
    channel: String,
    alphabet: DefaultAlphabet,
    (ack, arrived): (Acknowledge, tokio::time::Instant),
    sm: ShortMessage,
) {
    let incoming = incoming_sms(channel, &sm, alphabet);
    match handler.receive(incoming).await {
        Ok(Receipt::Accepted { message_id } | Receipt::Duplicate { message_id }) => {
            let _ = link
                .acknowledge(ack.with_status(status::ESME_ROK), message_id, arrived)
                .await;
        }
        Err(error) => {
            warn!(%error, "message refused for now; the SMSC will deliver it again");
            let _ = link.send(ack.with_status(status::ESME_RX_T_APPN)).await;
        }
    }
}

/// The response a message from the SMSC is owed: `deliver_sm_resp` or
/// `data_sm_resp` (with an empty message id), by its sequence number.
#[derive(Debug, Clone, Copy)]
enum Acknowledge {
    DeliverSm(u32),
    DataSm(u32),
}

impl Acknowledge {
    fn with_status(self, status: u32) -> Pdu {
        match self {
            Acknowledge::DeliverSm(sequence) => Pdu::deliver_sm_resp(sequence, status),
            Acknowledge::DataSm(sequence) => Pdu::data_sm_resp(sequence, String::new(), status),
        }
    }
}

/// Records a delivery receipt and acknowledges it; a receipt that cannot be
/// read is acknowledged too (it is not a citizen's message, and refusing it
/// would only make the SMSC send it again), with the reason logged.
async fn record_receipt<H: SmsHandler>(
    handler: Arc<H>,
    link: Link,
    channel: String,
    ack: Acknowledge,
    sm: ShortMessage,
) {
    let status = match receipt::parse(&sm) {
        Ok(report) => {
            debug!(id = %report.message_id, state = report.state.as_str(), "delivery receipt");
            match handler.delivery_report(channel, report).await {
                Ok(()) => status::ESME_ROK,
                Err(error) => {
                    warn!(%error, "delivery receipt not recorded; the SMSC will send it again");
                    status::ESME_RX_T_APPN
                }
            }
        }
        Err(error) => {
            warn!(%error, esm_class = sm.esm_class, "unreadable delivery receipt acknowledged and dropped");
            status::ESME_ROK
        }
    };
    let _ = link.send(ack.with_status(status)).await;
}

/// A number in [0, 1) for backoff jitter, without a random-number crate.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}
