//! The admin console's back end, room by room. So far:
//!
//! - [`accounts`]: personal accounts with roles (administrator, operator,
//!   viewer), Argon2id password hashes, forced change of a first password,
//!   lockout after repeated wrong passwords, and the audit log of every
//!   change. The console's HTTP API and web UI build on it.
//! - [`templates`]: reply template versions: list, read, preview against
//!   the sample dossiers, save, activate, roll back; a text that does not
//!   compile, uses an unknown variable or goes over its segment budget is
//!   never saved nor put in use.

pub mod accounts;
pub mod templates;
