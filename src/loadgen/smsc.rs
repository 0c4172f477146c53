//! The SMSC side of the load generator, one task pair per TCP connection: a
//! reader that takes the bind, answers every `submit_sm` at once with a
//! `submit_sm_resp` (message ids counted up, in decimal or hex) and reports
//! what it read to the run as [`Event`]s, and a writer that drains a queue of
//! PDUs in batches (every PDU waiting is encoded, then one flush), so a busy
//! link costs one `write` per batch rather than one per PDU.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, info};

use crate::smpp::codec::{Inbound, SmppCodec};
use crate::smpp::pdu::{status, tag, BindKind, Body, Pdu, ShortMessage};

use super::texts::SenderPlan;
use super::LoadgenError;

/// Most PDUs encoded before one flush.
pub(crate) const WRITE_BATCH: usize = 512;

/// How message ids in `submit_sm_resp` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageIdFormat {
    /// `1234` (what Kannel's `msg-id-type` calls decimal).
    #[default]
    Decimal,
    /// `4d2`.
    Hex,
}

impl FromStr for MessageIdFormat {
    type Err = LoadgenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "decimal" | "dec" => Ok(MessageIdFormat::Decimal),
            "hex" => Ok(MessageIdFormat::Hex),
            other => Err(LoadgenError::Setting {
                field: "message-ids",
                problem: format!("{other:?} is neither decimal nor hex"),
            }),
        }
    }
}

/// Numbers the replies' message ids.
#[derive(Debug)]
pub(crate) struct MessageIds {
    next: AtomicU64,
    format: MessageIdFormat,
}

impl MessageIds {
    pub(crate) fn new(format: MessageIdFormat) -> Self {
        MessageIds {
            next: AtomicU64::new(1),
            format,
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match self.format {
            MessageIdFormat::Decimal => n.to_string(),
            MessageIdFormat::Hex => format!("{n:x}"),
        }
    }
}

/// What a connection tells the run.
#[derive(Debug)]
pub(crate) enum Event {
    /// A peer bound; deliver_sm for it go into `outbound`.
    Bound {
        session: u64,
        kind: BindKind,
        label: String,
        outbound: mpsc::UnboundedSender<Pdu>,
    },
    /// The answer to deliver_sm `sequence` (a generic_nack counts as a refusal).
    Acked { sequence: u32, status: u32 },
    /// A part of a reply, to message `index` when the destination is one of
    /// this run's senders; `total` parts make the whole reply.
    Reply {
        index: Option<u64>,
        total: u8,
        at: Instant,
    },
    /// The connection is gone.
    Closed { session: u64 },
}

/// Who may bind (`None`: anyone).
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    pub system_id: Option<String>,
    pub password: Option<String>,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub credentials: Credentials,
    pub ids: MessageIds,
    pub plan: SenderPlan,
    pub events: mpsc::UnboundedSender<Event>,
    pub bind_wait: Duration,
}

/// Accepts connections until the task is aborted.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut session = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                session += 1;
                tokio::spawn(serve(stream, peer, session, shared.clone()));
            }
            Err(error) => {
                debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Encodes every queued PDU, then flushes once; ends when the queue closes
/// or the socket fails, shutting the write side down.
pub(crate) async fn write_batches<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, SmppCodec>,
    mut queue: mpsc::UnboundedReceiver<Pdu>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for pdu in batch.drain(..) {
            if sink.feed(pdu).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn serve(stream: TcpStream, peer: SocketAddr, session: u64, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "TCP_NODELAY not set");
    }
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, SmppCodec::default());
    let (outbound, queue) = mpsc::unbounded_channel();
    tokio::spawn(write_batches(
        FramedWrite::new(write, SmppCodec::default()),
        queue,
    ));
    let bound = tokio::time::timeout(
        shared.bind_wait,
        take_bind(&mut reader, &outbound, &shared.credentials),
    )
    .await;
    let Ok(Some((kind, system_id))) = bound else {
        debug!(%peer, "no bind; connection closed");
        return;
    };
    let label = format!("{} {system_id}@{peer}", kind.as_str());
    info!(bind = %label, "peer bound");
    if shared
        .events
        .send(Event::Bound {
            session,
            kind,
            label,
            outbound: outbound.clone(),
        })
        .is_err()
    {
        return;
    }
    while let Some(item) = reader.next().await {
        let pdu = match item {
            Ok(Inbound::Pdu(pdu)) => pdu,
            Ok(Inbound::Invalid { header, error }) => {
                debug!(%error, "malformed PDU");
                if let Some(h) = header {
                    let _ = outbound.send(
                        Pdu::new(h.sequence_number, Body::GenericNack).with_status(error.status),
                    );
                }
                continue;
            }
            Err(error) => {
                debug!(%error, "read failed");
                break;
            }
        };
        if !handle(pdu, &outbound, &shared) {
            break;
        }
    }
    let _ = shared.events.send(Event::Closed { session });
}

/// Waits for a bind and answers it; `None` when refused or the peer left.
async fn take_bind(
    reader: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, SmppCodec>,
    outbound: &mpsc::UnboundedSender<Pdu>,
    credentials: &Credentials,
) -> Option<(BindKind, String)> {
    while let Some(Ok(item)) = reader.next().await {
        let Inbound::Pdu(pdu) = item else { continue };
        let seq = pdu.sequence_number;
        match pdu.body {
            Body::Bind(bind) => {
                let refusal = if credentials
                    .system_id
                    .as_ref()
                    .is_some_and(|id| *id != bind.system_id)
                {
                    Some(status::ESME_RINVSYSID)
                } else if credentials
                    .password
                    .as_ref()
                    .is_some_and(|p| *p != bind.password)
                {
                    Some(status::ESME_RINVPASWD)
                } else {
                    None
                };
                let resp = Pdu::new(
                    seq,
                    Body::BindResp {
                        kind: bind.kind,
                        system_id: "loadgen".to_owned(),
                        tlvs: Vec::new(),
                    },
                );
                return match refusal {
                    None => {
                        let _ = outbound.send(resp);
                        Some((bind.kind, bind.system_id))
                    }
                    Some(code) => {
                        info!(system_id = %bind.system_id, "bind refused");
                        let _ = outbound.send(resp.with_status(code));
                        None
                    }
                };
            }
            Body::EnquireLink => {
                let _ = outbound.send(Pdu::new(seq, Body::EnquireLinkResp));
            }
            _ if !pdu.is_response() => {
                let _ = outbound
                    .send(Pdu::new(seq, Body::GenericNack).with_status(status::ESME_RINVBNDSTS));
            }
            _ => {}
        }
    }
    None
}

/// Handles one PDU of a bound peer; false when the session should end.
fn handle(pdu: Pdu, outbound: &mpsc::UnboundedSender<Pdu>, shared: &Shared) -> bool {
    let seq = pdu.sequence_number;
    match pdu.body {
        Body::SubmitSm(sm) => {
            let at = Instant::now();
            let _ = outbound.send(Pdu::submit_sm_resp(
                seq,
                shared.ids.next(),
                status::ESME_ROK,
            ));
            let event = Event::Reply {
                index: shared.plan.index_of(&sm.destination_addr),
                total: parts_in_reply(&sm),
                at,
            };
            shared.events.send(event).is_ok()
        }
        Body::DeliverSmResp { .. } => shared
            .events
            .send(Event::Acked {
                sequence: seq,
                status: pdu.command_status,
            })
            .is_ok(),
        Body::GenericNack => shared
            .events
            .send(Event::Acked {
                sequence: seq,
                status: match pdu.command_status {
                    status::ESME_ROK => status::ESME_RUNKNOWNERR,
                    refused => refused,
                },
            })
            .is_ok(),
        Body::EnquireLink => outbound.send(Pdu::new(seq, Body::EnquireLinkResp)).is_ok(),
        Body::Unbind => {
            let _ = outbound.send(Pdu::new(seq, Body::UnbindResp));
            false
        }
        _ if pdu.is_response() => true,
        _ => outbound
            .send(Pdu::new(seq, Body::GenericNack).with_status(status::ESME_RINVCMDID))
            .is_ok(),
    }
}

/// How many parts the reply this submit_sm belongs to has: from its
/// concatenation header (8- or 16-bit reference), else its SAR TLVs, else 1.
pub fn parts_in_reply(sm: &ShortMessage) -> u8 {
    const UDHI: u8 = 0x40;
    if sm.esm_class & UDHI != 0 {
        if let Some((&udhl, rest)) = sm.short_message.split_first() {
            let mut ies = rest.get(..usize::from(udhl)).unwrap_or(&[]);
            while let [iei, len, tail @ ..] = ies {
                let len = usize::from(*len);
                let Some(value) = tail.get(..len) else { break };
                match (iei, value) {
                    (0x00, [_, total, _]) | (0x08, [_, _, total, _]) => return (*total).max(1),
                    _ => {}
                }
                ies = &tail[len..];
            }
        }
    }
    match sm.tlv(tag::SAR_TOTAL_SEGMENTS) {
        Some([total]) => (*total).max(1),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::Tlv;

    fn sm(esm_class: u8, short_message: Vec<u8>, tlvs: Vec<Tlv>) -> ShortMessage {
        ShortMessage {
            esm_class,
            short_message,
            tlvs,
            ..ShortMessage::default()
        }
    }

    #[test]
    fn reply_parts_are_read_from_udh_or_sar() {
        assert_eq!(parts_in_reply(&sm(0, b"HS 1".to_vec(), vec![])), 1);
        assert_eq!(
            parts_in_reply(&sm(0x40, vec![5, 0, 3, 9, 2, 1, b'a'], vec![])),
            2
        );
        // A 16-bit reference after another element.
        assert_eq!(
            parts_in_reply(&sm(
                0x40,
                vec![9, 0x24, 1, 0, 0x08, 4, 0, 9, 3, 2, b'a'],
                vec![]
            )),
            3
        );
        assert_eq!(
            parts_in_reply(&sm(
                0,
                b"x".to_vec(),
                vec![Tlv {
                    tag: tag::SAR_TOTAL_SEGMENTS,
                    value: vec![4]
                }]
            )),
            4
        );
        // A header cut short is one part, not a panic.
        assert_eq!(parts_in_reply(&sm(0x40, vec![5, 0, 3], vec![])), 1);
        assert_eq!(parts_in_reply(&sm(0x40, vec![], vec![])), 1);
    }

    #[test]
    fn message_ids_count_up_in_either_base() {
        let dec = MessageIds::new(MessageIdFormat::Decimal);
        let hex = MessageIds::new(MessageIdFormat::Hex);
        for _ in 0..9 {
            dec.next();
            hex.next();
        }
        assert_eq!(dec.next(), "10");
        assert_eq!(hex.next(), "a");
        assert_eq!(
            "hex".parse::<MessageIdFormat>().unwrap(),
            MessageIdFormat::Hex
        );
        assert!("octal".parse::<MessageIdFormat>().is_err());
    }
}
