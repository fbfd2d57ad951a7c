-- (PostgreSQL) Hardening: enrollment tokens that expire, run out and are revoked; computer names unique
-- ignoring ASCII case; enrollments of a taken name held for an administrator; agents'
-- bundle failures; users that can be disabled; API tokens that expire or only read; login
-- throttling per client address (same table, other keys). The SQLite file matches.
ALTER TABLE computer_groups ADD COLUMN enroll_expires_ms BIGINT;
ALTER TABLE computer_groups ADD COLUMN enroll_uses_left BIGINT;
-- Names that differ only in case (possible before this migration) get their id appended,
-- so that the unique index can be built and no model is left failing to load.
UPDATE computers SET name = name || '-' || CAST(id AS TEXT)
    WHERE EXISTS (SELECT 1 FROM computers c2 WHERE c2.org_id = computers.org_id
                  AND lower(c2.name) = lower(computers.name) AND c2.id < computers.id);
CREATE UNIQUE INDEX computers_org_name_nocase ON computers (org_id, lower(name));
UPDATE computers SET os = 'linux' WHERE os NOT IN ('linux', 'windows', 'macos');
ALTER TABLE computers ADD COLUMN bundle_error TEXT;
CREATE TABLE pending_enrollments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    group_id BIGINT REFERENCES computer_groups (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    os TEXT NOT NULL,
    host_json TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE,
    requested_ms BIGINT NOT NULL
);
CREATE INDEX pending_enrollments_org ON pending_enrollments (org_id, requested_ms);
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT;
ALTER TABLE api_tokens ADD COLUMN read_only BIGINT NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1));
ALTER TABLE api_tokens ADD COLUMN last_used_ms BIGINT;
CREATE INDEX sessions_user ON sessions (user_id);
