-- The console's message log searched by number (src/admin/traffic.rs):
-- `sender IN (<its spellings>)` newest first, without scanning the journal.
CREATE INDEX messages_by_sender ON messages (sender, id);
