-- Access control: host groups, who may see which group, invitations, session checks.
-- Portable across SQLite and PostgreSQL: TEXT ids, BIGINT times (unix seconds) and booleans (0/1).

CREATE TABLE host_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Names are unique case-insensitively, like user names.
CREATE UNIQUE INDEX host_groups_name_ci ON host_groups (lower(name));

CREATE TABLE host_group_members (
    group_id TEXT NOT NULL REFERENCES host_groups (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, host_id)
);
CREATE INDEX host_group_members_host ON host_group_members (host_id);

-- The groups an Operator may act on (Admins see everything regardless).
CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES host_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);

-- A host enrolled with this token joins this group.
ALTER TABLE enroll_tokens ADD COLUMN group_id TEXT REFERENCES host_groups (id) ON DELETE SET NULL;

-- One-time invitation links: the invited user sets their password with it (SHA-256 at rest).
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX invitations_user ON invitations (user_id);
