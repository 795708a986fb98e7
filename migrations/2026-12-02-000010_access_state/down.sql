DROP INDEX invites_open_expiry;
ALTER TABLE invites DROP COLUMN holds_role;
DROP TABLE site_counters;
DROP TABLE site_members;
ALTER TABLE users DROP COLUMN external;
