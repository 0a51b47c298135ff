-- Every root record version the server has held, so a device several versions behind can walk
-- the chain one verified step at a time. Written once per version, never changed.
CREATE TABLE root_records (
    version       BIGINT PRIMARY KEY,
    record        BLOB NOT NULL,
    published_at  BIGINT NOT NULL,
    published_by  TEXT NOT NULL
);
