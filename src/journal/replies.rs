//! The writer's SQL for `replies` and `reply_lookups`: a reply queued,
//! updated, settled after an attempt, accepted by a carrier (its parts
//! recorded for receipts), or recorded part by part as a modem sends it;
//! what it looked up, written with its first write.

use rusqlite::{params, Connection};

use super::receipts::{record_part, UnmatchedReceipts};
use super::requests::{QueueReply, UpdateReply};
use super::{spans_text, LookupNote, PartRecord, ReplyState, Settlement};

/// Stores the reply a message earned, or that it gets none (see
/// [`Journal::queue_reply`](super::Journal::queue_reply)).
pub(super) fn queue(tx: &Connection, reply: &QueueReply, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at, sent_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
    )?
    .execute(params![
        reply.message_id,
        reply.outcome,
        reply.text,
        reply.state.as_str(),
        now,
        now,
        now,
        reply.state.handed_over().then_some(now)
    ])?;
    Ok(())
}

/// Records the outcome of a send (see
/// [`Journal::update_reply`](super::Journal::update_reply)).
pub(super) fn update(tx: &Connection, update: &UpdateReply, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE replies SET state = ?, peer_ids = COALESCE(?, peer_ids), last_error = ?, \
         attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?, \
         sent_at = COALESCE(sent_at, ?) WHERE message_id = ?",
    )?
    .execute(params![
        update.state.as_str(),
        update.peer_ids,
        update.error,
        update.next_attempt_at,
        now,
        update.state.handed_over().then_some(now),
        update.message_id
    ])?;
    Ok(())
}

/// Records what a reply looked up (once: a reply's first write carries it).
pub(super) fn note_lookup(
    tx: &Connection,
    message_id: i64,
    lookup: &LookupNote,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO reply_lookups (message_id, code, agency, procedure, name_spans) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
    )?
    .execute(params![
        message_id,
        lookup.code,
        lookup.agency,
        lookup.procedure,
        spans_text(&lookup.name_spans)
    ])?;
    Ok(())
}

/// How a settled reply meets the row already stored, on both engines: it
/// moves a queued reply only (an expired or sent one stays as it is).
pub(super) const SETTLE_CONFLICT: &str =
    "ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, \
     attempts = replies.attempts + excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
     last_error = excluded.last_error, peer_ids = coalesce(excluded.peer_ids, replies.peer_ids), \
     updated_at = excluded.updated_at, sent_at = coalesce(replies.sent_at, excluded.sent_at) \
     WHERE replies.state = 'queued'";

pub(super) fn settle(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    settlement: &Settlement,
    lookup: Option<&LookupNote>,
    now: i64,
) -> rusqlite::Result<()> {
    let peer_ids = settlement.left_on.as_ref().map(|(_, ids)| ids.join(" "));
    tx.prepare_cached(&format!(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         last_error, peer_ids, created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         {SETTLE_CONFLICT}"
    ))?
    .execute(params![
        message_id,
        outcome,
        text,
        settlement.state.as_str(),
        i64::from(settlement.counts),
        settlement.next_attempt_at.unwrap_or(now),
        settlement.error,
        peer_ids,
        now,
        now,
        settlement.state.handed_over().then_some(now)
    ])?;
    if let Some(lookup) = lookup {
        note_lookup(tx, message_id, lookup)?;
    }
    if let (ReplyState::Accepted, Some((channel, ids))) = (settlement.state, &settlement.left_on) {
        record_parts(tx, unmatched, message_id, channel, ids, now)?;
    }
    Ok(())
}

pub(super) fn accepted(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE replies SET state = 'accepted', peer_ids = ?, last_error = NULL, \
         attempts = attempts + 1, updated_at = ?, sent_at = coalesce(sent_at, ?) \
         WHERE message_id = ? AND state = 'queued'",
    )?
    .execute(params![peer_ids.join(" "), now, now, message_id])?;
    record_parts(tx, unmatched, message_id, channel, peer_ids, now)
}

/// Records the parts of a reply accepted by a carrier, applying receipts
/// that arrived before them.
fn record_parts(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    for (index, id) in peer_ids.iter().enumerate() {
        record_part(
            tx,
            unmatched,
            message_id,
            index as i64 + 1,
            channel,
            id,
            now,
        )?;
    }
    Ok(())
}

/// A reply sent one part at a time: the reply row (queued, with the
/// reference of its parts) and the part that left, if one did.
pub(super) fn part_sent(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    lookup: Option<&LookupNote>,
    part: &PartRecord,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         created_at, updated_at, part_reference) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?) \
         ON CONFLICT (message_id) DO UPDATE SET part_reference = excluded.part_reference, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )?
    .execute(params![
        message_id,
        outcome,
        text,
        now,
        now,
        now,
        i64::from(part.reference)
    ])?;
    if let Some(lookup) = lookup {
        note_lookup(tx, message_id, lookup)?;
    }
    match &part.sent {
        Some((number, id)) => record_part(
            tx,
            unmatched,
            message_id,
            i64::from(*number),
            &part.channel,
            id,
            now,
        ),
        None => Ok(()),
    }
}
