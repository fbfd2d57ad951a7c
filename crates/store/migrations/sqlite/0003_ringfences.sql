-- Ringfence profiles: each is a policy-file RingfenceDoc kept as JSON (files, network,
-- children), so that a new kind of rule needs no migration.
CREATE TABLE ringfences (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    doc_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
