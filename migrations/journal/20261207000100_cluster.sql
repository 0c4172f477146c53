-- The gateways sharing this state database (one row on a single host).
-- Each node renews its lease by heartbeat; a node whose lease lapsed is
-- taken over: its unanswered messages move to the taker (messages.node) and
-- its incarnation is bumped, so the old process, if it wakes, learns at its
-- next heartbeat that it no longer owns them. See src/cluster/mod.rs.
CREATE TABLE nodes (
    name          TEXT    PRIMARY KEY NOT NULL,
    incarnation   INTEGER NOT NULL,             -- +1 at every start and every takeover
    state         TEXT    NOT NULL CHECK (state IN ('live', 'stopped', 'taken')),
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,             -- the database's clock, Unix ms
    lease_until   INTEGER NOT NULL,             -- taken over once this has passed
    taken_by      TEXT,                         -- the node that took its messages over
    taken_at      INTEGER,
    channels      TEXT    NOT NULL DEFAULT '{}' -- its links and modems as it last published them (JSON)
) STRICT;

-- The node that answers the message: the one that recorded it, or the one
-- that took it over. '' for messages recorded before clustering.
ALTER TABLE messages ADD COLUMN node TEXT NOT NULL DEFAULT '';
