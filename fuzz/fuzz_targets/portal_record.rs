//! A JSON line from the one-stop core: never panics, whatever the fields hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motcua_sms::portal_record::PortalRecord;

fuzz_target!(|text: &str| {
    if let Ok(record) = PortalRecord::from_json(text) {
        let _ = record.into_dossier();
    }
});
