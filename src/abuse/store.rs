//! The guard's persisted state in the gateway's state database (a SQLite
//! file, `migrations/journal/20261127000003_abuse.sql`, or PostgreSQL,
//! `migrations/state-postgres/`): blocks, the allow list and the "rate
//! limited until" decisions.
//!
//! Every check reads these tables (one indexed query), so a change made by
//! an admin, through this guard or by another gateway on the same database,
//! counts from the next message on, and a restart loses nothing. Nothing is
//! cached. The reads done for every message run inline when the database is
//! a SQLite file (`crate::inline_reads`), through the pool otherwise (always
//! on PostgreSQL) or when that fails. Every query is one text for both
//! engines, run with [`on_state_pool!`](crate::on_state_pool).

use std::sync::Arc;

use tracing::debug;

use super::AbuseError;
use crate::db::StatePool;
use crate::inline_reads::InlineReads;
use crate::on_state_pool;

const SENDER_STATE: &str = "SELECT EXISTS (SELECT 1 FROM allow_list WHERE sender = $1), \
                                   EXISTS (SELECT 1 FROM blocks WHERE sender = $1 \
                                           AND (until IS NULL OR until > $2)), \
                                   (SELECT until FROM rate_limited WHERE sender = $1)";

const IS_ALLOWED: &str = "SELECT EXISTS (SELECT 1 FROM allow_list WHERE sender = $1)";

/// What the database says about one sender at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderState {
    /// On the allow list.
    pub allowed: bool,
    /// Blocked at that time.
    pub blocked: bool,
    /// Silenced for a rate limit until then (may be past).
    pub limited_until: Option<i64>,
}

/// One row of `blocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockRow {
    pub sender: String,
    pub until: Option<i64>,
    pub reason: String,
    pub created_at: i64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: StatePool,
    /// The SQLite file, for the per-message reads; `None` on PostgreSQL.
    inline: Option<Arc<InlineReads>>,
}

impl Store {
    /// Checks that the migration has been run.
    pub async fn open(pool: StatePool) -> Result<Self, AbuseError> {
        on_state_pool!(&pool, p => sqlx::query(
            "SELECT (SELECT COUNT(*) FROM blocks WHERE until IS NULL), \
                    (SELECT COUNT(*) FROM allow_list WHERE created_at IS NULL), \
                    (SELECT COUNT(*) FROM rate_limited WHERE noticed_until IS NULL)",
        )
        .fetch_one(p)
        .await
        .map(drop))
        .map_err(|source| AbuseError::Schema { source })?;
        let inline = match &pool {
            StatePool::Sqlite(p) => {
                InlineReads::new(p.connect_options().get_filename()).map(Arc::new)
            }
            StatePool::Postgres(_) => None,
        };
        Ok(Store { pool, inline })
    }

    /// Runs a per-message read inline; `None` (logged when it failed) sends
    /// the caller to the pool.
    fn read_inline<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        match self.inline.as_ref()?.read(read) {
            Ok(value) => Some(value),
            Err(error) => {
                debug!(%error, "inline read failed; reading through the pool");
                None
            }
        }
    }

    pub async fn sender_state(&self, sender: &str, now_ms: i64) -> Result<SenderState, AbuseError> {
        let inline = self.read_inline(|conn| {
            conn.prepare_cached(SENDER_STATE)?
                .query_row(rusqlite::params![sender, now_ms], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
        });
        let (allowed, blocked, limited_until): (bool, bool, Option<i64>) = match inline {
            Some(state) => state,
            None => on_state_pool!(&self.pool, p => sqlx::query_as(SENDER_STATE)
                .bind(sender)
                .bind(now_ms)
                .fetch_one(p)
                .await)?,
        };
        Ok(SenderState {
            allowed,
            blocked,
            limited_until,
        })
    }

    pub async fn is_allowed(&self, sender: &str) -> Result<bool, AbuseError> {
        let inline = self.read_inline(|conn| {
            conn.prepare_cached(IS_ALLOWED)?
                .query_row(rusqlite::params![sender], |row| row.get::<_, bool>(0))
        });
        match inline {
            Some(allowed) => Ok(allowed),
            None => {
                let (allowed,): (bool,) = on_state_pool!(&self.pool, p => sqlx::query_as(IS_ALLOWED)
                    .bind(sender)
                    .fetch_one(p)
                    .await)?;
                Ok(allowed)
            }
        }
    }

    /// Records that the sender is silenced until `until` and claims the one
    /// notice of this episode: true when no notice was sent before
    /// `now_ms`'s notice window (the caller sends it), false when one was
    /// (the silence is still extended to `until`).
    pub async fn claim_notice(
        &self,
        sender: &str,
        until: i64,
        noticed_until: i64,
        now_ms: i64,
    ) -> Result<bool, AbuseError> {
        // Of two gateways' tasks racing for the same sender, exactly one
        // updates the row: SQLite runs one write at a time, and PostgreSQL
        // locks the conflicting row and tests the WHERE on its latest version.
        let claimed = on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO rate_limited (sender, until, noticed_until) VALUES ($1, $2, $3) \
             ON CONFLICT (sender) DO UPDATE \
             SET until = CASE WHEN excluded.until > rate_limited.until \
                              THEN excluded.until ELSE rate_limited.until END, \
                 noticed_until = excluded.noticed_until \
             WHERE rate_limited.noticed_until <= $4",
        )
        .bind(sender)
        .bind(until)
        .bind(noticed_until)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected())
            == 1;
        if !claimed {
            self.extend_limit(sender, until, 0).await?;
        }
        Ok(claimed)
    }

    /// Silences the sender until at least `until`, with no notice before at
    /// least `noticed_until`.
    pub async fn extend_limit(
        &self,
        sender: &str,
        until: i64,
        noticed_until: i64,
    ) -> Result<(), AbuseError> {
        on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO rate_limited (sender, until, noticed_until) VALUES ($1, $2, $3) \
             ON CONFLICT (sender) DO UPDATE \
             SET until = CASE WHEN excluded.until > rate_limited.until \
                              THEN excluded.until ELSE rate_limited.until END, \
                 noticed_until = CASE WHEN excluded.noticed_until > rate_limited.noticed_until \
                                      THEN excluded.noticed_until \
                                      ELSE rate_limited.noticed_until END",
        )
        .bind(sender)
        .bind(until)
        .bind(noticed_until)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// An automatic block: written unless a longer (or permanent) block is
    /// already in force. True when written.
    pub async fn auto_block(
        &self,
        sender: &str,
        until: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, AbuseError> {
        let written = on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO blocks (sender, until, reason, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sender) DO UPDATE \
             SET until = excluded.until, reason = excluded.reason, \
                 created_at = excluded.created_at \
             WHERE blocks.until IS NOT NULL AND blocks.until < excluded.until",
        )
        .bind(sender)
        .bind(until)
        .bind(reason)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
        Ok(written == 1)
    }

    /// An admin block: replaces whatever block the sender had.
    pub async fn put_block(
        &self,
        sender: &str,
        until: Option<i64>,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), AbuseError> {
        on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO blocks (sender, until, reason, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sender) DO UPDATE \
             SET until = excluded.until, reason = excluded.reason, \
                 created_at = excluded.created_at",
        )
        .bind(sender)
        .bind(until)
        .bind(reason)
        .bind(now_ms)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Removes the sender's block and rate-limit silence, in one transaction.
    pub async fn clear_sender(&self, sender: &str) -> Result<(), AbuseError> {
        // SQLite: take the write lock at once, so that no other writer's
        // commit can make the transaction's first read stale.
        let begin = match &self.pool {
            StatePool::Sqlite(_) => "BEGIN IMMEDIATE",
            StatePool::Postgres(_) => "BEGIN",
        };
        on_state_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await?;
            sqlx::query("DELETE FROM blocks WHERE sender = $1")
                .bind(sender)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM rate_limited WHERE sender = $1")
                .bind(sender)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    pub async fn put_allowed(&self, sender: &str, now_ms: i64) -> Result<(), AbuseError> {
        on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO allow_list (sender, created_at) VALUES ($1, $2) \
             ON CONFLICT (sender) DO NOTHING",
        )
        .bind(sender)
        .bind(now_ms)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    pub async fn delete_allowed(&self, sender: &str) -> Result<(), AbuseError> {
        on_state_pool!(&self.pool, p => sqlx::query("DELETE FROM allow_list WHERE sender = $1")
            .bind(sender)
            .execute(p)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Blocks in force at `now_ms`, newest first.
    pub async fn blocks(&self, now_ms: i64) -> Result<Vec<BlockRow>, AbuseError> {
        let rows: Vec<(String, Option<i64>, String, i64)> = on_state_pool!(&self.pool, p => sqlx::query_as(
                "SELECT sender, until, reason, created_at FROM blocks \
                 WHERE until IS NULL OR until > $1 \
                 ORDER BY created_at DESC, sender",
            )
            .bind(now_ms)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(sender, until, reason, created_at)| BlockRow {
                sender,
                until,
                reason,
                created_at,
            })
            .collect())
    }

    /// The allow list, newest first: (sender, created_at).
    pub async fn allowed(&self) -> Result<Vec<(String, i64)>, AbuseError> {
        Ok(on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT sender, created_at FROM allow_list ORDER BY created_at DESC, sender",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Senders silenced for a rate limit at `now_ms`, soonest end first: (sender, until).
    pub async fn silenced(&self, now_ms: i64) -> Result<Vec<(String, i64)>, AbuseError> {
        Ok(on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT sender, until FROM rate_limited WHERE until > $1 ORDER BY until, sender",
        )
        .bind(now_ms)
        .fetch_all(p)
        .await)?)
    }

    /// Deletes blocks and rate-limit rows that ended before `now_ms`.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<(), AbuseError> {
        on_state_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM blocks WHERE until IS NOT NULL AND until <= $1")
                .bind(now_ms)
                .execute(p)
                .await?;
            sqlx::query("DELETE FROM rate_limited WHERE until <= $1 AND noticed_until <= $1")
                .bind(now_ms)
                .execute(p)
                .await
                .map(drop)
        })?;
        Ok(())
    }
}
