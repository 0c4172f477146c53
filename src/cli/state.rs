//! `motcua-sms state`: protecting and moving the gateway's state database
//! (`journal.url`, what [`GatewayDb`] opens).
//!
//! - `state backup --to FILE`: a copy of the SQLite state database taken
//!   while the gateway runs, with SQLite's online backup API. The copy is
//!   the database as it stood at one moment T (the start of one read
//!   transaction on the source, held until the copy is done): it holds every
//!   row committed before T and none committed after. The rows of every
//!   table are counted inside that same read transaction, so the copy's
//!   counts must equal them exactly; the copy must also pass
//!   `PRAGMA integrity_check`. It is written under a temporary name in the
//!   same folder and renamed only once verified. The state database is in
//!   WAL mode, where a reader never blocks the writer: the gateway keeps
//!   committing throughout (its checkpoints cannot pass T until the copy is
//!   done, so the `-wal` file grows meanwhile). The pages are copied in
//!   steps with a pause between them, so the copy shares the disk instead
//!   of saturating it.
//! - `state verify FILE`: a backup opened read-only: integrity, schema
//!   version (sqlx's migration table), rows per table.
//! - `state copy --to postgres://…`: a SQLite state database copied into an
//!   empty PostgreSQL one (migrated with [`crate::db::GATEWAY_POSTGRES`]):
//!   every table, ids kept, identity sequences moved past them, in one
//!   transaction, batches of rows through `UNNEST`; then the rows of every
//!   table counted on both sides. Passwords are never printed
//!   ([`redact_url`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Subcommand;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, Row};

use crate::config::Config;
use crate::db::{self, is_in_memory, is_postgres, redact_url, GatewayDb, StatePool};

// (No doc comment: clap would show it in --help.)
#[derive(Subcommand)]
pub enum StateCommand {
    /// Back up the SQLite state database (journal.url) while the gateway
    /// runs: a consistent copy, checked (integrity, rows per table) before
    /// it takes the file's name.
    Backup {
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
        /// Pages copied per step (a page is 4 KiB unless the database says
        /// otherwise); the copy pauses briefly between steps.
        #[arg(long, value_name = "PAGES", default_value_t = PAGES_PER_STEP,
              value_parser = clap::value_parser!(i32).range(1..))]
        step_pages: i32,
    },
    /// Check a backup: integrity, schema version, rows per table.
    Verify {
        /// The backup file (opened read-only).
        file: PathBuf,
    },
    /// Copy a SQLite state database into an empty PostgreSQL database, to
    /// move the gateway's state there (stop the gateway first).
    Copy {
        /// The PostgreSQL database (postgres://user:password@host/db); it
        /// must exist and hold no rows. Its password is never printed.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The SQLite state database (default: journal.url).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
    },
}

/// Pages copied per backup step (1 MiB at SQLite's default 4 KiB page).
const PAGES_PER_STEP: i32 = 256;
/// The pause between two backup steps.
const STEP_PAUSE: Duration = Duration::from_millis(2);
/// Rows per `INSERT … SELECT FROM UNNEST(…)` of `state copy`.
const COPY_BATCH: i64 = 1000;
/// How long the backup waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit code for a backup that fails its checks (sysexits EX_DATAERR).
const EX_DATAERR: u8 = 65;

/// Every table of the state schema, parents before the tables that
/// reference them (the order `state copy` fills them in).
pub const STATE_TABLES: [&str; 17] = [
    "nodes",
    "messages",
    "replies",
    "reply_parts",
    "reply_lookups",
    "unmatched_receipts",
    "fragments",
    "joined_parts",
    "fragment_refs",
    "blocks",
    "allow_list",
    "rate_limited",
    "accounts",
    "admin_sessions",
    "audit_log",
    "template_versions",
    "template_activations",
];

/// Every table of a database and its rows, by table name.
pub type TableRows = Vec<(String, i64)>;

/// sqlx's record of applied migrations, in every state database.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Why a `state` command failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `state backup` of a PostgreSQL state database.
    #[error(
        "journal.url is a PostgreSQL database ({url}): back it up with PostgreSQL's own tools \
         (pg_basebackup and WAL archiving, or pg_dump), as docs/operations.md describes in \
         \"Backing up the state database\", section \"PostgreSQL\""
    )]
    PostgresBackup {
        /// The URL, password masked.
        url: String,
    },
    /// An in-memory SQLite URL: nothing outlives the process to copy.
    #[error("{0} is an in-memory database: there is no file to copy")]
    InMemory(String),
    /// A source that must be SQLite is not.
    #[error("--from must name a SQLite state database (sqlite://…), not {0}")]
    NotSqlite(String),
    /// A target that must be PostgreSQL is not.
    #[error("--to must name a PostgreSQL database (postgres://…), not {0}")]
    NotPostgres(String),
    /// The file to read does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// The backup's file exists and `--force` was not given.
    #[error("{0} exists: pass --force to replace it")]
    Exists(PathBuf),
    /// The copy failed `PRAGMA integrity_check`.
    #[error("the copy failed its integrity check: {0}")]
    Integrity(String),
    /// The copy's tables are not the source's.
    #[error("the copy's tables {copy:?} are not the source's {source_tables:?}")]
    Tables {
        /// The source's tables.
        source_tables: Vec<String>,
        /// The copy's.
        copy: Vec<String>,
    },
    /// A table's rows in the copy differ in number from the source's.
    #[error("table {table}: {copied} row(s) in the copy, {expected} in the source")]
    Count {
        /// The table.
        table: String,
        /// Rows in the source (at the snapshot).
        expected: i64,
        /// Rows in the copy.
        copied: i64,
    },
    /// The source's schema is not this binary's.
    #[error(
        "the source's schema is at migration {found} but this binary's is at {expected}: \
         run this version's gateway on it once (it migrates at start), then copy"
    )]
    Schema {
        /// The source's newest applied migration (0: none).
        found: i64,
        /// This binary's newest.
        expected: i64,
    },
    /// The source holds a table `state copy` does not know.
    #[error("table {0} is not part of the state schema this binary copies")]
    UnknownTable(String),
    /// A column whose type `state copy` does not carry.
    #[error("column {table}.{column} has type {data_type}, which state copy does not carry")]
    ColumnType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its PostgreSQL type.
        data_type: String,
    },
    /// The copy's target already holds rows.
    #[error(
        "{url} already holds rows (table {table}: {rows}): state copy only fills an empty database"
    )]
    TargetNotEmpty {
        /// The target, password masked.
        url: String,
        /// The first table found with rows.
        table: String,
        /// Its rows.
        rows: i64,
    },
    /// A file could not be written, synced or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite, through rusqlite (backup, verify).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A database, through sqlx (copy).
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The target could not be opened or migrated.
    #[error(transparent)]
    Open(#[from] db::DbError),
}

/// Runs a `state` command with the configuration's `journal.url`.
pub async fn state(config: &Config, command: StateCommand) -> anyhow::Result<ExitCode> {
    match command {
        StateCommand::Backup {
            to,
            force,
            step_pages,
        } => {
            let source = sqlite_file(&config.journal.url, true)?;
            let report = tokio::task::spawn_blocking(move || {
                backup_file(&source, &to, force, step_pages, STEP_PAUSE)
            })
            .await??;
            println!(
                "backed up {} to {} in {:.1} s ({} pages in {} steps); integrity ok",
                report.source.display(),
                report.path.display(),
                report.elapsed.as_secs_f64(),
                report.pages,
                report.steps
            );
            println!("rows per table, equal in the source at the snapshot and in the copy:");
            print_tables(&report.tables);
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Verify { file } => {
            let verification = tokio::task::spawn_blocking(move || verify_file(&file)).await??;
            print!("{}", verification.describe());
            Ok(if verification.is_sound() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_DATAERR)
            })
        }
        StateCommand::Copy { to, from } => {
            let from = from.unwrap_or_else(|| config.journal.url.clone());
            let report = copy_to_postgres(&from, &to).await?;
            println!(
                "copied {} to {} in {:.1} s ({} batches); rows per table, equal on both sides:",
                report.source.display(),
                report.target,
                report.elapsed.as_secs_f64(),
                report.batches
            );
            print_tables(&report.tables);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_tables(tables: &[(String, i64)]) {
    let width = tables.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    for (table, rows) in tables {
        println!("  {table:width$}  {rows}");
    }
}

/// The SQLite file a state database URL names; refuses PostgreSQL (with
/// the backup's advice when `for_backup`) and in-memory databases.
fn sqlite_file(url: &str, for_backup: bool) -> Result<PathBuf, StateError> {
    if is_postgres(url) {
        return Err(if for_backup {
            StateError::PostgresBackup {
                url: redact_url(url),
            }
        } else {
            StateError::NotSqlite(redact_url(url))
        });
    }
    if is_in_memory(url) {
        return Err(StateError::InMemory(url.to_owned()));
    }
    let options = SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename().to_path_buf();
    if !path.exists() {
        return Err(StateError::Missing(path));
    }
    Ok(path)
}

/// What `state backup` did.
#[derive(Debug)]
pub struct BackupReport {
    /// The database copied.
    pub source: PathBuf,
    /// The backup written.
    pub path: PathBuf,
    /// Every table and its rows at the snapshot (equal in the copy).
    pub tables: Vec<(String, i64)>,
    /// Pages copied.
    pub pages: i32,
    /// Backup steps taken.
    pub steps: u32,
    /// How long it took.
    pub elapsed: Duration,
}

/// Copies the SQLite database `source` to `to` with the online backup
/// API, `pages_per_step` pages at a time with `pause` between steps, all
/// within one read transaction on the source (the snapshot T, see the
/// module's documentation), verifies the copy (integrity, the rows of every
/// table equal to the source's counted at T) and only then renames it from
/// its temporary name to `to`. Refuses an existing `to` unless `force`.
/// The copy is in SQLite's rollback-journal mode: one self-contained file
/// (the gateway puts it back in WAL mode when it opens it).
pub fn backup_file(
    source: &Path,
    to: &Path,
    force: bool,
    pages_per_step: i32,
    pause: Duration,
) -> Result<BackupReport, StateError> {
    let started = Instant::now();
    if to.exists() && !force {
        return Err(StateError::Exists(to.to_owned()));
    }
    if !source.exists() {
        return Err(StateError::Missing(source.to_owned()));
    }
    let partial = partial_name(to);
    remove_partial(&partial);
    let result = copy_and_check(source, &partial, pages_per_step, pause);
    let (tables, pages, steps) = match result {
        Ok(done) => done,
        Err(error) => {
            remove_partial(&partial);
            return Err(error);
        }
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { path, source }
    };
    let settle = || -> Result<(), StateError> {
        std::fs::File::open(&partial)
            .and_then(|file| file.sync_all())
            .map_err(io(&partial))?;
        std::fs::rename(&partial, to).map_err(io(to))?;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    };
    if let Err(error) = settle() {
        remove_partial(&partial);
        return Err(error);
    }
    Ok(BackupReport {
        source: source.to_owned(),
        path: to.to_owned(),
        tables,
        pages,
        steps,
        elapsed: started.elapsed(),
    })
}

/// `.NAME.partial` beside `to`: the backup's name until it is verified.
fn partial_name(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state-backup".to_owned());
    to.with_file_name(format!(".{name}.partial"))
}

/// Removes a temporary copy and the journal SQLite may have left beside it.
fn remove_partial(partial: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = partial.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// The backup proper: the snapshot's counts, the copy in steps, then the
/// copy's checks. Returns the counts, the pages and the steps.
fn copy_and_check(
    source: &Path,
    partial: &Path,
    pages_per_step: i32,
    pause: Duration,
) -> Result<(TableRows, i32, u32), StateError> {
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(BUSY_TIMEOUT)?;
    // The snapshot T: the read transaction starts at its first read (the
    // tables' names) and lasts until the copy is done. The backup's steps
    // run inside it (sqlite3_backup_step uses the source connection's open
    // transaction), so they all see T and a commit by the gateway never
    // restarts the copy.
    from.execute_batch("BEGIN DEFERRED")?;
    let expected = table_rows(&from)?;
    let mut to = Connection::open(partial)?;
    let (pages, steps) = {
        let backup = Backup::new(&from, &mut to)?;
        let mut steps = 0;
        loop {
            steps += 1;
            match backup.step(pages_per_step)? {
                StepResult::Done => break,
                // More to copy, or the destination or source momentarily
                // locked: pause and go on.
                _ => std::thread::sleep(pause),
            }
        }
        (backup.progress().pagecount, steps)
    };
    from.execute_batch("COMMIT")?;
    drop(from);
    // One self-contained file: no -wal beside it to forget.
    to.query_row("PRAGMA journal_mode = DELETE", [], |row| {
        row.get::<_, String>(0)
    })?;
    let problems = integrity_problems(&to)?;
    if !problems.is_empty() {
        return Err(StateError::Integrity(problems.join("; ")));
    }
    let copied = table_rows(&to)?;
    drop(to);
    compare_counts(&expected, &copied)?;
    Ok((expected, pages, steps))
}

/// Every table (SQLite's own aside) and its rows, by name.
fn table_rows(conn: &Connection) -> Result<TableRows, rusqlite::Error> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|name| {
            let rows = conn.query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |row| {
                row.get(0)
            })?;
            Ok((name, rows))
        })
        .collect()
}

/// `PRAGMA integrity_check`'s findings; empty when it says `ok`. A file
/// too damaged to run it reports that as its finding.
fn integrity_problems(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let lines: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        });
    match lines {
        Ok(lines) if lines == ["ok"] => Ok(Vec::new()),
        Ok(lines) => Ok(lines),
        Err(rusqlite::Error::SqliteFailure(code, message))
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Ok(vec![message.unwrap_or_else(|| code.to_string())])
        }
        Err(other) => Err(other),
    }
}

/// The same tables with the same rows each, or the first difference.
fn compare_counts(expected: &[(String, i64)], copied: &[(String, i64)]) -> Result<(), StateError> {
    let names = |tables: &[(String, i64)]| -> Vec<String> {
        tables.iter().map(|(name, _)| name.clone()).collect()
    };
    if names(expected) != names(copied) {
        return Err(StateError::Tables {
            source_tables: names(expected),
            copy: names(copied),
        });
    }
    for ((table, want), (_, got)) in expected.iter().zip(copied) {
        if want != got {
            return Err(StateError::Count {
                table: table.clone(),
                expected: *want,
                copied: *got,
            });
        }
    }
    Ok(())
}

/// What `state verify` found in a backup.
#[derive(Debug)]
pub struct Verification {
    /// The file.
    pub path: PathBuf,
    /// `integrity_check`'s findings; empty when sound.
    pub problems: Vec<String>,
    /// The newest migration applied (version, description), if any.
    pub schema: Option<(i64, String)>,
    /// Migrations applied.
    pub migrations: usize,
    /// This binary's newest migration of the SQLite state schema.
    pub binary_schema: i64,
    /// Every table and its rows (none when the file is damaged).
    pub tables: Vec<(String, i64)>,
}

impl Verification {
    /// Intact and a state database (it has sqlx's migration table).
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty() && self.schema.is_some()
    }

    /// The report printed for an admin.
    pub fn describe(&self) -> String {
        let mut out = format!("{}\n", self.path.display());
        if self.problems.is_empty() {
            out.push_str("integrity: ok\n");
        } else {
            out.push_str(&format!(
                "integrity: FAILED: {}\n",
                self.problems.join("; ")
            ));
        }
        match &self.schema {
            // A damaged file's schema was not read.
            None if !self.problems.is_empty() => {}
            Some((version, description)) => {
                let relation = match version.cmp(&self.binary_schema) {
                    std::cmp::Ordering::Equal => "this binary's",
                    std::cmp::Ordering::Less => "older than this binary's (migrated at start)",
                    std::cmp::Ordering::Greater => {
                        "NEWER than this binary's (needs a newer binary)"
                    }
                };
                out.push_str(&format!(
                    "schema: version {version} ({description}), {} migration(s) applied; {relation} ({})\n",
                    self.migrations, self.binary_schema
                ));
            }
            None => out.push_str("schema: no migration table: not a state database\n"),
        }
        if !self.tables.is_empty() {
            out.push_str("rows per table:\n");
            let width = self.tables.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
            for (table, rows) in &self.tables {
                out.push_str(&format!("  {table:width$}  {rows}\n"));
            }
        }
        out
    }
}

/// Opens the backup `path` read-only and checks it: integrity, schema
/// version, rows per table.
pub fn verify_file(path: &Path) -> Result<Verification, StateError> {
    if !path.exists() {
        return Err(StateError::Missing(path.to_owned()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let binary_schema = db::GATEWAY.iter().map(|m| m.version).max().unwrap_or(0);
    let problems = integrity_problems(&conn)?;
    let mut verification = Verification {
        path: path.to_owned(),
        problems,
        schema: None,
        migrations: 0,
        binary_schema,
        tables: Vec::new(),
    };
    if !verification.problems.is_empty() {
        return Ok(verification);
    }
    verification.tables = table_rows(&conn)?;
    if verification
        .tables
        .iter()
        .any(|(name, _)| name == MIGRATIONS_TABLE)
    {
        verification.schema = conn
            .query_row(
                "SELECT version, description FROM _sqlx_migrations WHERE success \
                 ORDER BY version DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        verification.migrations = conn.query_row(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
            [],
            |row| row.get::<_, i64>(0),
        )? as usize;
    }
    Ok(verification)
}

/// What `state copy` did.
#[derive(Debug)]
pub struct CopyReport {
    /// The SQLite file copied.
    pub source: PathBuf,
    /// The target, password masked.
    pub target: String,
    /// Every state table and its rows, equal on both sides.
    pub tables: Vec<(String, i64)>,
    /// `INSERT … UNNEST` batches run.
    pub batches: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// A column's values in one batch, typed as the PostgreSQL column is.
enum Values {
    Integers(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
}

/// A state table's column in PostgreSQL: its name, whether it is BIGINT
/// (else TEXT), whether it is an identity.
struct PgColumn {
    name: String,
    integer: bool,
    identity: bool,
}

/// Copies the SQLite state database `from` into the empty PostgreSQL
/// database `to` (see the module's documentation). Everything is read in
/// one read transaction on the source (a consistent snapshot, even of a
/// running gateway's database, though rows committed after it are not
/// copied: stop the gateway first) and written in one transaction on the
/// target, which holds nothing if anything fails.
pub async fn copy_to_postgres(from: &str, to: &str) -> Result<CopyReport, StateError> {
    let started = Instant::now();
    let source = sqlite_file(from, false)?;
    if !is_postgres(to) {
        return Err(StateError::NotPostgres(redact_url(to)));
    }
    let target_url = redact_url(to);
    let options = SqliteConnectOptions::new()
        .filename(&source)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    let mut sqlite = sqlx::SqliteConnection::connect_with(&options).await?;
    let mut snapshot = sqlite.begin().await?;

    let expected_schema = db::GATEWAY.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *snapshot)
            .await
            .unwrap_or_default();
    let known: Vec<i64> = db::GATEWAY.iter().map(|m| m.version).collect();
    if applied != known {
        return Err(StateError::Schema {
            found: applied.last().copied().unwrap_or(0),
            expected: expected_schema,
        });
    }
    let source_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *snapshot)
    .await?;
    if let Some(unknown) = source_tables
        .iter()
        .find(|name| !STATE_TABLES.contains(&name.as_str()))
    {
        return Err(StateError::UnknownTable(unknown.clone()));
    }
    let mut expected = Vec::with_capacity(STATE_TABLES.len());
    for table in STATE_TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(&mut *snapshot)
            .await?;
        expected.push((table.to_owned(), rows));
    }

    let target = GatewayDb::open(to, db::Durability::Full).await?;
    let StatePool::Postgres(pg) = target.pool().clone() else {
        unreachable!("a postgres:// URL opens PostgreSQL");
    };
    let result = async {
        for table in STATE_TABLES {
            let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
                .fetch_one(&pg)
                .await?;
            if rows > 0 {
                return Err(StateError::TargetNotEmpty {
                    url: target_url.clone(),
                    table: table.to_owned(),
                    rows,
                });
            }
        }
        let mut tx = pg.begin().await?;
        let mut batches = 0;
        for table in STATE_TABLES {
            let columns = pg_columns(&mut tx, table).await?;
            batches += copy_table(&mut snapshot, &mut tx, table, &columns).await?;
            for column in columns.iter().filter(|c| c.identity) {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{name}'), MAX(\"{name}\")) \
                     FROM \"{table}\" HAVING MAX(\"{name}\") IS NOT NULL",
                    name = column.name
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let mut copied = Vec::with_capacity(STATE_TABLES.len());
        for table in STATE_TABLES {
            let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
                .fetch_one(&pg)
                .await?;
            copied.push((table.to_owned(), rows));
        }
        compare_counts(&expected, &copied)?;
        Ok(batches)
    }
    .await;
    target.close().await;
    snapshot.rollback().await?;
    sqlite.close().await?;
    Ok(CopyReport {
        source,
        target: target_url,
        tables: expected,
        batches: result?,
        elapsed: started.elapsed(),
    })
}

/// `table`'s columns in the target, in their order.
async fn pg_columns(tx: &mut sqlx::PgConnection, table: &str) -> Result<Vec<PgColumn>, StateError> {
    let rows = sqlx::query(
        "SELECT column_name::TEXT, data_type::TEXT, is_identity::TEXT \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let data_type: String = row.get(1);
            let integer = match data_type.as_str() {
                "bigint" => true,
                "text" => false,
                _ => {
                    return Err(StateError::ColumnType {
                        table: table.to_owned(),
                        column: name,
                        data_type,
                    })
                }
            };
            Ok(PgColumn {
                name,
                integer,
                identity: row.get::<String, _>(2) == "YES",
            })
        })
        .collect()
}

/// Copies `table` from the SQLite snapshot into the target's transaction,
/// [`COPY_BATCH`] rows at a time in rowid order, each batch one
/// `INSERT … SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], …)`. Returns
/// the batches run.
async fn copy_table(
    sqlite: &mut sqlx::SqliteConnection,
    pg: &mut sqlx::PgConnection,
    table: &str,
    columns: &[PgColumn],
) -> Result<u64, StateError> {
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let select = format!(
        "SELECT rowid, {} FROM \"{table}\" WHERE rowid > $1 ORDER BY rowid LIMIT $2",
        names.join(", ")
    );
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let kind = if c.integer { "BIGINT" } else { "TEXT" };
            format!("${}::{kind}[]", i + 1)
        })
        .collect();
    let insert = format!(
        "INSERT INTO \"{table}\" ({}) SELECT * FROM UNNEST({})",
        names.join(", "),
        arrays.join(", ")
    );
    let mut after = i64::MIN;
    let mut batches = 0;
    loop {
        let rows = sqlx::query(&select)
            .bind(after)
            .bind(COPY_BATCH)
            .fetch_all(&mut *sqlite)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(batches);
        };
        after = last.try_get(0)?;
        let mut values: Vec<Values> = columns
            .iter()
            .map(|c| {
                if c.integer {
                    Values::Integers(Vec::with_capacity(rows.len()))
                } else {
                    Values::Texts(Vec::with_capacity(rows.len()))
                }
            })
            .collect();
        for row in &rows {
            for (i, column) in values.iter_mut().enumerate() {
                match column {
                    Values::Integers(v) => v.push(row.try_get(i + 1)?),
                    Values::Texts(v) => v.push(row.try_get(i + 1)?),
                }
            }
        }
        let mut query = sqlx::query(&insert);
        for column in values {
            query = match column {
                Values::Integers(v) => query.bind(v),
                Values::Texts(v) => query.bind(v),
            };
        }
        query.execute(&mut *pg).await?;
        batches += 1;
        if (rows.len() as i64) < COPY_BATCH {
            return Ok(batches);
        }
    }
}

#[cfg(test)]
mod tests;
