//! The storage port: everything the server knows lives behind [`Store`].
//!
//! Nothing that matters is kept only in process memory, so any number of server processes over
//! the same store answer identically. The one exception is by design: devices' `last_seen_at`
//! and legacy download progress are collected in memory and flushed in batches (see
//! [`crate::housekeeping::SeenBatcher`]), so a poll costs one indexed read and no write.
//!
//! Every method that changes operator-visible state takes the [`AuditEntry`](fota_api::AuditEntry) describing the
//! change and writes it in the same transaction: there is no change without its audit record.
//!
//! What operators see comes back as the operator API's types (`fota_api`: `Device`,
//! `Release`, ...). Queries read the store's own rows (`rows.rs`, shaped like the tables),
//! and those become API types in that one file; nothing else maps columns to fields.
//!
//! The port is split by area, one trait each, and [`Store`] is all of them together with what
//! spans them (counters, retention, blob references, backups). Code holding a `dyn Store`
//! calls every method; code holding a concrete store brings the area traits into scope
//! (`use fota_server::store::*`).
//!
//! | area | trait | SQLite |
//! |---|---|---|
//! | operator tokens | [`TokenStore`] | `sqlite/tokens.rs` |
//! | devices and credentials | [`DeviceStore`] | `sqlite/devices.rs` |
//! | reports, events, contacts | [`ReportStore`] | `sqlite/reports.rs` |
//! | releases and assignments | [`ReleaseStore`] | `sqlite/releases.rs` |
//! | rollback orders | [`RollbackStore`] | `sqlite/rollbacks.rs` |
//! | the seed API | [`LegacyStore`] | `sqlite/legacy.rs` |
//! | the audit log | [`AuditStore`] | `sqlite/audit.rs` |
//! | the chain of root records | [`RootStore`] | `sqlite/roots.rs` |
//! | all of them, and what spans them | [`Store`] | `sqlite/mod.rs` |

mod audit;
mod devices;
mod error;
mod legacy;
mod port;
mod releases;
mod reports;
mod rollbacks;
mod roots;
mod rows;
mod sqlite;
mod tokens;

pub use crate::clock::now_ms;
pub use audit::AuditStore;
pub use devices::{CheckinView, DeviceStore, NewDevice, Offer};
pub use error::{StoreError, StoreResult};
pub use fota_api::Millis;
pub use legacy::{LegacyRelease, LegacyStatus, LegacyStatusOutcome, LegacyStore};
pub use port::{PruneBefore, Pruned, Store};
pub use releases::ReleaseStore;
pub use reports::{NewEvent, Progress, Report, ReportStore, Seen, SeenApplied, SeenTelemetry};
pub use rollbacks::RollbackStore;
pub use roots::{RootStore, StoredRoot};
pub use sqlite::SqliteStore;
pub use tokens::{ApiTokenAuth, TokenStore};
