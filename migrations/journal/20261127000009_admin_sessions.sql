-- Admin console sessions (src/admin/sessions.rs): a browser's cookie session
-- or a script's bearer token. Only the SHA-256 of the secret is kept, so a
-- copy of this file does not let anyone in. Times are Unix milliseconds, UTC.
CREATE TABLE admin_sessions (
    token_hash    TEXT    PRIMARY KEY NOT NULL,     -- hex SHA-256 of the secret
    username      TEXT    NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    kind          TEXT    NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    csrf_token    TEXT    NOT NULL,                 -- cookie sessions: the X-CSRF-Token to send; bearer: ''
    label         TEXT    NOT NULL DEFAULT '',      -- a script's token: what it is for
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL                  -- the hard end; cookie sessions also end when idle
) STRICT;
CREATE INDEX admin_sessions_by_user ON admin_sessions (username);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);
