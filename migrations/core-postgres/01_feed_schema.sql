-- The core feed's own schema (docs/core-feed.md, "Relay"): the change log,
-- the latest record per dossier, and the settings (epoch, retention
-- watermark). Run as the owner of the dossier table. Idempotent.
BEGIN;

CREATE SCHEMA IF NOT EXISTS motcua_feed;

-- The change log: one full-state record (or tombstone) per change, appended
-- by the trigger in the changing transaction. `xid` is that transaction's
-- id: the relay serves rows in (xid, id) order and only those whose
-- transaction is older than every running one, so a transaction that
-- commits late is never skipped. `version` = `id`.
CREATE TABLE IF NOT EXISTS motcua_feed.changes (
    id         bigserial PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    code       text COLLATE "C" NOT NULL,
    version    bigint NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    record     jsonb,
    changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK (deleted OR record IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS changes_xid_id ON motcua_feed.changes (xid, id);
CREATE INDEX IF NOT EXISTS changes_changed_at ON motcua_feed.changes (changed_at);

-- The latest record per dossier (tombstones kept while the log holds
-- them): what the snapshot and the digest read. Codes in byte order
-- (COLLATE "C"), as the protocol orders them.
CREATE TABLE IF NOT EXISTS motcua_feed.current (
    code    text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    record  jsonb,
    CHECK (deleted OR record IS NOT NULL)
);

-- One row. `epoch`: changes whenever the log's history is reset
-- (motcua_feed.reset_epoch()). (retained_xid, retained_id): the last
-- position purged (motcua_feed.purge()); an older cursor gets 410.
CREATE TABLE IF NOT EXISTS motcua_feed.settings (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch        text NOT NULL CHECK (epoch ~ '^[A-Za-z0-9]{1,64}$'),
    retained_xid xid8 NOT NULL DEFAULT '0',
    retained_id  bigint NOT NULL DEFAULT 0
);

-- A fresh random epoch (16 hex digits).
CREATE OR REPLACE FUNCTION motcua_feed.fresh_epoch() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)
$$;

INSERT INTO motcua_feed.settings (epoch) VALUES (motcua_feed.fresh_epoch())
ON CONFLICT (only_row) DO NOTHING;

COMMIT;
