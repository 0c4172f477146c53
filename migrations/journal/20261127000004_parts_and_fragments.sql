-- Long messages both ways and delivery receipts.

-- Each part of a reply accepted by a carrier's SMSC, under the id the SMSC
-- gave it, and what its delivery receipt said. A reply is delivered when
-- every part is, failed when a part is reported undeliverable.
CREATE TABLE reply_parts (
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    part        INTEGER NOT NULL,                -- 1-based
    channel     TEXT    NOT NULL,                -- the channel it left on ("smsc:<name>")
    peer_id     TEXT    NOT NULL,                -- the SMSC's id, lowercased, leading zeros stripped
    state       TEXT    NOT NULL,                -- "accepted", or the receipt's stat (delivered, undeliverable, …)
    error       TEXT,                            -- the receipt's err / network error
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (message_id, part)
) STRICT;
CREATE INDEX reply_parts_by_peer_id ON reply_parts (channel, peer_id);

-- Receipts that arrived before the submit_sm_resp they answer was recorded
-- (or for ids we never gave): matched when the part is recorded, purged
-- with the journal's retention.
CREATE TABLE unmatched_receipts (
    receipt     INTEGER NOT NULL,                -- groups the spellings of one receipt's id
    channel     TEXT    NOT NULL,
    peer_id     TEXT    NOT NULL,                -- one spelling (as given, hex→decimal, decimal→hex)
    state       TEXT    NOT NULL,
    final       INTEGER NOT NULL,
    success     INTEGER NOT NULL,
    error       TEXT,
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX unmatched_receipts_by_peer_id ON unmatched_receipts (channel, peer_id);

-- Parts of a citizen's concatenated message, recorded (so acknowledged)
-- one by one and joined into a message when the last arrives, or when the
-- reassembly timeout passes with some missing.
CREATE TABLE fragments (
    channel       TEXT    NOT NULL,
    sender        TEXT    NOT NULL,
    sender_ton    INTEGER NOT NULL,
    sender_npi    INTEGER NOT NULL,
    recipient     TEXT    NOT NULL,
    recipient_ton INTEGER NOT NULL,
    recipient_npi INTEGER NOT NULL,
    reference     INTEGER NOT NULL,
    total         INTEGER NOT NULL,
    part          INTEGER NOT NULL,             -- 1-based
    text          TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, sender, recipient, reference, total, part)
) STRICT;
CREATE INDEX fragments_by_time ON fragments (received_at);

-- Concatenated messages already joined: a part delivered again within the
-- redelivery window is acknowledged, not made into a new message.
CREATE TABLE fragments_joined (
    channel     TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    recipient   TEXT    NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, sender, recipient, reference, total)
) STRICT;
CREATE INDEX fragments_joined_by_time ON fragments_joined (joined_at);
