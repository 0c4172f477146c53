//! The admin console's back end, room by room. So far:
//!
//! - [`accounts`]: personal accounts with roles (administrator, operator,
//!   viewer), Argon2id password hashes, forced change of a first password,
//!   lockout after repeated wrong passwords, and the audit log of every
//!   change. The console's HTTP API and web UI build on it.
//! - [`web`]: the console's web UI (one page, script and stylesheet built
//!   into the binary), a single-page app over the JSON API.

pub mod accounts;
pub mod web;
