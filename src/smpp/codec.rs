//! SMPP framing for tokio: cuts the byte stream into frames by
//! command_length (16 ≤ length ≤ a configured cap) and decodes each frame
//! from exactly its own bytes. A bad frame never ends the session: it comes
//! out as [`Inbound::Invalid`] so the session can answer it, and after a
//! length that cannot be trusted the framer skips ahead to the next header
//! that looks like SMPP.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::pdu::{command_id, status, DecodeError, Header, Pdu, HEADER_LEN};

/// Default cap on command_length: a deliver_sm with a full message_payload
/// fits several times over.
pub const DEFAULT_MAX_PDU_LEN: u32 = 64 * 1024;

/// What the framer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A well-formed PDU.
    Pdu(Pdu),
    /// A frame that could not be used. `header` is known when the first 16
    /// bytes were read (so the answer can carry the sequence number).
    Invalid {
        /// The frame's header, if it had one.
        header: Option<Header>,
        /// What was wrong, with the status to answer.
        error: DecodeError,
    },
}

/// Frames SMPP PDUs.
#[derive(Debug)]
pub struct SmppCodec {
    max_len: u32,
    /// After an untrustworthy length: skip bytes until a plausible header.
    resyncing: bool,
}

impl SmppCodec {
    /// A codec refusing PDUs longer than `max_len` bytes.
    pub fn new(max_len: u32) -> Self {
        SmppCodec {
            max_len: max_len.max(HEADER_LEN as u32),
            resyncing: false,
        }
    }

    fn plausible(&self, header: &Header) -> bool {
        (HEADER_LEN as u32..=self.max_len).contains(&header.command_length)
            && command_id::is_known(header.command_id)
            && (header.command_id & command_id::RESPONSE_BIT != 0 || header.command_status == 0)
    }

    /// Drops a partial frame that never completed (the session calls this
    /// when a frame stays incomplete for too long) and returns what to answer.
    pub fn abandon_partial(&mut self, buf: &mut BytesMut) -> Option<Inbound> {
        if buf.is_empty() {
            return None;
        }
        let header = Header::peek(buf);
        buf.clear();
        self.resyncing = false;
        Some(Inbound::Invalid {
            header,
            error: DecodeError {
                field: "command_length",
                problem: "the PDU stopped before its declared length",
                status: status::ESME_RINVCMDLEN,
            },
        })
    }
}

impl Default for SmppCodec {
    fn default() -> Self {
        SmppCodec::new(DEFAULT_MAX_PDU_LEN)
    }
}

impl Decoder for SmppCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, Self::Error> {
        if self.resyncing {
            loop {
                if buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                match Header::peek(buf) {
                    Some(h) if self.plausible(&h) => {
                        self.resyncing = false;
                        break;
                    }
                    _ => buf.advance(1),
                }
            }
        }
        if buf.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if length < HEADER_LEN as u32 || length > self.max_len {
            let header = Header::peek(buf);
            // The length cannot be trusted: drop this start and look for the next PDU.
            buf.advance(4.min(buf.len()));
            self.resyncing = true;
            return Ok(Some(Inbound::Invalid {
                header,
                error: DecodeError {
                    field: "command_length",
                    problem: if length < HEADER_LEN as u32 {
                        "shorter than a PDU header"
                    } else {
                        "above the configured maximum PDU size"
                    },
                    status: status::ESME_RINVCMDLEN,
                },
            }));
        }
        let length = length as usize;
        if buf.len() < length {
            // Nothing is reserved for the bytes a frame claims: the buffer
            // grows only as they arrive, so a header claiming the maximum
            // (sent before any bind, by anyone) costs nothing.
            return Ok(None);
        }
        let frame = buf.split_to(length);
        Ok(Some(match Pdu::decode(&frame) {
            Ok(pdu) => Inbound::Pdu(pdu),
            Err(error) => {
                // A frame that did not parse may have had a lying length:
                // make sure the next one starts at a plausible header.
                self.resyncing = true;
                Inbound::Invalid {
                    header: Header::peek(&frame),
                    error,
                }
            }
        }))
    }
}

impl Encoder<Pdu> for SmppCodec {
    type Error = std::io::Error;

    fn encode(&mut self, pdu: Pdu, out: &mut BytesMut) -> Result<(), Self::Error> {
        pdu.encode(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::Body;
    use proptest::prelude::*;

    fn enquire(seq: u32) -> BytesMut {
        Pdu::new(seq, Body::EnquireLink).to_bytes()
    }

    fn drain(codec: &mut SmppCodec, buf: &mut BytesMut) -> Vec<Inbound> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn huge_length_is_answered_then_the_next_pdu_is_read() {
        let mut codec = SmppCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7,
        ]);
        buf.extend_from_slice(b"garbage after the bad header");
        buf.extend_from_slice(&enquire(8));
        let items = drain(&mut codec, &mut buf);
        assert!(
            matches!(&items[0], Inbound::Invalid { header: Some(h), .. } if h.sequence_number == 7)
        );
        assert_eq!(
            items.last(),
            Some(&Inbound::Pdu(Pdu::new(8, Body::EnquireLink)))
        );
    }

    #[test]
    fn a_short_lying_length_is_answered_and_the_stream_recovers() {
        let mut codec = SmppCodec::default();
        let mut submit = Pdu::new(
            3,
            Body::SubmitSm(crate::smpp::pdu::ShortMessage {
                source_addr: "0912345678".into(),
                destination_addr: "8058".into(),
                short_message: b"TC 000.00.12.H58-240315-0007".to_vec(),
                ..Default::default()
            }),
        )
        .to_bytes();
        // Claim 30 bytes: the frame ends inside the body, the rest is junk.
        submit[..4].copy_from_slice(&30u32.to_be_bytes());
        let mut buf = submit;
        buf.extend_from_slice(&enquire(4));
        let items = drain(&mut codec, &mut buf);
        assert!(
            matches!(&items[0], Inbound::Invalid { header: Some(h), error } if h.sequence_number == 3 && error.status == status::ESME_RINVMSGLEN)
        );
        assert_eq!(
            items.last(),
            Some(&Inbound::Pdu(Pdu::new(4, Body::EnquireLink)))
        );
    }

    #[test]
    fn a_partial_frame_waits_then_can_be_abandoned() {
        let mut codec = SmppCodec::default();
        let whole = enquire(5);
        let mut buf = BytesMut::from(&whole[..10]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        let answer = codec.abandon_partial(&mut buf).unwrap();
        assert!(matches!(answer, Inbound::Invalid { header: None, .. }));
        buf.extend_from_slice(&enquire(6));
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Inbound::Pdu(Pdu::new(6, Body::EnquireLink)))
        );
    }

    #[test]
    fn a_claimed_length_is_not_reserved_before_its_bytes_arrive() {
        let mut codec = SmppCodec::new(64 * 1024);
        let mut buf = BytesMut::with_capacity(64);
        // A header claiming 64 KB, then nothing more.
        buf.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() < 1024,
            "{} bytes reserved for 16 received",
            buf.capacity()
        );
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let mut codec = SmppCodec::default();
        let mut all = enquire(1);
        all.extend_from_slice(&enquire(2));
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in all.iter() {
            buf.extend_from_slice(&[*byte]);
            out.extend(drain(&mut codec, &mut buf));
        }
        assert_eq!(out.len(), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_a_good_pdu_after_them_is_found(
            junk in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut codec = SmppCodec::new(4096);
            let mut buf = BytesMut::from(&junk[..]);
            let _ = drain(&mut codec, &mut buf);
            // Whatever state the junk left, a partial remainder is dropped
            // after the timeout and the next good PDU is read.
            let _ = codec.abandon_partial(&mut buf);
            buf.extend_from_slice(&enquire(42));
            let items = drain(&mut codec, &mut buf);
            prop_assert_eq!(items.last(), Some(&Inbound::Pdu(Pdu::new(42, Body::EnquireLink))));
        }
    }
}
