-- The gateways sharing this state database; see migrations/journal/20261207000100_cluster.sql.
CREATE TABLE nodes (
    name          TEXT    PRIMARY KEY,
    incarnation   BIGINT  NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('live', 'stopped', 'taken')),
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL,
    lease_until   BIGINT  NOT NULL,
    taken_by      TEXT,
    taken_at      BIGINT,
    channels      TEXT    NOT NULL DEFAULT '{}'
);

ALTER TABLE messages ADD COLUMN node TEXT NOT NULL DEFAULT '';
