//! An SMS address as carriers write it: the digits (or an alphanumeric
//! name), its type of number (TON) and numbering plan (NPI). Shared by the
//! protocol rooms and the journal, which keeps it so that a reply can be
//! addressed after a restart.

/// An address with its type of number and numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Address {
    /// The digits (or name) as the carrier wrote them.
    pub addr: String,
    /// Type of number (0 unknown, 1 international, 2 national, 3 network specific, 5 alphanumeric).
    pub ton: u8,
    /// Numbering plan (0 unknown, 1 ISDN/E.164).
    pub npi: u8,
}

impl Address {
    /// An address with the given TON and NPI.
    pub fn new(addr: impl Into<String>, ton: u8, npi: u8) -> Self {
        Address {
            addr: addr.into(),
            ton,
            npi,
        }
    }
}
