//! An independent ESME (SMPP client) for integration tests: it binds to an
//! SMSC-like listener (the gateway under test), submits raw bytes and collects
//! the deliver_sm it is sent.
//!
//! Built on smpp34's *codec* over a plain tokio `TcpStream`, not on
//! `smpp34::client::SmppClient`: that client only logs a refused bind (the
//! command_status never reaches the caller) and its bind PDU constructor is
//! crate-private and asserts on password length > 8. Here the bind PDU is
//! written by hand (a dozen bytes of layout), everything else uses smpp34's
//! public encode/decode.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smpp34::{
    bind_transceiver_resp, deliver_sm, enquire_link, submit_sm, submit_sm_resp, CommandHeader,
    SmppError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::timeout;

// command_id values (smpp34's CommandId enum is crate-private).
pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
pub const SUBMIT_SM: u32 = 0x0000_0004;
pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
pub const DELIVER_SM: u32 = 0x0000_0005;
pub const UNBIND: u32 = 0x0000_0006;
pub const UNBIND_RESP: u32 = 0x8000_0006;
pub const ENQUIRE_LINK: u32 = 0x0000_0015;
pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
pub const GENERIC_NACK: u32 = 0x8000_0000;

/// How long bind / submit / enquire_link / unbind wait for their response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PDU_LEN: u32 = 64 * 1024;

/// One short message as it was on the wire (no text decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub source_addr: String,
    pub destination_addr: String,
    pub esm_class: u8,
    pub data_coding: u8,
    pub registered_delivery: u8,
    pub short_message: Vec<u8>,
    /// Optional parameters in wire order as (tag, value), e.g. 0x0424 message_payload.
    pub tlvs: Vec<(u16, Vec<u8>)>,
    pub sequence_number: u32,
}

#[derive(Debug)]
pub enum EsmeError {
    /// The peer answered with this non-zero command_status (bind_transceiver_resp
    /// or generic_nack). 0x0E = ESME_RINVPASWD, 0x0F = ESME_RINVSYSID, ...
    Status(u32),
    /// No response within the response timeout.
    Timeout,
    /// The connection is closed (EOF or I/O error).
    Closed,
    /// short_message longer than 254 octets (smpp34 would panic on it).
    TooLong(usize),
    Io(std::io::Error),
}
pub type BindError = EsmeError;

impl EsmeError {
    /// The command_status if the peer refused with one.
    pub fn status(&self) -> Option<u32> {
        match self {
            EsmeError::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// A decoded PDU: header plus the whole PDU bytes (header included).
struct Pdu {
    header: CommandHeader,
    bytes: Vec<u8>,
}

async fn read_pdu(reader: &mut OwnedReadHalf) -> Result<Pdu, EsmeError> {
    let mut len = [0u8; 4];
    reader
        .read_exact(&mut len)
        .await
        .map_err(|_| EsmeError::Closed)?;
    let command_length = u32::from_be_bytes(len);
    if !(16..=MAX_PDU_LEN).contains(&command_length) {
        return Err(EsmeError::Closed); // cannot resync a length-delimited stream
    }
    let mut bytes = vec![0u8; command_length as usize];
    bytes[..4].copy_from_slice(&len);
    reader
        .read_exact(&mut bytes[4..])
        .await
        .map_err(|_| EsmeError::Closed)?;
    let header = CommandHeader::decode(&bytes).map_err(|e| EsmeError::Status(e as u32))?;
    Ok(Pdu { header, bytes })
}

fn header_only(command_id: u32, command_status: u32, sequence_number: u32) -> Vec<u8> {
    CommandHeader {
        command_length: 16,
        command_id,
        command_status,
        sequence_number,
    }
    .encode()
}

fn c_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

/// bind_transceiver, SMPP 3.4 §4.1.5 (hand-encoded: smpp34's constructor is pub(crate)).
fn encode_bind_transceiver(sequence_number: u32, system_id: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    c_string(&mut body, system_id);
    c_string(&mut body, password);
    c_string(&mut body, ""); // system_type
    body.extend_from_slice(&[0x34, 0, 0]); // interface_version, addr_ton, addr_npi
    c_string(&mut body, ""); // address_range
    let mut pdu = CommandHeader {
        command_length: 16 + body.len() as u32,
        command_id: BIND_TRANSCEIVER,
        command_status: 0,
        sequence_number,
    }
    .encode();
    pdu.extend_from_slice(&body);
    pdu
}

pub struct PeerEsme {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    /// Responses (…_resp, generic_nack) to requests we sent, in arrival order.
    responses: mpsc::UnboundedReceiver<Pdu>,
    delivers: mpsc::UnboundedReceiver<RawMessage>,
    next_seq: u32,
    reader_task: JoinHandle<()>,
    /// Responses read while waiting for a different sequence number.
    stash: VecDeque<Pdu>,
}

impl PeerEsme {
    /// Connect and bind_transceiver. `Err(EsmeError::Status(code))` on refusal
    /// (e.g. 0x0E ESME_RINVPASWD); the connection is then dropped.
    pub async fn bind_transceiver(
        addr: SocketAddr,
        system_id: &str,
        password: &str,
    ) -> Result<Self, BindError> {
        let stream = timeout(RESPONSE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| EsmeError::Timeout)?
            .map_err(EsmeError::Io)?;
        stream.set_nodelay(true).ok();
        let (mut reader, mut writer) = stream.into_split();
        writer
            .write_all(&encode_bind_transceiver(1, system_id, password))
            .await
            .map_err(EsmeError::Io)?;
        let resp = timeout(RESPONSE_TIMEOUT, read_pdu(&mut reader))
            .await
            .map_err(|_| EsmeError::Timeout)??;
        match resp.header.command_id {
            BIND_TRANSCEIVER_RESP => {
                let status = resp.header.command_status;
                let resp = bind_transceiver_resp::decode(resp.header, &resp.bytes)
                    .map_err(|e| EsmeError::Status(e as u32))?;
                if status != 0 {
                    return Err(EsmeError::Status(resp.command_status()));
                }
            }
            GENERIC_NACK => return Err(EsmeError::Status(resp.header.command_status)),
            _ => return Err(EsmeError::Status(SmppError::ESME_RINVCMDID as u32)),
        }

        let writer = Arc::new(Mutex::new(writer));
        let (resp_tx, responses) = mpsc::unbounded_channel();
        let (deliver_tx, delivers) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_loop(reader, writer.clone(), resp_tx, deliver_tx));
        Ok(PeerEsme {
            writer,
            responses,
            delivers,
            next_seq: 2,
            reader_task,
            stash: VecDeque::new(),
        })
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    async fn send(&self, pdu: &[u8]) -> Result<(), EsmeError> {
        self.writer
            .lock()
            .await
            .write_all(pdu)
            .await
            .map_err(EsmeError::Io)
    }

    /// Wait for the response carrying `sequence_number`.
    async fn response(&mut self, sequence_number: u32) -> Result<Pdu, EsmeError> {
        if let Some(i) = self
            .stash
            .iter()
            .position(|p| p.header.sequence_number == sequence_number)
        {
            return Ok(self.stash.remove(i).unwrap());
        }
        let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.responses.recv()).await {
                Err(_) => return Err(EsmeError::Timeout),
                Ok(None) => return Err(EsmeError::Closed),
                Ok(Some(p)) if p.header.sequence_number == sequence_number => return Ok(p),
                Ok(Some(p)) => self.stash.push_back(p),
            }
        }
    }

    /// submit_sm (TON/NPI 0, no registered_delivery). Returns the submit_sm_resp's
    /// (command_status, message_id); message_id is "" when the status is non-zero.
    /// A generic_nack comes back as `Err(Status(code))`.
    pub async fn submit(
        &mut self,
        source: &str,
        dest: &str,
        data_coding: u8,
        short_message: &[u8],
    ) -> Result<(u32, String), EsmeError> {
        self.submit_with(source, dest, 0, data_coding, short_message)
            .await
    }

    /// Same as `submit` with an explicit esm_class (0x40 = UDHI for concatenated parts).
    pub async fn submit_with(
        &mut self,
        source: &str,
        dest: &str,
        esm_class: u8,
        data_coding: u8,
        short_message: &[u8],
    ) -> Result<(u32, String), EsmeError> {
        self.submit_with_tlvs(source, dest, esm_class, data_coding, short_message, &[])
            .await
    }

    /// Same as `submit_with`, with optional parameters (tag, value) appended
    /// after the mandatory ones (smpp34's constructor takes none, so they are
    /// written here and the command_length adjusted), e.g. 0x0204
    /// user_message_reference.
    pub async fn submit_with_tlvs(
        &mut self,
        source: &str,
        dest: &str,
        esm_class: u8,
        data_coding: u8,
        short_message: &[u8],
        tlvs: &[(u16, Vec<u8>)],
    ) -> Result<(u32, String), EsmeError> {
        if short_message.len() > 254 {
            return Err(EsmeError::TooLong(short_message.len())); // submit_sm::new asserts
        }
        let seq = self.seq();
        let pdu = submit_sm::new(
            seq,
            String::new(),
            0,
            0,
            source.into(),
            0,
            0,
            dest.into(),
            esm_class,
            0,
            0,
            String::new(),
            String::new(),
            0,
            0,
            data_coding,
            0,
            short_message.to_vec(),
        )
        .encode();
        let mut pdu = pdu;
        for (tag, value) in tlvs {
            pdu.extend_from_slice(&tag.to_be_bytes());
            pdu.extend_from_slice(&(value.len() as u16).to_be_bytes());
            pdu.extend_from_slice(value);
        }
        let length = pdu.len() as u32;
        pdu[..4].copy_from_slice(&length.to_be_bytes());
        self.send(&pdu).await?;
        let resp = self.response(seq).await?;
        match resp.header.command_id {
            SUBMIT_SM_RESP => {
                let r = submit_sm_resp::decode(resp.header, &resp.bytes)
                    .map_err(|e| EsmeError::Status(e as u32))?;
                Ok((r.command_status(), r.message_id.unwrap_or_default()))
            }
            _ => Err(EsmeError::Status(resp.header.command_status)),
        }
    }

    /// Next deliver_sm (already answered with deliver_sm_resp ESME_ROK), or None
    /// on timeout / closed connection.
    pub async fn next_deliver(&mut self, wait: Duration) -> Option<RawMessage> {
        timeout(wait, self.delivers.recv()).await.ok().flatten()
    }

    /// Send enquire_link, return the enquire_link_resp's command_status.
    pub async fn enquire_link(&mut self) -> Result<u32, EsmeError> {
        let seq = self.seq();
        self.send(&enquire_link::new(seq).encode()).await?;
        Ok(self.response(seq).await?.header.command_status)
    }

    /// True while the peer has not closed the connection.
    pub fn is_connected(&self) -> bool {
        !self.reader_task.is_finished()
    }

    /// Send unbind, wait (bounded) for unbind_resp, close the socket.
    pub async fn unbind(mut self) {
        let seq = self.seq();
        if self.send(&header_only(UNBIND, 0, seq)).await.is_ok() {
            let _ = timeout(Duration::from_secs(2), self.response(seq)).await;
        }
        let _ = self.writer.lock().await.shutdown().await;
        self.reader_task.abort();
    }
}

impl Drop for PeerEsme {
    fn drop(&mut self) {
        self.reader_task.abort(); // closes the read half; the write half drops with self
    }
}

/// Reads every PDU; answers deliver_sm / enquire_link / unbind itself, forwards
/// responses to the waiting request, nacks anything else.
async fn read_loop(
    mut reader: OwnedReadHalf,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    responses: mpsc::UnboundedSender<Pdu>,
    delivers: mpsc::UnboundedSender<RawMessage>,
) {
    while let Ok(pdu) = read_pdu(&mut reader).await {
        let h = &pdu.header;
        let seq = h.sequence_number;
        let reply: Option<Vec<u8>> = match h.command_id {
            DELIVER_SM => match deliver_sm::decode(h.clone(), &pdu.bytes) {
                Ok(d) => {
                    let _ = delivers.send(RawMessage {
                        source_addr: d.source_addr.clone(),
                        destination_addr: d.destination_addr.clone(),
                        esm_class: d.esm_class,
                        data_coding: d.data_coding,
                        registered_delivery: d.registered_delivery,
                        short_message: d.short_message.clone(),
                        tlvs: d.tlvs.iter().map(|t| (t.tag, t.value.clone())).collect(),
                        sequence_number: seq,
                    });
                    Some(d.accept().encode())
                }
                Err(e) => Some(header_only(GENERIC_NACK, e as u32, seq)),
            },
            ENQUIRE_LINK => Some(header_only(ENQUIRE_LINK_RESP, 0, seq)),
            UNBIND => {
                let _ = writer
                    .lock()
                    .await
                    .write_all(&header_only(UNBIND_RESP, 0, seq))
                    .await;
                break;
            }
            id if id & 0x8000_0000 != 0 => {
                let _ = responses.send(pdu);
                None
            }
            _ => Some(header_only(
                GENERIC_NACK,
                SmppError::ESME_RINVCMDID as u32,
                seq,
            )),
        };
        if let Some(bytes) = reply {
            if writer.lock().await.write_all(&bytes).await.is_err() {
                break;
            }
        }
    }
    // Peer unbound or went away: send FIN so it sees EOF (smpp34's server does
    // not close a session on unbind_resp, only on EOF).
    let _ = writer.lock().await.shutdown().await;
}
