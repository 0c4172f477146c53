//! Typed commands and their responses, read the way real modems write
//! them (Huawei, ZTE, Wavecom, Telit, Pantech, D-Link variants).
//!
//! SKELETON: the types and signatures are the contract; bodies to be written.

use super::urc::Registration;
use super::AtError;

/// A message in the modem's storage, as `+CMGL` / `+CMGR` list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPdu {
    /// Its index in the storage.
    pub index: u32,
    /// 0 received unread, 1 received read, 2 stored unsent, 3 stored sent (None when not given).
    pub status: Option<u8>,
    /// The TPDU length the modem gives.
    pub length: u16,
    /// The PDU octets (service centre address first).
    pub pdu: Vec<u8>,
}

/// Use of one message storage (`+CPMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUse {
    /// The memory name when given (`SM`, `ME`, `MT`); empty in the set form.
    pub memory: String,
    /// Messages in it.
    pub used: u32,
    /// Room for this many.
    pub total: u32,
}

impl StorageUse {
    /// True when no message fits any more.
    pub fn is_full(&self) -> bool {
        self.total > 0 && self.used >= self.total
    }
}

/// `+CSQ: <rssi>,<ber>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalQuality {
    /// 0–31, 99 unknown.
    pub rssi: u8,
    /// 0–7, 99 unknown.
    pub ber: u8,
}

impl SignalQuality {
    /// dBm for a known rssi (−113 + 2·rssi).
    pub fn dbm(&self) -> Option<i16> {
        (self.rssi <= 31).then(|| -113 + 2 * i16::from(self.rssi))
    }
}

/// `+CPIN: <code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// `READY`.
    Ready,
    /// `SIM PIN`: the PIN is wanted.
    SimPin,
    /// `SIM PUK`: the SIM is blocked.
    SimPuk,
    /// Anything else, as sent.
    Other(String),
}

/// Reads a `+CMGL` listing in PDU mode: header lines each followed by
/// their PDU line (`+CMGL: 0,1,,147`, Pantech `+CMGL: 17,3,35`, D-Link
/// `+CMGL: 1, 0,,23`). A header without a PDU line is skipped.
pub fn parse_cmgl(lines: &[String]) -> Result<Vec<StoredPdu>, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}

/// Reads a `+CMGR` response for `index` (`+CMGR: 0,,27`, Telit
/// `+CMGR: 0,"",50`, `+CMGR: ,,27`, `+CMGR: 0,23`); `None` for an empty slot.
pub fn parse_cmgr(index: u32, lines: &[String]) -> Result<Option<StoredPdu>, AtError> {
    let _ = (index, lines);
    unimplemented!("skeleton")
}

/// The message reference of `+CMGS: <mr>[,<scts>]`.
pub fn parse_cmgs(lines: &[String]) -> Result<u8, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}

/// `+CPMS` in its query form (`+CPMS: "SM",3,20,"SM",3,20,...`) or set
/// form (`+CPMS: 3,20,3,20,3,20`): one entry per storage listed.
pub fn parse_cpms(lines: &[String]) -> Result<Vec<StorageUse>, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}

/// `+CSQ: <rssi>,<ber>`.
pub fn parse_csq(lines: &[String]) -> Result<SignalQuality, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}

/// The response to `AT+CREG?`: `+CREG: <n>,<stat>[,<lac>,<ci>[,<act>]]`
/// (LAC and cell id in hex, quoted or not, possibly empty).
pub fn parse_creg(lines: &[String]) -> Result<Registration, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}

/// `+CPIN: READY` and friends (Wavecom sends it with no OK after it).
pub fn parse_cpin(lines: &[String]) -> Result<PinState, AtError> {
    let _ = lines;
    unimplemented!("skeleton")
}
