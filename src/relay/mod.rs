//! `motcua-sms relay`: serves the core feed protocol (docs/core-feed.md) from
//! a PostgreSQL core, through the same HTTP layer as the synthetic core
//! ([`crate::feed::server`]).
//!
//! The core team installs migrations/core-postgres/ in its database: a
//! trigger on the dossier table appends every change to
//! `motcua_feed.changes` (full-state record, version = the row's id) and
//! keeps `motcua_feed.current` (the latest record per dossier); the relay
//! only reads, as the `motcua_relay` role. See [`source`] for how reading
//! stays commit-safe, and docs/core-feed.md ("Relay") for installing,
//! retention and epochs.

pub mod source;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::feed::server::{self, ListenError};
pub use source::{PgFeed, Position, RelayCursor, RelayPageToken};

/// The SQL files the core team runs, in order (migrations/core-postgres/).
pub const INSTALL_HINT: &str = "run migrations/core-postgres/01_feed_schema.sql, \
02_record_of.sql (adapted to your dossier table), 03_capture.sql, 04_relay_role.sql and \
05_retention.sql in this database (docs/core-feed.md, \"Relay\")";

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The core's database (as the `motcua_relay` role).
    pub database: PgConnectOptions,
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Bearer token clients must send (required: the feed carries names
    /// and phone numbers).
    pub token: String,
    /// Database connections at most (one more is kept for LISTEN).
    pub max_connections: u32,
    /// How often the head is re-checked besides NOTIFY.
    pub recheck: Duration,
    /// Connections, timeouts and body size of the HTTP port.
    pub limits: crate::http_server::HttpLimits,
}

impl RelaySettings {
    /// Settings with the defaults: 8 connections, re-check every 250 ms.
    pub fn new(database: PgConnectOptions, listen: SocketAddr, token: impl Into<String>) -> Self {
        RelaySettings {
            database,
            listen,
            token: token.into(),
            max_connections: 8,
            recheck: Duration::from_millis(250),
            limits: crate::http_server::HttpLimits::feed(),
        }
    }
}

/// Why the relay cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A setting out of range.
    #[error("invalid setting: {0}")]
    Settings(String),
    /// The database cannot be reached or refuses the login.
    #[error("cannot connect to the core's database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The database has no (complete) `motcua_feed` schema.
    #[error("the core's database has no {missing}: {INSTALL_HINT}")]
    SchemaMissing {
        /// What is missing (`the motcua_feed schema`, `motcua_feed.changes`, …).
        missing: String,
    },
    /// The role may not read the feed's tables.
    #[error(
        "the relay's database role lacks {0}: run migrations/core-postgres/04_relay_role.sql \
         and connect as motcua_relay"
    )]
    NotGranted(String),
    /// Another database failure while starting.
    #[error("the core's database: {0}")]
    Database(#[source] sqlx::Error),
    /// The listening socket.
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// A relay connected to its database and bound, ready to [`run`](Relay::run).
pub struct Relay {
    listener: TcpListener,
    local_addr: SocketAddr,
    feed: Arc<PgFeed>,
    pool: PgPool,
    notifications: PgListener,
    token: String,
    recheck: Duration,
    limits: crate::http_server::HttpLimits,
}

impl Relay {
    /// Connects to the database, checks that the feed's schema is there and
    /// readable, LISTENs on its channel and binds the socket.
    pub async fn bind(settings: RelaySettings) -> Result<Self, RelayError> {
        if settings.token.trim().is_empty() {
            return Err(RelayError::Settings(
                "a bearer token is required (--token or MOTCUA_RELAY_TOKEN)".into(),
            ));
        }
        if let Some((key, problem)) = settings.limits.problem() {
            return Err(RelayError::Settings(format!("HTTP {key}: {problem}")));
        }
        if settings.max_connections == 0 {
            return Err(RelayError::Settings(
                "max connections must be at least 1".into(),
            ));
        }
        if settings.recheck.is_zero() {
            return Err(RelayError::Settings(
                "the re-check interval must be above zero".into(),
            ));
        }
        let options = settings
            .database
            .clone()
            .application_name("motcua-sms relay")
            .options([("statement_timeout", "60s")]);
        let pool = PgPoolOptions::new()
            // The LISTEN connection comes from the pool and stays out.
            .max_connections(settings.max_connections + 1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(RelayError::Connect)?;
        check_schema(&pool).await?;
        let mut notifications = PgListener::connect_with(&pool)
            .await
            .map_err(RelayError::Database)?;
        notifications
            .listen(source::CHANNEL)
            .await
            .map_err(RelayError::Database)?;
        let (listener, local_addr) = server::listen(settings.listen).await?;
        Ok(Relay {
            listener,
            local_addr,
            feed: Arc::new(PgFeed::new(pool.clone())),
            pool,
            notifications,
            token: settings.token,
            recheck: settings.recheck,
            limits: settings.limits,
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves the feed until `shutdown` is cancelled; waiting long-polls
    /// then answer at once, and the database connections are closed.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let stop = shutdown.child_token();
        let watcher = tokio::spawn(self.feed.clone().watch(
            self.notifications,
            self.recheck,
            stop.clone(),
        ));
        let app = server::router(self.feed, Some(self.token), stop.clone());
        crate::http_server::serve(self.listener, app, &self.limits, stop.clone()).await;
        stop.cancel();
        let _ = watcher.await;
        self.pool.close().await;
        Ok(())
    }
}

/// The feed's tables exist and this role may read them.
async fn check_schema(pool: &PgPool) -> Result<(), RelayError> {
    // The catalogs are readable by everyone, whatever the grants.
    let schema: Option<bool> = sqlx::query_scalar(
        "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'motcua_feed'",
    )
    .fetch_optional(pool)
    .await
    .map_err(RelayError::Database)?;
    match schema {
        None => {
            return Err(RelayError::SchemaMissing {
                missing: "motcua_feed schema".into(),
            })
        }
        Some(false) => return Err(RelayError::NotGranted("USAGE on schema motcua_feed".into())),
        Some(true) => {}
    }
    for table in ["changes", "current", "settings"] {
        let readable: Option<bool> = sqlx::query_scalar(
            "SELECT has_table_privilege(c.oid, 'SELECT') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'motcua_feed' AND c.relname = $1",
        )
        .bind(table)
        .fetch_optional(pool)
        .await
        .map_err(RelayError::Database)?;
        match readable {
            None => {
                return Err(RelayError::SchemaMissing {
                    missing: format!("table motcua_feed.{table}"),
                })
            }
            Some(false) => {
                return Err(RelayError::NotGranted(format!(
                    "SELECT on motcua_feed.{table}"
                )))
            }
            Some(true) => {}
        }
    }
    let epoch: Option<String> = sqlx::query_scalar("SELECT epoch FROM motcua_feed.settings")
        .fetch_optional(pool)
        .await
        .map_err(RelayError::Database)?;
    if epoch.is_none() {
        return Err(RelayError::SchemaMissing {
            missing: "row in motcua_feed.settings".into(),
        });
    }
    Ok(())
}
