-- An application's exclusions: files matching any of these rules are not the application's
-- (a vendor's signed builds except the reported ones). JSON array of rules, like rules_json.
ALTER TABLE applications ADD COLUMN except_json TEXT NOT NULL DEFAULT '[]';
