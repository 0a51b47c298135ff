-- Portable SQL on purpose (TEXT, BIGINT, BLOB; unix-millisecond timestamps): the PostgreSQL
-- folder will mirror this file with BYTEA for BLOB and BIGSERIAL for the integer keys.

-- Server-wide counters, e.g. the legacy replay nonce (strictly increasing, persisted).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  BIGINT
);

-- A device, provisioned (v2: token_hash set) or seen on the legacy API (protocol 'legacy').
CREATE TABLE devices (
    id                    TEXT PRIMARY KEY,
    uuid                  TEXT,
    class                 TEXT,
    protocol              TEXT NOT NULL,
    token_hash            BLOB UNIQUE,
    created_at            BIGINT NOT NULL,
    revoked_at            BIGINT,
    last_seen_at          BIGINT,
    -- what the device last reported running
    fw_version            TEXT,
    fw_sequence           BIGINT,
    fw_sha256             TEXT,
    slot                  BIGINT,
    ota_state             TEXT,
    last_result           TEXT,
    -- update progress, from events
    state                 TEXT NOT NULL,
    progress_release_id   TEXT,
    progress_bytes        BIGINT NOT NULL DEFAULT 0,
    progress_total        BIGINT NOT NULL DEFAULT 0,
    state_changed_at      BIGINT,
    -- explicit per-device assignment; overrides the class assignment
    assigned_release_id   TEXT,
    -- a release this device must not be offered again (rolled back from / failed), until a
    -- new explicit assignment
    suppressed_release_id TEXT
);
CREATE INDEX devices_class ON devices (class);

CREATE TABLE releases (
    id               TEXT PRIMARY KEY,
    class            TEXT NOT NULL,
    class_id         TEXT NOT NULL,
    sequence         BIGINT NOT NULL,
    security_counter BIGINT NOT NULL,
    version          TEXT NOT NULL,
    project          TEXT NOT NULL,
    image_sha256     TEXT NOT NULL,
    image_size       BIGINT NOT NULL,
    chunk_size       BIGINT NOT NULL,
    chunk_count      BIGINT NOT NULL,
    hashlist_sha256  TEXT NOT NULL,
    hashlist_size    BIGINT NOT NULL,
    manifest         BLOB NOT NULL,
    manifest_digest  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    UNIQUE (class, sequence),
    UNIQUE (class, version)
);

CREATE TABLE class_assignments (
    class        TEXT PRIMARY KEY,
    release_id   TEXT NOT NULL,
    assigned_at  BIGINT NOT NULL,
    assigned_by  TEXT NOT NULL
);

CREATE TABLE rollback_orders (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    -- when the device read the order (legacy flag read / v2 check-in answer carrying it)
    delivered_at BIGINT,
    closed_at    BIGINT,
    outcome      TEXT
);
CREATE INDEX rollback_orders_device ON rollback_orders (device_id, closed_at);
-- At most one open order per device, whatever number of server processes race.
CREATE UNIQUE INDEX rollback_orders_open ON rollback_orders (device_id) WHERE closed_at IS NULL;

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    reason      TEXT,
    release_id  TEXT,
    bytes_done  BIGINT,
    bytes_total BIGINT,
    detail      TEXT
);
CREATE INDEX events_device ON events (device_id, id);
CREATE INDEX events_at ON events (at);

-- Check-ins that changed what a device reports (version, slot, state, result); unchanged polls
-- only move devices.last_seen_at, in batches.
CREATE TABLE checkins (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    protocol    TEXT NOT NULL,
    fw_version  TEXT,
    fw_sequence BIGINT,
    fw_sha256   TEXT,
    slot        BIGINT,
    ota_state   TEXT,
    last_result TEXT
);
CREATE INDEX checkins_device ON checkins (device_id, id);
CREATE INDEX checkins_at ON checkins (at);

CREATE TABLE legacy_releases (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    version      TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    chunk_size   BIGINT NOT NULL,
    total_chunks BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
