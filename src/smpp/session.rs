//! What both SMPP roles share once a TCP connection exists: a writer task
//! that batches PDUs onto the socket, sequence numbers, requests awaiting
//! their response (matched by sequence number, with a timeout), reading
//! frames with a deadline for frames that stop half-way, and the answer to a
//! frame that could not be decoded. [`Link::request`] keeps at most the
//! configured window of requests outstanding. Replies leave through
//! [`super::outlet`].
//!
//! Reading: bytes are taken from the socket as they arrive (the buffer
//! grows with what was received, never with what a header claims), and a
//! frame is timed from its first byte: it is dropped and answered only when
//! it is still incomplete `partial_pdu_timeout_ms` after that byte, not
//! counting the time the session chose not to read (its inbound window was
//! full).
//!
//! Evidence that the peer read an acknowledgement: TCP delivers in order,
//! so a peer that answers a request written after an acknowledgement has
//! read that acknowledgement first. [`Link::acknowledge`] writes a
//! `submit_sm_resp` / `deliver_sm_resp` and remembers where in the stream
//! it went (when it left within `ack_deadline_ms` of its message); a
//! response to any later request (a reply, an enquire_link) proves it read,
//! and [`next_event`] reports it as [`Event::AcksRead`]. When nothing else
//! would give that proof, the writer sends an `enquire_link` of its own
//! [`PROBE_AFTER`] after the acknowledgement.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::SinkExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedWrite};

use super::codec::{Inbound, SmppCodec};
use super::pdu::{command_id, status, status_name, Body, DecodeError, Header, Pdu};
use super::SessionSettings;

/// Bytes asked of the socket at a time; the read buffer grows by at most
/// this much beyond what has arrived.
const READ_CHUNK: usize = 4096;

/// A read buffer larger than this is given back once empty, so that an
/// idle connection holds no buffer.
const RETAINED_BUFFER: usize = 16 * 1024;

/// How long after an acknowledgement that nothing else will prove read the
/// writer sends an `enquire_link` to prove it.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);

/// Acknowledgements a connection keeps waiting for proof at most (a peer
/// that reads nothing cannot make the list grow).
const MAX_UNREAD: usize = 10_000;

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

/// What the writer task takes: a PDU, or an acknowledgement to keep track of.
enum Outgoing {
    Pdu(Pdu),
    Ack {
        pdu: Pdu,
        /// What the acknowledgement is known by (the message id given).
        token: String,
        /// When the message it acknowledges arrived.
        arrived: Instant,
    },
}

/// Where acknowledgements and requests went in the outgoing stream, shared
/// by the writer (which numbers what it writes) and the reader (which
/// learns from responses what the peer has read).
#[derive(Default)]
struct AckTracker {
    /// PDUs written so far; the ordinal of the last one.
    written: u64,
    /// Requests written and not yet answered: sequence number → ordinal.
    requests: HashMap<u32, u64>,
    /// Acknowledgements written in time, not yet known to be read, in
    /// stream order: (ordinal, token, when written).
    unread: VecDeque<(u64, String, Instant)>,
    /// The writer's own enquire_link awaiting its response: (sequence, when).
    probe: Option<(u32, Instant)>,
    /// Set once acknowledgements are tracked at all (a session that never
    /// calls [`Link::acknowledge`] never probes).
    tracking: bool,
}

impl AckTracker {
    /// The peer answered request `sequence`: every acknowledgement written
    /// before that request has been read. Returns their tokens.
    fn answered(&mut self, sequence: u32) -> Vec<String> {
        if self.probe.is_some_and(|(probe, _)| probe == sequence) {
            self.probe = None;
        }
        let Some(ordinal) = self.requests.remove(&sequence) else {
            return Vec::new();
        };
        let mut read = Vec::new();
        while self.unread.front().is_some_and(|(at, _, _)| *at < ordinal) {
            if let Some((_, token, _)) = self.unread.pop_front() {
                read.push(token);
            }
        }
        read
    }

    /// When the writer should send a probe: [`PROBE_AFTER`] after the
    /// oldest acknowledgement waiting to be proven read, when no unanswered
    /// request written after it will prove it and no probe is out (or the
    /// last one went unanswered for `give_up`). Under a steady stream of
    /// acknowledgements, at most one probe per round trip.
    fn probe_due(&mut self, give_up: Duration) -> Option<Instant> {
        if let Some((sequence, sent)) = self.probe {
            if sent.elapsed() < give_up {
                return None;
            }
            // A peer that does not answer enquire_link: what the probe was
            // for stays unproven, and is not probed for again.
            self.probe = None;
            if let Some(ordinal) = self.requests.remove(&sequence) {
                self.unread.retain(|(at, _, _)| *at > ordinal);
            }
        }
        let (oldest, _, written_at) = self.unread.front()?;
        if self.requests.values().any(|at| at > oldest) {
            return None;
        }
        Some(*written_at + PROBE_AFTER)
    }
}

/// The sending half of a session, cheap to clone into reply tasks.
#[derive(Clone)]
pub struct Link {
    outbound: mpsc::Sender<Outgoing>,
    sequence: Arc<AtomicU32>,
    pending: Pending,
    tracker: Arc<Mutex<AckTracker>>,
    response_timeout: Duration,
    reference: Arc<AtomicU16>,
    window: Arc<Semaphore>,
    window_size: usize,
    pub(super) registered_delivery: u8,
}

impl Link {
    /// The next sequence number (1 ..= 0x7FFF_FFFF, wrapping).
    pub fn next_sequence(&self) -> u32 {
        next_sequence(&self.sequence)
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
            .send(Outgoing::Pdu(pdu))
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Sends the acknowledgement of a message that arrived at `arrived`
    /// and is known as `token` (the message id given), and keeps track of
    /// it: once the peer answers a request written after it, `token` comes
    /// out of [`next_event`] as read. An acknowledgement written more than
    /// `ack_deadline_ms` after its message arrived is not tracked (the peer
    /// may have given up on it before it came).
    pub async fn acknowledge(
        &self,
        pdu: Pdu,
        token: String,
        arrived: Instant,
    ) -> Result<(), SessionError> {
        self.outbound
            .send(Outgoing::Ack {
                pdu,
                token,
                arrived,
            })
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
                self.lock_tracker().requests.remove(&sequence);
                Err(SessionError::Timeout {
                    command,
                    timeout: self.response_timeout,
                })
            }
        }
    }

    /// Hands a response to the request waiting for it; false when none waits.
    pub fn complete(&self, pdu: Pdu) -> bool {
        self.lock_tracker().requests.remove(&pdu.sequence_number);
        match self.lock_pending().remove(&pdu.sequence_number) {
            Some(waiter) => waiter.send(pdu).is_ok(),
            None => false,
        }
    }

    /// The peer answered request `sequence`: the tokens of the
    /// acknowledgements it has thereby been shown to have read.
    fn answered(&self, sequence: u32) -> Vec<String> {
        self.lock_tracker().answered(sequence)
    }

    /// Fails every request still waiting (the connection is gone), and
    /// every request still waiting for room in the window.
    pub fn fail_pending(&self) {
        self.window.close();
        self.lock_pending().clear();
        let mut tracker = self.lock_tracker();
        tracker.requests.clear();
        tracker.unread.clear();
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

    fn lock_tracker(&self) -> std::sync::MutexGuard<'_, AckTracker> {
        lock_tracker(&self.tracker)
    }
}

fn lock_tracker(tracker: &Mutex<AckTracker>) -> std::sync::MutexGuard<'_, AckTracker> {
    // Plain bookkeeping: consistent even if a holder panicked.
    tracker.lock().unwrap_or_else(|e| e.into_inner())
}

fn next_sequence(counter: &AtomicU32) -> u32 {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    (n % 0x7fff_ffff) + 1
}

/// The writer task: writes what the queue brings, in batches (one flush
/// for whatever queued up meanwhile), numbers every PDU in the tracker, and
/// sends a probe when acknowledgements wait for a proof nothing else gives.
async fn write_loop(
    mut writer: FramedWrite<tokio::net::tcp::OwnedWriteHalf, SmppCodec>,
    mut queue: mpsc::Receiver<Outgoing>,
    tracker: Arc<Mutex<AckTracker>>,
    sequence: Arc<AtomicU32>,
    ack_deadline: Duration,
    response_timeout: Duration,
) {
    let mut written_acks: Vec<(u64, String, Instant)> = Vec::new();
    loop {
        let probe_at = {
            let mut t = lock_tracker(&tracker);
            if t.tracking {
                t.probe_due(response_timeout)
            } else {
                None
            }
        };
        let first = tokio::select! {
            item = queue.recv() => match item {
                Some(item) => item,
                None => break,
            },
            _ = tokio::time::sleep_until(probe_at.unwrap_or_else(Instant::now)), if probe_at.is_some() => {
                let probe = next_sequence(&sequence);
                lock_tracker(&tracker).probe = Some((probe, Instant::now()));
                Outgoing::Pdu(Pdu::new(probe, Body::EnquireLink))
            }
        };
        let mut item = Some(first);
        while let Some(next) = item.take() {
            let pdu = {
                let mut t = lock_tracker(&tracker);
                t.written += 1;
                let ordinal = t.written;
                match next {
                    Outgoing::Pdu(pdu) => {
                        if !pdu.is_response() {
                            t.requests.insert(pdu.sequence_number, ordinal);
                        }
                        pdu
                    }
                    Outgoing::Ack {
                        pdu,
                        token,
                        arrived,
                    } => {
                        t.tracking = true;
                        written_acks.push((ordinal, token, arrived));
                        pdu
                    }
                }
            };
            if writer.feed(pdu).await.is_err() {
                return;
            }
            item = queue.try_recv().ok();
        }
        if writer.flush().await.is_err() {
            return;
        }
        if !written_acks.is_empty() {
            let now = Instant::now();
            let mut t = lock_tracker(&tracker);
            for (ordinal, token, arrived) in written_acks.drain(..) {
                if now.saturating_duration_since(arrived) <= ack_deadline {
                    if t.unread.len() >= MAX_UNREAD {
                        // The oldest stays unproven: its copies are redeliveries.
                        t.unread.pop_front();
                    }
                    t.unread.push_back((ordinal, token, now));
                }
            }
        }
    }
    let _ = writer.close().await;
}

/// The receiving half of a session.
pub struct Connection {
    read: OwnedReadHalf,
    buffer: BytesMut,
    codec: SmppCodec,
    partial_timeout: Duration,
    /// When the first byte of the frame being read arrived (moved on by
    /// the time spent outside [`Connection::next`]); `None` between frames.
    frame_started: Option<Instant>,
    /// When [`Connection::next`] last returned.
    left_at: Option<Instant>,
    at_end: bool,
    /// Acknowledgements proven read, not yet handed out by [`next_event`].
    acks_read: Vec<String>,
    /// The sending half.
    pub link: Link,
    /// The peer's address, for logs.
    pub peer: std::net::SocketAddr,
    last_frame: Instant,
}

impl Connection {
    /// Splits a connected socket into a reader and a [`Link`] whose writer
    /// task runs until every `Link` clone is dropped or the socket fails.
    pub fn new(stream: TcpStream, settings: &SessionSettings) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let (read, write) = stream.into_split();
        let (outbound, queue) = mpsc::channel::<Outgoing>(1024);
        let writer = FramedWrite::new(write, SmppCodec::new(settings.max_pdu_len));
        let tracker = Arc::new(Mutex::new(AckTracker::default()));
        let sequence = Arc::new(AtomicU32::new(0));
        tokio::spawn(write_loop(
            writer,
            queue,
            tracker.clone(),
            sequence.clone(),
            settings.ack_deadline(),
            settings.response_timeout(),
        ));
        Ok(Connection {
            read,
            buffer: BytesMut::new(),
            codec: SmppCodec::new(settings.max_pdu_len),
            partial_timeout: settings.partial_pdu_timeout(),
            frame_started: None,
            left_at: None,
            at_end: false,
            acks_read: Vec::new(),
            link: Link {
                outbound,
                sequence,
                pending: Arc::default(),
                tracker,
                response_timeout: settings.response_timeout(),
                reference: Arc::new(AtomicU16::new(1)),
                window: Arc::new(Semaphore::new(settings.window.max(1) as usize)),
                window_size: settings.window.max(1) as usize,
                registered_delivery: 0,
            },
            peer,
            last_frame: Instant::now(),
        })
    }

    /// When the last frame (any PDU, good or malformed, request or
    /// response) arrived; the connection's creation before the first one.
    /// Idle timeouts are measured from it.
    pub fn last_frame(&self) -> Instant {
        self.last_frame
    }

    /// The next frame; `None` at end of stream. A frame still incomplete
    /// `partial_pdu_timeout_ms` after its first byte arrived (not counting
    /// the time spent outside this call) is dropped and reported as
    /// invalid. Cancel-safe: bytes and timings are kept between calls.
    pub async fn next(&mut self) -> Option<Result<Inbound, std::io::Error>> {
        if let (Some(started), Some(left)) = (self.frame_started, self.left_at.take()) {
            // The session was busy, or chose not to read: not the peer's time.
            self.frame_started = Some(started + left.elapsed());
        }
        let item = self.read_frame().await;
        self.left_at = Some(Instant::now());
        item
    }

    async fn read_frame(&mut self) -> Option<Result<Inbound, std::io::Error>> {
        loop {
            if !self.buffer.is_empty() {
                match self.codec.decode(&mut self.buffer) {
                    Ok(Some(item)) => {
                        let now = Instant::now();
                        self.last_frame = now;
                        // What is left arrived by now: the next frame's clock.
                        self.frame_started = (!self.buffer.is_empty()).then_some(now);
                        if self.buffer.is_empty() && self.buffer.capacity() > RETAINED_BUFFER {
                            self.buffer = BytesMut::new();
                        }
                        return Some(Ok(item));
                    }
                    Ok(None) => {
                        if self.buffer.is_empty() {
                            // Skipped as garbage: no frame has started.
                            self.frame_started = None;
                        }
                    }
                    Err(error) => return Some(Err(error)),
                }
            }
            if self.at_end {
                // A frame cut by the end of the stream is dropped with it.
                return None;
            }
            let deadline = self
                .frame_started
                .filter(|_| !self.buffer.is_empty())
                .map(|started| started + self.partial_timeout);
            let readable = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.read.readable()).await {
                        Ok(readable) => readable,
                        Err(_) => {
                            self.frame_started = None;
                            match self.codec.abandon_partial(&mut self.buffer) {
                                Some(answer) => return Some(Ok(answer)),
                                None => continue,
                            }
                        }
                    }
                }
                None => self.read.readable().await,
            };
            if let Err(error) = readable {
                return Some(Err(error));
            }
            self.buffer.reserve(READ_CHUNK);
            match self.read.try_read_buf(&mut self.buffer) {
                Ok(0) => self.at_end = true,
                Ok(_) => {
                    if self.frame_started.is_none() {
                        self.frame_started = Some(Instant::now());
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// What a session's read loop gets from [`next_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request from the peer.
    Request(Pdu),
    /// The peer has read the acknowledgements known by these tokens (the
    /// message ids given to [`Link::acknowledge`]).
    AcksRead(Vec<String>),
}

/// Reads until a request arrives, or until a response proves that the peer
/// read acknowledgements: answers malformed frames (and keeps the session),
/// hands responses to the requests waiting for them. `None` when the
/// connection has ended. Cancel-safe.
pub async fn next_event(conn: &mut Connection) -> Option<Event> {
    loop {
        if !conn.acks_read.is_empty() {
            return Some(Event::AcksRead(std::mem::take(&mut conn.acks_read)));
        }
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
                let read = conn.link.answered(sequence);
                conn.acks_read.extend(read);
                if !conn.link.complete(pdu) {
                    tracing::debug!(sequence, "response to no pending request ignored");
                }
            }
            Ok(Inbound::Pdu(pdu)) => return Some(Event::Request(pdu)),
        }
    }
}

/// Reads until a request arrives: answers malformed frames (and keeps the
/// session), hands responses to the requests waiting for them. `None` when
/// the connection has ended. Proofs that acknowledgements were read are
/// dropped (see [`next_event`]).
pub async fn next_request(conn: &mut Connection) -> Option<Pdu> {
    loop {
        if let Event::Request(pdu) = next_event(conn).await? {
            return Some(pdu);
        }
    }
}

/// A session's inbound window: how many of the peer's messages may be
/// worked on at once. The read loop holds one permit before it reads; a
/// message that is worked on in a task of its own takes the permit with it,
/// and the loop stops reading until one comes back.
pub struct InboundWindow {
    permits: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl InboundWindow {
    /// A window of `size` messages (at least 1).
    pub fn new(size: u32) -> Self {
        InboundWindow {
            permits: Arc::new(Semaphore::new(size.max(1) as usize)),
            held: None,
        }
    }

    /// True when the loop may read.
    pub fn is_open(&self) -> bool {
        self.held.is_some()
    }

    /// Waits for room in the window. Cancel-safe.
    pub async fn open(&mut self) {
        if self.held.is_none() {
            if let Ok(permit) = self.permits.clone().acquire_owned().await {
                self.held = Some(permit);
            }
        }
    }

    /// The permit for a message worked on elsewhere; the loop must
    /// [`InboundWindow::open`] again before reading.
    pub fn take(&mut self) -> Option<OwnedSemaphorePermit> {
        self.held.take()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes like the writer task: `item` at the next ordinal.
    fn write(t: &mut AckTracker, request: Option<u32>, ack: Option<&str>) {
        t.written += 1;
        let ordinal = t.written;
        if let Some(sequence) = request {
            t.requests.insert(sequence, ordinal);
        }
        if let Some(token) = ack {
            t.tracking = true;
            t.unread
                .push_back((ordinal, token.to_owned(), Instant::now()));
        }
    }

    #[test]
    fn a_response_proves_read_only_the_acknowledgements_written_before_its_request() {
        let mut t = AckTracker::default();
        write(&mut t, Some(1), None); // a request before any acknowledgement
        write(&mut t, None, Some("a"));
        write(&mut t, Some(2), None);
        write(&mut t, None, Some("b"));
        assert!(t.answered(1).is_empty(), "written before both");
        assert_eq!(t.answered(2), vec!["a".to_owned()]);
        assert!(t.answered(2).is_empty(), "once");
        assert!(t.answered(99).is_empty(), "not a request of ours");
        write(&mut t, Some(3), None);
        assert_eq!(t.answered(3), vec!["b".to_owned()]);
        assert!(t.unread.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_is_due_only_when_no_later_request_will_prove_the_acknowledgement() {
        let give_up = Duration::from_secs(10);
        let mut t = AckTracker::default();
        assert_eq!(t.probe_due(give_up), None, "nothing to prove");
        write(&mut t, Some(1), None);
        write(&mut t, None, Some("a"));
        let first = t.unread[0].2;
        tokio::time::advance(Duration::from_millis(300)).await;
        write(&mut t, None, Some("b"));
        // Timed from the oldest waiting: a stream of acknowledgements does
        // not put it off.
        let due = t.probe_due(give_up).expect("a probe is due");
        assert_eq!(due, first + PROBE_AFTER);
        // A reply written after them will prove them when answered: no probe.
        write(&mut t, Some(2), None);
        assert_eq!(t.probe_due(give_up), None);
        // That request timed out (Link::request forgets it): probe again.
        t.requests.remove(&2);
        assert!(t.probe_due(give_up).is_some());
        // The probe goes out; none more while it is out...
        write(&mut t, Some(3), None);
        t.probe = Some((3, Instant::now()));
        assert_eq!(t.probe_due(give_up), None);
        // ... and when it is never answered, what it was for stays
        // unproven and is not probed for again.
        tokio::time::advance(give_up).await;
        assert_eq!(t.probe_due(give_up), None);
        assert!(t.unread.is_empty());
        assert!(t.answered(3).is_empty());
    }
}
