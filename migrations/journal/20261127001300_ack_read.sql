-- When the peer was seen to have read the acknowledgement of a message (it
-- answered a request the gateway wrote after that acknowledgement on the
-- same connection). A copy of a message whose acknowledgement was read is
-- a new message (a citizen asking again), not a redelivery. NULL: not
-- known to be read. Written by src/journal.rs.
ALTER TABLE messages ADD COLUMN ack_read_at INTEGER;
