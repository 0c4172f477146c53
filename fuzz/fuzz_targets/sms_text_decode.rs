//! Short-message text decoding for every data_coding, esm_class and
//! default alphabet: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::smpp::pdu::{tag, ShortMessage, Tlv};
use motcua_sms::smpp::text::{decode_text, DefaultAlphabet};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let Some((&esm_class, rest)) = rest.split_first() else {
        return;
    };
    let payload = head & 1 == 1;
    let mut sm = ShortMessage {
        data_coding: head,
        esm_class,
        ..ShortMessage::default()
    };
    if payload {
        sm.tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: rest.to_vec(),
        });
    } else {
        sm.short_message = rest.to_vec();
    }
    for alphabet in DefaultAlphabet::ALL {
        let _ = decode_text(&sm, alphabet);
    }
});
