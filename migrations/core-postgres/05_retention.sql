-- Retention and history resets. Idempotent.
--
--   SELECT motcua_feed.purge(interval '7 days');  -- e.g. hourly (cron, pg_cron)
--   SELECT motcua_feed.reset_epoch();             -- after a restore from backup
BEGIN;

-- Deletes the change rows older than `older_than` (at least the last
-- position among them and everything before it in feed order) and records
-- that position as the retained-from watermark: the relay answers
-- 410 cursor_expired to a cursor before it. Only rows of finished
-- transactions are purged. Tombstones whose change row is gone leave
-- motcua_feed.current too. Returns the number of change rows deleted.
CREATE OR REPLACE FUNCTION motcua_feed.purge(older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_xid xid8;
    v_id bigint;
    v_deleted bigint;
BEGIN
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'purge: older_than must not be negative, got %', older_than;
    END IF;
    -- One purge at a time; the relay reads on meanwhile.
    PERFORM 1 FROM motcua_feed.settings FOR UPDATE;
    SELECT c.xid, c.id INTO v_xid, v_id
    FROM motcua_feed.changes c
    WHERE c.changed_at < now() - older_than
      AND c.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY c.xid DESC, c.id DESC
    LIMIT 1;
    IF v_id IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM motcua_feed.changes c WHERE (c.xid, c.id) <= (v_xid, v_id);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    UPDATE motcua_feed.settings
    SET retained_xid = v_xid, retained_id = v_id
    WHERE (retained_xid, retained_id) < (v_xid, v_id);
    DELETE FROM motcua_feed.current cur
    WHERE cur.deleted
      AND NOT EXISTS (SELECT 1 FROM motcua_feed.changes c WHERE c.id = cur.version);
    RETURN v_deleted;
END
$$;

-- A new history: a new epoch, an empty log, no watermark. Every client
-- gets 410 epoch_changed and re-snapshots from motcua_feed.current. Run it
-- after restoring the database from a backup (the log then rewinds and
-- transaction ids restart), after rewriting versions, or after changing
-- motcua_feed.current by hand.
CREATE OR REPLACE FUNCTION motcua_feed.reset_epoch() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_epoch text := motcua_feed.fresh_epoch();
BEGIN
    PERFORM 1 FROM motcua_feed.settings FOR UPDATE;
    DELETE FROM motcua_feed.changes;
    DELETE FROM motcua_feed.current WHERE deleted;
    UPDATE motcua_feed.settings SET epoch = v_epoch, retained_xid = '0', retained_id = 0;
    PERFORM pg_notify('motcua_feed', '');
    RETURN v_epoch;
END
$$;

COMMIT;
