//! SMPP 3.4 / 5.0 PDUs: the header, the bodies this gateway exchanges, TLVs,
//! and a decoder that reads exactly one frame and never panics. Every
//! decoding failure names the field and carries the command status to
//! answer with. The numbers PDUs carry (command ids, statuses and their
//! names, TLV tags) are in `codes`, re-exported here.

use bytes::{Buf, BufMut, BytesMut};

/// Bytes in a PDU header (command_length, command_id, command_status, sequence_number).
pub const HEADER_LEN: usize = 16;

mod codes;

pub use codes::{classify_status, command_id, status, status_name, tag, StatusClass};

/// The header every PDU starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total length in bytes, header included.
    pub command_length: u32,
    /// What the PDU is.
    pub command_id: u32,
    /// Result in a response; 0 in a request.
    pub command_status: u32,
    /// Pairs a response with its request.
    pub sequence_number: u32,
}

impl Header {
    /// Reads a header from the first 16 bytes of `bytes`, if there are 16.
    pub fn peek(bytes: &[u8]) -> Option<Header> {
        let mut b = bytes.get(..HEADER_LEN)?;
        Some(Header {
            command_length: b.get_u32(),
            command_id: b.get_u32(),
            command_status: b.get_u32(),
            sequence_number: b.get_u32(),
        })
    }
}

/// An optional parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// Parameter tag.
    pub tag: u16,
    /// Raw value.
    pub value: Vec<u8>,
}

/// The three bind kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// Sends only.
    Transmitter,
    /// Receives only.
    Receiver,
    /// Both ways on one connection.
    Transceiver,
}

impl BindKind {
    /// The request's command id.
    pub fn command_id(self) -> u32 {
        match self {
            BindKind::Transmitter => command_id::BIND_TRANSMITTER,
            BindKind::Receiver => command_id::BIND_RECEIVER,
            BindKind::Transceiver => command_id::BIND_TRANSCEIVER,
        }
    }

    /// The kind for a request id.
    pub fn from_command_id(id: u32) -> Option<Self> {
        match id {
            command_id::BIND_TRANSMITTER => Some(BindKind::Transmitter),
            command_id::BIND_RECEIVER => Some(BindKind::Receiver),
            command_id::BIND_TRANSCEIVER => Some(BindKind::Transceiver),
            _ => None,
        }
    }

    /// May the bound ESME submit messages?
    pub fn can_send(self) -> bool {
        !matches!(self, BindKind::Receiver)
    }

    /// May the SMSC deliver messages to the bound ESME?
    pub fn can_receive(self) -> bool {
        !matches!(self, BindKind::Transmitter)
    }

    /// Name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        }
    }
}

/// bind_transmitter / bind_receiver / bind_transceiver. Its `Debug` shows
/// the password as `***`, so a logged PDU never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    /// Which bind.
    pub kind: BindKind,
    /// Account name (≤ 15 characters).
    pub system_id: String,
    /// Password (≤ 8 characters).
    pub password: String,
    /// Kind of ESME (≤ 12 characters).
    pub system_type: String,
    /// 0x34 for SMPP 3.4, 0x50 for 5.0.
    pub interface_version: u8,
    /// Type of number of the address range.
    pub addr_ton: u8,
    /// Numbering plan of the address range.
    pub addr_npi: u8,
    /// Addresses served (≤ 40 characters).
    pub address_range: String,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("kind", &self.kind)
            .field("system_id", &self.system_id)
            .field("password", &"***")
            .field("system_type", &self.system_type)
            .field("interface_version", &self.interface_version)
            .field("addr_ton", &self.addr_ton)
            .field("addr_npi", &self.addr_npi)
            .field("address_range", &self.address_range)
            .finish()
    }
}

/// submit_sm and deliver_sm share this body; data_sm uses it too, with only
/// its own fields (service_type, the addresses, esm_class,
/// registered_delivery, data_coding and the TLVs; the rest stay zero or
/// empty, and the text travels in `message_payload`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShortMessage {
    /// Service type (≤ 5 characters).
    pub service_type: String,
    /// Source type of number.
    pub source_addr_ton: u8,
    /// Source numbering plan.
    pub source_addr_npi: u8,
    /// Source address (≤ 20 characters).
    pub source_addr: String,
    /// Destination type of number.
    pub dest_addr_ton: u8,
    /// Destination numbering plan.
    pub dest_addr_npi: u8,
    /// Destination address (≤ 20 characters).
    pub destination_addr: String,
    /// Message mode and type; 0x40 = a user data header leads short_message.
    pub esm_class: u8,
    /// Protocol identifier.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: u8,
    /// Scheduled delivery (≤ 16 characters).
    pub schedule_delivery_time: String,
    /// Validity period (≤ 16 characters).
    pub validity_period: String,
    /// Delivery receipt request.
    pub registered_delivery: u8,
    /// Replace-if-present flag.
    pub replace_if_present_flag: u8,
    /// Alphabet of short_message.
    pub data_coding: u8,
    /// Canned message id.
    pub sm_default_msg_id: u8,
    /// The user data (≤ 254 bytes).
    pub short_message: Vec<u8>,
    /// Optional parameters, in wire order.
    pub tlvs: Vec<Tlv>,
}

impl ShortMessage {
    /// The value of the first TLV with this tag.
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }
}

/// A decoded PDU body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A bind request.
    Bind(Bind),
    /// A bind response.
    BindResp {
        /// Which bind it answers.
        kind: BindKind,
        /// The SMSC's id (may be empty on error).
        system_id: String,
        /// Optional parameters (sc_interface_version).
        tlvs: Vec<Tlv>,
    },
    /// submit_sm.
    SubmitSm(ShortMessage),
    /// submit_sm_resp.
    SubmitSmResp {
        /// The SMSC's id for the message (may be empty on error).
        message_id: String,
    },
    /// deliver_sm.
    DeliverSm(ShortMessage),
    /// deliver_sm_resp.
    DeliverSmResp {
        /// Normally empty.
        message_id: String,
    },
    /// data_sm (SMPP 3.4 §4.7.1): the fields of a [`ShortMessage`] that
    /// data_sm has, the text in `message_payload`.
    DataSm(ShortMessage),
    /// data_sm_resp. Its TLVs (delivery_failure_reason, network_error_code,
    /// …) are read and dropped.
    DataSmResp {
        /// The receiver's id for the message (may be empty).
        message_id: String,
    },
    /// unbind.
    Unbind,
    /// unbind_resp.
    UnbindResp,
    /// enquire_link.
    EnquireLink,
    /// enquire_link_resp.
    EnquireLinkResp,
    /// generic_nack.
    GenericNack,
    /// A valid SMPP command this gateway does not serve; its body is kept raw.
    Unsupported {
        /// Its command id.
        command_id: u32,
        /// Its body.
        body: Vec<u8>,
    },
}

/// A whole PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// Command id (derived from the body when encoding).
    pub command_id: u32,
    /// Command status.
    pub command_status: u32,
    /// Sequence number.
    pub sequence_number: u32,
    /// The body.
    pub body: Body,
}

/// Why a frame could not be decoded. `status` is what to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} (answering {})", status_name(*.status))]
pub struct DecodeError {
    /// The field being read.
    pub field: &'static str,
    /// What was wrong.
    pub problem: &'static str,
    /// Command status for the error response.
    pub status: u32,
}

impl Body {
    /// The command id this body is sent with.
    pub fn command_id(&self) -> u32 {
        use command_id::*;
        match self {
            Body::Bind(b) => b.kind.command_id(),
            Body::BindResp { kind, .. } => kind.command_id() | RESPONSE_BIT,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp { .. } => SUBMIT_SM | RESPONSE_BIT,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp { .. } => DELIVER_SM | RESPONSE_BIT,
            Body::DataSm(_) => DATA_SM,
            Body::DataSmResp { .. } => DATA_SM | RESPONSE_BIT,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND | RESPONSE_BIT,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK | RESPONSE_BIT,
            Body::GenericNack => GENERIC_NACK,
            Body::Unsupported { command_id, .. } => *command_id,
        }
    }
}

impl Bind {
    /// A bind with the usual defaults: SMPP 3.4, no system_type, TON/NPI 0,
    /// no address range.
    pub fn new(kind: BindKind, system_id: &str, password: &str) -> Self {
        Bind {
            kind,
            system_id: system_id.to_owned(),
            password: password.to_owned(),
            system_type: String::new(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        }
    }
}

impl Pdu {
    /// The answer to a submit_sm: the message id on success, `status` otherwise.
    pub fn submit_sm_resp(sequence_number: u32, message_id: String, status: u32) -> Self {
        Pdu::new(sequence_number, Body::SubmitSmResp { message_id }).with_status(status)
    }

    /// The answer to a deliver_sm with `status`.
    pub fn deliver_sm_resp(sequence_number: u32, status: u32) -> Self {
        Pdu::new(
            sequence_number,
            Body::DeliverSmResp {
                message_id: String::new(),
            },
        )
        .with_status(status)
    }

    /// The answer to a data_sm: `message_id` on success, `status` otherwise.
    pub fn data_sm_resp(sequence_number: u32, message_id: String, status: u32) -> Self {
        Pdu::new(sequence_number, Body::DataSmResp { message_id }).with_status(status)
    }

    /// A request or response with status 0.
    pub fn new(sequence_number: u32, body: Body) -> Self {
        Pdu {
            command_id: body.command_id(),
            command_status: status::ESME_ROK,
            sequence_number,
            body,
        }
    }

    /// A response carrying `status`.
    pub fn with_status(mut self, status: u32) -> Self {
        self.command_status = status;
        self
    }

    /// True for a response (including generic_nack).
    pub fn is_response(&self) -> bool {
        self.command_id & command_id::RESPONSE_BIT != 0
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0); // command_length, patched below
        out.put_u32(self.body.command_id());
        out.put_u32(self.command_status);
        out.put_u32(self.sequence_number);
        match &self.body {
            Body::Bind(b) => {
                put_cstr(out, &b.system_id);
                put_cstr(out, &b.password);
                put_cstr(out, &b.system_type);
                out.put_u8(b.interface_version);
                out.put_u8(b.addr_ton);
                out.put_u8(b.addr_npi);
                put_cstr(out, &b.address_range);
            }
            Body::BindResp {
                system_id, tlvs, ..
            } => {
                // A failed bind_resp may carry no body at all (SMPP 3.4 §4.1.2).
                if self.command_status == status::ESME_ROK
                    || !system_id.is_empty()
                    || !tlvs.is_empty()
                {
                    put_cstr(out, system_id);
                    put_tlvs(out, tlvs);
                }
            }
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => {
                put_cstr(out, &sm.service_type);
                out.put_u8(sm.source_addr_ton);
                out.put_u8(sm.source_addr_npi);
                put_cstr(out, &sm.source_addr);
                out.put_u8(sm.dest_addr_ton);
                out.put_u8(sm.dest_addr_npi);
                put_cstr(out, &sm.destination_addr);
                out.put_u8(sm.esm_class);
                out.put_u8(sm.protocol_id);
                out.put_u8(sm.priority_flag);
                put_cstr(out, &sm.schedule_delivery_time);
                put_cstr(out, &sm.validity_period);
                out.put_u8(sm.registered_delivery);
                out.put_u8(sm.replace_if_present_flag);
                out.put_u8(sm.data_coding);
                out.put_u8(sm.sm_default_msg_id);
                let len = sm.short_message.len().min(254);
                out.put_u8(len as u8);
                out.put_slice(&sm.short_message[..len]);
                put_tlvs(out, &sm.tlvs);
            }
            Body::DataSm(sm) => {
                put_cstr(out, &sm.service_type);
                out.put_u8(sm.source_addr_ton);
                out.put_u8(sm.source_addr_npi);
                put_cstr(out, &sm.source_addr);
                out.put_u8(sm.dest_addr_ton);
                out.put_u8(sm.dest_addr_npi);
                put_cstr(out, &sm.destination_addr);
                out.put_u8(sm.esm_class);
                out.put_u8(sm.registered_delivery);
                out.put_u8(sm.data_coding);
                put_tlvs(out, &sm.tlvs);
            }
            Body::SubmitSmResp { message_id }
            | Body::DeliverSmResp { message_id }
            | Body::DataSmResp { message_id } => {
                // An error submit_sm_resp carries no body (SMPP 3.4 §4.4.2).
                if self.command_status == status::ESME_ROK || !message_id.is_empty() {
                    put_cstr(out, message_id);
                }
            }
            Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::GenericNack => {}
            Body::Unsupported { body, .. } => out.put_slice(body),
        }
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// Decodes one complete frame (`frame.len()` equals its command_length).
    /// The header must already have been checked by the framer.
    pub fn decode(frame: &[u8]) -> Result<Pdu, DecodeError> {
        let header = Header::peek(frame).ok_or(DecodeError {
            field: "header",
            problem: "shorter than 16 bytes",
            status: status::ESME_RINVCMDLEN,
        })?;
        let mut r = Reader {
            buf: &frame[HEADER_LEN..],
            status: status::ESME_RINVMSGLEN,
        };
        use command_id::*;
        let id = header.command_id;
        let body = match id {
            BIND_RECEIVER | BIND_TRANSMITTER | BIND_TRANSCEIVER => {
                let kind = BindKind::from_command_id(id).ok_or(DecodeError {
                    field: "command_id",
                    problem: "not a bind",
                    status: status::ESME_RINVCMDID,
                })?;
                Body::Bind(Bind {
                    kind,
                    system_id: r.cstr("system_id", 16, status::ESME_RINVSYSID)?,
                    password: r.cstr("password", 9, status::ESME_RINVPASWD)?,
                    system_type: r.cstr("system_type", 13, status::ESME_RBINDFAIL)?,
                    interface_version: r.u8("interface_version")?,
                    addr_ton: r.u8("addr_ton")?,
                    addr_npi: r.u8("addr_npi")?,
                    address_range: r.cstr("address_range", 41, status::ESME_RBINDFAIL)?,
                })
            }
            _ if id & RESPONSE_BIT != 0
                && BindKind::from_command_id(id & !RESPONSE_BIT).is_some() =>
            {
                let kind = BindKind::from_command_id(id & !RESPONSE_BIT).ok_or(DecodeError {
                    field: "command_id",
                    problem: "not a bind_resp",
                    status: status::ESME_RINVCMDID,
                })?;
                let system_id = if r.buf.is_empty() {
                    String::new()
                } else {
                    r.cstr("system_id", 16, status::ESME_RINVSYSID)?
                };
                Body::BindResp {
                    kind,
                    system_id,
                    tlvs: r.tlvs()?,
                }
            }
            SUBMIT_SM => Body::SubmitSm(r.short_message()?),
            DELIVER_SM => Body::DeliverSm(r.short_message()?),
            _ if id == SUBMIT_SM | RESPONSE_BIT || id == DELIVER_SM | RESPONSE_BIT => {
                let message_id = if r.buf.is_empty() {
                    String::new()
                } else {
                    r.cstr("message_id", 65, status::ESME_RINVMSGID)?
                };
                // SMPP 5.0 lets a submit_sm_resp carry TLVs; they are not used here.
                let _ = r.tlvs()?;
                if id == SUBMIT_SM | RESPONSE_BIT {
                    Body::SubmitSmResp { message_id }
                } else {
                    Body::DeliverSmResp { message_id }
                }
            }
            DATA_SM => Body::DataSm(r.data_sm()?),
            _ if id == DATA_SM | RESPONSE_BIT => Body::DataSmResp {
                message_id: r.data_sm_resp(header.command_status)?,
            },
            UNBIND => Body::Unbind,
            ENQUIRE_LINK => Body::EnquireLink,
            GENERIC_NACK => Body::GenericNack,
            _ if id == UNBIND | RESPONSE_BIT => Body::UnbindResp,
            _ if id == ENQUIRE_LINK | RESPONSE_BIT => Body::EnquireLinkResp,
            _ if command_id::is_known(id) => {
                let body = r.buf.to_vec();
                r.buf = &[];
                Body::Unsupported {
                    command_id: id,
                    body,
                }
            }
            _ => {
                return Err(DecodeError {
                    field: "command_id",
                    problem: "unknown command",
                    status: status::ESME_RINVCMDID,
                })
            }
        };
        if !r.buf.is_empty() {
            return Err(DecodeError {
                field: "command_length",
                problem: "bytes left over after the last field",
                status: status::ESME_RINVCMDLEN,
            });
        }
        Ok(Pdu {
            command_id: id,
            command_status: header.command_status,
            sequence_number: header.sequence_number,
            body,
        })
    }
}

/// Writes a C-Octet string. SMPP strings are ASCII; anything else is written
/// as ISO-8859-1 (one byte per character, `?` beyond U+00FF), the mirror of
/// how [`Reader::cstr`] reads, so a decoded string is written back byte for byte.
fn put_cstr(out: &mut BytesMut, s: &str) {
    for c in s.chars() {
        out.put_u8(u8::try_from(u32::from(c)).unwrap_or(b'?'));
    }
    out.put_u8(0);
}

fn put_tlvs(out: &mut BytesMut, tlvs: &[Tlv]) {
    for t in tlvs {
        out.put_u16(t.tag);
        out.put_u16(t.value.len().min(u16::MAX as usize) as u16);
        out.put_slice(&t.value[..t.value.len().min(u16::MAX as usize)]);
    }
}

/// A bounded reader over one frame's body.
struct Reader<'a> {
    buf: &'a [u8],
    /// Status to answer when the body ends early.
    status: u32,
}

impl<'a> Reader<'a> {
    fn short(&self, field: &'static str) -> DecodeError {
        DecodeError {
            field,
            problem: "body ends before this field",
            status: self.status,
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (&first, rest) = self.buf.split_first().ok_or_else(|| self.short(field))?;
        self.buf = rest;
        Ok(first)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(self.short(field));
        }
        let v = u16::from_be_bytes([self.buf[0], self.buf[1]]);
        self.buf = &self.buf[2..];
        Ok(v)
    }

    fn bytes(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.short(field));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A NUL-terminated string of at most `max` bytes including the NUL,
    /// read as ISO-8859-1 (ASCII in practice), one character per byte, so
    /// that it is written back byte for byte.
    fn cstr(
        &mut self,
        field: &'static str,
        max: usize,
        too_long: u32,
    ) -> Result<String, DecodeError> {
        let window = &self.buf[..self.buf.len().min(max)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(if self.buf.len() < max {
                DecodeError {
                    field,
                    problem: "missing NUL terminator before the end of the body",
                    status: self.status,
                }
            } else {
                DecodeError {
                    field,
                    problem: "longer than SMPP allows",
                    status: too_long,
                }
            });
        };
        let raw = &self.buf[..nul];
        self.buf = &self.buf[nul + 1..];
        Ok(raw.iter().map(|&b| char::from(b)).collect())
    }

    fn tlvs(&mut self) -> Result<Vec<Tlv>, DecodeError> {
        let mut tlvs = Vec::new();
        while !self.buf.is_empty() {
            let bad = |problem| DecodeError {
                field: "optional parameters",
                problem,
                status: status::ESME_RINVOPTPARSTREAM,
            };
            if self.buf.len() < 4 {
                return Err(bad("a TLV header is cut short"));
            }
            let tag = self.u16("tlv tag")?;
            let len = self.u16("tlv length")? as usize;
            if self.buf.len() < len {
                return Err(DecodeError {
                    field: "optional parameters",
                    problem: "a TLV is longer than the rest of the PDU",
                    status: status::ESME_RINVPARLEN,
                });
            }
            let value = self.bytes("tlv value", len)?.to_vec();
            tlvs.push(Tlv { tag, value });
        }
        Ok(tlvs)
    }

    /// The body of a data_sm: its mandatory fields, then the TLVs.
    fn data_sm(&mut self) -> Result<ShortMessage, DecodeError> {
        let service_type = self.cstr("service_type", 6, status::ESME_RINVSERTYP)?;
        let source_addr_ton = self.u8("source_addr_ton")?;
        let source_addr_npi = self.u8("source_addr_npi")?;
        let source_addr = self.cstr("source_addr", 65, status::ESME_RINVSRCADR)?;
        let dest_addr_ton = self.u8("dest_addr_ton")?;
        let dest_addr_npi = self.u8("dest_addr_npi")?;
        let destination_addr = self.cstr("destination_addr", 65, status::ESME_RINVDSTADR)?;
        let esm_class = self.u8("esm_class")?;
        let registered_delivery = self.u8("registered_delivery")?;
        let data_coding = self.u8("data_coding")?;
        let tlvs = self.tlvs()?;
        Ok(ShortMessage {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class,
            registered_delivery,
            data_coding,
            tlvs,
            ..ShortMessage::default()
        })
    }

    /// The message id of a data_sm_resp; its TLVs are read and dropped. A
    /// failed one may carry TLVs with no message id before them (as some
    /// SMSCs write it): when its body does not read as a message id and
    /// TLVs, the body is dropped and the id left empty.
    fn data_sm_resp(&mut self, command_status: u32) -> Result<String, DecodeError> {
        if self.buf.is_empty() {
            return Ok(String::new());
        }
        let whole = self.buf;
        let read = self
            .cstr("message_id", 65, status::ESME_RINVMSGID)
            .and_then(|id| self.tlvs().map(|_| id));
        match read {
            Err(_) if command_status != status::ESME_ROK => {
                self.buf = &whole[whole.len()..];
                Ok(String::new())
            }
            other => other,
        }
    }

    fn short_message(&mut self) -> Result<ShortMessage, DecodeError> {
        let service_type = self.cstr("service_type", 6, status::ESME_RINVSERTYP)?;
        let source_addr_ton = self.u8("source_addr_ton")?;
        let source_addr_npi = self.u8("source_addr_npi")?;
        let source_addr = self.cstr("source_addr", 21, status::ESME_RINVSRCADR)?;
        let dest_addr_ton = self.u8("dest_addr_ton")?;
        let dest_addr_npi = self.u8("dest_addr_npi")?;
        let destination_addr = self.cstr("destination_addr", 21, status::ESME_RINVDSTADR)?;
        let esm_class = self.u8("esm_class")?;
        let protocol_id = self.u8("protocol_id")?;
        let priority_flag = self.u8("priority_flag")?;
        let schedule_delivery_time =
            self.cstr("schedule_delivery_time", 17, status::ESME_RINVSCHED)?;
        let validity_period = self.cstr("validity_period", 17, status::ESME_RINVEXPIRY)?;
        let registered_delivery = self.u8("registered_delivery")?;
        let replace_if_present_flag = self.u8("replace_if_present_flag")?;
        let data_coding = self.u8("data_coding")?;
        let sm_default_msg_id = self.u8("sm_default_msg_id")?;
        let sm_length = self.u8("sm_length")? as usize;
        if sm_length > 254 {
            return Err(DecodeError {
                field: "sm_length",
                problem: "above the 254 bytes SMPP allows",
                status: status::ESME_RINVMSGLEN,
            });
        }
        let short_message = self.bytes("short_message", sm_length)?.to_vec();
        let tlvs = self.tlvs()?;
        Ok(ShortMessage {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addr_ton,
            dest_addr_npi,
            destination_addr,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
            tlvs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_never_shows_its_password_in_debug() {
        let bind = Bind::new(BindKind::Transceiver, "motcua", "s3cr3t");
        let shown = format!("{:?}", Pdu::new(1, Body::Bind(bind)));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("motcua"), "{shown}");
    }
    use proptest::prelude::*;

    fn sample_sm() -> ShortMessage {
        ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: "84912345678".into(),
            destination_addr: "8058".into(),
            data_coding: 8,
            short_message: crate::sms_text::ucs2_encode("TC 000.00.12.H58-240315-0007 ạ"),
            tlvs: vec![Tlv {
                tag: tag::SAR_MSG_REF_NUM,
                value: vec![0, 7],
            }],
            ..ShortMessage::default()
        }
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = vec![
            Body::Bind(Bind {
                kind: BindKind::Transceiver,
                system_id: "demo".into(),
                password: "secret".into(),
                system_type: "VMA".into(),
                interface_version: 0x34,
                addr_ton: 0,
                addr_npi: 0,
                address_range: String::new(),
            }),
            Body::BindResp {
                kind: BindKind::Receiver,
                system_id: "motcua".into(),
                tlvs: vec![Tlv {
                    tag: tag::SC_INTERFACE_VERSION,
                    value: vec![0x34],
                }],
            },
            Body::SubmitSm(sample_sm()),
            Body::DeliverSm(sample_sm()),
            Body::SubmitSmResp {
                message_id: "abc123".into(),
            },
            Body::DeliverSmResp {
                message_id: String::new(),
            },
            Body::DataSm(sample_data_sm()),
            Body::DataSmResp {
                message_id: "d-9".into(),
            },
            Body::Unbind,
            Body::UnbindResp,
            Body::EnquireLink,
            Body::EnquireLinkResp,
            Body::GenericNack,
            Body::Unsupported {
                command_id: command_id::QUERY_SM,
                body: vec![b'1', 0, 0, 0, 0],
            },
        ];
        for (seq, body) in bodies.into_iter().enumerate() {
            let pdu = Pdu::new(seq as u32 + 1, body);
            let bytes = pdu.to_bytes();
            assert_eq!(
                Header::peek(&bytes).unwrap().command_length as usize,
                bytes.len()
            );
            assert_eq!(Pdu::decode(&bytes).unwrap(), pdu);
        }
    }

    fn sample_data_sm() -> ShortMessage {
        ShortMessage {
            service_type: "USSD".into(),
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: "84912345678".into(),
            destination_addr: "*8058#".into(),
            data_coding: 0,
            tlvs: vec![
                Tlv {
                    tag: tag::USSD_SERVICE_OP,
                    value: vec![1],
                },
                Tlv {
                    tag: tag::MESSAGE_PAYLOAD,
                    value: b"*8058#".to_vec(),
                },
            ],
            ..ShortMessage::default()
        }
    }

    #[test]
    fn data_sm_has_only_its_own_fields_on_the_wire() {
        let bytes = Pdu::new(7, Body::DataSm(sample_data_sm())).to_bytes();
        let mut expected = vec![
            0, 0, 0, 0, // command_length, checked below
            0, 0, 0x01, 0x03, // data_sm
            0, 0, 0, 0, // command_status
            0, 0, 0, 7, // sequence_number
        ];
        expected.extend_from_slice(b"USSD\0");
        expected.extend_from_slice(&[1, 1]);
        expected.extend_from_slice(b"84912345678\0");
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(b"*8058#\0");
        // esm_class, registered_delivery, data_coding: no protocol_id,
        // schedule, validity, sm_length or short_message.
        expected.extend_from_slice(&[0, 0, 0]);
        expected.extend_from_slice(&[0x05, 0x01, 0, 1, 1]);
        expected.extend_from_slice(&[0x04, 0x24, 0, 6]);
        expected.extend_from_slice(b"*8058#");
        let len = expected.len() as u32;
        expected[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        let decoded = Pdu::decode(&bytes).unwrap();
        assert_eq!(decoded.command_id, command_id::DATA_SM);
        assert_eq!(decoded.body, Body::DataSm(sample_data_sm()));
    }

    #[test]
    fn data_sm_resp_tlvs_are_read_and_dropped() {
        let frame = |status: u32, body: &[u8]| {
            let mut f = BytesMut::new();
            f.put_u32((HEADER_LEN + body.len()) as u32);
            f.put_u32(command_id::DATA_SM | command_id::RESPONSE_BIT);
            f.put_u32(status);
            f.put_u32(9);
            f.extend_from_slice(body);
            f
        };
        // A message id, then network_error_code.
        let ok = Pdu::decode(&frame(0, b"abc\0\x04\x23\x00\x03\x03\x00\x1f")).unwrap();
        assert_eq!(
            ok.body,
            Body::DataSmResp {
                message_id: "abc".into()
            }
        );
        // A refusal with TLVs only, as smpp34 writes it.
        let refused = Pdu::decode(&frame(0x45, b"\x04\x23\x00\x03\x03\x00\x1f")).unwrap();
        assert_eq!(refused.command_status, 0x45);
        assert_eq!(
            refused.body,
            Body::DataSmResp {
                message_id: String::new()
            }
        );
        // A bare header.
        assert_eq!(
            Pdu::decode(&frame(0x45, b"")).unwrap().body,
            Body::DataSmResp {
                message_id: String::new()
            }
        );
        // A successful one whose TLVs are cut short is malformed.
        let err = Pdu::decode(&frame(0, b"abc\0\x04\x23\x00")).unwrap_err();
        assert_eq!(err.status, status::ESME_RINVOPTPARSTREAM);
    }

    #[test]
    fn errors_name_the_field_and_the_status() {
        let mut bytes = Pdu::new(3, Body::SubmitSm(sample_sm())).to_bytes();
        // Cut the frame inside destination_addr and fix command_length.
        bytes.truncate(HEADER_LEN + 20);
        let len = bytes.len() as u32;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let err = Pdu::decode(&bytes).unwrap_err();
        assert_eq!(err.field, "destination_addr");
        assert_eq!(err.status, status::ESME_RINVMSGLEN);

        let mut unknown = Pdu::new(4, Body::EnquireLink).to_bytes();
        unknown[4..8].copy_from_slice(&0x0000_0999u32.to_be_bytes());
        assert_eq!(
            Pdu::decode(&unknown).unwrap_err().status,
            status::ESME_RINVCMDID
        );

        let mut long_id = BytesMut::new();
        Pdu::new(
            5,
            Body::Bind(Bind {
                kind: BindKind::Transmitter,
                system_id: "x".repeat(30),
                password: String::new(),
                system_type: String::new(),
                interface_version: 0x34,
                addr_ton: 0,
                addr_npi: 0,
                address_range: String::new(),
            }),
        )
        .encode(&mut long_id);
        let err = Pdu::decode(&long_id).unwrap_err();
        assert_eq!(err.status, status::ESME_RINVSYSID);
    }

    #[test]
    fn non_ascii_strings_are_written_back_byte_for_byte() {
        // Found by the smpp_frame fuzz target: Latin-1 bytes in system_id
        // grew when re-encoded as UTF-8 and then exceeded the field's limit.
        let mut frame = BytesMut::new();
        frame.put_u32(0);
        frame.put_u32(command_id::BIND_TRANSMITTER);
        frame.put_u32(0);
        frame.put_u32(1);
        frame.extend_from_slice(&[0xe9; 15]);
        frame.extend_from_slice(&[0, 0, 0, 0x34, 0, 0, 0]);
        let len = frame.len() as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let pdu = Pdu::decode(&frame).unwrap();
        assert_eq!(&pdu.to_bytes()[..], &frame[..]);
    }

    #[test]
    fn status_names_for_logs() {
        assert_eq!(status_name(0x58), "ESME_RTHROTTLED");
        assert_eq!(status_name(0x14), "ESME_RMSGQFUL");
        assert_eq!(status_name(0x0E), "ESME_RINVPASWD");
    }

    /// A C-Octet string of at most `max` characters: anything but NUL,
    /// within ISO-8859-1 (what the codec reads and writes byte for byte).
    fn cstr(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(1u8..=255, 0..=max)
            .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
    }

    fn any_tlvs() -> impl Strategy<Value = Vec<Tlv>> {
        proptest::collection::vec(
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(tag, value)| Tlv { tag, value }),
            0..4,
        )
    }

    fn any_bind_kind() -> impl Strategy<Value = BindKind> {
        prop_oneof![
            Just(BindKind::Transmitter),
            Just(BindKind::Receiver),
            Just(BindKind::Transceiver)
        ]
    }

    fn any_short_message() -> impl Strategy<Value = ShortMessage> {
        (
            (cstr(5), any::<[u8; 2]>(), cstr(20), any::<[u8; 2]>(), cstr(20)),
            (any::<[u8; 3]>(), cstr(16), cstr(16), any::<[u8; 4]>()),
            proptest::collection::vec(any::<u8>(), 0..=254),
            any_tlvs(),
        )
            .prop_map(
                |(
                    (service_type, [source_addr_ton, source_addr_npi], source_addr, [dest_addr_ton, dest_addr_npi], destination_addr),
                    ([esm_class, protocol_id, priority_flag], schedule_delivery_time, validity_period, [registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id]),
                    short_message,
                    tlvs,
                )| ShortMessage {
                    service_type,
                    source_addr_ton,
                    source_addr_npi,
                    source_addr,
                    dest_addr_ton,
                    dest_addr_npi,
                    destination_addr,
                    esm_class,
                    protocol_id,
                    priority_flag,
                    schedule_delivery_time,
                    validity_period,
                    registered_delivery,
                    replace_if_present_flag,
                    data_coding,
                    sm_default_msg_id,
                    short_message,
                    tlvs,
                },
            )
    }

    /// A data_sm: only the fields data_sm has; the others stay at their defaults.
    fn any_data_sm() -> impl Strategy<Value = ShortMessage> {
        (
            (
                cstr(5),
                any::<[u8; 2]>(),
                cstr(64),
                any::<[u8; 2]>(),
                cstr(64),
            ),
            any::<[u8; 3]>(),
            any_tlvs(),
        )
            .prop_map(
                |(
                    (
                        service_type,
                        [source_addr_ton, source_addr_npi],
                        source_addr,
                        [dest_addr_ton, dest_addr_npi],
                        destination_addr,
                    ),
                    [esm_class, registered_delivery, data_coding],
                    tlvs,
                )| ShortMessage {
                    service_type,
                    source_addr_ton,
                    source_addr_npi,
                    source_addr,
                    dest_addr_ton,
                    dest_addr_npi,
                    destination_addr,
                    esm_class,
                    registered_delivery,
                    data_coding,
                    tlvs,
                    ..ShortMessage::default()
                },
            )
    }

    /// Every body the codec knows. Commands it does not serve (query_sm,
    /// outbind, …, and their responses) travel as raw bodies.
    fn any_body() -> impl Strategy<Value = Body> {
        use command_id::*;
        let raw_ids: Vec<u32> = [
            QUERY_SM,
            REPLACE_SM,
            CANCEL_SM,
            SUBMIT_MULTI,
            BROADCAST_SM,
            QUERY_BROADCAST_SM,
            CANCEL_BROADCAST_SM,
        ]
        .into_iter()
        .flat_map(|id| [id, id | RESPONSE_BIT])
        .chain([OUTBIND, ALERT_NOTIFICATION])
        .collect();
        prop_oneof![
            (
                any_bind_kind(),
                cstr(15),
                cstr(8),
                cstr(12),
                any::<[u8; 3]>(),
                cstr(40)
            )
                .prop_map(
                    |(
                        kind,
                        system_id,
                        password,
                        system_type,
                        [interface_version, addr_ton, addr_npi],
                        address_range,
                    )| {
                        Body::Bind(Bind {
                            kind,
                            system_id,
                            password,
                            system_type,
                            interface_version,
                            addr_ton,
                            addr_npi,
                            address_range,
                        })
                    }
                ),
            (any_bind_kind(), cstr(15), any_tlvs()).prop_map(|(kind, system_id, tlvs)| {
                Body::BindResp {
                    kind,
                    system_id,
                    tlvs,
                }
            }),
            any_short_message().prop_map(Body::SubmitSm),
            any_short_message().prop_map(Body::DeliverSm),
            cstr(64).prop_map(|message_id| Body::SubmitSmResp { message_id }),
            cstr(64).prop_map(|message_id| Body::DeliverSmResp { message_id }),
            any_data_sm().prop_map(Body::DataSm),
            cstr(64).prop_map(|message_id| Body::DataSmResp { message_id }),
            Just(Body::Unbind),
            Just(Body::UnbindResp),
            Just(Body::EnquireLink),
            Just(Body::EnquireLinkResp),
            Just(Body::GenericNack),
            (
                proptest::sample::select(raw_ids),
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(command_id, body)| Body::Unsupported { command_id, body }),
        ]
    }

    fn any_pdu() -> impl Strategy<Value = Pdu> {
        (
            any_body(),
            any::<u32>(),
            prop_oneof![Just(status::ESME_ROK), any::<u32>()],
        )
            .prop_map(|(body, sequence_number, status)| {
                Pdu::new(sequence_number, body).with_status(status)
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics(mut body in proptest::collection::vec(any::<u8>(), 0..300),
                               id in prop_oneof![Just(4u32), Just(5), Just(9), Just(0x8000_0004), Just(0x8000_0009), any::<u32>()]) {
            let mut frame = BytesMut::new();
            frame.put_u32((HEADER_LEN + body.len()) as u32);
            frame.put_u32(id);
            frame.put_u32(0);
            frame.put_u32(1);
            frame.extend_from_slice(&body);
            let _ = Pdu::decode(&frame);
            body.clear();
        }

        #[test]
        fn every_pdu_kind_round_trips(pdu in any_pdu()) {
            let bytes = pdu.to_bytes();
            prop_assert_eq!(Header::peek(&bytes).unwrap().command_length as usize, bytes.len());
            prop_assert_eq!(Pdu::decode(&bytes).unwrap(), pdu);
        }
    }
}
