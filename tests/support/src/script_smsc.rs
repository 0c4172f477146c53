//! A scriptable SMSC for the carrier-grade tests: the gateway binds to it as
//! an ESME (transceiver, transmitter or receiver), and the test decides how
//! it behaves — which status each submit_sm gets, whether responses are held
//! back (a window in flight), whether enquire_link is answered, how message
//! ids are written (hex or decimal), when the TCP connection drops. It records
//! every submit_sm with its arrival time. Built on the gateway's PDU codec;
//! interoperability with code nobody here wrote is proven separately
//! (smpp34, smpplib, node-smpp).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use motcua_sms::smpp::codec::{Inbound, SmppCodec};
use motcua_sms::smpp::pdu::{status, BindKind, Body, Pdu, ShortMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// How the SMSC writes the message ids it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStyle {
    /// `1a2b` (lowercase hex).
    Hex,
    /// `6699`.
    Decimal,
}

/// A submit_sm as received.
#[derive(Debug, Clone)]
pub struct Submit {
    /// When it arrived.
    pub at: Instant,
    /// Which connection (1-based, in accept order).
    pub connection: u64,
    /// Its content.
    pub sm: ShortMessage,
    /// The status it was (or will be) answered with.
    pub status: u32,
    /// The message id given (empty when refused or held).
    pub id: String,
    /// The numeric value of the id.
    pub number: u64,
}

struct Connection {
    number: u64,
    kind: BindKind,
    outbound: mpsc::UnboundedSender<Pdu>,
    close: CancellationToken,
    sequence: Arc<AtomicU32>,
    pending: Arc<Mutex<HashMap<u32, oneshot::Sender<u32>>>>,
}

#[derive(Default)]
struct Policy {
    /// Statuses for the next submit_sm, in order; then 0 (ESME_ROK).
    scripted: VecDeque<u32>,
    /// Hold back the responses of the next this-many submit_sm (they are
    /// received but never answered).
    hold: usize,
    /// Which submit_sm `hold` applies to (all when unset).
    hold_only: Option<fn(&ShortMessage) -> bool>,
    /// Stop answering enquire_link.
    mute_enquire_link: bool,
    id_style: Option<IdStyle>,
}

struct Shared {
    policy: Mutex<Policy>,
    connections: Mutex<Vec<Connection>>,
    submits: Mutex<Vec<Submit>>,
    submit_count: watch::Sender<usize>,
    binds: watch::Sender<Vec<(u64, BindKind)>>,
    next_connection: AtomicU64,
    next_id: AtomicU64,
    enquire_links: AtomicU64,
}

/// The scriptable SMSC.
pub struct ScriptSmsc {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for ScriptSmsc {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ScriptSmsc {
    /// Listens on 127.0.0.1, a free port; any credentials bind.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            policy: Mutex::default(),
            connections: Mutex::default(),
            submits: Mutex::default(),
            submit_count: watch::channel(0).0,
            binds: watch::channel(Vec::new()).0,
            next_connection: AtomicU64::new(1),
            next_id: AtomicU64::new(0x1000),
            enquire_links: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        {
            let shared = shared.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(serve(shared.clone(), stream, stop.clone()));
                        }
                    }
                }
            });
        }
        ScriptSmsc { shared, addr, stop }
    }

    /// The port to bind to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn policy(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.shared.policy.lock().unwrap()
    }

    /// The next submit_sm get these statuses, in order.
    pub fn script_statuses(&self, statuses: impl IntoIterator<Item = u32>) {
        self.policy().scripted.extend(statuses);
    }

    /// The next `count` submit_sm are received but never answered.
    pub fn hold_responses(&self, count: usize) {
        self.policy().hold = count;
    }

    /// The next `count` submit_sm for which `which` holds are received but
    /// never answered.
    pub fn hold_responses_of(&self, count: usize, which: fn(&ShortMessage) -> bool) {
        let mut p = self.policy();
        p.hold = count;
        p.hold_only = Some(which);
    }

    /// Stop (or resume) answering enquire_link.
    pub fn mute_enquire_link(&self, mute: bool) {
        self.policy().mute_enquire_link = mute;
    }

    /// How message ids are written (default: hex).
    pub fn set_id_style(&self, style: IdStyle) {
        self.policy().id_style = Some(style);
    }

    /// enquire_link requests received so far.
    pub fn enquire_links(&self) -> u64 {
        self.shared.enquire_links.load(Ordering::SeqCst)
    }

    /// Every submit_sm received so far.
    pub fn submits(&self) -> Vec<Submit> {
        self.shared.submits.lock().unwrap().clone()
    }

    /// Waits until at least `count` submit_sm have arrived.
    pub async fn wait_submits(&self, count: usize, wait: Duration) -> Vec<Submit> {
        let mut rx = self.shared.submit_count.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n >= count)).await;
        self.submits()
    }

    /// Waits until the live binds satisfy `ready` (given (connection, kind) pairs).
    pub async fn wait_binds(
        &self,
        wait: Duration,
        ready: impl Fn(&[(u64, BindKind)]) -> bool,
    ) -> Vec<(u64, BindKind)> {
        let mut rx = self.shared.binds.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|b| ready(b))).await;
        let binds = rx.borrow().clone();
        binds
    }

    /// Closes every connection at once, without unbind (a dropped link).
    pub fn drop_connections(&self) {
        for c in self.shared.connections.lock().unwrap().iter() {
            c.close.cancel();
        }
    }

    /// Sends a deliver_sm on a connection that may receive; returns the
    /// deliver_sm_resp's status.
    pub async fn deliver(&self, sm: ShortMessage) -> Result<u32, String> {
        let (outbound, sequence, pending) = {
            let connections = self.shared.connections.lock().unwrap();
            let c = connections
                .iter()
                .find(|c| c.kind != BindKind::Transmitter && !c.close.is_cancelled())
                .ok_or("no receiving connection is bound")?;
            (c.outbound.clone(), c.sequence.clone(), c.pending.clone())
        };
        let seq = sequence.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        pending.lock().unwrap().insert(seq, tx);
        outbound
            .send(Pdu::new(seq, Body::DeliverSm(sm)))
            .map_err(|_| "connection closed".to_string())?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| "no deliver_sm_resp within 10 s".to_string())?
            .map_err(|_| "connection closed before deliver_sm_resp".to_string())
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let number = shared.next_connection.fetch_add(1, Ordering::SeqCst);
    let (mut sink, mut source) = Framed::new(stream, SmppCodec::new(65_536)).split();
    let (outbound, mut queue) = mpsc::unbounded_channel::<Pdu>();
    let close = CancellationToken::new();
    let sequence = Arc::new(AtomicU32::new(1));
    let pending: Arc<Mutex<HashMap<u32, oneshot::Sender<u32>>>> = Arc::default();
    let mut kind = None;
    loop {
        let inbound = tokio::select! {
            _ = stop.cancelled() => break,
            _ = close.cancelled() => break,
            Some(pdu) = queue.recv() => {
                if sink.send(pdu).await.is_err() { break }
                continue;
            }
            inbound = source.next() => inbound,
        };
        let Some(Ok(Inbound::Pdu(pdu))) = inbound else {
            break;
        };
        let seq = pdu.sequence_number;
        let answer = match pdu.body {
            Body::Bind(bind) => {
                kind = Some(bind.kind);
                shared.connections.lock().unwrap().push(Connection {
                    number,
                    kind: bind.kind,
                    outbound: outbound.clone(),
                    close: close.clone(),
                    sequence: sequence.clone(),
                    pending: pending.clone(),
                });
                shared
                    .binds
                    .send_modify(|binds| binds.push((number, bind.kind)));
                Some(Pdu::new(
                    seq,
                    Body::BindResp {
                        kind: bind.kind,
                        system_id: "script".into(),
                        tlvs: Vec::new(),
                    },
                ))
            }
            Body::SubmitSm(sm) => {
                let (status, hold, style) = {
                    let mut p = shared.policy.lock().unwrap();
                    let status = p.scripted.pop_front().unwrap_or(0);
                    let hold = p.hold > 0 && p.hold_only.is_none_or(|which| which(&sm));
                    if hold {
                        p.hold -= 1;
                    }
                    (status, hold, p.id_style.unwrap_or(IdStyle::Hex))
                };
                let value = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let id = if status == status::ESME_ROK && !hold {
                    match style {
                        IdStyle::Hex => format!("{value:x}"),
                        IdStyle::Decimal => value.to_string(),
                    }
                } else {
                    String::new()
                };
                let submit = Submit {
                    at: Instant::now(),
                    connection: number,
                    sm,
                    status: if hold { u32::MAX } else { status },
                    id: id.clone(),
                    number: value,
                };
                let count = {
                    let mut submits = shared.submits.lock().unwrap();
                    submits.push(submit);
                    submits.len()
                };
                shared.submit_count.send_replace(count);
                (!hold).then(|| Pdu::submit_sm_resp(seq, id, status))
            }
            Body::EnquireLink => {
                shared.enquire_links.fetch_add(1, Ordering::SeqCst);
                let mute = shared.policy.lock().unwrap().mute_enquire_link;
                (!mute).then(|| Pdu::new(seq, Body::EnquireLinkResp))
            }
            Body::Unbind => {
                let _ = sink.send(Pdu::new(seq, Body::UnbindResp)).await;
                break;
            }
            Body::DeliverSmResp { .. } => {
                if let Some(waiter) = pending.lock().unwrap().remove(&seq) {
                    let _ = waiter.send(pdu.command_status);
                }
                None
            }
            _ => None,
        };
        if let Some(answer) = answer {
            if sink.send(answer).await.is_err() {
                break;
            }
        }
    }
    shared
        .connections
        .lock()
        .unwrap()
        .retain(|c| c.number != number);
    if kind.is_some() {
        shared
            .binds
            .send_modify(|binds| binds.retain(|(n, _)| *n != number));
    }
}
