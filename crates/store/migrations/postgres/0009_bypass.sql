-- Offline bypass codes: each computer's agent-made key (sealed like the bundle seeds) and the
-- counter of codes issued for it.
ALTER TABLE computers ADD COLUMN bypass_key TEXT;
ALTER TABLE computers ADD COLUMN bypass_counter BIGINT NOT NULL DEFAULT 0;
