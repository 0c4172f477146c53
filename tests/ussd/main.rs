//! Integration tests, one binary: USSD over its HTTP callback and over SMPP
//! (a USSD centre as ESME and as SMSC). Apart from the modem tests: the
//! dialogue-table tests count on short session timeouts, which the modem
//! tests' gateway processes, run beside them, would stretch.
//! Shared helpers come from `tests/support` (the `support` crate).

mod ussd_http;
mod ussd_smpp;
