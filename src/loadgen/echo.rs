//! A trivial ESME for measuring the load generator itself: binds as a
//! transceiver and answers every `deliver_sm` at once with its
//! `deliver_sm_resp` and a one-part `submit_sm` back to the sender — no
//! lookup, no storage. Whatever throughput a run against it shows is the
//! ceiling of the load generator (both share the machine).

use std::net::SocketAddr;

use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::smpp::codec::{Inbound, SmppCodec};
use crate::smpp::pdu::{status, Bind, BindKind, Body, Pdu, ShortMessage};

use super::smsc::write_batches;
use super::LoadgenError;

/// What the echo ESME did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// deliver_sm received (and answered).
    pub delivered: u64,
    /// submit_sm_resp received for its replies.
    pub submitted: u64,
}

/// Connects to `addr`, binds as a transceiver with these credentials, and
/// echoes until the SMSC unbinds or closes the connection.
pub async fn run(
    addr: SocketAddr,
    system_id: &str,
    password: &str,
) -> Result<EchoStats, LoadgenError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| LoadgenError::Echo(format!("{what}: {e}"));
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail("connect", &e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| fail("TCP_NODELAY", &e))?;
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, SmppCodec::default());
    let (outbound, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_batches(
        FramedWrite::new(write, SmppCodec::default()),
        queue,
    ));
    let closed = || LoadgenError::Echo("the SMSC closed the connection".to_owned());
    outbound
        .send(Pdu::new(
            1,
            Body::Bind(Bind::new(BindKind::Transceiver, system_id, password)),
        ))
        .map_err(|_| closed())?;
    let mut stats = EchoStats::default();
    let mut sequence = 1u32;
    let mut bound = false;
    while let Some(item) = reader.next().await {
        let Ok(Inbound::Pdu(pdu)) = item else {
            continue;
        };
        let seq = pdu.sequence_number;
        let sent = match pdu.body {
            Body::BindResp { .. } if !bound => {
                if pdu.command_status != status::ESME_ROK {
                    return Err(LoadgenError::Echo(format!(
                        "bind refused with status 0x{:08x}",
                        pdu.command_status
                    )));
                }
                bound = true;
                true
            }
            Body::DeliverSm(sm) => {
                stats.delivered += 1;
                sequence = sequence % 0x7fff_fffe + 1;
                let reply = ShortMessage {
                    source_addr: sm.destination_addr,
                    dest_addr_ton: sm.source_addr_ton,
                    dest_addr_npi: sm.source_addr_npi,
                    destination_addr: sm.source_addr,
                    short_message: b"echo".to_vec(),
                    ..ShortMessage::default()
                };
                outbound
                    .send(Pdu::deliver_sm_resp(seq, status::ESME_ROK))
                    .is_ok()
                    && outbound
                        .send(Pdu::new(sequence, Body::SubmitSm(reply)))
                        .is_ok()
            }
            Body::SubmitSmResp { .. } => {
                stats.submitted += 1;
                true
            }
            Body::EnquireLink => outbound.send(Pdu::new(seq, Body::EnquireLinkResp)).is_ok(),
            Body::Unbind => {
                let _ = outbound.send(Pdu::new(seq, Body::UnbindResp));
                break;
            }
            _ => true,
        };
        if !sent {
            break;
        }
    }
    drop(outbound);
    let _ = writer.await;
    if !bound {
        return Err(closed());
    }
    Ok(stats)
}
