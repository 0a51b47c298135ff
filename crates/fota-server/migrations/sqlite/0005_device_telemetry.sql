-- What a device describes about itself since check-in format 2. Written at once when they
-- change: the agent's check-in format, the chip, the reason of the last reset.
ALTER TABLE devices ADD COLUMN agent_format BIGINT;
ALTER TABLE devices ADD COLUMN chip_id BIGINT;
ALTER TABLE devices ADD COLUMN reset_reason BIGINT;
-- Written with the batched last-seen time: uptime, free heap, the application's attributes
-- (a JSON object of strings), and the highest check-in counter applied.
ALTER TABLE devices ADD COLUMN uptime_s BIGINT;
ALTER TABLE devices ADD COLUMN free_heap BIGINT;
ALTER TABLE devices ADD COLUMN attributes TEXT;
ALTER TABLE devices ADD COLUMN checkin_counter BIGINT NOT NULL DEFAULT 0;
