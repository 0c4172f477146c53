//! The durable journal: every citizen's message is recorded here before the
//! carrier or peer is acknowledged, and its reply is an outbox entry with a
//! state (queued → sent / accepted → delivered, or failed / suppressed).
//! Writes go through one writer task that commits whatever has queued up in
//! a single transaction (group commit), so an fsync is shared by every
//! message that arrived meanwhile. A separate SQLite file from the read
//! model: the read model can be rebuilt from the core, the journal cannot.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

/// `[journal]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSettings {
    /// `sqlite://path/to/journal.db`.
    pub url: String,
    /// `full` (every commit reaches the disk before a message is acknowledged),
    /// `normal` (survives a gateway crash, not a power cut), `off` (benchmarks only).
    pub synchronous: Durability,
    /// A message from the same sender with the same text on the same channel
    /// within this many seconds is a redelivery: acknowledged, not answered again.
    pub redelivery_window_secs: u64,
    /// Message texts and phone numbers are erased after this many days;
    /// outcomes and times are kept for statistics.
    pub retention_days: u64,
    /// A reply that could not be sent is retried this many times before it is failed.
    pub max_attempts: u32,
    /// A concatenated message still missing parts this many seconds after
    /// its first part arrived is answered from the parts it has.
    pub reassembly_timeout_secs: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            url: "sqlite://var/journal.db".to_owned(),
            synchronous: Durability::Full,
            redelivery_window_secs: 600,
            retention_days: 90,
            max_attempts: 20,
            reassembly_timeout_secs: 30,
        }
    }
}

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

/// Journal failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal database could not be opened or migrated.
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
    /// A statement or commit failed.
    #[error("journal write failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// The writer task has stopped (shutdown).
    #[error("the journal writer has stopped")]
    Stopped,
}

pub use crate::address::Address;

/// A message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Where it came from: `listener:<account>` or `smsc:<name>`.
    pub channel: String,
    /// The peer's own id for it, when it gives one.
    pub peer_ref: Option<String>,
    /// The citizen.
    pub sender: Address,
    /// The number they texted.
    pub recipient: Address,
    /// The decoded text.
    pub text: String,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new message, with its id.
    New(i64),
    /// A redelivery of the message with this id.
    Duplicate(i64),
}

/// One part of a citizen's concatenated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFragment {
    /// The message as far as this part tells it (`text` is the part's text).
    pub message: NewMessage,
    /// The concatenation reference (8- or 16-bit).
    pub reference: u16,
    /// How many parts the message has.
    pub total: u8,
    /// This part's number, 1-based.
    pub part: u8,
}

/// What recording a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentRecorded {
    /// Kept; the message waits for its other parts. The id is the part's own.
    Waiting(i64),
    /// This part was already recorded (or its message already joined).
    Duplicate,
    /// The last part: the message is joined and recorded.
    Joined(StoredMessage),
}

/// A delivery receipt to apply to the reply part it reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptUpdate {
    /// The channel it arrived on.
    pub channel: String,
    /// Every spelling of the reported id (hex and decimal); the first is the
    /// id as given.
    pub peer_ids: Vec<String>,
    /// The receipt's state (`delivered`, `undeliverable`, …).
    pub state: String,
    /// True when the state will not change any more.
    pub is_final: bool,
    /// True when the part reached the handset.
    pub success: bool,
    /// The receipt's error code, if any.
    pub error: Option<String>,
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptApplied {
    /// It matched a part of this message's reply; the reply's state now.
    Matched {
        /// The answered message.
        message_id: i64,
        /// The reply's state after the receipt.
        reply: ReplyState,
    },
    /// No part has that id (yet): kept until one is recorded.
    Unmatched,
}

/// A reply's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    /// Rendered, not yet acknowledged by the peer or SMSC.
    Queued,
    /// Acknowledged by a bound peer (listener role).
    Sent,
    /// Accepted by the carrier's SMSC (submit_sm_resp).
    Accepted,
    /// Delivered to the handset (delivery receipt).
    Delivered,
    /// Given up.
    Failed,
    /// Deliberately not answered (not a phone number, rate limited, …).
    Suppressed,
}

impl ReplyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Queued => "queued",
            ReplyState::Sent => "sent",
            ReplyState::Accepted => "accepted",
            ReplyState::Delivered => "delivered",
            ReplyState::Failed => "failed",
            ReplyState::Suppressed => "suppressed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ReplyState::Queued,
            "sent" => ReplyState::Sent,
            "accepted" => ReplyState::Accepted,
            "delivered" => ReplyState::Delivered,
            "failed" => ReplyState::Failed,
            "suppressed" => ReplyState::Suppressed,
            _ => return None,
        })
    }
}

/// A recorded message, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: i64,
    /// What was recorded.
    pub message: NewMessage,
}

/// A reply waiting to be sent, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReply {
    /// The message it answers.
    pub message_id: i64,
    /// The channel it goes out on.
    pub channel: String,
    /// The citizen.
    pub to: Address,
    /// Our number.
    pub from: Address,
    /// The reply text.
    pub text: String,
    /// What the message earned (found, not_found, help, …).
    pub outcome: String,
    /// Tries so far.
    pub attempts: u32,
    /// True once the reply is in the journal (a fresh reply is sent first
    /// and recorded with the outcome of that first attempt).
    pub stored: bool,
}

/// Where one attempt to send a reply ended, to record in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The state reached: sent / accepted, failed, or queued again.
    pub state: ReplyState,
    /// The channel it left on and the id the peer gave each part (accepted or sent).
    pub left_on: Option<(String, Vec<String>)>,
    /// Why the attempt failed.
    pub error: Option<String>,
    /// When to try again (queued).
    pub next_attempt_at: Option<i64>,
    /// Whether this attempt counts toward `max_attempts` (waiting for a
    /// channel to come up does not).
    pub counts: bool,
}

enum Op {
    Record(NewMessage, oneshot::Sender<Result<Recorded, JournalError>>),
    QueueReply {
        message_id: i64,
        outcome: String,
        text: String,
        state: ReplyState,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Purge {
        cutoff: i64,
        done: oneshot::Sender<Result<u64, JournalError>>,
    },
    Update {
        message_id: i64,
        state: ReplyState,
        peer_ids: Option<String>,
        error: Option<String>,
        next_attempt_at: Option<i64>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Accepted {
        message_id: i64,
        channel: String,
        peer_ids: Vec<String>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Settle {
        message_id: i64,
        outcome: String,
        text: String,
        settlement: Settlement,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Receipt(
        ReceiptUpdate,
        oneshot::Sender<Result<ReceiptApplied, JournalError>>,
    ),
    Fragment(
        NewFragment,
        oneshot::Sender<Result<FragmentRecorded, JournalError>>,
    ),
    JoinStale {
        received_before: i64,
        done: oneshot::Sender<Result<Vec<StoredMessage>, JournalError>>,
    },
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    pool: SqlitePool,
    writes: mpsc::Sender<Op>,
    settings: JournalSettings,
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Journal {
    /// Opens (creating if needed) and migrates the journal, and starts its writer.
    pub async fn open(settings: JournalSettings) -> Result<Self, JournalError> {
        let url = settings.url.clone();
        let open_err = |source| JournalError::Open {
            url: url.clone(),
            source,
        };
        let synchronous = match settings.synchronous {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Off => SqliteSynchronous::Off,
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let filename = options.get_filename().to_path_buf();
        let in_memory = filename.as_os_str() == ":memory:";
        if !in_memory {
            if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/journal").run(&pool).await?;
        // The writer has a connection of its own, so that readers (recovery,
        // abuse control) never make a commit wait for a pooled connection.
        let writer_pool = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(open_err)?
        };
        let (writes, queue) = mpsc::channel(4096);
        tokio::spawn(write_loop(writer_pool, queue, settings.clone()));
        Ok(Journal {
            pool,
            writes,
            settings,
        })
    }

    /// The journal's connection pool (for tables of other rooms that must survive restarts).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The settings in force.
    pub fn settings(&self) -> &JournalSettings {
        &self.settings
    }

    /// Records a message durably; returns when it is on disk (per `synchronous`).
    pub async fn record(&self, message: NewMessage) -> Result<Recorded, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Record(message, done)).await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Stores the reply a message earned (`Queued`), or that it gets none
    /// (`Suppressed`, with the reason as outcome).
    pub async fn queue_reply(
        &self,
        message_id: i64,
        outcome: &str,
        text: &str,
        state: ReplyState,
    ) -> Result<(), JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::QueueReply {
            message_id,
            outcome: outcome.to_owned(),
            text: text.to_owned(),
            state,
            done,
        })
        .await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Records the outcome of a send: a final state with the peer's ids, or a
    /// retry at `next_attempt_at` with the error.
    pub async fn update_reply(
        &self,
        message_id: i64,
        state: ReplyState,
        peer_ids: Option<String>,
        error: Option<String>,
        next_attempt_at: Option<i64>,
    ) -> Result<(), JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Update {
            message_id,
            state,
            peer_ids,
            error,
            next_attempt_at,
            done,
        })
        .await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Records that the carrier accepted every part of a reply, with the id
    /// it gave each (in part order) on `channel`; receipts that came first
    /// are applied now.
    pub async fn reply_accepted(
        &self,
        message_id: i64,
        channel: &str,
        peer_ids: Vec<String>,
    ) -> Result<(), JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Accepted {
            message_id,
            channel: channel.to_owned(),
            peer_ids,
            done,
        })
        .await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Records how an attempt to send `reply` ended, in one write: the reply
    /// row is created if the reply was sent before it was ever stored (the
    /// fast path: computed, sent, then recorded once), or updated while it is
    /// still queued. Parts accepted by a carrier are recorded for receipts.
    pub async fn settle_reply(
        &self,
        reply: &PendingReply,
        settlement: Settlement,
    ) -> Result<(), JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Settle {
            message_id: reply.message_id,
            outcome: reply.outcome.clone(),
            text: reply.text.clone(),
            settlement,
            done,
        })
        .await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Applies a delivery receipt to the reply part it reports on.
    pub async fn apply_receipt(
        &self,
        receipt: ReceiptUpdate,
    ) -> Result<ReceiptApplied, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Receipt(receipt, done)).await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Records one part of a concatenated message durably; joins the
    /// message when it is the last part missing.
    pub async fn record_fragment(
        &self,
        fragment: NewFragment,
    ) -> Result<FragmentRecorded, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Fragment(fragment, done)).await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Joins every concatenated message whose first part arrived before
    /// `received_before` (Unix ms) from the parts it has, missing ones
    /// left out, and records it: the citizen is answered anyway.
    pub async fn join_stale_fragments(
        &self,
        received_before: i64,
    ) -> Result<Vec<StoredMessage>, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::JoinStale {
            received_before,
            done,
        })
        .await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// The receipt states of a reply's parts, in part order.
    pub async fn part_states(&self, message_id: i64) -> Result<Vec<String>, JournalError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM reply_parts WHERE message_id = ? ORDER BY part")
                .bind(message_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn submit(&self, op: Op) -> Result<(), JournalError> {
        self.writes
            .send(op)
            .await
            .map_err(|_| JournalError::Stopped)
    }

    /// Messages recorded but not yet given a reply (after a crash), oldest first.
    pub async fn unanswered(&self) -> Result<Vec<StoredMessage>, JournalError> {
        let rows = sqlx::query(
            "SELECT m.* FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE r.message_id IS NULL AND m.purged = 0 ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_message).collect()
    }

    /// Queued replies due at `now` (Unix ms) on `channel` (or every channel), oldest first.
    pub async fn due_replies(
        &self,
        now: i64,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PendingReply>, JournalError> {
        let rows = sqlx::query(
            "SELECT r.message_id, r.text AS reply_text, r.outcome, r.attempts, m.channel, m.sender, \
             m.sender_ton, m.sender_npi, m.recipient, m.recipient_ton, m.recipient_npi \
             FROM replies r JOIN messages m ON m.id = r.message_id \
             WHERE r.state = 'queued' AND r.next_attempt_at <= ? AND (? IS NULL OR m.channel = ?) \
             ORDER BY r.message_id LIMIT ?",
        )
        .bind(now)
        .bind(channel)
        .bind(channel)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingReply {
                    message_id: row.try_get("message_id")?,
                    channel: row.try_get("channel")?,
                    to: address(row, "sender")?,
                    from: address(row, "recipient")?,
                    text: row.try_get("reply_text")?,
                    outcome: row.try_get("outcome")?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    stored: true,
                })
            })
            .collect()
    }

    /// The state of a message's reply, if it has one.
    pub async fn reply_state(&self, message_id: i64) -> Result<Option<ReplyState>, JournalError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM replies WHERE message_id = ?")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(state.as_deref().and_then(ReplyState::parse))
    }

    /// Erases texts and phone numbers of messages received before `cutoff`
    /// (Unix ms), keeping channel, times, outcomes and states for statistics.
    /// Messages whose reply is still queued are kept whole. Returns how many
    /// messages were purged. Runs on the writer like every other write.
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(Op::Purge { cutoff, done }).await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    /// Closes the pool after the writer has finished what it was given.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The address stored in the columns `<column>`, `<column>_ton`, `<column>_npi`.
fn address(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Address, sqlx::Error> {
    Ok(Address {
        addr: row.try_get(column)?,
        ton: row.try_get::<i64, _>(format!("{column}_ton").as_str())? as u8,
        npi: row.try_get::<i64, _>(format!("{column}_npi").as_str())? as u8,
    })
}

fn row_to_message(row: &sqlx::sqlite::SqliteRow) -> Result<StoredMessage, JournalError> {
    Ok(StoredMessage {
        id: row.try_get("id")?,
        message: NewMessage {
            channel: row.try_get("channel")?,
            peer_ref: row.try_get("peer_ref")?,
            sender: address(row, "sender")?,
            recipient: address(row, "recipient")?,
            text: row.try_get("text")?,
            received_at: row.try_get("received_at")?,
        },
    })
}

/// The single writer: takes every queued operation, applies them in one
/// transaction, commits, then answers each.
async fn write_loop(pool: SqlitePool, mut queue: mpsc::Receiver<Op>, settings: JournalSettings) {
    let window_ms = (settings.redelivery_window_secs as i64).saturating_mul(1000);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match apply(&pool, &mut batch, window_ms).await {
            Ok(results) => {
                for (op, result) in batch.drain(..).zip(results) {
                    answer(op, result);
                }
            }
            Err(error) => {
                tracing::error!(%error, operations = batch.len(), "journal commit failed; the messages are not acknowledged");
                let text = error.to_string();
                for op in batch.drain(..) {
                    answer(op, Err(sqlx::Error::Protocol(text.clone())));
                }
            }
        }
    }
}

/// What one operation produced inside the batch.
enum Produced {
    Recorded(Recorded),
    Purged(u64),
    Receipt(ReceiptApplied),
    Fragment(FragmentRecorded),
    Joined(Vec<StoredMessage>),
    Done,
}

type OpResult = Result<Produced, sqlx::Error>;

fn answer(op: Op, result: OpResult) {
    match op {
        Op::Record(_, done) => {
            let _ = done.send(match result {
                Ok(Produced::Recorded(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Sql(e)),
            });
        }
        Op::Purge { done, .. } => {
            let _ = done.send(match result {
                Ok(Produced::Purged(n)) => Ok(n),
                Ok(_) => Ok(0),
                Err(e) => Err(JournalError::Sql(e)),
            });
        }
        Op::QueueReply { done, .. }
        | Op::Update { done, .. }
        | Op::Accepted { done, .. }
        | Op::Settle { done, .. } => {
            let _ = done.send(result.map(|_| ()).map_err(JournalError::Sql));
        }
        Op::Receipt(_, done) => {
            let _ = done.send(match result {
                Ok(Produced::Receipt(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Sql(e)),
            });
        }
        Op::Fragment(_, done) => {
            let _ = done.send(match result {
                Ok(Produced::Fragment(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Sql(e)),
            });
        }
        Op::JoinStale { done, .. } => {
            let _ = done.send(match result {
                Ok(Produced::Joined(r)) => Ok(r),
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(JournalError::Sql(e)),
            });
        }
    }
}

async fn apply(
    pool: &SqlitePool,
    batch: &mut [Op],
    window_ms: i64,
) -> Result<Vec<OpResult>, sqlx::Error> {
    // IMMEDIATE: take the write lock up front, so the reads inside (redelivery
    // checks) can never be invalidated by another writer's commit.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    let now = now_ms();
    for op in batch.iter() {
        let result = match op {
            Op::Record(m, _) => record(&mut tx, m, window_ms).await.map(Produced::Recorded),
            Op::Purge { cutoff, .. } => purge(&mut tx, *cutoff).await.map(Produced::Purged),
            Op::Accepted {
                message_id,
                channel,
                peer_ids,
                ..
            } => accepted(&mut tx, *message_id, channel, peer_ids, now)
                .await
                .map(|_| Produced::Done),
            Op::Settle {
                message_id,
                outcome,
                text,
                settlement,
                ..
            } => settle(&mut tx, *message_id, outcome, text, settlement, now)
                .await
                .map(|_| Produced::Done),
            Op::Receipt(receipt, _) => apply_receipt(&mut tx, receipt, now)
                .await
                .map(Produced::Receipt),
            Op::Fragment(fragment, _) => record_fragment(&mut tx, fragment, window_ms, now)
                .await
                .map(Produced::Fragment),
            Op::JoinStale {
                received_before, ..
            } => join_stale(&mut tx, *received_before, window_ms, now)
                .await
                .map(Produced::Joined),
            Op::QueueReply {
                message_id,
                outcome,
                text,
                state,
                ..
            } => sqlx::query(
                "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message_id)
            .bind(outcome)
            .bind(text)
            .bind(state.as_str())
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map(|_| Produced::Done),
            Op::Update {
                message_id,
                state,
                peer_ids,
                error,
                next_attempt_at,
                ..
            } => sqlx::query(
                "UPDATE replies SET state = ?, peer_ids = COALESCE(?, peer_ids), last_error = ?, \
                 attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ? \
                 WHERE message_id = ?",
            )
            .bind(state.as_str())
            .bind(peer_ids)
            .bind(error)
            .bind(next_attempt_at)
            .bind(now)
            .bind(message_id)
            .execute(&mut *tx)
            .await
            .map(|_| Produced::Done),
        };
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// A peer id as stored: trimmed, lowercased, leading zeros stripped.
pub fn canonical_peer_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    let stripped = id.trim_start_matches('0');
    if stripped.is_empty() && !id.is_empty() {
        "0".to_owned()
    } else {
        stripped.to_owned()
    }
}

async fn settle(
    tx: &mut Tx<'_>,
    message_id: i64,
    outcome: &str,
    text: &str,
    settlement: &Settlement,
    now: i64,
) -> Result<(), sqlx::Error> {
    let peer_ids = settlement.left_on.as_ref().map(|(_, ids)| ids.join(" "));
    sqlx::query(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         last_error, peer_ids, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, \
         attempts = replies.attempts + excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
         last_error = excluded.last_error, peer_ids = coalesce(excluded.peer_ids, replies.peer_ids), \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )
    .bind(message_id)
    .bind(outcome)
    .bind(text)
    .bind(settlement.state.as_str())
    .bind(i64::from(settlement.counts))
    .bind(settlement.next_attempt_at.unwrap_or(now))
    .bind(&settlement.error)
    .bind(peer_ids)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if let (ReplyState::Accepted, Some((channel, ids))) = (settlement.state, &settlement.left_on) {
        record_parts(tx, message_id, channel, ids, now).await?;
    }
    Ok(())
}

async fn accepted(
    tx: &mut Tx<'_>,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE replies SET state = 'accepted', peer_ids = ?, last_error = NULL, \
         attempts = attempts + 1, updated_at = ? WHERE message_id = ? AND state = 'queued'",
    )
    .bind(peer_ids.join(" "))
    .bind(now)
    .bind(message_id)
    .execute(&mut **tx)
    .await?;
    record_parts(tx, message_id, channel, peer_ids, now).await
}

/// Records the parts of a reply accepted by a carrier, applying receipts
/// that arrived before them.
async fn record_parts(
    tx: &mut Tx<'_>,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    for (index, id) in peer_ids.iter().enumerate() {
        let peer_id = canonical_peer_id(id);
        sqlx::query(
            "INSERT INTO reply_parts (message_id, part, channel, peer_id, state, updated_at) \
             VALUES (?, ?, ?, ?, 'accepted', ?) ON CONFLICT (message_id, part) DO NOTHING",
        )
        .bind(message_id)
        .bind(index as i64 + 1)
        .bind(channel)
        .bind(&peer_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // A receipt that overtook the submit_sm_resp.
        let early: Option<(i64, String, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT receipt, state, final, success, error FROM unmatched_receipts \
             WHERE channel = ? AND peer_id = ? ORDER BY final DESC, received_at DESC LIMIT 1",
        )
        .bind(channel)
        .bind(&peer_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((receipt, state, is_final, success, error)) = early {
            sqlx::query("DELETE FROM unmatched_receipts WHERE receipt = ?")
                .bind(receipt)
                .execute(&mut **tx)
                .await?;
            set_part_state(
                tx,
                message_id,
                index as i64 + 1,
                &state,
                is_final != 0,
                success != 0,
                error.as_deref(),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn set_part_state(
    tx: &mut Tx<'_>,
    message_id: i64,
    part: i64,
    state: &str,
    is_final: bool,
    success: bool,
    error: Option<&str>,
    now: i64,
) -> Result<ReplyState, sqlx::Error> {
    let stored = if is_final && !success {
        format!("failed:{state}")
    } else if is_final {
        format!("done:{state}")
    } else {
        state.to_owned()
    };
    sqlx::query(
        "UPDATE reply_parts SET state = ?, error = ?, updated_at = ? \
         WHERE message_id = ? AND part = ? AND state NOT LIKE 'done:%' AND state NOT LIKE 'failed:%'",
    )
    .bind(&stored)
    .bind(error)
    .bind(now)
    .bind(message_id)
    .bind(part)
    .execute(&mut **tx)
    .await?;
    let (parts, done, failed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), \
                coalesce(sum(state LIKE 'done:%'), 0), \
                coalesce(sum(state LIKE 'failed:%'), 0) \
         FROM reply_parts WHERE message_id = ?",
    )
    .bind(message_id)
    .fetch_one(&mut **tx)
    .await?;
    let new_state = if failed > 0 {
        Some(ReplyState::Failed)
    } else if done == parts {
        Some(ReplyState::Delivered)
    } else {
        None
    };
    if let Some(new_state) = new_state {
        let error = (new_state == ReplyState::Failed).then(|| {
            format!(
                "part {part}: {state}{}",
                error.map(|e| format!(" (err {e})")).unwrap_or_default()
            )
        });
        sqlx::query(
            "UPDATE replies SET state = ?, last_error = coalesce(?, last_error), updated_at = ? \
             WHERE message_id = ? AND state = 'accepted'",
        )
        .bind(new_state.as_str())
        .bind(error)
        .bind(now)
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM replies WHERE message_id = ?")
            .bind(message_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(state
        .as_deref()
        .and_then(ReplyState::parse)
        .unwrap_or(ReplyState::Accepted))
}

async fn apply_receipt(
    tx: &mut Tx<'_>,
    receipt: &ReceiptUpdate,
    now: i64,
) -> Result<ReceiptApplied, sqlx::Error> {
    let spellings: Vec<String> = receipt
        .peer_ids
        .iter()
        .map(|id| canonical_peer_id(id))
        .collect();
    let mut found: Option<(i64, i64)> = None;
    for id in &spellings {
        let hit: Option<(i64, i64)> = sqlx::query_as(
            "SELECT message_id, part FROM reply_parts WHERE channel = ? AND peer_id = ? \
             ORDER BY message_id DESC LIMIT 1",
        )
        .bind(&receipt.channel)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        if hit.is_some() {
            found = hit;
            break;
        }
    }
    let Some((message_id, part)) = found else {
        let group: i64 =
            sqlx::query_scalar("SELECT coalesce(max(receipt), 0) + 1 FROM unmatched_receipts")
                .fetch_one(&mut **tx)
                .await?;
        for id in &spellings {
            sqlx::query(
                "INSERT INTO unmatched_receipts (receipt, channel, peer_id, state, final, success, error, received_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(group)
            .bind(&receipt.channel)
            .bind(id)
            .bind(&receipt.state)
            .bind(i64::from(receipt.is_final))
            .bind(i64::from(receipt.success))
            .bind(&receipt.error)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        return Ok(ReceiptApplied::Unmatched);
    };
    let reply = set_part_state(
        tx,
        message_id,
        part,
        &receipt.state,
        receipt.is_final,
        receipt.success,
        receipt.error.as_deref(),
        now,
    )
    .await?;
    Ok(ReceiptApplied::Matched { message_id, reply })
}

async fn record_fragment(
    tx: &mut Tx<'_>,
    f: &NewFragment,
    window_ms: i64,
    now: i64,
) -> Result<FragmentRecorded, sqlx::Error> {
    let m = &f.message;
    let joined: Option<i64> = sqlx::query_scalar(
        "SELECT message_id FROM fragments_joined WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ? AND joined_at >= ?",
    )
    .bind(&m.channel)
    .bind(&m.sender.addr)
    .bind(&m.recipient.addr)
    .bind(i64::from(f.reference))
    .bind(i64::from(f.total))
    .bind(now.saturating_sub(window_ms))
    .fetch_optional(&mut **tx)
    .await?;
    if joined.is_some() {
        return Ok(FragmentRecorded::Duplicate);
    }
    let inserted = sqlx::query(
        "INSERT INTO fragments (channel, sender, sender_ton, sender_npi, recipient, recipient_ton, \
         recipient_npi, reference, total, part, text, received_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&m.channel)
    .bind(&m.sender.addr)
    .bind(i64::from(m.sender.ton))
    .bind(i64::from(m.sender.npi))
    .bind(&m.recipient.addr)
    .bind(i64::from(m.recipient.ton))
    .bind(i64::from(m.recipient.npi))
    .bind(i64::from(f.reference))
    .bind(i64::from(f.total))
    .bind(i64::from(f.part))
    .bind(&m.text)
    .bind(m.received_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(FragmentRecorded::Duplicate);
    }
    let part_id = inserted.last_insert_rowid();
    let have: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ?",
    )
    .bind(&m.channel)
    .bind(&m.sender.addr)
    .bind(&m.recipient.addr)
    .bind(i64::from(f.reference))
    .bind(i64::from(f.total))
    .fetch_one(&mut **tx)
    .await?;
    if have < i64::from(f.total) {
        return Ok(FragmentRecorded::Waiting(part_id));
    }
    let key = GroupKey {
        channel: m.channel.clone(),
        sender: m.sender.addr.clone(),
        recipient: m.recipient.addr.clone(),
        reference: i64::from(f.reference),
        total: i64::from(f.total),
    };
    match join_group(tx, &key, window_ms, now).await? {
        Some(stored) => Ok(FragmentRecorded::Joined(stored)),
        None => Ok(FragmentRecorded::Duplicate),
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct GroupKey {
    channel: String,
    sender: String,
    recipient: String,
    reference: i64,
    total: i64,
}

/// Joins a group's parts (in order) into a message, records it, and
/// remembers the group as joined. `None` when the joined text is a
/// redelivery of a message already recorded.
async fn join_group(
    tx: &mut Tx<'_>,
    key: &GroupKey,
    window_ms: i64,
    now: i64,
) -> Result<Option<StoredMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ? ORDER BY part",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .fetch_all(&mut **tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut text = String::new();
    for row in &rows {
        text.push_str(row.try_get::<&str, _>("text")?);
    }
    let message = NewMessage {
        channel: key.channel.clone(),
        peer_ref: None,
        sender: address(first, "sender")?,
        recipient: address(first, "recipient")?,
        text,
        received_at: rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("received_at").ok())
            .max()
            .unwrap_or(now),
    };
    sqlx::query(
        "DELETE FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ?",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .execute(&mut **tx)
    .await?;
    let recorded = record(tx, &message, window_ms).await?;
    let id = match recorded {
        Recorded::New(id) | Recorded::Duplicate(id) => id,
    };
    sqlx::query(
        "INSERT INTO fragments_joined (channel, sender, recipient, reference, total, message_id, joined_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET message_id = excluded.message_id, joined_at = excluded.joined_at",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(match recorded {
        Recorded::New(id) => Some(StoredMessage { id, message }),
        Recorded::Duplicate(_) => None,
    })
}

async fn join_stale(
    tx: &mut Tx<'_>,
    received_before: i64,
    window_ms: i64,
    now: i64,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let groups: Vec<GroupKey> = sqlx::query_as(
        "SELECT channel, sender, recipient, reference, total FROM fragments \
         GROUP BY channel, sender, recipient, reference, total HAVING min(received_at) < ? LIMIT 1000",
    )
    .bind(received_before)
    .fetch_all(&mut **tx)
    .await?;
    let mut joined = Vec::new();
    for key in groups {
        if let Some(stored) = join_group(tx, &key, window_ms, now).await? {
            joined.push(stored);
        }
    }
    sqlx::query("DELETE FROM fragments_joined WHERE joined_at < ?")
        .bind(now.saturating_sub(window_ms))
        .execute(&mut **tx)
        .await?;
    Ok(joined)
}

async fn purge(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    cutoff: i64,
) -> Result<u64, sqlx::Error> {
    // Receipts for ids never given (or long forgotten) go with the retention.
    sqlx::query("DELETE FROM unmatched_receipts WHERE received_at < ?")
        .bind(cutoff)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE replies SET text = '' WHERE message_id IN \
         (SELECT id FROM messages WHERE received_at < ? AND purged = 0) \
         AND state <> 'queued'",
    )
    .bind(cutoff)
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query(
        "UPDATE messages SET text = '', sender = '', recipient = '', peer_ref = NULL, purged = 1 \
         WHERE received_at < ? AND purged = 0 \
         AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.message_id = messages.id AND r.state = 'queued')",
    )
    .bind(cutoff)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    m: &NewMessage,
    window_ms: i64,
) -> Result<Recorded, sqlx::Error> {
    let existing: Option<i64> = if let Some(peer_ref) = &m.peer_ref {
        sqlx::query_scalar("SELECT id FROM messages WHERE channel = ? AND peer_ref = ? LIMIT 1")
            .bind(&m.channel)
            .bind(peer_ref)
            .fetch_optional(&mut **tx)
            .await?
    } else {
        sqlx::query_scalar(
            "SELECT id FROM messages WHERE channel = ? AND sender = ? AND text = ? \
             AND received_at >= ? ORDER BY id DESC LIMIT 1",
        )
        .bind(&m.channel)
        .bind(&m.sender.addr)
        .bind(&m.text)
        .bind(m.received_at.saturating_sub(window_ms))
        .fetch_optional(&mut **tx)
        .await?
    };
    if let Some(id) = existing {
        return Ok(Recorded::Duplicate(id));
    }
    let id = sqlx::query(
        "INSERT INTO messages (channel, peer_ref, sender, sender_ton, sender_npi, recipient, \
         recipient_ton, recipient_npi, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&m.channel)
    .bind(&m.peer_ref)
    .bind(&m.sender.addr)
    .bind(i64::from(m.sender.ton))
    .bind(i64::from(m.sender.npi))
    .bind(&m.recipient.addr)
    .bind(i64::from(m.recipient.ton))
    .bind(i64::from(m.recipient.npi))
    .bind(&m.text)
    .bind(m.received_at)
    .execute(&mut **tx)
    .await?
    .last_insert_rowid();
    Ok(Recorded::New(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: &str, text: &str, at: i64) -> NewMessage {
        NewMessage {
            channel: "listener:demo".into(),
            peer_ref: None,
            sender: Address {
                addr: sender.into(),
                ton: 1,
                npi: 1,
            },
            recipient: Address {
                addr: "8058".into(),
                ton: 0,
                npi: 0,
            },
            text: text.into(),
            received_at: at,
        }
    }

    async fn journal(dir: &tempfile::TempDir) -> Journal {
        Journal::open(JournalSettings {
            url: format!("sqlite://{}/journal.db", dir.path().display()),
            ..JournalSettings::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn records_survive_reopening_and_unanswered_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let Recorded::New(a) = j
            .record(message("84912345678", "TC 1", 1_000))
            .await
            .unwrap()
        else {
            panic!("new")
        };
        let Recorded::New(b) = j
            .record(message("84912345679", "TC 2", 1_000))
            .await
            .unwrap()
        else {
            panic!("new")
        };
        j.queue_reply(a, "found", "reply a", ReplyState::Queued)
            .await
            .unwrap();
        j.close().await;
        let j = journal(&dir).await;
        let unanswered = j.unanswered().await.unwrap();
        assert_eq!(unanswered.len(), 1);
        assert_eq!(unanswered[0].id, b);
        let due = j.due_replies(now_ms(), None, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].text, "reply a");
        assert_eq!(due[0].to.addr, "84912345678");
        assert_eq!(due[0].from.addr, "8058");
        j.update_reply(a, ReplyState::Sent, Some("x".into()), None, None)
            .await
            .unwrap();
        assert_eq!(j.reply_state(a).await.unwrap(), Some(ReplyState::Sent));
        assert!(j.due_replies(now_ms(), None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn redeliveries_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let first = j
            .record(message("84912345678", "TC 1", 1_000_000))
            .await
            .unwrap();
        let Recorded::New(id) = first else { panic!() };
        assert_eq!(
            j.record(message("84912345678", "TC 1", 1_200_000))
                .await
                .unwrap(),
            Recorded::Duplicate(id)
        );
        // Outside the window it is a new message.
        assert!(matches!(
            j.record(message("84912345678", "TC 1", 1_000_000 + 601_000))
                .await
                .unwrap(),
            Recorded::New(_)
        ));
        let mut with_ref = message("84900000000", "A", 5);
        with_ref.peer_ref = Some("peer-7".into());
        let Recorded::New(r) = j.record(with_ref.clone()).await.unwrap() else {
            panic!()
        };
        with_ref.text = "different text, same peer id".into();
        assert_eq!(j.record(with_ref).await.unwrap(), Recorded::Duplicate(r));
    }

    #[tokio::test]
    async fn concurrent_records_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let mut tasks = Vec::new();
        for i in 0..500 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                j.record(message(&format!("849{i:08}"), "TC", 1))
                    .await
                    .unwrap()
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let Recorded::New(id) = t.await.unwrap() else {
                panic!()
            };
            ids.insert(id);
        }
        assert_eq!(ids.len(), 500);
    }

    #[tokio::test]
    async fn purge_erases_texts_and_numbers_but_keeps_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let Recorded::New(old) = j
            .record(message("84912345678", "TC old", 1_000))
            .await
            .unwrap()
        else {
            panic!()
        };
        let Recorded::New(new) = j
            .record(message("84912345678", "TC new", now_ms()))
            .await
            .unwrap()
        else {
            panic!()
        };
        j.queue_reply(old, "found", "reply", ReplyState::Queued)
            .await
            .unwrap();
        j.update_reply(old, ReplyState::Sent, None, None, None)
            .await
            .unwrap();
        assert_eq!(j.purge_before(now_ms() - 1000).await.unwrap(), 1);
        let row = sqlx::query("SELECT sender, text, purged FROM messages WHERE id = ?")
            .bind(old)
            .fetch_one(j.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("sender"), "");
        assert_eq!(row.get::<String, _>("text"), "");
        let outcome: String =
            sqlx::query_scalar("SELECT outcome FROM replies WHERE message_id = ?")
                .bind(old)
                .fetch_one(j.pool())
                .await
                .unwrap();
        assert_eq!(outcome, "found");
        let kept: String = sqlx::query_scalar("SELECT text FROM messages WHERE id = ?")
            .bind(new)
            .fetch_one(j.pool())
            .await
            .unwrap();
        assert_eq!(kept, "TC new");
    }

    #[tokio::test]
    async fn a_receipt_that_overtakes_the_submit_response_is_applied_later() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let Recorded::New(id) = j
            .record(message("84912345678", "TC 1", now_ms()))
            .await
            .unwrap()
        else {
            panic!("new")
        };
        j.queue_reply(id, "found", "reply", ReplyState::Queued)
            .await
            .unwrap();
        let receipt = |id: &str, state: &str, success| ReceiptUpdate {
            channel: "smsc:c".into(),
            peer_ids: crate::smpp::receipt::id_spellings(id),
            state: state.into(),
            is_final: true,
            success,
            error: None,
        };
        // Receipt for part 2 (hex 0x2a = 42) before the parts are recorded.
        assert_eq!(
            j.apply_receipt(receipt("42", "delivered", true))
                .await
                .unwrap(),
            ReceiptApplied::Unmatched
        );
        j.reply_accepted(id, "smsc:c", vec!["0029".into(), "2A".into()])
            .await
            .unwrap();
        assert_eq!(j.reply_state(id).await.unwrap(), Some(ReplyState::Accepted));
        assert_eq!(
            j.apply_receipt(receipt("41", "delivered", true))
                .await
                .unwrap(),
            ReceiptApplied::Matched {
                message_id: id,
                reply: ReplyState::Delivered
            }
        );
        assert_eq!(
            j.part_states(id).await.unwrap(),
            vec!["done:delivered", "done:delivered"]
        );
    }

    #[tokio::test]
    async fn parts_of_a_message_join_once_and_stale_ones_join_anyway() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let now = now_ms();
        let part = |n: u8, text: &str, reference: u16| NewFragment {
            message: message("84912345678", text, now),
            reference,
            total: 3,
            part: n,
        };
        assert!(matches!(
            j.record_fragment(part(3, "C", 9)).await.unwrap(),
            FragmentRecorded::Waiting(_)
        ));
        assert!(matches!(
            j.record_fragment(part(1, "A", 9)).await.unwrap(),
            FragmentRecorded::Waiting(_)
        ));
        assert_eq!(
            j.record_fragment(part(1, "A", 9)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        let FragmentRecorded::Joined(stored) = j.record_fragment(part(2, "B", 9)).await.unwrap()
        else {
            panic!("the last part joins the message")
        };
        assert_eq!(stored.message.text, "ABC");
        // Delivered again after joining: not a new message.
        assert_eq!(
            j.record_fragment(part(2, "B", 9)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        // A message whose part 2 never comes is joined after the timeout.
        j.record_fragment(part(1, "X", 10)).await.unwrap();
        j.record_fragment(part(3, "Z", 10)).await.unwrap();
        assert!(j.join_stale_fragments(now - 1).await.unwrap().is_empty());
        let joined = j.join_stale_fragments(now + 1).await.unwrap();
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].message.text, "XZ");
    }
}
