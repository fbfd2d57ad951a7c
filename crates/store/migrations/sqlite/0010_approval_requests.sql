-- Approval requests: a user on a computer asks for a denied program; an approver decides.
-- The denied event is kept as the agent recorded it (fields as JSON, like an event row).
CREATE TABLE approval_requests (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    computer_id BIGINT NOT NULL REFERENCES computers (id) ON DELETE CASCADE,
    request_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    requester TEXT,
    file_path TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    event_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    note TEXT,
    policy TEXT,
    decided_by TEXT,
    created_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    UNIQUE (computer_id, request_key)
);
CREATE INDEX approval_requests_org ON approval_requests (org_id, status);
