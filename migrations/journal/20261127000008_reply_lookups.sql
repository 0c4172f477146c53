-- What each reply looked up, for the admin console's message log and
-- statistics (src/admin/traffic.rs): the canonical dossier code found in the
-- citizen's text and, when the dossier was found, its agency and procedure.
-- Written in the same journal transaction as the reply (outbox, USSD
-- dialogue, Kannel drop-in). Messages without a code have no row.
--
-- Retention (Journal::purge_before): the code goes with the message's text
-- (set to ''), since it was part of what the citizen typed; the agency and
-- procedure names are not personal data and are kept for statistics.
CREATE TABLE reply_lookups (
    message_id  INTEGER PRIMARY KEY REFERENCES messages (id),
    code        TEXT    NOT NULL,   -- canonical dossier code ('' once purged)
    agency      TEXT,               -- the agency's name, when the dossier was found
    procedure   TEXT                -- the procedure's name, when the dossier was found
) STRICT;
CREATE INDEX reply_lookups_by_code ON reply_lookups (code);

-- When the reply was first handed to the channel (sent to a bound peer,
-- accepted by an SMSC, answered on the spot for USSD and the Kannel drop-in),
-- Unix ms: latency = sent_at - messages.received_at. NULL while queued, for
-- replies never sent (failed, suppressed), and for replies recorded before
-- this migration.
ALTER TABLE replies ADD COLUMN sent_at INTEGER;
