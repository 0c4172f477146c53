-- Keeping the read model in step with the one-stop core (src/sync/).

-- The snapshot generation in which a dossier was last listed by the core: a
-- dossier a completed snapshot did not list no longer exists at the core.
ALTER TABLE dossiers ADD COLUMN seen_gen bigint NOT NULL DEFAULT 0;

-- Deleted dossiers' last versions, so that an older update arriving late
-- (a replay, a snapshot page read before the deletion) cannot bring one back.
CREATE TABLE dossier_tombstones (
    code        text COLLATE "C" PRIMARY KEY,
    version     bigint NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);

-- Where each sync source stands. Written in the same transaction as the
-- changes it accounts for, so a crash never separates the two.
CREATE TABLE sync_state (
    source          text COLLATE "C" PRIMARY KEY,  -- "feed", "jetstream", "push"
    epoch           text    NOT NULL,              -- the core's epoch this state belongs to
    stage           text    NOT NULL CHECK (stage IN ('snapshot', 'streaming')),
    cursor          text,                          -- streaming: the next `after`; snapshot: the head noted
    page_token      text,                          -- snapshot: the next page (NULL: the first)
    authoritative   boolean NOT NULL DEFAULT false, -- snapshot: the core's records win whatever their versions
    generation      bigint  NOT NULL,              -- snapshot generation (dossiers.seen_gen)
    pending         bigint,                        -- changes the core still had after the cursor
    last_ok_at      bigint,                        -- ms since the epoch: last successful exchange with the core
    last_applied_at bigint,                        -- ms: last change applied
    applied_total   bigint  NOT NULL DEFAULT 0,    -- changes that altered the read model
    last_error      text,                          -- the last failure, cleared on success
    updated_at      bigint  NOT NULL
);
