//! The admin console's back end, room by room. So far:
//!
//! - [`accounts`]: personal accounts with roles (administrator, operator,
//!   viewer), Argon2id password hashes, forced change of a first password,
//!   lockout after repeated wrong passwords, and the audit log of every
//!   change. The console's HTTP API and web UI build on it.
//! - [`traffic`]: the message log (search, masked for viewers) and traffic statistics.

pub mod accounts;
pub mod traffic;
