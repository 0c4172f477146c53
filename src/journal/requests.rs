//! The journal's writes as the writer thread receives them: one request
//! type per operation, each carrying its own answer channel typed with what
//! that operation returns ([`Ask`]). Inside a batch a request keeps its own
//! result until the batch's transaction ends; then it is answered with that
//! result, or with the commit's error, which every request of the batch
//! shares.

use tokio::sync::oneshot;

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
    done: Option<rusqlite::Result<Out>>,
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
    pub(super) fn run(&mut self, write: impl FnOnce(&Op) -> rusqlite::Result<Out>) {
        self.done = Some(write(&self.op));
    }

    /// Answers the caller once the batch's transaction ended: with the
    /// write's own result when it committed, with the commit's error when
    /// it did not.
    fn answer(self, commit: Result<(), &rusqlite::Error>) {
        let result = match (commit, self.done) {
            (Err(error), _) => Err(JournalError::Write(duplicate(error))),
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
    done: Option<rusqlite::Result<()>>,
}

impl AcksRead {
    pub(super) fn new(message_ids: Vec<i64>) -> Self {
        AcksRead {
            message_ids,
            done: None,
        }
    }

    /// Runs the write inside the batch's transaction and keeps its result.
    pub(super) fn run(&mut self, write: impl FnOnce(&[i64]) -> rusqlite::Result<()>) {
        self.done = Some(write(&self.message_ids));
    }

    /// Logs a failure, its own or the commit's.
    fn settle(self, commit: Result<(), &rusqlite::Error>) {
        let failed = match (commit, self.done) {
            (Err(error), _) => Some(duplicate(error)),
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
    /// Answers the request's caller once its batch's transaction ended.
    pub(super) fn answer(self, commit: Result<(), &rusqlite::Error>) {
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

/// A copy of a commit's error for each operation of the batch
/// (`rusqlite::Error` is not `Clone`): SQLite's codes and message are kept.
fn duplicate(error: &rusqlite::Error) -> rusqlite::Error {
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
