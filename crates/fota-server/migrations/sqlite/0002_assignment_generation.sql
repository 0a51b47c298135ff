-- Each assignment gets a number from one increasing counter, carried in status statements:
-- a device that rejected a release installs it again only under a higher generation.
ALTER TABLE devices ADD COLUMN assigned_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE class_assignments ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
