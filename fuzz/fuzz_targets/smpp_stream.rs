//! A byte stream through the SMPP framer: never panics, never loops, and a
//! good PDU sent after the garbage (and a partial-frame timeout) is read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use motcua_sms::smpp::codec::{Inbound, SmppCodec};
use motcua_sms::smpp::pdu::{Body, Pdu};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = SmppCodec::new(4096);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    let _ = codec.abandon_partial(&mut buf);
    buf.extend_from_slice(&Pdu::new(7, Body::EnquireLink).to_bytes());
    let mut last = None;
    while let Ok(Some(item)) = codec.decode(&mut buf) {
        last = Some(item);
    }
    assert_eq!(last, Some(Inbound::Pdu(Pdu::new(7, Body::EnquireLink))));
});
