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
//! for addresses, time stamps, the user data header and the octet reader.

mod address;
#[doc(hidden)]
pub mod corpus;
pub mod gsm7;
mod reader;
#[cfg(test)]
mod tests;
mod timestamp;
mod udh;

use reader::Reader;

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

/// Most user data a TPDU carries: 140 octets, 160 septets.
const MAX_OCTETS: usize = 140;
const MAX_SEPTETS: usize = 160;

/// How many septets a header of `octets` octets (its length octet
/// included) takes in GSM-7 user data, fill bits included.
fn header_septets(octets: usize) -> usize {
    (octets * 8).div_ceil(7)
}

fn bad_length(field: &'static str, declared: usize, reason: &'static str) -> PduError {
    PduError::BadLength {
        field,
        declared,
        reason,
    }
}

/// Reads TP-UDL and TP-UD.
fn decode_user_data(
    reader: &mut Reader<'_>,
    udhi: bool,
    coding: DataCoding,
) -> Result<UserData, PduError> {
    const FIELD: &str = "user data";
    let udl = usize::from(reader.u8("user data length")?);
    let alphabet = coding.alphabet();
    let octets = if alphabet == Alphabet::Gsm7 {
        if udl > MAX_SEPTETS {
            return Err(bad_length(FIELD, udl, "more than 160 septets"));
        }
        (udl * 7).div_ceil(8)
    } else {
        if udl > MAX_OCTETS {
            return Err(bad_length(FIELD, udl, "more than 140 octets"));
        }
        udl
    };
    let data = reader.take(octets, FIELD)?;
    let (header, header_octets) = if udhi {
        let Some(&udhl) = data.first() else {
            return Err(bad_length(
                FIELD,
                udl,
                "no room for the header the UDHI announces",
            ));
        };
        let header_octets = usize::from(udhl) + 1;
        if header_octets > octets {
            return Err(bad_length(
                "user data header",
                usize::from(udhl),
                "longer than the user data",
            ));
        }
        if alphabet == Alphabet::Gsm7 && header_septets(header_octets) > udl {
            return Err(bad_length(
                "user data header",
                usize::from(udhl),
                "longer than the user data",
            ));
        }
        (Some(udh::decode(&data[1..header_octets])?), header_octets)
    } else {
        (None, 0)
    };
    let body = match alphabet {
        Alphabet::Gsm7 => {
            let septets = gsm7::unpack(data, udl);
            let skip = if header.is_some() {
                header_septets(header_octets)
            } else {
                0
            };
            Body::Text(gsm7::decode_septets(&septets[skip..]))
        }
        Alphabet::EightBit => Body::Binary(data[header_octets..].to_vec()),
        Alphabet::Ucs2 => Body::Text(decode_ucs2(&data[header_octets..])),
    };
    Ok(UserData { header, body })
}

/// UTF-16BE, unpaired surrogates and a dangling odd octet as U+FFFD.
fn decode_ucs2(octets: &[u8]) -> String {
    let units = octets
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if !octets.len().is_multiple_of(2) {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// Writes TP-UDL and TP-UD; says whether TP-UDHI must be set.
fn encode_user_data(
    user_data: &UserData,
    coding: DataCoding,
    out: &mut Vec<u8>,
) -> Result<bool, PduError> {
    let header = match &user_data.header {
        Some(header) => udh::encode(header)?,
        None => Vec::new(),
    };
    let alphabet = coding.alphabet();
    let (udl, octets) = match (alphabet, &user_data.body) {
        (Alphabet::Gsm7, Body::Text(text)) => {
            let septets = gsm7::encode_text(text)
                .ok_or_else(|| PduError::Unencodable(format!("text {text:?} is not all GSM-7")))?;
            let skip = if user_data.header.is_some() {
                header_septets(header.len())
            } else {
                0
            };
            let udl = skip + septets.len();
            if udl > MAX_SEPTETS {
                return Err(PduError::Unencodable(format!(
                    "{udl} septets of user data (at most 160)"
                )));
            }
            let mut octets = vec![0; (udl * 7).div_ceil(8)];
            octets[..header.len()].copy_from_slice(&header);
            gsm7::pack(&septets, skip, &mut octets);
            (udl, octets)
        }
        (Alphabet::EightBit, Body::Binary(data)) => {
            let mut octets = header;
            octets.extend_from_slice(data);
            (octets.len(), octets)
        }
        (Alphabet::Ucs2, Body::Text(text)) => {
            let mut octets = header;
            octets.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            (octets.len(), octets)
        }
        (alphabet, _) => {
            return Err(PduError::Unencodable(format!(
                "the body does not fit the data coding {:#04x} ({alphabet:?})",
                coding.0
            )))
        }
    };
    if octets.len() > MAX_OCTETS {
        return Err(PduError::Unencodable(format!(
            "{} octets of user data (at most 140)",
            octets.len()
        )));
    }
    out.push(udl as u8);
    out.extend_from_slice(&octets);
    Ok(user_data.header.is_some())
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

/// Most parts a concatenated message can number.
const MAX_PARTS: usize = 255;

/// How `text` is split: its coding and the texts of its parts (one part
/// without a header when it fits).
fn split(text: &str, force_ucs2: bool, wide_reference: bool) -> (DataCoding, Vec<String>) {
    let gsm = !force_ucs2 && text.chars().all(|c| gsm7::char_septets(c).is_some());
    // The concatenation header with its length octet.
    let header_octets = if wide_reference { 7 } else { 6 };
    let (coding, single, per_part): (DataCoding, usize, usize) = if gsm {
        (
            DataCoding::GSM7,
            MAX_SEPTETS,
            MAX_SEPTETS - header_septets(header_octets),
        )
    } else {
        (
            DataCoding::UCS2,
            MAX_OCTETS / 2,
            (MAX_OCTETS - header_octets) / 2,
        )
    };
    let cost = |c: char| {
        if gsm {
            gsm7::char_septets(c).unwrap_or(2)
        } else {
            c.len_utf16()
        }
    };
    if text.chars().map(cost).sum::<usize>() <= single {
        return (coding, vec![text.to_owned()]);
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let c_cost = cost(c);
        if used + c_cost > per_part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += c_cost;
    }
    parts.push(current);
    parts.truncate(MAX_PARTS);
    (coding, parts)
}

/// The user data of each part of `text`.
fn parts_user_data(
    text: &str,
    reference: u16,
    force_ucs2: bool,
    wide_reference: bool,
) -> (DataCoding, Vec<UserData>) {
    let (coding, parts) = split(text, force_ucs2, wide_reference);
    let total = parts.len() as u8;
    let user_data = parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let sequence = index as u8 + 1;
            let header = (total > 1).then(|| UserDataHeader {
                elements: vec![if wide_reference {
                    InformationElement::Concat16 {
                        reference,
                        total,
                        sequence,
                    }
                } else {
                    InformationElement::Concat8 {
                        reference: reference as u8,
                        total,
                        sequence,
                    }
                }],
            });
            UserData {
                header,
                body: Body::Text(part),
            }
        })
        .collect();
    (coding, user_data)
}

/// The SMS-SUBMITs carrying `text` to `destination`: GSM-7 when every
/// character is in the default alphabet or its extension table, else UCS-2;
/// one part when it fits (160 septets / 140 octets), else parts of 153
/// septets / 67 UTF-16 units with a concatenation header using `reference`
/// (its low 8 bits unless `wide_reference`), never splitting an escape pair
/// or a surrogate pair.
///
/// With a 16-bit reference the header is one octet longer: parts of 152
/// septets / 66 units. A text that would need more than 255 parts (over
/// 38 000 characters) cannot be numbered and is cut after the 255th.
/// The TP-MR is 0 (modems put their own), TP-PID 0.
pub fn submit_parts(
    destination: &PduAddress,
    text: &str,
    reference: u16,
    options: SubmitOptions,
) -> Vec<Submit> {
    let (data_coding, parts) =
        parts_user_data(text, reference, options.force_ucs2, options.wide_reference);
    parts
        .into_iter()
        .map(|user_data| Submit {
            reject_duplicates: false,
            status_report_request: options.status_report,
            reply_path: false,
            message_reference: 0,
            destination: destination.clone(),
            protocol_id: 0,
            data_coding,
            validity: options.validity.map_or(Validity::None, Validity::Relative),
            user_data,
        })
        .collect()
}

/// The SMS-DELIVERs carrying `text` from `originator`, split as
/// [`submit_parts`] does (`force_ucs2` and `wide_reference` as there).
///
/// Each part says no more messages are waiting, asks for no status
/// report and has no reply path; TP-PID is 0.
pub fn deliver_parts(
    originator: &PduAddress,
    text: &str,
    reference: u16,
    time: Timestamp,
    options: SubmitOptions,
) -> Vec<Deliver> {
    let (data_coding, parts) =
        parts_user_data(text, reference, options.force_ucs2, options.wide_reference);
    parts
        .into_iter()
        .map(|user_data| Deliver {
            more_messages_to_send: false,
            reply_path: false,
            status_report_indication: false,
            originator: originator.clone(),
            protocol_id: 0,
            data_coding,
            service_centre_time: time,
            user_data,
        })
        .collect()
}
