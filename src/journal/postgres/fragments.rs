//! PostgreSQL statements for `fragments`, `joined_parts` and
//! `fragment_refs`: parts of a concatenated message kept until the last one
//! arrives (or the reassembly timeout), joined in order into one message,
//! copies of parts recognised within the redelivery window, a part's
//! lasting identity.

use std::collections::HashSet;

use sqlx::PgConnection;

use super::messages::record;
use crate::journal::rules::{joined_message, one_message_has_all, GroupKey, StoredFragment};
use crate::journal::{Address, FragmentRecorded, NewFragment, Recorded, StoredMessage};

/// Records one part (see
/// [`Journal::record_fragment`](crate::journal::Journal::record_fragment)).
pub(super) async fn record_fragment(
    c: &mut PgConnection,
    f: &NewFragment,
    window_ms: i64,
    now: i64,
) -> sqlx::Result<FragmentRecorded> {
    let m = &f.message;
    if let Some(fingerprint) = &f.fingerprint {
        let first_time = sqlx::query(
            "INSERT INTO fragment_refs (channel, peer_ref, recorded_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&m.channel)
        .bind(fingerprint)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if first_time == 0 {
            return Ok(FragmentRecorded::Duplicate);
        }
    }
    let key = GroupKey {
        channel: m.channel.clone(),
        sender: m.sender.addr.clone(),
        recipient: m.recipient.addr.clone(),
        reference: i64::from(f.reference),
        total: i64::from(f.total),
    };
    // The same part (number and text) of a message joined within the
    // window is a copy: kept aside, in case a new message begins or ends
    // with the same part. Any other part starts a new message.
    let copy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM joined_parts WHERE channel = $1 AND sender = $2 \
         AND recipient = $3 AND reference = $4 AND total = $5 AND part = $6 AND text = $7 \
         AND joined_at >= $8)",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .bind(i64::from(f.part))
    .bind(&m.text)
    .bind(now.saturating_sub(window_ms))
    .fetch_one(&mut *c)
    .await?;
    // A part that is not a copy takes the place of a copy under its number.
    // Its id (the table has no row ids) is a hash of its key.
    let inserted: Option<(i64, i64)> = sqlx::query_as(
        "WITH put AS (INSERT INTO fragments (channel, sender, sender_ton, sender_npi, recipient, \
         recipient_ton, recipient_npi, reference, total, part, text, received_at, copy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (channel, sender, recipient, reference, total, part) DO UPDATE SET \
         sender_ton = excluded.sender_ton, sender_npi = excluded.sender_npi, \
         recipient_ton = excluded.recipient_ton, recipient_npi = excluded.recipient_npi, \
         text = excluded.text, received_at = excluded.received_at, copy = 0 \
         WHERE fragments.copy = 1 AND excluded.copy = 0 RETURNING part, xmax = 0 AS fresh) \
         SELECT hashtextextended(concat_ws(' ', $1, $2, $5, $8, $9, put.part), 0) & 9223372036854775807, \
         (SELECT count(*) FROM fragments WHERE channel = $1 \
         AND sender = $2 AND recipient = $5 AND reference = $8 AND total = $9) \
         + CAST(put.fresh AS INTEGER) FROM put",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(i64::from(m.sender.ton))
    .bind(i64::from(m.sender.npi))
    .bind(&key.recipient)
    .bind(i64::from(m.recipient.ton))
    .bind(i64::from(m.recipient.npi))
    .bind(key.reference)
    .bind(key.total)
    .bind(i64::from(f.part))
    .bind(&m.text)
    .bind(m.received_at)
    .bind(i64::from(copy))
    .fetch_optional(&mut *c)
    .await?;
    // The count ran on the snapshot before the statement: a row inserted
    // (not one that replaced a copy) is one more.
    let Some((part_id, have)) = inserted else {
        return Ok(FragmentRecorded::Duplicate);
    };
    if have < key.total {
        return Ok(if copy {
            FragmentRecorded::Duplicate
        } else {
            FragmentRecorded::Waiting(part_id)
        });
    }
    match join_group(c, &key, window_ms, now).await? {
        Some(stored) => Ok(FragmentRecorded::Joined(stored)),
        None => Ok(FragmentRecorded::Duplicate),
    }
}

/// A stored part's columns, as [`join_group`] reads them.
type FragmentRow = (i64, String, i64, i64, String, i64, String, i64, i64);

/// Joins a group's parts (in order) into a message, records it, and
/// remembers its parts as joined. `None` when the group holds only copies
/// of parts joined before (dropped) or the joined text is a redelivery of
/// a message already recorded.
async fn join_group(
    c: &mut PgConnection,
    key: &GroupKey,
    window_ms: i64,
    now: i64,
) -> sqlx::Result<Option<StoredMessage>> {
    let rows: Vec<FragmentRow> = sqlx::query_as(
        "DELETE FROM fragments WHERE channel = $1 AND sender = $2 AND recipient = $3 \
         AND reference = $4 AND total = $5 RETURNING part, text, copy, received_at, \
         sender, sender_ton, recipient, recipient_ton, sender_npi * 256 + recipient_npi",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .fetch_all(&mut *c)
    .await?;
    let mut parts: Vec<StoredFragment> = rows
        .into_iter()
        .map(
            |(
                part,
                text,
                copy,
                received_at,
                sender,
                sender_ton,
                recipient,
                recipient_ton,
                npis,
            )| {
                StoredFragment {
                    part,
                    text,
                    copy: copy != 0,
                    received_at,
                    sender: Address {
                        addr: sender,
                        ton: sender_ton as u8,
                        npi: (npis / 256) as u8,
                    },
                    recipient: Address {
                        addr: recipient,
                        ton: recipient_ton as u8,
                        npi: (npis % 256) as u8,
                    },
                }
            },
        )
        .collect();
    parts.sort_by_key(|p| p.part);
    if parts.is_empty() {
        return Ok(None);
    }
    if parts.iter().all(|p| p.copy) && delivered_again(c, key, &parts, window_ms, now).await? {
        return Ok(None);
    }
    let message = joined_message(key, &parts, now);
    let recorded = record(c, &message, window_ms).await?;
    let id = match recorded {
        Recorded::New(id) | Recorded::Duplicate(id) => id,
    };
    let numbers: Vec<i64> = parts.iter().map(|p| p.part).collect();
    let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
    sqlx::query(
        "INSERT INTO joined_parts (channel, sender, recipient, reference, total, part, text, \
         message_id, joined_at) SELECT $1, $2, $3, $4, $5, part, text, $8, $9 \
         FROM UNNEST($6::BIGINT[], $7::TEXT[]) AS t(part, text) \
         ON CONFLICT (channel, sender, recipient, reference, total, part, message_id) \
         DO UPDATE SET text = excluded.text, joined_at = excluded.joined_at",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .bind(&numbers)
    .bind(&texts)
    .bind(id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(match recorded {
        Recorded::New(id) => Some(StoredMessage { id, message }),
        Recorded::Duplicate(_) => None,
    })
}

/// Whether `parts` (copies each) are all parts of one message joined
/// within the window (not parts of different ones).
async fn delivered_again(
    c: &mut PgConnection,
    key: &GroupKey,
    parts: &[StoredFragment],
    window_ms: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let numbers: Vec<i64> = parts.iter().map(|p| p.part).collect();
    let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
    // Each part's messages, in the parts' order.
    let rows: Vec<(i64, Vec<i64>)> = sqlx::query_as(
        "SELECT t.n, coalesce(array_agg(j.message_id) FILTER (WHERE j.message_id IS NOT NULL), '{}') \
         FROM UNNEST($6::BIGINT[], $7::TEXT[]) WITH ORDINALITY AS t(part, text, n) \
         LEFT JOIN joined_parts j ON j.channel = $1 AND j.sender = $2 AND j.recipient = $3 \
         AND j.reference = $4 AND j.total = $5 AND j.part = t.part AND j.text = t.text \
         AND j.joined_at >= $8 GROUP BY t.n ORDER BY t.n",
    )
    .bind(&key.channel)
    .bind(&key.sender)
    .bind(&key.recipient)
    .bind(key.reference)
    .bind(key.total)
    .bind(&numbers)
    .bind(&texts)
    .bind(now.saturating_sub(window_ms))
    .fetch_all(&mut *c)
    .await?;
    one_message_has_all(
        rows.into_iter()
            .map(|(_, ids)| Ok::<_, sqlx::Error>(ids.into_iter().collect::<HashSet<i64>>())),
    )
}

/// Joins stale groups (see
/// [`Journal::join_stale_fragments`](crate::journal::Journal::join_stale_fragments)).
pub(super) async fn join_stale(
    c: &mut PgConnection,
    received_before: i64,
    window_ms: i64,
    now: i64,
) -> sqlx::Result<Vec<StoredMessage>> {
    let groups: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT channel, sender, recipient, reference, total FROM fragments \
         GROUP BY channel, sender, recipient, reference, total HAVING min(received_at) < $1 LIMIT 1000",
    )
    .bind(received_before)
    .fetch_all(&mut *c)
    .await?;
    let mut joined = Vec::new();
    for (channel, sender, recipient, reference, total) in groups {
        let key = GroupKey {
            channel,
            sender,
            recipient,
            reference,
            total,
        };
        if let Some(stored) = join_group(c, &key, window_ms, now).await? {
            joined.push(stored);
        }
    }
    sqlx::query("DELETE FROM joined_parts WHERE joined_at < $1")
        .bind(now.saturating_sub(window_ms))
        .execute(&mut *c)
        .await?;
    Ok(joined)
}
