//! The journal's writes as a writer (SQLite's thread, PostgreSQL's task) receives them: one request
//! type per operation, each carrying its own answer channel typed with what
//! that operation returns ([`Ask`]). Inside a batch a request keeps its own
//! result until the batch's transaction ends; then it is answered with that
//! result, or with the commit's error, which every request of the batch
//! shares.

use tokio::sync::oneshot;

/// Why a write failed, in the writer's engine: the request's own
/// statement, or its batch's begin or commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// On the SQLite writer (rusqlite).
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// On the PostgreSQL writer (sqlx).
    #[error("{0}")]
    Postgres(#[from] sqlx::Error),
}

impl WriteError {
    /// A copy for each request of a batch whose commit failed (neither
    /// driver's error is `Clone`): SQLite's codes and message are kept,
    /// PostgreSQL's message and SQLSTATE are kept in the text.
    fn duplicate(&self) -> WriteError {
        match self {
            WriteError::Sqlite(error) => WriteError::Sqlite(duplicate_sqlite(error)),
            WriteError::Postgres(error) => {
                let text = match error.as_database_error() {
                    Some(db) => format!(
                        "{} (SQLSTATE {})",
                        db.message(),
                        db.code().unwrap_or_default()
                    ),
                    None => error.to_string(),
                };
                WriteError::Postgres(sqlx::Error::Protocol(text))
            }
        }
    }
}

use super::{
    FragmentRecorded, JournalError, LookupNote, NewFragment, NewMessage, PartRecord,
    ReceiptApplied, ReceiptUpdate, Recorded, ReplyState, Settlement, StoredMessage,
};

/// Where a caller waits for its write's result.
pub(super) type Answer<T> = oneshot::Sender<Result<T, JournalError>>;

/// One write (`op`) and the caller waiting for what it produces (`Out`).
pub(super) struct Ask<Op, Out> {
    /// What to write.
    op: Op,
    answer: Answer<Out>,
    /// What the write did inside the batch's transaction, kept until the
    /// commit; `None` until it ran.
    done: Option<Result<Out, WriteError>>,
}

impl<Op, Out> Ask<Op, Out> {
    pub(super) fn new(op: Op, answer: Answer<Out>) -> Self {
        Ask {
            op,
            answer,
            done: None,
        }
    }

    /// Runs the write inside the batch's transaction and keeps its result
    /// (an operation's own failure is its result; the others still commit).
    pub(super) fn run<E: Into<WriteError>>(&mut self, write: impl FnOnce(&Op) -> Result<Out, E>) {
        self.done = Some(write(&self.op).map_err(Into::into));
    }

    /// What to write (for a writer that runs it elsewhere, then [`Ask::keep`]s the result).
    pub(super) fn op(&self) -> &Op {
        &self.op
    }

    /// Keeps what the write did inside the batch's transaction.
    pub(super) fn keep(&mut self, done: Result<Out, WriteError>) {
        self.done = Some(done);
    }

    /// Answers the caller once the batch's transaction ended: with the
    /// write's own result when it committed, with the commit's error when
    /// it did not.
    fn answer(self, commit: Result<(), &WriteError>) {
        let result = match (commit, self.done) {
            (Err(error), _) => Err(JournalError::Write(error.duplicate())),
            (Ok(()), Some(done)) => done.map_err(JournalError::Write),
            // Every request of a committed batch ran: not reached.
            (Ok(()), None) => Err(JournalError::Stopped),
        };
        // The caller may have given up waiting; the write stands.
        let _ = self.answer.send(result);
    }
}

/// A message answered on the spot, with its answer ([`super::Journal::record_exchange`]).
pub(super) struct Exchange {
    pub(super) message: NewMessage,
    pub(super) outcome: String,
    pub(super) text: String,
    pub(super) state: ReplyState,
    pub(super) lookup: Option<LookupNote>,
}

/// The reply a message earned, or that it gets none ([`super::Journal::queue_reply`]).
pub(super) struct QueueReply {
    pub(super) message_id: i64,
    pub(super) outcome: String,
    pub(super) text: String,
    pub(super) state: ReplyState,
}

/// The outcome of a send ([`super::Journal::update_reply`]).
pub(super) struct UpdateReply {
    pub(super) message_id: i64,
    pub(super) state: ReplyState,
    pub(super) peer_ids: Option<String>,
    pub(super) error: Option<String>,
    pub(super) next_attempt_at: Option<i64>,
}

/// Every part of a reply accepted by the carrier ([`super::Journal::reply_accepted`]).
pub(super) struct Accepted {
    pub(super) message_id: i64,
    pub(super) channel: String,
    pub(super) peer_ids: Vec<String>,
}

/// How an attempt to send a reply ended ([`super::Journal::settle_reply`]).
pub(super) struct Settle {
    pub(super) message_id: i64,
    pub(super) outcome: String,
    pub(super) text: String,
    pub(super) settlement: Settlement,
    pub(super) lookup: Option<LookupNote>,
}

/// How far a reply sent part by part got ([`super::Journal::record_part_sent`]).
pub(super) struct PartSent {
    pub(super) message_id: i64,
    pub(super) outcome: String,
    pub(super) text: String,
    pub(super) lookup: Option<LookupNote>,
    pub(super) part: PartRecord,
}

/// Concatenated messages to join from the parts they have
/// ([`super::Journal::join_stale_fragments`]).
pub(super) struct JoinStale {
    pub(super) received_before: i64,
}

/// The retention purge ([`super::Journal::purge_before`]).
pub(super) struct Purge {
    pub(super) cutoff: i64,
}

/// Replies that would come too late ([`super::Journal::expire_replies`]).
pub(super) struct Expire {
    pub(super) message_ids: Vec<i64>,
}

/// Acknowledgements the peer read ([`super::Journal::acknowledgements_read`]):
/// nobody waits; a failure is logged.
pub(super) struct AcksRead {
    pub(super) message_ids: Vec<i64>,
    done: Option<Result<(), WriteError>>,
}

impl AcksRead {
    pub(super) fn new(message_ids: Vec<i64>) -> Self {
        AcksRead {
            message_ids,
            done: None,
        }
    }

    /// Runs the write inside the batch's transaction and keeps its result.
    pub(super) fn run<E: Into<WriteError>>(&mut self, write: impl FnOnce(&[i64]) -> Result<(), E>) {
        self.done = Some(write(&self.message_ids).map_err(Into::into));
    }

    /// Keeps what the write did inside the batch's transaction.
    pub(super) fn keep(&mut self, done: Result<(), WriteError>) {
        self.done = Some(done);
    }

    /// Logs a failure, its own or the commit's.
    fn settle(self, commit: Result<(), &WriteError>) {
        let failed = match (commit, self.done) {
            (Err(error), _) => Some(error.duplicate()),
            (Ok(()), Some(Err(error))) => Some(error),
            (Ok(()), _) => None,
        };
        if let Some(error) = failed {
            tracing::warn!(%error, messages = self.message_ids.len(), "cannot note acknowledgements read; copies of these messages stay redeliveries");
        }
    }
}

/// A write for the writer thread, with its typed answer channel.
pub(super) enum Request {
    Record(Ask<NewMessage, Recorded>),
    Exchange(Ask<Exchange, Recorded>),
    QueueReply(Ask<QueueReply, ()>),
    UpdateReply(Ask<UpdateReply, ()>),
    Accepted(Ask<Accepted, ()>),
    Settle(Ask<Settle, ()>),
    PartSent(Ask<PartSent, ()>),
    Receipt(Ask<ReceiptUpdate, ReceiptApplied>),
    Fragment(Ask<NewFragment, FragmentRecorded>),
    JoinStale(Ask<JoinStale, Vec<StoredMessage>>),
    Purge(Ask<Purge, u64>),
    Expire(Ask<Expire, u64>),
    /// Nobody waits for it.
    AcksRead(AcksRead),
    /// Commit what came before, then stop.
    Close,
}

impl Request {
    /// Keeps a failure as the request's own result (its batch still commits).
    pub(super) fn fail(&mut self, error: WriteError) {
        match self {
            Request::Record(ask) => ask.keep(Err(error)),
            Request::Exchange(ask) => ask.keep(Err(error)),
            Request::QueueReply(ask) => ask.keep(Err(error)),
            Request::UpdateReply(ask) => ask.keep(Err(error)),
            Request::Accepted(ask) => ask.keep(Err(error)),
            Request::Settle(ask) => ask.keep(Err(error)),
            Request::PartSent(ask) => ask.keep(Err(error)),
            Request::Receipt(ask) => ask.keep(Err(error)),
            Request::Fragment(ask) => ask.keep(Err(error)),
            Request::JoinStale(ask) => ask.keep(Err(error)),
            Request::Purge(ask) => ask.keep(Err(error)),
            Request::Expire(ask) => ask.keep(Err(error)),
            Request::AcksRead(note) => note.keep(Err(error)),
            Request::Close => {}
        }
    }

    /// Answers the request's caller once its batch's transaction ended.
    pub(super) fn answer(self, commit: Result<(), &WriteError>) {
        match self {
            Request::Record(ask) => ask.answer(commit),
            Request::Exchange(ask) => ask.answer(commit),
            Request::QueueReply(ask) => ask.answer(commit),
            Request::UpdateReply(ask) => ask.answer(commit),
            Request::Accepted(ask) => ask.answer(commit),
            Request::Settle(ask) => ask.answer(commit),
            Request::PartSent(ask) => ask.answer(commit),
            Request::Receipt(ask) => ask.answer(commit),
            Request::Fragment(ask) => ask.answer(commit),
            Request::JoinStale(ask) => ask.answer(commit),
            Request::Purge(ask) => ask.answer(commit),
            Request::Expire(ask) => ask.answer(commit),
            Request::AcksRead(note) => note.settle(commit),
            Request::Close => {}
        }
    }
}

/// A copy of a SQLite error (`rusqlite::Error` is not `Clone`): its codes
/// and message are kept.
fn duplicate_sqlite(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
