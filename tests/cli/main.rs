//! Integration tests, one binary: the binary's commands (exit codes, configuration errors, import, accounts, `loadgen`, `state`) and the rooms' import rules read from the sources.
//! Shared helpers come from `tests/support` (the `support` crate).

mod architecture;
mod cli;
mod loadgen;
mod state;
