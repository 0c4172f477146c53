//! motcua-sms: the automatic SMS reply gateway for Vietnam's one-stop
//! dossier lookups. A citizen texts the code on their receipt; the gateway
//! answers with the dossier's processing status from a local read model.
//!
//! # Module map (one room per concern)
//!
//! - [`domain`]: dossier codes (`extract` from what people type), phone
//!   numbers with redaction, statuses and on-time/late. Pure.
//! - [`portal_record`]: the national portal's JSON record shape → [`domain::Dossier`].
//! - [`store`]: the read model behind two traits, [`store::DossierLookup`] for replies and
//!   [`store::DossierWriter`] for sync; SQLite by default;
//!   [`store::Freshness`], when it last matched the core (sync marks it, replies read it).
//! - [`import`]: `motcua-sms import FILE` (JSON Lines, version-guarded).
//! - [`feed`]: the core feed protocol (docs/core-feed.md): wire types, the
//!   reconciliation digest, the HTTP layer every core shares
//!   (`feed::server`: the `FeedSource` trait and its axum router), and
//!   `motcua-sms core-sim`, a synthetic core.
//! - [`relay`]: `motcua-sms relay`, the feed served from a PostgreSQL core
//!   that installed migrations/core-postgres/ (commit-safe change reading,
//!   LISTEN/NOTIFY long-poll, streamed digest).
//! - [`sync`]: keeps the read model in step with the one-stop core: the
//!   feed follower (snapshot, changes, digest repair, backoff), the push
//!   webhook, the NATS JetStream fan-out (`sync::jetstream`: `motcua-sms
//!   fanout` publishes the feed to a stream, gateways follow it with durable
//!   consumers), sync metrics.
//! - [`http_server`]: serves every HTTP port (operations, public, admin,
//!   USSD callback, the feed of relay and core-sim) with the same limits:
//!   connection caps, header and request timeouts, body size.
//! - [`client_addr`]: who an HTTP client is (peer or trusted
//!   `X-Forwarded-For`), the key per-client limits use (IPv6 per /64), a
//!   pruned keyed rate limiter.
//! - [`ops_http`]: the operations HTTP port: `/healthz`, `/metrics`, push.
//! - [`public_http`]: the public port: the lookup page and JSON for portals
//!   and kiosks.
//! - [`kannel_http`]: Kannel's `get-url` drop-in, on a port of its own.
//! - [`trusted_caller`]: who may call an HTTP port that names the citizen
//!   (the USSD callback, the Kannel drop-in): allow list and shared secret.
//! - [`ussd`]: USSD dialogues (menu, direct dial, keypad digits) over SMPP
//!   and the aggregators' HTTP callback.
//! - [`privacy`]: citizens' data kept out of what others see: phone numbers
//!   masked however written, applicants' names cut to initials (the
//!   console's viewers, log lines quoting citizens' or the core's text).
//! - [`admin`]: the admin console: accounts with roles and the audit log,
//!   sessions (cookie + CSRF, bearer tokens), template versions, the message
//!   log and statistics, its HTTP API (OpenAPI) and the web UI built into
//!   the binary.
//! - [`abuse`]: rate limits, scanner blocks, loops, allow/block lists (the
//!   state database, optional Redis).
//! - [`cluster`]: the gateways sharing one state database as nodes: names,
//!   leases renewed by heartbeat, takeover of a lapsed node's waiting
//!   messages, the channels each node publishes.
//! - [`address`]: an SMS address with TON/NPI.
//! - [`clock`]: now in Unix milliseconds, and Vietnam's time (the +07:00
//!   offset, written once).
//! - [`db`]: opening databases by URL (SQLite, PostgreSQL), their pools and
//!   migrations; the gateway's own SQLite file ([`db::GatewayDb`]) that the
//!   journal, abuse control and the admin console share.
//! - [`journal`]: the durable record of messages and the reply outbox (group
//!   commit, on a writer thread of its own; typed requests, SQL per table
//!   family).
//! - `inline_reads` (internal): the per-message one-row lookups (dossier,
//!   sender's abuse state) on the calling thread, without sqlx's thread hop.
//! - [`sms_text`]: GSM-7 / UCS-2 encodings, segment counting and splitting.
//! - [`reload`]: values swapped whole while running (template sets on SIGHUP).
//! - [`reply`]: templates (minijinja), checked at load, rendered within a segment budget.
//! - [`responder`]: text → parse → look up → privacy rule → render. No I/O types.
//! - [`channel`]: what every way in and out shares: the incoming message,
//!   the handler trait, delivery reports, USSD turns and answers, the
//!   [`channel::Outlet`] trait with its typed send outcome, and the route
//!   table over outlets ([`channel::Routes`]).
//! - [`smpp`]: SMPP codec and sessions, listener and carrier (ESME) roles,
//!   each session an outlet of the channel; knows no dossiers.
//! - [`modem`]: the GSM modem channel: the `[[modem.devices]]`, each a
//!   `gsm_modem` session on its serial port and an outlet of the channel;
//!   messages deleted from the SIM only once journaled.
//! - [`gateway`]: takes a channel's message: journal first, then the outbox.
//! - [`answering`]: the one answering policy of SMS, USSD and the Kannel
//!   drop-in: admission (abuse rules) → the responder → the lookup recorded,
//!   the exchange journaled.
//! - [`outbox`]: answers recorded messages and delivers replies exactly once per message.
//! - [`config`]: `config.toml` with defaults and `MOTCUA_*` overrides.
//! - [`app`]: wires a [`config::Config`] into a running [`app::Gateway`].
//! - [`signals`]: SIGTERM/Ctrl-C start a drain, SIGHUP puts a re-read
//!   configuration in force.
//! - [`cli`]: the binary's subcommands, one file per family (`run`,
//!   `import`/`status`, `sms`, `block`/`allow`, `account`, `loadgen`,
//!   `core-sim`/`relay`/`fanout`, `state` backup/verify/copy); `src/main.rs`
//!   only parses and dispatches.
//! - [`telemetry`]: logging setup.
//! - [`loadgen`]: `motcua-sms loadgen`, an SMSC simulator that drives a
//!   gateway (this one or Kannel) with citizens' messages and measures it.
//!
//! A message's path: `smpp::listener` or `smpp::esme` → `smpp::text::decode_text`
//! (or [`modem`] → `gsm_modem::pdu`) → a [`channel::IncomingSms`] given to the
//! [`channel::SmsHandler`], [`gateway::SmsGateway`] (→ [`journal`], then the
//! peer is acknowledged) → [`outbox::Outbox`] → [`answering::Answering`]
//! (→ `abuse`, → [`responder::Responder`] → `store`, → `reply`)
//! → [`channel::Routes::send`] on an outlet of the same
//! channel (`smpp::outlet::SmppOutlet` or the modem's), whose typed outcome
//! (accepted, retry later, failed for good) settles the reply.

pub mod abuse;
pub mod address;
pub mod admin;
pub mod answering;
pub mod app;
pub mod channel;
pub mod cli;
pub mod client_addr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod feed;
pub mod gateway;
pub mod http_server;
pub mod import;
mod inline_reads;
pub mod journal;
pub mod kannel_http;
pub mod loadgen;
pub mod modem;
pub mod ops_http;
pub mod outbox;
pub mod portal_record;
pub mod privacy;
pub mod public_http;
pub mod relay;
pub mod reload;
pub mod reply;
pub mod responder;
pub mod signals;
pub mod smpp;
pub mod sms_text;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod trusted_caller;
pub mod ussd;
