//! The SMS PDU codec (3GPP TS 23.040 TPDUs, TS 23.038 alphabets), written
//! here because no published Rust crate decodes real traffic correctly
//! (text shifted after a 16-bit concatenation header, stray `@` at the end
//! of parts, negative time zones garbled, escape pairs split across parts).
//!
//! A modem in PDU mode (`AT+CMGF=0`) hands over and takes PDUs as hex, with
//! the service centre address in front ([`Pdu::smsc`]). [`decode`] reads
//! one in a given [`Direction`]; [`encode`] writes one and says the TPDU
//! length `AT+CMGS=<length>` wants; [`submit_parts`] splits a text into
//! the SMS-SUBMITs of a (concatenated) message, and [`deliver_parts`] does
//! the same for SMS-DELIVERs, for simulators playing the network.
//!
//! Decoding is strict about lengths (a truncated or inconsistent PDU is a
//! [`PduError`], never a panic) and lenient about values real networks get
//! wrong (any type-of-address octet, MTI 11 read as SMS-DELIVER, digits
//! above 9 in time stamps). Whatever [`decode`] returns, [`encode`] either
//! writes back to a PDU that decodes to the same value or refuses with
//! [`PduError::Unencodable`].
//!
//! Submodules: [`gsm7`] (the alphabet and septet packing); private ones
//! for addresses, time stamps, the user data header, the user data
//! (`user_data`), splitting a text into parts (`parts`) and the octet reader.

mod address;
#[doc(hidden)]
pub mod corpus;
pub mod gsm7;
mod parts;
mod reader;
#[cfg(test)]
mod tests;
mod timestamp;
mod udh;
mod user_data;

pub use parts::{deliver_parts, submit_parts};
use reader::Reader;
use user_data::{decode_user_data, encode_user_data};

/// Why a PDU could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The hex text has an odd length or a non-hex character.
    #[error("not hex: {0}")]
    InvalidHex(String),
    /// The PDU ended inside `field`.
    #[error("PDU ends inside the {field}")]
    Truncated {
        /// What was being read.
        field: &'static str,
    },
    /// A length field disagrees with the bytes present.
    #[error("{field} length {declared} does not fit: {reason}")]
    BadLength {
        /// Which length.
        field: &'static str,
        /// The length the PDU declares.
        declared: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message type indicator names a TPDU this direction cannot carry.
    #[error("message type {mti} is not expected in direction {direction:?}")]
    UnexpectedMessageType {
        /// The two MTI bits.
        mti: u8,
        /// The direction it was read in.
        direction: Direction,
    },
    /// The user data header is malformed.
    #[error("user data header: {0}")]
    BadHeader(&'static str),
    /// A field holds a value that cannot be encoded (an address too long, ...).
    /// Its message shows the value redacted ([`crate::redact`]).
    #[error("cannot encode: {}", crate::redact::redact(.0))]
    Unencodable(String),
}

/// Which way a PDU travels, which decides how its message type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Service centre → mobile: SMS-DELIVER, SMS-STATUS-REPORT (what a modem receives).
    ToMobile,
    /// Mobile → service centre: SMS-SUBMIT (what a modem sends).
    FromMobile,
}

/// A TP address or the service centre address: the number (digits, `*`,
/// `#`, `a`–`c` as written in semi-octets; or the text of an alphanumeric
/// sender) and its type-of-address octet, kept as received (unknown
/// values such as 0x85 are accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PduAddress {
    /// Digits, or the decoded text when the type of number is alphanumeric.
    pub number: String,
    /// The type-of-address octet (0x91 international/ISDN, 0x81 unknown/ISDN, 0xD0 alphanumeric).
    pub type_of_address: u8,
}

impl PduAddress {
    /// An international number (`84912345678`; a leading `+` is dropped).
    pub fn international(number: &str) -> Self {
        PduAddress {
            number: number.trim_start_matches('+').to_owned(),
            type_of_address: 0x91,
        }
    }

    /// A number of unknown type (national or short code), as dialled.
    pub fn unknown(number: &str) -> Self {
        PduAddress {
            number: number.to_owned(),
            type_of_address: 0x81,
        }
    }

    /// True when the type of number is international.
    pub fn is_international(&self) -> bool {
        self.type_of_address & 0x70 == 0x10
    }

    /// True when the type of number is alphanumeric.
    pub fn is_alphanumeric(&self) -> bool {
        self.type_of_address & 0x70 == 0x50
    }
}

/// The alphabet a data coding scheme selects (TS 23.038 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// The GSM 7-bit default alphabet, packed in septets.
    Gsm7,
    /// 8-bit data.
    EightBit,
    /// UCS-2 (read as UTF-16BE, so surrogate pairs survive).
    Ucs2,
}

/// TP-DCS, kept as the octet; [`DataCoding::alphabet`] interprets it
/// (reserved groups are read as GSM-7 as the standard asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCoding(pub u8);

impl DataCoding {
    /// The alphabet this scheme selects (TS 23.038 §4): the general and
    /// automatic-deletion groups (00xx, 01xx) by bits 3–2 (11, reserved,
    /// as GSM-7), compressed text as 8-bit data (it cannot be read as
    /// text); the message waiting groups 1100 and 1101 GSM-7, 1110 UCS-2;
    /// group 1111 by bit 2 (8-bit or GSM-7); the reserved groups 1000–1011
    /// as GSM-7.
    pub fn alphabet(self) -> Alphabet {
        let dcs = self.0;
        match dcs >> 4 {
            0x0..=0x7 => {
                if self.is_compressed() {
                    return Alphabet::EightBit;
                }
                match (dcs >> 2) & 0x03 {
                    0b01 => Alphabet::EightBit,
                    0b10 => Alphabet::Ucs2,
                    _ => Alphabet::Gsm7,
                }
            }
            0xE => Alphabet::Ucs2,
            0xF if dcs & 0x04 != 0 => Alphabet::EightBit,
            _ => Alphabet::Gsm7,
        }
    }

    /// True when the text is compressed (groups 00xx and 01xx, bit 5).
    pub fn is_compressed(self) -> bool {
        self.0 < 0x80 && self.0 & 0x20 != 0
    }

    /// The message class 0–3 when the scheme gives one (bit 4 in the
    /// general and automatic-deletion groups, always in group 1111).
    pub fn message_class(self) -> Option<u8> {
        let dcs = self.0;
        match dcs >> 4 {
            0x0..=0x7 if dcs & 0x10 != 0 => Some(dcs & 0x03),
            0xF => Some(dcs & 0x03),
            _ => None,
        }
    }

    /// True for the message waiting indication groups (1100–1110).
    pub fn is_message_waiting(self) -> bool {
        (0xC0..0xF0).contains(&self.0)
    }

    /// GSM-7, no class.
    pub const GSM7: DataCoding = DataCoding(0x00);
    /// 8-bit data, no class.
    pub const EIGHT_BIT: DataCoding = DataCoding(0x04);
    /// UCS-2, no class.
    pub const UCS2: DataCoding = DataCoding(0x08);
}

/// A service centre time stamp (TP-SCTS, TP-DT): local time and its offset
/// from UTC in quarters of an hour (negative west of Greenwich).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Two-digit year (`24` for 2024).
    pub year: u8,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
    /// Offset from UTC in quarters of an hour, −79..=79 (Vietnam: +28).
    pub tz_quarters: i8,
}

/// One information element of a user data header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InformationElement {
    /// IEI 0x00: concatenation with an 8-bit reference.
    Concat8 {
        /// The reference shared by the parts.
        reference: u8,
        /// How many parts.
        total: u8,
        /// This part, from 1.
        sequence: u8,
    },
    /// IEI 0x08: concatenation with a 16-bit reference.
    Concat16 {
        /// The reference shared by the parts.
        reference: u16,
        /// How many parts.
        total: u8,
        /// This part, from 1.
        sequence: u8,
    },
    /// Any other element, kept as it came.
    Other {
        /// Its identifier.
        id: u8,
        /// Its data.
        data: Vec<u8>,
    },
}

/// Where a part sits in a concatenated message, whatever the reference width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concatenation {
    /// The reference (an 8-bit one widened).
    pub reference: u16,
    /// How many parts.
    pub total: u8,
    /// This part, from 1.
    pub sequence: u8,
}

/// A user data header: its elements in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserDataHeader {
    /// The elements.
    pub elements: Vec<InformationElement>,
}

impl UserDataHeader {
    /// The concatenation element, if any (the first one).
    pub fn concatenation(&self) -> Option<Concatenation> {
        self.elements.iter().find_map(|element| match *element {
            InformationElement::Concat8 {
                reference,
                total,
                sequence,
            } => Some(Concatenation {
                reference: u16::from(reference),
                total,
                sequence,
            }),
            InformationElement::Concat16 {
                reference,
                total,
                sequence,
            } => Some(Concatenation {
                reference,
                total,
                sequence,
            }),
            InformationElement::Other { .. } => None,
        })
    }
}

/// The body of the user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// GSM-7 or UCS-2 text, decoded.
    Text(String),
    /// 8-bit data.
    Binary(Vec<u8>),
}

/// TP-UD: an optional header and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The user data header, when TP-UDHI is set.
    pub header: Option<UserDataHeader>,
    /// The body.
    pub body: Body,
}

impl UserData {
    /// The concatenation element of the header, if any.
    pub fn concatenation(&self) -> Option<Concatenation> {
        self.header.as_ref()?.concatenation()
    }

    /// The body as text (8-bit data read as Latin-1).
    pub fn text(&self) -> String {
        match &self.body {
            Body::Text(text) => text.clone(),
            Body::Binary(bytes) => bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }
}

/// SMS-DELIVER: a message for the mobile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// TP-MMS inverted: more messages are waiting at the service centre.
    pub more_messages_to_send: bool,
    /// TP-RP.
    pub reply_path: bool,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// TP-OA: the sender.
    pub originator: PduAddress,
    /// TP-PID.
    pub protocol_id: u8,
    /// TP-DCS.
    pub data_coding: DataCoding,
    /// TP-SCTS.
    pub service_centre_time: Timestamp,
    /// TP-UD.
    pub user_data: UserData,
}

/// TP-VP as the modem writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// No validity period.
    None,
    /// Relative format, the octet of TS 23.040 §9.2.3.12.1 (0xA7 = 24 hours).
    Relative(u8),
    /// Absolute format.
    Absolute(Timestamp),
    /// Enhanced format, 7 octets kept as they are.
    Enhanced([u8; 7]),
}

/// SMS-SUBMIT: a message from the mobile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// TP-RD.
    pub reject_duplicates: bool,
    /// TP-SRR: a status report is requested.
    pub status_report_request: bool,
    /// TP-RP.
    pub reply_path: bool,
    /// TP-MR (the modem usually replaces it with its own).
    pub message_reference: u8,
    /// TP-DA: the recipient.
    pub destination: PduAddress,
    /// TP-PID.
    pub protocol_id: u8,
    /// TP-DCS.
    pub data_coding: DataCoding,
    /// TP-VP.
    pub validity: Validity,
    /// TP-UD.
    pub user_data: UserData,
}

/// SMS-STATUS-REPORT: what became of a message sent with TP-SRR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// TP-MR of the SMS-SUBMIT it reports on.
    pub message_reference: u8,
    /// TP-RA: the recipient of that message.
    pub recipient: PduAddress,
    /// TP-SCTS: when the service centre took it.
    pub service_centre_time: Timestamp,
    /// TP-DT: when this status was reached.
    pub discharge_time: Timestamp,
    /// TP-ST (0x00 delivered; 0x20–0x3F still trying; 0x40 and up failed).
    pub status: u8,
}

impl StatusReport {
    /// True when the message was delivered (TP-ST 0x00–0x1F).
    pub fn is_delivered(&self) -> bool {
        self.status < 0x20
    }

    /// True when the service centre still tries (TP-ST 0x20–0x3F).
    pub fn is_pending(&self) -> bool {
        (0x20..0x40).contains(&self.status)
    }
}

/// One of the three TPDUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// SMS-DELIVER.
    Deliver(Deliver),
    /// SMS-SUBMIT.
    Submit(Submit),
    /// SMS-STATUS-REPORT.
    StatusReport(StatusReport),
}

/// A PDU as a modem in PDU mode reads and writes it: the service centre
/// address (`None`: the length octet was 0, use the SIM's), then the TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// The service centre address.
    pub smsc: Option<PduAddress>,
    /// The TPDU.
    pub tpdu: Tpdu,
}

/// A PDU written for a modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// All the octets, service centre address first.
    pub bytes: Vec<u8>,
    /// The TPDU's length in octets (without the service centre part): the
    /// number `AT+CMGS=` and `+CMGL:` speak of.
    pub tpdu_length: usize,
}

impl EncodedPdu {
    /// The octets as upper-case hex, as written after the `> ` prompt.
    pub fn hex(&self) -> String {
        to_hex(&self.bytes)
    }
}

/// Options for [`submit_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Ask for a status report (TP-SRR).
    pub status_report: bool,
    /// TP-VP in the relative format (`None`: no validity period).
    pub validity: Option<u8>,
    /// Write UCS-2 even when GSM-7 would do.
    pub force_ucs2: bool,
    /// Use a 16-bit concatenation reference (IEI 0x08) rather than 8-bit.
    pub wide_reference: bool,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            status_report: false,
            validity: Some(0xA7),
            force_ucs2: false,
            wide_reference: false,
        }
    }
}

/// Upper-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The octets of a hex text (either case; surrounding white space ignored).
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim().as_bytes();
    if !hex.len().is_multiple_of(2) {
        return Err(PduError::InvalidHex(format!(
            "odd number of hex digits ({})",
            hex.len()
        )));
    }
    fn nibble(c: u8) -> Option<u8> {
        char::from(c).to_digit(16).map(|d| d as u8)
    }
    hex.chunks(2)
        .enumerate()
        .map(|(i, pair)| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(PduError::InvalidHex(format!(
                "non-hex character near position {}",
                i * 2
            ))),
        })
        .collect()
}

/// Reads one PDU from hex.
pub fn decode_hex(hex: &str, direction: Direction) -> Result<Pdu, PduError> {
    decode(&from_hex(hex)?, direction)
}

/// Reads one PDU (service centre address first, as modems give them).
///
/// [`Direction::ToMobile`] reads MTI 00 (and the reserved 11, as modems
/// do) as SMS-DELIVER and 10 as SMS-STATUS-REPORT; [`Direction::FromMobile`]
/// reads 01 as SMS-SUBMIT; anything else is
/// [`PduError::UnexpectedMessageType`]. Every length is checked against the
/// octets present; octets after the user data (or after TP-ST, where the
/// optional status report parameters sit) are not read.
pub fn decode(bytes: &[u8], direction: Direction) -> Result<Pdu, PduError> {
    let mut reader = Reader::new(bytes);
    let smsc = address::decode_smsc(&mut reader)?;
    let first = reader.u8("first octet")?;
    let mti = first & 0x03;
    let tpdu = match (direction, mti) {
        (Direction::ToMobile, 0b00 | 0b11) => Tpdu::Deliver(decode_deliver(first, &mut reader)?),
        (Direction::ToMobile, 0b10) => Tpdu::StatusReport(decode_status_report(&mut reader)?),
        (Direction::FromMobile, 0b01) => Tpdu::Submit(decode_submit(first, &mut reader)?),
        _ => return Err(PduError::UnexpectedMessageType { mti, direction }),
    };
    Ok(Pdu { smsc, tpdu })
}

fn decode_deliver(first: u8, reader: &mut Reader<'_>) -> Result<Deliver, PduError> {
    let originator = address::decode(reader, "originating address")?;
    let protocol_id = reader.u8("protocol identifier")?;
    let data_coding = DataCoding(reader.u8("data coding scheme")?);
    let service_centre_time = timestamp::decode(reader.array("service centre time stamp")?);
    let user_data = decode_user_data(reader, first & 0x40 != 0, data_coding)?;
    Ok(Deliver {
        more_messages_to_send: first & 0x04 == 0,
        reply_path: first & 0x80 != 0,
        status_report_indication: first & 0x20 != 0,
        originator,
        protocol_id,
        data_coding,
        service_centre_time,
        user_data,
    })
}

fn decode_submit(first: u8, reader: &mut Reader<'_>) -> Result<Submit, PduError> {
    let message_reference = reader.u8("message reference")?;
    let destination = address::decode(reader, "destination address")?;
    let protocol_id = reader.u8("protocol identifier")?;
    let data_coding = DataCoding(reader.u8("data coding scheme")?);
    let validity = match (first >> 3) & 0x03 {
        0b00 => Validity::None,
        0b10 => Validity::Relative(reader.u8("validity period")?),
        0b01 => Validity::Enhanced(reader.array("validity period")?),
        _ => Validity::Absolute(timestamp::decode(reader.array("validity period")?)),
    };
    let user_data = decode_user_data(reader, first & 0x40 != 0, data_coding)?;
    Ok(Submit {
        reject_duplicates: first & 0x04 != 0,
        status_report_request: first & 0x20 != 0,
        reply_path: first & 0x80 != 0,
        message_reference,
        destination,
        protocol_id,
        data_coding,
        validity,
        user_data,
    })
}

/// The optional parameters after TP-ST (TP-PI, TP-PID, TP-DCS, TP-UD) are
/// not kept: [`StatusReport`] has no place for them.
fn decode_status_report(reader: &mut Reader<'_>) -> Result<StatusReport, PduError> {
    Ok(StatusReport {
        message_reference: reader.u8("message reference")?,
        recipient: address::decode(reader, "recipient address")?,
        service_centre_time: timestamp::decode(reader.array("service centre time stamp")?),
        discharge_time: timestamp::decode(reader.array("discharge time")?),
        status: reader.u8("status")?,
    })
}

fn bad_length(field: &'static str, declared: usize, reason: &'static str) -> PduError {
    PduError::BadLength {
        field,
        declared,
        reason,
    }
}

/// Writes one PDU.
///
/// Refuses with [`PduError::Unencodable`] what cannot be written so that
/// it reads back the same: a body that does not fit the data coding's
/// alphabet (text outside GSM-7 under a GSM-7 scheme, text under an 8-bit
/// one, data under a text one), more than 160 septets or 140 octets of
/// user data, address characters other than `0-9 * # a b c` (`f` for the
/// filler semi-octet read inside a number), a header element that would
/// read back as a concatenation, a time stamp field beyond what two
/// semi-octets hold.
pub fn encode(pdu: &Pdu) -> Result<EncodedPdu, PduError> {
    let mut bytes = Vec::new();
    address::encode_smsc(pdu.smsc.as_ref(), &mut bytes)?;
    let start = bytes.len();
    match &pdu.tpdu {
        Tpdu::Deliver(deliver) => encode_deliver(deliver, &mut bytes)?,
        Tpdu::Submit(submit) => encode_submit(submit, &mut bytes)?,
        Tpdu::StatusReport(report) => encode_status_report(report, &mut bytes)?,
    }
    let tpdu_length = bytes.len() - start;
    Ok(EncodedPdu { bytes, tpdu_length })
}

fn flag(set: bool, bit: u8) -> u8 {
    if set {
        bit
    } else {
        0
    }
}

fn encode_deliver(deliver: &Deliver, out: &mut Vec<u8>) -> Result<(), PduError> {
    let first_at = out.len();
    out.push(0);
    address::encode(&deliver.originator, out)?;
    out.push(deliver.protocol_id);
    out.push(deliver.data_coding.0);
    out.extend_from_slice(&timestamp::encode(&deliver.service_centre_time)?);
    let udhi = encode_user_data(&deliver.user_data, deliver.data_coding, out)?;
    out[first_at] = flag(!deliver.more_messages_to_send, 0x04)
        | flag(deliver.status_report_indication, 0x20)
        | flag(udhi, 0x40)
        | flag(deliver.reply_path, 0x80);
    Ok(())
}

fn encode_submit(submit: &Submit, out: &mut Vec<u8>) -> Result<(), PduError> {
    let first_at = out.len();
    out.push(0);
    out.push(submit.message_reference);
    address::encode(&submit.destination, out)?;
    out.push(submit.protocol_id);
    out.push(submit.data_coding.0);
    let vpf = match &submit.validity {
        Validity::None => 0b00,
        Validity::Relative(period) => {
            out.push(*period);
            0b10
        }
        Validity::Enhanced(octets) => {
            out.extend_from_slice(octets);
            0b01
        }
        Validity::Absolute(time) => {
            out.extend_from_slice(&timestamp::encode(time)?);
            0b11
        }
    };
    let udhi = encode_user_data(&submit.user_data, submit.data_coding, out)?;
    out[first_at] = 0x01
        | flag(submit.reject_duplicates, 0x04)
        | vpf << 3
        | flag(submit.status_report_request, 0x20)
        | flag(udhi, 0x40)
        | flag(submit.reply_path, 0x80);
    Ok(())
}

/// TP-MMS set (no more messages), no parameter indicator.
fn encode_status_report(report: &StatusReport, out: &mut Vec<u8>) -> Result<(), PduError> {
    out.push(0x06);
    out.push(report.message_reference);
    address::encode(&report.recipient, out)?;
    out.extend_from_slice(&timestamp::encode(&report.service_centre_time)?);
    out.extend_from_slice(&timestamp::encode(&report.discharge_time)?);
    out.push(report.status);
    Ok(())
}
