-- The relay's database role: it reads the feed's tables and nothing else.
-- Idempotent. Run as a role allowed to create roles (CREATEROLE or superuser). Roles are per cluster: give it a password (or another
-- authentication method in pg_hba.conf) once:
--     ALTER ROLE motcua_relay PASSWORD '…';
-- and start the relay with postgres://motcua_relay:…@host/db.
BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'motcua_relay') THEN
        CREATE ROLE motcua_relay LOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO motcua_relay', current_database());
END
$$;

GRANT USAGE ON SCHEMA motcua_feed TO motcua_relay;
GRANT SELECT ON motcua_feed.changes, motcua_feed.current, motcua_feed.settings TO motcua_relay;
-- Belt and braces: the relay never writes.
ALTER ROLE motcua_relay SET default_transaction_read_only = on;

COMMIT;
