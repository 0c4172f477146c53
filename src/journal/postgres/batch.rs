//! A PostgreSQL batch as the writer runs it. Fast: consecutive hot
//! requests form a group, written in two round trips whatever its size:
//! a read, then one statement whose `WITH` clauses each write one kind of
//! row from arrays (`UNNEST`); any other request runs alone between groups.
//! A batch that is one group needs no transaction around it (its one
//! writing statement commits alone: [`is_one_group`]). Carefully: one
//! request at a time ([`run_one`]), its failure kept as its result.
//!
//! A group holds messages to record (plain or answered on the spot),
//! acknowledgements read, and replies queued, settled or accepted, at most
//! one reply write per message (a second one for the same message starts
//! the next group, so their order is kept), and replies' parts only while
//! no unmatched receipt may be waiting for them. The read: the recorded
//! messages each new one may copy (1), when the group has messages. The
//! writing statement's clauses, each only when the group has rows for it:
//! acknowledgements read (2), new messages (3), replies inserted: answered
//! on the spot and queued (4), replies settled (5), replies accepted (6),
//! their parts (7), lookups (8).

use std::collections::HashSet;

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, Postgres};

use super::replies::{ACCEPTED_SET, SETTLE_CONFLICT};
use super::{fragments, messages, owned, receipts, replies, retention};
use crate::journal::receipts::UnmatchedReceipts;
use crate::journal::requests::{Request, WriteError};
use crate::journal::rules::{redeliveries, BatchItem, Verdict};
use crate::journal::{canonical_peer_id, spans_text, LookupNote, NewMessage, Recorded, ReplyState};

/// Runs a batch fast; the first failing statement's error ends it (the
/// writer then rolls back and runs it carefully).
pub(super) async fn run_fast(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    batch: &mut [Request],
    window_ms: i64,
    now: i64,
) -> sqlx::Result<()> {
    let mut start = 0;
    while start < batch.len() {
        let mut touched = HashSet::new();
        let mut end = start;
        while end < batch.len() && groupable(&batch[end], unmatched.may_exist, &mut touched) {
            end += 1;
        }
        if end > start {
            run_group(c, &mut batch[start..end], window_ms, now).await?;
            start = end;
        } else {
            one(c, unmatched, &mut batch[start], window_ms, now).await?;
            start += 1;
        }
    }
    Ok(())
}

/// Whether the whole batch forms one group: then its writes are one
/// statement, atomic and durable on its own, and the writer runs it
/// without BEGIN and COMMIT (two round trips fewer).
pub(super) fn is_one_group(batch: &[Request], may_exist: bool) -> bool {
    let mut touched = HashSet::new();
    batch
        .iter()
        .all(|request| groupable(request, may_exist, &mut touched))
}

/// Runs one request and keeps its result; false when it failed (its
/// error kept as its result).
pub(super) async fn run_one(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    request: &mut Request,
    window_ms: i64,
    now: i64,
) -> bool {
    match one(c, unmatched, request, window_ms, now).await {
        Ok(()) => true,
        Err(error) => {
            request.fail(WriteError::Postgres(error));
            false
        }
    }
}

/// Runs one request with its own statements and keeps its result when it
/// succeeded.
async fn one(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    request: &mut Request,
    window_ms: i64,
    now: i64,
) -> sqlx::Result<()> {
    match request {
        Request::Record(ask) => {
            let done = messages::record(c, ask.op(), window_ms).await?;
            ask.keep(Ok(done));
        }
        Request::Exchange(ask) => {
            let e = ask.op();
            let done = messages::record_exchange(
                c,
                &e.message,
                (&e.outcome, &e.text, e.state),
                e.lookup.as_ref(),
                window_ms,
                now,
            )
            .await?;
            ask.keep(Ok(done));
        }
        Request::Purge(ask) => {
            unmatched.recheck = true;
            let done = retention::purge(c, ask.op().cutoff).await?;
            ask.keep(Ok(done));
        }
        Request::Accepted(ask) => {
            let a = ask.op();
            replies::accepted(c, unmatched, a.message_id, &a.channel, &a.peer_ids, now).await?;
            ask.keep(Ok(()));
        }
        Request::Settle(ask) => {
            let s = ask.op();
            replies::settle(
                c,
                unmatched,
                s.message_id,
                (&s.outcome, &s.text),
                &s.settlement,
                s.lookup.as_ref(),
                now,
            )
            .await?;
            ask.keep(Ok(()));
        }
        Request::PartSent(ask) => {
            let p = ask.op();
            replies::part_sent(
                c,
                unmatched,
                p.message_id,
                (&p.outcome, &p.text),
                p.lookup.as_ref(),
                &p.part,
                now,
            )
            .await?;
            ask.keep(Ok(()));
        }
        Request::Receipt(ask) => {
            let done = receipts::apply_receipt(c, unmatched, ask.op(), now).await?;
            ask.keep(Ok(done));
        }
        Request::Fragment(ask) => {
            let done = fragments::record_fragment(c, ask.op(), window_ms, now).await?;
            ask.keep(Ok(done));
        }
        Request::JoinStale(ask) => {
            let done = fragments::join_stale(c, ask.op().received_before, window_ms, now).await?;
            ask.keep(Ok(done));
        }
        Request::Expire(ask) => {
            let done = retention::expire(c, &ask.op().message_ids, now).await?;
            ask.keep(Ok(done));
        }
        Request::QueueReply(ask) => {
            replies::queue(c, ask.op(), now).await?;
            ask.keep(Ok(()));
        }
        Request::UpdateReply(ask) => {
            replies::update(c, ask.op(), now).await?;
            ask.keep(Ok(()));
        }
        Request::AcksRead(note) => {
            messages::acks_read(c, &note.message_ids, now).await?;
            note.keep(Ok(()));
        }
        Request::Close => {}
    }
    Ok(())
}

/// Whether `request` can join the group whose reply writes touched the
/// messages `touched` (noting its own when it can).
fn groupable(request: &Request, may_exist: bool, touched: &mut HashSet<i64>) -> bool {
    match request {
        Request::Record(_) | Request::Exchange(_) | Request::AcksRead(_) => true,
        Request::QueueReply(ask) => touched.insert(ask.op().message_id),
        Request::Settle(ask) => {
            let s = ask.op();
            let with_parts =
                s.settlement.state == ReplyState::Accepted && s.settlement.left_on.is_some();
            (!with_parts || !may_exist) && touched.insert(s.message_id)
        }
        Request::Accepted(ask) => !may_exist && touched.insert(ask.op().message_id),
        _ => false,
    }
}

/// A group's rows, one vector per column, for each of its statements.
#[derive(Default)]
struct Rows<'a> {
    /// Messages to record, in order, with whether each was answered on the spot.
    messages: Vec<(&'a NewMessage, bool)>,
    /// Acknowledgements read.
    read: Vec<i64>,
    /// Replies inserted unless one exists: message (for a new message, its
    /// index in `messages`), outcome, text, state, attempts.
    inserted: Vec<(Target, &'a str, &'a str, ReplyState, i64)>,
    settled: Settled<'a>,
    accepted_ids: Vec<i64>,
    accepted_peer_ids: Vec<String>,
    parts: Parts,
    /// Lookups: message, note.
    lookups: Vec<(Target, &'a LookupNote)>,
}

/// A reply's message: a recorded one, or a new message of the group.
#[derive(Clone, Copy)]
enum Target {
    Id(i64),
    NewMessage(usize),
}

#[derive(Default)]
struct Settled<'a> {
    ids: Vec<i64>,
    outcomes: Vec<&'a str>,
    texts: Vec<&'a str>,
    states: Vec<&'static str>,
    attempts: Vec<i64>,
    next_at: Vec<i64>,
    errors: Vec<Option<&'a str>>,
    peer_ids: Vec<Option<String>>,
    sent_at: Vec<Option<i64>>,
}

#[derive(Default)]
struct Parts {
    ids: Vec<i64>,
    numbers: Vec<i64>,
    channels: Vec<String>,
    peer_ids: Vec<String>,
}

impl Parts {
    fn push(&mut self, message_id: i64, channel: &str, peer_ids: &[String]) {
        for (index, id) in peer_ids.iter().enumerate() {
            self.ids.push(message_id);
            self.numbers.push(index as i64 + 1);
            self.channels.push(channel.to_owned());
            self.peer_ids.push(canonical_peer_id(id));
        }
    }
}

/// Runs a group (see the module's documentation) and keeps each
/// request's result.
async fn run_group(
    c: &mut PgConnection,
    group: &mut [Request],
    window_ms: i64,
    now: i64,
) -> sqlx::Result<()> {
    let mut rows = Rows::default();
    let mut items: Vec<BatchItem<'_>> = Vec::new();
    for request in group.iter() {
        match request {
            Request::Record(ask) => rows.messages.push((ask.op(), false)),
            Request::Exchange(ask) => rows.messages.push((&ask.op().message, true)),
            Request::AcksRead(note) => rows.read.extend(note.message_ids.iter().copied()),
            Request::QueueReply(ask) => {
                let q = ask.op();
                rows.inserted
                    .push((Target::Id(q.message_id), &q.outcome, &q.text, q.state, 0));
            }
            Request::Settle(ask) => {
                let s = ask.op();
                let st = &mut rows.settled;
                st.ids.push(s.message_id);
                st.outcomes.push(&s.outcome);
                st.texts.push(&s.text);
                st.states.push(s.settlement.state.as_str());
                st.attempts.push(i64::from(s.settlement.counts));
                st.next_at.push(s.settlement.next_attempt_at.unwrap_or(now));
                st.errors.push(s.settlement.error.as_deref());
                st.peer_ids
                    .push(s.settlement.left_on.as_ref().map(|(_, ids)| ids.join(" ")));
                st.sent_at
                    .push(s.settlement.state.handed_over().then_some(now));
                if let Some(lookup) = &s.lookup {
                    rows.lookups.push((Target::Id(s.message_id), lookup));
                }
                if let (ReplyState::Accepted, Some((channel, ids))) =
                    (s.settlement.state, &s.settlement.left_on)
                {
                    rows.parts.push(s.message_id, channel, ids);
                }
            }
            Request::Accepted(ask) => {
                let a = ask.op();
                rows.accepted_ids.push(a.message_id);
                rows.accepted_peer_ids.push(a.peer_ids.join(" "));
                rows.parts.push(a.message_id, &a.channel, &a.peer_ids);
            }
            _ => unreachable!("only groupable requests form a group"),
        }
    }
    // (1) What each message may copy, as the batch began.
    let recorded = if rows.messages.is_empty() {
        Vec::new()
    } else {
        copies_recorded(c, &rows.messages, window_ms).await?
    };
    let mut recorded = recorded.into_iter();
    for request in group.iter() {
        match request {
            Request::Record(ask) => items.push(BatchItem::Message {
                message: ask.op(),
                recorded: recorded.next().unwrap_or_default(),
                answered: false,
            }),
            Request::Exchange(ask) => items.push(BatchItem::Message {
                message: &ask.op().message,
                recorded: recorded.next().unwrap_or_default(),
                answered: true,
            }),
            Request::AcksRead(note) => items.push(BatchItem::Read(&note.message_ids)),
            _ => {}
        }
    }
    let verdicts = redeliveries(&items, window_ms);
    let fresh: Vec<usize> = (0..verdicts.len())
        .filter(|&i| verdicts[i] == Verdict::New)
        .collect();
    // Replies and lookups of exchanges whose message is new.
    let mut message_index = 0;
    for request in group.iter() {
        match request {
            Request::Record(_) => message_index += 1,
            Request::Exchange(ask) => {
                let e = ask.op();
                if verdicts[message_index] == Verdict::New {
                    let target = Target::NewMessage(message_index);
                    rows.inserted
                        .push((target, &e.outcome, &e.text, e.state, 1));
                    if let Some(lookup) = &e.lookup {
                        rows.lookups.push((target, lookup));
                    }
                }
                message_index += 1;
            }
            _ => {}
        }
    }
    // (2)-(8) in one statement; the new messages' ids in the group's order.
    let ids = write_group(c, &rows, &fresh, now).await?;
    let mut new_id = vec![None; verdicts.len()];
    for (&index, &id) in fresh.iter().zip(&ids) {
        new_id[index] = Some(id);
    }
    let results: Vec<Recorded> = verdicts
        .iter()
        .enumerate()
        .map(|(i, verdict)| match *verdict {
            Verdict::New => Recorded::New(new_id[i].unwrap_or_default()),
            Verdict::CopyOf(id) => Recorded::Duplicate(id),
            Verdict::CopyOfEarlier(j) => Recorded::Duplicate(new_id[j].unwrap_or_default()),
        })
        .collect();
    drop(items);
    // Every request of the group succeeded.
    let mut results = results.into_iter();
    for request in group.iter_mut() {
        match request {
            Request::Record(ask) => ask.keep(Ok(results.next().unwrap_or(Recorded::New(0)))),
            Request::Exchange(ask) => ask.keep(Ok(results.next().unwrap_or(Recorded::New(0)))),
            Request::AcksRead(note) => note.keep(Ok(())),
            Request::QueueReply(ask) => ask.keep(Ok(())),
            Request::Settle(ask) => ask.keep(Ok(())),
            Request::Accepted(ask) => ask.keep(Ok(())),
            _ => {}
        }
    }
    Ok(())
}

/// Statement (1): for each message, the recorded messages it may copy,
/// newest first (see [`BatchItem::Message`]).
async fn copies_recorded(
    c: &mut PgConnection,
    messages: &[(&NewMessage, bool)],
    window_ms: i64,
) -> sqlx::Result<Vec<Vec<i64>>> {
    let channels: Vec<&str> = messages.iter().map(|(m, _)| m.channel.as_str()).collect();
    let senders: Vec<&str> = messages
        .iter()
        .map(|(m, _)| m.sender.addr.as_str())
        .collect();
    let texts: Vec<&str> = messages.iter().map(|(m, _)| m.text.as_str()).collect();
    let refs: Vec<Option<&str>> = messages
        .iter()
        .map(|(m, _)| m.peer_ref.as_deref())
        .collect();
    let since: Vec<i64> = messages
        .iter()
        .map(|(m, _)| m.received_at.saturating_sub(window_ms))
        .collect();
    let lasting: Vec<bool> = messages
        .iter()
        .map(|(m, _)| m.peer_ref.is_some() && m.peer_ref_lasting)
        .collect();
    let rows: Vec<(i64, Vec<i64>)> = sqlx::query_as(
        "SELECT t.n, CASE WHEN t.lasting THEN ARRAY(SELECT id FROM messages m \
         WHERE m.channel = t.channel AND m.peer_ref = t.peer_ref LIMIT 1) \
         ELSE ARRAY(SELECT id FROM messages m WHERE m.channel = t.channel AND m.sender = t.sender \
         AND m.text = t.text AND m.peer_ref IS NOT DISTINCT FROM t.peer_ref AND m.received_at >= t.since \
         AND m.ack_read_at IS NULL ORDER BY m.id DESC) END \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BOOL[]) \
         WITH ORDINALITY AS t(channel, sender, text, peer_ref, since, lasting, n) ORDER BY t.n",
    )
    .bind(&channels)
    .bind(&senders)
    .bind(&texts)
    .bind(&refs)
    .bind(&since)
    .bind(&lasting)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.into_iter().map(|(_, ids)| ids).collect())
}

/// One bind parameter of the group's statement: its value added, its
/// placeholder (`$n`) returned.
fn param<'q, T>(args: &mut PgArguments, value: T) -> sqlx::Result<String>
where
    T: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    args.add(value).map_err(sqlx::Error::Encode)?;
    Ok(format!("${}", args.len()))
}

/// Statements (2) to (8) of a group as one statement, data-modifying
/// `WITH` clauses side by side: one round trip, and, outside a
/// transaction, its own commit. Only the clauses the group has rows for
/// are written. The new messages (those at `fresh`, indices into
/// `rows.messages`; the exchanges' with their acknowledgement read) are
/// inserted in that order and their ids returned in that order (identity
/// values are drawn in the rows' order); a reply or lookup of a new message
/// finds its id by that rank. No two clauses touch the same row: a group
/// writes at most one reply per message, and the messages it inserts are
/// not the ones whose acknowledgements it notes.
async fn write_group(
    c: &mut PgConnection,
    rows: &Rows<'_>,
    fresh: &[usize],
    now: i64,
) -> sqlx::Result<Vec<i64>> {
    let mut args = PgArguments::default();
    let now_param = param(&mut args, now)?;
    let mut clauses: Vec<String> = Vec::new();
    let with_new = !fresh.is_empty();
    // A reply's or lookup's message: its id, or the rank of a new message.
    let rank = |target: Target| match target {
        Target::Id(id) => (Some(id), None),
        Target::NewMessage(index) => (
            None,
            fresh
                .binary_search(&index)
                .ok()
                .map(|position| position as i64 + 1),
        ),
    };
    let resolved = |alias: &str| {
        if with_new {
            (
                format!("COALESCE({alias}.id, n.id)"),
                format!("LEFT JOIN new_ids n ON n.k = {alias}.k"),
            )
        } else {
            (format!("{alias}.id"), String::new())
        }
    };
    // (2) Acknowledgements read.
    if !rows.read.is_empty() {
        let ids = param(&mut args, &rows.read)?;
        clauses.push(format!(
            "acks AS (UPDATE messages SET ack_read_at = {now_param} WHERE id = ANY({ids}) \
             AND ack_read_at IS NULL)"
        ));
    }
    // (3) New messages.
    if with_new {
        let pick = || fresh.iter().map(|&i| rows.messages[i]);
        let channels = param(
            &mut args,
            pick().map(|(m, _)| m.channel.as_str()).collect::<Vec<_>>(),
        )?;
        let refs = param(
            &mut args,
            pick()
                .map(|(m, _)| m.peer_ref.as_deref())
                .collect::<Vec<_>>(),
        )?;
        let senders = param(
            &mut args,
            pick()
                .map(|(m, _)| m.sender.addr.as_str())
                .collect::<Vec<_>>(),
        )?;
        let sender_tons = param(
            &mut args,
            pick()
                .map(|(m, _)| i64::from(m.sender.ton))
                .collect::<Vec<_>>(),
        )?;
        let sender_npis = param(
            &mut args,
            pick()
                .map(|(m, _)| i64::from(m.sender.npi))
                .collect::<Vec<_>>(),
        )?;
        let recipients = param(
            &mut args,
            pick()
                .map(|(m, _)| m.recipient.addr.as_str())
                .collect::<Vec<_>>(),
        )?;
        let recipient_tons = param(
            &mut args,
            pick()
                .map(|(m, _)| i64::from(m.recipient.ton))
                .collect::<Vec<_>>(),
        )?;
        let recipient_npis = param(
            &mut args,
            pick()
                .map(|(m, _)| i64::from(m.recipient.npi))
                .collect::<Vec<_>>(),
        )?;
        let texts = param(
            &mut args,
            pick().map(|(m, _)| m.text.as_str()).collect::<Vec<_>>(),
        )?;
        let received = param(
            &mut args,
            pick().map(|(m, _)| m.received_at).collect::<Vec<_>>(),
        )?;
        let read = param(
            &mut args,
            pick()
                .map(|(_, answered)| answered.then_some(now))
                .collect::<Vec<_>>(),
        )?;
        clauses.push(format!(
            "ins AS (INSERT INTO messages (channel, peer_ref, sender, sender_ton, sender_npi, \
             recipient, recipient_ton, recipient_npi, text, received_at, ack_read_at) \
             SELECT channel, peer_ref, sender, sender_ton, sender_npi, recipient, recipient_ton, \
             recipient_npi, text, received_at, ack_read_at \
             FROM UNNEST({channels}::TEXT[], {refs}::TEXT[], {senders}::TEXT[], {sender_tons}::BIGINT[], \
             {sender_npis}::BIGINT[], {recipients}::TEXT[], {recipient_tons}::BIGINT[], \
             {recipient_npis}::BIGINT[], {texts}::TEXT[], {received}::BIGINT[], {read}::BIGINT[]) \
             WITH ORDINALITY AS t(channel, peer_ref, sender, sender_ton, sender_npi, recipient, \
             recipient_ton, recipient_npi, text, received_at, ack_read_at, n) ORDER BY t.n RETURNING id), \
             new_ids AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM ins)"
        ));
    }
    // (4) Replies inserted unless one exists.
    if !rows.inserted.is_empty() {
        let (ids, ranks): (Vec<Option<i64>>, Vec<Option<i64>>) =
            rows.inserted.iter().map(|r| rank(r.0)).unzip();
        let ids = param(&mut args, ids)?;
        let ranks = param(&mut args, ranks)?;
        let outcomes = param(
            &mut args,
            rows.inserted.iter().map(|r| r.1).collect::<Vec<_>>(),
        )?;
        let texts = param(
            &mut args,
            rows.inserted.iter().map(|r| r.2).collect::<Vec<_>>(),
        )?;
        let states = param(
            &mut args,
            rows.inserted
                .iter()
                .map(|r| r.3.as_str())
                .collect::<Vec<_>>(),
        )?;
        let attempts = param(
            &mut args,
            rows.inserted.iter().map(|r| r.4).collect::<Vec<_>>(),
        )?;
        let sent_at = param(
            &mut args,
            rows.inserted
                .iter()
                .map(|r| r.3.handed_over().then_some(now))
                .collect::<Vec<_>>(),
        )?;
        let (id, join) = resolved("t");
        clauses.push(format!(
            "queued AS (SELECT {id} AS id, t.outcome, t.text, t.state, t.attempts, t.sent_at \
             FROM UNNEST({ids}::BIGINT[], {ranks}::BIGINT[], {outcomes}::TEXT[], {texts}::TEXT[], \
             {states}::TEXT[], {attempts}::BIGINT[], {sent_at}::BIGINT[]) \
             AS t(id, k, outcome, text, state, attempts, sent_at) {join}), \
             inserted AS (INSERT INTO replies (message_id, outcome, text, state, attempts, \
             next_attempt_at, created_at, updated_at, sent_at) \
             SELECT id, outcome, text, state, attempts, {now_param}, {now_param}, {now_param}, sent_at \
             FROM queued WHERE {} ON CONFLICT (message_id) DO NOTHING)",
            owned("queued.id")
        ));
    }
    // (5) Replies settled.
    let st = &rows.settled;
    if !st.ids.is_empty() {
        let ids = param(&mut args, &st.ids)?;
        let outcomes = param(&mut args, &st.outcomes)?;
        let texts = param(&mut args, &st.texts)?;
        let states = param(&mut args, &st.states)?;
        let attempts = param(&mut args, &st.attempts)?;
        let next_at = param(&mut args, &st.next_at)?;
        let errors = param(&mut args, &st.errors)?;
        let peer_ids = param(&mut args, &st.peer_ids)?;
        let sent_at = param(&mut args, &st.sent_at)?;
        clauses.push(format!(
            "settled AS (INSERT INTO replies (message_id, outcome, text, state, attempts, \
             next_attempt_at, last_error, peer_ids, created_at, updated_at, sent_at) \
             SELECT id, outcome, text, state, attempts, next_at, error, peer_ids, {now_param}, \
             {now_param}, sent_at \
             FROM UNNEST({ids}::BIGINT[], {outcomes}::TEXT[], {texts}::TEXT[], {states}::TEXT[], \
             {attempts}::BIGINT[], {next_at}::BIGINT[], {errors}::TEXT[], {peer_ids}::TEXT[], \
             {sent_at}::BIGINT[]) \
             AS t(id, outcome, text, state, attempts, next_at, error, peer_ids, sent_at) \
             WHERE {} {SETTLE_CONFLICT})",
            owned("t.id")
        ));
    }
    // (6) Replies accepted.
    if !rows.accepted_ids.is_empty() {
        let peer_ids = param(&mut args, &rows.accepted_peer_ids)?;
        let ids = param(&mut args, &rows.accepted_ids)?;
        clauses.push(format!(
            "accepted AS (UPDATE replies SET peer_ids = t.peer_ids, {} \
             FROM UNNEST({peer_ids}::TEXT[], {ids}::BIGINT[]) AS t(peer_ids, id) \
             WHERE replies.message_id = t.id AND replies.state = 'queued' AND {})",
            ACCEPTED_SET.replace("$2", &now_param),
            owned("t.id")
        ));
    }
    // (7) Their parts (no unmatched receipt can be waiting for them).
    let parts = &rows.parts;
    if !parts.ids.is_empty() {
        let ids = param(&mut args, &parts.ids)?;
        let numbers = param(&mut args, &parts.numbers)?;
        let channels = param(&mut args, &parts.channels)?;
        let peer_ids = param(&mut args, &parts.peer_ids)?;
        clauses.push(format!(
            "parts AS (INSERT INTO reply_parts (message_id, part, channel, peer_id, state, updated_at) \
             SELECT id, part, channel, peer_id, 'accepted', {now_param} \
             FROM UNNEST({ids}::BIGINT[], {numbers}::BIGINT[], {channels}::TEXT[], {peer_ids}::TEXT[]) \
             AS t(id, part, channel, peer_id) ON CONFLICT (message_id, part) DO NOTHING)"
        ));
    }
    // (8) Lookups.
    if !rows.lookups.is_empty() {
        let (ids, ranks): (Vec<Option<i64>>, Vec<Option<i64>>) =
            rows.lookups.iter().map(|l| rank(l.0)).unzip();
        let ids = param(&mut args, ids)?;
        let ranks = param(&mut args, ranks)?;
        let codes = param(
            &mut args,
            rows.lookups
                .iter()
                .map(|l| l.1.code.as_str())
                .collect::<Vec<_>>(),
        )?;
        let agencies = param(
            &mut args,
            rows.lookups
                .iter()
                .map(|l| l.1.agency.as_deref())
                .collect::<Vec<_>>(),
        )?;
        let procedures = param(
            &mut args,
            rows.lookups
                .iter()
                .map(|l| l.1.procedure.as_deref())
                .collect::<Vec<_>>(),
        )?;
        let spans = param(
            &mut args,
            rows.lookups
                .iter()
                .map(|l| spans_text(&l.1.name_spans))
                .collect::<Vec<_>>(),
        )?;
        let (id, join) = resolved("t");
        clauses.push(format!(
            "lookups AS (INSERT INTO reply_lookups (message_id, code, agency, procedure, name_spans) \
             SELECT {id}, t.code, t.agency, t.procedure, t.spans \
             FROM UNNEST({ids}::BIGINT[], {ranks}::BIGINT[], {codes}::TEXT[], {agencies}::TEXT[], \
             {procedures}::TEXT[], {spans}::TEXT[]) AS t(id, k, code, agency, procedure, spans) {join} \
             ON CONFLICT (message_id) DO NOTHING)"
        ));
    }
    if clauses.is_empty() {
        return Ok(Vec::new());
    }
    let main = if with_new {
        "SELECT id FROM ins ORDER BY id"
    } else {
        "SELECT 0::BIGINT AS id WHERE false"
    };
    let sql = format!("WITH {} {main}", clauses.join(", "));
    sqlx::query_scalar_with(&sql, args).fetch_all(&mut *c).await
}
