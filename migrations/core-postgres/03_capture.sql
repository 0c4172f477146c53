-- Capture: a trigger on the dossier table appends every insert, update and
-- delete to motcua_feed.changes in the same transaction, keeps
-- motcua_feed.current up to date, and NOTIFYs the relay. Then the dossiers
-- already in the table are copied into motcua_feed.current (the snapshot's
-- starting state). Idempotent; run after 01 and 02. The table name
-- (public.dossiers) and its code column (ma_ho_so) are the example's: adapt.
BEGIN;

-- Appends one change of `code`: its full record, or a tombstone when
-- `record` is NULL. The version is the change row's id: per dossier it
-- only grows, because the row lock on the dossier serialises its writers
-- and the id is drawn after the lock is held.
CREATE OR REPLACE FUNCTION motcua_feed.append(p_code text, p_record jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint := nextval(pg_get_serial_sequence('motcua_feed.changes', 'id'));
    v_deleted boolean := p_record IS NULL;
BEGIN
    INSERT INTO motcua_feed.changes (id, code, version, deleted, record)
    VALUES (v_id, p_code, v_id, v_deleted, p_record);
    INSERT INTO motcua_feed.current AS c (code, version, deleted, record)
    VALUES (p_code, v_id, v_deleted, p_record)
    ON CONFLICT (code) DO UPDATE
        SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, record = EXCLUDED.record
        WHERE c.version < EXCLUDED.version;
    -- A hint for the relay's long-polls (delivered at commit, merged per
    -- transaction); the relay re-checks on a timer as well.
    PERFORM pg_notify('motcua_feed', '');
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION motcua_feed.capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_new jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM motcua_feed.append(OLD.ma_ho_so, NULL);
        RETURN NULL;
    END IF;
    v_new := motcua_feed.record_of(NEW);
    IF TG_OP = 'UPDATE' THEN
        IF OLD.ma_ho_so IS DISTINCT FROM NEW.ma_ho_so THEN
            -- A renamed dossier: the old code is gone.
            PERFORM motcua_feed.append(OLD.ma_ho_so, NULL);
        ELSIF motcua_feed.record_of(OLD) = v_new THEN
            -- Nothing the feed serves changed (another column did).
            RETURN NULL;
        END IF;
    END IF;
    PERFORM motcua_feed.append(NEW.ma_ho_so, v_new);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS motcua_feed_capture ON public.dossiers;
CREATE TRIGGER motcua_feed_capture
    AFTER INSERT OR UPDATE OR DELETE ON public.dossiers
    FOR EACH ROW EXECUTE FUNCTION motcua_feed.capture();

-- TRUNCATE is not captured row by row: refuse it, so that the feed cannot
-- silently miss a mass deletion (delete with DELETE, or drop this trigger,
-- truncate, and run motcua_feed.reset_epoch() and this file again).
CREATE OR REPLACE FUNCTION motcua_feed.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of % is not captured by the core feed; use DELETE (see motcua_feed)', TG_TABLE_NAME;
END
$$;
DROP TRIGGER IF EXISTS motcua_feed_no_truncate ON public.dossiers;
CREATE TRIGGER motcua_feed_no_truncate
    BEFORE TRUNCATE ON public.dossiers
    FOR EACH STATEMENT EXECUTE FUNCTION motcua_feed.refuse_truncate();

-- The dossiers already there: into motcua_feed.current, not the log
-- (clients start from the snapshot). Writers wait meanwhile, so none of
-- their changes can race the copy; codes already captured are kept.
LOCK TABLE public.dossiers IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO motcua_feed.current (code, version, deleted, record)
SELECT d.ma_ho_so, nextval(pg_get_serial_sequence('motcua_feed.changes', 'id')), false,
       motcua_feed.record_of(d)
FROM public.dossiers d
WHERE NOT EXISTS (SELECT 1 FROM motcua_feed.current c WHERE c.code = d.ma_ho_so);

COMMIT;
