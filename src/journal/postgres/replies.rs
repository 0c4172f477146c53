//! PostgreSQL statements for `replies` and `reply_lookups`, one request at
//! a time: a reply queued, updated, settled after an attempt, accepted by a
//! carrier (its parts recorded for receipts), or recorded part by part as a
//! modem sends it; what it looked up, written with its first write. (A
//! batch's replies go in one statement per kind: `batch`.)

use sqlx::PgConnection;

use super::owned;
use super::receipts::record_part;
use crate::journal::receipts::UnmatchedReceipts;
pub(super) use crate::journal::replies::SETTLE_CONFLICT;
use crate::journal::requests::{QueueReply, UpdateReply};
use crate::journal::{spans_text, LookupNote, PartRecord, ReplyState, Settlement};

/// Stores the reply a message earned, or that it gets none (see
/// [`Journal::queue_reply`](crate::journal::Journal::queue_reply)).
pub(super) async fn queue(c: &mut PgConnection, reply: &QueueReply, now: i64) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at, sent_at) \
         SELECT $1::BIGINT, $2::TEXT, $3::TEXT, $4::TEXT, $5::BIGINT, $5::BIGINT, $5::BIGINT, $6::BIGINT \
         WHERE {} ON CONFLICT (message_id) DO NOTHING",
        owned("$1::BIGINT")
    ))
    .bind(reply.message_id)
    .bind(&reply.outcome)
    .bind(&reply.text)
    .bind(reply.state.as_str())
    .bind(now)
    .bind(reply.state.handed_over().then_some(now))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records the outcome of a send (see
/// [`Journal::update_reply`](crate::journal::Journal::update_reply)).
pub(super) async fn update(
    c: &mut PgConnection,
    update: &UpdateReply,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "UPDATE replies SET state = $1, peer_ids = COALESCE($2, peer_ids), last_error = $3, \
         attempts = attempts + 1, next_attempt_at = COALESCE($4, next_attempt_at), updated_at = $5, \
         sent_at = COALESCE(sent_at, $6) WHERE message_id = $7 AND {}",
        owned("$7")
    ))
    .bind(update.state.as_str())
    .bind(&update.peer_ids)
    .bind(&update.error)
    .bind(update.next_attempt_at)
    .bind(now)
    .bind(update.state.handed_over().then_some(now))
    .bind(update.message_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records what a reply looked up (once: a reply's first write carries it).
pub(super) async fn note_lookup(
    c: &mut PgConnection,
    message_id: i64,
    lookup: &LookupNote,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reply_lookups (message_id, code, agency, procedure, name_spans) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(&lookup.code)
    .bind(&lookup.agency)
    .bind(&lookup.procedure)
    .bind(spans_text(&lookup.name_spans))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// How an attempt to send a reply ended (see
/// [`Journal::settle_reply`](crate::journal::Journal::settle_reply)).
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    settlement: &Settlement,
    lookup: Option<&LookupNote>,
    now: i64,
) -> sqlx::Result<()> {
    let peer_ids = settlement.left_on.as_ref().map(|(_, ids)| ids.join(" "));
    sqlx::query(&format!(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         last_error, peer_ids, created_at, updated_at, sent_at) \
         SELECT $1::BIGINT, $2::TEXT, $3::TEXT, $4::TEXT, $5::BIGINT, $6::BIGINT, $7::TEXT, \
         $8::TEXT, $9::BIGINT, $9::BIGINT, $10::BIGINT WHERE {} {SETTLE_CONFLICT}",
        owned("$1::BIGINT")
    ))
    .bind(message_id)
    .bind(outcome)
    .bind(text)
    .bind(settlement.state.as_str())
    .bind(i64::from(settlement.counts))
    .bind(settlement.next_attempt_at.unwrap_or(now))
    .bind(&settlement.error)
    .bind(peer_ids)
    .bind(now)
    .bind(settlement.state.handed_over().then_some(now))
    .execute(&mut *c)
    .await?;
    if let Some(lookup) = lookup {
        note_lookup(c, message_id, lookup).await?;
    }
    if let (ReplyState::Accepted, Some((channel, ids))) = (settlement.state, &settlement.left_on) {
        record_parts(c, unmatched, message_id, channel, ids, now).await?;
    }
    Ok(())
}

/// The update of a reply accepted by the carrier, for one row (`$1` the
/// peer ids, `$2` the time, `$3` the message) or, with `UNNEST`, a batch's.
pub(super) const ACCEPTED_SET: &str = "state = 'accepted', last_error = NULL, \
     attempts = replies.attempts + 1, updated_at = $2, sent_at = coalesce(replies.sent_at, $2)";

/// Every part of a reply accepted by the carrier (see
/// [`Journal::reply_accepted`](crate::journal::Journal::reply_accepted)).
pub(super) async fn accepted(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "UPDATE replies SET peer_ids = $1, {ACCEPTED_SET} WHERE message_id = $3 AND state = 'queued' \
         AND {}",
        owned("$3")
    ))
    .bind(peer_ids.join(" "))
    .bind(now)
    .bind(message_id)
    .execute(&mut *c)
    .await?;
    record_parts(c, unmatched, message_id, channel, peer_ids, now).await
}

/// Records the parts of a reply accepted by a carrier, applying receipts
/// that arrived before them.
async fn record_parts(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> sqlx::Result<()> {
    for (index, id) in peer_ids.iter().enumerate() {
        record_part(c, unmatched, message_id, index as i64 + 1, channel, id, now).await?;
    }
    Ok(())
}

/// A reply sent one part at a time (see
/// [`Journal::record_part_sent`](crate::journal::Journal::record_part_sent)):
/// the reply row (queued, with the reference of its parts) and the part
/// that left, if one did.
pub(super) async fn part_sent(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    lookup: Option<&LookupNote>,
    part: &PartRecord,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         created_at, updated_at, part_reference) VALUES ($1, $2, $3, 'queued', 0, $4, $4, $4, $5) \
         ON CONFLICT (message_id) DO UPDATE SET part_reference = excluded.part_reference, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )
    .bind(message_id)
    .bind(outcome)
    .bind(text)
    .bind(now)
    .bind(i64::from(part.reference))
    .execute(&mut *c)
    .await?;
    if let Some(lookup) = lookup {
        note_lookup(c, message_id, lookup).await?;
    }
    match &part.sent {
        Some((number, id)) => {
            record_part(
                c,
                unmatched,
                message_id,
                i64::from(*number),
                &part.channel,
                id,
                now,
            )
            .await
        }
        None => Ok(()),
    }
}
