//! PostgreSQL statements for what time takes away: the retention purge
//! (texts and phone numbers erased, outcomes and times kept for
//! statistics) and replies expired because they would come too late.

use sqlx::PgConnection;

/// Erases what retention takes (see
/// [`Journal::purge_before`](crate::journal::Journal::purge_before)).
pub(super) async fn purge(c: &mut PgConnection, cutoff: i64) -> sqlx::Result<u64> {
    // Receipts for ids never given (or long forgotten) go with the retention.
    sqlx::query("DELETE FROM unmatched_receipts WHERE received_at < $1")
        .bind(cutoff)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM fragment_refs WHERE recorded_at < $1")
        .bind(cutoff)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "UPDATE replies SET text = '' WHERE message_id IN \
         (SELECT id FROM messages WHERE received_at < $1 AND purged = 0) \
         AND state <> 'queued'",
    )
    .bind(cutoff)
    .execute(&mut *c)
    .await?;
    // The code was part of the text; agency and procedure name no one.
    sqlx::query(
        "UPDATE reply_lookups SET code = '' WHERE message_id IN \
         (SELECT m.id FROM messages m JOIN replies r ON r.message_id = m.id \
          WHERE m.received_at < $1 AND m.purged = 0 AND r.state <> 'queued')",
    )
    .bind(cutoff)
    .execute(&mut *c)
    .await?;
    Ok(sqlx::query(
        "UPDATE messages SET text = '', sender = '', recipient = '', peer_ref = NULL, purged = 1 \
         WHERE received_at < $1 AND purged = 0 \
         AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.message_id = messages.id AND r.state = 'queued')",
    )
    .bind(cutoff)
    .execute(&mut *c)
    .await?
    .rows_affected())
}

/// Expires the replies to `message_ids` (see
/// [`Journal::expire_replies`](crate::journal::Journal::expire_replies)),
/// in one statement.
pub(super) async fn expire(
    c: &mut PgConnection,
    message_ids: &[i64],
    now: i64,
) -> sqlx::Result<u64> {
    let mut ids = message_ids.to_vec();
    // One row per message: an upsert may not touch a row twice.
    ids.sort_unstable();
    ids.dedup();
    Ok(sqlx::query(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, last_error, \
         created_at, updated_at) SELECT id, 'expired', '', 'expired', $2, $3, $2, $2 FROM UNNEST($1::BIGINT[]) AS t(id) \
         ON CONFLICT (message_id) DO UPDATE SET state = 'expired', last_error = excluded.last_error, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )
    .bind(&ids)
    .bind(now)
    .bind("not sent within reply_expiry_secs")
    .execute(&mut *c)
    .await?
    .rows_affected())
}
