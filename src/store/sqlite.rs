//! The embedded read model: SQLite through sqlx, in WAL mode with
//! `synchronous=FULL`, schema from `migrations/sqlite/`. The lookup done
//! for every message (`find`) runs inline on a plain connection to the same
//! file (`crate::inline_reads`), through the pool when that is not possible.

use std::path::Path;
use std::sync::Arc;

use rusqlite::OptionalExtension;
use sqlx::SqlitePool;

use super::rows::{db_count, db_time, Batch, CheckpointColumns, DossierRow, SyncRow};
use super::{
    ApplyMode, ApplyReport, Change, DossierLookup, DossierWriter, ExchangeError, StoreError,
    SyncCheckpoint, SyncStatus, UpsertOutcome,
};
use crate::clock::now_ms;
use crate::db::{self, Durability, SqliteOpening};
use crate::domain::{Dossier, DossierCode};
use crate::inline_reads::InlineReads;

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
        let how = SqliteOpening {
            durability: Durability::Full,
            max_connections: 8,
            cache_size: Some("-16384"),
        };
        let pool = db::open_sqlite(url, how).await.map_err(open_err)?;
        db::READ_MODEL_SQLITE.run(&pool).await?;
        let in_memory = pool.connect_options().get_filename() == Path::new(":memory:");
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

/// A dossier's row read inline.
fn dossier_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<DossierRow> {
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

impl DossierLookup for SqliteStore {
    async fn find(&self, code: &DossierCode) -> Result<Option<Dossier>, StoreError> {
        if let Some(inline) = &self.inline {
            let read = inline.read(|conn| {
                conn.prepare_cached(FIND)?
                    .query_row([code.as_str()], dossier_of)
                    .optional()
            });
            match read {
                Ok(row) => return row.map(DossierRow::into_dossier).transpose(),
                Err(error) => {
                    tracing::debug!(%error, "inline read failed; reading through the pool");
                }
            }
        }
        sqlx::query_as::<_, DossierRow>(FIND)
            .bind(code.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(DossierRow::into_dossier)
            .transpose()
    }

    async fn find_by_digits(
        &self,
        digits: &str,
        limit: u32,
    ) -> Result<Vec<DossierCode>, StoreError> {
        let codes: Vec<String> = sqlx::query_scalar(
            "SELECT code FROM dossiers WHERE code_digits = ? ORDER BY code LIMIT ?",
        )
        .bind(digits)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        codes.into_iter().map(super::stored_code).collect()
    }
}

impl DossierWriter for SqliteStore {
    async fn upsert_batch(&self, dossiers: &[Dossier]) -> Result<Vec<UpsertOutcome>, StoreError> {
        let changes: Vec<Change> = dossiers.iter().cloned().map(Change::Upsert).collect();
        // IMMEDIATE: the version checks must not be invalidated by a
        // concurrent writer (another import, the sync worker).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (_, outcomes) = apply_in(&mut tx, &changes, ApplyMode::Guarded).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn apply(
        &self,
        changes: &[Change],
        mode: ApplyMode,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<ApplyReport, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (report, _) = apply_in(&mut tx, changes, mode).await?;
        if let Some(checkpoint) = checkpoint {
            store_checkpoint(&mut tx, checkpoint, report.altered()).await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    async fn finish_snapshot(
        &self,
        generation: i64,
        authoritative: bool,
        checkpoint: &SyncCheckpoint,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if authoritative {
            sqlx::query("DELETE FROM dossier_tombstones")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO dossier_tombstones (code, version) \
                 SELECT code, version FROM dossiers WHERE seen_gen < ? \
                 ON CONFLICT (code) DO UPDATE SET version = max(version, excluded.version)",
            )
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        }
        let deleted = sqlx::query("DELETE FROM dossiers WHERE seen_gen < ?")
            .bind(generation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        store_checkpoint(&mut tx, checkpoint, deleted).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn sync_status(&self, source: &str) -> Result<Option<SyncStatus>, StoreError> {
        sqlx::query_as::<_, SyncRow>("SELECT * FROM sync_state WHERE source = ?")
            .bind(source)
            .fetch_optional(&self.pool)
            .await?
            .map(SyncRow::into_status)
            .transpose()
    }

    async fn all_sync_status(&self) -> Result<Vec<SyncStatus>, StoreError> {
        sqlx::query_as::<_, SyncRow>("SELECT * FROM sync_state ORDER BY source")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(SyncRow::into_status)
            .collect()
    }

    async fn note_exchange(
        &self,
        source: &str,
        at_ms: i64,
        outcome: Result<Option<u64>, &ExchangeError>,
    ) -> Result<(), StoreError> {
        match outcome {
            Ok(pending) => {
                sqlx::query(
                    "UPDATE sync_state SET last_ok_at = ?, pending = ?, last_error = NULL, \
                     updated_at = ? WHERE source = ?",
                )
                .bind(at_ms)
                .bind(pending.map(db_count))
                .bind(at_ms)
                .bind(source)
                .execute(&self.pool)
                .await?;
            }
            Err(error) => {
                sqlx::query(
                    "UPDATE sync_state SET last_error = ?, updated_at = ? WHERE source = ?",
                )
                .bind(error.to_string())
                .bind(at_ms)
                .bind(source)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn live_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT code, version FROM dossiers")
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Most rows in one INSERT (11 parameters each, well under SQLite's 32,766).
const UPSERT_CHUNK: usize = 250;

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The batch's work inside the caller's transaction: a handful of
/// statements whatever the batch's size (the rows travel as one JSON array
/// each way, read with `json_each`). Versions are decided here, in order,
/// so a batch may hold several changes of one dossier.
async fn apply_in(
    tx: &mut sqlx::SqliteConnection,
    changes: &[Change],
    mode: ApplyMode,
) -> Result<(ApplyReport, Vec<UpsertOutcome>), StoreError> {
    if changes.is_empty() {
        return Ok((ApplyReport::default(), Vec::new()));
    }
    let batch = Batch::new(changes);
    let codes_json = json(&batch.codes);
    let held: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT j.value, d.version, t.version FROM json_each(?) j \
         LEFT JOIN dossiers d ON d.code = j.value \
         LEFT JOIN dossier_tombstones t ON t.code = j.value",
    )
    .bind(&codes_json)
    .fetch_all(&mut *tx)
    .await?;
    let plan = batch.decide(mode, held);
    // Rows go in as multi-row VALUES of at most UPSERT_CHUNK rows: one
    // cached statement for every full chunk, bound parameters, no JSON to
    // parse per column.
    for chunk in plan.upserts.chunks(UPSERT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO dossiers (code, procedure_name, agency_name, status, received_at, \
             appointment_at, finished_at, returned_at, owner_phone, owner_name, version) ",
        );
        insert.push_values(chunk, |mut row, d| {
            row.push_bind(d.code.as_str())
                .push_bind(d.procedure_name.as_deref())
                .push_bind(d.agency_name.as_deref())
                .push_bind(i64::from(d.status.code()))
                .push_bind(db_time(d.received_at))
                .push_bind(db_time(d.appointment_at))
                .push_bind(db_time(d.finished_at))
                .push_bind(db_time(d.returned_at))
                .push_bind(
                    d.owner_phone
                        .as_ref()
                        .map(|p| p.as_international().to_owned()),
                )
                .push_bind(d.owner_name.as_deref())
                .push_bind(d.version);
        });
        insert.push(
            " ON CONFLICT (code) DO UPDATE SET procedure_name = excluded.procedure_name, \
             agency_name = excluded.agency_name, status = excluded.status, \
             received_at = excluded.received_at, appointment_at = excluded.appointment_at, \
             finished_at = excluded.finished_at, returned_at = excluded.returned_at, \
             owner_phone = excluded.owner_phone, owner_name = excluded.owner_name, \
             version = excluded.version, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        );
        insert.build().persistent(true).execute(&mut *tx).await?;
    }
    if !plan.revived.is_empty() {
        // Only dossiers written over their tombstone have one to clear.
        sqlx::query(
            "DELETE FROM dossier_tombstones WHERE code IN (SELECT value FROM json_each(?))",
        )
        .bind(json(&plan.revived))
        .execute(&mut *tx)
        .await?;
    }
    if !plan.deletes.is_empty() {
        let rows = json(&plan.deletes);
        sqlx::query("DELETE FROM dossiers WHERE code IN (SELECT value ->> 0 FROM json_each(?))")
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dossier_tombstones (code, version) \
             SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true \
             ON CONFLICT (code) DO UPDATE SET version = excluded.version, \
             deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(&rows)
        .execute(&mut *tx)
        .await?;
    }
    if let ApplyMode::Snapshot { generation } | ApplyMode::Authoritative { generation } = mode {
        sqlx::query(
            "UPDATE dossiers SET seen_gen = ? WHERE code IN (SELECT value FROM json_each(?))",
        )
        .bind(generation)
        .bind(&codes_json)
        .execute(&mut *tx)
        .await?;
    }
    Ok((plan.report, plan.outcomes))
}

/// Stores `checkpoint` as its source's state; `altered` changes applied now.
async fn store_checkpoint(
    tx: &mut sqlx::SqliteConnection,
    checkpoint: &SyncCheckpoint,
    altered: u64,
) -> Result<(), StoreError> {
    let columns = CheckpointColumns::of(checkpoint);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sync_state (source, epoch, stage, cursor, page_token, authoritative, \
         generation, pending, last_ok_at, last_applied_at, applied_total, last_error, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
         ON CONFLICT (source) DO UPDATE SET epoch = excluded.epoch, stage = excluded.stage, \
         cursor = excluded.cursor, page_token = excluded.page_token, \
         authoritative = excluded.authoritative, generation = excluded.generation, \
         pending = excluded.pending, last_ok_at = excluded.last_ok_at, \
         last_applied_at = coalesce(excluded.last_applied_at, sync_state.last_applied_at), \
         applied_total = sync_state.applied_total + excluded.applied_total, \
         last_error = NULL, updated_at = excluded.updated_at",
    )
    .bind(&checkpoint.source)
    .bind(&checkpoint.epoch)
    .bind(columns.stage)
    .bind(columns.cursor)
    .bind(columns.page_token)
    .bind(columns.authoritative)
    .bind(checkpoint.generation)
    .bind(columns.pending)
    .bind(now)
    .bind((altered > 0).then_some(now))
    .bind(db_count(altered))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DossierStatus;
    use crate::portal_record::PortalRecord;
    use crate::store::SyncStage;

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

    fn code(n: u32) -> DossierCode {
        DossierCode::parse(&format!("000.00.12.H58-240315-{n:04}")).unwrap()
    }

    fn at(n: u32, status: i64, version: i64) -> Change {
        let mut d = dossier(status, version);
        d.code = code(n);
        Change::Upsert(d)
    }

    fn gone(n: u32, version: i64) -> Change {
        Change::Delete {
            code: code(n),
            version,
        }
    }

    fn streaming(cursor: &str) -> SyncCheckpoint {
        SyncCheckpoint {
            source: "feed".into(),
            epoch: "e1".into(),
            stage: SyncStage::Streaming {
                cursor: cursor.into(),
            },
            generation: 1,
            pending: Some(3),
        }
    }

    #[tokio::test]
    async fn a_batch_applies_in_order_with_tombstones_and_stores_its_checkpoint() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let report = store
            .apply(
                &[
                    at(1, 2, 1),
                    at(1, 4, 2),
                    at(2, 2, 1),
                    gone(2, 2),
                    at(2, 4, 1),
                ],
                ApplyMode::Guarded,
                Some(&streaming("c1")),
            )
            .await
            .unwrap();
        assert_eq!(
            report,
            ApplyReport {
                written: 1,
                deleted: 1,
                unchanged: 1
            }
        );
        assert_eq!(store.find(&code(1)).await.unwrap().unwrap().version, 2);
        assert_eq!(store.find(&code(2)).await.unwrap(), None);
        // A late copy older than the deletion does not bring it back; a newer one does.
        let again = store
            .apply(&[at(2, 9, 2), at(1, 2, 1)], ApplyMode::Guarded, None)
            .await
            .unwrap();
        assert_eq!(again.unchanged, 2);
        assert_eq!(store.find(&code(2)).await.unwrap(), None);
        store
            .apply(&[at(2, 9, 3)], ApplyMode::Guarded, None)
            .await
            .unwrap();
        assert_eq!(store.find(&code(2)).await.unwrap().unwrap().version, 3);
        let status = store.sync_status("feed").await.unwrap().unwrap();
        assert_eq!(status.checkpoint, streaming("c1"));
        assert_eq!(status.applied_total, 2);
        assert!(status.last_ok_at_ms.is_some() && status.last_applied_at_ms.is_some());
        store
            .note_exchange("feed", 5, Err(&std::io::Error::other("core unreachable")))
            .await
            .unwrap();
        let status = store.sync_status("feed").await.unwrap().unwrap();
        assert_eq!(status.last_error.as_deref(), Some("core unreachable"));
        store.note_exchange("feed", 7, Ok(Some(0))).await.unwrap();
        let status = store.sync_status("feed").await.unwrap().unwrap();
        assert_eq!((status.last_error, status.last_ok_at_ms), (None, Some(7)));
        assert_eq!(store.all_sync_status().await.unwrap().len(), 1);
        let mut live = store.live_versions().await.unwrap();
        live.sort();
        assert_eq!(
            live,
            vec![(code(1).to_string(), 2), (code(2).to_string(), 3)]
        );
    }

    #[tokio::test]
    async fn a_finished_snapshot_deletes_what_it_did_not_list() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store
            .apply(
                &[at(1, 2, 5), at(2, 2, 1), at(3, 2, 1)],
                ApplyMode::Guarded,
                None,
            )
            .await
            .unwrap();
        // Generation 1 lists 1 (at an older version: kept) and 2 (newer: written).
        let page = store
            .apply(
                &[at(1, 2, 4), at(2, 4, 2)],
                ApplyMode::Snapshot { generation: 1 },
                None,
            )
            .await
            .unwrap();
        assert_eq!((page.written, page.unchanged), (1, 1));
        let deleted = store
            .finish_snapshot(1, false, &streaming("head"))
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(store.find(&code(3)).await.unwrap(), None);
        assert_eq!(store.find(&code(1)).await.unwrap().unwrap().version, 5);
        // Dossier 3's tombstone keeps its version 1 out.
        let late = store
            .apply(&[at(3, 4, 1)], ApplyMode::Guarded, None)
            .await
            .unwrap();
        assert_eq!(late.unchanged, 1);
        // A new epoch's snapshot is the truth whatever its versions.
        store
            .apply(
                &[at(1, 9, 1)],
                ApplyMode::Authoritative { generation: 2 },
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .finish_snapshot(2, true, &streaming("h2"))
                .await
                .unwrap(),
            1
        );
        let one = store.find(&code(1)).await.unwrap().unwrap();
        assert_eq!((one.version, one.status), (1, DossierStatus::Processed));
        assert_eq!(store.find(&code(2)).await.unwrap(), None);
        // No tombstones survive an authoritative snapshot.
        store
            .apply(&[at(3, 2, 1)], ApplyMode::Guarded, None)
            .await
            .unwrap();
        assert!(store.find(&code(3)).await.unwrap().is_some());
    }
}
