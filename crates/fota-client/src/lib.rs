//! The operator side of the FOTA system as a library: a typed, blocking client for the update
//! server's operator API, and the offline half of a release (signing and release bundles).
//!
//! - [`Client`] speaks the operator API under `/api/v2` (and the seed's legacy upload): one
//!   method per endpoint, answers as the server's own types (re-exported in [`api`]), failures
//!   as [`Error`], which carries the server's `{ "error": { "code", "message" } }`.
//! - [`release`] turns an ESP32 app image into a signed release: it validates the image, builds
//!   the chunk hash list and signs the manifest with the release key of a key folder
//!   ([`release::KeyFolder`]), all through `fota-protocol`'s helpers.
//! - [`bundle`] stores a signed release in one file (`release.fota`) so that signing (offline,
//!   where the release key lives) and uploading can happen on different machines.
//!
//! The `fota` CLI, `fota demo` and the integration tests all drive the server through this
//! crate.
//!
//! # What this crate does not do
//!
//! - **Speak the device API.** Devices (and the emulator) use their own transport with the
//!   binary records of `fota_protocol::v2`.
//! - **Talk TLS.** It is built without a TLS stack for now: use `http://` on a trusted network
//!   or through a TLS-terminating tunnel; an `https://` URL is refused with a clear error.
//! - **Print.** Progress is reported through a callback; rendering is the caller's.

mod client;

pub mod bundle;
pub mod release;

pub use client::{Client, Error, ReleaseParts};

/// The JSON types of the operator API, as the server defines them.
pub mod api {
    pub use fota_protocol::legacy::json::UploadAnswer as LegacyUploadAnswer;
    pub use fota_server::api::misc::ServerInfo;
    pub use fota_server::api::operator::{
        AssignRequest, AssignResponse, NewDeviceRequest, NewTokenRequest, NewTokenResponse,
        Provisioning, RollbackRequest,
    };
    pub use fota_server::store::{
        ApiToken, AuditEntry, AuditRecord, Device, DeviceEvent, Millis, Release, Role,
        RollbackOrder,
    };
}
