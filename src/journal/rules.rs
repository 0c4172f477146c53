//! The journal's decisions over values, shared by both writers (SQLite's
//! and PostgreSQL's): a part's stored receipt state and the reply's state
//! its parts make, a concatenated message joined from its parts, whether
//! copies of parts all belong to one message joined before, and the
//! redelivery rule of [`Journal::record`](super::Journal::record) applied
//! to the messages of one batch.

use std::collections::HashSet;

use super::{Address, NewMessage, ReplyState};

/// A part's receipt state as `reply_parts.state` keeps it: `done:<state>`
/// or `failed:<state>` once final, the receipt's state otherwise.
pub(super) fn stored_part_state(state: &str, is_final: bool, success: bool) -> String {
    if is_final && !success {
        format!("failed:{state}")
    } else if is_final {
        format!("done:{state}")
    } else {
        state.to_owned()
    }
}

/// The state a reply's parts make (`parts` in all, `done` delivered,
/// `failed` given up), when they decide one: failed as soon as one part
/// failed, delivered once every part is.
pub(super) fn reply_state_of_parts(parts: i64, done: i64, failed: i64) -> Option<ReplyState> {
    if failed > 0 {
        Some(ReplyState::Failed)
    } else if done == parts {
        Some(ReplyState::Delivered)
    } else {
        None
    }
}

/// The reply's error when part `part` made it fail.
pub(super) fn part_failure(part: i64, state: &str, error: Option<&str>) -> String {
    format!(
        "part {part}: {state}{}",
        error.map(|e| format!(" (err {e})")).unwrap_or_default()
    )
}

/// The group of parts of one concatenated message.
#[derive(Debug, Clone)]
pub(super) struct GroupKey {
    pub(super) channel: String,
    pub(super) sender: String,
    pub(super) recipient: String,
    pub(super) reference: i64,
    pub(super) total: i64,
}

/// One stored part of a concatenated message.
pub(super) struct StoredFragment {
    pub(super) part: i64,
    pub(super) text: String,
    /// A copy of a part joined within the redelivery window.
    pub(super) copy: bool,
    pub(super) received_at: i64,
    pub(super) sender: Address,
    pub(super) recipient: Address,
}

/// The message `parts` (in part order, at least one) make.
pub(super) fn joined_message(key: &GroupKey, parts: &[StoredFragment], now: i64) -> NewMessage {
    NewMessage {
        channel: key.channel.clone(),
        peer_ref: None,
        peer_ref_lasting: false,
        sender: parts[0].sender.clone(),
        recipient: parts[0].recipient.clone(),
        text: parts.iter().map(|p| p.text.as_str()).collect(),
        received_at: parts.iter().map(|p| p.received_at).max().unwrap_or(now),
    }
}

/// Whether some message was joined from every part: `of_part` gives, part
/// after part, the messages that part was joined into.
pub(super) fn one_message_has_all<E>(
    of_part: impl IntoIterator<Item = Result<HashSet<i64>, E>>,
) -> Result<bool, E> {
    let mut common: Option<HashSet<i64>> = None;
    for messages in of_part {
        let messages = messages?;
        let left: HashSet<i64> = match common {
            None => messages,
            Some(common) => common.intersection(&messages).copied().collect(),
        };
        if left.is_empty() {
            return Ok(false);
        }
        common = Some(left);
    }
    Ok(common.is_some())
}

/// What the redelivery rule makes of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A copy of this recorded message.
    CopyOf(i64),
    /// A copy of the message recorded earlier in the batch at this index
    /// (its id known once the batch's messages are inserted).
    CopyOfEarlier(usize),
    /// A new message.
    New,
}

/// A message of a batch, or a note of acknowledgements read, in the
/// batch's order.
pub(super) enum BatchItem<'a> {
    /// A message to record.
    Message {
        message: &'a NewMessage,
        /// Recorded messages it may be a copy of, newest first: with a
        /// lasting `peer_ref`, one with that `peer_ref` on the channel;
        /// otherwise those with its channel, sender, text and `peer_ref`,
        /// received within the window before it, not known to be read when
        /// the batch began.
        recorded: Vec<i64>,
        /// Answered on the spot: its acknowledgement counts as read at once.
        answered: bool,
    },
    /// Messages whose acknowledgement the peer read.
    Read(&'a [i64]),
}

/// The redelivery rule of [`Journal::record`](super::Journal::record) for
/// the messages of a batch in order (one verdict per message), as if each
/// were recorded after the items before it: a copy of a new message earlier
/// in the batch (the newest such) before a copy of a recorded one; a
/// message whose acknowledgement a note before it read is no longer copied.
pub(super) fn redeliveries(items: &[BatchItem<'_>], window_ms: i64) -> Vec<Verdict> {
    let mut read: HashSet<i64> = HashSet::new();
    // The messages so far, with whether each was answered on the spot.
    let mut seen: Vec<(&NewMessage, bool)> = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    for item in items {
        let (m, recorded, answered) = match item {
            BatchItem::Read(ids) => {
                read.extend(ids.iter().copied());
                continue;
            }
            BatchItem::Message {
                message,
                recorded,
                answered,
            } => (*message, recorded, *answered),
        };
        let lasting = m.peer_ref.is_some() && m.peer_ref_lasting;
        let recorded = recorded
            .iter()
            .copied()
            .find(|id| lasting || !read.contains(id));
        let earlier = (0..seen.len()).rev().find(|&j| {
            let (e, e_answered) = seen[j];
            verdicts[j] == Verdict::New
                && e.channel == m.channel
                && if lasting {
                    e.peer_ref == m.peer_ref
                } else {
                    !e_answered
                        && e.sender.addr == m.sender.addr
                        && e.text == m.text
                        && e.peer_ref == m.peer_ref
                        && e.received_at >= m.received_at.saturating_sub(window_ms)
                }
        });
        verdicts.push(match (lasting, recorded, earlier) {
            (true, Some(id), _) => Verdict::CopyOf(id),
            (_, _, Some(j)) => Verdict::CopyOfEarlier(j),
            (_, Some(id), _) => Verdict::CopyOf(id),
            (_, None, None) => Verdict::New,
        });
        seen.push((m, answered));
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: &str, text: &str, at: i64) -> NewMessage {
        NewMessage {
            channel: "listener:demo".into(),
            peer_ref: None,
            peer_ref_lasting: false,
            sender: Address::new(sender, 1, 1),
            recipient: Address::new("8058", 0, 0),
            text: text.into(),
            received_at: at,
        }
    }

    #[test]
    fn a_batch_copies_its_own_new_messages_and_respects_notes_read_before_each() {
        let ask = message("84912345678", "TC 1", 1_000_000);
        let late = message("84912345678", "TC 1", 1_000_000 + 601_000);
        let other = message("84900000001", "TC 1", 1_000_000);
        let read = [7];
        let item = |message, recorded: Vec<i64>, answered| BatchItem::Message {
            message,
            recorded,
            answered,
        };
        let verdicts = redeliveries(
            &[
                item(&ask, vec![7, 3], false),
                BatchItem::Read(&read),
                item(&ask, vec![7, 3], false),
                item(&other, vec![], true),
                item(&other, vec![], false),
                item(&late, vec![], false),
                item(&late, vec![], false),
            ],
            600_000,
        );
        assert_eq!(
            verdicts,
            vec![
                Verdict::CopyOf(7),
                // 7 was read since: the next recorded one.
                Verdict::CopyOf(3),
                Verdict::New,
                // The one before was answered on the spot: never copied.
                Verdict::New,
                // Past the window of the first ones.
                Verdict::New,
                // The newest new one before it in the batch.
                Verdict::CopyOfEarlier(4),
            ]
        );
    }
}
