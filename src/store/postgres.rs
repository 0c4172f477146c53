//! The read model in PostgreSQL, for production (`database.url =
//! "postgres://…"`): the same tables and the same behaviour as
//! [`super::SqliteStore`], schema from `migrations/postgres/` (the SQLite
//! migrations' versions, in this dialect).
//!
//! A batch is a few statements whatever its size: the codes and columns
//! travel as arrays read with `unnest`, the versions held are read once and
//! the decision is made in Rust (`super::rows`), as for SQLite. Every
//! transaction that writes dossiers or tombstones first takes one
//! transaction-scoped advisory lock ([`WRITER_LOCK`]), so writers take turns
//! as SQLite's `BEGIN IMMEDIATE` makes them, and the versions a batch read
//! stay the ones held until it commits; readers are never blocked.
//!
//! Times are `timestamp(0)` columns; they cross the wire as
//! `YYYY-MM-DD HH:MM:SS` text (cast on the way in, `to_char` on the way
//! out), so whatever the server's `DateStyle`, a dossier reads back exactly
//! as written (times to the second, as in SQLite).

use sqlx::{PgConnection, PgPool};

use super::rows::{db_count, db_time, Batch, CheckpointColumns, DossierRow, SyncRow};
use super::{
    ApplyMode, ApplyReport, Change, DossierLookup, DossierWriter, ExchangeError, StoreError,
    SyncCheckpoint, SyncStatus, UpsertOutcome,
};
use crate::clock::now_ms;
use crate::db;
use crate::domain::{Dossier, DossierCode};

/// The advisory lock key every writing transaction takes
/// (`pg_advisory_xact_lock`): "motcua" in ASCII, then 1. Locks are per
/// database, so two gateways on two databases do not contend.
pub const WRITER_LOCK: i64 = 0x6d6f_7463_7561_0001;

/// A dossier's row, times as the text [`DossierRow`] reads.
const FIND: &str = "SELECT code, procedure_name, agency_name, status::int8 AS status, \
     to_char(received_at, 'YYYY-MM-DD HH24:MI:SS') AS received_at, \
     to_char(appointment_at, 'YYYY-MM-DD HH24:MI:SS') AS appointment_at, \
     to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS') AS finished_at, \
     to_char(returned_at, 'YYYY-MM-DD HH24:MI:SS') AS returned_at, \
     owner_phone, owner_name, version FROM dossiers WHERE code = $1";

/// The read model in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to and migrates the database at `url`
    /// (`postgres://user:password@host:port/database?sslmode=…`, or
    /// `postgresql://…`). The database must exist. Errors show the URL
    /// with its password replaced by `***`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            url: db::redact_url(url),
            source,
        };
        let pool = db::open_postgres(url, 8).await.map_err(open_err)?;
        db::READ_MODEL_POSTGRES.run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    /// Number of dossiers stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM dossiers")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction holding the writer lock.
    async fn begin_writing(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITER_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl DossierLookup for PostgresStore {
    async fn find(&self, code: &DossierCode) -> Result<Option<Dossier>, StoreError> {
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
            "SELECT code FROM dossiers WHERE code_digits = $1 ORDER BY code LIMIT $2",
        )
        .bind(digits)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        codes.into_iter().map(super::stored_code).collect()
    }
}

impl DossierWriter for PostgresStore {
    async fn upsert_batch(&self, dossiers: &[Dossier]) -> Result<Vec<UpsertOutcome>, StoreError> {
        let changes: Vec<Change> = dossiers.iter().cloned().map(Change::Upsert).collect();
        let mut tx = self.begin_writing().await?;
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
        let mut tx = self.begin_writing().await?;
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
        let mut tx = self.begin_writing().await?;
        if authoritative {
            sqlx::query("DELETE FROM dossier_tombstones")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO dossier_tombstones (code, version) \
                 SELECT code, version FROM dossiers WHERE seen_gen < $1 \
                 ON CONFLICT (code) DO UPDATE \
                 SET version = greatest(dossier_tombstones.version, excluded.version)",
            )
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        }
        let deleted = sqlx::query("DELETE FROM dossiers WHERE seen_gen < $1")
            .bind(generation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        store_checkpoint(&mut tx, checkpoint, deleted).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn sync_status(&self, source: &str) -> Result<Option<SyncStatus>, StoreError> {
        sqlx::query_as::<_, SyncRow>("SELECT * FROM sync_state WHERE source = $1")
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
        let query = match outcome {
            Ok(pending) => sqlx::query(
                "UPDATE sync_state SET last_ok_at = $1, pending = $2, last_error = NULL, \
                 updated_at = $1 WHERE source = $3",
            )
            .bind(at_ms)
            .bind(pending.map(db_count)),
            Err(error) => sqlx::query(
                "UPDATE sync_state SET last_error = $2, updated_at = $1 WHERE source = $3",
            )
            .bind(at_ms)
            .bind(error.to_string()),
        };
        query.bind(source).execute(&self.pool).await?;
        Ok(())
    }

    async fn live_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT code, version FROM dossiers")
            .fetch_all(&self.pool)
            .await?)
    }
}

/// The dossiers to store, column by column, for `unnest`.
#[derive(Default)]
struct Columns<'a> {
    code: Vec<&'a str>,
    procedure_name: Vec<Option<&'a str>>,
    agency_name: Vec<Option<&'a str>>,
    status: Vec<i16>,
    received_at: Vec<Option<String>>,
    appointment_at: Vec<Option<String>>,
    finished_at: Vec<Option<String>>,
    returned_at: Vec<Option<String>>,
    owner_phone: Vec<Option<&'a str>>,
    owner_name: Vec<Option<&'a str>>,
    version: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(dossiers: &[&'a Dossier]) -> Self {
        let mut columns = Columns::default();
        for d in dossiers {
            columns.code.push(d.code.as_str());
            columns.procedure_name.push(d.procedure_name.as_deref());
            columns.agency_name.push(d.agency_name.as_deref());
            columns.status.push(i16::from(d.status.code()));
            columns.received_at.push(db_time(d.received_at));
            columns.appointment_at.push(db_time(d.appointment_at));
            columns.finished_at.push(db_time(d.finished_at));
            columns.returned_at.push(db_time(d.returned_at));
            columns
                .owner_phone
                .push(d.owner_phone.as_ref().map(|p| p.as_international()));
            columns.owner_name.push(d.owner_name.as_deref());
            columns.version.push(d.version);
        }
        columns
    }
}

/// The batch's work inside the caller's transaction, which holds
/// [`WRITER_LOCK`]: one read of the versions held, then at most five
/// statements whatever the batch's size. Sets of codes are joined with
/// `unnest` rather than matched with `= ANY(array)`, which the planner may
/// answer with a scan comparing every row with every element.
async fn apply_in(
    tx: &mut PgConnection,
    changes: &[Change],
    mode: ApplyMode,
) -> Result<(ApplyReport, Vec<UpsertOutcome>), StoreError> {
    if changes.is_empty() {
        return Ok((ApplyReport::default(), Vec::new()));
    }
    let batch = Batch::new(changes);
    let held: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT c.code, d.version, t.version FROM unnest($1::text[]) AS c(code) \
         LEFT JOIN dossiers d ON d.code = c.code \
         LEFT JOIN dossier_tombstones t ON t.code = c.code \
         WHERE d.code IS NOT NULL OR t.code IS NOT NULL",
    )
    .bind(&batch.codes)
    .fetch_all(&mut *tx)
    .await?;
    let plan = batch.decide(mode, held);
    // Snapshot pages mark what they list; a dossier they write is marked as
    // it is written, the others by the UPDATE below.
    let generation = match mode {
        ApplyMode::Guarded => None,
        ApplyMode::Snapshot { generation } | ApplyMode::Authoritative { generation } => {
            Some(generation)
        }
    };
    if !plan.upserts.is_empty() {
        let c = Columns::of(&plan.upserts);
        sqlx::query(
            "INSERT INTO dossiers (code, procedure_name, agency_name, status, received_at, \
             appointment_at, finished_at, returned_at, owner_phone, owner_name, version, \
             seen_gen) \
             SELECT u.code, u.procedure_name, u.agency_name, u.status, \
             u.received_at::timestamp, u.appointment_at::timestamp, u.finished_at::timestamp, \
             u.returned_at::timestamp, u.owner_phone, u.owner_name, u.version, \
             coalesce($12::int8, 0) \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[]) \
             AS u(code, procedure_name, agency_name, status, received_at, appointment_at, \
             finished_at, returned_at, owner_phone, owner_name, version) \
             ON CONFLICT (code) DO UPDATE SET procedure_name = excluded.procedure_name, \
             agency_name = excluded.agency_name, status = excluded.status, \
             received_at = excluded.received_at, appointment_at = excluded.appointment_at, \
             finished_at = excluded.finished_at, returned_at = excluded.returned_at, \
             owner_phone = excluded.owner_phone, owner_name = excluded.owner_name, \
             version = excluded.version, \
             seen_gen = coalesce($12::int8, dossiers.seen_gen), updated_at = now()",
        )
        .bind(&c.code)
        .bind(&c.procedure_name)
        .bind(&c.agency_name)
        .bind(&c.status)
        .bind(&c.received_at)
        .bind(&c.appointment_at)
        .bind(&c.finished_at)
        .bind(&c.returned_at)
        .bind(&c.owner_phone)
        .bind(&c.owner_name)
        .bind(&c.version)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.revived.is_empty() {
        sqlx::query(
            "DELETE FROM dossier_tombstones t USING unnest($1::text[]) AS c(code) \
             WHERE t.code = c.code",
        )
        .bind(&plan.revived)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.deletes.is_empty() {
        let (codes, versions): (Vec<&str>, Vec<i64>) = plan.deletes.iter().copied().unzip();
        sqlx::query(
            "DELETE FROM dossiers d USING unnest($1::text[]) AS c(code) WHERE d.code = c.code",
        )
        .bind(&codes)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO dossier_tombstones (code, version) \
             SELECT * FROM unnest($1::text[], $2::int8[]) \
             ON CONFLICT (code) DO UPDATE SET version = excluded.version, deleted_at = now()",
        )
        .bind(&codes)
        .bind(&versions)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(generation) = generation {
        sqlx::query(
            "UPDATE dossiers d SET seen_gen = $1 FROM unnest($2::text[]) AS c(code) \
             WHERE d.code = c.code AND d.seen_gen <> $1",
        )
        .bind(generation)
        .bind(&batch.codes)
        .execute(&mut *tx)
        .await?;
    }
    Ok((plan.report, plan.outcomes))
}

/// Stores `checkpoint` as its source's state; `altered` changes applied now.
async fn store_checkpoint(
    tx: &mut PgConnection,
    checkpoint: &SyncCheckpoint,
    altered: u64,
) -> Result<(), StoreError> {
    let columns = CheckpointColumns::of(checkpoint);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sync_state (source, epoch, stage, cursor, page_token, authoritative, \
         generation, pending, last_ok_at, last_applied_at, applied_total, last_error, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $9) \
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
    .execute(&mut *tx)
    .await?;
    Ok(())
}
