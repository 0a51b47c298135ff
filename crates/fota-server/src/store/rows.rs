//! The store's rows and the one place they become the operator API's types.
//!
//! A row is what a query returns, shaped like its table: plain text and integers, the way
//! SQL holds them. The API types ([`fota_api`]) are what the server answers, typed (`Role`,
//! `Protocol`, `DeviceState`) and without what operators never see (token digests, manifest
//! bytes). Each row type reads itself from a result row by column name and turns itself into
//! its API type here, so a column renamed or a field added is changed in one place.

use fota_api::{
    ApiToken, AuditEntry, AuditRecord, Device, DeviceEvent, DeviceState, Millis, Protocol, Release,
    Role, RollbackOrder,
};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::error::{StoreError, StoreResult};

/// An operator token as stored (without its digest).
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
    pub(crate) revoked_at: Option<Millis>,
}

impl TokenRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }

    pub(crate) fn into_api(self) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            role: Role::parse(&self.role)
                .ok_or_else(|| StoreError::Corrupt(format!("role {}", self.role)))?,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            created_by: self.created_by,
            revoked_at: self.revoked_at,
        })
    }
}

/// Columns of [`DeviceRow`], over [`DEVICE_FROM`].
pub(crate) const DEVICE_COLUMNS: &str = "d.id, d.uuid, d.class, d.protocol, d.created_at, \
    d.revoked_at, d.last_seen_at, d.fw_version, d.fw_sequence, d.fw_sha256, d.slot, d.ota_state, \
    d.last_result, d.state, d.progress_release_id, d.progress_bytes, d.progress_total, \
    d.state_changed_at, d.assigned_release_id, d.suppressed_release_id, \
    COALESCE(d.assigned_release_id, ca.release_id) AS effective_release_id, \
    o.id AS o_id, o.reason AS o_reason, o.created_at AS o_created_at, \
    o.created_by AS o_created_by, o.delivered_at AS o_delivered_at";

/// A device with its class's assignment and its open rollback order (`o_` columns).
pub(crate) const DEVICE_FROM: &str = "FROM devices d \
    LEFT JOIN class_assignments ca ON ca.class = d.class \
    LEFT JOIN rollback_orders o ON o.device_id = d.id AND o.closed_at IS NULL";

/// A device as stored, with its open rollback order.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub(crate) id: String,
    pub(crate) uuid: Option<String>,
    pub(crate) class: Option<String>,
    pub(crate) protocol: String,
    pub(crate) created_at: Millis,
    pub(crate) revoked_at: Option<Millis>,
    pub(crate) last_seen_at: Option<Millis>,
    pub(crate) fw_version: Option<String>,
    pub(crate) fw_sequence: Option<i64>,
    pub(crate) fw_sha256: Option<String>,
    pub(crate) slot: Option<i64>,
    pub(crate) ota_state: Option<String>,
    pub(crate) last_result: Option<String>,
    pub(crate) state: String,
    pub(crate) progress_release_id: Option<String>,
    pub(crate) progress_bytes: i64,
    pub(crate) progress_total: i64,
    pub(crate) state_changed_at: Option<Millis>,
    pub(crate) assigned_release_id: Option<String>,
    pub(crate) effective_release_id: Option<String>,
    pub(crate) suppressed_release_id: Option<String>,
    pub(crate) open_order: Option<OpenOrderRow>,
}

impl DeviceRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            uuid: row.try_get("uuid")?,
            class: row.try_get("class")?,
            protocol: row.try_get("protocol")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            fw_version: row.try_get("fw_version")?,
            fw_sequence: row.try_get("fw_sequence")?,
            fw_sha256: row.try_get("fw_sha256")?,
            slot: row.try_get("slot")?,
            ota_state: row.try_get("ota_state")?,
            last_result: row.try_get("last_result")?,
            state: row.try_get("state")?,
            progress_release_id: row.try_get("progress_release_id")?,
            progress_bytes: row.try_get("progress_bytes")?,
            progress_total: row.try_get("progress_total")?,
            state_changed_at: row.try_get("state_changed_at")?,
            assigned_release_id: row.try_get("assigned_release_id")?,
            effective_release_id: row.try_get("effective_release_id")?,
            suppressed_release_id: row.try_get("suppressed_release_id")?,
            open_order: OpenOrderRow::from_row(row)?,
        })
    }

    pub(crate) fn into_api(self) -> StoreResult<Device> {
        let protocol = Protocol::parse(&self.protocol)
            .map_err(|e| StoreError::Corrupt(format!("device {:?}: {e}", self.id)))?;
        let rollback_order = self.open_order.map(|o| o.into_api(&self.id));
        Ok(Device {
            id: self.id,
            uuid: self.uuid,
            class: self.class,
            protocol,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            last_seen_at: self.last_seen_at,
            fw_version: self.fw_version,
            fw_sequence: self.fw_sequence,
            fw_sha256: self.fw_sha256,
            slot: self.slot,
            ota_state: self.ota_state,
            last_result: self.last_result,
            state: DeviceState::from(self.state),
            progress_release_id: self.progress_release_id,
            progress_bytes: self.progress_bytes,
            progress_total: self.progress_total,
            state_changed_at: self.state_changed_at,
            assigned_release_id: self.assigned_release_id,
            effective_release_id: self.effective_release_id,
            suppressed_release_id: self.suppressed_release_id,
            rollback_order,
        })
    }
}

/// A device's open rollback order, from the `o_` columns of a join (absent when `o_id` is
/// NULL). Open means not closed, so it has no outcome yet.
#[derive(Debug, Clone)]
pub(crate) struct OpenOrderRow {
    pub(crate) id: String,
    pub(crate) reason: String,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
    pub(crate) delivered_at: Option<Millis>,
}

impl OpenOrderRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Option<Self>> {
        let Some(id) = row.try_get::<Option<String>, _>("o_id")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            id,
            reason: row.try_get("o_reason")?,
            created_at: row.try_get("o_created_at")?,
            created_by: row.try_get("o_created_by")?,
            delivered_at: row.try_get("o_delivered_at")?,
        }))
    }

    pub(crate) fn into_api(self, device_id: &str) -> RollbackOrder {
        RollbackOrder {
            id: self.id,
            device_id: device_id.to_owned(),
            reason: self.reason,
            created_at: self.created_at,
            created_by: self.created_by,
            delivered_at: self.delivered_at,
            closed_at: None,
            outcome: None,
        }
    }
}

/// Columns of [`ReleaseRow`] (the manifest bytes are read only where they are served).
pub(crate) const RELEASE_COLUMNS: &str = "id, class, class_id, sequence, security_counter, \
    version, project, image_sha256, image_size, chunk_size, chunk_count, hashlist_sha256, \
    hashlist_size, manifest_digest, created_at, created_by";

/// A release as stored, without its manifest bytes.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseRow {
    pub(crate) id: String,
    pub(crate) class: String,
    pub(crate) class_id: String,
    pub(crate) sequence: i64,
    pub(crate) security_counter: i64,
    pub(crate) version: String,
    pub(crate) project: String,
    pub(crate) image_sha256: String,
    pub(crate) image_size: i64,
    pub(crate) chunk_size: i64,
    pub(crate) chunk_count: i64,
    pub(crate) hashlist_sha256: String,
    pub(crate) hashlist_size: i64,
    pub(crate) manifest_digest: String,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
}

impl ReleaseRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            class: row.try_get("class")?,
            class_id: row.try_get("class_id")?,
            sequence: row.try_get("sequence")?,
            security_counter: row.try_get("security_counter")?,
            version: row.try_get("version")?,
            project: row.try_get("project")?,
            image_sha256: row.try_get("image_sha256")?,
            image_size: row.try_get("image_size")?,
            chunk_size: row.try_get("chunk_size")?,
            chunk_count: row.try_get("chunk_count")?,
            hashlist_sha256: row.try_get("hashlist_sha256")?,
            hashlist_size: row.try_get("hashlist_size")?,
            manifest_digest: row.try_get("manifest_digest")?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
        })
    }

    pub(crate) fn into_api(self) -> Release {
        Release {
            id: self.id,
            class: self.class,
            class_id: self.class_id,
            sequence: self.sequence,
            security_counter: self.security_counter,
            version: self.version,
            project: self.project,
            image_sha256: self.image_sha256,
            image_size: self.image_size,
            chunk_size: self.chunk_size,
            chunk_count: self.chunk_count,
            hashlist_sha256: self.hashlist_sha256,
            hashlist_size: self.hashlist_size,
            manifest_digest: self.manifest_digest,
            created_at: self.created_at,
            created_by: self.created_by,
        }
    }
}

/// Columns of [`OrderRow`].
pub(crate) const ORDER_COLUMNS: &str =
    "id, device_id, reason, created_at, created_by, delivered_at, closed_at, outcome";

/// A rollback order as stored.
#[derive(Debug, Clone)]
pub(crate) struct OrderRow {
    pub(crate) id: String,
    pub(crate) device_id: String,
    pub(crate) reason: String,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
    pub(crate) delivered_at: Option<Millis>,
    pub(crate) closed_at: Option<Millis>,
    pub(crate) outcome: Option<String>,
}

impl OrderRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            device_id: row.try_get("device_id")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
            delivered_at: row.try_get("delivered_at")?,
            closed_at: row.try_get("closed_at")?,
            outcome: row.try_get("outcome")?,
        })
    }

    pub(crate) fn into_api(self) -> RollbackOrder {
        RollbackOrder {
            id: self.id,
            device_id: self.device_id,
            reason: self.reason,
            created_at: self.created_at,
            created_by: self.created_by,
            delivered_at: self.delivered_at,
            closed_at: self.closed_at,
            outcome: self.outcome,
        }
    }
}

/// A device event as stored; `detail` is JSON text.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) id: i64,
    pub(crate) device_id: String,
    pub(crate) at: Millis,
    pub(crate) kind: String,
    pub(crate) reason: Option<String>,
    pub(crate) release_id: Option<String>,
    pub(crate) bytes_done: Option<i64>,
    pub(crate) bytes_total: Option<i64>,
    pub(crate) detail: Option<String>,
}

impl EventRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            device_id: row.try_get("device_id")?,
            at: row.try_get("at")?,
            kind: row.try_get("kind")?,
            reason: row.try_get("reason")?,
            release_id: row.try_get("release_id")?,
            bytes_done: row.try_get("bytes_done")?,
            bytes_total: row.try_get("bytes_total")?,
            detail: row.try_get("detail")?,
        })
    }

    pub(crate) fn into_api(self) -> DeviceEvent {
        DeviceEvent {
            id: self.id,
            device_id: self.device_id,
            at: self.at,
            kind: self.kind,
            reason: self.reason,
            release_id: self.release_id,
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            detail: parse_detail(self.detail),
        }
    }
}

/// An audit record as stored; `detail` is JSON text.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub(crate) id: i64,
    pub(crate) at: Millis,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) detail: Option<String>,
}

impl AuditRow {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            detail: row.try_get("detail")?,
        })
    }

    pub(crate) fn into_api(self) -> AuditRecord {
        AuditRecord {
            id: self.id,
            at: self.at,
            entry: AuditEntry {
                actor: self.actor,
                action: self.action,
                target: self.target,
                detail: parse_detail(self.detail).unwrap_or(serde_json::Value::Null),
            },
        }
    }
}

/// Stored JSON detail text; text that no longer parses is shown as no detail rather than
/// failing the whole listing.
fn parse_detail(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
