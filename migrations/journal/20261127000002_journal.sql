-- The journal: every citizen's message as it arrived, recorded before the
-- carrier or peer is acknowledged, and the reply it earned (the outbox).
-- Times are Unix milliseconds (UTC).
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,          -- our message id (hex in submit_sm_resp)
    channel         TEXT    NOT NULL,             -- "listener:<account>" or "smsc:<name>"
    peer_ref        TEXT,                         -- the peer's own id for the message, when it gives one
    sender          TEXT    NOT NULL,             -- source_addr as received
    sender_ton      INTEGER NOT NULL,
    sender_npi      INTEGER NOT NULL,
    recipient       TEXT    NOT NULL,             -- the number texted
    recipient_ton   INTEGER NOT NULL,
    recipient_npi   INTEGER NOT NULL,
    text            TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    purged          INTEGER NOT NULL DEFAULT 0    -- 1 once text and numbers were erased after retention
) STRICT;

-- Redelivery detection: the same peer id, or the same sender and text recently.
CREATE INDEX messages_by_peer_ref ON messages (channel, peer_ref) WHERE peer_ref IS NOT NULL;
CREATE INDEX messages_by_sender_text ON messages (channel, sender, text, received_at);
CREATE INDEX messages_by_time ON messages (received_at);

CREATE TABLE replies (
    message_id      INTEGER PRIMARY KEY REFERENCES messages (id),
    outcome         TEXT    NOT NULL,             -- found, not_found, help, ... or why no reply (kept after purge)
    text            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'accepted', 'delivered', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    peer_ids        TEXT,                          -- message ids the SMSC/peer gave the parts, space-separated
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX replies_due ON replies (state, next_attempt_at);
