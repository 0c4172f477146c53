//! The AT line codec: bytes from a modem → [`AtEvent`]s.
//!
//! SKELETON: the types and signatures are the contract; bodies to be written.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{AtError, AtEvent};

/// Cuts a modem's output into events. Lines end in `\r\n`, `\r\r\n`, a
/// bare `\r` or `\n`; empty lines are skipped; `> ` with no line end is the
/// prompt. A line an unsolicited result code starts is given as
/// [`AtEvent::Unsolicited`], unless the command in progress expects a
/// response with that prefix ([`AtCodec::expect`]): `+CREG: 0,1` after
/// `AT+CREG?` is a response, on its own it is news. `+CMT:` / `+CDS:` take
/// the next line as their PDU. Bytes that are not UTF-8 are read lossily.
#[derive(Debug, Default)]
pub struct AtCodec {
    _skeleton: (),
}

impl AtCodec {
    /// A codec expecting no response.
    pub fn new() -> Self {
        AtCodec::default()
    }

    /// The prefixes (e.g. `["+CREG:"]`) the command now in progress answers
    /// with; lines starting with them are [`AtEvent::Line`], not unsolicited.
    pub fn expect(&mut self, prefixes: &[&str]) {
        let _ = prefixes;
        unimplemented!("skeleton")
    }

    /// No command in progress.
    pub fn expect_nothing(&mut self) {
        unimplemented!("skeleton")
    }
}

impl Decoder for AtCodec {
    type Item = AtEvent;
    type Error = AtError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<AtEvent>, AtError> {
        let _ = src;
        unimplemented!("skeleton")
    }
}
