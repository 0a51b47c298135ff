//! fota-protocol's integration tests: one module per format family. One binary (see
//! `autotests = false`) so the crate and its dev-dependencies link once.
//!
//! proptest keeps the seeds of past failures in `tests/proptest-regressions/<module>.txt` (its
//! default place for a test binary with a `main.rs`) and replays them before new cases.

mod common;
mod esp_flash;
mod esp_image;
mod esp_otadata;
mod esp_partition;
mod legacy;
mod v2_device;
mod v2_hashlist;
mod v2_signed;
mod version;
