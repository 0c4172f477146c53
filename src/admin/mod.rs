//! The admin console's back end, room by room:
//!
//! - [`accounts`]: personal accounts with roles (administrator, operator,
//!   viewer), Argon2id password hashes, forced change of a first password,
//!   lockout after repeated wrong passwords, and the audit log of every
//!   change.
//! - [`sessions`]: browser sessions (cookie + CSRF token) and scripts'
//!   bearer tokens, stored as hashes.
//! - [`http`]: the console's HTTP port: the JSON API with its OpenAPI
//!   document, role checks per handler.

pub mod accounts;
pub mod http;
pub mod sessions;
