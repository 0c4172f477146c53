//! The writer's SQL for what time takes away: the retention purge (texts
//! and phone numbers erased, outcomes and times kept for statistics) and
//! replies expired because they would come too late.

use rusqlite::{params, Connection};

/// Erases what retention takes (see
/// [`Journal::purge_before`](super::Journal::purge_before)).
pub(super) fn purge(tx: &Connection, cutoff: i64) -> rusqlite::Result<u64> {
    // Receipts for ids never given (or long forgotten) go with the retention.
    tx.prepare_cached("DELETE FROM unmatched_receipts WHERE received_at < ?")?
        .execute(params![cutoff])?;
    tx.prepare_cached("DELETE FROM fragment_refs WHERE recorded_at < ?")?
        .execute(params![cutoff])?;
    tx.prepare_cached(
        "UPDATE replies SET text = '' WHERE message_id IN \
         (SELECT id FROM messages WHERE received_at < ? AND purged = 0) \
         AND state <> 'queued'",
    )?
    .execute(params![cutoff])?;
    // The code was part of the text; agency and procedure name no one.
    tx.prepare_cached(
        "UPDATE reply_lookups SET code = '' WHERE message_id IN \
         (SELECT m.id FROM messages m JOIN replies r ON r.message_id = m.id \
          WHERE m.received_at < ? AND m.purged = 0 AND r.state <> 'queued')",
    )?
    .execute(params![cutoff])?;
    Ok(tx
        .prepare_cached(
            "UPDATE messages SET text = '', sender = '', recipient = '', peer_ref = NULL, purged = 1 \
             WHERE received_at < ? AND purged = 0 \
             AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.message_id = messages.id AND r.state = 'queued')",
        )?
        .execute(params![cutoff])? as u64)
}

/// Expires the replies to `message_ids` (see
/// [`Journal::expire_replies`](super::Journal::expire_replies)).
pub(super) fn expire(tx: &Connection, message_ids: &[i64], now: i64) -> rusqlite::Result<u64> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, last_error, \
         created_at, updated_at) VALUES (?1, 'expired', '', 'expired', ?2, ?3, ?2, ?2) \
         ON CONFLICT (message_id) DO UPDATE SET state = 'expired', last_error = excluded.last_error, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )?;
    let mut expired = 0;
    for id in message_ids {
        expired += statement.execute(params![id, now, "not sent within reply_expiry_secs"])? as u64;
    }
    Ok(expired)
}
