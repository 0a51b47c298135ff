//! The operator side of the FOTA system as a library: a typed, blocking client for the update
//! server's operator API, and the offline half of a release (signing and release bundles).
//!
//! - [`Client`] speaks the operator API under `/api/v2` (and the seed's legacy upload): one
//!   method per endpoint, answers as `fota-api`'s types (re-exported in [`api`]), failures as
//!   [`Error`], which carries the server's `{ "error": { "code", "message" } }`.
//! - [`release`] turns an ESP32 app image into a signed release: it validates the image, builds
//!   the chunk hash list and signs the manifest with the release key of a key folder
//!   ([`release::KeyFolder`]), all through `fota-protocol`'s helpers.
//! - [`bundle`] stores a signed release in one file (`release.fota`) so that signing (offline,
//!   where the release key lives) and uploading can happen on different machines; the format
//!   is `fota_api::bundle`'s, this crate opens the files.
//!
//! The `fota` CLI, `fota demo` and the integration tests all drive the server through this
//! crate:
//!
//! ```no_run
//! use std::time::Duration;
//! use fota_client::Client;
//! use fota_client::api::DeviceState;
//! use fota_client::release::{self, KeyFolder, ReleaseSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:8080", Some("fota_op_...".into()))?;
//! let keys = KeyFolder::open("keys".as_ref(), None)?;
//! let provisioning = client.add_device("EcoWatt001", "ecowatt-v1")?; // write it for the device
//! let image = std::fs::read("app.bin")?;
//! let spec = ReleaseSpec {
//!     class: "ecowatt-v1".into(),
//!     version: "1.0.6".into(),
//!     sequence: client.next_sequence("ecowatt-v1")?,
//!     security_counter: None,
//!     chunk_size: release::DEFAULT_CHUNK_SIZE,
//!     issued_at: 1_700_000_000,
//!     expires_at: 0,
//!     manifest_format: Default::default(),
//! };
//! let signed = release::sign(&image, &spec, &keys)?;
//! let stored = client.upload_signed(&signed, &image, &mut |_sent| {})?.release;
//! client.assign_class(&stored.id, "ecowatt-v1")?;
//! let device = client.wait_for_device(
//!     &provisioning.device_id,
//!     Duration::from_secs(60),
//!     Duration::from_millis(500),
//!     |d| d.state == DeviceState::Confirmed,
//! )?;
//! # let _ = device;
//! # Ok(())
//! # }
//! ```
//!
//! # TLS
//!
//! `https://` servers are verified with rustls (the *ring* provider) against the platform's
//! root certificates plus, with [`Client::with_ca_file`], a CA file of the operator's (the
//! `fota` CLI's `--ca-file` / `FOTA_CA_FILE`).
//!
//! # What this crate does not do
//!
//! - **Build the server.** It depends on `fota-api` for the types and `fota-keys` for key
//!   files, never on `fota-server`: no axum, sqlx or tokio on an operator's machine.
//! - **Speak the device API.** Devices (and the emulator) use their own transport with the
//!   binary records of `fota_protocol::v2`.
//! - **Print.** Progress is reported through a callback; rendering is the caller's.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.

mod client;

pub mod bundle;
pub mod release;

pub use client::{Client, Error, Upload};
pub use fota_api::release::ReleaseParts;

/// The JSON types of the operator API (`fota-api`, shared with the server).
pub mod api {
    pub use fota_api::{
        ApiToken, AssignRequest, AssignResponse, AuditEntry, AuditRecord, Device, DeviceEvent,
        DeviceState, DeviceTelemetry, Millis, NewDeviceRequest, NewTokenRequest, NewTokenResponse,
        Protocol, Provisioning, Release, Role, RollbackOrder, RollbackRequest, RootChainInfo,
        RootVersion, ServerInfo,
    };
    pub use fota_protocol::legacy::json::UploadAnswer as LegacyUploadAnswer;
}
