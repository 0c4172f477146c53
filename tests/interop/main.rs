//! Integration tests, one binary: Third-party peers: npm smpp (node-smpp) in both roles and for USSD, PyPI smpplib as an ESME,
//! real Kannel in front of the get-url drop-in.
//! Shared helpers come from `tests/support` (the `support` crate).

mod interop_kannel;
mod interop_node;
mod interop_node_ussd;
mod interop_smpplib;
