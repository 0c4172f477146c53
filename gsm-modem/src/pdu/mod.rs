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
//! SKELETON: the types and signatures are the contract; bodies to be written.

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
    #[error("cannot encode: {0}")]
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
    let _ = hex;
    unimplemented!("skeleton")
}

/// Reads one PDU (service centre address first, as modems give them).
pub fn decode(bytes: &[u8], direction: Direction) -> Result<Pdu, PduError> {
    let _ = (bytes, direction);
    unimplemented!("skeleton")
}

/// Reads one PDU from hex.
pub fn decode_hex(hex: &str, direction: Direction) -> Result<Pdu, PduError> {
    decode(&from_hex(hex)?, direction)
}

/// Writes one PDU.
pub fn encode(pdu: &Pdu) -> Result<EncodedPdu, PduError> {
    let _ = pdu;
    unimplemented!("skeleton")
}

/// The SMS-SUBMITs carrying `text` to `destination`: GSM-7 when every
/// character is in the default alphabet or its extension table, else UCS-2;
/// one part when it fits (160 septets / 140 octets), else parts of 153
/// septets / 67 UTF-16 units with a concatenation header using `reference`
/// (its low 8 bits unless `wide_reference`), never splitting an escape pair
/// or a surrogate pair.
pub fn submit_parts(
    destination: &PduAddress,
    text: &str,
    reference: u16,
    options: SubmitOptions,
) -> Vec<Submit> {
    let _ = (destination, text, reference, options);
    unimplemented!("skeleton")
}

/// The SMS-DELIVERs carrying `text` from `originator`, split as
/// [`submit_parts`] does (`force_ucs2` and `wide_reference` as there).
pub fn deliver_parts(
    originator: &PduAddress,
    text: &str,
    reference: u16,
    time: Timestamp,
    options: SubmitOptions,
) -> Vec<Deliver> {
    let _ = (originator, text, reference, time, options);
    unimplemented!("skeleton")
}
