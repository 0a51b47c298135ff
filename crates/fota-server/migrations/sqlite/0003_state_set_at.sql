-- When an event, a status report or an applied progress sample last set `state`, even to the
-- value it already had (`state_changed_at` moves only when the value changes). Batched progress
-- samples older than this are dropped: a late flush never overwrites an outcome that a device
-- reported after the sample was taken.
ALTER TABLE devices ADD COLUMN state_set_at BIGINT;
UPDATE devices SET state_set_at = state_changed_at;
-- The legacy device cap counts legacy rows on every creation.
CREATE INDEX devices_protocol ON devices (protocol);
