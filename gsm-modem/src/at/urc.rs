//! Unsolicited result codes: what a modem says without being asked.
//!
//! SKELETON: the types and signatures are the contract; bodies to be written.

/// An unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: a message was stored at `index` of `storage`.
    MessageStored {
        /// The memory (`SM`, `ME`, `MT`, ...).
        storage: String,
        /// Its index there.
        index: u32,
    },
    /// `+CDSI: "SM",4`: a status report was stored.
    StatusReportStored {
        /// The memory.
        storage: String,
        /// Its index there.
        index: u32,
    },
    /// `+CMT: [<alpha>],<length>` and the PDU line: a message handed over
    /// directly (it may or may not also be stored, depending on the modem).
    Message {
        /// The TPDU length the modem announced.
        length: u16,
        /// The PDU octets (service centre address first).
        pdu: Vec<u8>,
    },
    /// `+CDS: <length>` and the PDU line: a status report handed over directly.
    StatusReport {
        /// The TPDU length the modem announced.
        length: u16,
        /// The PDU octets.
        pdu: Vec<u8>,
    },
    /// `+CUSD: <m>[,<str>,<dcs>]`: a USSD answer or network-initiated USSD.
    Ussd {
        /// 0 no further action, 1 further action required, 2 terminated by network, ...
        status: u8,
        /// The string as sent (quotes removed; hex when the modem gives hex).
        text: Option<String>,
        /// Its data coding scheme, when given.
        dcs: Option<u8>,
    },
    /// `+CREG: <stat>[,<lac>,<ci>[,<act>]]` (also `+CGREG`, `+CEREG`).
    Registration(Registration),
    /// Huawei `^RSSI: <n>` (0–31, 99 unknown).
    SignalQuality(u8),
    /// Huawei `^BOOT:`, or a bare `RDY` / `+CFUN: 1` / `^SYSSTART`: the modem (re)started.
    Boot,
    /// `RING` / `+CRING`: an incoming call.
    Ring,
    /// Any other known unsolicited code (`^MODE`, `^SIMST`, `^SRVST`,
    /// `^DSFLOWRPT`, `^HCSQ`, `+ZDONR`, `+ZPASR`, ...), kept as name and value.
    Other {
        /// The code with its prefix, e.g. `^MODE`.
        name: String,
        /// What followed the colon, trimmed.
        value: String,
    },
}

/// Network registration as `+CREG` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// 0 not registered, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming.
    pub stat: u8,
    /// Location area code, when given.
    pub lac: Option<u32>,
    /// Cell id, when given.
    pub cell_id: Option<u32>,
    /// Access technology, when given.
    pub act: Option<u8>,
}

impl Registration {
    /// Registered, at home or roaming.
    pub fn is_registered(&self) -> bool {
        matches!(self.stat, 1 | 5)
    }
}

impl Urc {
    /// Reads `line` as an unsolicited result code, unless it is one of the
    /// two-line codes (`+CMT`, `+CDS`), which the codec reads itself.
    pub fn parse(line: &str) -> Option<Urc> {
        let _ = line;
        unimplemented!("skeleton")
    }
}
