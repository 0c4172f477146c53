-- Replies that waited too long for their channel (journal.reply_expiry_secs)
-- are recorded `expired` and never sent; the retention purge erases them like
-- the others. SQLite cannot change a CHECK constraint in place, so the table
-- is rebuilt with the new state allowed (nothing references `replies`).
CREATE TABLE replies_with_expiry (
    message_id      INTEGER PRIMARY KEY REFERENCES messages (id),
    outcome         TEXT    NOT NULL,             -- found, not_found, help, ... or why no reply (kept after purge)
    text            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'accepted', 'delivered', 'failed', 'suppressed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    peer_ids        TEXT,                          -- message ids the SMSC/peer gave the parts, space-separated
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER                        -- first handed to the channel (see 20261127000008)
) STRICT;

INSERT INTO replies_with_expiry
    (message_id, outcome, text, state, attempts, next_attempt_at, last_error, peer_ids, created_at, updated_at, sent_at)
SELECT message_id, outcome, text, state, attempts, next_attempt_at, last_error, peer_ids, created_at, updated_at, sent_at
FROM replies;

DROP TABLE replies;
ALTER TABLE replies_with_expiry RENAME TO replies;
CREATE INDEX replies_due ON replies (state, next_attempt_at);
