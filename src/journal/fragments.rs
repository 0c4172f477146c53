//! The writer's SQL for `fragments`, `joined_parts` and `fragment_refs`:
//! parts of a concatenated message kept until the last one arrives (or the
//! reassembly timeout), joined in order into one message, copies of parts
//! recognised within the redelivery window, a part's lasting identity.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension};

use super::messages::record;
use super::rules::{joined_message, one_message_has_all, GroupKey, StoredFragment};
use super::{Address, FragmentRecorded, NewFragment, Recorded, StoredMessage};

/// Records one part (see
/// [`Journal::record_fragment`](super::Journal::record_fragment)).
pub(super) fn record_fragment(
    tx: &Connection,
    f: &NewFragment,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<FragmentRecorded> {
    let m = &f.message;
    if let Some(fingerprint) = &f.fingerprint {
        let first_time = tx
            .prepare_cached(
                "INSERT INTO fragment_refs (channel, peer_ref, recorded_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![m.channel, fingerprint, now])?;
        if first_time == 0 {
            return Ok(FragmentRecorded::Duplicate);
        }
    }
    // The same part (number and text) of a message joined within the
    // window is a copy: kept aside, in case a new message begins or ends
    // with the same part. Any other part starts a new message.
    let copy: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM joined_parts WHERE channel = ? AND sender = ? \
             AND recipient = ? AND reference = ? AND total = ? AND part = ? AND text = ? \
             AND joined_at >= ?)",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                m.recipient.addr,
                i64::from(f.reference),
                i64::from(f.total),
                i64::from(f.part),
                m.text,
                now.saturating_sub(window_ms)
            ],
            |row| row.get(0),
        )?;
    // A part that is not a copy takes the place of a copy under its number.
    let part_id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO fragments (channel, sender, sender_ton, sender_npi, recipient, recipient_ton, \
             recipient_npi, reference, total, part, text, received_at, copy) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO UPDATE SET sender_ton = excluded.sender_ton, sender_npi = excluded.sender_npi, \
             recipient_ton = excluded.recipient_ton, recipient_npi = excluded.recipient_npi, \
             text = excluded.text, received_at = excluded.received_at, copy = 0 \
             WHERE fragments.copy = 1 AND excluded.copy = 0 RETURNING rowid",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                i64::from(m.sender.ton),
                i64::from(m.sender.npi),
                m.recipient.addr,
                i64::from(m.recipient.ton),
                i64::from(m.recipient.npi),
                i64::from(f.reference),
                i64::from(f.total),
                i64::from(f.part),
                m.text,
                m.received_at,
                copy
            ],
            |row| row.get(0),
        )
        .optional()?;
    let Some(part_id) = part_id else {
        return Ok(FragmentRecorded::Duplicate);
    };
    let have: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
             AND reference = ? AND total = ?",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                m.recipient.addr,
                i64::from(f.reference),
                i64::from(f.total)
            ],
            |row| row.get(0),
        )?;
    if have < i64::from(f.total) {
        return Ok(if copy {
            FragmentRecorded::Duplicate
        } else {
            FragmentRecorded::Waiting(part_id)
        });
    }
    let key = GroupKey {
        channel: m.channel.clone(),
        sender: m.sender.addr.clone(),
        recipient: m.recipient.addr.clone(),
        reference: i64::from(f.reference),
        total: i64::from(f.total),
    };
    match join_group(tx, &key, window_ms, now)? {
        Some(stored) => Ok(FragmentRecorded::Joined(stored)),
        None => Ok(FragmentRecorded::Duplicate),
    }
}

/// The address stored in the columns `<column>`, `<column>_ton`, `<column>_npi`.
fn stored_address(row: &rusqlite::Row<'_>, column: &str) -> rusqlite::Result<Address> {
    Ok(Address {
        addr: row.get(column)?,
        ton: row.get::<_, i64>(format!("{column}_ton").as_str())? as u8,
        npi: row.get::<_, i64>(format!("{column}_npi").as_str())? as u8,
    })
}

/// Joins a group's parts (in order) into a message, records it, and
/// remembers its parts as joined. `None` when the group holds only copies
/// of parts joined before (dropped) or the joined text is a redelivery of
/// a message already recorded.
fn join_group(
    tx: &Connection,
    key: &GroupKey,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<Option<StoredMessage>> {
    let group: [&dyn rusqlite::ToSql; 5] = [
        &key.channel,
        &key.sender,
        &key.recipient,
        &key.reference,
        &key.total,
    ];
    let parts = tx
        .prepare_cached(
            "SELECT * FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
             AND reference = ? AND total = ? ORDER BY part",
        )?
        .query_map(&group[..], |row| {
            Ok(StoredFragment {
                part: row.get("part")?,
                text: row.get("text")?,
                copy: row.get("copy")?,
                received_at: row.get("received_at")?,
                sender: stored_address(row, "sender")?,
                recipient: stored_address(row, "recipient")?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.prepare_cached(
        "DELETE FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ?",
    )?
    .execute(&group[..])?;
    if parts.is_empty() {
        return Ok(None);
    }
    if parts.iter().all(|p| p.copy) && delivered_again(tx, key, &parts, window_ms, now)? {
        return Ok(None);
    }
    let message = joined_message(key, &parts, now);
    let recorded = record(tx, &message, window_ms)?;
    let id = match recorded {
        Recorded::New(id) | Recorded::Duplicate(id) => id,
    };
    let mut remember = tx.prepare_cached(
        "INSERT INTO joined_parts (channel, sender, recipient, reference, total, part, text, \
         message_id, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT DO UPDATE SET text = excluded.text, joined_at = excluded.joined_at",
    )?;
    for part in &parts {
        remember.execute(params![
            key.channel,
            key.sender,
            key.recipient,
            key.reference,
            key.total,
            part.part,
            part.text,
            id,
            now
        ])?;
    }
    Ok(match recorded {
        Recorded::New(id) => Some(StoredMessage { id, message }),
        Recorded::Duplicate(_) => None,
    })
}

/// Whether `parts` (copies each) are all parts of one message joined
/// within the window (not parts of different ones).
fn delivered_again(
    tx: &Connection,
    key: &GroupKey,
    parts: &[StoredFragment],
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<bool> {
    let mut of_part = tx.prepare_cached(
        "SELECT message_id FROM joined_parts WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ? AND part = ? AND text = ? AND joined_at >= ?",
    )?;
    let since = now.saturating_sub(window_ms);
    let of_each = parts.iter().map(|p| {
        of_part
            .query_map(
                params![
                    key.channel,
                    key.sender,
                    key.recipient,
                    key.reference,
                    key.total,
                    p.part,
                    p.text,
                    since
                ],
                |row| row.get::<_, i64>(0),
            )?
            .collect::<rusqlite::Result<HashSet<_>>>()
    });
    one_message_has_all(of_each)
}

/// Joins stale groups (see
/// [`Journal::join_stale_fragments`](super::Journal::join_stale_fragments)).
pub(super) fn join_stale(
    tx: &Connection,
    received_before: i64,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let groups = tx
        .prepare_cached(
            "SELECT channel, sender, recipient, reference, total FROM fragments \
             GROUP BY channel, sender, recipient, reference, total HAVING min(received_at) < ? LIMIT 1000",
        )?
        .query_map(params![received_before], |row| {
            Ok(GroupKey {
                channel: row.get(0)?,
                sender: row.get(1)?,
                recipient: row.get(2)?,
                reference: row.get(3)?,
                total: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut joined = Vec::new();
    for key in groups {
        if let Some(stored) = join_group(tx, &key, window_ms, now)? {
            joined.push(stored);
        }
    }
    tx.prepare_cached("DELETE FROM joined_parts WHERE joined_at < ?")?
        .execute(params![now.saturating_sub(window_ms)])?;
    Ok(joined)
}
