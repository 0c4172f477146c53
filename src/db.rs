//! Opening the gateway's databases by URL: a SQLite file (WAL, the
//! durability asked for, busy timeout, foreign keys; the file and its folder
//! created when missing) or a PostgreSQL server, as sqlx pools, each with
//! the migrations that belong to it.
//!
//! [`GatewayDb`] is the gateway's own SQLite file (`journal.url`): the
//! journal's tables, and beside them those of abuse control and the admin
//! console (accounts, sessions, templates, the audit log), all migrated from
//! `migrations/journal/`. It is opened here once and its pool handed to each
//! of them; none borrows another's. The read model's databases
//! (`database.url`) are opened with [`open_sqlite`] and [`open_postgres`]
//! and migrated with [`READ_MODEL_SQLITE`] and [`READ_MODEL_POSTGRES`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

/// The gateway database's schema: journal, abuse control, admin console.
pub static GATEWAY: Migrator = sqlx::migrate!("./migrations/journal");
/// The read model's schema in SQLite.
pub static READ_MODEL_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The read model's schema in PostgreSQL.
pub static READ_MODEL_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a connection waits for another's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit.
    Full,
    /// fsync at checkpoints (WAL): safe against process crashes.
    Normal,
    /// No fsync: for measuring the cost of durability only.
    Off,
}

impl Durability {
    /// The value of SQLite's `synchronous` pragma.
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
            Durability::Off => "OFF",
        }
    }

    fn sqlx(self) -> SqliteSynchronous {
        match self {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Off => SqliteSynchronous::Off,
        }
    }
}

/// Failures to open the gateway database ([`GatewayDb::open`]). It is
/// configured as `journal.url`, and named so in the messages.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened (or its folder created).
    #[error("cannot open the journal at {url}: {source}")]
    Open {
        /// Its URL.
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Schema migration failed.
    #[error("cannot migrate the journal: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How to open a SQLite database with [`open_sqlite`].
#[derive(Debug, Clone, Copy)]
pub struct SqliteOpening {
    /// Its `synchronous` pragma.
    pub durability: Durability,
    /// Connections in the pool (one for an in-memory database, which lives
    /// in one connection).
    pub max_connections: u32,
    /// Its `cache_size` pragma, when not SQLite's default.
    pub cache_size: Option<&'static str>,
}

/// Opens (creating the file and its folder if needed) the SQLite database
/// at `url` (`sqlite://path/to/file.db`, or `sqlite::memory:`) as a pool in
/// WAL mode, with a busy timeout and foreign keys. Not migrated.
pub async fn open_sqlite(url: &str, how: SqliteOpening) -> Result<SqlitePool, sqlx::Error> {
    let mut options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(how.durability.sqlx())
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    if let Some(cache_size) = how.cache_size {
        options = options.pragma("cache_size", cache_size);
    }
    let filename = options.get_filename();
    let in_memory = filename == Path::new(":memory:");
    if !in_memory {
        if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
    }
    SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { how.max_connections })
        // A local file's connection does not drop: no ping (one more
        // round trip to the connection's thread) before every query.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

/// Connects to the PostgreSQL database at `url`
/// (`postgres://user:password@host:port/database?sslmode=…`, or
/// `postgresql://…`) with a pool of `max_connections`. The database must
/// exist. Not migrated.
pub async fn open_postgres(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    // One connection first: the pool would retry a refused connection
    // until its timeout and then only say so; this says why at once
    // (refused, unknown database, authentication).
    options.connect().await?.close().await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
}

/// The gateway's own SQLite database (see the module's documentation):
/// opened and migrated once, its pool shared by the journal, abuse control
/// and the admin console. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayDb {
    pool: SqlitePool,
    path: PathBuf,
    durability: Durability,
}

impl GatewayDb {
    /// Opens (creating if needed) and migrates the gateway database at
    /// `url`, a file: an in-memory database is refused (the journal's
    /// writer has a connection of its own, which would need SQLite's shared
    /// cache, whose table locks a busy timeout does not wait out, to see
    /// one; and the journal exists to outlive the process).
    pub async fn open(url: &str, durability: Durability) -> Result<Self, DbError> {
        let open_err = |source| DbError::Open {
            url: url.to_owned(),
            source,
        };
        if is_in_memory(url) {
            return Err(open_err(sqlx::Error::Configuration(
                "the journal must be a file: an in-memory journal is not supported".into(),
            )));
        }
        let how = SqliteOpening {
            durability,
            max_connections: 4,
            cache_size: None,
        };
        let pool = open_sqlite(url, how).await.map_err(open_err)?;
        GATEWAY.run(&pool).await?;
        let path = pool.connect_options().get_filename().to_path_buf();
        Ok(GatewayDb {
            pool,
            path,
            durability,
        })
    }

    /// The pool (journal reads, abuse control, the admin console).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file, for connections of one's own (the journal's
    /// writer, inline reads).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How hard its commits wait for the disk.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// True for `sqlite::memory:` and `…?mode=memory` URLs.
pub fn is_in_memory(url: &str) -> bool {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://journal.db?mode=memory&cache=shared"));
        assert!(!is_in_memory("sqlite://var/journal.db"));
    }
}
