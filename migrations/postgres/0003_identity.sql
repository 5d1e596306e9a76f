-- Identity: users, TOTP second factor, refresh-token sessions.
-- Portable across SQLite and PostgreSQL: TEXT ids, BIGINT times (unix seconds) and booleans (0/1).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- ASCII [a-zA-Z0-9._-]{1,64}; unique case-insensitively (index below), so "Admin" and
    -- "admin" cannot be two accounts and login is case-insensitive.
    username TEXT NOT NULL,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    -- 'admin' | 'operator'
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    -- Consecutive TOTP failures, per account (not per session); reset on success or lockout.
    failed_totp BIGINT NOT NULL DEFAULT 0,
    -- TOTP locked until this time (unix seconds), NULL when not locked.
    locked_until BIGINT
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));

-- One TOTP secret per user: either pending (confirmed = 0, replaced by a new enrolment) or
-- confirmed. The secret is base32 for now; encryption at rest comes later.
CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    confirmed BIGINT NOT NULL DEFAULT 0,
    -- Highest TOTP time step accepted (enrolment or login); codes for steps <= this are replays.
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT
);

-- One row per refresh token. A login starts a family; every refresh rotates the token
-- (rotated_at set on the old row, a successor row inserted). Presenting a rotated token again
-- revokes the whole family. expires_at is the family's absolute end (start + 12 h), copied to
-- successors; last_used_at gives the 1 h sliding idle limit.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    -- SHA-256 hex of the refresh token; the token itself is never stored.
    refresh_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT,
    ip TEXT
);
CREATE INDEX sessions_family ON sessions (family_id);
CREATE INDEX sessions_user ON sessions (user_id);
