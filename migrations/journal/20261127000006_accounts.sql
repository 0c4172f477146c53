-- Admin console accounts (src/admin): one personal account per officer, with
-- a role set by an administrator (the one-stop rules ask for personal
-- accounts). Passwords are Argon2id PHC strings, never the password itself.
-- Times are Unix milliseconds, UTC.
CREATE TABLE accounts (
    username        TEXT    PRIMARY KEY NOT NULL
                    CHECK (length(username) BETWEEN 3 AND 32 AND username NOT GLOB '*[^a-z0-9._-]*'),
    role            TEXT    NOT NULL CHECK (role IN ('administrator', 'operator', 'viewer')),
    password_hash   TEXT    NOT NULL,
    must_change     INTEGER NOT NULL DEFAULT 1 CHECK (must_change IN (0, 1)), -- first password, or reset
    failed_logins   INTEGER NOT NULL DEFAULT 0,  -- consecutive, reset by a success
    locked_until    INTEGER,                     -- refused until then after repeated failures
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- Every change an account makes (or the CLI, actor "cli"): who, what, on what.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,  -- account.create, account.password, account.role, account.lockout, ...
    target  TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
