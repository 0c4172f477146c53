-- Abuse protection (src/abuse): who is never answered, who is always answered,
-- and who is being silenced for going over a rate limit. Kept in SQLite so that
-- a restarted gateway goes on silencing the same senders.
-- Senders are international digits as Msisdn::as_international writes them
-- (84912345678); times are Unix milliseconds, UTC.

-- Senders who get no answer: scanners blocked automatically, or blocked by an
-- admin. A row whose `until` has passed no longer counts and is purged.
CREATE TABLE blocks (
    sender      TEXT    PRIMARY KEY NOT NULL
                CHECK (length(sender) BETWEEN 8 AND 15 AND sender NOT GLOB '*[^0-9]*'),
    until       INTEGER,                    -- end of the block; NULL = permanent
    reason      TEXT    NOT NULL,           -- why, for the admin console
    created_at  INTEGER NOT NULL            -- when the block was made
) STRICT;

-- Senders that are always answered: never rate limited, never blocked
-- (agency staff, test phones).
CREATE TABLE allow_list (
    sender      TEXT    PRIMARY KEY NOT NULL
                CHECK (length(sender) BETWEEN 8 AND 15 AND sender NOT GLOB '*[^0-9]*'),
    created_at  INTEGER NOT NULL            -- when the sender was added
) STRICT;

-- Senders over a rate limit: silenced until `until`; the one polite notice was
-- sent and no other is sent before `noticed_until`. Purged once both passed.
CREATE TABLE rate_limited (
    sender         TEXT    PRIMARY KEY NOT NULL
                   CHECK (length(sender) BETWEEN 8 AND 15 AND sender NOT GLOB '*[^0-9]*'),
    until          INTEGER NOT NULL,        -- silence ("rate limited") until then
    noticed_until  INTEGER NOT NULL         -- no new notice before then
) STRICT;
