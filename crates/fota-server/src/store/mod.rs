//! The storage port: everything the server knows lives behind [`Store`].
//!
//! Nothing that matters is kept only in process memory, so any number of server processes over
//! the same store answer identically. The one exception is by design: devices' `last_seen_at`
//! and legacy download progress are collected in memory and flushed in batches (see
//! [`crate::housekeeping::SeenBatcher`]), so a poll costs one indexed read and no write.
//!
//! Every method that changes operator-visible state takes the [`AuditEntry`] describing the
//! change and writes it in the same transaction: there is no change without its audit record.
//!
//! What operators see comes back as the operator API's types (`fota_api`: [`Device`],
//! [`Release`], ...). Queries read the store's own rows (`rows.rs`, shaped like the tables),
//! and those become API types in that one file; nothing else maps columns to fields.

use fota_api::{
    ApiToken, AuditEntry, AuditRecord, Device, DeviceEvent, DeviceState, Protocol, Release,
    RollbackOrder,
};
use serde::{Deserialize, Serialize};

mod rows;
mod sqlite;

pub use crate::clock::now_ms;
pub use fota_api::Millis;
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule or a precondition on stored state was violated.
    #[error("{0}")]
    Conflict(String),
    /// A rule the store keeps refused the change, with a stable code for the API (e.g.
    /// `last_admin_token`).
    #[error("{message}")]
    Refused {
        /// Stable machine-readable reason.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be interpreted (a bug or a tampered database).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A token found by its digest, with the stored digest for the constant-time check.
#[derive(Debug, Clone)]
pub struct ApiTokenAuth {
    /// The token.
    pub token: ApiToken,
    /// Stored SHA-256.
    pub digest: Vec<u8>,
}

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

/// What a device reports running (v2 check-in or legacy status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Firmware version.
    pub fw_version: Option<String>,
    /// Release sequence.
    pub fw_sequence: Option<i64>,
    /// Image SHA-256, hex.
    pub fw_sha256: Option<String>,
    /// Running slot.
    pub slot: Option<i64>,
    /// otadata state.
    pub ota_state: Option<String>,
    /// Last update outcome.
    pub last_result: Option<String>,
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
}

/// A new event and the device state it implies.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Device.
    pub device_id: String,
    /// Now.
    pub at: Millis,
    /// Kind.
    pub kind: String,
    /// Reason.
    pub reason: Option<String>,
    /// Release.
    pub release_id: Option<String>,
    /// Progress.
    pub bytes_done: Option<i64>,
    /// Progress total.
    pub bytes_total: Option<i64>,
    /// Extra JSON.
    pub detail: Option<serde_json::Value>,
    /// New device state, if the event changes it.
    pub new_state: Option<DeviceState>,
    /// Suppress this release for the device (it rolled back from it or failed it).
    pub suppress_release: Option<String>,
    /// Close the device's open rollback order with this outcome (only if it was delivered).
    pub close_rollback: Option<String>,
}

/// A legacy (seed) upload.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LegacyRelease {
    /// Increasing id; the newest is served.
    pub id: i64,
    /// Version string as uploaded.
    pub version: String,
    /// Image size.
    pub size: i64,
    /// SHA-256, lowercase hex: also the blob name.
    pub sha256: String,
    /// Chunk size.
    pub chunk_size: i64,
    /// ceil(size / chunk_size).
    pub total_chunks: i64,
    /// Upload time.
    pub created_at: Millis,
    /// Uploader.
    pub created_by: String,
}

/// Progress or contact noted in memory and flushed in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Device.
    pub device_id: String,
    /// Last contact.
    pub at: Millis,
    /// The protocol the contact came in on: a batch only ever touches a device row of that
    /// protocol.
    pub protocol: Protocol,
    /// Download progress, with the time the sample was taken.
    pub progress: Option<Progress>,
    /// Create the device as a legacy device when it does not exist (a legacy contact the
    /// server admitted under its limits; see [`Store::apply_seen`]). v2 contacts never create.
    pub create: bool,
}

/// A download progress sample.
///
/// It carries its own time because a batch is written later than it was taken: a sample older
/// than the state an event or a status report set since (`state_set_at`) is dropped, so a
/// flush can never put back `downloading` over an outcome the device reported after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done.
    pub done: i64,
    /// Bytes in all.
    pub total: i64,
    /// When the sample was taken.
    pub at: Millis,
}

/// What [`Store::apply_seen`] could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenApplied {
    /// Legacy devices not created because `legacy.max_devices` was reached.
    pub not_created: Vec<String>,
}

/// A legacy (seed) status report.
#[derive(Debug, Clone)]
pub struct LegacyStatus {
    /// The device naming itself.
    pub device_id: String,
    /// What it reports running.
    pub report: Report,
    /// The status word (`reported` when the device sent none).
    pub status: String,
    /// The whole body, kept as the event's detail.
    pub detail: serde_json::Value,
    /// Now.
    pub at: Millis,
}

/// What became of a [`LegacyStatus`].
#[derive(Debug, Clone)]
pub enum LegacyStatusOutcome {
    /// Recorded; the device's delivered rollback order, if it had one, is now closed.
    Recorded {
        /// The order the report closed.
        closed: Option<RollbackOrder>,
    },
    /// The id belongs to a v2 device: nothing was read or written.
    V2Device,
    /// The device is unknown and was not created (the caller did not allow it, or
    /// `legacy.max_devices` was reached): nothing was written.
    NotRecorded,
}

/// Retention cut-offs: records older than these are deleted.
#[derive(Debug, Clone, Copy)]
pub struct PruneBefore {
    /// Check-in history.
    pub checkins: Millis,
    /// Device events.
    pub events: Millis,
    /// Audit records.
    pub audit: Millis,
}

/// How many records a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Check-ins.
    pub checkins: u64,
    /// Events.
    pub events: u64,
    /// Audit records.
    pub audit: u64,
}

/// The storage port. See the module docs.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    // -- operator tokens --
    /// Stores a new token.
    async fn create_api_token(
        &self,
        token: &ApiToken,
        digest: &[u8; 32],
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Makes the bootstrap admin token: with `replace`, the digest of the `bootstrap` token is
    /// set to `digest` (FOTA_ADMIN_TOKEN); without, it is only created when no token exists.
    /// Returns whether a token was created or changed.
    async fn ensure_bootstrap_token(&self, digest: &[u8; 32], replace: bool) -> StoreResult<bool>;
    /// Finds a token by digest.
    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiTokenAuth>>;
    /// All tokens.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token. Refused (`last_admin_token`) when it is the last active admin token:
    /// nobody could then manage tokens through the API.
    async fn revoke_api_token(&self, id: &str, at: Millis, audit: &AuditEntry) -> StoreResult<()>;

    // -- devices --
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
    /// The device holding `digest`: (id, stored digest, revoked_at, class).
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
    /// Records a changed report and its check-in history row.
    async fn record_report(
        &self,
        device_id: &str,
        protocol: Protocol,
        report: &Report,
        at: Millis,
    ) -> StoreResult<()>;
    /// Marks a rollback order delivered (first time only).
    async fn mark_rollback_delivered(&self, order_id: &str, at: Millis) -> StoreResult<()>;
    /// Stores an event and applies its effect on the device, in one transaction.
    async fn add_event(&self, event: &NewEvent) -> StoreResult<()>;
    /// A device's events, newest first.
    async fn list_events(
        &self,
        device_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DeviceEvent>>;
    /// Applies a batch of contacts (see [`Seen`]): moves `last_seen_at` forward and applies
    /// progress samples newer than the device's `state_set_at`. Legacy contacts marked
    /// `create` make their device when it is missing, unless `max_legacy_devices` legacy
    /// devices exist already.
    async fn apply_seen(&self, batch: &[Seen], max_legacy_devices: u64)
    -> StoreResult<SeenApplied>;

    // -- releases --
    /// Stores a verified release and its signed manifest envelope. Conflict if its sequence is
    /// not above the class's highest, or its version exists in the class.
    async fn create_release(
        &self,
        release: &Release,
        manifest: &[u8],
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// One release by id.
    async fn release(&self, id: &str) -> StoreResult<Option<Release>>;
    /// The signed manifest envelope of a release, as uploaded.
    async fn release_manifest(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// One release by class and version.
    async fn release_by_version(&self, class: &str, version: &str) -> StoreResult<Option<Release>>;
    /// Releases, optionally of one class, newest first.
    async fn list_releases(&self, class: Option<&str>) -> StoreResult<Vec<Release>>;
    /// Class names in use (by provisioned devices or releases).
    async fn list_classes(&self) -> StoreResult<Vec<String>>;
    /// Assigns a release to devices (all must exist and be of the release's class).
    async fn assign_devices(
        &self,
        release_id: &str,
        device_ids: &[String],
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Assigns a release to its class.
    async fn assign_class(
        &self,
        class: &str,
        release_id: &str,
        at: Millis,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    // -- rollback orders --
    /// Opens an order; creates the device as a legacy device when `create_legacy` and it is
    /// unknown (with `create_legacy`, a v2 device is not found: the legacy API never touches
    /// one). Conflict if an order is already open.
    async fn create_rollback_order(
        &self,
        order: &RollbackOrder,
        create_legacy: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// A device's open order.
    async fn open_rollback_order(&self, device_id: &str) -> StoreResult<Option<RollbackOrder>>;
    /// The open order of legacy device `device_id`, marked delivered at `at` if it was not
    /// yet (one transaction). `None` for a v2 device, whatever it has: the legacy API never
    /// reads one.
    async fn deliver_legacy_rollback_order(
        &self,
        device_id: &str,
        at: Millis,
    ) -> StoreResult<Option<RollbackOrder>>;
    /// A device's orders, newest first.
    async fn list_rollback_orders(&self, device_id: &str) -> StoreResult<Vec<RollbackOrder>>;

    // -- legacy --
    /// Stores a legacy upload; returns its id.
    async fn create_legacy_release(
        &self,
        release: &LegacyRelease,
        audit: &AuditEntry,
    ) -> StoreResult<i64>;
    /// The newest legacy upload.
    async fn latest_legacy_release(&self) -> StoreResult<Option<LegacyRelease>>;
    /// Next value of the persisted, strictly increasing counter `name` (starts at 1).
    async fn next_counter(&self, name: &str) -> StoreResult<u64>;
    /// Records a legacy status report: the report, an event, and closes the delivered order.
    /// A missing device is created first when `create_under` is given and fewer legacy devices
    /// than that exist; a v2 device is never touched.
    async fn legacy_status(
        &self,
        status: &LegacyStatus,
        create_under: Option<u64>,
    ) -> StoreResult<LegacyStatusOutcome>;

    // -- audit and housekeeping --
    /// Audit records, newest first.
    async fn list_audit(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRecord>>;
    /// Writes one audit record on its own (for actions without another store change).
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Deletes history older than the cut-offs.
    async fn prune(&self, before: PruneBefore) -> StoreResult<Pruned>;
    /// SHA-256 names of all blobs any release references.
    async fn referenced_blobs(&self) -> StoreResult<Vec<String>>;
    /// Writes a consistent copy of the database to `path` while serving (`VACUUM INTO`).
    async fn backup_into(&self, path: &std::path::Path) -> StoreResult<()>;
}
