-- A message's node is the one whose journal writer recorded it: the writer's
-- connection names its node in the `motcua.node` setting (see
-- src/journal/postgres/mod.rs), and a message inserted without one belongs
-- to no node ('').
ALTER TABLE messages ALTER COLUMN node SET DEFAULT COALESCE(current_setting('motcua.node', true), '');
CREATE INDEX messages_by_node ON messages (node, id);
