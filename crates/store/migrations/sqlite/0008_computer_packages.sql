-- Each computer's installed packages as its agent last reported them (replaced whole by each
-- report), and when that was.
CREATE TABLE computer_packages (
    computer_id BIGINT NOT NULL REFERENCES computers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    arch TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (computer_id, name, arch)
);
CREATE INDEX computer_packages_name ON computer_packages (name);
ALTER TABLE computers ADD COLUMN packages_ms BIGINT;
