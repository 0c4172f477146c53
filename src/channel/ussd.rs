//! USSD turns and answers, whatever carries them: what a citizen's turn
//! means for the dialogue ([`TurnKind`], [`UssdTurn`]), where its answer
//! goes back ([`UssdReturn`]), and the screen sent back ([`UssdAnswer`]).
//! The operations ([`ServiceOp`]) are GSM's (3GPP TS 24.090: PSSR, USSR,
//! USSN, with SMPP's `ussd_service_op` numbering) and the dialogue
//! numbering ([`SessionInfo`]) is the one SMPP's `its_session_info`
//! carries; how they are read from and written to a PDU is the protocol's
//! (`crate::smpp::ussd`).

use crate::address::Address;

/// The USSD operation a PDU carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceOp {
    /// 0: a process-unstructured-SS data indication (a dial, old phones).
    PssdIndication,
    /// 1: a process-unstructured-SS request indication: the citizen dialled.
    PssrIndication,
    /// 2: an unstructured-SS request: a menu, the dialogue stays open.
    UssrRequest,
    /// 3: an unstructured-SS notification: a notice, no input expected.
    UssnRequest,
    /// 16: the answer to a PSSD indication.
    PssdResponse,
    /// 17: the answer to a PSSR indication: the final screen, the dialogue closes.
    PssrResponse,
    /// 18: the citizen's answer to a USSR request.
    UssrConfirm,
    /// 19: the handset saw a USSN.
    UssnConfirm,
    /// Any other value (vendor extensions), kept as is.
    Other(u8),
}

impl ServiceOp {
    /// The operation for a TLV value.
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => ServiceOp::PssdIndication,
            1 => ServiceOp::PssrIndication,
            2 => ServiceOp::UssrRequest,
            3 => ServiceOp::UssnRequest,
            16 => ServiceOp::PssdResponse,
            17 => ServiceOp::PssrResponse,
            18 => ServiceOp::UssrConfirm,
            19 => ServiceOp::UssnConfirm,
            other => ServiceOp::Other(other),
        }
    }

    /// The TLV value.
    pub fn to_u8(self) -> u8 {
        match self {
            ServiceOp::PssdIndication => 0,
            ServiceOp::PssrIndication => 1,
            ServiceOp::UssrRequest => 2,
            ServiceOp::UssnRequest => 3,
            ServiceOp::PssdResponse => 16,
            ServiceOp::PssrResponse => 17,
            ServiceOp::UssrConfirm => 18,
            ServiceOp::UssnConfirm => 19,
            ServiceOp::Other(value) => value,
        }
    }
}

/// The `its_session_info` TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionInfo {
    /// The session number (first octet).
    pub session: u8,
    /// The sequence number within the session (bits 7–1 of the second octet).
    pub sequence: u8,
    /// The end-of-session indicator (bit 0 of the second octet).
    pub end: bool,
}

impl SessionInfo {
    /// Reads the TLV value; `None` unless it is exactly two octets.
    pub fn decode(value: &[u8]) -> Option<Self> {
        match value {
            [session, second] => Some(SessionInfo {
                session: *session,
                sequence: second >> 1,
                end: second & 1 == 1,
            }),
            _ => None,
        }
    }

    /// The TLV value.
    pub fn encode(self) -> [u8; 2] {
        [
            self.session,
            ((self.sequence & 0x7F) << 1) | u8::from(self.end),
        ]
    }
}

/// What a USSD PDU means for its dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    /// The citizen dialled (PSSR or PSSD indication): a new dialogue; the
    /// text is the dial string (`*8058*1234#`).
    Open,
    /// The citizen answered a menu (USSR confirm): the text is the input.
    Continue,
    /// The citizen or the network ended the dialogue (end-of-session bit,
    /// or an operation the gateway does not expect from the network).
    Release,
}

/// Where and how an answer goes back: everything the SMPP side needs to
/// answer a turn or release the dialogue later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdReturn {
    /// The channel the turn came in on (`listener:<account>` or `smsc:<name>`).
    pub channel: String,
    /// The citizen's number.
    pub citizen: Address,
    /// The number or service code the citizen reached.
    pub service: Address,
    /// The peer's `its_session_info`, echoed (sequence and end bit set per answer).
    pub session_info: Option<SessionInfo>,
    /// The turn came as `data_sm`: answer with `data_sm`.
    pub data_sm: bool,
    /// The `service_type` of the turn (often `USSD`), echoed.
    pub service_type: String,
}

/// One turn of a USSD dialogue, as the SMPP side read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdTurn {
    /// Identifies the dialogue within the gateway: the channel, the
    /// citizen's number and the session number.
    pub dialogue: String,
    /// What the PDU means.
    pub kind: TurnKind,
    /// The operation as received.
    pub op: ServiceOp,
    /// The decoded text (dial string or input).
    pub text: String,
    /// How to answer.
    pub ret: UssdReturn,
}

/// A screen to show the citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdAnswer {
    /// The text (at most one USSD screen).
    pub text: String,
    /// Close the dialogue (PSSR response) rather than wait for input (USSR request).
    pub end: bool,
}
