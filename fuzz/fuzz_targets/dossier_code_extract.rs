//! Finding a dossier code in free text: never panics, and every code it
//! finds parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::domain::DossierCode;

fuzz_target!(|text: &str| {
    if let Ok(code) = DossierCode::extract(text) {
        assert_eq!(DossierCode::parse(code.as_str()).as_ref(), Ok(&code));
    }
    let _ = DossierCode::parse(text);
});
