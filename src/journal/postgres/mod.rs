//! The journal's single writer on PostgreSQL: an async task with a
//! connection of its own (not a pool checkout per batch). Like SQLite's
//! writer thread it takes every request queued meanwhile (up to
//! [`MAX_BATCH`]), applies them in one transaction, commits once, then
//! answers each: a request's own failure is its result, the commit's error
//! every request's, and nothing is answered before its commit.
//!
//! A batch first runs fast: the hot requests (messages, acknowledgements
//! read, replies queued, settled or accepted) go in one multi-row statement
//! per kind ([`batch`]), the others one at a time, with no savepoint. If any
//! statement fails, the transaction is rolled back and the batch runs again
//! carefully, each request alone inside a savepoint, so that its failure is
//! its own and the others still commit. A batch of hot requests alone
//! costs BEGIN, at most eight statements (see [`batch`]) and COMMIT,
//! whatever its size; each other request, or a reply written twice for one
//! message, starts a new group. The statements by table family:
//! `messages`, `fragments`, `receipts`, `replies`, `retention`.

mod batch;
mod fragments;
mod messages;
mod receipts;
mod replies;
mod retention;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, watch};

use super::receipts::UnmatchedReceipts;
use super::requests::{Request, WriteError};
use super::writer::{answer_batch, take_batch, Started, MAX_BATCH, QUEUE};
use crate::clock::now_ms;

/// This connection's node (`motcua.node`, set at connection start by
/// `Journal::start` in a shared database; `''` otherwise), as SQL.
pub(super) const THIS_NODE: &str = "COALESCE(current_setting('motcua.node', true), '')";

/// The condition that the message `id` (an SQL expression) is not
/// another node's. Every reply write is checked against it, so a node that
/// another node took over (frozen, then woken) writes nothing about the
/// messages it lost: the node that took them records their replies. (A
/// message that does not exist passes, and its reply then breaks the
/// foreign key, as on SQLite.)
pub(super) fn owned(id: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM messages owner WHERE owner.id = {id} AND owner.node <> {THIS_NODE})"
    )
}

/// Opens the writer's connection with `options` (the pool's) and starts
/// its task.
pub(super) async fn start(
    options: PgConnectOptions,
    window_ms: i64,
) -> Result<Started, sqlx::Error> {
    let mut conn = options.connect().await?;
    let may_exist = receipts::unmatched_receipts_exist(&mut conn).await?;
    let growth = TableGrowth::new(estimated_messages(&mut conn).await?);
    let (writes, queue) = mpsc::channel(QUEUE);
    let (exit_signal, writer_exited) = watch::channel(());
    let writer = Writer {
        conn,
        options,
        unmatched: UnmatchedReceipts {
            may_exist,
            recheck: false,
        },
        window_ms,
        growth,
    };
    tokio::spawn(async move {
        // Dropped last, when the task ends: `close` waits for it.
        let _exit_signal = exit_signal;
        writer.write_loop(queue).await;
    });
    Ok(Started {
        writes,
        writer_exited,
    })
}

/// The writer's state beside its connection.
struct Writer {
    conn: PgConnection,
    /// To connect again when the connection is lost.
    options: PgConnectOptions,
    unmatched: UnmatchedReceipts,
    window_ms: i64,
    growth: TableGrowth,
}

/// Fewest messages recorded between two statistics refreshes.
const ANALYZE_AFTER_AT_LEAST: u64 = 1_000;

/// The tables whose statistics the writer refreshes as they grow, and
/// the columns its statements look rows up by: the plans need the tables'
/// sizes (every ANALYZE sets them) and these columns' spread; the texts'
/// statistics would cost most of the time and serve no plan.
const GROWING_TABLES: &str = "messages (id, node, channel, sender, peer_ref, received_at), \
     replies (message_id, state), reply_parts (message_id, peer_id), reply_lookups (message_id)";

/// When the writer refreshes the planner's statistics of the tables it
/// fills. Its statements are prepared once and, after a few runs, keep a
/// generic plan (no planning per batch); a plan made while the tables
/// were a few pages (a fresh database, before autovacuum's first
/// ANALYZE, up to a minute later) scans them whole. An `ANALYZE` each
/// time the messages have doubled (at least [`ANALYZE_AFTER_AT_LEAST`]
/// new ones) keeps the statistics true while they grow fast, and makes
/// every connection plan its statements again; a large table is left to
/// autovacuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableGrowth {
    /// Messages in the table at the last refresh (an estimate).
    known: u64,
    /// Messages recorded since.
    recorded: u64,
}

impl TableGrowth {
    fn new(known: u64) -> Self {
        TableGrowth { known, recorded: 0 }
    }

    /// Counts `recorded` more messages; true when the statistics are due
    /// (then counted from now).
    fn note(&mut self, recorded: u64) -> bool {
        self.recorded += recorded;
        if self.recorded < self.known.max(ANALYZE_AFTER_AT_LEAST) {
            return false;
        }
        self.known += self.recorded;
        self.recorded = 0;
        true
    }
}

/// How many messages a batch records (new or copies: an upper bound).
fn messages_in(batch: &[Request]) -> u64 {
    batch
        .iter()
        .filter(|request| matches!(request, Request::Record(_) | Request::Exchange(_)))
        .count() as u64
}

/// The planner's estimate of the messages recorded (0 before the first
/// ANALYZE).
async fn estimated_messages(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let rows: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass")
            .fetch_one(conn)
            .await?;
    Ok(rows.max(0.0) as u64)
}

/// Refreshes the statistics of [`GROWING_TABLES`] on a connection of its
/// own, beside the writer (a failure is logged: the plans stay as they are).
fn refresh_statistics(options: PgConnectOptions) {
    tokio::spawn(async move {
        let analyzed = async {
            let mut conn = options.connect().await?;
            sqlx::query(&format!("ANALYZE {GROWING_TABLES}"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(error) = analyzed.await {
            tracing::warn!(%error, "cannot refresh the journal tables' statistics; plans may scan whole tables until autovacuum does");
        }
    });
}

impl Writer {
    /// Takes every queued request, applies them in one transaction,
    /// commits, then answers each. Ends when every handle is gone or after
    /// a [`Request::Close`].
    async fn write_loop(mut self, mut queue: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut closing = false;
        while !closing {
            let Some(first) = queue.recv().await else {
                break;
            };
            closing = take_batch(first, &mut queue, &mut batch);
            if batch.is_empty() {
                continue;
            }
            let committed = self.apply(&mut batch).await.map_err(WriteError::from);
            self.settle_unmatched(committed.is_ok()).await;
            if committed.is_ok() && self.growth.note(messages_in(&batch)) {
                refresh_statistics(self.options.clone());
            }
            if committed.is_err() {
                self.reconnect_if_lost().await;
            }
            answer_batch(&mut batch, committed);
        }
        let _ = self.conn.close().await;
    }

    /// Applies a batch in one transaction and commits it: fast, then, if a
    /// statement failed, again carefully. A batch that is one group is its
    /// own transaction: one writing statement (see [`batch::is_one_group`]).
    async fn apply(&mut self, batch: &mut [Request]) -> sqlx::Result<()> {
        let now = now_ms();
        let flag = self.unmatched.may_exist;
        if batch::is_one_group(batch, flag) {
            // Its one writing statement commits alone: nothing is written
            // unless all of it is.
            match batch::run_fast(
                &mut self.conn,
                &mut self.unmatched,
                batch,
                self.window_ms,
                now,
            )
            .await
            {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::debug!(%error, "a journal batch failed as a whole; running it request by request");
                }
            }
        } else {
            let mut tx = self.conn.begin().await?;
            match batch::run_fast(&mut tx, &mut self.unmatched, batch, self.window_ms, now).await {
                Ok(()) => return tx.commit().await,
                Err(error) => {
                    tracing::debug!(%error, "a journal batch failed as a whole; running it request by request");
                    tx.rollback().await?;
                }
            }
        }
        // What the failed run changed of the flag is rolled back too.
        self.unmatched.may_exist = flag;
        let mut tx = self.conn.begin().await?;
        for request in batch.iter_mut() {
            let mut savepoint = tx.begin().await?;
            let ok = batch::run_one(
                &mut savepoint,
                &mut self.unmatched,
                request,
                self.window_ms,
                now,
            )
            .await;
            if ok {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
        }
        tx.commit().await
    }

    /// Brings the "unmatched receipts may exist" flag up to date after a
    /// batch: recounted when the batch deleted some and committed, or when
    /// it rolled back (the rows it deleted are back).
    async fn settle_unmatched(&mut self, committed: bool) {
        if self.unmatched.recheck || !committed {
            self.unmatched.recheck = false;
            self.unmatched.may_exist = receipts::unmatched_receipts_exist(&mut self.conn)
                .await
                .unwrap_or(true);
        }
    }

    /// Connects again when the connection no longer answers, so that a
    /// server restart costs the batches during it, not every later one.
    async fn reconnect_if_lost(&mut self) {
        if self.conn.ping().await.is_ok() {
            return;
        }
        match self.options.connect().await {
            Ok(conn) => {
                tracing::warn!("the journal writer's connection was lost; connected again");
                self.conn = conn;
            }
            Err(error) => {
                tracing::error!(%error, "the journal writer cannot connect again; retried after the next batch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TableGrowth;

    #[test]
    fn statistics_are_refreshed_each_time_the_messages_double() {
        let mut growth = TableGrowth::new(0);
        let mut refreshed_at = Vec::new();
        for recorded in 1..=20_000_u64 {
            if growth.note(1) {
                refreshed_at.push(recorded);
            }
        }
        assert_eq!(refreshed_at, vec![1_000, 2_000, 4_000, 8_000, 16_000]);
    }

    #[test]
    fn a_large_table_waits_for_as_many_new_messages_as_it_holds() {
        let mut growth = TableGrowth::new(1_000_000);
        assert!(!growth.note(999_999));
        assert!(growth.note(1));
        assert!(!growth.note(1_999_999));
    }
}
