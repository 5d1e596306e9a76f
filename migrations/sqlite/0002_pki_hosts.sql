-- Internal PKI, enrollment, hosts and their package inventory.
-- Portable across SQLite and PostgreSQL: TEXT ids, BIGINT times (unix seconds) and booleans (0/1).

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    last_seen BIGINT,
    os_id TEXT NOT NULL DEFAULT '',
    os_version_id TEXT NOT NULL DEFAULT '',
    os_pretty_name TEXT NOT NULL DEFAULT '',
    kernel TEXT NOT NULL DEFAULT '',
    arch TEXT NOT NULL DEFAULT '',
    uptime_seconds BIGINT NOT NULL DEFAULT 0,
    reboot_required BIGINT NOT NULL DEFAULT 0,
    agent_version TEXT NOT NULL DEFAULT '',
    package_manager TEXT NOT NULL DEFAULT '',
    -- Digest (Inventory::digest, recomputed by the server) of the inventory stored below.
    inventory_digest TEXT NOT NULL DEFAULT '',
    inventory_at BIGINT,
    installed_count BIGINT NOT NULL DEFAULT 0,
    pending_updates BIGINT NOT NULL DEFAULT 0,
    security_updates BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE INDEX hosts_last_seen ON hosts (last_seen);

-- Host client certificates issued by the internal CA. `serial` is the lowercase hex of the
-- DER serial's content bytes (x509-parser `raw_serial`), see certs::serial_hex_of_der.
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT
);
CREATE INDEX certificates_host ON certificates (host_id);

-- One-time enrollment tokens; only the SHA-256 (hex) of the token is stored.
-- `used_by_host` has no foreign key: the token row outlives a deleted host as history.
CREATE TABLE enroll_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by_host TEXT
);
CREATE INDEX enroll_tokens_created ON enroll_tokens (created_at);

CREATE TABLE host_packages (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    arch TEXT NOT NULL,
    PRIMARY KEY (host_id, name, arch, version)
);

CREATE TABLE host_updates (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    arch TEXT NOT NULL,
    current_version TEXT NOT NULL,
    candidate_version TEXT NOT NULL,
    source TEXT NOT NULL,
    security BIGINT NOT NULL
);
CREATE INDEX host_updates_host ON host_updates (host_id, name);
