//! Phone number parsing: never panics; a parsed number round-trips through
//! its international form and its redaction never shows the middle digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::domain::Msisdn;

fuzz_target!(|text: &str| {
    if let Ok(m) = Msisdn::parse(text) {
        let again = Msisdn::parse(&format!("+{}", m.as_international())).expect("round trip");
        assert_eq!(again, m);
        assert!(m.redacted().contains('*') || m.national().len() <= 6);
    }
});
