-- Facts about the store itself, set once. `bundle_seeds_sealed`: every organization's bundle
-- seed has been sealed (or, when it was stored in plain text before sealing existed, replaced
-- by an endorsed rotation); from then on a seed in plain text is refused as tampered with.
CREATE TABLE store_flags (
    name TEXT PRIMARY KEY,
    set_ms BIGINT NOT NULL
);
