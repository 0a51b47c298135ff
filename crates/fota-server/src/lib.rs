//! The FOTA update server, as a library: [`router`] builds the HTTP application, [`serve`] runs
//! it on a listener until a shutdown signal ([`serve_on`]: over TLS, and with a plain-HTTP
//! listener for the legacy API alone), [`AppState::open`] opens a data folder.
//!
//! It serves three audiences:
//!
//! - **v2 devices** (`/api/v2/device/...`): binary check-in records answered with a signed
//!   status statement and, when a release is assigned, the signed manifest; ranged downloads
//!   of content-addressed blobs; event reports. Each device has its own bearer credential.
//! - **legacy devices** (`/api/inverter/fota/...`, `/api/cloud/fota/...`): the seed's Flask API,
//!   byte-compatible, when a legacy PSK is configured.
//! - **operators** (`/api/v2/...`): tokens with roles, device provisioning, release upload
//!   (verified against the root record), assignments, rollback orders, device history, audit
//!   log; OpenAPI at `/api/v2/openapi.json`, Prometheus metrics at `/metrics`.
//!
//! Storage is behind [`store::Store`] (SQLite now) and [`blobs::BlobStore`] (a local folder);
//! all state lives there, so several server processes over one data folder answer alike.
//!
//! The operator API's JSON types are `fota-api`'s, shared with the client and the emulator;
//! the store keeps its own rows and turns them into those types in one place. Settings come in
//! as values ([`Config`], and the key passphrase to [`AppState::open`]): the library never reads
//! the environment.
//!
//! # Layers
//!
//! Each layer uses only the layers below it; nothing reaches back up.
//!
//! | layer | modules | what it does |
//! |---|---|---|
//! | serving | `server` ([`serve`], [`serve_on`]), [`tls`] | accepts connections (HTTPS with a reloadable certificate, or plain HTTP), runs the router and the housekeeping beside it |
//! | drivers | [`api`], [`housekeeping`] | HTTP handlers, one module per resource; background work |
//! | domain | `domain` | the decisions: check-in answers, events, releases, rollback orders, the seed protocol |
//! | state | [`state`] ([`AppState`]) | the shared handles and the process memory (caches, batched contacts, legacy rate windows) |
//! | foundation | [`error`], [`tokens`], [`trust`], [`store`], [`blobs`], [`config`], `metrics`, `clock` | the error type and its one mapping to an answer, credentials, key material, storage, settings |
//!
//! # What this crate must never do
//!
//! - **Hold a release signing key.** Releases are signed offline; the server only verifies
//!   them. The one private key it holds, the status key, can say "nothing to do" or "roll back"
//!   but never make a device install anything. It reads that key with `fota-keys`, built
//!   without its `sign` feature, so no key generation or signing code can be called from here
//!   (`cargo check -p fota-server` would fail).
//! - **Panic or answer 500 on bad input.** Every malformed body, parameter, header or record
//!   is a 4xx with `{ "error": { "code", "message" } }`; 500 is reserved for the server's own
//!   faults (storage, I/O), and those are logged, never echoed.
//! - **Keep state only in memory.** Caches hold derived, immutable data; last-seen times are
//!   batched by design and flushed periodically and at shutdown.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.

// The workspace lints steer the no_std crates to `core`/`alloc`; this crate is std-only by
// nature (sockets, files, a database), where the std paths are the idiomatic ones.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only crate: std paths say what they are, and nothing here builds for no_std"
)]

pub mod api;
pub mod blobs;
mod clock;
pub mod config;
mod domain;
pub mod error;
pub mod housekeeping;
mod metrics;
mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod trust;

pub use api::{legacy_router, router};
pub use config::Config;
pub use error::{AppError, AppResult};
pub use server::{Listeners, serve, serve_on};
pub use state::{AppState, StartError};
