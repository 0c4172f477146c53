//! Arbitrary bytes as a receipt's short_message and TLVs (the receipt TLVs
//! likely): receipt::parse never panics, a parsed report names its
//! message, and every id spelling is canonical in its own right.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use motcua_sms::smpp::pdu::{tag, ShortMessage, Tlv};
use motcua_sms::channel::id_spellings;
use motcua_sms::smpp::receipt;

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?.min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn receipt(u: &mut Unstructured<'_>) -> Result<ShortMessage> {
    let mut sm = ShortMessage {
        data_coding: u.arbitrary()?,
        esm_class: u.arbitrary()?,
        ..ShortMessage::default()
    };
    sm.short_message = bytes(u, 254)?;
    for _ in 0..u.int_in_range(0..=4u8)? {
        let tag = *u.choose(&[
            tag::RECEIPTED_MESSAGE_ID,
            tag::MESSAGE_STATE,
            tag::NETWORK_ERROR_CODE,
            tag::MESSAGE_PAYLOAD,
            u16::MAX,
        ])?;
        let tag = if tag == u16::MAX { u.arbitrary()? } else { tag };
        let value = bytes(u, 300)?;
        sm.tlvs.push(Tlv { tag, value });
    }
    Ok(sm)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(sm) = receipt(&mut u) {
        if let Ok(report) = receipt::parse(&sm) {
            assert!(!report.message_id.is_empty());
            let _ = report.state.as_str();
            let _ = id_spellings(&report.message_id);
        }
    }
    let id = String::from_utf8_lossy(u.take_rest());
    for spelling in id_spellings(&id) {
        assert_eq!(id_spellings(&spelling)[0], spelling);
    }
});
