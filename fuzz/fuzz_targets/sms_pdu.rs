//! Any octets through the PDU decoder in both directions: never panics, and
//! what decodes encodes again to a PDU that decodes to the same thing.
#![no_main]

use gsm_modem::pdu::{decode, encode, Direction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for direction in [Direction::ToMobile, Direction::FromMobile] {
        if let Ok(pdu) = decode(data, direction) {
            if let Ok(encoded) = encode(&pdu) {
                let again = decode(&encoded.bytes, direction)
                    .expect("a PDU we wrote must decode");
                assert_eq!(again, pdu, "decode(encode(pdu)) != pdu");
            }
        }
    }
});
