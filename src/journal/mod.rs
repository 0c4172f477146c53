//! The durable journal: every citizen's message is recorded here before the
//! carrier or peer is acknowledged, and its reply is an outbox entry with a
//! state (queued → sent / accepted → delivered, or failed / suppressed, or
//! expired when it waited longer than `reply_expiry_secs` for its channel).
//! Writes go through one writer that commits whatever has queued up in a
//! single transaction (group commit), so an fsync is shared by every
//! message that arrived meanwhile. On a SQLite file the writer is a
//! dedicated OS thread with its own synchronous connection (rusqlite,
//! cached prepared statements): a batch's statements run back to back on
//! that thread, instead of each being a round trip to a connection worker
//! thread as an async driver's are, which under load cost more CPU in
//! thread wake-ups than the SQL itself. On PostgreSQL it is an async task
//! with a connection of its own, whose batch costs a fixed number of round
//! trips: a read for the copies new messages may be, then the hot writes
//! as one statement (a `WITH` clause per kind of row), which commits alone
//! when the batch is nothing else. Reads
//! (recovery, due replies, abuse control) use the state pool, one query
//! text for both engines, beside the writer (SQLite's WAL, PostgreSQL's
//! MVCC). The database is opened and migrated by [`crate::db::GatewayDb`].
//!
//! Rooms: [`settings`](JournalSettings) (`[journal]`), `types` (messages,
//! fragments, receipts, reply states and rows), `requests` (one typed
//! request per write, [`WriteError`]), `rules` (the decisions both writers
//! share), `writer` (SQLite's thread, group commit, checkpoints) and its
//! SQL by table family: `messages`, `fragments`, `receipts`, `replies`,
//! `retention`; `postgres` (PostgreSQL's writer and its SQL by table
//! family), `reads` (the reads, on both engines).

mod fragments;
mod messages;
mod postgres;
mod reads;
mod receipts;
mod replies;
mod requests;
mod retention;
mod rules;
mod settings;
mod types;
mod writer;

use tokio::sync::{mpsc, oneshot, watch};

use crate::db::{DbError, GatewayDb, StatePool};
use requests::{
    Accepted, AcksRead, Ask, Exchange, Expire, JoinStale, PartSent, Purge, QueueReply, Request,
    Settle, UpdateReply,
};
use writer::StartError;

pub use receipts::canonical_peer_id;
pub use requests::WriteError;
pub use settings::{Durability, JournalSettings};
pub use types::*;

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
    /// The writer's own connection could not be opened or configured.
    #[error("cannot open the journal writer's connection to {url}: {source}")]
    OpenWriter {
        /// The journal's URL.
        url: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A read failed.
    #[error("journal read failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// A write failed: the operation's statement, or its batch's commit
    /// (then every operation of the batch gets the error).
    #[error("journal write failed: {0}")]
    Write(#[source] WriteError),
    /// The writer has stopped (shutdown).
    #[error("the journal writer has stopped")]
    Stopped,
}

impl From<DbError> for JournalError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Open { url, source } => JournalError::Open { url, source },
            DbError::Migrate(source) => JournalError::Migrate(source),
        }
    }
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    db: GatewayDb,
    writes: mpsc::Sender<Request>,
    /// Closed (its sender dropped) when the writer thread has ended.
    writer_exited: watch::Receiver<()>,
    settings: JournalSettings,
}

impl Journal {
    /// Opens (creating if needed) and migrates the journal's database
    /// ([`GatewayDb::open`]), and starts its writer.
    pub async fn open(settings: JournalSettings) -> Result<Self, JournalError> {
        let db = GatewayDb::open(&settings.url, settings.synchronous).await?;
        Journal::start(db, settings).await
    }

    /// Starts the journal's writer on `db`, the gateway database opened at
    /// `settings.url` (its commits as durable as `db` was opened).
    pub async fn start(db: GatewayDb, settings: JournalSettings) -> Result<Self, JournalError> {
        let window_ms = (settings.redelivery_window_secs as i64).saturating_mul(1000);
        let url = settings.url.clone();
        let started = match (db.pool(), db.path()) {
            (StatePool::Postgres(pool), _) => {
                let mut options = (*pool.connect_options()).clone();
                if !db.node().is_empty() {
                    // The node every message and reply write is checked
                    // against (`postgres::THIS_NODE`).
                    options = options.options([("motcua.node", db.node())]);
                }
                postgres::start(options, window_ms)
                    .await
                    .map_err(|source| JournalError::Open {
                        url: db.describe(),
                        source,
                    })?
            }
            (StatePool::Sqlite(_), Some(path)) => writer::start(path, db.durability(), window_ms)
                .await
                .map_err(|error| match error {
                    StartError::Open(source) => JournalError::OpenWriter { url, source },
                    StartError::Spawn(error) => JournalError::Open {
                        url,
                        source: sqlx::Error::Io(error),
                    },
                    StartError::Stopped => JournalError::Stopped,
                })?,
            (StatePool::Sqlite(_), None) => {
                return Err(JournalError::Open {
                    url: db.describe(),
                    source: sqlx::Error::Configuration(
                        "the journal's SQLite writer needs a file".into(),
                    ),
                })
            }
        };
        Ok(Journal {
            db,
            writes: started.writes,
            writer_exited: started.writer_exited,
            settings,
        })
    }

    /// The pool of the database the journal is in ([`GatewayDb::pool`]).
    pub fn pool(&self) -> &StatePool {
        self.db.pool()
    }

    /// The database the journal is in, which abuse control and the admin
    /// console share.
    pub fn db(&self) -> &GatewayDb {
        &self.db
    }

    /// The settings in force.
    pub fn settings(&self) -> &JournalSettings {
        &self.settings
    }

    /// Records a message durably; returns when it is on disk (per `synchronous`).
    ///
    /// A copy of a recorded message is a redelivery ([`Recorded::Duplicate`]):
    /// with a lasting `peer_ref` (a modem's fingerprint), any message with
    /// that `peer_ref` on the channel; otherwise a message on the same
    /// channel with the same sender, text and `peer_ref` (both without one,
    /// or the same `user_message_reference`), received within
    /// `redelivery_window_secs` before it, whose acknowledgement is not
    /// known to have been read ([`Journal::acknowledgements_read`]). A copy
    /// of a message whose acknowledgement the peer read is a new message:
    /// the citizen asked again.
    pub async fn record(&self, message: NewMessage) -> Result<Recorded, JournalError> {
        self.ask(Request::Record, message).await
    }

    /// Notes that the peer read the acknowledgements of these messages, so
    /// that their copies are new messages from now on. Returns once the
    /// note is queued: anything recorded after it sees it. A note lost to a
    /// crash only makes a later copy count as a redelivery.
    pub async fn acknowledgements_read(&self, message_ids: Vec<i64>) -> Result<(), JournalError> {
        if message_ids.is_empty() {
            return Ok(());
        }
        self.submit(Request::AcksRead(AcksRead::new(message_ids)))
            .await
    }

    /// Records a message that was answered on the spot (a USSD turn, a
    /// Kannel get-url request: the peer cannot wait for the outbox) with its
    /// answer and `state` (sent, or suppressed), in one write, with what the
    /// answer looked up, if anything (`lookup`). A sent answer's `sent_at` is
    /// the time of the write. The outbox never sees it; the message log does.
    pub async fn record_exchange(
        &self,
        message: NewMessage,
        outcome: &str,
        text: &str,
        state: ReplyState,
        lookup: Option<LookupNote>,
    ) -> Result<Recorded, JournalError> {
        self.ask(
            Request::Exchange,
            Exchange {
                message,
                outcome: outcome.to_owned(),
                text: text.to_owned(),
                state,
                lookup,
            },
        )
        .await
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
        self.ask(
            Request::QueueReply,
            QueueReply {
                message_id,
                outcome: outcome.to_owned(),
                text: text.to_owned(),
                state,
            },
        )
        .await
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
        self.ask(
            Request::UpdateReply,
            UpdateReply {
                message_id,
                state,
                peer_ids,
                error,
                next_attempt_at,
            },
        )
        .await
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
        self.ask(
            Request::Accepted,
            Accepted {
                message_id,
                channel: channel.to_owned(),
                peer_ids,
            },
        )
        .await
    }

    /// Records how an attempt to send `reply` ended, in one write: the reply
    /// row is created if the reply was sent before it was ever stored (the
    /// fast path: computed, sent, then recorded once), or updated while it is
    /// still queued. Parts accepted by a carrier are recorded for receipts.
    /// The reply's lookup ([`PendingReply::lookup`]) is written with it, and
    /// `sent_at` the first time the reply is sent or accepted.
    pub async fn settle_reply(
        &self,
        reply: &PendingReply,
        settlement: Settlement,
    ) -> Result<(), JournalError> {
        self.ask(
            Request::Settle,
            Settle {
                message_id: reply.message_id,
                outcome: reply.outcome.clone(),
                text: reply.text.clone(),
                settlement,
                lookup: reply.lookup.clone(),
            },
        )
        .await
    }

    /// Records how far `reply` got on a channel that sends one part at a
    /// time (a GSM modem): before its first part leaves, and after each
    /// part before the next. The reply is stored (still queued, with its
    /// lookup) if it was not, with the reference of its parts, and the part
    /// that left, if any, in `reply_parts` (receipts that came first are
    /// applied). After a crash the outbox resumes it from
    /// [`Journal::recorded_parts`].
    pub async fn record_part_sent(
        &self,
        reply: &PendingReply,
        part: PartRecord,
    ) -> Result<(), JournalError> {
        self.ask(
            Request::PartSent,
            PartSent {
                message_id: reply.message_id,
                outcome: reply.outcome.clone(),
                text: reply.text.clone(),
                lookup: reply.lookup.clone(),
                part,
            },
        )
        .await
    }

    /// Applies a delivery receipt to the reply part it reports on.
    pub async fn apply_receipt(
        &self,
        receipt: ReceiptUpdate,
    ) -> Result<ReceiptApplied, JournalError> {
        self.ask(Request::Receipt, receipt).await
    }

    /// Records one part of a concatenated message durably; joins the
    /// message when it is the last part missing.
    pub async fn record_fragment(
        &self,
        fragment: NewFragment,
    ) -> Result<FragmentRecorded, JournalError> {
        self.ask(Request::Fragment, fragment).await
    }

    /// Joins every concatenated message whose first part arrived before
    /// `received_before` (Unix ms) from the parts it has, missing ones
    /// left out, and records it: the citizen is answered anyway.
    pub async fn join_stale_fragments(
        &self,
        received_before: i64,
    ) -> Result<Vec<StoredMessage>, JournalError> {
        self.ask(Request::JoinStale, JoinStale { received_before })
            .await
    }

    /// Erases texts and phone numbers of messages received before `cutoff`
    /// (Unix ms), keeping channel, times, outcomes and states for statistics.
    /// The dossier code a reply looked up goes with the text (`reply_lookups.code`
    /// set to ''); the agency and procedure it found, which name no one, stay.
    /// Messages whose reply is still queued are kept whole. Returns how many
    /// messages were purged. Runs on the writer like every other write.
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64, JournalError> {
        self.ask(Request::Purge, Purge { cutoff }).await
    }

    /// Records that the messages `message_ids` will get no reply because it
    /// would come too late (`reply_expiry_secs`): a queued reply becomes
    /// `expired` (its text stays until the retention purge), a message
    /// without a reply gets an `expired` one. Replies in any other state
    /// are left alone. Returns how many replies expired.
    pub async fn expire_replies(&self, message_ids: Vec<i64>) -> Result<u64, JournalError> {
        if message_ids.is_empty() {
            return Ok(0);
        }
        self.ask(Request::Expire, Expire { message_ids }).await
    }

    /// Stops the writer once it has committed and answered everything
    /// submitted before, waits for its thread to end (without blocking the
    /// runtime), then closes the read pool. Writes submitted afterwards, by
    /// any handle, fail with [`JournalError::Stopped`].
    pub async fn close(&self) {
        // Fails only when the writer has already stopped.
        let _ = self.writes.send(Request::Close).await;
        let mut exited = self.writer_exited.clone();
        // Never sent to: returns once the thread dropped the sender.
        while exited.changed().await.is_ok() {}
        self.db.close().await;
    }

    /// Hands the writer the request `request` builds around `op` and its
    /// answer channel, and waits for the answer.
    async fn ask<Op, Out>(
        &self,
        request: fn(Ask<Op, Out>) -> Request,
        op: Op,
    ) -> Result<Out, JournalError> {
        let (answer, answered) = oneshot::channel();
        self.submit(request(Ask::new(op, answer))).await?;
        answered.await.map_err(|_| JournalError::Stopped)?
    }

    async fn submit(&self, request: Request) -> Result<(), JournalError> {
        self.writes
            .send(request)
            .await
            .map_err(|_| JournalError::Stopped)
    }
}

#[cfg(test)]
pub(crate) mod tests;
