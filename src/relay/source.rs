//! [`PgFeed`]: the core feed read from the `motcua_feed` schema
//! (migrations/core-postgres/), as a [`FeedSource`].
//!
//! Commit-safe reading: change rows are served in `(xid, id)` order and only
//! when `xid < pg_snapshot_xmin(pg_current_snapshot())`, i.e. when every
//! transaction that could still add a row before them has ended. A row
//! committed by a transaction that started earlier but committed later is
//! therefore served after the ones already served, never skipped.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::Row;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::feed::server::{bad_request, ChangeSignal, ChangeWatch, FeedSource};
use crate::feed::{
    bucket_of, ChangesPage, Digest, DigestBucket, DigestBuilder, DigestEntry, ErrorKind, FeedError,
    FeedRecord, SnapshotPage,
};

/// The channel the capture trigger NOTIFYs (03_capture.sql).
pub const CHANNEL: &str = "motcua_feed";

/// The epoch, the watermark and up to `$4` safe changes after the cursor
/// `($2, $3)` of epoch `$1`, in one statement (one snapshot). No change rows
/// are read for a cursor of another epoch or before the watermark.
const CHANGES_SQL: &str = "
WITH s AS (
    SELECT epoch, retained_xid, retained_id,
           pg_snapshot_xmin(pg_current_snapshot()) AS safe,
           (SELECT max(id) FROM motcua_feed.changes) AS max_id
    FROM motcua_feed.settings
)
SELECT s.epoch, s.retained_xid::text AS retained_xid, s.retained_id, s.safe::text AS safe,
       s.max_id, c.xid::text AS xid, c.id, c.code, c.version, c.deleted,
       c.record::text AS record
FROM s LEFT JOIN LATERAL (
    SELECT c.xid, c.id, c.code, c.version, c.deleted, c.record
    FROM motcua_feed.changes c
    WHERE s.epoch = $1
      AND (s.retained_xid, s.retained_id) <= ($2::text::xid8, $3::int8)
      AND (c.xid, c.id) > ($2::text::xid8, $3::int8)
      AND c.xid < s.safe
    ORDER BY c.xid, c.id
    LIMIT $4
) c ON true";

/// The epoch, the watermark, the safe head (the last servable change row)
/// and the safe bound itself.
const HEAD_SQL: &str = "
SELECT s.epoch, s.retained_xid::text AS retained_xid, s.retained_id,
       h.xid::text AS xid, h.id, pg_snapshot_xmin(pg_current_snapshot())::text AS safe
FROM motcua_feed.settings s
LEFT JOIN LATERAL (
    SELECT c.xid, c.id FROM motcua_feed.changes c
    WHERE c.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY c.xid DESC, c.id DESC
    LIMIT 1
) h ON true";

/// The first `$1` live records by code.
const FIRST_PAGE_SQL: &str = "
SELECT code, version, record::text AS record FROM motcua_feed.current
WHERE NOT deleted ORDER BY code LIMIT $1";

/// The epoch, the safe bound and `$2` live records after code `$1`.
const NEXT_PAGE_SQL: &str = "
SELECT s.epoch, pg_snapshot_xmin(pg_current_snapshot())::text AS safe,
       c.code, c.version, c.record::text AS record
FROM motcua_feed.settings s
LEFT JOIN LATERAL (
    SELECT code, version, record FROM motcua_feed.current
    WHERE NOT deleted AND code > $1 ORDER BY code LIMIT $2
) c ON true";

/// Every live (code, version), in code order (the primary key's, byte order).
const LIVE_SQL: &str =
    "SELECT code, version FROM motcua_feed.current WHERE NOT deleted ORDER BY code";

/// A position in the change log: the `(xid, id)` of the last row served,
/// `(0, 0)` before the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// The transaction id (`xid8`) of the row.
    pub xid: u64,
    /// The row's id.
    pub id: i64,
}

/// The relay's cursor: the epoch and a [`Position`]. Text
/// `{epoch}-{xid:x}-{id:x}`; clients treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCursor {
    /// The epoch it belongs to (`[A-Za-z0-9]{1,64}`).
    pub epoch: String,
    /// The last change it includes.
    pub position: Position,
}

impl RelayCursor {
    /// The cursor's text.
    pub fn encode(&self) -> String {
        format!(
            "{}-{:x}-{:x}",
            self.epoch, self.position.xid, self.position.id
        )
    }

    /// Parses a text made by [`RelayCursor::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (epoch, xid, id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !valid_epoch(epoch) {
            return None;
        }
        Some(RelayCursor {
            epoch: epoch.to_owned(),
            position: Position {
                xid: hex_u64(xid)?,
                id: i64::try_from(hex_u64(id)?).ok()?,
            },
        })
    }
}

/// Where a snapshot continues: the cursor noted at its start and the last
/// code served. Text `{cursor}-{hex(code)}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPageToken {
    /// The head noted at the snapshot's start (with its epoch).
    pub head: RelayCursor,
    /// The last code served.
    pub last_code: String,
}

impl RelayPageToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let code: String = self.last_code.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}-{code}", self.head.encode())
    }

    /// Parses a text made by [`RelayPageToken::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (cursor, hex) = text.rsplit_once('-')?;
        if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 1024 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(RelayPageToken {
            head: RelayCursor::decode(cursor)?,
            last_code: String::from_utf8(bytes).ok()?,
        })
    }
}

fn valid_epoch(epoch: &str) -> bool {
    (1..=64).contains(&epoch.len()) && epoch.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn hex_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The log's state as the long-poll watcher compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    epoch: String,
    /// The last servable position (at least the watermark).
    head: Position,
    /// The watermark: the last position purged.
    retained: Position,
    /// `pg_snapshot_xmin` when read: a cursor at or beyond it was never issued.
    safe: u64,
}

impl Head {
    fn cursor(&self) -> String {
        RelayCursor {
            epoch: self.epoch.clone(),
            position: self.head,
        }
        .encode()
    }
}

/// The feed over the `motcua_feed` schema of a PostgreSQL core.
pub struct PgFeed {
    pool: PgPool,
    changed: ChangeSignal,
}

/// A database failure, logged, as the `503` clients retry.
fn unavailable(error: sqlx::Error) -> FeedError {
    tracing::warn!(%error, "relay: the core's database failed a feed query");
    FeedError::new(
        ErrorKind::Unavailable,
        "the core's database is unavailable; retry with backoff",
    )
}

fn no_settings() -> FeedError {
    tracing::warn!("relay: motcua_feed.settings has no row (run 01_feed_schema.sql)");
    FeedError::new(
        ErrorKind::Unavailable,
        "the core's feed is not set up; retry with backoff",
    )
}

/// The first row of a query that reads `settings` (every row has the
/// epoch) and that epoch, when it is `expected`, the epoch of the client's
/// `what` (cursor, page token); else `410 epoch_changed`.
fn same_epoch<'r>(
    rows: &'r [PgRow],
    expected: &str,
    what: &str,
) -> Result<(&'r PgRow, String), FeedError> {
    let first = rows.first().ok_or_else(no_settings)?;
    let epoch: String = first.try_get("epoch").map_err(unavailable)?;
    if epoch != expected {
        return Err(FeedError::new(
            ErrorKind::EpochChanged,
            format!("the {what} belongs to another epoch (history was reset); re-snapshot"),
        )
        .with_epoch(&epoch));
    }
    Ok((first, epoch))
}

/// A `text` column holding an unsigned decimal (an `xid8`).
fn xid_column(row: &PgRow, name: &str) -> Result<Option<u64>, FeedError> {
    let text: Option<String> = row.try_get(name).map_err(unavailable)?;
    text.map(|t| {
        t.parse::<u64>().map_err(|_| {
            FeedError::new(
                ErrorKind::Unavailable,
                format!("the core's database sent {name} {t:?}, not a transaction id"),
            )
        })
    })
    .transpose()
}

/// A change or snapshot record from its columns.
fn record(code: String, version: i64, deleted: bool, json: Option<&str>) -> FeedRecord {
    let mut fields = match json.map(serde_json::from_str::<Map<String, Value>>) {
        Some(Ok(fields)) => fields,
        Some(Err(error)) => {
            tracing::warn!(%code, %error, "relay: a stored record is not a JSON object");
            Map::new()
        }
        None => Map::new(),
    };
    // The columns are authoritative for these.
    for key in ["MaHoSo", "version", "deleted"] {
        fields.remove(key);
    }
    if deleted {
        fields.clear();
    }
    FeedRecord {
        code,
        version,
        deleted,
        fields,
    }
}

impl PgFeed {
    /// A feed over `pool` (whose database holds the `motcua_feed` schema).
    pub fn new(pool: PgPool) -> Self {
        PgFeed {
            pool,
            changed: ChangeSignal::new(),
        }
    }

    async fn head(&self) -> Result<Head, FeedError> {
        let row = sqlx::query(HEAD_SQL)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .ok_or_else(no_settings)?;
        let retained = Position {
            xid: xid_column(&row, "retained_xid")?.unwrap_or(0),
            id: row.try_get("retained_id").map_err(unavailable)?,
        };
        let last = match (
            xid_column(&row, "xid")?,
            row.try_get::<Option<i64>, _>("id").map_err(unavailable)?,
        ) {
            (Some(xid), Some(id)) => Position { xid, id },
            _ => Position::default(),
        };
        Ok(Head {
            epoch: row.try_get("epoch").map_err(unavailable)?,
            head: last.max(retained),
            retained,
            safe: xid_column(&row, "safe")?.unwrap_or(0),
        })
    }

    /// Watches the log until `stop`: a LISTEN on [`CHANNEL`] (a hint sent at
    /// commit) and a re-check every `recheck` (rows become servable only
    /// when older transactions end, which nothing announces). Wakes the
    /// long-polls whenever the head, the epoch or the watermark moved.
    pub async fn watch(
        self: Arc<Self>,
        mut listener: PgListener,
        recheck: Duration,
        stop: CancellationToken,
    ) {
        /// Least time between two checks prompted by notifications.
        const MIN_GAP: Duration = Duration::from_millis(20);
        let hinted = Arc::new(Notify::new());
        // recv() in a task of its own: it is never cancelled halfway.
        let listening = {
            let hinted = hinted.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        received = listener.recv() => match received {
                            Ok(_) => hinted.notify_one(),
                            Err(error) => {
                                tracing::warn!(%error, "relay: LISTEN {CHANNEL} failed; re-checking on the timer only until it is back");
                                tokio::select! {
                                    _ = stop.cancelled() => return,
                                    _ = tokio::time::sleep(recheck.max(Duration::from_secs(1))) => {}
                                }
                            }
                        },
                    }
                }
            })
        };
        let mut last: Option<Head> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hinted.notified() => tokio::time::sleep(MIN_GAP).await,
                _ = tokio::time::sleep(recheck) => {}
            }
            match self.head().await {
                Ok(head) if last.as_ref() != Some(&head) => {
                    last = Some(head);
                    self.changed.notify();
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "relay: head re-check failed"),
            }
        }
        let _ = listening.await;
    }

    /// The live `(code, version)` rows in code order, each through `each`.
    async fn each_live(
        &self,
        mut each: impl FnMut(String, i64) -> Result<(), FeedError>,
    ) -> Result<(), FeedError> {
        let mut rows = sqlx::query(LIVE_SQL).fetch(&self.pool);
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            each(
                row.try_get("code").map_err(unavailable)?,
                row.try_get("version").map_err(unavailable)?,
            )?;
        }
        Ok(())
    }
}

impl FeedSource for PgFeed {
    async fn epoch(&self) -> Result<String, FeedError> {
        sqlx::query_scalar("SELECT epoch FROM motcua_feed.settings")
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .ok_or_else(no_settings)
    }

    async fn changes(&self, after: &str, limit: usize) -> Result<ChangesPage, FeedError> {
        let cursor = RelayCursor::decode(after)
            .ok_or_else(|| bad_request("after: not a cursor of this core"))?;
        let rows = sqlx::query(CHANGES_SQL)
            .bind(&cursor.epoch)
            .bind(cursor.position.xid.to_string())
            .bind(cursor.position.id)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let (first, epoch) = same_epoch(&rows, &cursor.epoch, "cursor")?;
        let retained = Position {
            xid: xid_column(first, "retained_xid")?.unwrap_or(0),
            id: first.try_get("retained_id").map_err(unavailable)?,
        };
        if cursor.position < retained {
            return Err(FeedError::new(
                ErrorKind::CursorExpired,
                "the cursor is older than the retained change log; re-snapshot",
            )
            .with_epoch(&epoch));
        }
        let safe = xid_column(first, "safe")?.unwrap_or(0);
        if cursor.position.xid >= safe {
            return Err(bad_request("after: cursor is ahead of the change log").with_epoch(&epoch));
        }
        let max_id: Option<i64> = first.try_get("max_id").map_err(unavailable)?;
        let mut records = Vec::with_capacity(rows.len().min(limit));
        let mut last = cursor.position;
        for row in rows.iter().take(limit) {
            let Some(id) = row.try_get::<Option<i64>, _>("id").map_err(unavailable)? else {
                break;
            };
            let record_json: Option<String> = row.try_get("record").map_err(unavailable)?;
            records.push(record(
                row.try_get("code").map_err(unavailable)?,
                row.try_get("version").map_err(unavailable)?,
                row.try_get("deleted").map_err(unavailable)?,
                record_json.as_deref(),
            ));
            last = Position {
                xid: xid_column(row, "xid")?.unwrap_or(0),
                id,
            };
        }
        let has_more = rows.len() > limit;
        // Ids grow in insertion order, feed order is by transaction: the
        // difference of ids is an estimate (it also counts rows of
        // transactions still running or rolled back).
        let pending = if has_more {
            max_id.map_or(1, |max| (max - last.id).max(1) as u64)
        } else {
            0
        };
        Ok(ChangesPage {
            next_cursor: RelayCursor {
                epoch: epoch.clone(),
                position: last,
            }
            .encode(),
            epoch,
            records,
            has_more,
            pending: Some(pending),
        })
    }

    fn subscribe(&self) -> ChangeWatch {
        self.changed.subscribe()
    }

    async fn snapshot(
        &self,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<SnapshotPage, FeedError> {
        let (epoch, head, rows) = match page_token {
            None => {
                // The head first: every change up to it is then in `current`.
                let head = self.head().await?;
                let rows = sqlx::query(FIRST_PAGE_SQL)
                    .bind(limit as i64 + 1)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                let cursor = RelayCursor {
                    epoch: head.epoch.clone(),
                    position: head.head,
                };
                (head.epoch, cursor, rows)
            }
            Some(text) => {
                let token = RelayPageToken::decode(text)
                    .ok_or_else(|| bad_request("page_token: not a page token of this core"))?;
                let rows = sqlx::query(NEXT_PAGE_SQL)
                    .bind(&token.last_code)
                    .bind(limit as i64 + 1)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                let (first, epoch) = same_epoch(&rows, &token.head.epoch, "page token")?;
                if token.head.position.xid >= xid_column(first, "safe")?.unwrap_or(0) {
                    return Err(
                        bad_request("page_token: not a page token of this core").with_epoch(&epoch)
                    );
                }
                (epoch, token.head, rows)
            }
        };
        let mut records = Vec::with_capacity(rows.len().min(limit));
        for row in &rows {
            let Some(code) = row
                .try_get::<Option<String>, _>("code")
                .map_err(unavailable)?
            else {
                break;
            };
            let record_json: Option<String> = row.try_get("record").map_err(unavailable)?;
            records.push(record(
                code,
                row.try_get("version").map_err(unavailable)?,
                false,
                record_json.as_deref(),
            ));
        }
        let next_page_token = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|last| {
                RelayPageToken {
                    head: head.clone(),
                    last_code: last.code.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok(SnapshotPage {
            epoch,
            head_cursor: head.encode(),
            records,
            next_page_token,
        })
    }

    async fn digest(&self, buckets: u32) -> Result<Digest, FeedError> {
        let head = self.head().await?;
        let mut builder = DigestBuilder::new(buckets);
        self.each_live(|code, version| {
            builder.push(&code, version).map_err(|error| {
                tracing::warn!(%error, "relay: motcua_feed.current is not in byte order (is its code column COLLATE \"C\"?)");
                FeedError::new(ErrorKind::Unavailable, "the core's digest cannot be computed")
            })
        })
        .await?;
        Ok(Digest {
            head_cursor: head.cursor(),
            epoch: head.epoch,
            buckets,
            digests: builder.finish(),
        })
    }

    async fn digest_bucket(&self, buckets: u32, bucket: u32) -> Result<DigestBucket, FeedError> {
        let head = self.head().await?;
        let mut entries = Vec::new();
        self.each_live(|code, version| {
            if bucket_of(&code, buckets) == bucket {
                entries.push(DigestEntry { code, version });
            }
            Ok(())
        })
        .await?;
        Ok(DigestBucket {
            head_cursor: head.cursor(),
            epoch: head.epoch,
            buckets,
            bucket,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let cursor = RelayCursor {
            epoch: "3f9a0c1d2b4e5f60".into(),
            position: Position { xid: 0x2f3, id: 17 },
        };
        assert_eq!(cursor.encode(), "3f9a0c1d2b4e5f60-2f3-11");
        assert_eq!(RelayCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            "abc",
            "abc-1",
            "abc-1-2-3",
            "ab_c-1-2",
            "abc--2",
            "abc-1-",
            "abc-zz-1",
            "abc-1-ffffffffffffffff",
            "abc-11111111111111111-1",
        ] {
            assert_eq!(RelayCursor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn page_tokens_round_trip() {
        let token = RelayPageToken {
            head: RelayCursor {
                epoch: "e1".into(),
                position: Position { xid: 9, id: 4 },
            },
            last_code: "000.00.12.H58-240315-0007".into(),
        };
        assert_eq!(RelayPageToken::decode(&token.encode()), Some(token));
        for bad in [
            "",
            "e1-9-4",
            "e1-9-4-",
            "e1-9-4-0",
            "e1-9-4-zz",
            "e1-9-4-ff",
        ] {
            assert_eq!(RelayPageToken::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn positions_order_by_transaction_then_id() {
        let a = Position { xid: 10, id: 99 };
        let b = Position { xid: 11, id: 1 };
        assert!(a < b);
        assert!(Position::default() < a);
        assert!(Position { xid: 10, id: 100 } > a);
    }

    #[test]
    fn records_take_code_version_and_deletion_from_the_columns() {
        let r = record(
            "A-1".into(),
            7,
            false,
            Some(r#"{"MaHoSo":"other","version":1,"TrangThaiHoSo":4}"#),
        );
        assert_eq!((r.code.as_str(), r.version, r.deleted), ("A-1", 7, false));
        assert_eq!(r.fields.len(), 1);
        assert_eq!(r.fields["TrangThaiHoSo"], 4);
        let t = record("A-1".into(), 8, true, None);
        assert_eq!(t, FeedRecord::tombstone("A-1", 8));
    }
}
