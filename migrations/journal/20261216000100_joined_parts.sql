-- Concatenated messages joined recently, part by part, under the message
-- they made: a part delivered again within the redelivery window (the same
-- part number and text under the same channel, sender, recipient, reference
-- and total) is a copy. A part that differs starts a new message: 8-bit
-- references wrap every 256 messages and some peers give every message the
-- same one. Replaces fragments_joined, which knew the group but not its
-- parts' texts (a redelivery within the window of an upgrade may be
-- answered once more).
DROP TABLE fragments_joined;
CREATE TABLE joined_parts (
    channel     TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    recipient   TEXT    NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    part        INTEGER NOT NULL,               -- 1-based
    text        TEXT    NOT NULL,
    message_id  INTEGER NOT NULL,               -- the message the parts made
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, sender, recipient, reference, total, part, message_id)
) STRICT;
CREATE INDEX joined_parts_by_time ON joined_parts (joined_at);

-- A part kept while its message waits for the others that is a copy of a
-- part joined within the window: acknowledged as a redelivery. A group whose
-- parts are all copies of one joined message is that message delivered
-- again: dropped, never answered; otherwise (a new message that begins or
-- ends like an earlier one) it is joined as usual. A part that is not a
-- copy takes the place of a copy under its number.
ALTER TABLE fragments ADD COLUMN copy INTEGER NOT NULL DEFAULT 0;
