-- Patch jobs (issue 4): Admin-defined hooks, jobs, and each target host's part of a job.
-- Portable across SQLite and PostgreSQL: TEXT ids, BIGINT times (unix seconds) and booleans (0/1).
-- JSON is stored as TEXT and parsed in Rust.

-- `/proc/sys/kernel/random/boot_id` from the last check-in: a different value after a reboot
-- the server asked for means the host came back.
ALTER TABLE hosts ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';

-- Pre-/post-commands, defined by Admins only. argv is a JSON array of strings (no shell).
CREATE TABLE job_hooks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    argv TEXT NOT NULL,
    timeout_secs BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX job_hooks_name_ci ON job_hooks (lower(name));

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 'apply' | 'dry_run'
    mode TEXT NOT NULL,
    -- JSON of agent::proto::jobs::PatchScope; exclude: JSON array of package names.
    scope TEXT NOT NULL,
    exclude TEXT NOT NULL,
    -- 'never' | 'if_required' | 'always'
    reboot TEXT NOT NULL,
    -- JSON arrays of HookCommand, copied from job_hooks at creation (what runs is what was
    -- chosen, even if the hook is edited or deleted later).
    pre_hooks TEXT NOT NULL,
    post_hooks TEXT NOT NULL,
    -- 'now' | 'at' | 'window'; start_at: earliest dispatch; window: the recurring window spec.
    schedule_kind TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    window_spec TEXT NOT NULL DEFAULT '',
    -- A dispatched host must start within this many seconds (outside windows).
    start_within_secs BIGINT NOT NULL,
    canary BIGINT NOT NULL,
    batch_size BIGINT NOT NULL,
    batch_percent BIGINT NOT NULL,
    max_concurrent BIGINT NOT NULL,
    failure_threshold BIGINT NOT NULL,
    -- 'scheduled' | 'running' | 'halted' | 'completed' | 'cancelled'
    state TEXT NOT NULL,
    current_wave BIGINT NOT NULL DEFAULT 0,
    wave_count BIGINT NOT NULL,
    halt_reason TEXT NOT NULL DEFAULT '',
    started_at BIGINT,
    finished_at BIGINT,
    -- The dry run this job was started from ("run this for real").
    source_job_id TEXT,
    -- Bumped by every scheduler step and state change: the first write of each such
    -- transaction, so steps on one job serialise across replicas (see jobs/scheduler.rs).
    rev BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE job_hosts (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    -- Hostname when the job was created (the list stays readable if the host is renamed).
    hostname TEXT NOT NULL,
    wave BIGINT NOT NULL,
    -- 'queued' | 'dispatched' | 'received' | 'running' | 'succeeded' | 'failed' | 'skipped'
    -- | 'interrupted' | 'cancelled'
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    -- The signed spec as dispatched; re-sent verbatim until the agent acknowledges it.
    spec_b64 TEXT NOT NULL DEFAULT '',
    signature_b64 TEXT NOT NULL DEFAULT '',
    key_id TEXT NOT NULL DEFAULT '',
    not_after BIGINT,
    dispatched_at BIGINT,
    received_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    -- JSON array of PackageChange, as the agent reported it.
    changes TEXT NOT NULL DEFAULT '[]',
    change_count BIGINT NOT NULL DEFAULT 0,
    output TEXT NOT NULL DEFAULT '',
    -- 'none' | 'pending' | 'done' | 'timeout'
    reboot_state TEXT NOT NULL DEFAULT 'none',
    -- The host's boot_id when its reboot became pending, and when we stop waiting.
    reboot_boot_id TEXT NOT NULL DEFAULT '',
    reboot_deadline BIGINT,
    PRIMARY KEY (job_id, host_id)
);
CREATE INDEX job_hosts_host ON job_hosts (host_id, state);
CREATE INDEX job_hosts_wave ON job_hosts (job_id, wave, state);
CREATE INDEX job_hosts_dispatched ON job_hosts (state, dispatched_at);
