-- Events forwarded to SIEMs: each destination has its own cursor (the last event id it
-- received), a lease (one server process sends at a time) and its last error. A bearer
-- token is sealed with the server's secret key, like the signing seeds.
CREATE TABLE forwarders (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    ca_pem TEXT,
    token_sealed TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    cursor_id BIGINT NOT NULL DEFAULT 0,
    sent BIGINT NOT NULL DEFAULT 0,
    last_sent_ms BIGINT,
    last_error TEXT,
    last_error_ms BIGINT,
    lease_owner TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
-- Retention per organization: events older than so many days, or beyond so many, go.
ALTER TABLE org_state ADD COLUMN retention_days BIGINT;
ALTER TABLE org_state ADD COLUMN retention_events BIGINT;
-- Forwarding and retention walk an organization's events by id.
CREATE INDEX events_org_id ON events (org_id, id);
-- Events an agent could not keep (its spool's filesystem full), as it reported them.
ALTER TABLE computers ADD COLUMN events_lost BIGINT NOT NULL DEFAULT 0;
