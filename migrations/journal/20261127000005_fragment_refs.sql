-- Parts of concatenated messages that carry their channel's own identity
-- (a GSM modem's fingerprint of the message: sender, service-centre time
-- stamp, part, text). A part read again after a crash is recognised here
-- however much later it comes, and is not joined into a second message;
-- without such an identity only the redelivery window applies.
CREATE TABLE fragment_refs (
    channel     TEXT    NOT NULL,
    peer_ref    TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (channel, peer_ref)
) STRICT;
CREATE INDEX fragment_refs_by_time ON fragment_refs (recorded_at);
