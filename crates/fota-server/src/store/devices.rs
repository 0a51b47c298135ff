//! Devices: v2 provisioning and credentials, legacy devices, and the reads the device
//! endpoints make by credential.

use fota_api::{AuditEntry, Device, Millis, Protocol, RollbackOrder};

use super::error::StoreResult;
use super::reports::Report;

/// A new v2 device.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Name.
    pub id: String,
    /// Derived UUID.
    pub uuid: String,
    /// Class name.
    pub class: String,
    /// SHA-256 of its token.
    pub digest: [u8; 32],
    /// Now.
    pub created_at: Millis,
}

/// The release a device is offered at check-in.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Release id.
    pub release_id: String,
    /// Sequence.
    pub sequence: i64,
    /// Signed manifest envelope.
    pub manifest: Vec<u8>,
    /// Image blob.
    pub image_sha256: String,
    /// Image size.
    pub image_size: i64,
    /// Hash-list blob.
    pub hashlist_sha256: String,
    /// Generation of the assignment (bumped on every assignment).
    pub generation: i64,
}

/// Everything a v2 check-in needs, read in one query by token digest.
#[derive(Debug, Clone)]
pub struct CheckinView {
    /// Device name.
    pub device_id: String,
    /// Stored token digest, for the constant-time check.
    pub digest: Vec<u8>,
    /// Revoked?
    pub revoked_at: Option<Millis>,
    /// Class.
    pub class: Option<String>,
    /// Last report.
    pub report: Report,
    /// Release not to offer.
    pub suppressed_release_id: Option<String>,
    /// Effective assignment.
    pub offer: Option<Offer>,
    /// Open rollback order.
    pub rollback: Option<RollbackOrder>,
    /// The highest check-in counter applied (0: the agent keeps none).
    pub checkin_counter: i64,
}

/// Devices and their credentials.
#[async_trait::async_trait]
pub trait DeviceStore: Send + Sync {
    /// Provisions a v2 device. Conflict if the id exists.
    async fn create_device(&self, device: &NewDevice, audit: &AuditEntry) -> StoreResult<()>;

    /// One device.
    async fn device(&self, id: &str) -> StoreResult<Option<Device>>;

    /// The protocol of a device, if it exists: the one read the legacy endpoints make before
    /// touching a device.
    async fn device_protocol(&self, id: &str) -> StoreResult<Option<Protocol>>;

    /// Removes a device of either protocol with its history (events, check-ins, rollback
    /// orders); the audit record stays.
    async fn delete_device(&self, id: &str, audit: &AuditEntry) -> StoreResult<()>;

    /// Devices, optionally of one class.
    async fn list_devices(&self, class: Option<&str>) -> StoreResult<Vec<Device>>;

    /// Replaces a device's token digest. A revoked device is refused (`device_revoked`, and
    /// left as it is) unless `reactivate`, which also clears the revocation.
    async fn set_device_token(
        &self,
        id: &str,
        digest: &[u8; 32],
        reactivate: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Revokes a device's credential.
    async fn revoke_device(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()>;

    /// The check-in view of the device holding `digest`.
    async fn checkin_view(&self, digest: &[u8; 32]) -> StoreResult<Option<CheckinView>>;

    /// The device holding `digest`: (id, stored digest, revoked_at).
    async fn device_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>)>>;

    /// For a blob download in one read: the device holding `digest` as (id, stored digest,
    /// revoked_at) and whether `sha256` is the image or hash list of the release offered to it.
    async fn blob_access(
        &self,
        digest: &[u8; 32],
        sha256: &str,
    ) -> StoreResult<Option<(String, Vec<u8>, Option<Millis>, bool)>>;
}
