//! Integration tests, one binary: The binary's commands: exit codes, configuration errors, import, accounts, `loadgen`.
//! Shared helpers come from `tests/support` (the `support` crate).

mod cli;
mod loadgen;
