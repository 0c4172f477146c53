-- Keeping the read model in step with the one-stop core (src/sync/).

-- The snapshot generation in which a dossier was last listed by the core: a
-- dossier a completed snapshot did not list no longer exists at the core.
ALTER TABLE dossiers ADD COLUMN seen_gen INTEGER NOT NULL DEFAULT 0;

-- Deleted dossiers' last versions, so that an older update arriving late
-- (a replay, a snapshot page read before the deletion) cannot bring one back.
CREATE TABLE dossier_tombstones (
    code        TEXT    PRIMARY KEY NOT NULL,
    version     INTEGER NOT NULL,
    deleted_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- Where each sync source stands. Written in the same transaction as the
-- changes it accounts for, so a crash never separates the two.
CREATE TABLE sync_state (
    source          TEXT    PRIMARY KEY NOT NULL,  -- "feed", "jetstream", "push"
    epoch           TEXT    NOT NULL,              -- the core's epoch this state belongs to
    stage           TEXT    NOT NULL CHECK (stage IN ('snapshot', 'streaming')),
    cursor          TEXT,                          -- streaming: the next `after`; snapshot: the head noted
    page_token      TEXT,                          -- snapshot: the next page (NULL: the first)
    authoritative   INTEGER NOT NULL DEFAULT 0,    -- snapshot: the core's records win whatever their versions
    generation      INTEGER NOT NULL,              -- snapshot generation (dossiers.seen_gen)
    pending         INTEGER,                       -- changes the core still had after the cursor
    last_ok_at      INTEGER,                       -- ms since the epoch: last successful exchange with the core
    last_applied_at INTEGER,                       -- ms: last change applied
    applied_total   INTEGER NOT NULL DEFAULT 0,    -- changes that altered the read model
    last_error      TEXT,                          -- the last failure, cleared on success
    updated_at      INTEGER NOT NULL
) STRICT;
