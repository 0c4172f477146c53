//! Opening the gateway's databases by URL: a SQLite file (WAL, the
//! durability asked for, busy timeout, foreign keys; the file and its folder
//! created when missing) or a PostgreSQL server, as sqlx pools, each with
//! the migrations that belong to it.
//!
//! [`GatewayDb`] is the gateway's own state database (`journal.url`): the
//! journal's tables, and beside them those of abuse control and the admin
//! console (accounts, sessions, templates, the audit log). It opens by URL
//! scheme: a SQLite file (`sqlite://`, the embedded single-host default,
//! migrated from `migrations/journal/`) or a PostgreSQL database
//! (`postgres://`, shared by the gateways of a cluster, migrated from
//! `migrations/state-postgres/`, the same tables in PostgreSQL's dialect).
//! It is opened here once and its pool ([`StatePool`]) handed to each of
//! them; none borrows another's. A query both engines understand is written
//! once (`$1` placeholders, `ON CONFLICT`, `CAST(… AS BIGINT)`, integers as
//! `i64`) and run on either pool with [`on_state_pool!`]. The read model's databases
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

/// The gateway database's schema in SQLite: journal, abuse control, admin console.
pub static GATEWAY: Migrator = sqlx::migrate!("./migrations/journal");
/// The same schema in PostgreSQL.
pub static GATEWAY_POSTGRES: Migrator = sqlx::migrate!("./migrations/state-postgres");
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
        /// Its URL, its password masked ([`redact_url`]).
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
        // A connection idle for a while (a quiet night, a server restarted
        // meanwhile) is checked before use; one in steady use is not:
        // checking every acquire would add a round trip to every query.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
}

/// A pooled PostgreSQL connection idle at least this long is pinged before
/// it is handed out.
const CHECK_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool on the gateway's state database, whichever engine holds it.
/// Cheap to clone. Run a query written for both engines on it with
/// [`on_state_pool!`].
#[derive(Debug, Clone)]
pub enum StatePool {
    /// The embedded single-host database.
    Sqlite(SqlitePool),
    /// A PostgreSQL database, possibly shared by several gateways.
    Postgres(PgPool),
}

impl StatePool {
    /// The engine's name, for logs and metrics: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            StatePool::Sqlite(_) => "sqlite",
            StatePool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        match self {
            StatePool::Sqlite(pool) => pool.close().await,
            StatePool::Postgres(pool) => pool.close().await,
        }
    }
}

impl From<SqlitePool> for StatePool {
    fn from(pool: SqlitePool) -> Self {
        StatePool::Sqlite(pool)
    }
}

impl From<PgPool> for StatePool {
    fn from(pool: PgPool) -> Self {
        StatePool::Postgres(pool)
    }
}

/// Runs `$body` with `$pool` bound to the [`StatePool`]'s own sqlx pool,
/// whichever engine it is: the body is compiled once per engine, so a query
/// written for both (`$1` placeholders, `i64` integers, `bool` for
/// `EXISTS`) is written once. `on_state_pool!(pool, p => sqlx::query(SQL).execute(p).await)`.
#[macro_export]
macro_rules! on_state_pool {
    ($state:expr, $pool:ident => $body:expr) => {
        match $state {
            $crate::db::StatePool::Sqlite($pool) => $body,
            $crate::db::StatePool::Postgres($pool) => $body,
        }
    };
}

/// Where the gateway database is.
#[derive(Debug, Clone)]
enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database, at this URL with its password masked.
    Server(String),
}

/// The gateway's own state database (see the module's documentation):
/// opened and migrated once, its pool shared by the journal, abuse control
/// and the admin console. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GatewayDb {
    pool: StatePool,
    location: Location,
    durability: Durability,
    /// The cluster node this gateway is in a shared (PostgreSQL) state
    /// database; empty on SQLite, one host's file.
    node: std::sync::Arc<str>,
}

impl GatewayDb {
    /// Opens and migrates the gateway database at `url`: a PostgreSQL
    /// database for `postgres://` and `postgresql://` URLs (it must exist),
    /// a SQLite file otherwise (created if needed). An in-memory SQLite
    /// database is refused (the journal's writer has a connection of its
    /// own, which would need SQLite's shared cache, whose table locks a busy
    /// timeout does not wait out, to see one; and the journal exists to
    /// outlive the process). On PostgreSQL `durability` is the server's
    /// (`synchronous_commit`), not set here.
    pub async fn open(url: &str, durability: Durability) -> Result<Self, DbError> {
        let open_err = |source| DbError::Open {
            url: redact_url(url),
            source,
        };
        if is_postgres(url) {
            let pool = open_postgres(url, POSTGRES_CONNECTIONS)
                .await
                .map_err(open_err)?;
            GATEWAY_POSTGRES.run(&pool).await?;
            return Ok(GatewayDb {
                pool: StatePool::Postgres(pool),
                location: Location::Server(redact_url(url)),
                durability,
                node: "".into(),
            });
        }
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
            pool: StatePool::Sqlite(pool),
            location: Location::File(path),
            durability,
            node: "".into(),
        })
    }

    /// The pool (journal reads, abuse control, the admin console).
    pub fn pool(&self) -> &StatePool {
        &self.pool
    }

    /// The database file, for connections of one's own (the journal's
    /// writer, inline reads); `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(path) => Some(path),
            Location::Server(_) => None,
        }
    }

    /// Where the database is, for logs: the file's path, or the server's
    /// URL with its password masked.
    pub fn describe(&self) -> String {
        match &self.location {
            Location::File(path) => path.display().to_string(),
            Location::Server(url) => url.clone(),
        }
    }

    /// The same database for the cluster node `node`: the messages the
    /// journal records are that node's, and its reads are of that node's
    /// messages (`crate::cluster`).
    pub fn with_node(mut self, node: &str) -> GatewayDb {
        self.node = node.into();
        self
    }

    /// The node whose messages the journal records and reads (`""`
    /// outside a shared database).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How hard its commits wait for the disk (SQLite's `synchronous`).
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Closes the pool, waiting for its connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connections in a gateway's pool on a PostgreSQL state database (the
/// journal's writer has one more of its own).
const POSTGRES_CONNECTIONS: u32 = 8;

/// True for `postgres://` and `postgresql://` URLs.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with the password it carries, if any, replaced by `***`: the one
/// in its user information (`postgres://user:secret@host/db`) and any
/// query parameter whose name contains `password` (`?password=secret`).
/// Fit for errors and logs; errs towards hiding too much when a URL is
/// malformed (an unencoded `@` or `/` in the password still hides it).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let mut rest = rest.to_owned();
    // The last `@` ends the user information, whatever the password holds.
    if let Some(at) = rest.rfind('@') {
        if let Some(colon) = rest[..at].find(':') {
            rest.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(question) = rest.find('?') {
        let (query, fragment) = match rest[question + 1..].split_once('#') {
            Some((q, f)) => (q.to_owned(), Some(f.to_owned())),
            None => (rest[question + 1..].to_owned(), None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        rest.truncate(question + 1);
        rest.push_str(&params.join("&"));
        if let Some(fragment) = fragment {
            rest.push('#');
            rest.push_str(&fragment);
        }
    }
    format!("{scheme}://{rest}")
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
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/motcua?sslmode=require"),
            "postgres://app:***@db.example:5432/motcua?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://app@db/motcua?password=s3cret&application_name=x"),
            "postgresql://app@db/motcua?password=***&application_name=x"
        );
        assert_eq!(
            redact_url("postgres://a:b:c@host?sslpassword=k#frag"),
            "postgres://a:***@host?sslpassword=***#frag"
        );
        assert_eq!(
            redact_url("sqlite://var/motcua.db"),
            "sqlite://var/motcua.db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("postgres://host"), "postgres://host");
        assert_eq!(
            redact_url("postgres://u:p@ss/w?rd@host/db"),
            "postgres://u:***@host/db"
        );
        assert_eq!(
            redact_url("postgres://host/db?password=x@y"),
            "postgres://host/db?password=***"
        );
    }

    #[test]
    fn postgres_urls_choose_postgres_and_anything_else_sqlite() {
        assert!(is_postgres("postgres://u@h/db"));
        assert!(is_postgres("postgresql://u@h/db"));
        assert!(!is_postgres("sqlite://var/journal.db"));
        assert!(!is_postgres("var/journal.db"));
    }

    /// The tables and columns of a state database, sorted.
    async fn columns(db: &GatewayDb) -> Vec<(String, String)> {
        use sqlx::Row;
        let rows = match db.pool() {
            StatePool::Sqlite(pool) => sqlx::query(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
                 AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect::<Vec<(String, String)>>(),
            StatePool::Postgres(pool) => sqlx::query(
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect(),
        };
        let mut rows = rows;
        rows.sort();
        rows
    }

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn both_engines_have_the_same_tables_and_columns() {
        let sqlite = testing::TestDb::sqlite().await;
        let postgres = testing::TestDb::postgres().await;
        let on_sqlite = columns(&sqlite.db).await;
        let on_postgres = columns(&postgres.db).await;
        assert!(on_sqlite.len() > 80, "{on_sqlite:?}");
        assert_eq!(on_sqlite, on_postgres);
        assert_eq!(sqlite.db.pool().engine(), "sqlite");
        assert_eq!(postgres.db.pool().engine(), "postgres");
        assert!(sqlite.db.path().is_some());
        assert!(postgres.db.path().is_none());
        sqlite.finish().await;
        postgres.finish().await;
    }

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://journal.db?mode=memory&cache=shared"));
        assert!(!is_in_memory("sqlite://var/journal.db"));
    }
}

/// Fresh gateway databases for tests, on either engine: a SQLite file in a
/// temporary folder, or a PostgreSQL database of its own (created through
/// `TEST_DATABASE_URL`, dropped by [`TestDb::finish`]). Write a scenario
/// once as `async fn name(db: GatewayDb)` and run it on both engines with
/// [`on_both_engines!`](crate::on_both_engines).
#[cfg(test)]
pub(crate) mod testing {
    use super::{Durability, GatewayDb};

    /// A gateway database that lives as long as the test needs it.
    pub(crate) struct TestDb {
        /// The opened, migrated database.
        pub db: GatewayDb,
        dir: Option<tempfile::TempDir>,
        postgres: Option<support::temp_postgres::TempDatabase>,
    }

    impl TestDb {
        /// A new SQLite file (durability `normal`: tests need no fsync).
        pub(crate) async fn sqlite() -> TestDb {
            let dir = tempfile::tempdir().expect("temporary folder");
            let url = format!("sqlite://{}", dir.path().join("state.db").display());
            let db = GatewayDb::open(&url, Durability::Normal)
                .await
                .expect("open the SQLite state database");
            TestDb {
                db,
                dir: Some(dir),
                postgres: None,
            }
        }

        /// A new PostgreSQL database on the server `TEST_DATABASE_URL`
        /// names. Panics when it is unset: tests calling this are marked
        /// ignored without it (see `build.rs`).
        pub(crate) async fn postgres() -> TestDb {
            let maintenance = support::temp_postgres::maintenance_url()
                .expect("TEST_DATABASE_URL names the PostgreSQL server for this test");
            let database = support::temp_postgres::TempDatabase::create(&maintenance).await;
            let db = GatewayDb::open(&database.url, Durability::Normal)
                .await
                .expect("open the PostgreSQL state database");
            TestDb {
                db,
                dir: None,
                postgres: Some(database),
            }
        }

        /// Closes the pool and removes the database.
        pub(crate) async fn finish(self) {
            self.db.close().await;
            if let Some(database) = self.postgres {
                database.drop().await;
            }
            drop(self.dir);
        }
    }

    /// Runs each named scenario (`async fn scenario(db: GatewayDb)` in the
    /// calling module) as two tests, `scenario::on_sqlite` and
    /// `scenario::on_postgres`; the second is ignored, saying why, when the
    /// build had no `TEST_DATABASE_URL`.
    #[macro_export]
    macro_rules! on_both_engines {
        ($($scenario:ident),* $(,)?) => {$(
            mod $scenario {
                #[tokio::test]
                async fn on_sqlite() {
                    let test_db = $crate::db::testing::TestDb::sqlite().await;
                    super::$scenario(test_db.db.clone()).await;
                    test_db.finish().await;
                }

                #[tokio::test]
                #[cfg_attr(
                    not(test_database_url),
                    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
                )]
                async fn on_postgres() {
                    let test_db = $crate::db::testing::TestDb::postgres().await;
                    super::$scenario(test_db.db.clone()).await;
                    test_db.finish().await;
                }
            }
        )*};
    }
}
