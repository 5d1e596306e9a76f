-- WebAuthn passkeys / security keys, ceremony state, recovery codes.
-- Portable across SQLite and PostgreSQL: TEXT ids, BIGINT times (unix seconds) and booleans (0/1).

-- Passkeys and security keys of a user (several per user). `credential` is webauthn-rs'
-- serialized `Passkey` (public key, counter, flags); `credential_id` is its id in base64url,
-- unique across all users (one authenticator credential belongs to one account).
CREATE TABLE user_passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    -- Highest signature counter seen; an assertion must raise it unless both are 0.
    sign_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX user_passkeys_user ON user_passkeys (user_id);

-- Server-side state of a WebAuthn ceremony between its start and its finish. One row per
-- (kind, binding): `binding` names who started it (a session family, a pending-login token's
-- hash, or a browser cookie's hash), so another session cannot finish it. Consumed by a
-- single DELETE ... RETURNING: each challenge is used at most once.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY,
    -- 'register' | 'authenticate' | 'discover'
    kind TEXT NOT NULL,
    binding TEXT NOT NULL,
    -- NULL for a passwordless login (the user is not known before the assertion).
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    -- webauthn-rs' serialized ceremony state (JSON); for 'register' also the chosen name.
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX webauthn_ceremonies_binding ON webauthn_ceremonies (kind, binding);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);

-- One-time recovery codes: SHA-256 hex of the (random, 80-bit) code; used_at set on use.
CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE UNIQUE INDEX recovery_codes_user_hash ON recovery_codes (user_id, code_hash);
