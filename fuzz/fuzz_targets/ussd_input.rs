//! What a handset or an aggregator sends as USSD: dial strings, menu and
//! code inputs, the `its_session_info` octets. Parsing never panics; a
//! keypad query's digits are digits within the bounds, with a real date;
//! session info round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::channel::SessionInfo;
use motcua_sms::ussd::dial::{
    CodeQuery, Dial, ServiceCode, MAX_CODE_DIGITS, MIN_CODE_DIGITS,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let service = ServiceCode::parse("*8058#").expect("a valid service code");
    if let Ok(Dial::Direct(rest)) = Dial::parse(&text, &service) {
        assert!(!rest.trim_matches('*').is_empty());
    }
    let _ = ServiceCode::parse(&text);
    if let Ok(CodeQuery::Digits(digits)) = CodeQuery::parse(&text) {
        let digits = digits.as_str();
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!((MIN_CODE_DIGITS..=MAX_CODE_DIGITS).contains(&digits.len()));
        assert!(!digits.ends_with("0000"));
    }
    if let Some(info) = SessionInfo::decode(data) {
        assert_eq!(SessionInfo::decode(&info.encode()), Some(info));
    }
});
