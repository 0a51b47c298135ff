//! The operator API's types, shared by everything that speaks it: the update server
//! (`fota-server`) answers with them, the client (`fota-client`) and the `fota` CLI read them,
//! the emulator reads the provisioning file.
//!
//! - Requests and answers of `/api/v2/...`: [`Device`], [`Release`], [`ApiToken`],
//!   [`AuditRecord`], [`RollbackOrder`], [`DeviceEvent`], [`ServerInfo`], [`ErrorBody`] and the
//!   request bodies, with typed [`DeviceState`], [`Protocol`] and [`Role`]. Their JSON is the
//!   wire format: field names, order and values are what the server has always sent.
//! - [`Provisioning`], the file `fota devices add -o ID.json` writes and devices read.
//! - [`bundle`]: a signed release in one file (`release.fota`), read from any `Read` and
//!   written to any `Write`.
//! - [`release::manifest_body`]: the manifest fields of an image, the one place they are
//!   derived from it (signing tools and tests use it).
//! - [`name`]: the rule device and class names follow.
//! - [`multipart`]: the `multipart/form-data` framing of a release upload.
//!
//! The types carry `utoipa` schemas, so the server's OpenAPI document describes exactly what
//! is serialised.
//!
//! # What this crate never does
//!
//! - **I/O.** No files, sockets, clocks or environment: callers open files and pass readers
//!   and writers, and give times as values.
//! - **Depend on the server.** An operator's tools build without axum, sqlx or tokio.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.

// Host-only by nature (owned strings, JSON): the std paths are the idiomatic ones.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only crate: std paths say what they are, and nothing here builds for no_std"
)]

mod audit;
pub mod bundle;
mod device;
mod info;
pub mod multipart;
pub mod name;
mod provisioning;
pub mod release;
mod root;
mod token;

pub use audit::{AuditEntry, AuditRecord};
pub use device::{
    Device, DeviceEvent, DeviceState, DeviceTelemetry, NewDeviceRequest, Protocol, RollbackOrder,
    RollbackRequest, UnknownProtocol,
};
pub use info::{ErrorBody, ErrorDetail, ServerInfo};
pub use provisioning::{Provisioning, ProvisioningError};
pub use release::{AssignRequest, AssignResponse, Release};
pub use root::{RootChainInfo, RootVersion};
pub use token::{ApiToken, Duty, NewTokenRequest, NewTokenResponse, Role};

/// Unix time in milliseconds, the only timestamp type of the API.
pub type Millis = i64;
