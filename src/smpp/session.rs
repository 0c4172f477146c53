//! What both SMPP roles share once a TCP connection exists: a writer task
//! that batches PDUs onto the socket, sequence numbers, requests awaiting
//! their response (matched by sequence number, with a timeout), reading
//! frames with a deadline for frames that stop half-way, and the answer to a
//! frame that could not be decoded. [`Link::request`] keeps at most the
//! configured window of requests outstanding; [`send_parts`] paces parts
//! through a [`Pacing`] and sends a part again after a throttling answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::codec::{Inbound, SmppCodec};
use super::pacing::Pacing;
use super::pdu::{
    classify_status, command_id, status, status_name, Body, DecodeError, Header, Pdu, StatusClass,
};
use super::SessionSettings;

/// Failures of a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
    /// The peer did not answer in time.
    #[error("no response to {command} within {timeout:?}")]
    Timeout {
        /// The request's name.
        command: &'static str,
        /// The wait.
        timeout: Duration,
    },
    /// The peer answered with an error status.
    #[error("peer answered {command} with {} (0x{status:08x})", status_name(*.status))]
    Refused {
        /// The request's name.
        command: &'static str,
        /// Its command status.
        status: u32,
    },
    /// Socket failure.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Name of a request for logs and errors.
pub fn command_name(id: u32) -> &'static str {
    match id & !command_id::RESPONSE_BIT {
        command_id::BIND_RECEIVER => "bind_receiver",
        command_id::BIND_TRANSMITTER => "bind_transmitter",
        command_id::BIND_TRANSCEIVER => "bind_transceiver",
        command_id::SUBMIT_SM => "submit_sm",
        command_id::DELIVER_SM => "deliver_sm",
        command_id::UNBIND => "unbind",
        command_id::ENQUIRE_LINK => "enquire_link",
        command_id::DATA_SM => "data_sm",
        command_id::QUERY_SM => "query_sm",
        _ if id == command_id::GENERIC_NACK => "generic_nack",
        _ => "other",
    }
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Pdu>>>>;

/// The sending half of a session, cheap to clone into reply tasks.
#[derive(Clone)]
pub struct Link {
    outbound: mpsc::Sender<Pdu>,
    sequence: Arc<AtomicU32>,
    pending: Pending,
    response_timeout: Duration,
    reference: Arc<AtomicU16>,
    window: Arc<Semaphore>,
    window_size: usize,
    registered_delivery: u8,
}

impl Link {
    /// The next sequence number (1 ..= 0x7FFF_FFFF, wrapping).
    pub fn next_sequence(&self) -> u32 {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        (n % 0x7fff_ffff) + 1
    }

    /// A fresh concatenation reference for a multipart reply (16 bits; an
    /// 8-bit UDH reference uses its low byte).
    pub fn next_reference(&self) -> u16 {
        self.reference.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks for delivery receipts (`registered_delivery`) on what this link sends.
    pub fn set_registered_delivery(&mut self, registered_delivery: u8) {
        self.registered_delivery = registered_delivery;
    }

    /// Sends a PDU that needs no answer (a response).
    pub async fn send(&self, pdu: Pdu) -> Result<(), SessionError> {
        self.outbound
            .send(pdu)
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Sends a request and waits for its response, first waiting for room in
    /// the window of outstanding requests. A response with a non-zero status
    /// (or a generic_nack) is [`SessionError::Refused`].
    pub async fn request(&self, body: Body) -> Result<Pdu, SessionError> {
        let command = command_name(body.command_id());
        // Held until the response (or the timeout): one slot of the window.
        let _slot = self
            .window
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SessionError::Closed)?;
        let sequence = self.next_sequence();
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(sequence, tx);
        if self.send(Pdu::new(sequence, body)).await.is_err() {
            self.lock_pending().remove(&sequence);
            return Err(SessionError::Closed);
        }
        match tokio::time::timeout(self.response_timeout, rx).await {
            Ok(Ok(resp)) if resp.command_status == status::ESME_ROK => Ok(resp),
            Ok(Ok(resp)) => Err(SessionError::Refused {
                command,
                status: resp.command_status,
            }),
            Ok(Err(_)) => Err(SessionError::Closed),
            Err(_) => {
                self.lock_pending().remove(&sequence);
                Err(SessionError::Timeout {
                    command,
                    timeout: self.response_timeout,
                })
            }
        }
    }

    /// Hands a response to the request waiting for it; false when none waits.
    pub fn complete(&self, pdu: Pdu) -> bool {
        match self.lock_pending().remove(&pdu.sequence_number) {
            Some(waiter) => waiter.send(pdu).is_ok(),
            None => false,
        }
    }

    /// Fails every request still waiting (the connection is gone), and
    /// every request still waiting for room in the window.
    pub fn fail_pending(&self) {
        self.window.close();
        self.lock_pending().clear();
    }

    /// How many requests may await their response at once.
    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// Requests now awaiting their response.
    pub fn outstanding(&self) -> usize {
        self.lock_pending().len()
    }

    /// True while the writer task runs.
    pub fn is_open(&self) -> bool {
        !self.outbound.is_closed()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Pdu>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving half of a session.
pub struct Connection {
    reader: FramedRead<OwnedReadHalf, SmppCodec>,
    partial_timeout: Duration,
    /// The sending half.
    pub link: Link,
    /// The peer's address, for logs.
    pub peer: std::net::SocketAddr,
    last_frame: tokio::time::Instant,
}

impl Connection {
    /// Splits a connected socket into a reader and a [`Link`] whose writer
    /// task runs until every `Link` clone is dropped or the socket fails.
    pub fn new(stream: TcpStream, settings: &SessionSettings) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let (read, write) = stream.into_split();
        let (outbound, mut queue) = mpsc::channel::<Pdu>(1024);
        let mut writer = FramedWrite::new(write, SmppCodec::new(settings.max_pdu_len));
        tokio::spawn(async move {
            while let Some(pdu) = queue.recv().await {
                if writer.feed(pdu).await.is_err() {
                    return;
                }
                while let Ok(more) = queue.try_recv() {
                    if writer.feed(more).await.is_err() {
                        return;
                    }
                }
                if writer.flush().await.is_err() {
                    return;
                }
            }
            let _ = writer.close().await;
        });
        Ok(Connection {
            reader: FramedRead::new(read, SmppCodec::new(settings.max_pdu_len)),
            partial_timeout: settings.partial_pdu_timeout(),
            link: Link {
                outbound,
                sequence: Arc::new(AtomicU32::new(0)),
                pending: Arc::default(),
                response_timeout: settings.response_timeout(),
                reference: Arc::new(AtomicU16::new(1)),
                window: Arc::new(Semaphore::new(settings.window.max(1) as usize)),
                window_size: settings.window.max(1) as usize,
                registered_delivery: 0,
            },
            peer,
            last_frame: tokio::time::Instant::now(),
        })
    }

    /// When the last frame (any PDU, good or malformed, request or
    /// response) arrived; the connection's creation before the first one.
    /// Idle timeouts are measured from it.
    pub fn last_frame(&self) -> tokio::time::Instant {
        self.last_frame
    }

    /// The next frame; `None` at end of stream. A frame that stays incomplete
    /// longer than the partial-PDU timeout is dropped and reported as invalid.
    /// Cancel-safe: the framer keeps its state between calls.
    pub async fn next(&mut self) -> Option<Result<Inbound, std::io::Error>> {
        loop {
            match tokio::time::timeout(self.partial_timeout, self.reader.next()).await {
                Ok(item) => {
                    if item.is_some() {
                        self.last_frame = tokio::time::Instant::now();
                    }
                    return item;
                }
                Err(_) => {
                    let mut partial = std::mem::take(self.reader.read_buffer_mut());
                    if let Some(answer) = self.reader.decoder_mut().abandon_partial(&mut partial) {
                        return Some(Ok(answer));
                    }
                }
            }
        }
    }
}

/// Reads until a request arrives: answers malformed frames (and keeps the
/// session), hands responses to the requests waiting for them. `None` when
/// the connection has ended.
pub async fn next_request(conn: &mut Connection) -> Option<Pdu> {
    loop {
        match conn.next().await? {
            Err(error) => {
                tracing::debug!(%error, "read failed");
                return None;
            }
            Ok(Inbound::Invalid { header, error }) => {
                tracing::warn!(%error, sequence = header.map(|h| h.sequence_number), "malformed PDU; answered, session kept");
                if let Some(answer) = answer_invalid(header, &error) {
                    let _ = conn.link.send(answer).await;
                }
            }
            Ok(Inbound::Pdu(pdu)) if pdu.is_response() => {
                let sequence = pdu.sequence_number;
                if !conn.link.complete(pdu) {
                    tracing::debug!(sequence, "response to no pending request ignored");
                }
            }
            Ok(Inbound::Pdu(pdu)) => return Some(pdu),
        }
    }
}

/// The answer to a frame that could not be decoded: the command's own
/// response with the error status when the command is a known request,
/// otherwise generic_nack. Returns `None` for a bad response (answering a
/// response would start a ping-pong).
pub fn answer_invalid(header: Option<Header>, error: &DecodeError) -> Option<Pdu> {
    let sequence = header.map_or(0, |h| h.sequence_number);
    let generic = Pdu::new(sequence, Body::GenericNack).with_status(error.status);
    let Some(h) = header else {
        return Some(generic);
    };
    if h.command_id & command_id::RESPONSE_BIT != 0 {
        return (h.command_id != command_id::GENERIC_NACK && !command_id::is_known(h.command_id))
            .then_some(generic);
    }
    let known_request = command_id::REQUESTS.contains(&h.command_id)
        && !matches!(
            h.command_id,
            command_id::OUTBIND | command_id::ALERT_NOTIFICATION
        );
    if !known_request || error.status == status::ESME_RINVCMDLEN {
        return Some(generic);
    }
    let resp_id = h.command_id | command_id::RESPONSE_BIT;
    Some(Pdu {
        command_id: resp_id,
        command_status: error.status,
        sequence_number: sequence,
        body: Body::Unsupported {
            command_id: resp_id,
            body: Vec::new(),
        },
    })
}

/// The answer to a well-formed request this gateway does not serve.
pub fn answer_unsupported(pdu: &Pdu) -> Option<Pdu> {
    if pdu.is_response() {
        return None;
    }
    let resp_id = pdu.command_id | command_id::RESPONSE_BIT;
    Some(if command_id::is_known(resp_id) {
        Pdu {
            command_id: resp_id,
            command_status: status::ESME_RINVCMDID,
            sequence_number: pdu.sequence_number,
            body: Body::Unsupported {
                command_id: resp_id,
                body: Vec::new(),
            },
        }
    } else {
        Pdu::new(pdu.sequence_number, Body::GenericNack).with_status(status::ESME_RINVCMDID)
    })
}

/// On shutdown: lets the session's in-flight tasks (messages being recorded)
/// finish, up to `drain_timeout`; waits for `release` (the gateway has sent
/// the replies it had in flight, which may need this connection); then
/// unbinds and cancels `done` so the session's read loop — which keeps
/// routing responses meanwhile — can stop.
pub fn spawn_drain(
    tasks: tokio_util::task::TaskTracker,
    link: Link,
    drain_timeout: Duration,
    release: tokio_util::sync::CancellationToken,
    done: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        tasks.close();
        if tokio::time::timeout(drain_timeout, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                unfinished = tasks.len(),
                ?drain_timeout,
                "messages still being recorded at the end of the drain; unbinding anyway"
            );
        }
        release.cancelled().await;
        if let Err(error) = link.request(Body::Unbind).await {
            tracing::debug!(%error, "unbind on shutdown not acknowledged");
        }
        done.cancel();
    });
}

/// Which request carries a reply: deliver_sm (we are the SMSC) or submit_sm
/// (we are an ESME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCommand {
    /// The listener delivers to its bound peer.
    DeliverSm,
    /// The ESME submits to the carrier.
    SubmitSm,
}

/// How far a multipart reply got: the message id the peer gave each part
/// that it accepted. Kept by the caller across attempts, so that after a
/// dropped link only the parts never acknowledged are sent again.
pub type PartIds = Vec<Option<String>>;

/// Most throttling answers to one part before the send is given up (and
/// left to the caller's own retry).
const MAX_THROTTLED_TRIES: u32 = 50;

/// Who a reply goes to and how: the same for each of its parts.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// deliver_sm or submit_sm.
    pub command: ReplyCommand,
    /// Our number.
    pub from: &'a super::Address,
    /// The citizen.
    pub to: &'a super::Address,
    /// TLVs every part carries.
    pub tlvs: &'a [super::pdu::Tlv],
}

/// Sends the `parts` of one reply as `envelope` says,
/// skipping those `ids` already holds, pacing each through `pacing` and
/// sending a part again (before anything newer of this reply) when the peer
/// throttles. The parts are written back to back, in order, and their
/// responses awaited together. Returns when every part is acknowledged, or
/// with the first failure — `ids` then says which parts got through.
pub async fn send_parts(
    link: &Link,
    pacing: &Pacing,
    envelope: &Envelope<'_>,
    parts: &[super::text::OutgoingPart],
    ids: &mut PartIds,
) -> Result<(), SessionError> {
    let Envelope {
        command,
        from,
        to,
        tlvs,
    } = *envelope;
    ids.resize(parts.len(), None);
    let sends = parts
        .iter()
        .zip(ids.iter())
        .enumerate()
        .filter(|(_, (_, id))| id.is_none())
        .map(|(index, (part, _))| {
            let mut part_tlvs = tlvs.to_vec();
            part_tlvs.extend(part.tlvs.iter().cloned());
            let sm = super::pdu::ShortMessage {
                source_addr_ton: from.ton,
                source_addr_npi: from.npi,
                source_addr: from.addr.clone(),
                dest_addr_ton: to.ton,
                dest_addr_npi: to.npi,
                destination_addr: to.addr.clone(),
                esm_class: part.esm_class,
                registered_delivery: link.registered_delivery,
                data_coding: part.data_coding,
                short_message: part.short_message.clone(),
                tlvs: part_tlvs,
                ..Default::default()
            };
            async move { (index, send_one(link, pacing, command, sm).await) }
        });
    // join_all polls the sends in order, so the parts are queued in order.
    let results = futures::future::join_all(sends).await;
    let mut first_error = None;
    for (index, result) in results {
        match result {
            Ok(id) => ids[index] = Some(id),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One part: paced, sent, and sent again after throttling answers.
async fn send_one(
    link: &Link,
    pacing: &Pacing,
    command: ReplyCommand,
    sm: super::pdu::ShortMessage,
) -> Result<String, SessionError> {
    let mut throttled = 0;
    loop {
        pacing.ready().await;
        let body = match command {
            ReplyCommand::DeliverSm => Body::DeliverSm(sm.clone()),
            ReplyCommand::SubmitSm => Body::SubmitSm(sm.clone()),
        };
        match link.request(body).await {
            Ok(resp) => {
                pacing.accepted();
                return Ok(match resp.body {
                    Body::SubmitSmResp { message_id } | Body::DeliverSmResp { message_id } => {
                        message_id
                    }
                    _ => String::new(),
                });
            }
            Err(SessionError::Refused { status: code, .. })
                if classify_status(code) == StatusClass::Throttle
                    && throttled < MAX_THROTTLED_TRIES =>
            {
                throttled += 1;
                let pause = pacing.throttled();
                tracing::debug!(
                    status = status_name(code),
                    ?pause,
                    tries = throttled,
                    "peer throttled a part; pausing the link, then sending it again"
                );
            }
            Err(error) => return Err(error),
        }
    }
}

/// Sends `text` as one reply with the default encoding (UDH with an 8-bit
/// reference when long) and no pacing; returns the ids the peer gave the
/// parts. For one-shot senders such as `motcua-sms sms send`.
pub async fn send_text(
    link: &Link,
    command: ReplyCommand,
    from: &super::Address,
    to: &super::Address,
    text: &str,
    tlvs: &[super::pdu::Tlv],
) -> Result<Vec<String>, SessionError> {
    let parts = super::text::encode_reply(
        text,
        link.next_reference(),
        super::text::LongMessageMode::default(),
        super::DefaultAlphabet::default(),
    );
    let mut ids = PartIds::new();
    let envelope = Envelope {
        command,
        from,
        to,
        tlvs,
    };
    send_parts(link, &Pacing::default(), &envelope, &parts, &mut ids).await?;
    Ok(ids.into_iter().flatten().collect())
}
