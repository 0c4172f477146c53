//! One SMPP frame: decoding never panics, and whatever decodes re-encodes to
//! a frame that decodes to the same PDU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::smpp::pdu::Pdu;

fuzz_target!(|data: &[u8]| {
    if let Ok(pdu) = Pdu::decode(data) {
        let again = Pdu::decode(&pdu.to_bytes()).expect("re-encoded PDU decodes");
        assert_eq!(again.body, pdu.body);
    }
});
