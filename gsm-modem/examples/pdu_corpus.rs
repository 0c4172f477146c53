//! Prints generated SMS-DELIVER PDUs as JSON Lines, with this crate's own
//! reading of each, for `tests/smspdudecoder_compare.py`:
//!
//! ```text
//! cargo run -p gsm-modem --example pdu_corpus -- [COUNT=1000] [SEED=1] \
//!     | python3 gsm-modem/tests/smspdudecoder_compare.py
//! ```
//!
//! The same seed gives the same lines (`gsm_modem::pdu::corpus`).

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let count = match args.next() {
        Some(arg) => arg.parse().expect("COUNT must be a number"),
        None => 1000,
    };
    let seed = match args.next() {
        Some(arg) => arg.parse().expect("SEED must be a number"),
        None => 1,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in gsm_modem::pdu::corpus::lines(seed, count) {
        // Every line must be valid JSON; serde_json (a dev-dependency) checks.
        debug_assert!(
            serde_json::from_str::<serde_json::Value>(&line).is_ok(),
            "{line}"
        );
        if writeln!(out, "{line}").is_err() {
            return; // the reader went away
        }
    }
}
