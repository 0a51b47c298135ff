//! The store's rows and the one place they become the types the store answers.
//!
//! A row is what a query returns, shaped like its table: plain text and integers, the way
//! SQL holds them. The API types ([`fota_api`]) are what the server answers, typed (`Role`,
//! `Protocol`, `DeviceState`) and without what operators never see (token digests, manifest
//! bytes). Each row type reads itself from a result row by column name
//! (`#[derive(sqlx::FromRow)]`; no query is checked at compile time) and turns itself into its
//! API or store type here, so a column renamed or a field added is changed in one place.

use fota_api::{
    ApiToken, AuditEntry, AuditRecord, Device, DeviceEvent, DeviceState, DeviceTelemetry, Millis,
    Protocol, Release, Role, RollbackOrder,
};

use super::devices::{CheckinView, Offer};
use super::error::{StoreError, StoreResult};
use super::legacy::LegacyRelease;
use super::reports::Report;

/// An operator token as stored (without its digest).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
    pub(crate) revoked_at: Option<Millis>,
    pub(crate) expires_at: Option<Millis>,
}

impl TokenRow {
    pub(crate) fn into_api(self) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            role: Role::parse(&self.role)
                .ok_or_else(|| StoreError::Corrupt(format!("role {}", self.role)))?,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            created_by: self.created_by,
            revoked_at: self.revoked_at,
            expires_at: self.expires_at,
        })
    }
}

/// An operator token with its stored digest, for the constant-time check.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TokenAuthRow {
    #[sqlx(flatten)]
    pub(crate) token: TokenRow,
    pub(crate) token_hash: Vec<u8>,
}

/// Columns of [`DeviceRow`], over [`DEVICE_FROM`].
pub(crate) const DEVICE_COLUMNS: &str = "d.id, d.uuid, d.class, d.protocol, d.created_at, \
    d.revoked_at, d.last_seen_at, d.fw_version, d.fw_sequence, d.fw_sha256, d.slot, d.ota_state, \
    d.last_result, d.state, d.progress_release_id, d.progress_bytes, d.progress_total, \
    d.state_changed_at, d.assigned_release_id, d.suppressed_release_id, \
    d.agent_format, d.chip_id, d.reset_reason, d.uptime_s, d.free_heap, d.attributes, \
    COALESCE(d.assigned_release_id, ca.release_id) AS effective_release_id, \
    o.id AS o_id, o.reason AS o_reason, o.created_at AS o_created_at, \
    o.created_by AS o_created_by, o.delivered_at AS o_delivered_at";

/// A device with its class's assignment and its open rollback order (`o_` columns).
pub(crate) const DEVICE_FROM: &str = "FROM devices d \
    LEFT JOIN class_assignments ca ON ca.class = d.class \
    LEFT JOIN rollback_orders o ON o.device_id = d.id AND o.closed_at IS NULL";

/// A device as stored, with its open rollback order.
#[derive(Debug, Clone, sqlx::FromRow)]
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
    pub(crate) agent_format: Option<i64>,
    pub(crate) chip_id: Option<i64>,
    pub(crate) reset_reason: Option<i64>,
    pub(crate) uptime_s: Option<i64>,
    pub(crate) free_heap: Option<i64>,
    pub(crate) attributes: Option<String>,
    #[sqlx(flatten)]
    pub(crate) open_order: OpenOrderRow,
}

impl DeviceRow {
    pub(crate) fn into_api(self) -> StoreResult<Device> {
        let protocol = Protocol::parse(&self.protocol)
            .map_err(|e| StoreError::Corrupt(format!("device {:?}: {e}", self.id)))?;
        let rollback_order = self.open_order.into_api(&self.id)?;
        let attributes = match &self.attributes {
            None => Default::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                StoreError::Corrupt(format!("device {:?}: attributes: {e}", self.id))
            })?,
        };
        let telemetry = self.agent_format.map(|agent_format| DeviceTelemetry {
            agent_format,
            chip_id: self.chip_id,
            chip: self
                .chip_id
                .and_then(|c| u16::try_from(c).ok())
                .and_then(fota_protocol::v2::chip_ids::name)
                .map(str::to_owned),
            reset_reason: self.reset_reason,
            uptime_s: self.uptime_s,
            free_heap: self.free_heap,
            attributes,
        });
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
            telemetry,
        })
    }
}

/// A device's open rollback order, from the `o_` columns of a join: every column is NULL when
/// the device has none. Open means not closed, so it has no outcome yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OpenOrderRow {
    #[sqlx(rename = "o_id")]
    pub(crate) id: Option<String>,
    #[sqlx(rename = "o_reason")]
    pub(crate) reason: Option<String>,
    #[sqlx(rename = "o_created_at")]
    pub(crate) created_at: Option<Millis>,
    #[sqlx(rename = "o_created_by")]
    pub(crate) created_by: Option<String>,
    #[sqlx(rename = "o_delivered_at")]
    pub(crate) delivered_at: Option<Millis>,
}

impl OpenOrderRow {
    pub(crate) fn into_api(self, device_id: &str) -> StoreResult<Option<RollbackOrder>> {
        let Some(id) = self.id else {
            return Ok(None);
        };
        let corrupt = |column| StoreError::Corrupt(format!("rollback order {id:?}: {column} NULL"));
        Ok(Some(RollbackOrder {
            reason: self.reason.ok_or_else(|| corrupt("reason"))?,
            created_at: self.created_at.ok_or_else(|| corrupt("created_at"))?,
            created_by: self.created_by.ok_or_else(|| corrupt("created_by"))?,
            device_id: device_id.to_owned(),
            delivered_at: self.delivered_at,
            closed_at: None,
            outcome: None,
            id,
        }))
    }
}

/// What a device last reported running, as its `devices` columns hold it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReportRow {
    pub(crate) fw_version: Option<String>,
    pub(crate) fw_sequence: Option<i64>,
    pub(crate) fw_sha256: Option<String>,
    pub(crate) slot: Option<i64>,
    pub(crate) ota_state: Option<String>,
    pub(crate) last_result: Option<String>,
    pub(crate) agent_format: Option<i64>,
    pub(crate) chip_id: Option<i64>,
    pub(crate) reset_reason: Option<i64>,
}

impl ReportRow {
    pub(crate) fn into_report(self) -> Report {
        Report {
            fw_version: self.fw_version,
            fw_sequence: self.fw_sequence,
            fw_sha256: self.fw_sha256,
            slot: self.slot,
            ota_state: self.ota_state,
            last_result: self.last_result,
            agent_format: self.agent_format,
            chip_id: self.chip_id,
            reset_reason: self.reset_reason,
        }
    }
}

/// The release a device is offered, from the `r_` columns of a join: every column is NULL
/// when it is offered none.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OfferRow {
    #[sqlx(rename = "r_id")]
    pub(crate) release_id: Option<String>,
    #[sqlx(rename = "r_sequence")]
    pub(crate) sequence: Option<i64>,
    #[sqlx(rename = "r_manifest")]
    pub(crate) manifest: Option<Vec<u8>>,
    #[sqlx(rename = "r_image")]
    pub(crate) image_sha256: Option<String>,
    #[sqlx(rename = "r_size")]
    pub(crate) image_size: Option<i64>,
    #[sqlx(rename = "r_hashlist")]
    pub(crate) hashlist_sha256: Option<String>,
    #[sqlx(rename = "r_generation")]
    pub(crate) generation: Option<i64>,
}

impl OfferRow {
    pub(crate) fn into_offer(self) -> StoreResult<Option<Offer>> {
        let Some(release_id) = self.release_id else {
            return Ok(None);
        };
        let corrupt =
            |column| StoreError::Corrupt(format!("release {release_id:?}: {column} NULL"));
        Ok(Some(Offer {
            sequence: self.sequence.ok_or_else(|| corrupt("sequence"))?,
            manifest: self.manifest.ok_or_else(|| corrupt("manifest"))?,
            image_sha256: self.image_sha256.ok_or_else(|| corrupt("image_sha256"))?,
            image_size: self.image_size.ok_or_else(|| corrupt("image_size"))?,
            hashlist_sha256: self
                .hashlist_sha256
                .ok_or_else(|| corrupt("hashlist_sha256"))?,
            // An assignment made before generations were kept has none.
            generation: self.generation.unwrap_or(0),
            release_id,
        }))
    }
}

/// Everything a v2 check-in reads, in one row: the device, its offer, its open order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CheckinRow {
    pub(crate) id: String,
    pub(crate) token_hash: Vec<u8>,
    pub(crate) revoked_at: Option<Millis>,
    pub(crate) class: Option<String>,
    pub(crate) suppressed_release_id: Option<String>,
    pub(crate) checkin_counter: i64,
    #[sqlx(flatten)]
    pub(crate) report: ReportRow,
    #[sqlx(flatten)]
    pub(crate) offer: OfferRow,
    #[sqlx(flatten)]
    pub(crate) open_order: OpenOrderRow,
}

impl CheckinRow {
    pub(crate) fn into_view(self) -> StoreResult<CheckinView> {
        Ok(CheckinView {
            rollback: self.open_order.into_api(&self.id)?,
            offer: self.offer.into_offer()?,
            report: self.report.into_report(),
            device_id: self.id,
            digest: self.token_hash,
            revoked_at: self.revoked_at,
            class: self.class,
            suppressed_release_id: self.suppressed_release_id,
            checkin_counter: self.checkin_counter,
        })
    }
}

/// Columns of [`ReleaseRow`] (the manifest bytes are read only where they are served).
pub(crate) const RELEASE_COLUMNS: &str = "id, class, class_id, sequence, security_counter, \
    version, project, image_sha256, image_size, chunk_size, chunk_count, hashlist_sha256, \
    hashlist_size, manifest_digest, created_at, created_by";

/// A release as stored, without its manifest bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) id: i64,
    pub(crate) at: Millis,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) detail: Option<String>,
}

impl AuditRow {
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

/// Columns of [`LegacyReleaseRow`].
pub(crate) const LEGACY_COLUMNS: &str =
    "id, version, size, sha256, chunk_size, total_chunks, created_at, created_by";

/// A legacy (seed) upload as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LegacyReleaseRow {
    pub(crate) id: i64,
    pub(crate) version: String,
    pub(crate) size: i64,
    pub(crate) sha256: String,
    pub(crate) chunk_size: i64,
    pub(crate) total_chunks: i64,
    pub(crate) created_at: Millis,
    pub(crate) created_by: String,
}

impl LegacyReleaseRow {
    pub(crate) fn into_release(self) -> LegacyRelease {
        LegacyRelease {
            id: self.id,
            version: self.version,
            size: self.size,
            sha256: self.sha256,
            chunk_size: self.chunk_size,
            total_chunks: self.total_chunks,
            created_at: self.created_at,
            created_by: self.created_by,
        }
    }
}

/// Stored JSON detail text; text that no longer parses is shown as no detail rather than
/// failing the whole listing.
fn parse_detail(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
