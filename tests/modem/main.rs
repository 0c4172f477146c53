//! Integration tests, one binary: GSM modems, the gateway binary driving
//! simulated modems on pseudo-terminals (`gsm_modem::sim`).
//! Shared helpers come from `tests/support` (the `support` crate).

mod modem_channel;
