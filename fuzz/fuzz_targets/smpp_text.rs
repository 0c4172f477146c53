//! A short message with arbitrary data_coding, esm_class, user data and
//! TLVs (concatenation TLVs and message_payload likely): decoding under
//! every default alphabet and reading its concatenation never panic, and
//! any part info found makes sense. The leftover bytes, as text, survive
//! encode_reply → decode_text in every long-message mode and alphabet.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use motcua_sms::smpp::pdu::{tag, ShortMessage, Tlv};
use motcua_sms::smpp::text::{
    concatenation, decode_text, encode_reply, DefaultAlphabet, LongMessageMode,
};

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?.min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn short_message(u: &mut Unstructured<'_>) -> Result<ShortMessage> {
    let mut sm = ShortMessage {
        data_coding: u.arbitrary()?,
        esm_class: u.arbitrary()?,
        ..ShortMessage::default()
    };
    sm.short_message = bytes(u, 254)?;
    for _ in 0..u.int_in_range(0..=4u8)? {
        let tag = *u.choose(&[
            tag::MESSAGE_PAYLOAD,
            tag::SAR_MSG_REF_NUM,
            tag::SAR_TOTAL_SEGMENTS,
            tag::SAR_SEGMENT_SEQNUM,
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
    let Ok(sm) = short_message(&mut u) else {
        return;
    };
    for alphabet in DefaultAlphabet::ALL {
        let _ = decode_text(&sm, alphabet);
    }
    if let Some(info) = concatenation(&sm) {
        assert!(info.index >= 1 && info.index <= info.total);
    }

    let rest = u.take_rest();
    let text = String::from_utf8_lossy(&rest[..rest.len().min(2_000)]);
    let reference = sm.short_message.len() as u16;
    for mode in LongMessageMode::ALL {
        for alphabet in DefaultAlphabet::ALL {
            let mut pieces: Vec<(u8, String)> = encode_reply(&text, reference, mode, alphabet)
                .into_iter()
                .map(|part| {
                    let received = ShortMessage {
                        esm_class: part.esm_class,
                        data_coding: part.data_coding,
                        short_message: part.short_message,
                        tlvs: part.tlvs,
                        ..ShortMessage::default()
                    };
                    let index = concatenation(&received).map_or(1, |info| info.index);
                    let text = decode_text(&received, alphabet).expect("a reply decodes");
                    (index, text)
                })
                .collect();
            pieces.sort_by_key(|(index, _)| *index);
            let joined: String = pieces.into_iter().map(|(_, text)| text).collect();
            assert_eq!(joined, text, "{mode:?} {alphabet:?}");
        }
    }
});
