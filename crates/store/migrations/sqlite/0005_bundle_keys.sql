-- Bundle key rotation: each key an organization's bundles were signed with after its first,
-- endorsed by the key before it (JSON of portcullis_protocol::KeyEndorsement), oldest first.
-- Agents follow the chain from the key they enrolled with. org_state.bundle_seed now holds
-- the current seed sealed with the server's secret key (the store reseals older values when
-- it starts); the seeds of rotated keys are not kept.
CREATE TABLE bundle_key_endorsements (
    org_id BIGINT NOT NULL REFERENCES organizations (id),
    seq BIGINT NOT NULL,
    public_key TEXT NOT NULL,
    endorsement TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
