//! The command line of the `motcua-sms` binary: the clap types of every
//! subcommand and, one file per command family, what each does. The binary
//! (`src/main.rs`) parses, loads the configuration and dispatches here.
//! This is the binary's wiring, the one place `anyhow` is used: each
//! command returns the process's exit code or an error to print.
//!
//! - [`run`]: `run` (the default), the gateway until SIGTERM or Ctrl-C.
//! - [`read_model`]: `import` and `status`.
//! - [`sms`]: `sms send`, a citizen's message through the running listener.
//! - [`lists`]: `block` and `allow`.
//! - [`accounts`]: `account`, the admin console's accounts and audit log.
//! - [`loadgen`]: `loadgen`, the SMSC simulator.
//! - [`state`]: `state backup`, `state verify` and `state copy`, the state
//!   database's backups and its move to PostgreSQL.
//! - [`feed`]: `core-sim`, `relay` and `fanout`, the core feed's servers
//!   and its JetStream fan-out.

pub mod accounts;
pub mod feed;
pub mod lists;
pub mod loadgen;
pub mod read_model;
pub mod run;
pub mod sms;
pub mod state;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code for a configuration error (sysexits EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

// The command line. (No doc comment: clap would show it in --help.)
#[derive(Parser)]
#[command(
    name = "motcua-sms",
    version,
    about = "Automatic SMS reply gateway for one-stop dossier status lookups"
)]
pub struct Cli {
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

// The subcommands. (No doc comment: clap would show it in --help.)
#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (the default command).
    Run {
        /// Import this JSON Lines file into the read model before serving.
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
    },
    /// Load dossiers from a JSON Lines file in the national portal's record shape.
    Import {
        /// The file to load.
        file: PathBuf,
    },
    /// Talk to the running gateway as a citizen would.
    Sms {
        #[command(subcommand)]
        command: sms::SmsCommand,
    },
    /// Numbers that are never answered (applied at once, also to a running gateway).
    Block {
        #[command(subcommand)]
        command: lists::ListCommand,
    },
    /// Numbers that are always answered, never rate limited (applied at once).
    Allow {
        #[command(subcommand)]
        command: lists::ListCommand,
    },
    /// Admin console accounts: create, list, set roles, reset passwords,
    /// unlock, disable; every change goes to the audit log. Passwords are
    /// read from standard input (one line), never from the command line.
    Account {
        #[command(subcommand)]
        command: accounts::AccountCommand,
    },
    /// The state database (journal.url): back it up while the gateway runs,
    /// verify a backup, copy it into PostgreSQL (docs/operations.md,
    /// "Backing up the state database").
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Act as a carrier SMSC: wait for a gateway to bind, push citizens'
    /// messages, answer its replies, and report throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Show the read model and its sync with the one-stop core: position,
    /// pending changes, last success, last error. Exits 3 when the data is
    /// stale (past sync.stale_after_secs), for monitoring scripts.
    Status,
    /// Serve the core feed protocol (docs/core-feed.md) as a synthetic core
    /// whose dossiers move through their statuses, for demos, tests and benchmarks.
    CoreSim(feed::CoreSimArgs),
    /// Serve the core feed protocol from a PostgreSQL core that installed
    /// migrations/core-postgres/ (docs/core-feed.md, "Relay").
    Relay(feed::RelayArgs),
    /// Follow a core feed (relay, core, core-sim) and publish every change to
    /// a NATS JetStream stream that gateways with sync.mode = "jetstream"
    /// follow (docs/core-feed.md, "Fan-out over NATS JetStream").
    Fanout(feed::FanoutArgs),
}

/// Environment variables the subcommands read through clap. They share the
/// configuration's `MOTCUA_` prefix, where an unknown key is an error, so
/// they are removed once read, before the configuration is loaded.
pub const SUBCOMMAND_ENV: [&str; 6] = [
    "MOTCUA_CORE_TOKEN",
    "MOTCUA_FANOUT_FEED_TOKEN",
    "MOTCUA_FANOUT_NATS_URL",
    "MOTCUA_RELAY_DATABASE_URL",
    "MOTCUA_RELAY_LISTEN",
    "MOTCUA_RELAY_TOKEN",
];
