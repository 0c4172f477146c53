//! Integration tests, one binary: SMPP in both roles over real sockets: the listener (binds, hardening, limits, malformed frames),
//! the carrier link, redelivery and waiting replies, expiry, crash recovery in both roles, abuse
//! control end to end, what the logs never show, and `state backup` of a gateway under load.
//! Shared helpers come from `tests/support` (the `support` crate).

mod abuse_end_to_end;
mod carrier_crash;
mod cluster_failover;
mod crash_recovery;
mod listener_hardening;
mod listener_limits;
mod log_privacy;
mod malformed_pdu;
mod redelivery_and_waiting;
mod reply_expiry;
mod smpp_carrier;
mod smpp_esme;
mod smpp_listener;
mod state_backup;
mod state_postgres_restart;
