//! Integration tests, one binary: The channels beside SMPP: USSD over its HTTP callback and over SMPP, and GSM modems
//! (simulated modems on pseudo-terminals).
//! Shared helpers come from `tests/support` (the `support` crate).

mod modem_channel;
mod ussd_http;
mod ussd_smpp;
