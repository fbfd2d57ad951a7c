-- The organization's model (groups, computers, applications, policies, blocklists), the
-- agents' credentials and the events they deliver. Times are Unix milliseconds, flags 0/1
-- BIGINTs; rules are JSON arrays of policy-file rules (portcullis_policy_file::document).
CREATE TABLE org_state (
    org_id BIGINT PRIMARY KEY REFERENCES organizations (id),
    version BIGINT NOT NULL,
    bundle_seed TEXT NOT NULL,
    mode TEXT NOT NULL,
    mode_until TEXT,
    capture_into TEXT,
    script_control BIGINT NOT NULL DEFAULT 0 CHECK (script_control IN (0, 1))
);
CREATE TABLE computer_groups (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    path TEXT NOT NULL,
    mode TEXT,
    mode_until TEXT,
    capture_into TEXT,
    enroll_token_hash TEXT UNIQUE,
    created_ms BIGINT NOT NULL,
    UNIQUE (org_id, path)
);
CREATE TABLE computers (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    group_id BIGINT REFERENCES computer_groups (id),
    name TEXT NOT NULL,
    os TEXT NOT NULL,
    mode TEXT,
    mode_until TEXT,
    capture_into TEXT,
    credential_hash TEXT UNIQUE,
    host_json TEXT,
    agent_version TEXT,
    enrolled_ms BIGINT NOT NULL,
    last_seen_ms BIGINT,
    bundle_version BIGINT NOT NULL DEFAULT 0,
    UNIQUE (org_id, name)
);
CREATE TABLE applications (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    description TEXT,
    rules_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE policies (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    description TEXT,
    position BIGINT NOT NULL,
    applications_json TEXT NOT NULL,
    action TEXT NOT NULL,
    ringfence TEXT,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    expires TEXT,
    created_ms BIGINT NOT NULL,
    hits BIGINT NOT NULL DEFAULT 0,
    last_matched_ms BIGINT,
    builtin BIGINT NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),
    UNIQUE (org_id, name)
);
CREATE TABLE blocklists (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    description TEXT,
    rules_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE blocklist_hashes (
    blocklist_id BIGINT NOT NULL REFERENCES blocklists (id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (blocklist_id, hash)
);
CREATE TABLE blocklist_approvals (
    blocklist_id BIGINT NOT NULL REFERENCES blocklists (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enforce', 'monitor')),
    approved_by TEXT NOT NULL,
    approved_ms BIGINT NOT NULL,
    PRIMARY KEY (blocklist_id, scope)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    computer_id BIGINT NOT NULL REFERENCES computers (id) ON DELETE CASCADE,
    event_key TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    verdict TEXT NOT NULL,
    mode TEXT NOT NULL,
    policy TEXT,
    reason TEXT NOT NULL,
    file_path TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    file_kind TEXT NOT NULL,
    process_exe TEXT,
    user_name TEXT,
    record_json TEXT NOT NULL,
    UNIQUE (computer_id, event_key)
);
CREATE INDEX events_org_at ON events (org_id, at_ms);
