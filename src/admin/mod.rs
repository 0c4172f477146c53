//! The admin console's back end, room by room:
//!
//! - [`accounts`]: personal accounts with roles (administrator, operator,
//!   viewer), Argon2id password hashes, forced change of a first password,
//!   lockout after repeated wrong passwords, and the audit log of every
//!   change.
//! - [`sessions`]: browser sessions (cookie + CSRF token) and scripts'
//!   bearer tokens, stored as hashes.
//! - [`templates`]: versions of the reply templates: preview against sample
//!   dossiers, save, activate, roll back; a text that fails to compile, uses
//!   an unknown variable or exceeds its segment budget never reaches citizens.
//! - [`traffic`]: the message log's search and traffic statistics.
//! - [`http`]: the console's HTTP port: the JSON API with its OpenAPI
//!   document, role checks per handler.
//! - [`web`]: the console's web UI (one page, script and stylesheet built
//!   into the binary), a single-page app over the JSON API.
//!
//! What a viewer sees of personal data in the log (numbers masked, names as
//! initials) is [`crate::privacy`]'s, which log lines elsewhere use too.

pub mod accounts;
pub mod http;
pub mod sessions;
pub mod templates;
pub mod traffic;
pub mod web;
