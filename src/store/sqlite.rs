//! The embedded read model: SQLite through sqlx, in WAL mode with
//! `synchronous=FULL`, schema from `migrations/sqlite/`. The lookup done
//! for every message (`find`) runs inline on a plain connection to the same
//! file (`crate::inline_reads`), through the pool when that is not possible.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use rusqlite::OptionalExtension;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{DossierStore, StoreError, UpsertOutcome};
use crate::domain::{Dossier, DossierCode, DossierStatus, Msisdn};
use crate::inline_reads::InlineReads;

/// How local times are written in the database.
const DB_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The read model in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The file, for lookups run inline (`crate::inline_reads`); `None` in memory.
    inline: Option<Arc<InlineReads>>,
}

/// A dossier's row.
const FIND: &str = "SELECT * FROM dossiers WHERE code = ?";

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates the
    /// database at `url` (`sqlite://path/to/file.db`, or `sqlite::memory:`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let filename = options.get_filename();
        if filename != Path::new(":memory:") {
            if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            }
        }
        let in_memory = filename == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives in one connection.
            .max_connections(if in_memory { 1 } else { 8 })
            // A local file's connection does not drop: no ping (one more
            // round trip to the connection's thread) before every query.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let inline = if in_memory {
            None
        } else {
            InlineReads::new(pool.connect_options().get_filename()).map(Arc::new)
        };
        Ok(SqliteStore { pool, inline })
    }

    /// Number of dossiers stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dossiers")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn db_time(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format(DB_TIME_FORMAT).to_string())
}

/// A dossier's columns as stored.
struct DossierRow {
    code: String,
    procedure_name: Option<String>,
    agency_name: Option<String>,
    status: i64,
    received_at: Option<String>,
    appointment_at: Option<String>,
    finished_at: Option<String>,
    returned_at: Option<String>,
    owner_phone: Option<String>,
    owner_name: Option<String>,
    version: i64,
}

impl DossierRow {
    fn from_sqlx(row: &sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(DossierRow {
            code: row.try_get("code")?,
            procedure_name: row.try_get("procedure_name")?,
            agency_name: row.try_get("agency_name")?,
            status: row.try_get("status")?,
            received_at: row.try_get("received_at")?,
            appointment_at: row.try_get("appointment_at")?,
            finished_at: row.try_get("finished_at")?,
            returned_at: row.try_get("returned_at")?,
            owner_phone: row.try_get("owner_phone")?,
            owner_name: row.try_get("owner_name")?,
            version: row.try_get("version")?,
        })
    }

    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(DossierRow {
            code: row.get("code")?,
            procedure_name: row.get("procedure_name")?,
            agency_name: row.get("agency_name")?,
            status: row.get("status")?,
            received_at: row.get("received_at")?,
            appointment_at: row.get("appointment_at")?,
            finished_at: row.get("finished_at")?,
            returned_at: row.get("returned_at")?,
            owner_phone: row.get("owner_phone")?,
            owner_name: row.get("owner_name")?,
            version: row.get("version")?,
        })
    }

    fn into_dossier(self) -> Result<Dossier, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            code: self.code.clone(),
            reason,
        };
        let time =
            |column: &str, value: &Option<String>| -> Result<Option<NaiveDateTime>, StoreError> {
                value
                    .as_deref()
                    .map(|v| {
                        NaiveDateTime::parse_from_str(v, DB_TIME_FORMAT)
                            .map_err(|e| corrupt(format!("{column} {v:?}: {e}")))
                    })
                    .transpose()
            };
        Ok(Dossier {
            code: DossierCode::parse(&self.code).map_err(|e| corrupt(e.to_string()))?,
            status: DossierStatus::from_code(self.status).map_err(|e| corrupt(e.to_string()))?,
            received_at: time("received_at", &self.received_at)?,
            appointment_at: time("appointment_at", &self.appointment_at)?,
            finished_at: time("finished_at", &self.finished_at)?,
            returned_at: time("returned_at", &self.returned_at)?,
            owner_phone: self
                .owner_phone
                .as_deref()
                .map(|p| Msisdn::parse(p).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
            procedure_name: self.procedure_name,
            agency_name: self.agency_name,
            owner_name: self.owner_name,
            version: self.version,
        })
    }
}

impl DossierStore for SqliteStore {
    async fn find(&self, code: &DossierCode) -> Result<Option<Dossier>, StoreError> {
        if let Some(inline) = &self.inline {
            let read = inline.read(|conn| {
                conn.prepare_cached(FIND)?
                    .query_row([code.as_str()], DossierRow::from_rusqlite)
                    .optional()
            });
            match read {
                Ok(row) => return row.map(DossierRow::into_dossier).transpose(),
                Err(error) => {
                    tracing::debug!(%error, "inline read failed; reading through the pool");
                }
            }
        }
        let row = sqlx::query(FIND)
            .bind(code.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(DossierRow::from_sqlx)
            .transpose()?
            .map(DossierRow::into_dossier)
            .transpose()
    }

    async fn upsert_batch(&self, dossiers: &[Dossier]) -> Result<Vec<UpsertOutcome>, StoreError> {
        // IMMEDIATE: the version checks below must not be invalidated by a
        // concurrent writer (another import, the sync worker).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(dossiers.len());
        for d in dossiers {
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT version FROM dossiers WHERE code = ?")
                    .bind(d.code.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match stored {
                Some(v) if v >= d.version => {
                    outcomes.push(UpsertOutcome::Unchanged);
                    continue;
                }
                Some(_) => UpsertOutcome::Updated,
                None => UpsertOutcome::Inserted,
            };
            sqlx::query(
                "INSERT INTO dossiers (code, procedure_name, agency_name, status, received_at, \
                 appointment_at, finished_at, returned_at, owner_phone, owner_name, version) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (code) DO UPDATE SET procedure_name = excluded.procedure_name, \
                 agency_name = excluded.agency_name, status = excluded.status, \
                 received_at = excluded.received_at, appointment_at = excluded.appointment_at, \
                 finished_at = excluded.finished_at, returned_at = excluded.returned_at, \
                 owner_phone = excluded.owner_phone, owner_name = excluded.owner_name, \
                 version = excluded.version, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE excluded.version > dossiers.version",
            )
            .bind(d.code.as_str())
            .bind(&d.procedure_name)
            .bind(&d.agency_name)
            .bind(i64::from(d.status.code()))
            .bind(db_time(d.received_at))
            .bind(db_time(d.appointment_at))
            .bind(db_time(d.finished_at))
            .bind(db_time(d.returned_at))
            .bind(d.owner_phone.as_ref().map(Msisdn::as_international))
            .bind(&d.owner_name)
            .bind(d.version)
            .execute(&mut *tx)
            .await?;
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal_record::PortalRecord;

    fn dossier(status: i64, version: i64) -> Dossier {
        PortalRecord::from_json(&format!(
            r#"{{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":{status},
                "NgayHenTra":"20240329170000","SoDienThoai":"0912345678",
                "ChuHoSo":"Nguyễn Văn An","version":{version}}}"#
        ))
        .unwrap()
        .into_dossier()
        .unwrap()
    }

    #[tokio::test]
    async fn newer_versions_win_and_older_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/read.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let v2 = dossier(4, 2);
        assert_eq!(
            store.upsert_batch(std::slice::from_ref(&v2)).await.unwrap(),
            vec![UpsertOutcome::Inserted]
        );
        assert_eq!(
            store
                .upsert_batch(&[dossier(9, 1), dossier(9, 2)])
                .await
                .unwrap(),
            vec![UpsertOutcome::Unchanged, UpsertOutcome::Unchanged]
        );
        assert_eq!(store.find(&v2.code).await.unwrap(), Some(v2.clone()));
        assert_eq!(
            store.upsert_batch(&[dossier(10, 3)]).await.unwrap(),
            vec![UpsertOutcome::Updated]
        );
        let stored = store.find(&v2.code).await.unwrap().unwrap();
        assert_eq!(stored.status, DossierStatus::Returned);
        assert_eq!(stored.version, 3);
        assert_eq!(store.count().await.unwrap(), 1);
        store.close().await;
        // Reopening keeps the data and re-runs no migration.
        let reopened = SqliteStore::open(&url).await.unwrap();
        assert_eq!(reopened.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn unknown_code_is_none() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let code = DossierCode::parse("000.00.12.H58-240315-0008").unwrap();
        assert_eq!(store.find(&code).await.unwrap(), None);
    }
}
